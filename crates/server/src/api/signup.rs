//! Self-service registration: anyone registers themselves with their organisation, proves
//! their e-mail address with the code sent to it, and may then apply to calls.

use super::orgs::{OrgView, check_org_fields, org_view};
use super::prelude::*;
use super::users::{UserView, user_view};

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e(
            "post",
            "/api/v1/signup",
            "Register yourself and your organisation: a code is sent to the address, and nothing is created until it comes back",
            false,
            &[],
            Some(schema::<SignUpRequest>),
            post(sign_up),
        )
        .returns::<SignUpStarted>(),
        e(
            "post",
            "/api/v1/signup/verify",
            "Confirm the address with the code sent to it: the account, the organisation and a first API token are created",
            false,
            &[],
            Some(schema::<VerifyRequest>),
            post(verify),
        )
        .returns::<SignedUp>(),
    ]
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignUpRequest {
    email: String,
    name: String,
    organisation: super::orgs::CreateOrg,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyRequest {
    code: String,
}

/// The same answer whether or not the address has an account already: a stranger learns
/// nothing about who is registered.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SignUpStarted {
    email: String,
    next: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SignedUp {
    user: UserView,
    organisation: OrgView,
    /// An API token for the new account, shown once.
    token: String,
}

/// Codes are short enough to type: 8 characters of an alphabet without look-alikes.
fn new_code() -> Result<String, ApiError> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut raw = [0u8; 8];
    getrandom::getrandom(&mut raw).map_err(ApiError::internal)?;
    Ok(raw
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

fn normal_code(code: &str) -> String {
    code.trim().to_ascii_uppercase().replace(['-', ' '], "")
}

fn verification_message(email: &str, name: &str, code: &str) -> store::NewMessage {
    store::NewMessage {
        to_user_id: None,
        to_email: email.to_string(),
        kind: "verify-email".into(),
        subject: format!("Your aifactory confirmation code: {code}"),
        body: format!(
            "Hello {name},\n\nconfirm this e-mail address with the code\n\n    {code}\n\n(aifactory verify {code}, or POST /api/v1/signup/verify). It is valid for 24 hours; your account and organisation are created when you confirm.\n\nIf you did not register, ignore this message: nothing was created."
        ),
        about: None,
        dedupe_key: None,
    }
}

/// To an address that has an account already: no code, and no word to whoever asked.
fn already_registered(user: &User) -> store::NewMessage {
    store::NewMessage {
        to_user_id: Some(user.id.clone()),
        to_email: user.email.clone(),
        kind: "signup-existing-account".into(),
        subject: "You already have an aifactory account".into(),
        body: "Someone (perhaps you) asked to register this address, which has an account already. Sign in with one of your API tokens (aifactory login), or ask an organisation admin to invite you. If it was not you, ignore this message.".into(),
        about: None,
        dedupe_key: None,
    }
}

const CODE_VALID_S: i64 = 24 * 3600;

pub(crate) async fn sign_up(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    Body(b): Body<SignUpRequest>,
) -> ApiResult {
    state.limits.check_address(&address)?;
    let email = b.email.trim().to_string();
    if !access::call::looks_like_email(&email) {
        return Err(ApiError::field(
            "email",
            "`email` must be an e-mail address such as ada@example.eu",
        ));
    }
    non_empty("name", &b.name, 200)?;
    let org = check_org_fields(b.organisation, "organisation.")?;
    match state.store.user_by_email(&email).await? {
        Some(existing) => state.store.enqueue(&[already_registered(&existing)]).await?,
        None => {
            let code = new_code()?;
            state
                .store
                .start_sign_up(&store::SignUp {
                    user: NewUser {
                        email: email.clone(),
                        name: b.name.trim().to_string(),
                        platform_role: None,
                    },
                    org,
                    code_sha256: store::hash_secret(&code),
                    code_expires_at: unix_now() as i64 + CODE_VALID_S,
                    message: verification_message(&email, b.name.trim(), &code),
                })
                .await?;
        }
    }
    state.outbox_wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(SignUpStarted {
            next: format!("a confirmation code was sent to {email}: confirm it with POST /api/v1/signup/verify"),
            email,
        }),
    )
        .into_response())
}

pub(crate) async fn verify(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    Body(b): Body<VerifyRequest>,
) -> ApiResult {
    // Guessing codes is limited like signing up.
    state.limits.check_address(&address)?;
    let code = normal_code(&b.code);
    if code.len() != 8 {
        return Err(ApiError::field("code", "the code has 8 letters and digits"));
    }
    let (user, org, token) = state
        .store
        .complete_sign_up(&store::hash_secret(&code), unix_now() as i64, "signup")
        .await?;
    Ok(created(SignedUp {
        user: user_view(&user),
        organisation: org_view(&org),
        token,
    }))
}
