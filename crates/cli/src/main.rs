//! The `aifactory` binary: one subcommand per role.

mod bench;
mod bench_access;
mod bench_api;
mod bench_fairness;
mod bench_hub;
mod bench_portal;
mod bench_slurm;
mod client;
mod serve;
mod simulate;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "aifactory", version, about = "Operating platform for an AI Factory")]
struct Cli {
    /// Log progress details to stderr.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the factory: HTTP API, store, scheduler and local executor.
    Serve(Box<serve::Args>),
    /// Save the factory's address and your token for the other commands.
    Login {
        #[arg(long)]
        url: String,
        #[arg(long, env = "AIFACTORY_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Organisations.
    Org {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: client::OrgCmd,
    },
    /// Invitations to join an organisation: list yours, accept, decline.
    Invitation {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: client::InvitationCmd,
    },
    /// Projects.
    Project {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: client::ProjectCmd,
    },
    /// Allocations of GPU-hours.
    Alloc {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: client::AllocCmd,
    },
    /// Sites: their partitions, GPUs, GPU-hour prices and carbon intensity.
    Site {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: client::SiteCmd,
    },
    /// Nodes: list, drain, resume (site operators).
    Node {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: client::NodeCmd,
    },
    /// Jobs: submit (like sbatch), list, show, cancel, logs.
    Job {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: client::JobCmd,
    },
    /// GPU-seconds, energy, carbon and cost used.
    Usage {
        #[command(flatten)]
        conn: client::Conn,
        #[command(flatten)]
        scope: client::UsageArgs,
    },
    /// Register yourself and your organisation (self-service); a code is e-mailed to you.
    Register {
        #[command(flatten)]
        conn: client::Conn,
        #[command(flatten)]
        args: client::RegisterArgs,
    },
    /// Confirm your e-mail address with the code you received.
    Verify {
        #[command(flatten)]
        conn: client::Conn,
        code: String,
    },
    /// Calls for proposals: list, show; create and close (programme managers).
    Call {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: client::CallCmd,
    },
    /// Apply to a call (eligibility is decided at once; a playground may award at once).
    Apply {
        #[command(flatten)]
        conn: client::Conn,
        #[command(flatten)]
        args: Box<client::ApplyArgs>,
    },
    /// Your applications: show, accept an award, withdraw, reply; assess and decide (programme managers).
    Application {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: client::ApplicationCmd,
    },
    /// Peer review: your inbox, scores, conflicts; assignment and ranking (programme managers).
    Review {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: client::ReviewCmd,
    },
    /// Training courses: list, enrol; create, enrol a class from CSV, completion (programme managers).
    Course {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: client::CourseCmd,
    },
    /// Datasets: search the catalogue, pull and push, ask for and grant access, the audit log.
    Data {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: client::HubCmd,
    },
    /// Models: search the catalogue, pull and push, ask for and grant access, the audit log.
    Model {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: client::HubCmd,
    },
    /// Reports for staff: the access programme's indicators, usage (tables or CSV).
    Report {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: client::ReportCmd,
    },
    /// What the factory told you (also sent by e-mail).
    Notifications {
        #[command(flatten)]
        conn: client::Conn,
    },
    /// Replay a job trace on a cluster with one or several scheduling policies.
    Simulate(Box<simulate::Args>),
    /// Run the performance benchmarks and print their figures.
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(if cli.verbose {
            tracing::Level::INFO
        } else {
            tracing::Level::WARN
        })
        .with_target(false)
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args).map(|()| 0),
        Command::Login { url, token } => client::login(url, token).map(|()| 0),
        Command::Org { conn, cmd } => client::org(&conn, cmd).map(|()| 0),
        Command::Invitation { conn, cmd } => client::invitation(&conn, cmd).map(|()| 0),
        Command::Project { conn, cmd } => client::project(&conn, cmd).map(|()| 0),
        Command::Alloc { conn, cmd } => client::alloc(&conn, cmd).map(|()| 0),
        Command::Job { conn, cmd } => client::job(&conn, cmd),
        Command::Node { conn, cmd } => client::node(&conn, cmd).map(|()| 0),
        Command::Site { conn, cmd } => client::site(&conn, cmd).map(|()| 0),
        Command::Usage { conn, scope } => client::usage(&conn, scope).map(|()| 0),
        Command::Register { conn, args } => client::register(&conn, args).map(|()| 0),
        Command::Verify { conn, code } => client::verify(&conn, code).map(|()| 0),
        Command::Call { conn, cmd } => client::call_cmd(&conn, cmd).map(|()| 0),
        Command::Apply { conn, args } => client::apply(&conn, *args).map(|()| 0),
        Command::Application { conn, cmd } => client::application(&conn, cmd).map(|()| 0),
        Command::Review { conn, cmd } => client::review(&conn, cmd).map(|()| 0),
        Command::Course { conn, cmd } => client::course(&conn, cmd).map(|()| 0),
        Command::Report { conn, cmd } => client::report(&conn, cmd).map(|()| 0),
        Command::Data { conn, cmd } => client::hub(&conn, client::Kind::Dataset, cmd).map(|()| 0),
        Command::Model { conn, cmd } => client::hub(&conn, client::Kind::Model, cmd).map(|()| 0),
        Command::Notifications { conn } => client::notifications(&conn).map(|()| 0),
        Command::Simulate(args) => simulate::run(*args).map(|()| 0),
        Command::Bench(args) => bench::run(args).map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
