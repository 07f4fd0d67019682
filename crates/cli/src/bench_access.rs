//! `aifactory bench --suite access`: the access programme's promise, measured. Each sample
//! is a new start-up going through the API: sign up, confirm the address (the code read
//! from the outbox, as the mail server would get it), apply to the playground call (awarded
//! at once), accept (project and allocation), submit a job, and see it run. Baseline in
//! the same run: submit-to-running of the same job in a project that exists already.

use crate::bench_api::{Running, agent, get, percentile, post, submit_to_start_ms, unix_nanos};
use anyhow::{Context, Result};
use serde_json::{Value, json};

const STEPS: [&str; 5] = ["sign-up", "confirm", "apply+award", "accept", "job running"];

fn public_post(a: &ureq::Agent, url: &str, body: &Value) -> Result<Value> {
    let mut resp = a
        .post(url)
        .header("Content-Type", "application/json")
        .send(body.to_string())?;
    let status = resp.status().as_u16();
    let v: Value = serde_json::from_slice(&resp.body_mut().read_to_vec()?)?;
    anyhow::ensure!(status < 300, "HTTP {status}: {v}");
    Ok(v)
}

/// One journey: milliseconds per step.
fn journey(r: &Running, n: usize) -> Result<[f64; 5]> {
    let a = agent();
    let email = format!("founder{n}@startup{n}.example");
    let mut times = [0.0; 5];
    let mut t = unix_nanos();
    let mut lap = |i: usize, times: &mut [f64; 5]| {
        let now = unix_nanos();
        times[i] = now.saturating_sub(t) as f64 / 1e6;
        t = now;
    };
    public_post(
        &a,
        &format!("{}/api/v1/signup", r.url),
        &json!({"email": email, "name": "Founder", "organisation": {"name": format!("Start-up {n}"), "type": "startup", "country": "IT", "sectors": ["agritech"]}}),
    )?;
    lap(0, &mut times);
    let code = r
        .runtime
        .block_on(r.state.store.all_messages(100))?
        .into_iter()
        .find(|m| m.to_email == email)
        .and_then(|m| m.subject.rsplit(' ').next().map(str::to_string))
        .context("the confirmation mail")?;
    let signed = public_post(&a, &format!("{}/api/v1/signup/verify", r.url), &json!({ "code": code }))?;
    let token = signed["token"].as_str().context("token")?.to_string();
    lap(1, &mut times);
    let app = post(
        &a,
        &format!("{}/api/v1/applications", r.url),
        &token,
        &json!({"call": "playground", "title": "Crop disease detection", "gpu_hours": 10, "duration_days": 30,
            "answers": {"abstract": "Fine-tune a vision model"}, "submit": true,
            "declaration": {"org_type": "startup", "country": "IT", "sector": "agritech", "founded_on": "2024-02-01",
                "enterprise": {"years": [{"year": 2025, "staff_awu_milli": 6500, "turnover_eur": 350000, "balance_sheet_eur": 280000}]},
                "declared_true": true}}),
    )?;
    anyhow::ensure!(app["state"] == "awarded", "not awarded: {app}");
    lap(2, &mut times);
    let id = app["id"].as_str().context("id")?;
    let accepted = post(
        &a,
        &format!("{}/api/v1/applications/{id}/accept", r.url),
        &token,
        &json!({}),
    )?;
    lap(3, &mut times);
    let project = accepted["project"].as_str().context("project")?;
    times[4] = submit_to_start_ms(r, &a, &token, project)?;
    Ok(times)
}

/// The baseline: submit-to-running in the demo start-up's existing project.
fn baseline(r: &Running) -> Result<f64> {
    let a = agent();
    let token = r.tokens["startup"].as_str().context("token")?;
    let projects = get(&a, &format!("{}/api/v1/projects", r.url), token)?;
    let project = projects["items"][0]["id"].as_str().context("project")?;
    submit_to_start_ms(r, &a, token, project)
}

pub fn run(pg: Option<&str>, as_json: bool, samples: usize) -> Result<()> {
    let results = crate::bench_api::on_each_store(pg, "access", |name, r| {
        let mut steps: Vec<Vec<f64>> = vec![Vec::new(); STEPS.len()];
        let mut totals = Vec::new();
        let mut base = Vec::new();
        for n in 0..samples {
            let t = journey(r, n)?;
            for (i, v) in t.iter().enumerate() {
                steps[i].push(*v);
            }
            totals.push(t.iter().sum::<f64>());
            base.push(baseline(r)?);
        }
        for s in steps.iter_mut().chain([&mut totals, &mut base]) {
            s.sort_by(f64::total_cmp);
        }
        let q = |v: &[f64]| json!({"p50": percentile(v, 0.5), "p99": percentile(v, 0.99)});
        Ok(json!({
            "backend": name,
            "steps_ms": STEPS.iter().zip(&steps).map(|(s, v)| (s.to_string(), q(v))).collect::<serde_json::Map<_, _>>(),
            "journey_ms": q(&totals),
            "baseline_submit_to_running_ms": q(&base),
            "journey_vs_baseline_p50": percentile(&totals, 0.5) / percentile(&base, 0.5),
            "target_ms": 10_000,
        }))
    })?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(());
    }
    println!(
        "Access programme: a new start-up from sign-up to its first job running, {samples} journeys per store (baseline in the same run: submit-to-running in an existing project; target 10 s):"
    );
    print!("{:<9}", "backend");
    for s in STEPS {
        print!(" {s:>20}");
    }
    println!(" {:>20} {:>20} {:>8}", "journey p50/p99", "baseline p50/p99", "ratio");
    for r in &results {
        print!("{:<9}", r["backend"].as_str().unwrap_or(""));
        for s in STEPS {
            let v = &r["steps_ms"][s];
            print!(
                " {:>9.1} / {:>8.1}",
                v["p50"].as_f64().unwrap_or(0.0),
                v["p99"].as_f64().unwrap_or(0.0)
            );
        }
        let (j, b) = (&r["journey_ms"], &r["baseline_submit_to_running_ms"]);
        println!(
            " {:>9.1} / {:>8.1} {:>9.1} / {:>8.1} {:>7.1}x",
            j["p50"].as_f64().unwrap_or(0.0),
            j["p99"].as_f64().unwrap_or(0.0),
            b["p50"].as_f64().unwrap_or(0.0),
            b["p99"].as_f64().unwrap_or(0.0),
            r["journey_vs_baseline_p50"].as_f64().unwrap_or(0.0),
        );
    }
    println!("(milliseconds)");
    Ok(())
}
