//! A client of Slurm's REST API (slurmrestd), over a unix socket (`rest_auth/local`) or
//! HTTP with a JWT (`X-SLURM-USER-TOKEN`). It reads `/openapi/v3` once and speaks the
//! highest API version both sides support (see [`mapping`]). Nothing here knows our jobs'
//! rules; the server maps its jobs to [`JobRequest`]s and Slurm's states back.

pub mod accounts;
pub mod mapping;

pub use accounts::AccountRequest;
pub use mapping::{ApiVersion, JobRequest, JobState, JobStatus, NodeInfo, NodeState};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("`{0}` is not a slurmrestd URL: use unix:/path/to/socket or http://host:port")]
    BadUrl(String),
    #[error("slurmrestd at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("slurmrestd answered HTTP {status}: {message}")]
    Http { status: u16, message: String },
    #[error(
        "slurmrestd refused our credentials (HTTP 401: {0}); check the token (--slurm-token-file or SLURM_JWT) and the user it was issued to"
    )]
    Unauthorized(String),
    #[error("the Slurm token: {0}")]
    Token(String),
    /// Slurm objected, for now (busy or unavailable nodes, a limit reached): worth a few
    /// more tries.
    #[error("Slurm refused: {0}")]
    Refused(String),
    /// Slurm will never run the job as asked (no such partition, account or QoS, a node
    /// configuration it does not have, a request it cannot parse).
    #[error("Slurm refused the job as asked: {0}")]
    Invalid(String),
    #[error("unexpected answer from slurmrestd: {0}")]
    Protocol(String),
    #[error("{0}")]
    Unsupported(String),
}

impl SlurmError {
    /// Worth retrying later (the daemons are down or restarting), as opposed to a refusal.
    pub fn is_transient(&self) -> bool {
        match self {
            // A token is renewed by the site (the file is re-read when it changes): until
            // then Slurm is as good as away, which is no reason to fail anybody's job.
            SlurmError::Unreachable { .. } | SlurmError::Unauthorized(_) | SlurmError::Token(_) => true,
            SlurmError::Http { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
enum Endpoint {
    Unix(PathBuf),
    Tcp { authority: String },
}

/// A JWT for slurmrestd's `rest_auth/jwt`, with the user it was issued to. Without a
/// user, the one the token names (its `sun` claim, as `scontrol token` issues them) goes
/// in `X-SLURM-USER-NAME`, which Slurm before 23.02 requires.
#[derive(Debug, Clone)]
pub struct Jwt {
    pub user: Option<String>,
    pub token: TokenSource,
}

/// Where the token comes from. Tokens expire, and sites renew them (`scontrol token
/// lifespan=...` from cron): a file is read again whenever it changes, so a renewal needs
/// no restart.
#[derive(Debug, Clone)]
pub enum TokenSource {
    Value(String),
    File(PathBuf),
}

/// The token in use and what it was read from.
#[derive(Debug, Default)]
struct LoadedToken {
    modified: Option<std::time::SystemTime>,
    token: String,
    user: Option<String>,
}

#[derive(Debug, Clone)]
struct Credentials {
    jwt: Jwt,
    loaded: std::sync::Arc<std::sync::Mutex<LoadedToken>>,
}

impl Credentials {
    fn new(jwt: Jwt) -> Result<Credentials, SlurmError> {
        let credentials = Credentials {
            jwt,
            loaded: Default::default(),
        };
        credentials.current()?;
        Ok(credentials)
    }

    /// The token and user name for the next request, reading the file again if it changed.
    fn current(&self) -> Result<(String, Option<String>), SlurmError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        match &self.jwt.token {
            TokenSource::Value(token) if loaded.token.is_empty() => {
                *loaded = LoadedToken {
                    modified: None,
                    token: token.trim().to_string(),
                    user: token_user(token),
                };
            }
            TokenSource::Value(_) => {}
            TokenSource::File(path) => {
                let modified = std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .map_err(|e| SlurmError::Token(format!("{}: {e}", path.display())))?;
                if loaded.token.is_empty() || loaded.modified != Some(modified) {
                    let token = read_token_file(path)?;
                    *loaded = LoadedToken {
                        modified: Some(modified),
                        user: token_user(&token),
                        token,
                    };
                }
            }
        }
        if loaded.token.is_empty() {
            return Err(SlurmError::Token("the token is empty".into()));
        }
        Ok((
            loaded.token.clone(),
            self.jwt.user.clone().or_else(|| loaded.user.clone()),
        ))
    }
}

/// A token file as `scontrol token` writes it (`SLURM_JWT=...`, or the bare token).
fn read_token_file(path: &std::path::Path) -> Result<String, SlurmError> {
    let text = std::fs::read_to_string(path).map_err(|e| SlurmError::Token(format!("{}: {e}", path.display())))?;
    let token = text.trim().trim_start_matches("SLURM_JWT=").to_string();
    if token.is_empty() {
        return Err(SlurmError::Token(format!("{} is empty", path.display())));
    }
    Ok(token)
}

impl Jwt {
    /// Who requests made with this token act as (and jobs run as): the user given, else
    /// the one the token names.
    pub fn user_name(&self) -> Option<String> {
        self.user.clone().or_else(|| match &self.token {
            TokenSource::Value(token) => token_user(token),
            TokenSource::File(path) => token_user(&read_token_file(path).ok()?),
        })
    }
}

/// The user a Slurm JWT was issued to: its `sun` claim. Nothing is verified here;
/// slurmctld checks the signature.
pub fn token_user(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.trim().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sun")?.as_str().map(str::to_string)
}

#[derive(Debug, Clone)]
pub struct Client {
    url: String,
    endpoint: Endpoint,
    credentials: Option<Credentials>,
    version: ApiVersion,
    /// The version of slurmdbd's API (accounts, associations) slurmrestd offers, if any.
    accounting: Option<accounts::DbApi>,
    timeout: Duration,
}

impl Client {
    /// Connects to slurmrestd at `url` and settles the API version.
    pub async fn connect(url: &str, jwt: Option<Jwt>) -> Result<Client, SlurmError> {
        let endpoint = if let Some(path) = url.strip_prefix("unix:") {
            Endpoint::Unix(PathBuf::from(path.trim_start_matches("//")))
        } else if let Some(rest) = url.strip_prefix("http://") {
            let authority = rest.trim_end_matches('/').to_string();
            if authority.is_empty() || authority.contains('/') {
                return Err(SlurmError::BadUrl(url.to_string()));
            }
            Endpoint::Tcp { authority }
        } else {
            return Err(SlurmError::BadUrl(url.to_string()));
        };
        let mut client = Client {
            url: url.to_string(),
            endpoint,
            credentials: jwt.map(Credentials::new).transpose()?,
            version: ApiVersion::V0038,
            accounting: None,
            timeout: Duration::from_secs(10),
        };
        let openapi = client.request("GET", "/openapi/v3", None).await?;
        client.version = mapping::pick_version(&openapi)?;
        client.accounting = accounts::pick_version(&openapi);
        Ok(client)
    }

    pub fn version(&self) -> ApiVersion {
        self.version
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, rest: &str) -> String {
        format!("/slurm/{}/{rest}", self.version.as_str())
    }

    /// Whether slurmctld answers through slurmrestd.
    pub async fn ping(&self) -> Result<(), SlurmError> {
        let body = self.request("GET", &self.path("ping"), None).await?;
        mapping::ping_answered(&body).map_err(|e| self.unreachable(e))
    }

    /// Submits a batch job and returns its Slurm id. A job Slurm queued while objecting
    /// to it is cancelled again and reported as refused: nothing half-submitted stays.
    pub async fn submit(&self, job: &JobRequest) -> Result<u64, SlurmError> {
        let body = mapping::submit_body(self.version, job)?;
        let answer = self.request("POST", &self.path("job/submit"), Some(&body)).await?;
        match mapping::parse_submit(&answer) {
            mapping::Submitted {
                job_id: Some(id),
                error: None,
            } => Ok(id),
            mapping::Submitted {
                job_id: Some(id),
                error: Some(e),
            } => {
                let _ = self.cancel(id).await;
                Err(mapping::refusal(&answer, e))
            }
            mapping::Submitted {
                job_id: None,
                error: Some(e),
            } => Err(mapping::refusal(&answer, e)),
            mapping::Submitted {
                job_id: None,
                error: None,
            } => Err(SlurmError::Protocol(format!(
                "no job_id in the submit answer: {answer}"
            ))),
        }
    }

    /// Every job slurmctld knows (one request, for all of ours).
    pub async fn jobs(&self) -> Result<Vec<JobStatus>, SlurmError> {
        self.jobs_changed_since(None).await
    }

    /// The jobs that changed since `update_time` (Unix seconds), or every job: the cheap
    /// way to follow many jobs, since a full list is large on a busy cluster.
    pub async fn jobs_changed_since(&self, update_time: Option<u64>) -> Result<Vec<JobStatus>, SlurmError> {
        let path = match update_time {
            Some(t) => format!("{}?update_time={t}", self.path("jobs")),
            None => self.path("jobs"),
        };
        mapping::parse_jobs(&self.request("GET", &path, None).await?)
    }

    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, SlurmError> {
        mapping::parse_nodes(&self.request("GET", &self.path("nodes"), None).await?)
    }

    /// Cancels a job (SIGTERM, then SIGKILL after slurm.conf's KillWait).
    pub async fn cancel(&self, slurm_id: u64) -> Result<(), SlurmError> {
        let body = self
            .request("DELETE", &self.path(&format!("job/{slurm_id}")), None)
            .await?;
        match mapping::errors(&body) {
            Some(e) => Err(SlurmError::Refused(e)),
            None => Ok(()),
        }
    }

    async fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, SlurmError> {
        let (status, value) = self.request_raw(method, path, body).await?;
        if status >= 400 {
            let message = mapping::errors(&value).unwrap_or_else(|| value.to_string());
            if mapping::is_refusal(&value) {
                return Err(mapping::refusal(&value, message));
            }
            return Err(SlurmError::Http { status, message });
        }
        Ok(value)
    }

    /// The status and body of an answer, whatever the status (authentication aside).
    async fn request_raw(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value), SlurmError> {
        tokio::time::timeout(self.timeout, self.exchange(method, path, body))
            .await
            .map_err(|_| self.unreachable(format!("no answer within {:?}", self.timeout)))?
    }

    fn unreachable(&self, reason: impl std::fmt::Display) -> SlurmError {
        SlurmError::Unreachable {
            url: self.url.clone(),
            reason: reason.to_string(),
        }
    }

    /// One request on a new connection (slurmrestd closes idle ones; a unix socket
    /// connects in microseconds).
    async fn exchange(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value), SlurmError> {
        let payload = body.map(Value::to_string).unwrap_or_default();
        let host = match &self.endpoint {
            Endpoint::Unix(_) => "localhost".to_string(),
            Endpoint::Tcp { authority } => authority.clone(),
        };
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", host)
            .header("accept", "application/json");
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        if let Some(credentials) = &self.credentials {
            let (token, user) = credentials.current()?;
            req = req.header("X-SLURM-USER-TOKEN", token);
            if let Some(user) = user {
                req = req.header("X-SLURM-USER-NAME", user);
            }
        }
        let req = req
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| SlurmError::Protocol(e.to_string()))?;
        let resp = match &self.endpoint {
            Endpoint::Unix(socket) => {
                let stream = tokio::net::UnixStream::connect(socket)
                    .await
                    .map_err(|e| self.unreachable(e))?;
                send(stream, req).await
            }
            Endpoint::Tcp { authority } => {
                let stream = tokio::net::TcpStream::connect(authority.as_str())
                    .await
                    .map_err(|e| self.unreachable(e))?;
                send(stream, req).await
            }
        }
        .map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.unreachable(e))?
            .to_bytes();
        let value: Value =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        if status == 401 || mapping::is_auth_error(&value) {
            let message = mapping::errors(&value).unwrap_or_else(|| value.as_str().unwrap_or_default().to_string());
            return Err(SlurmError::Unauthorized(message));
        }
        Ok((status, value))
    }
}

async fn send<S>(
    stream: S,
    req: hyper::Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender.send_request(req).await
}
