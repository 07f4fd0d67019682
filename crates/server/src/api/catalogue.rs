//! The public catalogue of datasets and models: entries (public and restricted ones; a
//! restricted entry is listed, its files need access), each repository's catalogue
//! metadata (set by the owning organisation's members), and the whole catalogue as
//! DCAT-AP 3.0.0 in Turtle or JSON-LD.

use super::prelude::*;
use hub::catalogue::{Catalogue, Entry, Metadata};
use hub::{AccessRights, RepoKind};

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e(
            "get",
            "/api/v1/catalogue",
            "The catalogue's entries (public and restricted datasets and models) with their metadata",
            false,
            &[],
            None,
            get(list_entries),
        )
        .returns::<Items<EntryView>>(),
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

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct EntryView {
    kind: String,
    /// `namespace/name`, as the Hugging Face client names it.
    repo_id: String,
    access_rights: String,
    publisher: String,
    metadata: Metadata,
    created_at: String,
    updated_at: String,
}

/// Entries everybody may see.
fn listed(r: &store::Repo) -> bool {
    r.access_rights != AccessRights::NonPublic
}

async fn view(state: &AppState, r: store::Repo, metadata: Metadata) -> Result<EntryView, ApiError> {
    let org = state.store.get_org(&r.org_id).await?;
    Ok(EntryView {
        kind: r.kind.as_str().into(),
        repo_id: r.repo_id(),
        access_rights: r.access_rights.as_str().into(),
        publisher: org.name,
        metadata,
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
    })
}

pub(crate) async fn list_entries(State(state): State<AppState>) -> ApiResult {
    let mut out = Vec::new();
    for (r, m) in state.store.catalogue().await? {
        if listed(&r) {
            out.push(view(&state, r, m).await?);
        }
    }
    ok(items(out))
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
    ok(view(&state, repo, metadata).await?)
}

#[derive(Debug, Deserialize)]
pub(crate) struct DcatQuery {
    format: Option<String>,
}

pub(crate) async fn dcat(State(state): State<AppState>, headers: HeaderMap, Params(q): Params<DcatQuery>) -> ApiResult {
    let base = crate::hub::base_url(&headers);
    let mut entries = Vec::new();
    for (r, metadata) in state.store.catalogue().await? {
        if !listed(&r) {
            continue;
        }
        let org = state.store.get_org(&r.org_id).await?;
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
