//! The web portal, served by the same binary at `/`: server-rendered HTML (`maud`), forms
//! that work without JavaScript, sessions in `HttpOnly`, `SameSite=Lax` cookies (also
//! `Secure` when the request came over TLS, as a reverse proxy says with
//! `X-Forwarded-Proto: https`), a CSRF token in every form. Authorisation is the API's: the
//! session's user becomes the same `Caller`, and every page reads through the same scoped
//! look-ups, so a page never shows another organisation's object.

mod auth;
mod composer;
mod dashboard;

pub(crate) use auth::hash_password;

use crate::AppState;
use crate::authz::Caller;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};

pub(crate) const SESSION_COOKIE: &str = "aif_session";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard::dashboard))
        .route("/jobs/new", get(composer::new).post(composer::create))
        .route("/jobs/{id}", get(dashboard::job_page))
        .route("/login", get(auth::form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/portal.css", get(css))
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
            }
            body {
                header {
                    nav aria-label="main" {
                        a href="/" { strong { "aifactory" } }
                        @if let Some(s) = session {
                            a href="/jobs/new" { "New job" }
                            span.user { (s.caller.user.name) " (" (s.caller.user.email) ")" }
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(s.csrf);
                                button type="submit" { "Sign out" }
                            }
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
.scroll{overflow-x:auto}.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}";

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
