//! API tokens of the caller (secrets hashed at rest).

use super::prelude::*;

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e(
            "post",
            "/api/v1/tokens",
            "Create an API token (the secret is shown once)",
            true,
            &[],
            Some(schema::<CreateToken>),
            post(create_token),
        )
        .returns::<NewTokenView>(),
        e(
            "get",
            "/api/v1/tokens",
            "The caller's tokens",
            true,
            &[],
            None,
            get(list_tokens),
        )
        .returns::<Items<TokenView>>(),
        e(
            "delete",
            "/api/v1/tokens/{id}",
            "Revoke a token",
            true,
            &[],
            None,
            axum::routing::delete(revoke_token),
        ),
    ]
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateToken {
    name: String,
    /// Platform admins may create a token for another user (for onboarding).
    user: Option<String>,
}

pub(crate) async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Body(b): Body<CreateToken>,
) -> ApiResult {
    non_empty("name", &b.name, 100)?;
    let user = match b.user {
        Some(u) if u != caller.user.id => {
            platform_admin(&caller, "only platform admins create tokens for others")?;
            state.store.get_user(&u).await?.id
        }
        _ => caller.user.id.clone(),
    };
    let (token, secret) = state.store.create_token(&user, &b.name).await?;
    Ok(created(NewTokenView {
        id: token.id,
        name: token.name,
        user: token.user_id,
        token: secret,
        created_at: rfc3339(token.created_at),
    }))
}

/// A new token: its secret is shown this once and kept only hashed.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct NewTokenView {
    id: String,
    name: String,
    user: String,
    token: String,
    created_at: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct TokenView {
    id: String,
    name: String,
    created_at: String,
    revoked_at: Option<String>,
}

pub(crate) async fn list_tokens(State(state): State<AppState>, caller: Caller) -> ApiResult {
    let tokens = state.store.list_tokens(&caller.user.id).await?;
    ok(items(
        tokens
            .iter()
            .map(|t| TokenView {
                id: t.id.clone(),
                name: t.name.clone(),
                created_at: rfc3339(t.created_at),
                revoked_at: t.revoked_at.map(rfc3339),
            })
            .collect(),
    ))
}

pub(crate) async fn revoke_token(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    state.store.revoke_token(&caller.user.id, &id).await?;
    state.auth_cache.clear();
    Ok(StatusCode::NO_CONTENT.into_response())
}
