//! Routes, authentication, authorisation and the JSON shapes of `/api/v1`.

use crate::accounting::unix_now;
use crate::lifecycle;
use crate::{ApiError, AppState};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use domain::{GpuRequest, JobSpec, OrgType, PriorityClass};
use exec::Stream;
use sched::Event;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::{
    Allocation, AllocationState, Job, JobFilter, JobState, Membership, NewAllocation, NewJob, NewOrg, NewProject,
    NewUser, Org, OrgRole, PlatformRole, Project, Usage, UsageScope, User,
};

/// One registration: the route and what the OpenAPI document says of it, so that the two
/// cannot drift apart.
struct Endpoint {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    /// Whether a bearer token is needed.
    auth: bool,
    query: &'static [&'static str],
    body: Option<Value>,
    route: MethodRouter<AppState>,
}

fn obj(required: &[(&str, &str)], optional: &[(&str, &str)]) -> Value {
    let ty = |t: &str| match t.strip_prefix("array:") {
        Some(item) => json!({"type": "array", "items": {"type": item}}),
        None => json!({"type": t}),
    };
    let mut props = serde_json::Map::new();
    for (name, t) in required.iter().chain(optional) {
        props.insert((*name).to_string(), ty(t));
    }
    json!({"type": "object", "additionalProperties": false, "required": required.iter().map(|r| r.0).collect::<Vec<_>>(), "properties": props})
}

fn endpoints() -> Vec<Endpoint> {
    let e = |method, path, summary, auth, query: &'static [&'static str], body: Option<Value>, route| Endpoint {
        method,
        path,
        summary,
        auth,
        query,
        body,
        route,
    };
    vec![
        e("get", "/healthz", "Liveness", false, &[], None, get(|| async { "ok" })),
        e(
            "get",
            "/readyz",
            "Readiness: the database answers",
            false,
            &[],
            None,
            get(ready),
        ),
        e(
            "get",
            "/metrics",
            "Prometheus metrics (platform staff)",
            true,
            &[],
            None,
            get(metrics),
        ),
        e(
            "get",
            "/api/v1/me",
            "The caller and their memberships",
            true,
            &[],
            None,
            get(me),
        ),
        e(
            "post",
            "/api/v1/orgs",
            "Create an organisation (platform admin)",
            true,
            &[],
            Some(obj(
                &[("name", "string"), ("type", "string"), ("country", "string")],
                &[
                    ("sectors", "array:string"),
                    ("employees", "integer"),
                    ("turnover_eur", "integer"),
                ],
            )),
            post(create_org),
        ),
        e(
            "get",
            "/api/v1/orgs",
            "Organisations the caller may see",
            true,
            &[],
            None,
            get(list_orgs),
        ),
        e(
            "get",
            "/api/v1/orgs/{id}",
            "One organisation",
            true,
            &[],
            None,
            get(get_org),
        ),
        e(
            "get",
            "/api/v1/orgs/{id}/members",
            "An organisation's members and their roles",
            true,
            &[],
            None,
            get(list_org_members),
        ),
        e(
            "post",
            "/api/v1/orgs/{id}/members",
            "Add an existing user to an organisation (organisation admin)",
            true,
            &[],
            Some(obj(&[("user", "string")], &[("role", "string")])),
            post(add_org_member),
        ),
        e(
            "delete",
            "/api/v1/orgs/{id}/members/{user}",
            "Remove a member from an organisation and its projects (organisation admin)",
            true,
            &[],
            None,
            axum::routing::delete(remove_org_member),
        ),
        e(
            "post",
            "/api/v1/users",
            "Create a user (platform admin; organisation admins add members)",
            true,
            &[],
            Some(obj(
                &[("email", "string"), ("name", "string")],
                &[("platform_role", "string"), ("org", "string"), ("role", "string")],
            )),
            post(create_user),
        ),
        e(
            "post",
            "/api/v1/tokens",
            "Create an API token (the secret is shown once)",
            true,
            &[],
            Some(obj(&[("name", "string")], &[("user", "string")])),
            post(create_token),
        ),
        e(
            "get",
            "/api/v1/tokens",
            "The caller's tokens",
            true,
            &[],
            None,
            get(list_tokens),
        ),
        e(
            "delete",
            "/api/v1/tokens/{id}",
            "Revoke a token",
            true,
            &[],
            None,
            axum::routing::delete(revoke_token),
        ),
        e(
            "post",
            "/api/v1/projects",
            "Create a project (organisation admin)",
            true,
            &[],
            Some(obj(
                &[("org", "string"), ("name", "string"), ("sector", "string")],
                &[("pi", "string")],
            )),
            post(create_project),
        ),
        e(
            "get",
            "/api/v1/projects",
            "Projects the caller may see",
            true,
            &["org"],
            None,
            get(list_projects),
        ),
        e(
            "get",
            "/api/v1/projects/{id}",
            "One project",
            true,
            &[],
            None,
            get(get_project),
        ),
        e(
            "get",
            "/api/v1/projects/{id}/members",
            "Who may submit to a project besides the organisation's admins",
            true,
            &[],
            None,
            get(list_project_members),
        ),
        e(
            "post",
            "/api/v1/projects/{id}/members",
            "Add a member of the organisation to a project (organisation admin)",
            true,
            &[],
            Some(obj(&[("user", "string")], &[])),
            post(add_project_member),
        ),
        e(
            "delete",
            "/api/v1/projects/{id}/members/{user}",
            "Remove a member from a project (organisation admin)",
            true,
            &[],
            None,
            axum::routing::delete(remove_project_member),
        ),
        e(
            "post",
            "/api/v1/allocations",
            "Grant GPU-hours to a project at a site (platform admin, site operator)",
            true,
            &[],
            Some(obj(
                &[
                    ("project", "string"),
                    ("site", "string"),
                    ("gpu_hours", "integer"),
                    ("valid_until", "integer"),
                ],
                &[
                    ("class", "string"),
                    ("valid_from", "integer"),
                    ("slurm_account", "string"),
                    ("slurm_qos", "string"),
                ],
            )),
            post(create_allocation),
        ),
        e(
            "get",
            "/api/v1/allocations",
            "A project's allocations with their balances",
            true,
            &["project"],
            None,
            get(list_allocations),
        ),
        e(
            "get",
            "/api/v1/allocations/{id}",
            "One allocation with its balance",
            true,
            &[],
            None,
            get(get_allocation),
        ),
        e(
            "post",
            "/api/v1/allocations/{id}/top-up",
            "Add GPU-hours",
            true,
            &[],
            Some(obj(&[("gpu_hours", "integer")], &[])),
            post(top_up),
        ),
        e(
            "post",
            "/api/v1/allocations/{id}/suspend",
            "Suspend an allocation",
            true,
            &[],
            None,
            post(suspend),
        ),
        e(
            "post",
            "/api/v1/allocations/{id}/resume",
            "Resume an allocation",
            true,
            &[],
            None,
            post(resume),
        ),
        e(
            "post",
            "/api/v1/allocations/{id}/extend",
            "Move an allocation's end (platform admin, site operator)",
            true,
            &[],
            Some(obj(&[("valid_until", "integer")], &[])),
            post(extend),
        ),
        e(
            "put",
            "/api/v1/allocations/{id}/slurm",
            "Set the Slurm account and QoS the allocation's jobs are charged to (platform admin, site operator)",
            true,
            &[],
            Some(obj(&[], &[("account", "string"), ("qos", "string")])),
            axum::routing::put(set_slurm_charge),
        ),
        e(
            "post",
            "/api/v1/jobs",
            "Submit a job (honours Idempotency-Key)",
            true,
            &[],
            Some(obj(
                &[
                    ("project", "string"),
                    ("command", "array:string"),
                    ("walltime_s", "integer"),
                ],
                &[
                    ("allocation", "string"),
                    ("name", "string"),
                    ("gpus", "integer"),
                    ("nodes", "integer"),
                    ("gpu_milli", "integer"),
                    ("gpu_model", "string"),
                    ("preemptible", "boolean"),
                    ("checkpointable", "boolean"),
                ],
            )),
            post(submit_job),
        ),
        e(
            "get",
            "/api/v1/jobs",
            "Jobs, newest first, with filters and a cursor",
            true,
            &["project", "org", "state", "cursor", "limit"],
            None,
            get(list_jobs),
        ),
        e("get", "/api/v1/jobs/{id}", "One job", true, &[], None, get(get_job)),
        e(
            "post",
            "/api/v1/jobs/{id}/cancel",
            "Cancel a job",
            true,
            &[],
            None,
            post(cancel_job),
        ),
        e(
            "post",
            "/api/v1/jobs/{id}/requeue",
            "Run a job that did not complete again, as a new job",
            true,
            &[],
            None,
            post(requeue_job),
        ),
        e(
            "get",
            "/api/v1/jobs/{id}/logs",
            "A job's stdout or stderr from an offset; with follow=true, streamed until the job ends",
            true,
            &["stream", "offset", "follow"],
            None,
            get(job_logs),
        ),
        e(
            "get",
            "/api/v1/usage",
            "Usage of a job, allocation, project or organisation",
            true,
            &["job", "allocation", "project", "org"],
            None,
            get(usage),
        ),
        e(
            "get",
            "/api/v1/reports/usage",
            "Usage by organisation type, country, sector, site or month (staff)",
            true,
            &["group_by", "format"],
            None,
            get(usage_report),
        ),
        e(
            "get",
            "/api/v1/sites",
            "Sites, their partitions, GPUs, prices and carbon intensity",
            true,
            &[],
            None,
            get(list_sites),
        ),
        e(
            "get",
            "/api/v1/nodes",
            "Nodes and their GPUs",
            true,
            &[],
            None,
            get(list_nodes),
        ),
        e(
            "post",
            "/api/v1/nodes/{name}/drain",
            "Drain a node (site operator)",
            true,
            &[],
            None,
            post(drain_node),
        ),
        e(
            "post",
            "/api/v1/nodes/{name}/resume",
            "Resume a node (site operator)",
            true,
            &[],
            None,
            post(resume_node),
        ),
    ]
}

/// The OpenAPI 3.1 document of every registered endpoint.
pub fn openapi() -> Value {
    let mut paths = serde_json::Map::new();
    for e in endpoints() {
        let mut params: Vec<Value> = e
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        params.extend(
            e.query
                .iter()
                .map(|q| json!({"name": q, "in": "query", "required": false, "schema": {"type": "string"}})),
        );
        let mut op = json!({
            "summary": e.summary,
            "responses": {
                "2XX": {"description": "Success"},
                "4XX": {"description": "A problem document", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
            },
        });
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if let Some(body) = e.body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": body}}});
        }
        if !e.auth {
            op["security"] = json!([]);
        }
        let entry = paths.entry(e.path.to_string()).or_insert_with(|| json!({}));
        entry[e.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "aifactory", "version": env!("CARGO_PKG_VERSION"), "description": "The AI Factory's API. Errors are RFC 9457 problem documents with a stable `code`."},
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Problem": obj(&[("type", "string"), ("title", "string"), ("status", "integer"), ("detail", "string"), ("code", "string")], &[("field", "string")])},
        },
    })
}

pub fn router(state: AppState) -> Router {
    let limit = state.config.body_limit;
    let mut router = Router::new();
    for e in endpoints() {
        router = router.route(e.path, e.route);
    }
    router
        .route("/api/v1/openapi.json", get(|| async { Json(openapi()) }))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no-route", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this endpoint does not take that method (see /api/v1/openapi.json)",
            )
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Times every request for the latency histogram.
async fn observe(State(state): State<AppState>, req: Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    state
        .metrics
        .observe(resp.status().as_u16(), started.elapsed().as_secs_f64());
    resp
}

// ---- extractors -------------------------------------------------------------------------

/// JSON bodies whose every failure is a problem document naming what is wrong.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(JsonRejection::BytesRejection(e)) => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                format!("request body rejected: {e}"),
            )),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not-json",
                "send the body as JSON with `Content-Type: application/json`",
            )),
            Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid-json", e.body_text())),
        }
    }
}

/// Query parameters whose every failure is a problem document naming the parameter.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Params(v)),
            Err(e) => {
                let text = e.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                let field = detail.split(':').next().filter(|f| !f.contains(' ')).unwrap_or("query");
                Err(ApiError::field(field, format!("bad query parameter: {detail}")))
            }
        }
    }
}

/// The authenticated caller and what they may see.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub memberships: Vec<Membership>,
}

impl Caller {
    fn role(&self) -> Option<PlatformRole> {
        self.user.platform_role
    }
    fn is_admin(&self) -> bool {
        self.role() == Some(PlatformRole::Admin)
    }
    /// Platform staff see every organisation.
    fn sees_all(&self) -> bool {
        self.role().is_some()
    }
    fn manages_allocations(&self) -> bool {
        matches!(self.role(), Some(PlatformRole::Admin | PlatformRole::Operator))
    }
    fn org_role(&self, org_id: &str) -> Option<OrgRole> {
        self.memberships.iter().find(|m| m.org_id == org_id).map(|m| m.role)
    }
    fn sees_org(&self, org_id: &str) -> bool {
        self.sees_all() || self.org_role(org_id).is_some()
    }
    fn admins_org(&self, org_id: &str) -> bool {
        self.is_admin() || self.org_role(org_id) == Some(OrgRole::Admin)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("send `Authorization: Bearer <token>`"))?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))?;
        let key = store::hash_secret(secret);
        let (caller, token) = match state.auth_cache.get(&key) {
            Some(hit) => hit,
            None => {
                let (user, token) = state
                    .store
                    .authenticate(secret)
                    .await?
                    .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
                let memberships = state.store.memberships(&user.id).await?;
                let caller = Caller { user, memberships };
                state.auth_cache.insert(key, (caller.clone(), token.clone()));
                (caller, token)
            }
        };
        rate_limit(state, &token)?;
        Ok(caller)
    }
}

/// A token bucket per API token: `rate_per_s` on average, `rate_burst` at once.
fn rate_limit(state: &AppState, token: &str) -> Result<(), ApiError> {
    let (rate, burst) = (state.config.rate_per_s, state.config.rate_burst);
    let mut buckets = state.limiter.lock().expect("limiter lock");
    let now = std::time::Instant::now();
    let (left, last) = buckets.entry(token.to_string()).or_insert((burst, now));
    *left = (*left + now.duration_since(*last).as_secs_f64() * rate).min(burst);
    *last = now;
    if *left < 1.0 {
        let wait = ((1.0 - *left) / rate).ceil().max(1.0);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!("more than {rate} requests per second with this token; retry in {wait} s"),
        ));
    }
    *left -= 1.0;
    Ok(())
}

fn created<T: Serialize>(v: T) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

type ApiResult = Result<Response, ApiError>;

fn ok<T: Serialize>(v: T) -> ApiResult {
    Ok(Json(v).into_response())
}

/// RFC 3339 UTC from Unix seconds.
pub fn rfc3339(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn time(t: Option<i64>) -> Value {
    t.map_or(Value::Null, |t| Value::String(rfc3339(t)))
}

fn org_view(o: &Org) -> Value {
    json!({
        "id": o.id, "name": o.name, "type": o.org_type, "country": o.country, "sectors": o.sectors,
        "employees": o.employees, "turnover_eur": o.turnover_eur, "created_at": rfc3339(o.created_at),
    })
}

fn project_view(p: &Project) -> Value {
    json!({"id": p.id, "org": p.org_id, "name": p.name, "sector": p.sector, "pi": p.pi_user_id, "created_at": rfc3339(p.created_at)})
}

fn allocation_view(a: &Allocation, balance: Option<store::Balance>) -> Value {
    let mut v = json!({
        "id": a.id, "project": a.project_id, "site": a.site, "class": a.class, "state": a.state,
        "valid_from": rfc3339(a.valid_from), "valid_until": rfc3339(a.valid_until), "created_at": rfc3339(a.created_at),
        "slurm_account": a.slurm.account, "slurm_qos": a.slurm.qos,
    });
    if let Some(b) = balance {
        v["gpu_seconds"] =
            json!({"granted": b.granted, "reserved": b.reserved, "used": b.used, "available": b.available});
    }
    v
}

fn job_view(j: &Job) -> Value {
    let (gpus, nodes, gpu_milli) = match j.spec.gpus {
        GpuRequest::Gang { nodes, gpus_per_node } => (nodes * gpus_per_node, Some(nodes), None),
        GpuRequest::Spread { gpus } => (gpus, None, None),
        GpuRequest::Fraction { milli } => (1, None, Some(milli)),
    };
    json!({
        "id": j.id, "name": j.name, "org": j.org_id, "project": j.project_id, "allocation": j.allocation_id,
        "user": j.user_id, "state": j.state, "command": j.command, "gpus": gpus, "nodes": nodes, "gpu_milli": gpu_milli,
        "walltime_s": j.spec.walltime_s, "class": j.spec.class, "site": j.spec.site,
        "submitted_at": rfc3339(j.submitted_at), "started_at": time(j.started_at), "ended_at": time(j.ended_at),
        "exit_code": j.exit_code, "reason": j.reason, "placement": j.placement, "reserved_gpu_seconds": j.reserved_gpu_seconds,
    })
}

// ---- handlers ---------------------------------------------------------------------------

async fn ready(State(state): State<AppState>) -> Response {
    if let Some(trouble) = state.exec.trouble() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "executor-unavailable",
            format!("jobs cannot run: {trouble}"),
        )
        .into_response();
    }
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            format!("the database does not answer: {e}"),
        )
        .into_response(),
    }
}

async fn me(caller: Caller) -> ApiResult {
    ok(json!({"user": caller.user, "memberships": caller.memberships}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateOrg {
    name: String,
    #[serde(rename = "type")]
    org_type: OrgType,
    country: String,
    #[serde(default)]
    sectors: Vec<String>,
    employees: Option<i64>,
    turnover_eur: Option<i64>,
}

fn non_empty(field: &str, v: &str, max: usize) -> Result<(), ApiError> {
    if v.trim().is_empty() {
        return Err(ApiError::field(field, format!("`{field}` must not be empty")));
    }
    if v.len() > max {
        return Err(ApiError::field(
            field,
            format!("`{field}` is longer than {max} characters"),
        ));
    }
    Ok(())
}

async fn create_org(State(state): State<AppState>, caller: Caller, Body(b): Body<CreateOrg>) -> ApiResult {
    if !caller.is_admin() {
        return Err(ApiError::forbidden("only platform admins create organisations"));
    }
    non_empty("name", &b.name, 200)?;
    if b.country.len() != 2 || !b.country.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(ApiError::field(
            "country",
            "`country` must be an ISO 3166-1 alpha-2 code such as `IT`",
        ));
    }
    if b.employees.is_some_and(|e| e < 0) || b.turnover_eur.is_some_and(|t| t < 0) {
        return Err(ApiError::field("employees", "size figures must not be negative"));
    }
    let org = state
        .store
        .create_org(&NewOrg {
            name: b.name,
            org_type: b.org_type,
            country: b.country,
            sectors: b.sectors,
            employees: b.employees,
            turnover_eur: b.turnover_eur,
        })
        .await?;
    Ok(created(org_view(&org)))
}

async fn list_orgs(State(state): State<AppState>, caller: Caller) -> ApiResult {
    let orgs = state.store.list_orgs().await?;
    ok(json!({"items": orgs.iter().filter(|o| caller.sees_org(&o.id)).map(org_view).collect::<Vec<_>>()}))
}

async fn get_org(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    if !caller.sees_org(&id) {
        return Err(ApiError::not_found("organisation", &id));
    }
    ok(org_view(&state.store.get_org(&id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    email: String,
    name: String,
    platform_role: Option<PlatformRole>,
    org: Option<String>,
    role: Option<OrgRole>,
}

async fn create_user(State(state): State<AppState>, caller: Caller, Body(b): Body<CreateUser>) -> ApiResult {
    non_empty("name", &b.name, 200)?;
    if !b.email.contains('@') || b.email.len() > 320 {
        return Err(ApiError::field("email", "`email` is not an e-mail address"));
    }
    if let Some(org) = &b.org
        && !caller.sees_org(org)
    {
        return Err(ApiError::not_found("organisation", org));
    }
    let allowed = match (&b.platform_role, &b.org) {
        (Some(_), _) => caller.is_admin(),
        (None, Some(org)) => caller.admins_org(org),
        (None, None) => caller.is_admin(),
    };
    if !allowed {
        return Err(ApiError::forbidden(
            "platform admins create staff; organisation admins add members to their organisation",
        ));
    }
    if let Some(org) = &b.org {
        state.store.get_org(org).await?;
    }
    let user = state
        .store
        .create_user(&NewUser {
            email: b.email,
            name: b.name,
            platform_role: b.platform_role,
        })
        .await?;
    if let Some(org) = &b.org {
        state
            .store
            .add_membership(&user.id, org, b.role.unwrap_or(OrgRole::Member))
            .await?;
    }
    Ok(created(&user))
}

fn member_view(u: &User, role: Option<OrgRole>) -> Value {
    let mut v = json!({"id": u.id, "name": u.name, "email": u.email});
    if let Some(r) = role {
        v["role"] = json!(r);
    }
    v
}

async fn list_org_members(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    if !caller.sees_org(&id) {
        return Err(ApiError::not_found("organisation", &id));
    }
    let members = state.store.org_members(&id).await?;
    ok(json!({"items": members.iter().map(|(u, r)| member_view(u, Some(*r))).collect::<Vec<_>>()}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMember {
    user: String,
    role: Option<OrgRole>,
}

/// Organisation admins (and platform admins) manage who belongs; the organisation is
/// looked up first so that strangers learn nothing.
fn admin_of(caller: &Caller, org_id: &str) -> Result<(), ApiError> {
    if !caller.sees_org(org_id) {
        return Err(ApiError::not_found("organisation", org_id));
    }
    if !caller.admins_org(org_id) {
        return Err(ApiError::forbidden("organisation admins manage members"));
    }
    Ok(())
}

async fn add_org_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<AddMember>,
) -> ApiResult {
    admin_of(&caller, &id)?;
    state.store.get_org(&id).await?;
    let user = state
        .store
        .get_user(&b.user)
        .await
        .map_err(|_| ApiError::field("user", format!("no user `{}`", b.user)))?;
    let role = b.role.unwrap_or(OrgRole::Member);
    state.store.add_membership(&user.id, &id, role).await?;
    state.auth_cache.clear();
    Ok(created(member_view(&user, Some(role))))
}

async fn remove_org_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user)): Path<(String, String)>,
) -> ApiResult {
    admin_of(&caller, &id)?;
    state.store.remove_membership(&user, &id).await?;
    state.auth_cache.clear();
    state.submission_cache.clear();
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_project_members(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    visible_project(&state, &caller, &id).await?;
    let members = state.store.project_members(&id).await?;
    ok(json!({"items": members.iter().map(|u| member_view(u, None)).collect::<Vec<_>>()}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddProjectMember {
    user: String,
}

async fn add_project_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<AddProjectMember>,
) -> ApiResult {
    let project = visible_project(&state, &caller, &id).await?;
    admin_of(&caller, &project.org_id)?;
    let members = state.store.org_members(&project.org_id).await?;
    let Some((user, _)) = members.iter().find(|(u, _)| u.id == b.user) else {
        return Err(ApiError::field(
            "user",
            format!("`{}` is not a member of the project's organisation", b.user),
        ));
    };
    state.store.add_project_member(&id, &user.id).await?;
    state.submission_cache.clear();
    Ok(created(member_view(user, None)))
}

async fn remove_project_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user)): Path<(String, String)>,
) -> ApiResult {
    let project = visible_project(&state, &caller, &id).await?;
    admin_of(&caller, &project.org_id)?;
    state.store.remove_project_member(&id, &user).await?;
    state.submission_cache.clear();
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    name: String,
    /// Platform admins may create a token for another user (for onboarding).
    user: Option<String>,
}

async fn create_token(State(state): State<AppState>, caller: Caller, Body(b): Body<CreateToken>) -> ApiResult {
    non_empty("name", &b.name, 100)?;
    let user = match b.user {
        Some(u) if u != caller.user.id => {
            if !caller.is_admin() {
                return Err(ApiError::forbidden("only platform admins create tokens for others"));
            }
            state.store.get_user(&u).await?.id
        }
        _ => caller.user.id.clone(),
    };
    let (token, secret) = state.store.create_token(&user, &b.name).await?;
    Ok(created(
        json!({"id": token.id, "name": token.name, "user": token.user_id, "token": secret, "created_at": rfc3339(token.created_at)}),
    ))
}

async fn list_tokens(State(state): State<AppState>, caller: Caller) -> ApiResult {
    let tokens = state.store.list_tokens(&caller.user.id).await?;
    ok(json!({"items": tokens.iter().map(|t| json!({
        "id": t.id, "name": t.name, "created_at": rfc3339(t.created_at), "revoked_at": time(t.revoked_at)
    })).collect::<Vec<_>>()}))
}

async fn revoke_token(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    state.store.revoke_token(&caller.user.id, &id).await?;
    state.auth_cache.clear();
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateProject {
    org: String,
    name: String,
    sector: String,
    pi: Option<String>,
}

async fn create_project(State(state): State<AppState>, caller: Caller, Body(b): Body<CreateProject>) -> ApiResult {
    if !caller.sees_org(&b.org) {
        return Err(ApiError::not_found("organisation", &b.org));
    }
    if !caller.admins_org(&b.org) {
        return Err(ApiError::forbidden("organisation admins create projects"));
    }
    non_empty("name", &b.name, 200)?;
    non_empty("sector", &b.sector, 100)?;
    if let Some(pi) = &b.pi
        && !state.store.org_members(&b.org).await?.iter().any(|(u, _)| &u.id == pi)
    {
        return Err(ApiError::field(
            "pi",
            format!("the principal investigator `{pi}` is not a member of the organisation"),
        ));
    }
    let project = state
        .store
        .create_project(&NewProject {
            org_id: b.org,
            name: b.name,
            sector: b.sector,
            pi_user_id: b.pi,
        })
        .await?;
    Ok(created(project_view(&project)))
}

async fn visible_project(state: &AppState, caller: &Caller, id: &str) -> Result<Project, ApiError> {
    let project = state
        .store
        .get_project(id)
        .await
        .map_err(|_| ApiError::not_found("project", id))?;
    if !caller.sees_org(&project.org_id) {
        return Err(ApiError::not_found("project", id));
    }
    Ok(project)
}

#[derive(Deserialize)]
struct ProjectQuery {
    org: Option<String>,
}

async fn list_projects(State(state): State<AppState>, caller: Caller, Params(q): Params<ProjectQuery>) -> ApiResult {
    let projects = state.store.list_projects(q.org.as_deref()).await?;
    ok(json!({"items": projects.iter().filter(|p| caller.sees_org(&p.org_id)).map(project_view).collect::<Vec<_>>()}))
}

async fn get_project(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    ok(project_view(&visible_project(&state, &caller, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAllocation {
    project: String,
    site: String,
    gpu_hours: i64,
    class: Option<PriorityClass>,
    valid_from: Option<i64>,
    valid_until: i64,
    slurm_account: Option<String>,
    slurm_qos: Option<String>,
}

async fn create_allocation(
    State(state): State<AppState>,
    caller: Caller,
    Body(b): Body<CreateAllocation>,
) -> ApiResult {
    if !caller.manages_allocations() {
        return Err(ApiError::forbidden(
            "platform admins and site operators grant allocations",
        ));
    }
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
        })
        .await?;
    state.submission_cache.clear();
    let balance = state.store.balance(&alloc.id).await?;
    Ok(created(allocation_view(&alloc, Some(balance))))
}

async fn visible_allocation(state: &AppState, caller: &Caller, id: &str) -> Result<Allocation, ApiError> {
    let alloc = state
        .store
        .get_allocation(id)
        .await
        .map_err(|_| ApiError::not_found("allocation", id))?;
    visible_project(state, caller, &alloc.project_id)
        .await
        .map_err(|_| ApiError::not_found("allocation", id))?;
    Ok(alloc)
}

#[derive(Deserialize)]
struct AllocationQuery {
    project: String,
}

async fn list_allocations(
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
    ok(json!({"items": items}))
}

async fn get_allocation(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    let alloc = visible_allocation(&state, &caller, &id).await?;
    let balance = state.store.balance(&id).await?;
    ok(allocation_view(&alloc, Some(balance)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopUp {
    gpu_hours: i64,
}

async fn top_up(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<TopUp>,
) -> ApiResult {
    visible_allocation(&state, &caller, &id).await?;
    if !caller.manages_allocations() {
        return Err(ApiError::forbidden(
            "platform admins and site operators top allocations up",
        ));
    }
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

async fn set_state(state: AppState, caller: Caller, id: String, to: AllocationState) -> ApiResult {
    visible_allocation(&state, &caller, &id).await?;
    if !caller.manages_allocations() {
        return Err(ApiError::forbidden(
            "platform admins and site operators suspend and resume allocations",
        ));
    }
    state.store.set_allocation_state(&id, to).await?;
    state.submission_cache.clear();
    get_allocation(State(state), caller, Path(id)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Extend {
    valid_until: i64,
}

/// A Slurm account or QoS name as `sacctmgr` takes it; empty or absent means none.
fn slurm_name((field, value): (&str, Option<String>)) -> Result<Option<String>, ApiError> {
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

fn slurm_charge(account: (&str, Option<String>), qos: (&str, Option<String>)) -> Result<store::SlurmCharge, ApiError> {
    Ok(store::SlurmCharge {
        account: slurm_name(account)?,
        qos: slurm_name(qos)?,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetSlurmCharge {
    account: Option<String>,
    qos: Option<String>,
}

/// Where a site keeps its own accounting (sacct, sreport, its fair-share tree), each
/// allocation's jobs go to Slurm under the account the site opened for it. Applies to jobs
/// handed to Slurm from now on.
async fn set_slurm_charge(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<SetSlurmCharge>,
) -> ApiResult {
    visible_allocation(&state, &caller, &id).await?;
    if !caller.manages_allocations() {
        return Err(ApiError::forbidden(
            "platform admins and site operators set an allocation's Slurm account",
        ));
    }
    let charge = slurm_charge(("account", b.account), ("qos", b.qos))?;
    state.store.set_allocation_slurm(&id, &charge).await?;
    state.submission_cache.clear();
    get_allocation(State(state), caller, Path(id)).await
}

async fn extend(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<Extend>,
) -> ApiResult {
    let alloc = visible_allocation(&state, &caller, &id).await?;
    if !caller.manages_allocations() {
        return Err(ApiError::forbidden(
            "platform admins and site operators extend allocations",
        ));
    }
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

async fn suspend(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    set_state(state, caller, id, AllocationState::Suspended).await
}

async fn resume(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    set_state(state, caller, id, AllocationState::Active).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitJob {
    project: String,
    allocation: Option<String>,
    name: Option<String>,
    command: Vec<String>,
    gpus: Option<u32>,
    nodes: Option<u32>,
    gpu_milli: Option<u32>,
    walltime_s: u64,
    gpu_model: Option<String>,
    #[serde(default)]
    preemptible: bool,
    #[serde(default)]
    checkpointable: bool,
}

const MAX_WALLTIME_S: u64 = 30 * 86_400;

fn gpu_request(b: &SubmitJob) -> Result<GpuRequest, ApiError> {
    let gpus = b.gpus.unwrap_or(1);
    if gpus == 0 || gpus > 4096 {
        return Err(ApiError::field("gpus", "`gpus` must be between 1 and 4096"));
    }
    match (b.gpu_milli, b.nodes) {
        (Some(m), _) if !(1..=1000).contains(&m) => {
            Err(ApiError::field("gpu_milli", "`gpu_milli` must be between 1 and 1000"))
        }
        (Some(m), _) if m < 1000 && gpus != 1 => Err(ApiError::field("gpu_milli", "a GPU fraction needs `gpus` = 1")),
        (Some(m), _) if m < 1000 => Ok(GpuRequest::Fraction { milli: m }),
        (_, Some(0)) => Err(ApiError::field("nodes", "`nodes` must be at least 1")),
        (_, Some(n)) if !gpus.is_multiple_of(n) => Err(ApiError::field(
            "nodes",
            format!("{gpus} GPUs do not divide evenly over {n} nodes"),
        )),
        (_, Some(n)) => Ok(GpuRequest::Gang {
            nodes: n,
            gpus_per_node: gpus / n,
        }),
        (_, None) => Ok(GpuRequest::Spread { gpus }),
    }
}

async fn submit_job(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Body(b): Body<SubmitJob>,
) -> ApiResult {
    let context = match state.submission_cache.get(&b.project) {
        Some(hit) => hit,
        None => {
            let context = state
                .store
                .submission_context(&b.project)
                .await
                .map_err(|_| ApiError::not_found("project", &b.project))?;
            state.submission_cache.insert(b.project.clone(), context.clone());
            context
        }
    };
    let store::SubmissionContext {
        project,
        org_type,
        allocations,
        members,
    } = context;
    if !caller.sees_org(&project.org_id) {
        return Err(ApiError::not_found("project", &b.project));
    }
    may_submit(&caller, &project.org_id, &members)?;
    if b.command.is_empty() || b.command[0].is_empty() {
        return Err(ApiError::field("command", "`command` must name a program"));
    }
    if b.command.iter().map(String::len).sum::<usize>() > 64 * 1024 {
        return Err(ApiError::field("command", "`command` is longer than 64 KiB"));
    }
    if !(1..=MAX_WALLTIME_S).contains(&b.walltime_s) {
        return Err(ApiError::field(
            "walltime_s",
            format!("`walltime_s` must be between 1 and {MAX_WALLTIME_S}"),
        ));
    }
    let name = b.name.clone().unwrap_or_else(|| "job".into());
    non_empty("name", &name, 200)?;
    let request = gpu_request(&b)?;
    let allocation = match &b.allocation {
        Some(id) => allocations
            .into_iter()
            .find(|a| &a.id == id)
            .ok_or_else(|| ApiError::field("allocation", "the project has no such allocation"))?,
        None => allocations
            .into_iter()
            .find(|a| a.state == AllocationState::Active)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "no-allocation",
                    "the project has no active allocation",
                )
            })?,
    };
    // Admission: the request must fit the allocation's site at all.
    let site = state.cluster.site_by_name(&allocation.site);
    let per_node = match request {
        GpuRequest::Gang { gpus_per_node, .. } => gpus_per_node,
        GpuRequest::Spread { .. } | GpuRequest::Fraction { .. } => 1,
    };
    let fitting: u64 = state
        .cluster
        .nodes
        .iter()
        .filter(|n| Some(n.site) == site && u32::from(n.gpus) >= per_node)
        .filter(|n| {
            b.gpu_model.as_deref().is_none_or(|m| {
                domain::gpu::lookup(m)
                    .map_or(m, |k| k.name)
                    .eq_ignore_ascii_case(&n.gpu_model)
            })
        })
        .map(|n| u64::from(n.gpus))
        .sum();
    if site.is_none() || fitting * 1000 < request.total_milli() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "never-fits",
            format!("no nodes at site `{}` can hold this request", allocation.site),
        ));
    }
    let mut spec = JobSpec::new(project.id.clone(), request, b.walltime_s);
    spec.org_type = org_type;
    spec.class = allocation.class;
    spec.site = Some(allocation.site.clone());
    spec.gpu_model = b.gpu_model.clone();
    spec.preemptible = b.preemptible || allocation.class == PriorityClass::Preemptible;
    spec.checkpointable = b.checkpointable;
    let reserved = (request.total_milli() * b.walltime_s).div_ceil(1000) as i64;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 200) {
        return Err(ApiError::field(
            "Idempotency-Key",
            "the Idempotency-Key header must be 1 to 200 characters",
        ));
    }
    let job = state
        .admission
        .submit(NewJob {
            allocation_id: allocation.id.clone(),
            user_id: caller.user.id.clone(),
            name,
            spec,
            command: b.command,
            reserved_gpu_seconds: reserved,
            submitted_at: unix_now() as i64,
            idempotency_key: key,
        })
        .await?;
    // The created job as admitted; `GET /jobs/{id}` shows it once it runs.
    Ok(created(job_view(&job)))
}

/// Who may run jobs in a project (submit, requeue): its members and its organisation's
/// admins; other members of the organisation, and staff, may not.
fn may_submit(caller: &Caller, org_id: &str, members: &[String]) -> Result<(), ApiError> {
    if caller.org_role(org_id).is_none() {
        return Err(ApiError::forbidden(
            "only members of the project's organisation submit jobs",
        ));
    }
    if !caller.admins_org(org_id) && !members.contains(&caller.user.id) {
        return Err(ApiError::forbidden(
            "you are not a member of this project: ask an organisation admin to add you",
        ));
    }
    Ok(())
}

async fn visible_job(state: &AppState, caller: &Caller, id: &str) -> Result<Job, ApiError> {
    let job = state
        .store
        .get_job(id)
        .await
        .map_err(|_| ApiError::not_found("job", id))?;
    if !caller.sees_org(&job.org_id) {
        return Err(ApiError::not_found("job", id));
    }
    Ok(job)
}

#[derive(Deserialize)]
struct JobQuery {
    project: Option<String>,
    state: Option<String>,
    org: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

async fn list_jobs(State(state): State<AppState>, caller: Caller, Params(q): Params<JobQuery>) -> ApiResult {
    let job_state = q
        .state
        .as_deref()
        .map(|s| s.parse::<JobState>().map_err(|e| ApiError::field("state", e)))
        .transpose()?;
    let org = match (&q.org, &q.project) {
        (Some(o), _) if !caller.sees_org(o) => return Err(ApiError::not_found("organisation", o)),
        (Some(o), _) => Some(o.clone()),
        (None, Some(p)) => Some(visible_project(&state, &caller, p).await?.org_id),
        (None, None) if caller.sees_all() => None,
        (None, None) => match caller.memberships.as_slice() {
            [only] => Some(only.org_id.clone()),
            [] => return ok(json!({"items": [], "next_cursor": null})),
            _ => {
                return Err(ApiError::field(
                    "org",
                    "you belong to several organisations: say which with `org`",
                ));
            }
        },
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let filter = JobFilter {
        org_id: org,
        project_id: q.project.clone(),
        user_id: None,
        state: job_state,
    };
    let jobs = state.store.list_jobs(&filter, q.cursor.as_deref(), limit).await?;
    let next = (jobs.len() == limit as usize)
        .then(|| jobs.last().map(|j| j.id.clone()))
        .flatten();
    ok(json!({"items": jobs.iter().map(job_view).collect::<Vec<_>>(), "next_cursor": next}))
}

async fn get_job(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    let job = visible_job(&state, &caller, &id).await?;
    let mut view = job_view(&job);
    if !job.state.is_final() {
        // Where the executor is with it (e.g. waiting for Slurm, pending there and why).
        view["executor_note"] = json!(state.exec.note(&id).or_else(|| state.exec.trouble()));
    }
    ok(view)
}

async fn cancel_job(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    let job = visible_job(&state, &caller, &id).await?;
    if caller.org_role(&job.org_id).is_none() && !caller.is_admin() {
        return Err(ApiError::forbidden(
            "only the organisation's members and platform admins cancel its jobs",
        ));
    }
    lifecycle::cancel(&state, &id, &caller.user.id).await?;
    // A running job ends once its process has: most stop at once on SIGTERM, so answer
    // with the final state when it comes soon, else with the job as it is (still stopping).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let job = state.store.get_job(&id).await?;
        if job.state.is_final() || std::time::Instant::now() >= deadline {
            return ok(job_view(&job));
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

#[derive(Deserialize)]
struct LogQuery {
    stream: Option<String>,
    offset: Option<u64>,
    follow: Option<bool>,
}

/// How often a followed log is checked for new bytes.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// A job's log from `offset` as a chunked stream that ends once the job has ended and
/// everything it wrote has been sent (like `tail -f` that stops with the job).
fn follow_log(state: AppState, job_id: String, path: std::path::PathBuf, offset: u64) -> axum::body::Body {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    struct Tail {
        state: AppState,
        job_id: String,
        path: std::path::PathBuf,
        offset: u64,
        ended: bool,
    }
    let start = Tail {
        state,
        job_id,
        path,
        offset,
        ended: false,
    };
    let chunks = futures_util::stream::unfold(start, |mut t| async move {
        loop {
            let mut buf = vec![0; 64 * 1024];
            let read = match tokio::fs::File::open(&t.path).await {
                Ok(mut f) => match f.seek(std::io::SeekFrom::Start(t.offset)).await {
                    Ok(_) => f.read(&mut buf).await.unwrap_or(0),
                    Err(_) => 0,
                },
                Err(_) => 0,
            };
            if read > 0 {
                buf.truncate(read);
                t.offset += read as u64;
                return Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), t));
            }
            if t.ended {
                return None;
            }
            // Read once more after the end is seen: the last bytes may land just before it.
            match t.state.store.get_job(&t.job_id).await {
                Ok(job) if !job.state.is_final() => tokio::time::sleep(FOLLOW_POLL).await,
                _ => t.ended = true,
            }
        }
    });
    axum::body::Body::from_stream(chunks)
}

async fn job_logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Params(q): Params<LogQuery>,
) -> ApiResult {
    let job = visible_job(&state, &caller, &id).await?;
    let stream = match q.stream.as_deref() {
        None | Some("stdout") => Stream::Stdout,
        Some("stderr") => Stream::Stderr,
        Some(other) => {
            return Err(ApiError::field(
                "stream",
                format!("`stream` is stdout or stderr, not `{other}`"),
            ));
        }
    };
    let path = state.exec.log_path(&job.id, stream);
    if q.follow.unwrap_or(false) {
        let body = follow_log(state.clone(), job.id.clone(), path, q.offset.unwrap_or(0));
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response());
    }
    let bytes = tokio::fs::read(path).await.unwrap_or_default();
    let from = (q.offset.unwrap_or(0) as usize).min(bytes.len());
    let mut resp = bytes[from..].to_vec().into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().expect("static header"),
    );
    headers.insert("x-next-offset", bytes.len().to_string().parse().expect("number header"));
    headers.insert("x-job-state", job.state.as_str().parse().expect("state header"));
    Ok(resp)
}

#[derive(Deserialize)]
struct UsageQuery {
    job: Option<String>,
    allocation: Option<String>,
    project: Option<String>,
    org: Option<String>,
}

async fn usage(State(state): State<AppState>, caller: Caller, Params(q): Params<UsageQuery>) -> ApiResult {
    let (scope, id) = match (&q.job, &q.allocation, &q.project, &q.org) {
        (Some(j), ..) => {
            visible_job(&state, &caller, j).await?;
            ("job", j.clone())
        }
        (None, Some(a), ..) => {
            visible_allocation(&state, &caller, a).await?;
            ("allocation", a.clone())
        }
        (None, None, Some(p), _) => {
            visible_project(&state, &caller, p).await?;
            ("project", p.clone())
        }
        (None, None, None, Some(o)) => {
            if !caller.sees_org(o) {
                return Err(ApiError::not_found("organisation", o));
            }
            ("org", o.clone())
        }
        _ => {
            return Err(ApiError::field(
                "job",
                "say whose usage: `job`, `allocation`, `project` or `org`",
            ));
        }
    };
    let u = state
        .store
        .usage(match scope {
            "job" => UsageScope::Job(&id),
            "allocation" => UsageScope::Allocation(&id),
            "project" => UsageScope::Project(&id),
            _ => UsageScope::Org(&id),
        })
        .await?;
    ok(
        json!({"scope": scope, "id": id, "gpu_seconds": u.gpu_seconds, "energy_wh": u.energy_wh, "carbon_g": u.carbon_g, "cost_cents": u.cost_cents}),
    )
}

#[derive(Deserialize)]
struct ReportQuery {
    group_by: Option<String>,
    format: Option<String>,
}

/// Usage aggregated by organisation type, country, sector, site or month, for the
/// programme's reporting (platform staff), as JSON or CSV.
async fn usage_report(State(state): State<AppState>, caller: Caller, Params(q): Params<ReportQuery>) -> ApiResult {
    if !caller.sees_all() {
        return Err(ApiError::forbidden(
            "reports cover every organisation: platform staff only",
        ));
    }
    let group_by = q.group_by.as_deref().unwrap_or("org_type");
    let key: fn(&store::UsageRow) -> String = match group_by {
        "org_type" => |r| r.org_type.as_str().to_string(),
        "country" => |r| r.country.clone(),
        "sector" => |r| r.sector.clone(),
        "site" => |r| r.site.clone(),
        "month" => |r| rfc3339(r.at)[..7].to_string(),
        other => {
            return Err(ApiError::field(
                "group_by",
                format!("`group_by` is org_type, country, sector, site or month, not `{other}`"),
            ));
        }
    };
    let mut groups: std::collections::BTreeMap<String, (u64, Usage)> = std::collections::BTreeMap::new();
    for row in state.store.usage_rows().await? {
        let g = groups.entry(key(&row)).or_default();
        g.0 += 1;
        g.1.gpu_seconds += row.usage.gpu_seconds;
        g.1.energy_wh += row.usage.energy_wh;
        g.1.carbon_g += row.usage.carbon_g;
        g.1.cost_cents += row.usage.cost_cents;
    }
    match q.format.as_deref() {
        None | Some("json") => ok(
            json!({"group_by": group_by, "items": groups.iter().map(|(k, (n, u))| json!({
            "key": k, "entries": n, "gpu_seconds": u.gpu_seconds, "energy_wh": u.energy_wh, "carbon_g": u.carbon_g, "cost_cents": u.cost_cents
        })).collect::<Vec<_>>()}),
        ),
        Some("csv") => {
            let mut out = format!("{group_by},entries,gpu_seconds,energy_wh,carbon_g,cost_cents\n");
            for (k, (n, u)) in &groups {
                let k = if k.contains([',', '"', '\n']) {
                    format!("\"{}\"", k.replace('"', "\"\""))
                } else {
                    k.clone()
                };
                out.push_str(&format!(
                    "{k},{n},{},{},{},{}\n",
                    u.gpu_seconds, u.energy_wh, u.carbon_g, u.cost_cents
                ));
            }
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response())
        }
        Some(other) => Err(ApiError::field(
            "format",
            format!("`format` is json or csv, not `{other}`"),
        )),
    }
}

/// Puts a job that ended (failed, cancelled, timed out, lost) back in the queue as a new
/// run of the same specification; the reservation is taken again.
async fn requeue_job(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    let job = visible_job(&state, &caller, &id).await?;
    let members: Vec<String> = match state.submission_cache.get(&job.project_id) {
        Some(context) => context.members,
        None => state.store.submission_context(&job.project_id).await?.members,
    };
    may_submit(&caller, &job.org_id, &members)?;
    if !job.state.is_final() || job.state == JobState::Completed {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not-requeueable",
            format!(
                "job {id} is {}: only jobs that did not complete can be requeued",
                job.state.as_str()
            ),
        ));
    }
    let copy = state
        .admission
        .submit(NewJob {
            allocation_id: job.allocation_id.clone(),
            user_id: caller.user.id.clone(),
            name: job.name.clone(),
            spec: job.spec.clone(),
            command: job.command.clone(),
            reserved_gpu_seconds: job.reserved_gpu_seconds,
            submitted_at: unix_now() as i64,
            idempotency_key: None,
        })
        .await?;
    Ok(created(job_view(&copy)))
}

fn node_view(state: &AppState, i: usize, status: Option<sched::NodeStatus>, used: &[u16]) -> Value {
    let n = &state.cluster.nodes[i];
    json!({
        "name": n.name, "site": state.cluster.sites[usize::from(n.site)].name,
        "partition": state.cluster.partitions[usize::from(n.partition)].name, "gpu_model": n.gpu_model, "gpus": n.gpus,
        "gpu_memory_gib": n.gpu_memory_gib, "cpu_cores": n.cpu_cores, "ram_gib": n.ram_gib, "group": n.group,
        "status": status, "gpus_used_milli": used,
    })
}

async fn list_sites(State(state): State<AppState>, _caller: Caller) -> ApiResult {
    let c = &state.cluster;
    let items: Vec<Value> = c
        .sites
        .iter()
        .enumerate()
        .map(|(i, site)| {
            let nodes: Vec<&domain::Node> = c.nodes.iter().filter(|n| usize::from(n.site) == i).collect();
            let mut gpus: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
            for n in &nodes {
                *gpus.entry(n.gpu_model.as_str()).or_default() += u64::from(n.gpus);
            }
            let partitions: Vec<Value> = c
                .partitions
                .iter()
                .filter(|p| usize::from(p.site) == i)
                .map(|p| json!({"name": p.name, "max_walltime_s": p.max_walltime_s}))
                .collect();
            json!({
                "name": site.name, "country": site.country, "pue": f64::from(site.pue_milli) / 1000.0,
                "carbon_g_per_kwh": site.carbon_at(unix_now()),
                "gpu_hour_price_cents": site.gpu_hour_price_cents.map_or(state.config.cents_per_gpu_hour, i64::from),
                "nodes": nodes.len(), "gpus": gpus, "partitions": partitions,
            })
        })
        .collect();
    ok(json!({"items": items}))
}

async fn list_nodes(State(state): State<AppState>, _caller: Caller) -> ApiResult {
    let control = state.control.lock().await;
    let items: Vec<Value> = (0..state.cluster.nodes.len())
        .map(|i| {
            let used = control.engine.node_usage(i as u32).unwrap_or_default();
            node_view(&state, i, control.engine.node_status(i as u32), used)
        })
        .collect();
    ok(json!({"items": items}))
}

async fn set_node(state: AppState, caller: Caller, name: String, drain: bool) -> ApiResult {
    if !caller.manages_allocations() {
        return Err(ApiError::forbidden(
            "site operators and platform admins drain and resume nodes",
        ));
    }
    let i = state
        .cluster
        .nodes
        .iter()
        .position(|n| n.name == name)
        .ok_or_else(|| ApiError::not_found("node", &name))?;
    // Persist first: a restart must find the node as the operator left it.
    state
        .store
        .set_node_state(&name, if drain { "drained" } else { "up" }, Some(&caller.user.id))
        .await?;
    let mut control = state.control.lock().await;
    let event = if drain {
        control.operator_drained.insert(i as u32);
        Event::NodeDrain { node: i as u32 }
    } else {
        control.operator_drained.remove(&(i as u32));
        Event::NodeUp { node: i as u32 }
    };
    control.engine.apply(unix_now(), event).map_err(ApiError::internal)?;
    lifecycle::schedule(&state, &mut control).await;
    let used = control.engine.node_usage(i as u32).unwrap_or_default();
    ok(node_view(&state, i, control.engine.node_status(i as u32), used))
}

async fn drain_node(State(state): State<AppState>, caller: Caller, Path(name): Path<String>) -> ApiResult {
    set_node(state, caller, name, true).await
}

async fn resume_node(State(state): State<AppState>, caller: Caller, Path(name): Path<String>) -> ApiResult {
    set_node(state, caller, name, false).await
}

async fn metrics(State(state): State<AppState>, caller: Caller) -> ApiResult {
    if !caller.sees_all() {
        return Err(ApiError::forbidden("metrics are for platform staff"));
    }
    let text = crate::metrics::render(&state).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_585_699_210), "2020-04-01T00:00:10Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
