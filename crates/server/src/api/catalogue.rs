//! The public catalogue of datasets and models: search (full text and facets) over its
//! entries (public and restricted ones; a restricted entry is listed, its files need
//! access), each repository's catalogue metadata (set by the owning organisation's
//! members), and the whole catalogue as DCAT-AP 3.0.0 in Turtle or JSON-LD.

use super::prelude::*;
use hub::catalogue::{Catalogue, Entry, Metadata};
use hub::{AccessRights, RepoKind};

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e(
            "get",
            "/api/v1/catalogue",
            "Search the catalogue (public and restricted datasets and models): words in `q`, facets \
             (kind, theme, sector, licence, org_type, access_rights, format; a comma means any of), \
             with the counts of every facet's values over the matches",
            false,
            &[
                "q",
                "kind",
                "theme",
                "sector",
                "licence",
                "org_type",
                "access_rights",
                "format",
                "limit",
                "cursor",
            ],
            None,
            get(search),
        )
        .returns::<SearchView>(),
        e(
            "get",
            "/api/v1/catalogue/dcat",
            "The catalogue as DCAT-AP 3.0.0: Turtle (format=ttl, the default) or JSON-LD (format=jsonld)",
            false,
            &["format"],
            None,
            get(dcat),
        )
        .returns_text(),
        e(
            "get",
            "/api/v1/catalogue/{kind}/{namespace}/{name}",
            "One entry: a dataset or a model (kind `dataset` or `model`)",
            false,
            &[],
            None,
            get(show_entry),
        )
        .returns::<EntryView>(),
        e(
            "put",
            "/api/v1/catalogue/{kind}/{namespace}/{name}",
            "Sets an entry's catalogue metadata (members of the owning organisation)",
            true,
            &[],
            Some(schema::<Metadata>),
            axum::routing::put(set_metadata),
        )
        .returns::<EntryView>(),
    ]
}

pub(crate) use crate::hub::index::EntryView;

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SearchView {
    items: Vec<EntryView>,
    /// Entries that match, over every page.
    total: usize,
    /// The next page (null on the last).
    next_cursor: Option<String>,
    /// Facet → value → matching entries with it.
    facets: std::collections::BTreeMap<String, std::collections::BTreeMap<String, usize>>,
}

/// Entries everybody may see.
fn listed(r: &store::Repo) -> bool {
    r.access_rights != AccessRights::NonPublic
}

async fn view(state: &AppState, r: store::Repo, metadata: Metadata) -> Result<EntryView, ApiError> {
    let org = state.store.get_org(&r.org_id).await?;
    let formats = state
        .catalogue
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .views
        .get(&crate::hub::index::key(&r))
        .map(|v| v.formats.clone())
        .unwrap_or_default();
    Ok(EntryView {
        kind: r.kind.as_str().into(),
        repo_id: r.repo_id(),
        access_rights: r.access_rights.as_str().into(),
        publisher: org.name,
        metadata,
        formats,
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
        produced_by_job: state.store.repo_provenance(&r.id).await?,
        harvested_from: None,
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct SearchQuery {
    q: Option<String>,
    kind: Option<String>,
    theme: Option<String>,
    sector: Option<String>,
    licence: Option<String>,
    org_type: Option<String>,
    access_rights: Option<String>,
    format: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

pub(crate) async fn search(State(state): State<AppState>, Params(q): Params<SearchQuery>) -> ApiResult {
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field("limit", "from 1 to 100 entries a page"));
    }
    let offset = match &q.cursor {
        Some(c) => c
            .parse::<usize>()
            .map_err(|_| ApiError::field("cursor", "pass the `next_cursor` of the previous page"))?,
        None => 0,
    };
    let text = q.q.clone().unwrap_or_default();
    if text.len() > 500 {
        return Err(ApiError::field("q", "at most 500 characters"));
    }
    let filters: Vec<(String, Vec<String>)> = [
        ("kind", &q.kind),
        ("theme", &q.theme),
        ("sector", &q.sector),
        ("licence", &q.licence),
        ("org_type", &q.org_type),
        ("access_rights", &q.access_rights),
        ("format", &q.format),
    ]
    .into_iter()
    .filter_map(|(f, v)| {
        v.as_ref()
            .map(|v| (f.to_string(), v.split(',').map(|s| s.trim().to_string()).collect()))
    })
    .collect();
    let query = hub::search::Query {
        text,
        filters,
        offset,
        limit,
    };
    let catalogue = state.catalogue.read().unwrap_or_else(|e| e.into_inner());
    let hits = catalogue.index.search(&query);
    let items: Vec<EntryView> = hits
        .keys
        .iter()
        .filter_map(|k| catalogue.views.get(k).cloned())
        .collect();
    let next_cursor = (offset + items.len() < hits.total).then(|| (offset + items.len()).to_string());
    let facets = hits
        .facets
        .into_iter()
        .map(|(f, values)| (f.to_string(), values))
        .collect();
    ok(SearchView {
        items,
        total: hits.total,
        next_cursor,
        facets,
    })
}

fn kind(k: &str) -> Result<RepoKind, ApiError> {
    match k {
        "dataset" => Ok(RepoKind::Dataset),
        "model" => Ok(RepoKind::Model),
        other => Err(ApiError::field("kind", format!("`dataset` or `model`, not `{other}`"))),
    }
}

/// An entry the caller may see: listed ones for anybody, non-public ones for the owner's
/// members and platform staff.
async fn visible_entry(
    state: &AppState,
    caller: Option<&Caller>,
    (k, namespace, name): (&str, &str, &str),
) -> Result<store::Repo, ApiError> {
    let id = format!("{namespace}/{name}");
    let repo = state
        .store
        .find_repo(kind(k)?, namespace, name)
        .await?
        .ok_or_else(|| ApiError::not_found("catalogue entry", &id))?;
    if repo_access(caller, &repo) == RepoAccess::None {
        return Err(ApiError::not_found("catalogue entry", &id));
    }
    Ok(repo)
}

pub(crate) async fn show_entry(
    State(state): State<AppState>,
    crate::hub::MaybeCaller(caller): crate::hub::MaybeCaller,
    Path((k, namespace, name)): Path<(String, String, String)>,
) -> ApiResult {
    let repo = visible_entry(&state, caller.as_ref(), (&k, &namespace, &name)).await?;
    let metadata = state.store.repo_metadata(&repo.id).await?;
    ok(view(&state, repo, metadata).await?)
}

pub(crate) async fn set_metadata(
    State(state): State<AppState>,
    caller: Caller,
    Path((k, namespace, name)): Path<(String, String, String)>,
    Body(metadata): Body<Metadata>,
) -> ApiResult {
    let repo = visible_entry(&state, Some(&caller), (&k, &namespace, &name)).await?;
    if repo_access(Some(&caller), &repo) != RepoAccess::Write {
        return Err(ApiError::forbidden(
            "members of the organisation that owns it describe an entry",
        ));
    }
    if let Some((field, problem)) = metadata.problems().into_iter().next() {
        return Err(ApiError::field(&field, problem));
    }
    state
        .store
        .set_repo_metadata(&repo.id, &metadata, unix_now() as i64)
        .await?;
    let repo = visible_entry(&state, Some(&caller), (&k, &namespace, &name)).await?;
    crate::hub::index::refresh(&state, &repo).await;
    ok(view(&state, repo, metadata).await?)
}

#[derive(Debug, Deserialize)]
pub(crate) struct DcatQuery {
    format: Option<String>,
}

pub(crate) async fn dcat(State(state): State<AppState>, headers: HeaderMap, Params(q): Params<DcatQuery>) -> ApiResult {
    let base = crate::hub::base_url(&headers);
    let orgs: std::collections::HashMap<String, store::Org> = state
        .store
        .list_orgs()
        .await?
        .into_iter()
        .map(|o| (o.id.clone(), o))
        .collect();
    let mut entries = Vec::new();
    for (r, metadata) in state.store.catalogue().await? {
        if !listed(&r) {
            continue;
        }
        let Some(org) = orgs.get(&r.org_id).cloned() else {
            continue;
        };
        let files = match state.store.resolve_revision(&r.id, "main").await? {
            Some(head) => state
                .store
                .repo_tree(&r.id, &head)
                .await?
                .into_iter()
                .filter(|(p, _)| p != ".gitattributes")
                .map(|(p, f)| (p, f.size, f.sha256))
                .collect(),
            None => Vec::new(),
        };
        entries.push(Entry {
            kind: r.kind,
            repo_id: r.repo_id(),
            access_rights: r.access_rights,
            publisher_name: org.name,
            publisher_id: org.id,
            issued: rfc3339(r.created_at),
            modified: rfc3339(r.updated_at),
            metadata,
            files,
            produced_by_job: state.store.repo_provenance(&r.id).await?,
        });
    }
    let catalogue = Catalogue {
        base,
        title: "aifactory catalogue".into(),
        description: "Datasets and models of the AI Factory, with their access rights.".into(),
        publisher: "aifactory".into(),
    };
    let graph = hub::catalogue::graph(&catalogue, &entries);
    let (content_type, body) = match q.format.as_deref() {
        None | Some("ttl" | "turtle") => ("text/turtle; charset=utf-8", graph.to_turtle()),
        Some("jsonld" | "json-ld") => ("application/ld+json", graph.to_jsonld().to_string()),
        Some(other) => {
            return Err(ApiError::field("format", format!("`ttl` or `jsonld`, not `{other}`")));
        }
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}
