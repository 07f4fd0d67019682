//! Catalogue metadata of a repository (what DCAT-AP describes a dataset with: titles and
//! descriptions in several languages, keywords, EU data themes, sector, licence, spatial
//! and temporal coverage, contact) and the public catalogue as DCAT-AP 3.0.0, in Turtle and
//! JSON-LD. Pure: the server hands in the entries and the addresses.

use crate::{AccessRights, RepoKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The EU data themes (the Publications Office's `data-theme` authority table).
pub const DATA_THEMES: &[&str] = &[
    "AGRI", "ECON", "EDUC", "ENER", "ENVI", "GOVE", "HEAL", "INTR", "JUST", "REGI", "SOCI", "TECH", "TRAN",
];

/// Their English labels, as the authority table has them.
fn theme_label(code: &str) -> &'static str {
    match code {
        "AGRI" => "Agriculture, fisheries, forestry and food",
        "ECON" => "Economy and finance",
        "EDUC" => "Education, culture and sport",
        "ENER" => "Energy",
        "ENVI" => "Environment",
        "GOVE" => "Government and public sector",
        "HEAL" => "Health",
        "INTR" => "International issues",
        "JUST" => "Justice, legal system and public safety",
        "REGI" => "Regions and cities",
        "SOCI" => "Population and society",
        "TECH" => "Science and technology",
        _ => "Transport",
    }
}

/// Licences by SPDX id and their entries in the EU `licence` authority table.
pub const LICENCES: &[(&str, &str)] = &[
    ("apache-2.0", "APACHE_2_0"),
    ("mit", "MIT"),
    ("cc-by-4.0", "CC_BY_4_0"),
    ("cc-by-sa-4.0", "CC_BYSA_4_0"),
    ("cc-by-nc-4.0", "CC_BYNC_4_0"),
    ("cc0-1.0", "CC0"),
    ("gpl-3.0", "GPL_3_0"),
    ("bsd-3-clause", "BSD_3_CLAUSE"),
    ("eupl-1.2", "EUPL_1_2"),
    ("odbl", "ODC_BL"),
];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Metadata {
    /// Titles by language (ISO 639-1: `en`, `it`...).
    #[serde(default)]
    pub titles: BTreeMap<String, String>,
    #[serde(default)]
    pub descriptions: BTreeMap<String, String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    /// EU data themes (`TECH`, `HEAL`...).
    #[serde(default)]
    pub themes: Vec<String>,
    #[serde(default)]
    pub sector: Option<String>,
    /// SPDX licence id (`apache-2.0`, `cc-by-4.0`...).
    #[serde(default)]
    pub licence: Option<String>,
    /// Countries covered (ISO 3166-1 alpha-3, as the EU `country` table: `ITA`, `FIN`).
    #[serde(default)]
    pub spatial: Vec<String>,
    /// Period covered, RFC 3339 dates (`2015-01-01`).
    #[serde(default)]
    pub temporal_start: Option<String>,
    #[serde(default)]
    pub temporal_end: Option<String>,
    #[serde(default)]
    pub contact_name: Option<String>,
    #[serde(default)]
    pub contact_email: Option<String>,
}

impl Metadata {
    /// Every problem with the metadata, field by field (empty when it is fine).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let lang = |l: &str| l.len() == 2 && l.bytes().all(|b| b.is_ascii_lowercase());
        for (field, map) in [("titles", &self.titles), ("descriptions", &self.descriptions)] {
            for (l, text) in map {
                if !lang(l) {
                    out.push((field.to_string(), format!("`{l}` is not a two-letter language code")));
                }
                if text.trim().is_empty() || text.len() > 10_000 {
                    out.push((field.to_string(), format!("the `{l}` text is empty or too long")));
                }
            }
        }
        for t in &self.themes {
            if !DATA_THEMES.contains(&t.as_str()) {
                out.push((
                    "themes".into(),
                    format!("`{t}` is not an EU data theme ({})", DATA_THEMES.join(", ")),
                ));
            }
        }
        if let Some(l) = &self.licence
            && !LICENCES.iter().any(|(id, _)| id == l)
        {
            let known: Vec<&str> = LICENCES.iter().map(|(id, _)| *id).collect();
            out.push((
                "licence".into(),
                format!("`{l}` is not a licence known here ({})", known.join(", ")),
            ));
        }
        for c in &self.spatial {
            if !(c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())) {
                out.push(("spatial".into(), format!("`{c}` is not an ISO 3166-1 alpha-3 code")));
            }
        }
        for (field, d) in [
            ("temporal_start", &self.temporal_start),
            ("temporal_end", &self.temporal_end),
        ] {
            if let Some(d) = d
                && !is_date(d)
            {
                out.push((field.into(), format!("`{d}` is not a date (YYYY-MM-DD)")));
            }
        }
        if let Some(e) = &self.contact_email
            && !(e.contains('@') && !e.contains(char::is_whitespace) && !e.contains('>'))
        {
            out.push(("contact_email".into(), format!("`{e}` is not an e-mail address")));
        }
        if self.keywords.iter().any(|k| k.trim().is_empty() || k.len() > 100) {
            out.push(("keywords".into(), "keywords are 1 to 100 characters".into()));
        }
        out
    }
}

fn is_date(d: &str) -> bool {
    let b = d.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// One catalogue entry as exported.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: RepoKind,
    /// `namespace/name`.
    pub repo_id: String,
    pub access_rights: AccessRights,
    pub publisher_name: String,
    pub publisher_id: String,
    pub issued: String,
    pub modified: String,
    pub metadata: Metadata,
    /// Files at the head of `main`: path, size, SHA-256.
    pub files: Vec<(String, u64, String)>,
    /// The factory job that produced it (`prov:wasGeneratedBy`).
    pub produced_by_job: Option<String>,
}

/// The catalogue itself.
#[derive(Debug, Clone)]
pub struct Catalogue {
    /// `http://host:port`: every IRI of ours starts with it.
    pub base: String,
    pub title: String,
    pub description: String,
    pub publisher: String,
}

const AUTHORITY: &str = "http://publications.europa.eu/resource/authority";

const PREFIXES: &[(&str, &str)] = &[
    ("dcat", "http://www.w3.org/ns/dcat#"),
    ("dct", "http://purl.org/dc/terms/"),
    ("foaf", "http://xmlns.com/foaf/0.1/"),
    ("vcard", "http://www.w3.org/2006/vcard/ns#"),
    ("skos", "http://www.w3.org/2004/02/skos/core#"),
    ("spdx", "http://spdx.org/rdf/terms#"),
    ("xsd", "http://www.w3.org/2001/XMLSchema#"),
    ("rdf", "http://www.w3.org/1999/02/22-rdf-syntax-ns#"),
    ("prov", "http://www.w3.org/ns/prov#"),
];

fn access_right(a: AccessRights) -> &'static str {
    match a {
        AccessRights::Public => "PUBLIC",
        AccessRights::Restricted => "RESTRICTED",
        AccessRights::NonPublic => "NON_PUBLIC",
    }
}

impl Entry {
    /// The repository's page (the dataset's landing page).
    fn page(&self, base: &str) -> String {
        format!("{base}/{}{}", self.kind.url_prefix(), self.repo_id)
    }

    /// The dataset itself, as the catalogue names it.
    fn subject(&self, base: &str) -> String {
        format!("{base}/api/v1/catalogue/{}/{}", self.kind.as_str(), self.repo_id)
    }

    /// Titles, with the repository id where none is set (DCAT-AP requires one).
    fn titles(&self) -> BTreeMap<String, String> {
        if self.metadata.titles.is_empty() {
            BTreeMap::from([("en".to_string(), self.repo_id.clone())])
        } else {
            self.metadata.titles.clone()
        }
    }

    fn descriptions(&self) -> BTreeMap<String, String> {
        if self.metadata.descriptions.is_empty() {
            let what = match self.kind {
                RepoKind::Model => "A model",
                RepoKind::Dataset => "A dataset",
            };
            BTreeMap::from([(
                "en".to_string(),
                format!("{what} published by {}.", self.publisher_name),
            )])
        } else {
            self.metadata.descriptions.clone()
        }
    }
}

/// A node of the graph: an IRI or a blank node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Node {
    Iri(String),
    Blank(usize),
}

/// What a statement says: a node, or a literal with a language or a datatype.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    Node(Node),
    Text(String, String),
    Typed(String, &'static str),
}

/// The catalogue as statements, grouped by subject in the order they were made.
#[derive(Debug, Default)]
pub struct Graph {
    subjects: Vec<(Node, Vec<(&'static str, Term)>)>,
    blanks: usize,
}

impl Graph {
    fn about(&mut self, node: &Node) -> &mut Vec<(&'static str, Term)> {
        let i = match self.subjects.iter().position(|(n, _)| n == node) {
            Some(i) => i,
            None => {
                self.subjects.push((node.clone(), Vec::new()));
                self.subjects.len() - 1
            }
        };
        &mut self.subjects[i].1
    }

    fn say(&mut self, s: &Node, p: &'static str, o: Term) {
        let props = self.about(s);
        if !props.contains(&(p, o.clone())) {
            props.push((p, o));
        }
    }

    fn blank(&mut self) -> Node {
        self.blanks += 1;
        Node::Blank(self.blanks)
    }
}

fn iri(s: impl Into<String>) -> Node {
    Node::Iri(s.into())
}

fn node(n: &Node) -> Term {
    Term::Node(n.clone())
}

fn text(s: &str, lang: &str) -> Term {
    Term::Text(s.to_string(), lang.to_string())
}

fn typed(s: impl Into<String>, datatype: &'static str) -> Term {
    Term::Typed(s.into(), datatype)
}

/// A prefixed name's full IRI.
fn expand(name: &str) -> String {
    let (p, local) = name.split_once(':').expect("prefixed names only");
    let ns = PREFIXES.iter().find(|(q, _)| *q == p).expect("a known prefix").1;
    format!("{ns}{local}")
}

/// The catalogue as DCAT-AP 3.0.0 statements. Every resource referred to carries its class,
/// as DCAT-AP's range shapes ask.
pub fn graph(cat: &Catalogue, entries: &[Entry]) -> Graph {
    let base = cat.base.trim_end_matches('/');
    let mut g = Graph::default();
    let catalogue = iri(format!("{base}/api/v1/catalogue"));
    let factory = iri(format!("{base}/#publisher"));
    let home = iri(format!("{base}/"));
    g.say(&catalogue, "rdf:type", node(&iri(expand("dcat:Catalog"))));
    g.say(&catalogue, "dct:title", text(&cat.title, "en"));
    g.say(&catalogue, "dct:description", text(&cat.description, "en"));
    g.say(&catalogue, "dct:publisher", node(&factory));
    g.say(&catalogue, "foaf:homepage", node(&home));
    g.say(&factory, "rdf:type", node(&iri(expand("foaf:Agent"))));
    g.say(&factory, "foaf:name", text(&cat.publisher, "en"));
    g.say(&home, "rdf:type", node(&iri(expand("foaf:Document"))));
    let mut classes: BTreeMap<Node, &'static str> = BTreeMap::new();
    for e in entries {
        let subject = iri(e.subject(base));
        let page = iri(e.page(base));
        let m = &e.metadata;
        g.say(&catalogue, "dcat:dataset", node(&subject));
        g.say(&subject, "rdf:type", node(&iri(expand("dcat:Dataset"))));
        g.say(&subject, "dct:identifier", typed(&e.repo_id, "xsd:string"));
        for (l, title) in e.titles() {
            g.say(&subject, "dct:title", text(&title, &l));
        }
        for (l, d) in e.descriptions() {
            g.say(&subject, "dct:description", text(&d, &l));
        }
        let publisher = iri(format!("{base}/orgs/{}", e.publisher_id));
        g.say(&subject, "dct:publisher", node(&publisher));
        g.say(&publisher, "rdf:type", node(&iri(expand("foaf:Agent"))));
        g.say(&publisher, "foaf:name", text(&e.publisher_name, "en"));
        let rights = iri(format!("{AUTHORITY}/access-right/{}", access_right(e.access_rights)));
        classes.insert(rights.clone(), "dct:RightsStatement");
        g.say(
            &rights,
            "skos:inScheme",
            node(&iri(format!("{AUTHORITY}/access-right"))),
        );
        g.say(&subject, "dct:accessRights", node(&rights));
        if let Some(job) = &e.produced_by_job {
            let activity = iri(format!("{base}/api/v1/jobs/{job}"));
            classes.insert(activity.clone(), "prov:Activity");
            g.say(&subject, "prov:wasGeneratedBy", node(&activity));
        }
        for k in &m.keywords {
            g.say(&subject, "dcat:keyword", text(k, "en"));
        }
        for th in &m.themes {
            let theme = iri(format!("{AUTHORITY}/data-theme/{th}"));
            classes.insert(theme.clone(), "skos:Concept");
            g.say(&theme, "skos:prefLabel", text(theme_label(th), "en"));
            g.say(&theme, "skos:inScheme", node(&iri(format!("{AUTHORITY}/data-theme"))));
            g.say(&subject, "dcat:theme", node(&theme));
        }
        for c in &m.spatial {
            let country = iri(format!("{AUTHORITY}/country/{c}"));
            classes.insert(country.clone(), "dct:Location");
            g.say(&country, "skos:inScheme", node(&iri(format!("{AUTHORITY}/country"))));
            g.say(&subject, "dct:spatial", node(&country));
        }
        if m.temporal_start.is_some() || m.temporal_end.is_some() {
            let period = g.blank();
            g.say(&subject, "dct:temporal", node(&period));
            g.say(&period, "rdf:type", node(&iri(expand("dct:PeriodOfTime"))));
            if let Some(d) = &m.temporal_start {
                g.say(&period, "dcat:startDate", typed(d, "xsd:date"));
            }
            if let Some(d) = &m.temporal_end {
                g.say(&period, "dcat:endDate", typed(d, "xsd:date"));
            }
        }
        if m.contact_name.is_some() || m.contact_email.is_some() {
            let contact = g.blank();
            g.say(&subject, "dcat:contactPoint", node(&contact));
            g.say(&contact, "rdf:type", node(&iri(expand("vcard:Kind"))));
            if let Some(n) = &m.contact_name {
                g.say(&contact, "vcard:fn", typed(n, "xsd:string"));
            }
            if let Some(mail) = &m.contact_email {
                g.say(&contact, "vcard:hasEmail", node(&iri(format!("mailto:{mail}"))));
            }
        }
        g.say(&subject, "dct:issued", typed(&e.issued, "xsd:dateTime"));
        g.say(&subject, "dct:modified", typed(&e.modified, "xsd:dateTime"));
        g.say(&subject, "dcat:landingPage", node(&page));
        classes.insert(page.clone(), "foaf:Document");
        let licence = m
            .licence
            .as_ref()
            .and_then(|l| LICENCES.iter().find(|(id, _)| id == l))
            .map(|(_, eu)| iri(format!("{AUTHORITY}/licence/{eu}")));
        if let Some(l) = &licence {
            classes.insert(l.clone(), "dct:LicenseDocument");
            g.say(l, "skos:inScheme", node(&iri(format!("{AUTHORITY}/licence"))));
        }
        for (i, (path, size, sha256)) in e.files.iter().enumerate() {
            let url = iri(format!(
                "{base}/{}{}/resolve/main/{path}",
                e.kind.url_prefix(),
                e.repo_id
            ));
            let dist = iri(format!("{}/files/{i}", e.subject(base)));
            g.say(&subject, "dcat:distribution", node(&dist));
            g.say(&dist, "rdf:type", node(&iri(expand("dcat:Distribution"))));
            g.say(&dist, "dct:title", text(path, "en"));
            g.say(&dist, "dcat:accessURL", node(&url));
            g.say(&dist, "dcat:downloadURL", node(&url));
            g.say(&dist, "dct:rights", node(&rights));
            if let Some(l) = &licence {
                g.say(&dist, "dct:license", node(l));
            }
            g.say(
                &dist,
                "dcat:byteSize",
                typed(size.to_string(), "xsd:nonNegativeInteger"),
            );
            let checksum = g.blank();
            g.say(&dist, "spdx:checksum", node(&checksum));
            g.say(&checksum, "rdf:type", node(&iri(expand("spdx:Checksum"))));
            g.say(
                &checksum,
                "spdx:algorithm",
                node(&iri(expand("spdx:checksumAlgorithm_sha256"))),
            );
            g.say(&checksum, "spdx:checksumValue", typed(sha256, "xsd:hexBinary"));
        }
    }
    if entries.iter().any(|e| !e.files.is_empty()) {
        classes.insert(iri(expand("spdx:checksumAlgorithm_sha256")), "spdx:ChecksumAlgorithm");
    }
    for (resource, class) in classes {
        g.say(&resource, "rdf:type", node(&iri(expand(class))));
    }
    g
}

/// A Turtle string literal.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An IRI in angle brackets, with what Turtle does not take percent-encoded.
fn angle(s: &str) -> String {
    let mut out = String::from("<");
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out.push('>');
    out
}

fn node_turtle(n: &Node) -> String {
    match n {
        Node::Iri(i) => angle(i),
        Node::Blank(b) => format!("_:b{b}"),
    }
}

impl Graph {
    pub fn to_turtle(&self) -> String {
        let mut t = String::new();
        for (p, ns) in PREFIXES {
            let _ = writeln!(t, "@prefix {p}: <{ns}> .");
        }
        for (subject, props) in &self.subjects {
            let _ = write!(t, "\n{}", node_turtle(subject));
            for (i, (p, o)) in props.iter().enumerate() {
                let object = match o {
                    Term::Node(n) => node_turtle(n),
                    Term::Text(s, lang) => format!("{}@{lang}", quote(s)),
                    Term::Typed(s, dt) => format!("{}^^{dt}", quote(s)),
                };
                let sep = if i == 0 { " " } else { " ;\n    " };
                let _ = write!(t, "{sep}{p} {object}");
            }
            t.push_str(" .\n");
        }
        t
    }

    /// The same statements as expanded JSON-LD (full IRIs, no context to fetch).
    pub fn to_jsonld(&self) -> serde_json::Value {
        use serde_json::{Value, json};
        let id = |n: &Node| match n {
            Node::Iri(i) => i.clone(),
            Node::Blank(b) => format!("_:b{b}"),
        };
        let nodes: Vec<Value> = self
            .subjects
            .iter()
            .map(|(subject, props)| {
                let mut obj = serde_json::Map::new();
                obj.insert("@id".into(), json!(id(subject)));
                for (p, o) in props {
                    if *p == "rdf:type" {
                        if let Term::Node(n) = o {
                            let types = obj.entry("@type").or_insert_with(|| json!([]));
                            types.as_array_mut().expect("an array").push(json!(id(n)));
                        }
                        continue;
                    }
                    let value = match o {
                        Term::Node(n) => json!({"@id": id(n)}),
                        Term::Text(s, lang) => json!({"@value": s, "@language": lang}),
                        Term::Typed(s, dt) => json!({"@value": s, "@type": expand(dt)}),
                    };
                    let values = obj.entry(expand(p)).or_insert_with(|| json!([]));
                    values.as_array_mut().expect("an array").push(value);
                }
                Value::Object(obj)
            })
            .collect();
        Value::Array(nodes)
    }
}

/// The catalogue in Turtle.
pub fn turtle(cat: &Catalogue, entries: &[Entry]) -> String {
    graph(cat, entries).to_turtle()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            kind: RepoKind::Dataset,
            repo_id: "baltic-vision-oy/steel".into(),
            access_rights: AccessRights::Public,
            publisher_name: "Baltic \"Vision\" Oy".into(),
            publisher_id: "org_1".into(),
            issued: "2026-01-01T00:00:00Z".into(),
            modified: "2026-01-02T00:00:00Z".into(),
            metadata: Metadata {
                titles: BTreeMap::from([("en".into(), "Steel".into()), ("fi".into(), "Teräs".into())]),
                themes: vec!["TECH".into()],
                licence: Some("cc-by-4.0".into()),
                ..Metadata::default()
            },
            files: vec![("data/labels.csv".into(), 12, "ab".repeat(32))],
            produced_by_job: Some("job_1".into()),
        }
    }

    #[test]
    fn the_export_names_everything_dcat_ap_requires() {
        let cat = Catalogue {
            base: "http://hub.test".into(),
            title: "Catalogue".into(),
            description: "All of it".into(),
            publisher: "The factory".into(),
        };
        let t = turtle(&cat, &[entry()]);
        for needle in [
            "<http://hub.test/api/v1/catalogue> rdf:type <http://www.w3.org/ns/dcat#Catalog>",
            "dcat:dataset <http://hub.test/api/v1/catalogue/dataset/baltic-vision-oy/steel>",
            "dcat:landingPage <http://hub.test/datasets/baltic-vision-oy/steel>",
            "dct:title \"Teräs\"@fi",
            "foaf:name \"Baltic \\\"Vision\\\" Oy\"@en",
            "dcat:theme <http://publications.europa.eu/resource/authority/data-theme/TECH>",
            "skos:prefLabel \"Science and technology\"@en ;\n    skos:inScheme <http://publications.europa.eu/resource/authority/data-theme> ;\n    rdf:type <http://www.w3.org/2004/02/skos/core#Concept>",
            "<http://publications.europa.eu/resource/authority/licence/CC_BY_4_0> skos:inScheme <http://publications.europa.eu/resource/authority/licence> ;\n    rdf:type <http://purl.org/dc/terms/LicenseDocument>",
            "dcat:accessURL <http://hub.test/datasets/baltic-vision-oy/steel/resolve/main/data/labels.csv>",
            "spdx:checksumValue \"abab",
            "dcat:dataset <http://hub.test/api/v1/catalogue/dataset/baltic-vision-oy/steel>",
        ] {
            assert!(t.contains(needle), "{needle} missing from:\n{t}");
        }
        // Without metadata, a title and a description are still there.
        let mut bare = entry();
        bare.metadata = Metadata::default();
        let t = turtle(&cat, &[bare]);
        assert!(t.contains("dct:title \"baltic-vision-oy/steel\"@en"));
        assert!(t.contains("dct:description \"A dataset published by"));
    }

    #[test]
    fn metadata_is_checked_field_by_field() {
        let m = Metadata {
            titles: BTreeMap::from([("english".into(), "x".into())]),
            themes: vec!["ROBOTS".into()],
            licence: Some("wtfpl".into()),
            spatial: vec!["IT".into()],
            temporal_start: Some("2015-13".into()),
            contact_email: Some("nobody".into()),
            ..Metadata::default()
        };
        let fields: Vec<String> = m.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "titles",
                "themes",
                "licence",
                "spatial",
                "temporal_start",
                "contact_email"
            ]
        );
        assert!(entry().metadata.problems().is_empty());
    }
}
