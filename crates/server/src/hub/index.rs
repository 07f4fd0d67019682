//! The catalogue's search index beside the store: built from it at start, and brought up
//! to date for one repository whenever it is created, committed to or described. It holds
//! what a search answers with, so that a search asks nothing of the database. Non-public
//! repositories are not in it.

use crate::AppState;
use hub::AccessRights;
use hub::catalogue::Metadata;
use hub::search::{Doc, Index};
use serde::Serialize;
use std::collections::HashMap;
use store::{Org, Repo, Store, StoreError};

/// An entry as the catalogue shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct EntryView {
    pub kind: String,
    /// `namespace/name`, as the Hugging Face client names it.
    pub repo_id: String,
    pub access_rights: String,
    pub publisher: String,
    pub metadata: Metadata,
    /// File formats at the head of `main` (by extension).
    pub formats: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The factory job whose token last committed to it (provenance); on an entry's own
    /// view only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub produced_by_job: Option<String>,
    /// For an entry harvested from another catalogue: the source's name (`repo_id` is
    /// then the entry's IRI there, and `kind` may also be `dataset-series` or
    /// `data-service`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub harvested_from: Option<String>,
}

/// The index and the entries it finds.
#[derive(Debug, Default)]
pub struct Catalogue {
    pub index: Index,
    pub views: HashMap<String, EntryView>,
}

pub fn key(repo: &Repo) -> String {
    format!("{}:{}", repo.kind.as_str(), repo.repo_id())
}

/// The formats of a repository's files: extensions, lower case, the repository's own
/// files (`.gitattributes`, the README) aside.
fn formats(paths: &[String]) -> Vec<String> {
    let mut out: Vec<String> = paths
        .iter()
        .filter(|p| !matches!(p.as_str(), ".gitattributes" | "README.md"))
        .filter_map(|p| p.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()))
        .filter(|ext| !ext.contains('/') && ext.len() <= 10)
        .collect();
    out.sort();
    out.dedup();
    out
}

fn entry(repo: &Repo, metadata: Metadata, org: &Org, paths: &[String]) -> (Doc, EntryView) {
    let formats = formats(paths);
    let mut facets: Vec<(&'static str, String)> = vec![
        ("kind", repo.kind.as_str().to_string()),
        ("org_type", org.org_type.as_str().to_string()),
        ("access_rights", repo.access_rights.as_str().to_string()),
    ];
    facets.extend(metadata.themes.iter().map(|t| ("theme", t.clone())));
    facets.extend(metadata.licence.iter().map(|l| ("licence", l.clone())));
    facets.extend(metadata.sector.iter().map(|s| ("sector", s.clone())));
    facets.extend(formats.iter().map(|f| ("format", f.clone())));
    let doc = Doc {
        key: key(repo),
        titles: metadata.titles.values().cloned().collect(),
        descriptions: metadata.descriptions.values().cloned().collect(),
        keywords: metadata.keywords.clone(),
        facets,
    };
    let view = EntryView {
        kind: repo.kind.as_str().into(),
        repo_id: repo.repo_id(),
        access_rights: repo.access_rights.as_str().into(),
        publisher: org.name.clone(),
        metadata,
        formats,
        created_at: crate::api::rfc3339(repo.created_at),
        updated_at: crate::api::rfc3339(repo.updated_at),
        produced_by_job: None,
        harvested_from: None,
    };
    (doc, view)
}

/// The key of harvested entries in the index.
const EXTERNAL: &str = "external:";

/// A harvested entry as the catalogue shows and searches it.
fn external_entry(e: &store::StoredExternal) -> (Doc, EntryView) {
    let facts = e.entry.facts();
    let metadata = Metadata {
        titles: e.entry.titles.clone(),
        descriptions: e.entry.descriptions.clone(),
        keywords: facts.keywords.clone(),
        themes: facts.themes.clone(),
        licence: facts.licences.first().cloned(),
        ..Metadata::default()
    };
    let mut facets: Vec<(&'static str, String)> = vec![
        ("kind", e.entry.kind.clone()),
        ("access_rights", facts.access_rights.clone()),
    ];
    facets.extend(facts.themes.iter().map(|t| ("theme", t.clone())));
    facets.extend(facts.licences.iter().map(|l| ("licence", l.clone())));
    facets.extend(facts.formats.iter().map(|f| ("format", f.clone())));
    let doc = Doc {
        // The same entry may come from several sources (a catalogue and its aggregator).
        key: format!("{EXTERNAL}{}:{}", e.source, e.entry.identifier),
        titles: metadata.titles.values().cloned().collect(),
        descriptions: metadata.descriptions.values().cloned().collect(),
        keywords: metadata.keywords.clone(),
        facets,
    };
    let view = EntryView {
        kind: e.entry.kind.clone(),
        repo_id: e.entry.identifier.clone(),
        access_rights: facts.access_rights,
        publisher: e.source.clone(),
        metadata,
        formats: facts.formats,
        created_at: crate::api::rfc3339(e.first_seen_at),
        updated_at: crate::api::rfc3339(e.changed_at),
        produced_by_job: None,
        harvested_from: Some(e.source.clone()),
    };
    (doc, view)
}

/// Puts the harvested entries in the index again as the store has them (after a harvest:
/// new and changed ones in, withdrawn ones out).
pub async fn refresh_external(state: &AppState) {
    let entries = match state.store.external_entries().await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "updating the search index with harvested entries");
            return;
        }
    };
    let mut c = state.catalogue.write().unwrap_or_else(|e| e.into_inner());
    let old: Vec<String> = c.views.keys().filter(|k| k.starts_with(EXTERNAL)).cloned().collect();
    for k in old {
        c.index.remove(&k);
        c.views.remove(&k);
    }
    for e in entries.iter().filter(|e| e.withdrawn_at.is_none()) {
        let (doc, view) = external_entry(e);
        c.views.insert(doc.key.clone(), view);
        c.index.upsert(doc);
    }
}

async fn paths_of(store: &Store, repo: &Repo) -> Result<Vec<String>, StoreError> {
    Ok(match store.resolve_revision(&repo.id, "main").await? {
        Some(head) => store.repo_tree(&repo.id, &head).await?.into_keys().collect(),
        None => Vec::new(),
    })
}

/// The whole index, from the store.
pub async fn load(store: &Store) -> Result<Catalogue, StoreError> {
    let orgs: HashMap<String, Org> = store
        .list_orgs()
        .await?
        .into_iter()
        .map(|o| (o.id.clone(), o))
        .collect();
    let mut c = Catalogue::default();
    for (repo, metadata) in store.catalogue().await? {
        if repo.access_rights == AccessRights::NonPublic {
            continue;
        }
        let Some(org) = orgs.get(&repo.org_id) else { continue };
        let paths = paths_of(store, &repo).await?;
        let (doc, view) = entry(&repo, metadata, org, &paths);
        c.views.insert(doc.key.clone(), view);
        c.index.upsert(doc);
    }
    for e in store.external_entries().await? {
        if e.withdrawn_at.is_none() {
            let (doc, view) = external_entry(&e);
            c.views.insert(doc.key.clone(), view);
            c.index.upsert(doc);
        }
    }
    Ok(c)
}

/// Brings one repository's entry up to date (or takes it out, if it is non-public).
pub async fn refresh(state: &AppState, repo: &Repo) {
    let k = key(repo);
    if repo.access_rights == AccessRights::NonPublic {
        let mut c = state.catalogue.write().unwrap_or_else(|e| e.into_inner());
        c.index.remove(&k);
        c.views.remove(&k);
        return;
    }
    let loaded = async {
        let org = state.store.get_org(&repo.org_id).await?;
        let metadata = state.store.repo_metadata(&repo.id).await?;
        let fresh = state.store.find_repo(repo.kind, &repo.namespace, &repo.name).await?;
        let paths = paths_of(&state.store, repo).await?;
        Ok::<_, StoreError>((org, metadata, fresh.unwrap_or_else(|| repo.clone()), paths))
    }
    .await;
    match loaded {
        Ok((org, metadata, fresh, paths)) => {
            let (doc, view) = entry(&fresh, metadata, &org, &paths);
            let mut c = state.catalogue.write().unwrap_or_else(|e| e.into_inner());
            c.views.insert(doc.key.clone(), view);
            c.index.upsert(doc);
        }
        Err(e) => tracing::warn!(repo = repo.repo_id(), error = %e, "updating the search index"),
    }
}
