//! Harvesting DCAT-AP: a catalogue document (Turtle, RDF/XML or JSON-LD) read into
//! external entries (datasets, dataset series and data services, with their
//! distributions) that keep every statement made about them, so that nothing DCAT-AP marks
//! mandatory or recommended is lost, and the fields the catalogue shows picked out. A
//! fingerprint of each entry tells a re-harvest what changed.

use oxrdfio::{RdfFormat, RdfParser};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const DCAT: &str = "http://www.w3.org/ns/dcat#";
const DCT: &str = "http://purl.org/dc/terms/";
const RDF_TYPE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HarvestError {
    #[error("`{0}` is not a DCAT-AP syntax read here: text/turtle, application/rdf+xml or application/ld+json")]
    Syntax(String),
    #[error("the document is not valid {syntax}: {message}")]
    Malformed { syntax: &'static str, message: String },
    #[error("the document describes no dataset, dataset series or data service")]
    Empty,
}

/// The syntax of a document, by its media type.
pub fn syntax(media_type: &str) -> Result<(RdfFormat, &'static str), HarvestError> {
    let m = media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match m.as_str() {
        "text/turtle" | "application/x-turtle" => Ok((RdfFormat::Turtle, "Turtle")),
        "application/rdf+xml" | "application/xml" => Ok((RdfFormat::RdfXml, "RDF/XML")),
        "application/ld+json" | "application/json" => Ok((
            RdfFormat::from_media_type("application/ld+json").unwrap_or(RdfFormat::NTriples),
            "JSON-LD",
        )),
        _ => Err(HarvestError::Syntax(media_type.to_string())),
    }
}

/// A statement's object as kept: `<iri>`, `"text"@lang`, `"text"^^<datatype>`, or a blank
/// node's own statements in brackets.
pub type Values = BTreeMap<String, Vec<String>>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Distribution {
    pub identifier: String,
    pub properties: Values,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct External {
    /// The IRI of the dataset (or series, or service) in its catalogue.
    pub identifier: String,
    /// `dataset`, `dataset-series` or `data-service`.
    pub kind: String,
    /// Titles and descriptions by language (`""` for none).
    pub titles: BTreeMap<String, String>,
    pub descriptions: BTreeMap<String, String>,
    /// Every statement about it, predicate IRI → values.
    pub properties: Values,
    pub distributions: Vec<Distribution>,
}

/// What the catalogue's search takes from a harvested entry.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Facts {
    pub keywords: Vec<String>,
    /// EU data themes (`AGRI`, `ENVI`...), from their authority IRIs.
    pub themes: Vec<String>,
    /// SPDX ids where the EU licence table knows the licence, else its own name.
    pub licences: Vec<String>,
    /// Lower case (`csv`, `json`), from the distributions' formats and media types.
    pub formats: Vec<String>,
    /// `public`, `restricted` or `non-public` (`public` when it does not say).
    pub access_rights: String,
}

/// The last segment of an IRI value (`<…/data-theme/AGRI>` → `AGRI`).
fn last_segment(v: &str) -> Option<&str> {
    let iri = v.strip_prefix('<')?.strip_suffix('>')?;
    iri.rsplit(['/', '#']).find(|s| !s.is_empty())
}

impl External {
    pub fn facts(&self) -> Facts {
        let values = |props: &Values, p: &str| props.get(p).cloned().unwrap_or_default();
        let mut f = Facts {
            keywords: values(&self.properties, &format!("{DCAT}keyword"))
                .iter()
                .map(|v| split_literal(v).1)
                .collect(),
            themes: values(&self.properties, &format!("{DCAT}theme"))
                .iter()
                .filter_map(|v| last_segment(v).map(str::to_string))
                .collect(),
            access_rights: match values(&self.properties, &format!("{DCT}accessRights"))
                .first()
                .and_then(|v| last_segment(v))
            {
                Some("RESTRICTED") => "restricted",
                Some("NON_PUBLIC") => "non-public",
                _ => "public",
            }
            .to_string(),
            ..Facts::default()
        };
        for d in &self.distributions {
            for v in values(&d.properties, &format!("{DCT}license")) {
                if let Some(name) = last_segment(&v) {
                    let spdx = crate::catalogue::LICENCES.iter().find(|(_, eu)| *eu == name);
                    f.licences
                        .push(spdx.map_or_else(|| name.to_ascii_lowercase(), |(s, _)| s.to_string()));
                }
            }
            for p in [format!("{DCT}format"), format!("{DCAT}mediaType")] {
                for v in values(&d.properties, &p) {
                    if let Some(name) = last_segment(&v) {
                        f.formats.push(name.to_ascii_lowercase());
                    }
                }
            }
        }
        for list in [&mut f.themes, &mut f.licences, &mut f.formats] {
            list.sort();
            list.dedup();
        }
        f
    }

    /// What a re-harvest compares: the entry as harvested.
    pub fn fingerprint(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        Sha256::digest(json).iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Debug, Clone)]
enum Object {
    Iri(String),
    Blank(String),
    Literal(String),
}

/// Reads a document into its entries.
pub fn parse(document: &[u8], media_type: &str, base: Option<&str>) -> Result<Vec<External>, HarvestError> {
    let (format, name) = syntax(media_type)?;
    let mut parser = RdfParser::from_format(format);
    if let Some(b) = base {
        parser = parser.with_base_iri(b).map_err(|e| HarvestError::Malformed {
            syntax: name,
            message: e.to_string(),
        })?;
    }
    // subject → predicate → objects, in document order of first appearance.
    let mut graph: HashMap<String, Vec<(String, Object)>> = HashMap::new();
    let mut types: HashMap<String, BTreeSet<String>> = HashMap::new();
    let relaxed;
    let document = if name == "Turtle" {
        relaxed = escape_slashes(document);
        relaxed.as_slice()
    } else {
        document
    };
    for quad in parser.for_slice(document) {
        let quad = quad.map_err(|e| HarvestError::Malformed {
            syntax: name,
            message: e.to_string(),
        })?;
        let subject = match &quad.subject {
            oxrdf::NamedOrBlankNode::NamedNode(n) => n.as_str().to_string(),
            oxrdf::NamedOrBlankNode::BlankNode(b) => format!("_:{}", b.as_str()),
        };
        let predicate = quad.predicate.as_str().to_string();
        let object = match &quad.object {
            oxrdf::Term::NamedNode(n) => Object::Iri(n.as_str().to_string()),
            oxrdf::Term::BlankNode(b) => Object::Blank(format!("_:{}", b.as_str())),
            oxrdf::Term::Literal(l) => Object::Literal(match l.language() {
                Some(lang) => format!("{:?}@{lang}", l.value()),
                None if l.datatype().as_str() == "http://www.w3.org/2001/XMLSchema#string" => {
                    format!("{:?}", l.value())
                }
                None => format!("{:?}^^<{}>", l.value(), l.datatype().as_str()),
            }),
            #[allow(unreachable_patterns)]
            _ => continue,
        };
        if predicate == RDF_TYPE
            && let Object::Iri(t) = &object
        {
            types.entry(subject.clone()).or_default().insert(t.clone());
        }
        graph.entry(subject).or_default().push((predicate, object));
    }
    let render = |o: &Object, graph: &HashMap<String, Vec<(String, Object)>>| -> String {
        match o {
            Object::Iri(i) => format!("<{i}>"),
            Object::Literal(l) => l.clone(),
            Object::Blank(b) => blank(b, graph, 0),
        }
    };
    let values = |subject: &str| -> Values {
        let mut v: Values = BTreeMap::new();
        for (p, o) in graph.get(subject).map(Vec::as_slice).unwrap_or_default() {
            v.entry(p.clone()).or_default().push(render(o, &graph));
        }
        v
    };
    let mut out = Vec::new();
    let mut subjects: Vec<&String> = types.keys().collect();
    subjects.sort();
    for subject in subjects {
        let t = &types[subject];
        let kind = if t.contains(&format!("{DCAT}Dataset")) {
            "dataset"
        } else if t.contains(&format!("{DCAT}DatasetSeries")) {
            "dataset-series"
        } else if t.contains(&format!("{DCAT}DataService")) {
            "data-service"
        } else {
            continue;
        };
        let properties = values(subject);
        let texts = |p: &str| -> BTreeMap<String, String> {
            graph
                .get(subject.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter(|(q, _)| q == p)
                .filter_map(|(_, o)| match o {
                    Object::Literal(l) => Some(split_literal(l)),
                    _ => None,
                })
                .collect()
        };
        let distributions = graph
            .get(subject.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|(p, _)| p == &format!("{DCAT}distribution"))
            .map(|(_, o)| {
                let id = match o {
                    Object::Iri(i) | Object::Blank(i) => i.clone(),
                    Object::Literal(l) => l.clone(),
                };
                Distribution {
                    properties: values(&id),
                    identifier: id,
                }
            })
            .collect();
        out.push(External {
            identifier: subject.clone(),
            kind: kind.into(),
            titles: texts(&format!("{DCT}title")),
            descriptions: texts(&format!("{DCT}description")),
            properties,
            distributions,
        });
    }
    if out.is_empty() {
        return Err(HarvestError::Empty);
    }
    Ok(out)
}

/// Real catalogues (the official DCAT-AP examples among them) write prefixed names with a
/// bare `/` (`ex:dist/csv`), which Turtle allows only escaped (`ex:dist\/csv`). Outside
/// IRIs, strings and comments a `/` means nothing else in Turtle, so each such one is
/// escaped before parsing.
fn escape_slashes(doc: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(doc.len() + 16);
    let (mut i, n) = (0, doc.len());
    while i < n {
        let c = doc[i];
        match c {
            b'<' => {
                // An IRI, to its end.
                let end = doc[i..]
                    .iter()
                    .position(|&b| b == b'>' || b == b'\n')
                    .map_or(n, |p| i + p + 1);
                out.extend_from_slice(&doc[i..end]);
                i = end;
            }
            b'#' => {
                let end = doc[i..].iter().position(|&b| b == b'\n').map_or(n, |p| i + p);
                out.extend_from_slice(&doc[i..end]);
                i = end;
            }
            b'"' | b'\'' => {
                // A string, short or long, with its escapes.
                let long = doc[i..].starts_with(&[c, c, c]);
                let quote_len = if long { 3 } else { 1 };
                let mut j = i + quote_len;
                while j < n {
                    if doc[j] == b'\\' {
                        j += 2;
                        continue;
                    }
                    if (long && doc[j..].starts_with(&[c, c, c])) || (!long && doc[j] == c) {
                        j += quote_len;
                        break;
                    }
                    j += 1;
                }
                let end = j.min(n);
                out.extend_from_slice(&doc[i..end]);
                i = end;
            }
            b'/' if i > 0 && doc[i - 1] != b'\\' => {
                out.extend_from_slice(b"\\/");
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// A blank node's statements, in brackets (nested ones too, a few levels deep).
fn blank(id: &str, graph: &HashMap<String, Vec<(String, Object)>>, depth: usize) -> String {
    if depth > 4 {
        return id.to_string();
    }
    let inner: Vec<String> = graph
        .get(id)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|(p, o)| {
            let v = match o {
                Object::Iri(i) => format!("<{i}>"),
                Object::Literal(l) => l.clone(),
                Object::Blank(b) => blank(b, graph, depth + 1),
            };
            format!("<{p}> {v}")
        })
        .collect();
    format!("[ {} ]", inner.join(" ; "))
}

/// `"text"@lang` → (lang, text); other literals → ("", text).
fn split_literal(l: &str) -> (String, String) {
    let (quoted, lang) = match l.rsplit_once('@') {
        Some((q, lang)) if q.ends_with('"') && !lang.contains('"') => (q, lang.to_string()),
        _ => (l.split("^^<").next().unwrap_or(l), String::new()),
    };
    let text: String = serde_json::from_str(quoted).unwrap_or_else(|_| quoted.trim_matches('"').to_string());
    (lang, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_for_search_come_from_the_statements() {
        let doc = r#"@prefix dcat: <http://www.w3.org/ns/dcat#> .
@prefix dct: <http://purl.org/dc/terms/> .
<https://x.eu/ds/2> a dcat:Dataset ; dct:title "Soil"@en ;
  dcat:keyword "soil"@en, "carbon"@en ;
  dcat:theme <http://publications.europa.eu/resource/authority/data-theme/AGRI> ;
  dct:accessRights <http://publications.europa.eu/resource/authority/access-right/RESTRICTED> ;
  dcat:distribution <https://x.eu/dist/2> .
<https://x.eu/dist/2> a dcat:Distribution ; dcat:accessURL <https://x.eu/2.csv> ;
  dct:license <http://publications.europa.eu/resource/authority/licence/CC_BY_4_0> ;
  dct:format <http://publications.europa.eu/resource/authority/file-type/CSV> .
"#;
        let e = &parse(doc.as_bytes(), "text/turtle", None).unwrap()[0];
        let f = e.facts();
        assert_eq!(f.keywords, ["soil", "carbon"]);
        assert_eq!(f.themes, ["AGRI"]);
        assert_eq!(f.licences, ["cc-by-4.0"]);
        assert_eq!(f.formats, ["csv"]);
        assert_eq!(f.access_rights, "restricted");
    }

    const DOC: &str = r#"@prefix dcat: <http://www.w3.org/ns/dcat#> .
@prefix dct: <http://purl.org/dc/terms/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
<https://x.eu/ds/1> a dcat:Dataset ;
  dct:title "Bees"@en, "Μέλισσες"@el ;
  dct:description "About \"bees\""@en ;
  dct:issued "2023-03-21"^^xsd:date ;
  dct:temporal [ a dct:PeriodOfTime ; dcat:startDate "2020-01-01"^^xsd:date ] ;
  dcat:distribution <https://x.eu/dist/1> .
<https://x.eu/dist/1> a dcat:Distribution ; dcat:accessURL <https://x.eu/files/1.csv> .
<https://x.eu/agent> a <http://xmlns.com/foaf/0.1/Agent> .
"#;

    #[test]
    fn entries_keep_every_statement() {
        let e = parse(DOC.as_bytes(), "text/turtle", None).unwrap();
        assert_eq!(e.len(), 1, "only datasets, series and services");
        let d = &e[0];
        assert_eq!(d.kind, "dataset");
        assert_eq!(d.titles["el"], "Μέλισσες");
        assert_eq!(d.descriptions["en"], "About \"bees\"");
        assert_eq!(
            d.properties["http://purl.org/dc/terms/issued"],
            ["\"2023-03-21\"^^<http://www.w3.org/2001/XMLSchema#date>"]
        );
        assert!(d.properties["http://purl.org/dc/terms/temporal"][0].contains("startDate> \"2020-01-01\""));
        assert_eq!(
            d.distributions[0].properties["http://www.w3.org/ns/dcat#accessURL"],
            ["<https://x.eu/files/1.csv>"]
        );
        let again = parse(DOC.as_bytes(), "text/turtle; charset=utf-8", None).unwrap();
        assert_eq!(
            again[0].fingerprint(),
            d.fingerprint(),
            "the same document, the same fingerprint"
        );
    }

    #[test]
    fn bare_slashes_in_prefixed_names_are_read() {
        let doc = "@prefix d: <https://x.eu/d/> .\n@prefix dcat: <http://www.w3.org/ns/dcat#> .\n\
                   # a comment / with a slash\n\
                   d:set/2023 a dcat:Dataset ; <http://purl.org/dc/terms/title> \"a/b <c> # d\"@en ;\n\
                   dcat:distribution d:set/2023/csv .\n";
        let e = parse(doc.as_bytes(), "text/turtle", None).unwrap();
        assert_eq!(e[0].identifier, "https://x.eu/d/set/2023");
        assert_eq!(e[0].titles["en"], "a/b <c> # d", "strings untouched");
        assert_eq!(e[0].distributions[0].identifier, "https://x.eu/d/set/2023/csv");
    }

    #[test]
    fn bad_documents_say_what_is_wrong() {
        assert!(matches!(
            parse(b"<a> <b> .", "text/turtle", None),
            Err(HarvestError::Malformed { .. })
        ));
        assert!(matches!(parse(b"x", "text/csv", None), Err(HarvestError::Syntax(_))));
        assert_eq!(
            parse(b"<a:x> <b:y> <c:z> .", "text/turtle", None),
            Err(HarvestError::Empty)
        );
        assert!(matches!(
            parse(b"<rdf:RDF", "application/rdf+xml", None),
            Err(HarvestError::Malformed { .. })
        ));
        assert!(matches!(
            parse(b"{\"@id\": ", "application/ld+json", None),
            Err(HarvestError::Malformed { .. })
        ));
    }
}
