//! The caller's notifications: what was (or will be) e-mailed to them, read in the API too.

use super::prelude::*;

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e(
            "get",
            "/api/v1/notifications",
            "The caller's notifications, newest first, with whether each was e-mailed",
            true,
            &[],
            None,
            get(list_notifications),
        )
        .returns::<Items<NotificationView>>(),
    ]
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct NotificationView {
    id: String,
    kind: String,
    subject: String,
    body: String,
    about: Option<String>,
    created_at: String,
    /// When the e-mail went out; null while it waits in the outbox.
    emailed_at: Option<String>,
}

pub(crate) async fn list_notifications(State(state): State<AppState>, caller: Caller) -> ApiResult {
    let messages = state.store.messages_for(&caller.user.id, 200).await?;
    ok(items(
        messages
            .into_iter()
            // A code that proves an address is for the mailbox alone.
            .filter(|m| m.kind != "verify-email")
            .map(|m| NotificationView {
                id: m.id,
                kind: m.kind,
                subject: m.subject,
                body: m.body,
                about: m.about,
                created_at: rfc3339(m.created_at),
                emailed_at: m.sent_at.map(rfc3339),
            })
            .collect(),
    ))
}
