//! Users: the caller (`/me`) and creating users.

use super::prelude::*;

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
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
    ]
}

pub(crate) async fn me(caller: Caller) -> ApiResult {
    ok(json!({"user": user_view(&caller.user), "memberships": caller.memberships}))
}

/// A user as the API shows them: times in RFC 3339 like everywhere else.
pub(crate) fn user_view(u: &User) -> Value {
    json!({
        "id": u.id, "email": u.email, "name": u.name, "platform_role": u.platform_role,
        "created_at": rfc3339(u.created_at),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUser {
    email: String,
    name: String,
    platform_role: Option<PlatformRole>,
    org: Option<String>,
    role: Option<OrgRole>,
}

pub(crate) async fn create_user(State(state): State<AppState>, caller: Caller, Body(b): Body<CreateUser>) -> ApiResult {
    non_empty("name", &b.name, 200)?;
    if !b.email.contains('@') || b.email.len() > 320 {
        return Err(ApiError::field("email", "`email` is not an e-mail address"));
    }
    may_create_user(&caller, b.platform_role.is_some(), b.org.as_deref())?;
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
        .await
        .map_err(|e| match (e, &b.org) {
            (store::StoreError::Conflict(words), Some(org)) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{words}: invite it instead (POST /api/v1/orgs/{org}/invitations)"),
            ),
            (e, _) => ApiError::from(e),
        })?;
    if let Some(org) = &b.org {
        state
            .store
            .add_membership(&user.id, org, b.role.unwrap_or(OrgRole::Member))
            .await?;
    }
    Ok(created(user_view(&user)))
}

pub(crate) fn member_view(u: &User, role: Option<OrgRole>) -> Value {
    let mut v = json!({"id": u.id, "name": u.name, "email": u.email});
    if let Some(r) = role {
        v["role"] = json!(r);
    }
    v
}
