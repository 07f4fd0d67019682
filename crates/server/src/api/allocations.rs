//! Allocations of GPU-hours: grant, top up, extend, suspend, resume, Slurm account.

use super::prelude::*;

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e(
            "post",
            "/api/v1/allocations",
            "Grant GPU-hours to a project at a site (platform admin, site operator)",
            true,
            &[],
            Some(schema::<CreateAllocation>),
            post(create_allocation),
        )
        .returns::<AllocationView>(),
        e(
            "get",
            "/api/v1/allocations",
            "A project's allocations with their balances",
            true,
            &["project"],
            None,
            get(list_allocations),
        )
        .returns::<Items<AllocationView>>(),
        e(
            "get",
            "/api/v1/allocations/{id}",
            "One allocation with its balance",
            true,
            &[],
            None,
            get(get_allocation),
        )
        .returns::<AllocationView>(),
        e(
            "post",
            "/api/v1/allocations/{id}/top-up",
            "Add GPU-hours",
            true,
            &[],
            Some(schema::<TopUp>),
            post(top_up),
        )
        .returns::<AllocationView>(),
        e(
            "post",
            "/api/v1/allocations/{id}/suspend",
            "Suspend an allocation",
            true,
            &[],
            None,
            post(suspend),
        )
        .returns::<AllocationView>(),
        e(
            "post",
            "/api/v1/allocations/{id}/resume",
            "Resume an allocation",
            true,
            &[],
            None,
            post(resume),
        )
        .returns::<AllocationView>(),
        e(
            "post",
            "/api/v1/allocations/{id}/extend",
            "Move an allocation's end (platform admin, site operator)",
            true,
            &[],
            Some(schema::<Extend>),
            post(extend),
        )
        .returns::<AllocationView>(),
        e(
            "put",
            "/api/v1/allocations/{id}/slurm",
            "Set the Slurm account and QoS the allocation's jobs are charged to (platform admin, site operator)",
            true,
            &[],
            Some(schema::<SetSlurmCharge>),
            axum::routing::put(set_slurm_charge),
        )
        .returns::<AllocationView>(),
    ]
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct AllocationView {
    id: String,
    project: String,
    site: String,
    class: PriorityClass,
    state: AllocationState,
    valid_from: String,
    valid_until: String,
    created_at: String,
    /// The Slurm account and QoS its jobs are charged to (else the server's defaults).
    slurm_account: Option<String>,
    slurm_qos: Option<String>,
    /// The price its GPU-hours are charged at when it is not the site's (0: free).
    price_cents_per_gpu_hour: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gpu_seconds: Option<BalanceView>,
}

/// GPU-seconds of an allocation: available = granted - reserved - used.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct BalanceView {
    granted: i64,
    reserved: i64,
    used: i64,
    available: i64,
}

pub(crate) fn allocation_view(a: &Allocation, balance: Option<store::Balance>) -> AllocationView {
    AllocationView {
        id: a.id.clone(),
        project: a.project_id.clone(),
        site: a.site.clone(),
        class: a.class,
        state: a.state,
        valid_from: rfc3339(a.valid_from),
        valid_until: rfc3339(a.valid_until),
        created_at: rfc3339(a.created_at),
        slurm_account: a.slurm.account.clone(),
        slurm_qos: a.slurm.qos.clone(),
        price_cents_per_gpu_hour: a.price_cents_per_gpu_hour,
        gpu_seconds: balance.map(|b| BalanceView {
            granted: b.granted,
            reserved: b.reserved,
            used: b.used,
            available: b.available,
        }),
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateAllocation {
    project: String,
    site: String,
    gpu_hours: i64,
    class: Option<PriorityClass>,
    valid_from: Option<i64>,
    valid_until: i64,
    slurm_account: Option<String>,
    slurm_qos: Option<String>,
    /// Charge this per GPU-hour instead of the site's price (0: free of charge).
    price_cents_per_gpu_hour: Option<i64>,
}

pub(crate) async fn create_allocation(
    State(state): State<AppState>,
    caller: Caller,
    Body(b): Body<CreateAllocation>,
) -> ApiResult {
    operator(&caller, "grant allocations")?;
    if state.cluster.site_by_name(&b.site).is_none() {
        return Err(ApiError::field("site", format!("no site `{}` in this factory", b.site)));
    }
    if !(1..=100_000_000).contains(&b.gpu_hours) {
        return Err(ApiError::field(
            "gpu_hours",
            "`gpu_hours` must be between 1 and 100,000,000",
        ));
    }
    state.store.get_project(&b.project).await?;
    let alloc = state
        .store
        .create_allocation(&NewAllocation {
            project_id: b.project,
            site: b.site,
            class: b.class.unwrap_or(PriorityClass::Standard),
            gpu_seconds: b.gpu_hours * 3600,
            valid_from: b.valid_from.unwrap_or_else(|| unix_now() as i64),
            valid_until: b.valid_until,
            slurm: slurm_charge(("slurm_account", b.slurm_account), ("slurm_qos", b.slurm_qos))?,
            price_cents_per_gpu_hour: match b.price_cents_per_gpu_hour {
                Some(p) if !(0..=1_000_000).contains(&p) => {
                    return Err(ApiError::field(
                        "price_cents_per_gpu_hour",
                        "a price between 0 and 1,000,000 cents per GPU-hour",
                    ));
                }
                p => p,
            },
        })
        .await?;
    state.submission_cache.clear();
    let balance = state.store.balance(&alloc.id).await?;
    Ok(created(allocation_view(&alloc, Some(balance))))
}

#[derive(Deserialize)]
pub(crate) struct AllocationQuery {
    project: String,
}

pub(crate) async fn list_allocations(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<AllocationQuery>,
) -> ApiResult {
    visible_project(&state, &caller, &q.project).await?;
    let mut items = Vec::new();
    for a in state.store.list_allocations(&q.project).await? {
        let b = state.store.balance(&a.id).await?;
        items.push(allocation_view(&a, Some(b)));
    }
    ok(super::items(items))
}

pub(crate) async fn get_allocation(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    let alloc = visible_allocation(&state, &caller, &id).await?;
    let balance = state.store.balance(&id).await?;
    ok(allocation_view(&alloc, Some(balance)))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopUp {
    gpu_hours: i64,
}

pub(crate) async fn top_up(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<TopUp>,
) -> ApiResult {
    visible_allocation(&state, &caller, &id).await?;
    operator(&caller, "top allocations up")?;
    if !(1..=100_000_000).contains(&b.gpu_hours) {
        return Err(ApiError::field(
            "gpu_hours",
            "`gpu_hours` must be between 1 and 100,000,000",
        ));
    }
    state.store.top_up(&id, b.gpu_hours * 3600).await?;
    state.submission_cache.clear();
    get_allocation(State(state), caller, Path(id)).await
}

pub(crate) async fn set_state(state: AppState, caller: Caller, id: String, to: AllocationState) -> ApiResult {
    visible_allocation(&state, &caller, &id).await?;
    operator(&caller, "suspend and resume allocations")?;
    state.store.set_allocation_state(&id, to).await?;
    state.submission_cache.clear();
    get_allocation(State(state), caller, Path(id)).await
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Extend {
    valid_until: i64,
}

/// A Slurm account or QoS name as `sacctmgr` takes it; empty or absent means none.
pub(crate) fn slurm_name((field, value): (&str, Option<String>)) -> Result<Option<String>, ApiError> {
    let Some(value) = value.map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let fits = value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !fits {
        return Err(ApiError::field(
            field,
            format!("`{field}` is a Slurm name: up to 64 letters, digits, `_`, `-` or `.`"),
        ));
    }
    Ok(Some(value))
}

pub(crate) fn slurm_charge(
    account: (&str, Option<String>),
    qos: (&str, Option<String>),
) -> Result<store::SlurmCharge, ApiError> {
    Ok(store::SlurmCharge {
        account: slurm_name(account)?,
        qos: slurm_name(qos)?,
    })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetSlurmCharge {
    account: Option<String>,
    qos: Option<String>,
}

/// Where a site keeps its own accounting (sacct, sreport, its fair-share tree), each
/// allocation's jobs go to Slurm under the account the site opened for it. Applies to jobs
/// handed to Slurm from now on.
pub(crate) async fn set_slurm_charge(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<SetSlurmCharge>,
) -> ApiResult {
    visible_allocation(&state, &caller, &id).await?;
    operator(&caller, "set an allocation's Slurm account")?;
    let charge = slurm_charge(("account", b.account), ("qos", b.qos))?;
    state.store.set_allocation_slurm(&id, &charge).await?;
    state.submission_cache.clear();
    get_allocation(State(state), caller, Path(id)).await
}

pub(crate) async fn extend(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<Extend>,
) -> ApiResult {
    let alloc = visible_allocation(&state, &caller, &id).await?;
    operator(&caller, "extend allocations")?;
    if b.valid_until <= alloc.valid_from {
        return Err(ApiError::field(
            "valid_until",
            "`valid_until` must be after the allocation's start",
        ));
    }
    state.store.extend_allocation(&id, b.valid_until).await?;
    state.submission_cache.clear();
    get_allocation(State(state), caller, Path(id)).await
}

pub(crate) async fn suspend(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    set_state(state, caller, id, AllocationState::Suspended).await
}

pub(crate) async fn resume(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    set_state(state, caller, id, AllocationState::Active).await
}
