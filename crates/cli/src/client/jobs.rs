//! `aifactory job`: submit (like sbatch; `--wait` streams like srun), list, show, cancel, logs.

use super::*;

#[derive(Debug, Subcommand)]
pub enum JobCmd {
    /// Submit a job, like sbatch: a script file, or a command after `--`.
    Submit {
        /// Project to charge (default: your only project).
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        allocation: Option<String>,
        #[arg(long, default_value_t = 1)]
        gpus: u32,
        #[arg(long)]
        nodes: Option<u32>,
        /// A share of one GPU in thousandths (with --gpus 1).
        #[arg(long)]
        gpu_milli: Option<u32>,
        /// Walltime as Slurm writes it: minutes, MM:SS, HH:MM:SS, D-HH[:MM[:SS]], or 30s/90m/2h/1d.
        #[arg(long, default_value = "60")]
        time: String,
        /// Accepted for sbatch habits; the class comes from the allocation.
        #[arg(long)]
        class: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// A hub dataset to stage into the job's directory, NAMESPACE/NAME[@REVISION]
        /// (repeat for several); the job finds it under $AIFACTORY_DATASETS/NAMESPACE/NAME.
        #[arg(long = "dataset", value_name = "ID[@REV]")]
        datasets: Vec<String>,
        /// Wait for the end and exit with the job's exit code.
        #[arg(long)]
        wait: bool,
        /// Print only the job's id (like sbatch --parsable), for scripts.
        #[arg(long)]
        parsable: bool,
        /// Check the job and say when it would start, without submitting it (like sbatch
        /// --test-only).
        #[arg(long)]
        test_only: bool,
        /// The script to run (with bash), unless a command follows `--`.
        script: Option<PathBuf>,
        #[arg(last = true)]
        command: Vec<String>,
    },
    List {
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    Show {
        id: String,
    },
    Cancel {
        id: String,
    },
    Logs {
        id: String,
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        stderr: bool,
    },
}

/// Slurm's time formats (a bare number is minutes), plus 30s / 90m / 2h / 1d.
pub fn parse_walltime(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let bad = || format!("`{s}` is not a walltime (minutes, MM:SS, HH:MM:SS, D-HH[:MM[:SS]], or 30s/90m/2h/1d)");
    let num = |x: &str| x.parse::<u64>().map_err(|_| bad());
    if let Some(unit) = s.chars().last().filter(char::is_ascii_alphabetic) {
        let n = num(&s[..s.len() - 1])?;
        return match unit {
            's' => Ok(n),
            'm' => Ok(n * 60),
            'h' => Ok(n * 3600),
            'd' => Ok(n * 86_400),
            _ => Err(bad()),
        };
    }
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (Some(num(d)?), r),
        None => (None, s),
    };
    let parts: Vec<u64> = rest.split(':').map(num).collect::<Result<_, _>>()?;
    let secs = match (days, parts.as_slice()) {
        (None, [m]) => m * 60,
        (None, [m, s]) => m * 60 + s,
        (None, [h, m, s]) => h * 3600 + m * 60 + s,
        (Some(d), [h]) => d * 86_400 + h * 3600,
        (Some(d), [h, m]) => d * 86_400 + h * 3600 + m * 60,
        (Some(d), [h, m, s]) => d * 86_400 + h * 3600 + m * 60 + s,
        _ => return Err(bad()),
    };
    if secs == 0 {
        return Err("the walltime must be positive".into());
    }
    Ok(secs)
}

const JOB_COLUMNS: [&str; 8] = [
    "id",
    "name",
    "state",
    "gpus",
    "walltime_s",
    "submitted_at",
    "exit_code",
    "reason",
];

/// One job: the list's columns with its forecast (while it waits) and its start.
const JOB_SHOW_COLUMNS: [&str; 11] = [
    "id",
    "name",
    "state",
    "gpus",
    "walltime_s",
    "submitted_at",
    "forecast_start",
    "forecast_latest",
    "started_at",
    "exit_code",
    "reason",
];

pub fn job(conn: &Conn, cmd: JobCmd) -> Result<i32> {
    let c = Client::new(conn);
    match cmd {
        JobCmd::Submit {
            project,
            allocation,
            gpus,
            nodes,
            gpu_milli,
            time,
            class: _,
            name,
            datasets,
            wait,
            parsable,
            test_only,
            script,
            command,
        } => {
            let walltime = parse_walltime(&time).map_err(|e| anyhow!("--time: {e}"))?;
            // Named like sbatch names jobs: after the script, else after the program.
            let default_name = match (&script, command.first()) {
                (Some(path), _) => path.file_name().map(|n| n.to_string_lossy().into_owned()),
                (None, Some(program)) => program.rsplit('/').next().map(str::to_string),
                (None, None) => None,
            };
            let command = match (script, command.is_empty()) {
                (Some(path), true) => {
                    let text =
                        std::fs::read_to_string(&path).with_context(|| format!("reading script {}", path.display()))?;
                    vec!["bash".into(), "-c".into(), text]
                }
                (None, false) => command,
                (Some(_), false) => bail!("give a script or a command after --, not both"),
                (None, true) => bail!("nothing to run: give a script file or a command after --"),
            };
            let project = match project {
                Some(p) => c.project_id(&p)?,
                None => {
                    let projects = c.call("GET", "/api/v1/projects", None)?;
                    match projects["items"].as_array().map(Vec::as_slice) {
                        Some([only]) => only["id"].as_str().unwrap_or_default().to_string(),
                        _ => bail!(
                            "--project: you have several projects (or none); say which (`aifactory project list`)"
                        ),
                    }
                }
            };
            let name = name.or(default_name);
            let body = json!({"project": project, "allocation": allocation, "gpus": gpus, "nodes": nodes, "gpu_milli": gpu_milli,
                              "walltime_s": walltime, "name": name, "command": command, "datasets": datasets,
                              "test_only": test_only});
            let job = c.call("POST", "/api/v1/jobs", Some(&body))?;
            if test_only {
                if c.output == Output::Json {
                    println!("{job}");
                    return Ok(0);
                }
                let site = job["site"].as_str().unwrap_or("?");
                match (job["start"].as_str(), job["wait_s"].as_i64()) {
                    (Some(start), Some(wait)) => println!(
                        "job would start at {start} (in ~{} min) at {site}; at the latest {} if every job before it ran to its walltime; not submitted",
                        (wait + 59) / 60,
                        job["latest"].as_str().unwrap_or("?")
                    ),
                    _ => println!("job would not start within 90 days at {site} as things stand; not submitted"),
                }
                return Ok(0);
            }
            let id = job["id"].as_str().unwrap_or_default().to_string();
            if !wait {
                match (parsable, c.output) {
                    (true, _) => println!("{id}"),
                    (false, Output::Json) => println!("{job}"),
                    (false, Output::Table) => println!("Submitted job {id}"),
                }
                return Ok(0);
            }
            if c.output == Output::Table {
                // Like srun: the job's output as it comes (stdout here, stderr on stderr),
                // the id at once on stderr so that stdout holds only the job's words.
                eprintln!("Submitted job {id}");
                let (errors, path) = (c.clone(), format!("/api/v1/jobs/{id}/logs?stream=stderr&follow=true"));
                let err_stream = std::thread::spawn(move || errors.copy_to(&path, &mut std::io::stderr()));
                c.copy_to(
                    &format!("/api/v1/jobs/{id}/logs?stream=stdout&follow=true"),
                    &mut std::io::stdout(),
                )?;
                let _ = err_stream.join();
            }
            loop {
                let j = c.call("GET", &format!("/api/v1/jobs/{id}"), None)?;
                let state = j["state"].as_str().unwrap_or("");
                if !["pending", "running"].contains(&state) {
                    if c.output == Output::Json {
                        println!("{j}");
                    } else if state != "completed" {
                        let reason = j["reason"].as_str().unwrap_or("");
                        eprintln!("job {id} {state}: {reason}");
                    }
                    return Ok(match (state, j["exit_code"].as_i64()) {
                        (_, Some(code)) => code.clamp(0, 255) as i32,
                        ("completed", None) => 0,
                        _ => 1,
                    });
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        JobCmd::List { project, state, limit } => {
            let mut q = format!("/api/v1/jobs?limit={limit}");
            if let Some(p) = project {
                q.push_str(&format!("&project={}", c.project_id(&p)?));
            }
            if let Some(s) = state {
                q.push_str(&format!("&state={s}"));
            }
            c.print(&c.call("GET", &q, None)?, &JOB_COLUMNS);
        }
        JobCmd::Show { id } => c.print(&c.call("GET", &format!("/api/v1/jobs/{id}"), None)?, &JOB_SHOW_COLUMNS),
        JobCmd::Cancel { id } => c.print(
            &c.call("POST", &format!("/api/v1/jobs/{id}/cancel"), None)?,
            &JOB_COLUMNS,
        ),
        JobCmd::Logs { id, follow, stderr } => {
            let stream = if stderr { "stderr" } else { "stdout" };
            let path = format!("/api/v1/jobs/{id}/logs?stream={stream}&follow={follow}");
            c.copy_to(&path, &mut std::io::stdout())?;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::parse_walltime;

    #[test]
    fn walltimes_read_like_slurm() {
        assert_eq!(parse_walltime("60"), Ok(3600));
        assert_eq!(parse_walltime("5:30"), Ok(330));
        assert_eq!(parse_walltime("01:00:00"), Ok(3600));
        assert_eq!(parse_walltime("1-12"), Ok(129_600));
        assert_eq!(parse_walltime("2-00:30:00"), Ok(174_600));
        assert_eq!(parse_walltime("90m"), Ok(5400));
        assert_eq!(parse_walltime("30s"), Ok(30));
        assert!(parse_walltime("soon").is_err());
        assert!(parse_walltime("0").is_err());
        assert!(parse_walltime("1:2:3:4").is_err());
    }
}
