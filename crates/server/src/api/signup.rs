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
            "Register yourself and your organisation; a code to confirm the e-mail address is sent to it",
            false,
            &[],
            Some(schema::<SignUpRequest>),
            post(sign_up),
        )
        .returns::<SignedUp>(),
        e(
            "post",
            "/api/v1/signup/verify",
            "Confirm an e-mail address with the code sent to it",
            false,
            &[],
            Some(schema::<VerifyRequest>),
            post(verify),
        )
        .returns::<UserView>(),
        e(
            "post",
            "/api/v1/signup/resend",
            "Send a new confirmation code to the caller's address",
            true,
            &[],
            None,
            post(resend),
        ),
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

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SignedUp {
    user: UserView,
    organisation: OrgView,
    /// An API token for the new account, shown once.
    token: String,
    /// What to do next.
    next: String,
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
            "Hello {name},\n\nconfirm this e-mail address with the code\n\n    {code}\n\n(aifactory verify {code}, or POST /api/v1/signup/verify). It is valid for 24 hours.\n\nIf you did not register, ignore this message."
        ),
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
    let code = new_code()?;
    let (user, org, token) = state
        .store
        .sign_up(&store::SignUp {
            user: NewUser {
                email: email.clone(),
                name: b.name.trim().to_string(),
                platform_role: None,
            },
            org,
            token_name: "signup".into(),
            code_sha256: store::hash_secret(&code),
            code_expires_at: unix_now() as i64 + CODE_VALID_S,
            message: verification_message(&email, b.name.trim(), &code),
        })
        .await?;
    state.outbox_wake.notify_one();
    Ok(created(SignedUp {
        user: user_view(&user),
        organisation: org_view(&org),
        token,
        next: format!("a confirmation code was sent to {email}: confirm it with POST /api/v1/signup/verify"),
    }))
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
    let user = state
        .store
        .verify_email(&store::hash_secret(&code), unix_now() as i64)
        .await?;
    state.auth_cache.clear();
    ok(user_view(&user))
}

pub(crate) async fn resend(State(state): State<AppState>, caller: Caller) -> ApiResult {
    state.limits.check_address(&caller.user.id)?;
    if caller.user.email_verified_at.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already-verified",
            "this address is confirmed already",
        ));
    }
    let code = new_code()?;
    let mut message = verification_message(&caller.user.email, &caller.user.name, &code);
    message.to_user_id = Some(caller.user.id.clone());
    state
        .store
        .renew_verification(
            &caller.user,
            &store::hash_secret(&code),
            unix_now() as i64 + CODE_VALID_S,
            &message,
        )
        .await?;
    state.outbox_wake.notify_one();
    Ok(StatusCode::ACCEPTED.into_response())
}
