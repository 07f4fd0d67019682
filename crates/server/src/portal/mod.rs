//! The web portal, served by the same binary at `/`: server-rendered HTML (`maud`), forms
//! that work without JavaScript, sessions in `HttpOnly`, `SameSite=Lax` cookies (also
//! `Secure` when the request came over TLS, as a reverse proxy says with
//! `X-Forwarded-Proto: https`), a CSRF token in every form. Authorisation is the API's: the
//! session's user becomes the same `Caller`, and every page reads through the same scoped
//! look-ups, so a page never shows another organisation's object.

mod account;
mod auth;
mod catalogue;
mod charts;
mod composer;
mod dashboard;
mod operations;
mod programme;

pub(crate) use auth::hash_password;

use crate::api::{ApiResult, Body};
use crate::authz::Caller;
use crate::{ApiError, AppState};
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub(crate) const SESSION_COOKIE: &str = "aif_session";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard::dashboard))
        .route("/jobs/new", get(composer::new).post(composer::create))
        .route("/jobs/{id}", get(dashboard::job_page))
        .route("/jobs/{id}/live", get(dashboard::job_live))
        .route("/portal.js", get(script))
        .route("/login", get(auth::form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/signup", get(account::signup_form).post(account::signup))
        .route("/signup/verify", get(account::verify_form).post(account::verify))
        .route("/password/forgot", get(account::forgot_form).post(account::forgot))
        .route("/password/reset", get(account::reset_form).post(account::reset))
        .route("/tokens", get(account::tokens).post(account::create_token))
        .route("/tokens/{id}/revoke", post(account::revoke_token))
        .route("/queue", get(operations::queue))
        .route("/sites", get(operations::sites))
        .route("/operations", get(operations::nodes))
        .route("/operations/nodes/{name}", post(operations::set_node))
        .route("/operations/energy", get(operations::energy))
        .route("/operations/indicators", get(operations::indicators))
        .route("/operations/usage", get(operations::usage))
        .route("/operations/usage.csv", get(operations::usage_csv))
        .route("/catalogue", get(catalogue::search))
        .route("/catalogue/{kind}/{namespace}/{name}", get(catalogue::entry))
        .route(
            "/catalogue/{kind}/{namespace}/{name}/access",
            post(catalogue::request_access),
        )
        .route("/catalogue/requests/{id}/{action}", post(catalogue::decide_request))
        .route("/calls", get(programme::calls))
        .route("/calls/{id}", get(programme::call).post(programme::apply))
        .route("/calls/{id}/ranking", get(programme::ranking))
        .route("/applications", get(programme::applications))
        .route("/applications/{id}", get(programme::application))
        .route("/applications/{id}/{action}", post(programme::act))
        .route("/reviews", get(programme::inbox))
        .route("/reviews/{id}", get(programme::review).post(programme::submit_review))
        .route("/courses", get(programme::courses))
        .route("/courses/{id}/enrol", post(programme::enrol))
        .route("/portal.css", get(css))
        .route("/favicon.svg", get(favicon))
}

/// The API's answer as JSON, or its problem: pages call the API's own handlers, so they
/// check, refuse and scope exactly as the API does.
pub(crate) async fn answer(result: ApiResult) -> Result<Value, ApiError> {
    let response = result?;
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .map_err(ApiError::internal)?;
    serde_json::from_slice(&bytes).map_err(ApiError::internal)
}

/// A request body for an API handler, built from a form's values.
pub(crate) fn body<T: DeserializeOwned>(v: Value) -> Result<Body<T>, ApiError> {
    serde_json::from_value(v)
        .map(Body)
        .map_err(|e| ApiError::field("form", format!("the form could not be read: {e}")))
}

/// A field of an API answer as text (strings bare, numbers and the rest as JSON, absent
/// as an empty string).
pub(crate) fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// An API refusal as a page: its message, in the layout, with its status.
pub(crate) fn failure(session: Option<&Session>, e: ApiError) -> Response {
    let title = match e.status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        s if s.is_server_error() => "Something went wrong",
        _ => "Not possible",
    };
    page(
        e.status,
        layout(
            title,
            session,
            html! { p.error role="alert" { (e.detail) } p { a href="/" { "Back to the dashboard" } } },
        ),
    )
}

/// A field's refusal, beside it.
pub(crate) fn problem(error: Option<&ApiError>, fields: &[&str]) -> Markup {
    html! {
        @if let Some(e) = error.filter(|e| e.field.as_deref().is_some_and(|f| fields.contains(&f))) {
            p.error role="alert" { (e.detail) }
        }
    }
}

/// A refusal about no particular field of the form, at its top.
pub(crate) fn general(error: Option<&ApiError>, fields: &[&str]) -> Markup {
    html! {
        @if let Some(e) = error.filter(|e| !e.field.as_deref().is_some_and(|f| fields.contains(&f))) {
            p.error role="alert" { (e.detail) }
        }
    }
}

/// A page body or its failure, as a response.
pub(crate) fn render(session: &Session, title: &str, body: Result<Markup, ApiError>) -> Response {
    match body {
        Ok(b) => page(StatusCode::OK, layout(title, Some(session), b)),
        Err(e) => failure(Some(session), e),
    }
}

/// A signed-in browser: the caller its session stands for, and the session's CSRF token.
#[derive(Debug, Clone)]
pub struct Session {
    pub caller: Caller,
    pub csrf: String,
    secret: String,
}

/// A cookie's value from the request's `Cookie` headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Whether the browser reached us over TLS (directly or through a proxy that says so).
pub(crate) fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

impl FromRequestParts<AppState> for Session {
    /// Not signed in: to the sign-in page.
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let to_login = || Redirect::to("/login").into_response();
        let secret = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(to_login)?;
        let now = crate::accounting::unix_now() as i64;
        let (user, csrf) = match state.store.session(&secret, now).await {
            Ok(Some(found)) => found,
            Ok(None) => return Err(to_login()),
            Err(e) => return Err(crate::ApiError::from(e).into_response()),
        };
        let memberships = state
            .store
            .memberships(&user.id)
            .await
            .map_err(|e| crate::ApiError::from(e).into_response())?;
        Ok(Session {
            caller: Caller {
                user,
                memberships,
                job: None,
            },
            csrf,
            secret,
        })
    }
}

/// Every page: the header with the user and the sign-out form, then `body`.
pub(crate) fn layout(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · aifactory" }
                link rel="stylesheet" href="/portal.css";
                link rel="icon" href="/favicon.svg" type="image/svg+xml";
                script src="/portal.js" defer {}
            }
            body {
                header {
                    nav aria-label="main" {
                        a href="/" { strong { "aifactory" } }
                        @if let Some(s) = session {
                            a href="/jobs/new" { "New job" }
                            a href="/queue" { "Queue" }
                            a href="/sites" { "Sites" }
                            a href="/catalogue" { "Catalogue" }
                            a href="/calls" { "Calls" }
                            a href="/applications" { "Applications" }
                            @if s.caller.role() == Some(store::PlatformRole::Reviewer) || s.caller.manages_programme() {
                                a href="/reviews" { "Reviews" }
                            }
                            @if s.caller.sees_all() {
                                a href="/operations" { "Operations" }
                            }
                            a href="/tokens" { "Tokens" }
                            span.user { (s.caller.user.name) " (" (s.caller.user.email) ")" }
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(s.csrf);
                                button type="submit" { "Sign out" }
                            }
                        } @else {
                            a href="/calls" { "Calls" }
                            a href="/catalogue" { "Catalogue" }
                            a href="/signup" { "Register" }
                            a href="/login" { "Sign in" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page as an HTML response.
pub(crate) fn page(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        markup.into_string(),
    )
        .into_response()
}

/// Contrast ≥ 7:1 for text, visible focus, a layout that fits a phone.
const CSS: &str = "\
body{font-family:system-ui,sans-serif;margin:0;color:#111;background:#fff;line-height:1.5}\
header{background:#0b3d6b;color:#fff;padding:.5rem 1rem}\
header nav{display:flex;gap:1rem;align-items:center;flex-wrap:wrap}\
header a{color:#fff}header form{margin-left:auto}\
main{padding:1rem;max-width:70rem;margin:auto}\
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}\
th,td{border-bottom:1px solid #999;padding:.3rem .5rem;text-align:left;vertical-align:top}\
a{color:#0b3d6b}a:focus,button:focus,input:focus{outline:3px solid #b35c00;outline-offset:2px}\
label{display:block;margin:.5rem 0 .2rem}input,select,textarea{font-size:1rem;padding:.3rem;max-width:100%}\
button{font-size:1rem;padding:.3rem .8rem;margin-top:.5rem}\
.error{color:#8b0000;font-weight:bold}pre{background:#f3f3f3;padding:.5rem;overflow:auto;max-height:30rem}\
.scroll{overflow-x:auto}figure{margin:.5rem 0}svg{max-width:100%;height:auto}.inline{display:inline}.inline button{margin:0}\
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(16rem,1fr));gap:1rem}\
.card{border:1px solid #999;border-radius:4px;padding:.5rem 1rem}dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}\
dl.facts dd{margin:0}.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}";

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// The factory's mark: a chip.
const FAVICON: &str = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><rect x='3' y='3' width='10' height='10' rx='1' fill='#0b3d6b'/><path d='M5 1v2M8 1v2M11 1v2M5 13v2M8 13v2M11 13v2M1 5h2M1 8h2M1 11h2M13 5h2M13 8h2M13 11h2' stroke='#0b3d6b'/></svg>";

async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        FAVICON,
    )
        .into_response()
}

/// The portal's only script: pages work without it; with it, a running job's page follows
/// the job (its state and log) instead of being reloaded.
const SCRIPT: &str = r#"(function () {
  var live = document.querySelector('[data-live]');
  if (!live) return;
  var url = live.getAttribute('data-live');
  function poll() {
    fetch(url, {credentials: 'same-origin'}).then(function (r) { return r.json(); }).then(function (j) {
      document.getElementById('job-stdout').textContent = j.stdout;
      document.getElementById('job-stderr').textContent = j.stderr;
      if (j.final) { location.reload(); return; }
      document.getElementById('job-state').textContent = j.state;
      setTimeout(poll, 1000);
    }, function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();
"#;

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        SCRIPT,
    )
        .into_response()
}
