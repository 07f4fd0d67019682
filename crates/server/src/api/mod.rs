//! The HTTP API under `/api/v1`: one module per resource, each with its routes, their
//! OpenAPI entries, request shapes and handlers side by side; here the router, the
//! OpenAPI document assembled from every module's table, the extractors (JSON bodies,
//! query strings, the authenticated caller) and the response helpers. Who may do what is
//! decided in `crate::authz`.

pub(crate) mod access;
mod allocation_life;
mod allocations;
pub(crate) mod applications;
pub(crate) mod calls;
pub(crate) mod catalogue;
pub(crate) mod courses;
mod documents;
mod harvest;
mod health;
pub(crate) mod indicators;
mod invitations;
pub(crate) mod jobs;
mod notifications;
mod orgs;
mod projects;
pub(crate) mod reviews;
pub(crate) mod signup;
pub(crate) mod sites;
pub(crate) mod tokens;
pub(crate) mod usage;
mod users;

/// What every resource module uses.
mod prelude {
    pub(crate) use super::{
        ApiResult, Body, ClientAddress, Endpoint, Items, Page, Params, created, e, items, non_empty, ok, rfc3339,
        schema, short_name,
    };
    pub(crate) use crate::accounting::unix_now;
    pub(crate) use crate::authz::*;
    pub(crate) use crate::lifecycle;
    pub(crate) use crate::{ApiError, AppState};
    pub(crate) use axum::extract::rejection::JsonRejection;
    pub(crate) use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
    pub(crate) use axum::http::request::Parts;
    pub(crate) use axum::http::{HeaderMap, StatusCode, header};
    pub(crate) use axum::response::{IntoResponse, Response};
    pub(crate) use axum::routing::{MethodRouter, get, post};
    pub(crate) use axum::{Json, Router};
    pub(crate) use domain::{GpuRequest, JobSpec, OrgType, PriorityClass};
    pub(crate) use exec::Stream;
    pub(crate) use sched::Event;
    pub(crate) use schemars::JsonSchema;
    pub(crate) use serde::de::DeserializeOwned;
    pub(crate) use serde::{Deserialize, Serialize};
    pub(crate) use serde_json::{Value, json};
    pub(crate) use store::{
        Allocation, AllocationState, Job, JobFilter, JobState, NewAllocation, NewJob, NewOrg, NewProject, NewUser, Org,
        OrgRole, PlatformRole, Project, Usage, UsageScope, User,
    };
}

use prelude::*;

/// Every endpoint of the API, module by module.
fn endpoints() -> Vec<Endpoint> {
    [
        health::endpoints(),
        users::endpoints(),
        orgs::endpoints(),
        invitations::endpoints(),
        tokens::endpoints(),
        projects::endpoints(),
        allocations::endpoints(),
        jobs::endpoints(),
        usage::endpoints(),
        sites::endpoints(),
        signup::endpoints(),
        calls::endpoints(),
        applications::endpoints(),
        documents::endpoints(),
        notifications::endpoints(),
        reviews::endpoints(),
        indicators::endpoints(),
        courses::endpoints(),
        allocation_life::endpoints(),
        catalogue::endpoints(),
        access::endpoints(),
        harvest::endpoints(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// One entry of an endpoint table; `body` is the request's schema, derived from its type
/// (`Some(schema::<CreateOrg>)`), and `.returns::<T>()` names what a success answers.
pub(crate) fn e(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    auth: bool,
    query: &'static [&'static str],
    body: Option<SchemaFn>,
    route: MethodRouter<AppState>,
) -> Endpoint {
    Endpoint {
        method,
        path,
        summary,
        auth,
        query,
        body,
        response: None,
        text: false,
        route,
    }
}

/// Writes a type's schema into the document's components and answers a reference to it.
pub(crate) type SchemaFn = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

pub(crate) fn schema<T: schemars::JsonSchema>(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    generator.subschema_for::<T>()
}

/// One registration: the route and what the OpenAPI document says of it, so that the two
/// cannot drift apart.
pub(crate) struct Endpoint {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    /// Whether a bearer token is needed.
    auth: bool,
    query: &'static [&'static str],
    body: Option<SchemaFn>,
    response: Option<SchemaFn>,
    /// A success answers plain text (logs, metrics, probes) rather than JSON.
    text: bool,
    route: MethodRouter<AppState>,
}

impl Endpoint {
    /// What a success answers (JSON).
    pub(crate) fn returns<T: schemars::JsonSchema>(mut self) -> Endpoint {
        self.response = Some(schema::<T>);
        self
    }

    /// A success answers plain text.
    pub(crate) fn returns_text(mut self) -> Endpoint {
        self.text = true;
        self
    }
}

/// A list.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(rename = "ListOf{T}")]
pub(crate) struct Items<T> {
    pub items: Vec<T>,
}

pub(crate) fn items<T>(items: Vec<T>) -> Items<T> {
    Items { items }
}

/// A page of a longer list; `next_cursor` fetches the next one (null on the last page).
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(rename = "PageOf{T}")]
pub(crate) struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The OpenAPI 3.1 document of every registered endpoint. Request and response schemas
/// are JSON Schema 2020-12 derived from the very types the handlers read and write.
pub fn openapi() -> Value {
    let mut generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    let problem = json!({"description": "A problem document", "content": {"application/problem+json": {"schema": schema::<crate::Problem>(&mut generator)}}});
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
        let success = match (e.response, e.text) {
            (Some(response), _) => {
                json!({"description": "Success", "content": {"application/json": {"schema": response(&mut generator)}}})
            }
            (None, true) => {
                json!({"description": "Success", "content": {"text/plain": {"schema": {"type": "string"}}}})
            }
            (None, false) => json!({"description": "Success, with no body"}),
        };
        let mut op = json!({
            "summary": e.summary,
            "responses": {"2XX": success, "4XX": problem.clone()},
        });
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if let Some(body) = e.body {
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": body(&mut generator)}}});
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
            "schemas": generator.take_definitions(true),
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
        .merge(crate::hub::router())
        .merge(crate::portal::router())
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

pub(crate) fn created<T: Serialize>(v: T) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

pub(crate) type ApiResult = Result<Response, ApiError>;

pub(crate) fn ok<T: Serialize>(v: T) -> ApiResult {
    Ok(Json(v).into_response())
}

/// RFC 3339 UTC from Unix seconds.
pub fn rfc3339(t: i64) -> String {
    jiff::Timestamp::from_second(t).map_or_else(|_| t.to_string(), |ts| ts.to_string())
}

/// A short name used in commands and URLs: up to 40 lower-case letters, digits and `-`.
pub(crate) fn short_name(field: &str, v: &str) -> Result<(), ApiError> {
    let fits = !v.is_empty()
        && v.len() <= 40
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if fits {
        return Ok(());
    }
    Err(ApiError::field(
        field,
        format!("`{field}` is up to 40 lower-case letters, digits and `-`"),
    ))
}

pub(crate) fn non_empty(field: &str, v: &str, max: usize) -> Result<(), ApiError> {
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
                let (user, token, job) = state.store.authenticate(secret).await?.ok_or_else(|| {
                    ApiError::unauthorized("unknown or revoked token (a job's token ends with its job)")
                })?;
                let memberships = state.store.memberships(&user.id).await?;
                let mut caller = Caller {
                    user,
                    memberships,
                    job: None,
                };
                if let Some(job_id) = job {
                    let org = state.store.get_job(&job_id).await?.org_id;
                    caller = crate::authz::job_caller(caller, job_id, &org);
                }
                state.auth_cache.insert(key, (caller.clone(), token.clone()));
                (caller, token)
            }
        };
        if caller.job.is_some() {
            crate::authz::job_token_reaches(parts.uri.path())?;
        }
        state.limits.check_token(&token)?;
        Ok(caller)
    }
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

/// The client's address (the connection's peer), where the server knows it; requests
/// that came another way (tests, a unix socket) share one key.
#[derive(Debug)]
pub struct ClientAddress(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string());
        Ok(ClientAddress(peer))
    }
}
