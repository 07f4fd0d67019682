//! `aifactory serve`: the factory itself. Settings come from a TOML file, then
//! `AIFACTORY_*` environment variables, then flags (flags win).

use anyhow::{Context, Result};
use domain::Cluster;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "AIFACTORY_LISTEN")]
    listen: Option<SocketAddr>,
    /// Where the embedded database, job directories and logs live [default: ./aifactory-data].
    #[arg(long, env = "AIFACTORY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://...) instead of the embedded SQLite database.
    #[arg(long, env = "AIFACTORY_DATABASE")]
    database: Option<String>,
    /// Cluster description (TOML, see docs/cluster-format.md) [default: one local node with 8 virtual GPUs].
    #[arg(long, env = "AIFACTORY_CLUSTER")]
    cluster: Option<PathBuf>,
    /// Seed a demo factory on first start and write its users' tokens to <data-dir>/demo-tokens.json.
    #[arg(long, env = "AIFACTORY_DEMO")]
    demo: bool,
    /// Price charged per GPU-hour, in cents [default: 250].
    #[arg(long, env = "AIFACTORY_CENTS_PER_GPU_HOUR")]
    cents_per_gpu_hour: Option<i64>,
    /// Settings file (TOML with the same names as the flags, in snake_case).
    #[arg(long, env = "AIFACTORY_CONFIG")]
    config: Option<PathBuf>,
    /// Where jobs run: `local` processes or `slurm` [default: local].
    #[arg(long, env = "AIFACTORY_EXECUTOR")]
    executor: Option<String>,
    /// slurmrestd: unix:/path/to/socket (rest_auth/local) or http://host:port (JWT).
    #[arg(long, env = "AIFACTORY_SLURM_URL")]
    slurm_url: Option<String>,
    /// `aifactory` (our engine decides, Slurm runs) or `slurm` (Slurm's queue decides) [default: slurm].
    #[arg(long, env = "AIFACTORY_SLURM_MODE")]
    slurm_mode: Option<String>,
    /// File holding the JWT for slurmrestd (X-SLURM-USER-TOKEN), re-read when it changes;
    /// or set SLURM_JWT.
    #[arg(long, env = "AIFACTORY_SLURM_TOKEN_FILE")]
    slurm_token_file: Option<PathBuf>,
    /// The user the JWT belongs to (X-SLURM-USER-NAME) [default: the token's `sun` claim].
    #[arg(long, env = "AIFACTORY_SLURM_USER")]
    slurm_user: Option<String>,
    /// How often Slurm's job and node lists are read, in milliseconds [default: 1000].
    #[arg(long, env = "AIFACTORY_SLURM_POLL_MS")]
    slurm_poll_ms: Option<u64>,
    /// The site of ours that Slurm's GPU nodes make up [default: slurm].
    #[arg(long, env = "AIFACTORY_SLURM_SITE")]
    slurm_site: Option<String>,
    /// That site's country (ISO 3166-1 alpha-2) [default: EU].
    #[arg(long, env = "AIFACTORY_SLURM_COUNTRY")]
    slurm_country: Option<String>,
    /// Slurm partition, account and QoS for every job [default: Slurm's defaults].
    #[arg(long, env = "AIFACTORY_SLURM_PARTITION")]
    slurm_partition: Option<String>,
    #[arg(long, env = "AIFACTORY_SLURM_ACCOUNT")]
    slurm_account: Option<String>,
    #[arg(long, env = "AIFACTORY_SLURM_QOS")]
    slurm_qos: Option<String>,
    /// The Slurm account of each project awarded through a call, `{project}` standing for
    /// the project's id (e.g. `aif_{project}`): where the site keeps an account per project
    /// [default: none; the allocation's or the executor's account applies]. The account
    /// is created through slurmdbd's API when the award is accepted, with an association
    /// for the user Slurm runs jobs as (who must be a Slurm operator to create it).
    #[arg(long, env = "AIFACTORY_SLURM_ACCOUNT_TEMPLATE")]
    slurm_account_template: Option<String>,
    /// The Slurm cluster (ClusterName) those accounts are created on [default: the only
    /// cluster slurmdbd keeps].
    #[arg(long, env = "AIFACTORY_SLURM_CLUSTER")]
    slurm_cluster: Option<String>,
    /// A catalogue to harvest on a schedule, as NAME=URL of its DCAT-AP document (Turtle,
    /// RDF/XML or JSON-LD); repeat for several.
    #[arg(long = "harvest", value_name = "NAME=URL")]
    harvest: Vec<String>,
    /// How often those catalogues are harvested, seconds [default: 3600].
    #[arg(long, env = "AIFACTORY_HARVEST_EVERY_S")]
    harvest_every_s: Option<u64>,
    /// Keep the hub's contents on S3-compatible storage at this endpoint (http://host:port;
    /// credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) instead of
    /// <data-dir>/blobs [default: local disk].
    #[arg(long, env = "AIFACTORY_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// The bucket, with --s3-endpoint.
    #[arg(long, env = "AIFACTORY_S3_BUCKET")]
    s3_bucket: Option<String>,
    /// A key prefix inside the bucket [default: aifactory].
    #[arg(long, env = "AIFACTORY_S3_PREFIX")]
    s3_prefix: Option<String>,
    /// The bucket's region [default: us-east-1].
    #[arg(long, env = "AWS_REGION")]
    s3_region: Option<String>,
    /// The most hub content one organisation may keep, in GB (each content counted once,
    /// old revisions included) [default: no limit].
    #[arg(long, env = "AIFACTORY_HUB_QUOTA_GB")]
    hub_quota_gb: Option<u64>,
    /// The address jobs reach this factory at (their `HF_ENDPOINT` and `AIFACTORY_URL`, to
    /// push what they made) [default: http:// and the listening address].
    #[arg(long, env = "AIFACTORY_PUBLIC_URL")]
    public_url: Option<String>,
    /// SMTP server notifications are e-mailed through, smtp://host:port [default: none;
    /// they wait in the outbox and show in the API].
    #[arg(long, env = "AIFACTORY_SMTP_URL")]
    smtp_url: Option<String>,
    /// The sender of those e-mails [default: aifactory@localhost.localdomain].
    #[arg(long, env = "AIFACTORY_MAIL_FROM")]
    mail_from: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database: Option<String>,
    cluster: Option<PathBuf>,
    demo: Option<bool>,
    cents_per_gpu_hour: Option<i64>,
    executor: Option<String>,
    slurm_url: Option<String>,
    slurm_mode: Option<String>,
    slurm_token_file: Option<PathBuf>,
    slurm_user: Option<String>,
    slurm_poll_ms: Option<u64>,
    slurm_site: Option<String>,
    slurm_country: Option<String>,
    slurm_partition: Option<String>,
    slurm_account: Option<String>,
    slurm_qos: Option<String>,
    smtp_url: Option<String>,
    mail_from: Option<String>,
    slurm_account_template: Option<String>,
    slurm_cluster: Option<String>,
    harvest: Option<Vec<String>>,
    harvest_every_s: Option<u64>,
    public_url: Option<String>,
    hub_quota_gb: Option<u64>,
    s3_endpoint: Option<String>,
    s3_bucket: Option<String>,
    s3_prefix: Option<String>,
    s3_region: Option<String>,
}

/// The Slurm executor's settings (flags over file), or the local executor.
fn executor(args: &Args, file: &FileSettings) -> Result<server::ExecutorChoice> {
    let pick = |a: &Option<String>, f: &Option<String>| a.clone().or_else(|| f.clone());
    match pick(&args.executor, &file.executor).as_deref() {
        None | Some("local") => return Ok(server::ExecutorChoice::Local),
        Some("slurm") => {}
        Some(other) => anyhow::bail!("--executor is local or slurm, not `{other}`"),
    }
    let url = pick(&args.slurm_url, &file.slurm_url)
        .context("--executor slurm needs --slurm-url (unix:/path/to/socket or http://host:port)")?;
    let token = match args.slurm_token_file.clone().or_else(|| file.slurm_token_file.clone()) {
        Some(path) => {
            // Read now for a clear error at start; the executor reads it again whenever
            // it changes, so a renewed token needs no restart.
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading the Slurm token {}", path.display()))?;
            anyhow::ensure!(
                !text.trim().is_empty(),
                "the Slurm token file {} is empty",
                path.display()
            );
            Some(slurm::TokenSource::File(path))
        }
        None => std::env::var("SLURM_JWT")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .map(slurm::TokenSource::Value),
    };
    if url.starts_with("http://") && token.is_none() {
        anyhow::bail!("slurmrestd over HTTP needs a JWT: --slurm-token-file FILE or SLURM_JWT");
    }
    let mode = pick(&args.slurm_mode, &file.slurm_mode)
        .unwrap_or_else(|| "slurm".into())
        .parse()
        .map_err(anyhow::Error::msg)?;
    Ok(server::ExecutorChoice::Slurm {
        config: Box::new(exec::slurm::SlurmConfig {
            url,
            jwt: token.map(|token| slurm::Jwt {
                user: pick(&args.slurm_user, &file.slurm_user),
                token,
            }),
            poll: std::time::Duration::from_millis(args.slurm_poll_ms.or(file.slurm_poll_ms).unwrap_or(1000).max(50)),
            partition: pick(&args.slurm_partition, &file.slurm_partition),
            account: pick(&args.slurm_account, &file.slurm_account),
            qos: pick(&args.slurm_qos, &file.slurm_qos),
            cluster: pick(&args.slurm_cluster, &file.slurm_cluster),
            hold: None,
        }),
        mode,
        site: pick(&args.slurm_site, &file.slurm_site).unwrap_or_else(|| "slurm".into()),
        country: pick(&args.slurm_country, &file.slurm_country).unwrap_or_else(|| "EU".into()),
    })
}

pub fn run(args: Args) -> Result<()> {
    let file: FileSettings = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("settings file {}", path.display()))?
        }
        None => FileSettings::default(),
    };
    let executor = executor(&args, &file)?;
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| "127.0.0.1:8080".parse().expect("valid default"));
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("./aifactory-data"));
    let demo = args.demo || file.demo.unwrap_or(false);
    let cluster = match args.cluster.or(file.cluster) {
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading cluster {}", path.display()))?;
            Cluster::from_toml(&text).with_context(|| format!("cluster file {}", path.display()))?
        }
        None if demo => server::demo::demo_cluster(),
        None => server::local_cluster(8),
    };
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let database = args
        .database
        .or(file.database)
        .unwrap_or_else(|| format!("sqlite:{}", data_dir.join("aifactory.sqlite").display()));
    let smtp = match args.smtp_url.or(file.smtp_url) {
        Some(url) => {
            let from = args
                .mail_from
                .or(file.mail_from)
                .unwrap_or_else(|| "aifactory@localhost.localdomain".into());
            Some(server::mail::Smtp::parse(&url, &from).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let slurm_account_template = args.slurm_account_template.or(file.slurm_account_template);
    if let Some(t) = &slurm_account_template {
        let example = t.replace("{project}", "prj_01a22c5827dd00000edac9c4");
        let fits = t.contains("{project}")
            && example.len() <= 64
            && example
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        anyhow::ensure!(
            fits,
            "--slurm-account-template must contain {{project}} and make a Slurm name (letters, digits, `_`, `-`, `.`; 64 at most): `{t}`"
        );
    }
    anyhow::ensure!(
        slurm_account_template.is_none() || matches!(executor, server::ExecutorChoice::Slurm { .. }),
        "--slurm-account-template needs --executor slurm: the accounts are Slurm's"
    );
    let harvest = if args.harvest.is_empty() {
        file.harvest.unwrap_or_default()
    } else {
        args.harvest
    };
    let mut harvest_sources = Vec::new();
    for h in harvest {
        let Some((name, url)) = h.split_once('=') else {
            anyhow::bail!("--harvest takes NAME=URL, not `{h}`");
        };
        // No TLS stack is built in (as for the client commands): an https catalogue is
        // reached through a local forward proxy or mirror.
        anyhow::ensure!(
            url.starts_with("http://"),
            "--harvest {name}: `{url}` is not an http:// URL (https goes through a local proxy or mirror)"
        );
        harvest_sources.push((name.to_string(), url.to_string()));
    }
    let harvest_every =
        std::time::Duration::from_secs(args.harvest_every_s.or(file.harvest_every_s).unwrap_or(3600).max(1));
    let public_url = match args.public_url.or(file.public_url) {
        Some(u) => u.trim_end_matches('/').to_string(),
        // A job on this machine reaches a wildcard address on loopback.
        None if listen.ip().is_unspecified() => format!("http://127.0.0.1:{}", listen.port()),
        None => format!("http://{listen}"),
    };
    let s3 = match (args.s3_endpoint.or(file.s3_endpoint), args.s3_bucket.or(file.s3_bucket)) {
        (None, None) => None,
        (Some(endpoint), Some(bucket)) => {
            anyhow::ensure!(
                endpoint.starts_with("http://"),
                "--s3-endpoint: `{endpoint}` is not an http:// URL (https goes through a local proxy)"
            );
            Some(hub::s3::S3Config {
                endpoint: endpoint.trim_end_matches('/').to_string(),
                bucket,
                prefix: args.s3_prefix.or(file.s3_prefix).unwrap_or_else(|| "aifactory".into()),
                region: args.s3_region.or(file.s3_region).unwrap_or_else(|| "us-east-1".into()),
            })
        }
        _ => anyhow::bail!("--s3-endpoint and --s3-bucket go together"),
    };
    let mut config = server::Config {
        hub_quota_bytes: args
            .hub_quota_gb
            .or(file.hub_quota_gb)
            .map(|gb| gb.saturating_mul(1_000_000_000)),
        s3,
        public_url: Some(public_url),
        data_dir: data_dir.clone(),
        harvest_sources,
        harvest_every,
        executor,
        smtp,
        slurm_account_template,
        ..server::Config::default()
    };
    if let Some(c) = args.cents_per_gpu_hour.or(file.cents_per_gpu_hour) {
        config.cents_per_gpu_hour = c;
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let store = store::Store::connect(&database)
            .await
            .with_context(|| format!("opening the database {}", redact(&database)))?;
        if demo {
            let blobs = server::hub::open_blobs(&data_dir, config.s3.as_ref()).map_err(anyhow::Error::msg)?;
            match server::demo::seed_with(&store, &data_dir, &blobs).await? {
                Some(_) => {
                    let password = server::demo::set_portal_passwords(&store, &data_dir).await?;
                    eprintln!(
                        "demo factory seeded; tokens of its users are in {}; the portal's demo users (startup@startup.example, operator@factory.example, reviewer@factory.example, manager@factory.example...) sign in with the password {password}",
                        data_dir.join("demo-tokens.json").display()
                    )
                }
                None => eprintln!(
                    "demo data already present; tokens in {}",
                    data_dir.join("demo-tokens.json").display()
                ),
            }
        }
        let state = server::start(store, cluster, config)
            .await
            .map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        eprintln!(
            "aifactory is serving on http://{listen} (data in {})",
            data_dir.display()
        );
        if demo {
            eprintln!("try:  export AIFACTORY_URL=http://{listen}");
            eprintln!(
                "      export AIFACTORY_TOKEN=$(python3 -c 'import json;print(json.load(open(\"{}\"))[\"startup\"])')",
                data_dir.join("demo-tokens.json").display()
            );
            eprintln!(
                "      aifactory job submit --gpus 1 --time 5 --wait -- sh -c 'echo hello from $CUDA_VISIBLE_DEVICES'"
            );
        }
        let (stopping, mut stopped) = tokio::sync::watch::channel(false);
        let serving = axum::serve(
            listener,
            server::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            stop_requested().await;
            let _ = stopping.send(true);
        });
        tokio::select! {
            served = async { serving.await } => served.context("serving")?,
            // A followed log can stay open for as long as its job runs: don't wait for it.
            () = async {
                let _ = stopped.wait_for(|s| *s).await;
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            } => tracing::warn!("requests still open 10 s after the stop (followed logs?): stopping anyway"),
        }
        // Requests in flight were answered; running jobs go on and are adopted by the
        // next start (the store already says where each one is).
        tracing::info!("stopped; running jobs are left to the next start");
        Ok(())
    })
}

/// Ctrl-C, or SIGTERM (what systemd, Kubernetes and `kill` send).
async fn stop_requested() {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("stopping: finishing the requests in flight");
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}
