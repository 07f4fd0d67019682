//! Harvesting other catalogues: a DCAT-AP document (Turtle, RDF/XML or JSON-LD) posted by
//! staff becomes external entries of a named source, every statement about them kept;
//! posting the source's document again reports what is new, changed, unchanged and
//! withdrawn. The harvested entries are public.

use super::prelude::*;
use hub::harvest::External;
use store::HarvestReport;

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e(
            "post",
            "/api/v1/catalogue/harvest",
            "Harvest a DCAT-AP document of a source (staff): the body in Turtle, RDF/XML or JSON-LD \
             (by Content-Type, or `format=turtle|rdfxml|jsonld`); `base` resolves relative IRIs",
            true,
            &["source", "format", "base"],
            None,
            post(harvest),
        )
        .returns::<HarvestReport>(),
        e(
            "get",
            "/api/v1/catalogue/sources",
            "The catalogues harvested on a schedule, with their last harvest (staff)",
            true,
            &[],
            None,
            get(list_sources),
        )
        .returns::<Items<crate::hub::harvester::SourceState>>(),
        e(
            "get",
            "/api/v1/catalogue/external",
            "Entries harvested from other catalogues (withdrawn ones marked)",
            false,
            &[],
            None,
            get(list_external),
        )
        .returns::<Items<ExternalView>>(),
    ]
}

#[derive(Debug, Deserialize)]
pub(crate) struct HarvestQuery {
    source: Option<String>,
    format: Option<String>,
    base: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ExternalView {
    source: String,
    #[serde(flatten)]
    entry: External,
    first_seen_at: String,
    changed_at: String,
    harvested_at: String,
    withdrawn_at: Option<String>,
}

pub(crate) async fn harvest(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Params(q): Params<HarvestQuery>,
    body: axum::body::Bytes,
) -> ApiResult {
    if !caller.manages_allocations() {
        return Err(ApiError::forbidden("platform staff harvest other catalogues"));
    }
    let source = q
        .source
        .ok_or_else(|| ApiError::field("source", "name the source harvested (`source=...`)"))?;
    short_name("source", &source)?;
    let media_type = match q.format.as_deref() {
        Some("turtle" | "ttl") => "text/turtle".to_string(),
        Some("rdfxml" | "xml") => "application/rdf+xml".to_string(),
        Some("jsonld" | "json-ld") => "application/ld+json".to_string(),
        Some(other) => {
            return Err(ApiError::field(
                "format",
                format!("`turtle`, `rdfxml` or `jsonld`, not `{other}`"),
            ));
        }
        None => headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
    };
    let entries = hub::harvest::parse(&body, &media_type, q.base.as_deref()).map_err(|e| match e {
        hub::harvest::HarvestError::Syntax(_) => {
            ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-syntax", e.to_string())
        }
        hub::harvest::HarvestError::Malformed { .. } => {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed-rdf", e.to_string())
        }
        hub::harvest::HarvestError::Empty => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "nothing-to-harvest", e.to_string())
        }
    })?;
    let report = state.store.harvest(&source, &entries, unix_now() as i64).await?;
    crate::hub::index::refresh_external(&state).await;
    ok(report)
}

pub(crate) async fn list_sources(State(state): State<AppState>, caller: Caller) -> ApiResult {
    if !caller.manages_allocations() {
        return Err(ApiError::forbidden("platform staff see the harvested sources"));
    }
    let known = state.harvests.lock().unwrap_or_else(|e| e.into_inner()).clone();
    ok(items(
        state
            .config
            .harvest_sources
            .iter()
            .map(|(name, url)| {
                known
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| crate::hub::harvester::SourceState {
                        name: name.clone(),
                        url: url.clone(),
                        ..Default::default()
                    })
            })
            .collect(),
    ))
}

pub(crate) async fn list_external(State(state): State<AppState>) -> ApiResult {
    ok(items(
        state
            .store
            .external_entries()
            .await?
            .into_iter()
            .map(|s| ExternalView {
                source: s.source,
                entry: s.entry,
                first_seen_at: rfc3339(s.first_seen_at),
                changed_at: rfc3339(s.changed_at),
                harvested_at: rfc3339(s.harvested_at),
                withdrawn_at: s.withdrawn_at.map(rfc3339),
            })
            .collect(),
    ))
}
