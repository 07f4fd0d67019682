//! Calls for proposals: anyone may read them (an applicant looks before registering);
//! programme managers open and close them.

use super::prelude::*;
use access::call::{CallSpec, Mode};

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e(
            "post",
            "/api/v1/calls",
            "Open a call (programme manager): a mode's defaults at a site, or a full spec",
            true,
            &[],
            Some(schema::<CreateCall>),
            post(create_call),
        )
        .returns::<CallView>(),
        e(
            "get",
            "/api/v1/calls",
            "Calls, open ones first, with what their budgets have left (public)",
            false,
            &[],
            None,
            get(list_calls),
        )
        .returns::<Items<CallView>>(),
        e(
            "get",
            "/api/v1/calls/{id}",
            "One call by id or name, with its form, rules and budget (public)",
            false,
            &[],
            None,
            get(get_call),
        )
        .returns::<CallView>(),
        e(
            "post",
            "/api/v1/calls/{id}/close",
            "Close a call to new submissions (programme manager)",
            true,
            &[],
            None,
            post(close_call),
        )
        .returns::<CallView>(),
    ]
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct BudgetView {
    site: String,
    gpu_hours: i64,
    awarded_gpu_hours: i64,
    left_gpu_hours: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct CallView {
    id: String,
    name: String,
    title: String,
    description: String,
    mode: Mode,
    /// `open` or `closed` as set; `accepting` says whether it takes submissions now.
    state: store::CallState,
    accepting: bool,
    opens_at: String,
    closes_at: Option<String>,
    /// Free of charge for confirmed SMEs and start-ups; this price per GPU-hour otherwise.
    price_cents_per_gpu_hour: i64,
    decision_working_days: u32,
    access_working_days: u32,
    budgets: Vec<BudgetView>,
    spec: CallSpec,
}

pub(crate) async fn call_view(state: &AppState, c: &store::Call) -> Result<CallView, ApiError> {
    let budgets = state.store.call_budgets(&c.id).await?;
    Ok(CallView {
        id: c.id.clone(),
        name: c.name.clone(),
        title: c.title.clone(),
        description: c.description.clone(),
        mode: c.spec.mode,
        state: c.state,
        accepting: c.accepts(unix_now() as i64),
        opens_at: rfc3339(c.opens_at),
        closes_at: c.closes_at.map(rfc3339),
        price_cents_per_gpu_hour: c.spec.price_cents_per_gpu_hour,
        decision_working_days: c.spec.decision_working_days,
        access_working_days: c.spec.access_working_days,
        budgets: budgets
            .iter()
            .map(|b| BudgetView {
                site: b.site.clone(),
                gpu_hours: b.budget_gpu_seconds / 3600,
                awarded_gpu_hours: b.awarded_gpu_seconds / 3600,
                left_gpu_hours: (b.budget_gpu_seconds - b.awarded_gpu_seconds) / 3600,
            })
            .collect(),
        spec: c.spec.clone(),
    })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateCall {
    /// Short name used in commands and project names (`playground-2026`).
    name: String,
    title: String,
    #[serde(default)]
    description: String,
    /// With `site` and `gpu_hours`: the mode's defaults.
    mode: Option<Mode>,
    site: Option<String>,
    gpu_hours: Option<i64>,
    /// Everything, instead of a mode's defaults.
    spec: Option<CallSpec>,
    /// Unix seconds; now when absent.
    opens_at: Option<i64>,
    closes_at: Option<i64>,
}

pub(crate) async fn create_call(State(state): State<AppState>, caller: Caller, Body(b): Body<CreateCall>) -> ApiResult {
    programme_manager(&caller, "open calls")?;
    non_empty("title", &b.title, 200)?;
    short_name("name", &b.name)?;
    let spec = match (b.spec, b.mode) {
        (Some(spec), _) => spec,
        (None, Some(mode)) => {
            let site = b
                .site
                .ok_or_else(|| ApiError::field("site", "a call by mode names its `site`"))?;
            let country = state
                .cluster
                .site_by_name(&site)
                .map(|i| state.cluster.sites[usize::from(i)].country.clone())
                .ok_or_else(|| ApiError::field("site", format!("no site `{site}` in this factory")))?;
            let hours = b
                .gpu_hours
                .ok_or_else(|| ApiError::field("gpu_hours", "a call by mode gives `gpu_hours`"))?;
            CallSpec::defaults(mode, &site, &country, hours)
        }
        (None, None) => {
            return Err(ApiError::field(
                "mode",
                "give a `mode` (with `site` and `gpu_hours`) or a `spec`",
            ));
        }
    };
    spec.check(|s| state.cluster.site_by_name(s).is_some())
        .map_err(|(field, message)| ApiError::field(&format!("spec.{field}"), message))?;
    let call = state
        .store
        .create_call(&store::NewCall {
            name: b.name,
            title: b.title.trim().to_string(),
            description: b.description,
            spec,
            opens_at: b.opens_at.unwrap_or_else(|| unix_now() as i64),
            closes_at: b.closes_at,
        })
        .await?;
    Ok(created(call_view(&state, &call).await?))
}

pub(crate) async fn list_calls(State(state): State<AppState>) -> ApiResult {
    let now = unix_now() as i64;
    let mut calls = state.store.list_calls().await?;
    calls.sort_by_key(|c| (!c.accepts(now), c.id.clone()));
    let mut out = Vec::new();
    for c in &calls {
        out.push(call_view(&state, c).await?);
    }
    ok(items(out))
}

pub(crate) async fn get_call(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let call = state.store.get_call(&id).await?;
    ok(call_view(&state, &call).await?)
}

pub(crate) async fn close_call(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    programme_manager(&caller, "close calls")?;
    let call = state.store.get_call(&id).await?;
    state.store.set_call_state(&call.id, store::CallState::Closed).await?;
    let call = state.store.get_call(&call.id).await?;
    ok(call_view(&state, &call).await?)
}
