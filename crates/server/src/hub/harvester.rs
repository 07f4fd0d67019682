//! Re-harvesting the catalogues the site names (`--harvest NAME=URL`) on a schedule: each
//! source's document is fetched, read and stored as one harvest (new, changed, unchanged,
//! withdrawn), and the last outcome of each source is kept for the API to show.

use crate::AppState;
use serde::Serialize;
use std::time::Duration;

/// A source's last harvest.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct SourceState {
    pub name: String,
    pub url: String,
    pub last_harvest_at: Option<String>,
    /// What the last harvest found, or why it failed.
    pub last_report: Option<store::HarvestReport>,
    pub last_error: Option<String>,
}

/// What a fetch answered: the document and its media type.
fn fetch(url: &str) -> Result<(Vec<u8>, String), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .get(url)
        .header(
            "Accept",
            "text/turtle, application/rdf+xml;q=0.9, application/ld+json;q=0.8",
        )
        .call()
        .map_err(|e| format!("cannot fetch {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url} answered HTTP {}", resp.status()));
    }
    let declared = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // Servers often say text/plain or octet-stream: the file's extension tells then.
    let media = if hub::harvest::syntax(&declared).is_ok() {
        declared
    } else if url.ends_with(".rdf") || url.ends_with(".xml") {
        "application/rdf+xml".into()
    } else if url.ends_with(".jsonld") || url.ends_with(".json") {
        "application/ld+json".into()
    } else {
        "text/turtle".into()
    };
    let body = resp
        .body_mut()
        .with_config()
        .limit(256 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| format!("reading {url}: {e}"))?;
    Ok((body, media))
}

/// Harvests one source now.
pub async fn harvest_source(state: &AppState, name: &str, url: &str) -> Result<store::HarvestReport, String> {
    let u = url.to_string();
    let (body, media) = tokio::task::spawn_blocking(move || fetch(&u))
        .await
        .map_err(|e| e.to_string())??;
    let entries = hub::harvest::parse(&body, &media, Some(url)).map_err(|e| e.to_string())?;
    let report = state
        .store
        .harvest(name, &entries, crate::accounting::unix_now() as i64)
        .await
        .map_err(|e| e.to_string())?;
    super::index::refresh_external(state).await;
    Ok(report)
}

/// Runs until the process ends: every source at start, then every `every`.
pub fn start(state: AppState) {
    if state.config.harvest_sources.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.config.harvest_every);
        loop {
            tick.tick().await;
            for (name, url) in state.config.harvest_sources.clone() {
                let result = harvest_source(&state, &name, &url).await;
                let now = crate::api::rfc3339(crate::accounting::unix_now() as i64);
                match &result {
                    Ok(r) => tracing::info!(
                        source = name,
                        new = r.new.len(),
                        changed = r.changed.len(),
                        withdrawn = r.withdrawn.len(),
                        "harvested"
                    ),
                    Err(e) => tracing::warn!(source = name, error = %e, "harvest failed"),
                }
                let mut sources = state.harvests.lock().unwrap_or_else(|e| e.into_inner());
                let s = sources.entry(name.clone()).or_insert_with(|| SourceState {
                    name: name.clone(),
                    url: url.clone(),
                    ..SourceState::default()
                });
                s.last_harvest_at = Some(now);
                match result {
                    Ok(r) => {
                        s.last_report = Some(r);
                        s.last_error = None;
                    }
                    Err(e) => s.last_error = Some(e),
                }
            }
        }
    });
}
