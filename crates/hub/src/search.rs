//! Full-text search with facets over the catalogue, in memory: an inverted index of the
//! entries' words (titles, descriptions, keywords, names; accents folded) with each word's
//! weight in an entry, and the entries' facet values. A query intersects the postings of
//! its words (the last one also as a prefix, for search as you type), filters by facets,
//! ranks by weight, and counts the facet values over everything it matched. The store is
//! the source of truth; the server keeps this index up to date beside it.

use std::collections::{BTreeMap, HashMap};

/// What entries can be narrowed down by.
pub const FACETS: [&str; 7] = [
    "kind",
    "theme",
    "sector",
    "licence",
    "org_type",
    "access_rights",
    "format",
];

/// An entry as the index sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Doc {
    /// `dataset:namespace/name` or `model:namespace/name`.
    pub key: String,
    pub titles: Vec<String>,
    pub descriptions: Vec<String>,
    pub keywords: Vec<String>,
    /// Facet name (one of [`FACETS`]) and value; several values per facet allowed.
    pub facets: Vec<(&'static str, String)>,
}

/// An entry as kept: its key and its facet values (ids into the value table).
#[derive(Debug)]
struct Stored {
    key: String,
    facets: Vec<u32>,
}

#[derive(Debug, Default)]
pub struct Index {
    docs: Vec<Option<Stored>>,
    by_key: HashMap<String, u32>,
    /// Every facet value seen, by id: counting is then an array of counters.
    values: Vec<(&'static str, String)>,
    value_ids: HashMap<(&'static str, String), u32>,
    /// word → (entry, weight), entries ascending.
    postings: BTreeMap<String, Vec<(u32, u16)>>,
    live: usize,
}

/// A query: words, and facet values an entry must have (any of the values given for one
/// facet, every facet given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub text: String,
    pub filters: Vec<(String, Vec<String>)>,
    pub offset: usize,
    pub limit: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hits {
    /// Keys of the entries, best first.
    pub keys: Vec<String>,
    pub total: usize,
    /// Facet → value → entries matched with it.
    pub facets: BTreeMap<&'static str, BTreeMap<String, usize>>,
}

/// Lower-case words of letters and digits, accents folded ("Università" → "universita").
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        let folded = crate::fold(c);
        for f in folded.chars() {
            if f.is_alphanumeric() {
                word.extend(f.to_lowercase());
            } else if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

impl Index {
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Adds an entry, or replaces the one with the same key.
    pub fn upsert(&mut self, doc: Doc) {
        self.remove(&doc.key.clone());
        let id = self.docs.len() as u32;
        let mut weights: HashMap<String, u16> = HashMap::new();
        let mut add = |text: &str, w: u16| {
            for word in words(text) {
                let e = weights.entry(word).or_insert(0);
                *e = e.saturating_add(w);
            }
        };
        for t in &doc.titles {
            add(t, 4);
        }
        for k in &doc.keywords {
            add(k, 3);
        }
        add(&doc.key.replace([':', '/', '-', '_', '.'], " "), 2);
        for d in &doc.descriptions {
            add(d, 1);
        }
        for (word, w) in weights {
            // New entries get the highest id: postings stay sorted by pushing.
            self.postings.entry(word).or_default().push((id, w));
        }
        let mut facets: Vec<u32> = doc
            .facets
            .iter()
            .map(|(f, v)| {
                let k = (*f, v.clone());
                match self.value_ids.get(&k) {
                    Some(&id) => id,
                    None => {
                        let id = self.values.len() as u32;
                        self.values.push(k.clone());
                        self.value_ids.insert(k, id);
                        id
                    }
                }
            })
            .collect();
        facets.sort_unstable();
        facets.dedup();
        self.by_key.insert(doc.key.clone(), id);
        self.docs.push(Some(Stored { key: doc.key, facets }));
        self.live += 1;
    }

    /// Takes an entry out (its postings are skipped from now on and dropped when the index
    /// is rebuilt).
    pub fn remove(&mut self, key: &str) {
        if let Some(id) = self.by_key.remove(key) {
            self.docs[id as usize] = None;
            self.live -= 1;
        }
    }

    /// The postings of a word, or of every word it begins (merged), for the last word typed.
    fn matching(&self, word: &str, prefix: bool) -> Vec<(u32, u16)> {
        if !prefix {
            return self.postings.get(word).cloned().unwrap_or_default();
        }
        let mut lists = self
            .postings
            .range(word.to_string()..)
            .take_while(|(w, _)| w.starts_with(word))
            .peekable();
        let Some((first, only)) = lists.next() else {
            return Vec::new();
        };
        if lists.peek().is_none() {
            let double = first == word;
            return only
                .iter()
                .map(|&(d, w)| (d, if double { w.saturating_mul(2) } else { w }))
                .collect();
        }
        // Several words begin so: their weights summed per entry, in an array of counters.
        let mut merged = vec![0u16; self.docs.len()];
        for (w, list) in std::iter::once((first, only)).chain(lists) {
            // A whole word counts more than a word it begins.
            let factor = if w == word { 2 } else { 1 };
            for &(d, weight) in list {
                let e = &mut merged[d as usize];
                *e = e.saturating_add(weight.saturating_mul(factor));
            }
        }
        merged
            .into_iter()
            .enumerate()
            .filter(|(_, w)| *w > 0)
            .map(|(d, w)| (d as u32, w))
            .collect()
    }

    pub fn search(&self, q: &Query) -> Hits {
        let terms = words(&q.text);
        // Entry → score, for entries with every word.
        let mut scored: Vec<(u32, u32)> = if terms.is_empty() {
            self.docs
                .iter()
                .enumerate()
                .filter(|(_, d)| d.is_some())
                .map(|(i, _)| (i as u32, 0))
                .collect()
        } else {
            let last = terms.len() - 1;
            let mut lists: Vec<Vec<(u32, u16)>> = terms
                .iter()
                .enumerate()
                .map(|(i, t)| self.matching(t, i == last))
                .collect();
            lists.sort_by_key(Vec::len);
            let mut acc: Vec<(u32, u32)> = lists[0].iter().map(|&(d, w)| (d, u32::from(w))).collect();
            for list in &lists[1..] {
                let mut next = Vec::with_capacity(acc.len().min(list.len()));
                let mut j = 0;
                for &(d, s) in &acc {
                    while j < list.len() && list[j].0 < d {
                        j += 1;
                    }
                    if j < list.len() && list[j].0 == d {
                        next.push((d, s + u32::from(list[j].1)));
                    }
                }
                acc = next;
                if acc.is_empty() {
                    break;
                }
            }
            acc.retain(|(d, _)| self.docs[*d as usize].is_some());
            acc
        };
        // Facet filters, as sets of value ids: an entry needs one of each set.
        if !q.filters.is_empty() {
            let wanted: Vec<Vec<u32>> = q
                .filters
                .iter()
                .map(|(facet, values)| {
                    self.values
                        .iter()
                        .enumerate()
                        .filter(|(_, (f, v))| f == facet && values.iter().any(|w| w.eq_ignore_ascii_case(v)))
                        .map(|(id, _)| id as u32)
                        .collect()
                })
                .collect();
            scored.retain(|(d, _)| {
                let doc = self.docs[*d as usize].as_ref().expect("live entries only");
                wanted.iter().all(|ids| doc.facets.iter().any(|v| ids.contains(v)))
            });
        }
        let mut counts = vec![0usize; self.values.len()];
        for (d, _) in &scored {
            let doc = self.docs[*d as usize].as_ref().expect("live entries only");
            for &v in &doc.facets {
                counts[v as usize] += 1;
            }
        }
        let mut facets: BTreeMap<&'static str, BTreeMap<String, usize>> = BTreeMap::new();
        for (id, n) in counts.into_iter().enumerate().filter(|(_, n)| *n > 0) {
            let (f, v) = &self.values[id];
            facets.entry(f).or_default().insert(v.clone(), n);
        }
        let total = scored.len();
        // Best first; the newest first among equals.
        let keep = (q.offset + q.limit.max(1)).min(total);
        let by_rank = |a: &(u32, u32), b: &(u32, u32)| b.1.cmp(&a.1).then(b.0.cmp(&a.0));
        if keep < total && keep > 0 {
            scored.select_nth_unstable_by(keep - 1, by_rank);
            scored.truncate(keep);
        }
        scored.sort_unstable_by(by_rank);
        let keys = scored
            .into_iter()
            .skip(q.offset)
            .take(q.limit.max(1))
            .filter_map(|(d, _)| self.docs[d as usize].as_ref().map(|doc| doc.key.clone()))
            .collect();
        Hits { keys, total, facets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(key: &str, title: &str, description: &str, facets: &[(&'static str, &str)]) -> Doc {
        Doc {
            key: key.into(),
            titles: vec![title.into()],
            descriptions: vec![description.into()],
            keywords: vec![],
            facets: facets.iter().map(|(f, v)| (*f, v.to_string())).collect(),
        }
    }

    fn index() -> Index {
        let mut i = Index::default();
        i.upsert(doc(
            "dataset:a/steel",
            "Steel surface defects",
            "Images of steel",
            &[("theme", "TECH"), ("licence", "cc-by-4.0")],
        ));
        i.upsert(doc(
            "dataset:b/rulings",
            "Italian court rulings",
            "Sentenze della Università",
            &[("theme", "JUST")],
        ));
        i.upsert(doc(
            "model:c/arm",
            "Arm policy",
            "A policy for a steel mill robot",
            &[("theme", "TECH"), ("kind", "model")],
        ));
        i
    }

    fn q(text: &str, filters: &[(&str, &[&str])]) -> Query {
        Query {
            text: text.into(),
            filters: filters
                .iter()
                .map(|(f, v)| (f.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
            offset: 0,
            limit: 10,
        }
    }

    #[test]
    fn words_match_ranked_by_where_they_are() {
        let i = index();
        let hits = i.search(&q("steel", &[]));
        assert_eq!(hits.keys, ["dataset:a/steel", "model:c/arm"], "the title counts more");
        assert_eq!(hits.total, 2);
        assert_eq!(i.search(&q("steel robot", &[])).keys, ["model:c/arm"], "every word");
        assert_eq!(
            i.search(&q("universita", &[])).keys,
            ["dataset:b/rulings"],
            "accents folded"
        );
        assert_eq!(
            i.search(&q("rul", &[])).keys,
            ["dataset:b/rulings"],
            "the last word as a prefix"
        );
        assert!(i.search(&q("nothing here", &[])).keys.is_empty());
        assert_eq!(i.search(&q("", &[])).total, 3, "no words: everything");
    }

    #[test]
    fn facets_filter_and_are_counted_over_the_matches() {
        let i = index();
        let hits = i.search(&q("", &[("theme", &["TECH"])]));
        assert_eq!(hits.total, 2);
        assert_eq!(hits.facets["theme"]["TECH"], 2);
        assert_eq!(hits.facets["licence"]["cc-by-4.0"], 1);
        let hits = i.search(&q("", &[("theme", &["TECH", "JUST"]), ("licence", &["cc-by-4.0"])]));
        assert_eq!(hits.keys, ["dataset:a/steel"]);
        let all = i.search(&q("", &[]));
        assert_eq!(
            all.facets["theme"],
            BTreeMap::from([("JUST".into(), 1), ("TECH".into(), 2)])
        );
    }

    #[test]
    fn replaced_and_removed_entries_are_found_as_they_are_now() {
        let mut i = index();
        i.upsert(doc("dataset:a/steel", "Aluminium alloys", "", &[("theme", "ECON")]));
        assert!(i.search(&q("surface", &[])).keys.is_empty(), "the old title is gone");
        assert_eq!(i.search(&q("aluminium", &[])).keys, ["dataset:a/steel"]);
        assert_eq!(i.search(&q("", &[("theme", &["TECH"])])).keys, ["model:c/arm"]);
        assert_eq!(i.len(), 3);
        i.remove("model:c/arm");
        assert!(i.search(&q("robot", &[])).keys.is_empty());
        assert_eq!(i.search(&q("", &[])).total, 2);
    }

    #[test]
    fn pages_follow_the_ranking() {
        let mut i = Index::default();
        for n in 0..25 {
            i.upsert(doc(&format!("dataset:x/d{n}"), "common", "", &[]));
        }
        let mut seen = Vec::new();
        for page in 0..3 {
            let hits = i.search(&Query {
                text: "common".into(),
                filters: vec![],
                offset: page * 10,
                limit: 10,
            });
            seen.extend(hits.keys);
        }
        assert_eq!(seen.len(), 25);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 25, "no entry twice");
    }
}
