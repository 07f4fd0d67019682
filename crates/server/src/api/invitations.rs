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
            Some(schema::<Invite>),
            post(invite),
        )
        .returns::<InvitationView>(),
        e(
            "get",
            "/api/v1/orgs/{id}/invitations",
            "An organisation's invitations and what became of them (organisation admin)",
            true,
            &[],
            None,
            get(org_invitations),
        )
        .returns::<Items<InvitationView>>(),
        e(
            "post",
            "/api/v1/orgs/{id}/invitations/{invitation}/revoke",
            "Withdraw an invitation that waits (organisation admin)",
            true,
            &[],
            None,
            post(revoke),
        )
        .returns::<InvitationView>(),
        e(
            "get",
            "/api/v1/me/invitations",
            "Invitations waiting for the caller's e-mail address",
            true,
            &[],
            None,
            get(my_invitations),
        )
        .returns::<Items<InvitationView>>(),
        e(
            "post",
            "/api/v1/invitations/{id}/accept",
            "Accept an invitation addressed to the caller: join the organisation",
            true,
            &[],
            None,
            post(accept),
        )
        .returns::<InvitationView>(),
        e(
            "post",
            "/api/v1/invitations/{id}/decline",
            "Decline an invitation addressed to the caller",
            true,
            &[],
            None,
            post(decline),
        )
        .returns::<InvitationView>(),
    ]
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct InvitationView {
    id: String,
    org: String,
    /// The inviting organisation's name (shown to the invitee).
    #[serde(skip_serializing_if = "Option::is_none")]
    org_name: Option<String>,
    email: String,
    role: OrgRole,
    state: InvitationState,
    invited_by: String,
    created_at: String,
    expires_at: String,
    decided_at: Option<String>,
}

fn invitation_view(i: &Invitation, org_name: Option<&str>) -> InvitationView {
    InvitationView {
        id: i.id.clone(),
        org: i.org_id.clone(),
        org_name: org_name.map(str::to_string),
        email: i.email.clone(),
        role: i.role,
        state: i.state,
        invited_by: i.invited_by.clone(),
        created_at: rfc3339(i.created_at),
        expires_at: rfc3339(i.expires_at),
        decided_at: i.decided_at.map(rfc3339),
    }
}

#[derive(Deserialize, JsonSchema)]
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
    ok(super::items(items.iter().map(|i| invitation_view(i, None)).collect()))
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
    ok(super::items(items))
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
