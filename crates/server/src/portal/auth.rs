//! Signing in and out of the portal. Passwords are Argon2id (memory-hard, salted) PHC
//! strings, hashed and checked off the async threads; an unknown address costs the same
//! check as a wrong password, so the answer's time says nothing. Attempts are limited per
//! client address. The sign-in form carries a CSRF token bound to a cookie of its own
//! (there is no session yet); every form after it carries the session's.

use super::{Session, cookie, layout, over_tls, page};
use crate::api::ClientAddress;
use crate::{ApiError, AppState};
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

/// The CSRF token of the forms shown before there is a session (sign-in, registration,
/// password reset), bound to a cookie of its own.
const FORM_CSRF_COOKIE: &str = "aif_form_csrf";
/// How long a browser stays signed in.
const SESSION_TTL_S: i64 = 12 * 3600;
pub const PASSWORD_MIN: usize = 12;
pub const PASSWORD_MAX: usize = 1024;

/// The PHC string of a new password (checked for length first).
pub(crate) async fn hash_password(password: String) -> Result<String, ApiError> {
    let chars = password.chars().count();
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&chars) {
        return Err(ApiError::field(
            "password",
            format!("a password has {PASSWORD_MIN} to {PASSWORD_MAX} characters"),
        ));
    }
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)?
}

/// Whether `password` is the one `phc` was made from; `None` checks against a hash of
/// nothing, taking the same time.
async fn verify(password: String, phc: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let argon2 = Argon2::default();
        match phc.as_deref().map(PasswordHash::new) {
            Some(Ok(hash)) => argon2.verify_password(password.as_bytes(), &hash).is_ok(),
            _ => {
                if let Ok(dummy) = argon2.hash_password(b"no such account") {
                    let _ = argon2.verify_password(password.as_bytes(), &dummy);
                }
                false
            }
        }
    })
    .await
    .unwrap_or(false)
}

fn random_token() -> String {
    let mut raw = [0u8; 16];
    getrandom::getrandom(&mut raw).expect("the system's random source");
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// An anonymous form's page: the token its forms carry (the browser's current one, so that
/// two tabs both work), with the cookie that binds it.
pub(super) fn anonymous_page(
    headers: &HeaderMap,
    status: StatusCode,
    title: &str,
    body: impl FnOnce(&str) -> maud::Markup,
) -> Response {
    let token = cookie(headers, FORM_CSRF_COOKIE)
        .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(random_token);
    let mut resp = page(status, layout(title, None, body(&token)));
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(headers, FORM_CSRF_COOKIE, &token, "/", 3600),
    );
    resp
}

/// Whether an anonymous form came from a page this browser was given.
pub(super) fn anonymous_form_ok(headers: &HeaderMap, token: &str) -> bool {
    !token.is_empty() && cookie(headers, FORM_CSRF_COOKIE).as_deref() == Some(token)
}

/// Signs the user in: a new session, its cookie, and on to `to`.
pub(super) async fn start_session(state: &AppState, headers: &HeaderMap, user_id: &str, to: &str) -> Response {
    let now = crate::accounting::unix_now() as i64;
    let (secret, _) = match state.store.create_session(user_id, now, SESSION_TTL_S).await {
        Ok(s) => s,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let mut resp = Redirect::to(to).into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(headers, super::SESSION_COOKIE, &secret, "/", SESSION_TTL_S),
    );
    h.append(header::SET_COOKIE, set_cookie(headers, FORM_CSRF_COOKIE, "", "/", 0));
    resp
}

fn set_cookie(headers: &HeaderMap, name: &str, value: &str, path: &str, max_age: i64) -> HeaderValue {
    let secure = if over_tls(headers) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .expect("cookie values are hex")
}

fn login_page(headers: &HeaderMap, status: StatusCode, error: Option<&str>, email: &str) -> Response {
    anonymous_page(headers, status, "Sign in", |token| {
        html! {
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(token);
                label for="email" { "E-mail address" }
                input id="email" name="email" type="email" autocomplete="username" required value=(email);
                label for="password" { "Password" }
                input id="password" name="password" type="password" autocomplete="current-password" required;
                div { button type="submit" { "Sign in" } }
            }
            p { a href="/password/forgot" { "Forgot your password?" } " · " a href="/signup" { "Register your organisation" } }
            p { "Or set a password with your API token: " code { "PUT /api/v1/me/password" } "." }
        }
    })
}

pub(super) async fn form(headers: HeaderMap) -> Response {
    login_page(&headers, StatusCode::OK, None, "")
}

/// Missing fields read as empty: the form is then refused with a page, like a wrong one.
#[derive(Deserialize)]
pub(super) struct Login {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub(super) async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(f): Form<Login>,
) -> Response {
    if !anonymous_form_ok(&headers, &f.csrf) {
        return login_page(
            &headers,
            StatusCode::FORBIDDEN,
            Some("This form has expired: sign in again."),
            &f.email,
        );
    }
    if let Err(wait) = state.limits.check_login(&address) {
        return login_page(
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!("Too many attempts from your address: try again in {wait} s.")),
            &f.email,
        );
    }
    let found = match state.store.password_of(&f.email).await {
        Ok(found) => found,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let Some((user, phc)) = found else {
        verify(f.password, None).await;
        return wrong(&headers, &f.email);
    };
    if !verify(f.password, Some(phc)).await {
        return wrong(&headers, &f.email);
    }
    start_session(&state, &headers, &user.id, "/").await
}

fn wrong(headers: &HeaderMap, email: &str) -> Response {
    login_page(
        headers,
        StatusCode::UNAUTHORIZED,
        Some("Wrong e-mail address or password."),
        email,
    )
}

#[derive(Deserialize)]
pub(super) struct Csrf {
    #[serde(default)]
    csrf: String,
}

/// Checks a form's CSRF token against the session's; the refusal page if it is not.
pub(crate) fn check_csrf(session: &Session, token: &str) -> Option<Response> {
    if session.csrf == token {
        return None;
    }
    Some(page(
        StatusCode::FORBIDDEN,
        layout(
            "Form expired",
            Some(session),
            html! { p.error role="alert" { "This form was not sent from your session: go back, reload and try again." } },
        ),
    ))
}

pub(super) async fn logout(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(f): Form<Csrf>,
) -> Response {
    if let Some(refused) = check_csrf(&session, &f.csrf) {
        return refused;
    }
    if let Err(e) = state.store.end_session(&session.secret).await {
        return ApiError::from(e).into_response();
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&headers, super::SESSION_COOKIE, "", "/", 0),
    );
    resp
}
