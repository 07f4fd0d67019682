//! Sends the outbox by e-mail: a worker takes due messages, hands each to the SMTP server
//! and marks it sent, or keeps it with a later retry time (backoff up to an hour) while
//! the server is away. Without an SMTP server configured, messages stay in the outbox and
//! are read through the API (`GET /api/v1/notifications`).

use crate::AppState;
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// Where mail goes: `smtp://host:port` (plain SMTP, as to a relay on the same host or
/// network) and the sender's address.
#[derive(Debug, Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub from: String,
}

impl Smtp {
    /// Parses `smtp://host[:port]` (port 25 by default).
    pub fn parse(url: &str, from: &str) -> Result<Smtp, String> {
        let rest = url
            .strip_prefix("smtp://")
            .ok_or_else(|| format!("the SMTP URL must look like smtp://host:port, got `{url}`"))?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| format!("bad port in `{url}`"))?),
            None => (rest, 25),
        };
        if host.is_empty() {
            return Err(format!("no host in `{url}`"));
        }
        from.parse::<Mailbox>()
            .map_err(|e| format!("the sender `{from}` is not an e-mail address: {e}"))?;
        Ok(Smtp {
            host: host.to_string(),
            port,
            from: from.to_string(),
        })
    }
}

/// Seconds before the next try after `attempts` failures: 5, 10, 20... at most an hour.
pub fn backoff(attempts: i64) -> i64 {
    (5i64 << attempts.clamp(0, 10)).min(3600)
}

/// Runs until the process ends.
pub fn start(state: AppState, smtp: Smtp) {
    tokio::spawn(async move {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.clone())
            .port(smtp.port)
            .timeout(Some(Duration::from_secs(10)))
            .build();
        loop {
            let sent = send_due(&state, &transport, &smtp).await;
            if sent == 0 {
                let _ = tokio::time::timeout(Duration::from_secs(1), state.outbox_wake.notified()).await;
            }
        }
    });
}

async fn send_due(state: &AppState, transport: &AsyncSmtpTransport<Tokio1Executor>, smtp: &Smtp) -> usize {
    let now = crate::accounting::unix_now() as i64;
    let due = match state.store.due_messages(now, 50).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the outbox");
            return 0;
        }
    };
    let mut sent = 0;
    for m in due {
        let result = match build(smtp, &m) {
            Ok(email) => transport.send(email).await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let now = crate::accounting::unix_now() as i64;
        let failed = result.is_err();
        let saved = match result {
            Ok(()) => {
                sent += 1;
                state.store.mark_sent(&m.id, now).await
            }
            Err(e) => {
                tracing::warn!(to = %m.to_email, error = %e, attempts = m.attempts + 1, "mail not sent; will retry");
                state.store.mark_failed(&m.id, &e, now + backoff(m.attempts)).await
            }
        };
        if let Err(e) = saved {
            tracing::warn!(error = %e, "cannot update the outbox");
        }
        if failed {
            // The server may be away: leave the rest for the next round.
            break;
        }
    }
    sent
}

fn build(smtp: &Smtp, m: &store::Message) -> Result<Message, String> {
    Message::builder()
        .from(smtp.from.parse::<Mailbox>().map_err(|e| e.to_string())?)
        .to(m
            .to_email
            .parse::<Mailbox>()
            .map_err(|e| format!("bad address `{}`: {e}", m.to_email))?)
        .subject(&m.subject)
        .header(ContentType::TEXT_PLAIN)
        .body(m.body.clone())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_and_backoff() {
        let s = Smtp::parse("smtp://127.0.0.1:2525", "factory@example.eu").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 2525));
        assert_eq!(Smtp::parse("smtp://mail.example.eu", "a@b.eu").unwrap().port, 25);
        assert!(Smtp::parse("http://x", "a@b.eu").is_err());
        assert!(Smtp::parse("smtp://x:y", "a@b.eu").is_err());
        assert!(Smtp::parse("smtp://x:25", "not an address").is_err());
        assert_eq!(backoff(0), 5);
        assert_eq!(backoff(1), 10);
        assert_eq!(backoff(20), 3600);
    }
}
