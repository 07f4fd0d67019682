//! Membership by consent: an organisation admin invites an e-mail address, and whoever
//! holds an account with it sees the invitation under `/me/invitations` and accepts or
//! declines it. Until then the inviter learns nothing of that person, not even whether an
//! account with the address exists.

use super::prelude::*;
use store::{Invitation, InvitationState};

/// How long an invitation waits for an answer.
const VALID_S: i64 = 14 * 86_400;

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e(
            "post",
            "/api/v1/orgs/{id}/invitations",
            "Invite an e-mail address into an organisation (organisation admin); it becomes a member when it accepts",
            true,
            &[],
            Some(obj(&[("email", "string")], &[("role", "string")])),
            post(invite),
        ),
        e(
            "get",
            "/api/v1/orgs/{id}/invitations",
            "An organisation's invitations and what became of them (organisation admin)",
            true,
            &[],
            None,
            get(org_invitations),
        ),
        e(
            "post",
            "/api/v1/orgs/{id}/invitations/{invitation}/revoke",
            "Withdraw an invitation that waits (organisation admin)",
            true,
            &[],
            None,
            post(revoke),
        ),
        e(
            "get",
            "/api/v1/me/invitations",
            "Invitations waiting for the caller's e-mail address",
            true,
            &[],
            None,
            get(my_invitations),
        ),
        e(
            "post",
            "/api/v1/invitations/{id}/accept",
            "Accept an invitation addressed to the caller: join the organisation",
            true,
            &[],
            None,
            post(accept),
        ),
        e(
            "post",
            "/api/v1/invitations/{id}/decline",
            "Decline an invitation addressed to the caller",
            true,
            &[],
            None,
            post(decline),
        ),
    ]
}

fn invitation_view(i: &Invitation, org_name: Option<&str>) -> Value {
    let mut v = json!({
        "id": i.id, "org": i.org_id, "email": i.email, "role": i.role, "state": i.state,
        "invited_by": i.invited_by, "created_at": rfc3339(i.created_at), "expires_at": rfc3339(i.expires_at),
        "decided_at": time(i.decided_at),
    });
    if let Some(name) = org_name {
        v["org_name"] = json!(name);
    }
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Invite {
    email: String,
    role: Option<OrgRole>,
}

pub(crate) async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<Invite>,
) -> ApiResult {
    admin_of(&caller, &id)?;
    state.store.get_org(&id).await?;
    let email = b.email.trim();
    if email.len() > 320 || email.split('@').filter(|part| !part.is_empty()).count() != 2 {
        return Err(ApiError::field("email", "`email` is not an e-mail address"));
    }
    let role = b.role.unwrap_or(OrgRole::Member);
    let invitation = state
        .store
        .create_invitation(&id, email, role, &caller.user.id, VALID_S)
        .await?;
    Ok(created(invitation_view(&invitation, None)))
}

pub(crate) async fn org_invitations(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult {
    admin_of(&caller, &id)?;
    let items = state.store.org_invitations(&id).await?;
    ok(json!({"items": items.iter().map(|i| invitation_view(i, None)).collect::<Vec<_>>()}))
}

pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, invitation)): Path<(String, String)>,
) -> ApiResult {
    admin_of(&caller, &id)?;
    let found = state.store.get_invitation(&invitation).await;
    if found.as_ref().map_or(true, |i| i.org_id != id) {
        return Err(ApiError::not_found("invitation", &invitation));
    }
    let revoked = state
        .store
        .decide_invitation(&invitation, InvitationState::Revoked, None)
        .await?;
    ok(invitation_view(&revoked, None))
}

pub(crate) async fn my_invitations(State(state): State<AppState>, caller: Caller) -> ApiResult {
    let mut items = Vec::new();
    for i in state.store.pending_invitations(&caller.user.email).await? {
        let org = state.store.get_org(&i.org_id).await?;
        items.push(invitation_view(&i, Some(&org.name)));
    }
    ok(json!({"items": items}))
}

async fn decide(state: AppState, caller: Caller, id: String, to: InvitationState) -> ApiResult {
    let invitation = addressed_to(&state, &caller, &id).await?;
    let decided = state
        .store
        .decide_invitation(&invitation.id, to, Some(&caller.user.id))
        .await?;
    // The caller's memberships changed: their next request must see them.
    state.auth_cache.clear();
    let org = state.store.get_org(&decided.org_id).await?;
    ok(invitation_view(&decided, Some(&org.name)))
}

pub(crate) async fn accept(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    decide(state, caller, id, InvitationState::Accepted).await
}

pub(crate) async fn decline(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    decide(state, caller, id, InvitationState::Declined).await
}
