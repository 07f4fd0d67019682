//! Accounts in the browser: registering an organisation (the API's sign-up, the code sent
//! through the outbox, then a password chosen with the code), a forgotten password reset
//! by a link sent to the address, and the user's API tokens.

use super::auth::{anonymous_form_ok, anonymous_page, check_csrf, hash_password, start_session};
use super::{Session, answer, body, failure, general, problem, text};
use crate::api::{ClientAddress, signup, tokens};
use crate::{ApiError, AppState};
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

/// How long a reset link works.
const RESET_VALID_S: i64 = 3600;

const ORG_TYPES: &[(&str, &str)] = &[
    ("startup", "Start-up"),
    ("sme", "SME"),
    ("industry", "Industry (large enterprise)"),
    ("research", "Research or academia"),
    ("public", "Public body"),
];

#[derive(Debug, Default, Deserialize)]
pub(super) struct SignUp {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    organisation: String,
    #[serde(default)]
    org_type: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    sector: String,
}

const SIGNUP_FIELDS: &[&str] = &[
    "email",
    "name",
    "organisation.name",
    "organisation.country",
    "organisation.sectors",
];

fn signup_page(headers: &HeaderMap, status: StatusCode, f: &SignUp, error: Option<&ApiError>) -> Response {
    anonymous_page(headers, status, "Register", |token| {
        html! {
            p { "Register yourself and your organisation to apply for GPU time. A code is sent to your address; nothing is created until you enter it." }
            (general(error, SIGNUP_FIELDS))
            form method="post" action="/signup" {
                input type="hidden" name="csrf" value=(token);
                label for="email" { "Your e-mail address" }
                input id="email" name="email" type="email" autocomplete="email" required value=(f.email);
                (problem(error, &["email"]))
                label for="name" { "Your name" }
                input id="name" name="name" autocomplete="name" required value=(f.name);
                (problem(error, &["name"]))
                label for="organisation" { "Organisation" }
                input id="organisation" name="organisation" autocomplete="organization" required value=(f.organisation);
                (problem(error, &["organisation.name"]))
                label for="org_type" { "Kind of organisation" }
                select id="org_type" name="org_type" {
                    @for (value, label) in ORG_TYPES {
                        option value=(value) selected[f.org_type == *value] { (label) }
                    }
                }
                label for="country" { "Country (two letters, e.g. IT)" }
                input id="country" name="country" required maxlength="2" size="3" value=(f.country);
                (problem(error, &["organisation.country"]))
                label for="sector" { "Sector" }
                input id="sector" name="sector" required value=(f.sector);
                (problem(error, &["organisation.sectors"]))
                div { button type="submit" { "Register" } }
            }
            p { "Registered already? " a href="/login" { "Sign in" } "." }
        }
    })
}

pub(super) async fn signup_form(headers: HeaderMap) -> Response {
    let f = SignUp {
        org_type: "startup".into(),
        ..SignUp::default()
    };
    signup_page(&headers, StatusCode::OK, &f, None)
}

pub(super) async fn signup(
    State(state): State<AppState>,
    address: ClientAddress,
    headers: HeaderMap,
    Form(f): Form<SignUp>,
) -> Response {
    if !anonymous_form_ok(&headers, &f.csrf) {
        let e = ApiError::forbidden("This form has expired: send it again.");
        return signup_page(&headers, StatusCode::FORBIDDEN, &f, Some(&e));
    }
    let request = json!({
        "email": f.email.trim(),
        "name": f.name.trim(),
        "organisation": {
            "name": f.organisation.trim(),
            "type": f.org_type,
            "country": f.country.trim().to_ascii_uppercase(),
            "sectors": [f.sector.trim()],
        },
    });
    let started = match body(request) {
        Ok(b) => answer(signup::sign_up(State(state), address, b).await).await,
        Err(e) => Err(e),
    };
    match started {
        Ok(_) => Redirect::to("/signup/verify").into_response(),
        Err(e) => signup_page(&headers, e.status, &f, Some(&e)),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Verify {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    password: String,
}

fn verify_page(headers: &HeaderMap, status: StatusCode, code: &str, error: Option<&ApiError>) -> Response {
    anonymous_page(headers, status, "Confirm your address", |token| {
        html! {
            p { "We sent a code of 8 letters and digits to your address. Enter it here with the password you will sign in with." }
            (general(error, &["code", "password"]))
            form method="post" action="/signup/verify" {
                input type="hidden" name="csrf" value=(token);
                label for="code" { "Code" }
                input id="code" name="code" required autocomplete="one-time-code" value=(code);
                (problem(error, &["code"]))
                label for="password" { "Password (12 characters or more)" }
                input id="password" name="password" type="password" autocomplete="new-password" required minlength="12";
                (problem(error, &["password"]))
                div { button type="submit" { "Confirm and sign in" } }
            }
        }
    })
}

pub(super) async fn verify_form(headers: HeaderMap) -> Response {
    verify_page(&headers, StatusCode::OK, "", None)
}

pub(super) async fn verify(
    State(state): State<AppState>,
    address: ClientAddress,
    headers: HeaderMap,
    Form(f): Form<Verify>,
) -> Response {
    if !anonymous_form_ok(&headers, &f.csrf) {
        let e = ApiError::forbidden("This form has expired: send it again.");
        return verify_page(&headers, StatusCode::FORBIDDEN, &f.code, Some(&e));
    }
    // The password is checked before the code is spent.
    let phc = match hash_password(f.password).await {
        Ok(phc) => phc,
        Err(e) => return verify_page(&headers, e.status, &f.code, Some(&e)),
    };
    let signed_up = match body(json!({ "code": f.code })) {
        Ok(b) => answer(signup::verify(State(state.clone()), address, b).await).await,
        Err(e) => Err(e),
    };
    let user_id = match signed_up {
        Ok(v) => text(&v["user"], "id"),
        Err(e) => return verify_page(&headers, e.status, &f.code, Some(&e)),
    };
    let now = crate::accounting::unix_now() as i64;
    if let Err(e) = state.store.set_password(&user_id, &phc, now).await {
        return failure(None, e.into());
    }
    start_session(&state, &headers, &user_id, "/calls").await
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Forgot {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

fn forgot_page(headers: &HeaderMap, status: StatusCode, note: Option<Markup>) -> Response {
    anonymous_page(headers, status, "Forgot your password?", |token| {
        html! {
            @if let Some(n) = note { (n) }
            p { "Enter your address: if it has an account, a link to choose a new password is sent to it. The link works for an hour." }
            form method="post" action="/password/forgot" {
                input type="hidden" name="csrf" value=(token);
                label for="email" { "E-mail address" }
                input id="email" name="email" type="email" autocomplete="email" required;
                div { button type="submit" { "Send the link" } }
            }
        }
    })
}

pub(super) async fn forgot_form(headers: HeaderMap) -> Response {
    forgot_page(&headers, StatusCode::OK, None)
}

fn reset_message(state: &AppState, user: &store::User, secret: &str) -> store::NewMessage {
    let base = state.config.public_url.as_deref().unwrap_or("").trim_end_matches('/');
    store::NewMessage {
        to_user_id: Some(user.id.clone()),
        to_email: user.email.clone(),
        kind: "password-reset".into(),
        subject: "Choose a new aifactory password".into(),
        body: format!(
            "Hello {},\n\nchoose a new password for the aifactory portal here (the link works for an hour, once):\n\n    {base}/password/reset?token={secret}\n\nIf you did not ask for it, ignore this message: your password is unchanged.",
            user.name
        ),
        about: None,
        dedupe_key: None,
    }
}

pub(super) async fn forgot(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(f): Form<Forgot>,
) -> Response {
    if !anonymous_form_ok(&headers, &f.csrf) {
        return forgot_page(
            &headers,
            StatusCode::FORBIDDEN,
            Some(html! { p.error role="alert" { "This form has expired: send it again." } }),
        );
    }
    if let Err(e) = state.limits.check_address(&address) {
        return forgot_page(&headers, e.status, Some(html! { p.error role="alert" { (e.detail) } }));
    }
    let sent = async {
        if let Some(user) = state.store.user_by_email(f.email.trim()).await? {
            let now = crate::accounting::unix_now() as i64;
            let secret = state.store.start_password_reset(&user.id, now, RESET_VALID_S).await?;
            state.store.enqueue(&[reset_message(&state, &user, &secret)]).await?;
            state.outbox_wake.notify_one();
        }
        Ok::<(), store::StoreError>(())
    }
    .await;
    if let Err(e) = sent {
        return failure(None, e.into());
    }
    // The same answer whether or not the address has an account.
    forgot_page(
        &headers,
        StatusCode::OK,
        Some(html! { p role="status" { "If " (f.email.trim()) " has an account, a link is on its way to it." } }),
    )
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Reset {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

fn reset_page(headers: &HeaderMap, status: StatusCode, secret: &str, error: Option<&str>) -> Response {
    anonymous_page(headers, status, "Choose a new password", |token| {
        html! {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/password/reset" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="token" value=(secret);
                label for="password" { "New password (12 characters or more)" }
                input id="password" name="password" type="password" autocomplete="new-password" required minlength="12";
                div { button type="submit" { "Set the password and sign in" } }
            }
        }
    })
}

const DEAD_LINK: &str = "This link has expired or was used already: ask for a new one.";

#[derive(Debug, Deserialize)]
pub(super) struct ResetLink {
    #[serde(default)]
    token: String,
}

pub(super) async fn reset_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(link): Query<ResetLink>,
) -> Response {
    let now = crate::accounting::unix_now() as i64;
    match state.store.password_reset(&link.token, now).await {
        Ok(Some(_)) => reset_page(&headers, StatusCode::OK, &link.token, None),
        Ok(None) => reset_page(&headers, StatusCode::NOT_FOUND, "", Some(DEAD_LINK)),
        Err(e) => failure(None, e.into()),
    }
}

pub(super) async fn reset(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<Reset>) -> Response {
    if !anonymous_form_ok(&headers, &f.csrf) {
        return reset_page(
            &headers,
            StatusCode::FORBIDDEN,
            &f.token,
            Some("This form has expired: send it again."),
        );
    }
    let now = crate::accounting::unix_now() as i64;
    let user = match state.store.password_reset(&f.token, now).await {
        Ok(Some(user)) => user,
        Ok(None) => return reset_page(&headers, StatusCode::NOT_FOUND, "", Some(DEAD_LINK)),
        Err(e) => return failure(None, e.into()),
    };
    let phc = match hash_password(f.password).await {
        Ok(phc) => phc,
        Err(e) => return reset_page(&headers, e.status, &f.token, Some(&e.detail)),
    };
    // A new password ends the user's sessions and every reset link of theirs.
    if let Err(e) = state.store.set_password(&user.id, &phc, now).await {
        return failure(None, e.into());
    }
    start_session(&state, &headers, &user.id, "/").await
}

async fn tokens_body(
    state: &AppState,
    session: &Session,
    new_secret: Option<(String, String)>,
) -> Result<Markup, ApiError> {
    let list = answer(tokens::list_tokens(State(state.clone()), session.caller.clone()).await).await?;
    Ok(html! {
        @if let Some((name, secret)) = new_secret {
            div role="status" {
                p { "Your new token " strong { (name) } ", shown this once (only its hash is kept):" }
                pre { code { (secret) } }
                p { "Use it as " code { "Authorization: Bearer …" } ", with " code { "aifactory login" } ", or as " code { "HF_TOKEN" } " for the Hugging Face client." }
            }
        }
        h2 { "Your API tokens" }
        div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" { table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Created" } th scope="col" { "State" } th scope="col" { span.visually-hidden { "Action" } } } }
            tbody {
                @for t in list["items"].as_array().into_iter().flatten() {
                    tr {
                        td { (text(t, "name")) }
                        td { (text(t, "created_at")) }
                        td { @if t["revoked_at"].is_null() { "active" } @else { "revoked " (text(t, "revoked_at")) } }
                        td { @if t["revoked_at"].is_null() {
                            form.inline method="post" action=(format!("/tokens/{}/revoke", text(t, "id"))) {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button type="submit" aria-label=(format!("Revoke {}", text(t, "name"))) { "Revoke" }
                            }
                        } }
                    }
                }
            }
        } }
        h2 { "New token" }
        form method="post" action="/tokens" {
            input type="hidden" name="csrf" value=(session.csrf);
            label for="token-name" { "Name (where you will use it)" }
            input id="token-name" name="name" required maxlength="100";
            div { button type="submit" { "Create the token" } }
        }
    })
}

pub(super) async fn tokens(State(state): State<AppState>, session: Session) -> Response {
    let body = tokens_body(&state, &session, None).await;
    super::render(&session, "API tokens", body)
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct NewToken {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

pub(super) async fn create_token(State(state): State<AppState>, session: Session, Form(f): Form<NewToken>) -> Response {
    if let Some(refused) = check_csrf(&session, &f.csrf) {
        return refused;
    }
    let created = match body(json!({ "name": f.name.trim() })) {
        Ok(b) => answer(tokens::create_token(State(state.clone()), session.caller.clone(), b).await).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(t) => {
            let body = tokens_body(&state, &session, Some((text(&t, "name"), text(&t, "token")))).await;
            super::render(&session, "API tokens", body)
        }
        Err(e) => failure(Some(&session), e),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Csrf {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn revoke_token(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(f): Form<Csrf>,
) -> Response {
    if let Some(refused) = check_csrf(&session, &f.csrf) {
        return refused;
    }
    match tokens::revoke_token(State(state), session.caller.clone(), Path(id)).await {
        Ok(_) => Redirect::to("/tokens").into_response(),
        Err(e) => failure(Some(&session), e),
    }
}
