//! `aifactory bench --suite portal`: every page of the web portal on the demo data (with a
//! few dozen jobs, an award and a review in it), signed in as whom the page is for, one
//! request after another over keep-alive; each next to the API endpoint that returns the
//! same data as JSON, measured in the same run (the baseline: what the page adds to the
//! API is rendering and the session look-up).

use crate::bench_api::{agent, get, percentile, post};
use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::json;
use std::time::Instant;

#[derive(Debug, Serialize)]
struct PageFigure {
    page: String,
    who: String,
    p50_ms: f64,
    p99_ms: f64,
    api: String,
    api_p99_ms: f64,
    /// The page's p99 over its API endpoint's.
    vs_api: f64,
}

/// A browser's session cookie, signed in through the form like a person.
fn sign_in(a: &ureq::Agent, url: &str, email: &str, password: &str) -> Result<String> {
    let mut form = a.get(format!("{url}/login")).call()?;
    let csrf_cookie = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("aif_form_csrf="))
        .context("the sign-in form's cookie")?
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    let html = form.body_mut().read_to_string()?;
    let at = html.find("name=\"csrf\" value=\"").context("the form's token")? + 19;
    let csrf = &html[at..at + 32];
    let no_redirects: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let resp = no_redirects
        .post(format!("{url}/login"))
        .header("Cookie", &csrf_cookie)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(format!(
            "csrf={csrf}&email={}&password={password}",
            email.replace('@', "%40")
        ))?;
    let session = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("aif_session="))
        .with_context(|| format!("{email} could not sign in ({})", resp.status()))?;
    Ok(session.split(';').next().unwrap_or_default().to_string())
}

fn timed(n: usize, mut once: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        once()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}

pub fn run(as_json: bool, requests: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("aifactory-bench-portal-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let r = crate::bench_api::start(None, &dir)?;
    let a = agent();
    let token = |who: &str| r.tokens[who].as_str().unwrap_or_default().to_string();
    let password = "bench-portal-password";
    let mut cookies = std::collections::HashMap::new();
    for who in ["startup", "sme", "reviewer", "manager", "operator"] {
        let put = a
            .put(format!("{}/api/v1/me/password", r.url))
            .header("Authorization", &format!("Bearer {}", token(who)))
            .header("Content-Type", "application/json")
            .send(json!({ "password": password }).to_string())?;
        anyhow::ensure!(
            put.status().as_u16() == 204,
            "setting {who}'s password: {}",
            put.status()
        );
        let me = get(&a, &format!("{}/api/v1/me", r.url), &token(who))?;
        let email = me["user"]["email"].as_str().context("email")?.to_string();
        cookies.insert(who, sign_in(&a, &r.url, &email, password)?);
    }
    // Demo data with some history: jobs, a playground award, a large-scale application
    // with a review assigned.
    eprintln!("making the demo's history (jobs, applications, a review) ...");
    let startup_project = get(&a, &format!("{}/api/v1/projects", r.url), &token("startup"))?["items"][0]["id"]
        .as_str()
        .context("project")?
        .to_string();
    let mut job = String::new();
    for i in 0..40 {
        let j = post(
            &a,
            &format!("{}/api/v1/jobs", r.url),
            &token("startup"),
            &json!({"project": startup_project, "name": format!("job-{i}"), "command": ["echo", "hello"], "gpus": 1, "walltime_s": 600}),
        )?;
        job = j["id"].as_str().context("job id")?.to_string();
    }
    let declaration = json!({"org_type": "startup", "country": "IT", "sector": "robotics", "founded_on": "2024-01-01",
        "enterprise": {"years": [{"year": 2025, "staff_awu_milli": 9000, "turnover_eur": 800000, "balance_sheet_eur": 500000}]},
        "declared_true": true});
    let application = post(
        &a,
        &format!("{}/api/v1/applications", r.url),
        &token("startup"),
        &json!({"call": "large-scale", "title": "Bench application", "site": "it-bologna", "gpu_hours": 1000,
            "duration_days": 90, "answers": {"abstract": "A benchmark"}, "declaration": declaration, "submit": true}),
    )?;
    let app_id = application["id"].as_str().context("application id")?.to_string();
    post(
        &a,
        &format!("{}/api/v1/applications/{app_id}/assessment", r.url),
        &token("manager"),
        &json!({"passed": true, "notes": "ok"}),
    )?;
    let reviewer = get(&a, &format!("{}/api/v1/me", r.url), &token("reviewer"))?["user"]["id"].clone();
    let review = post(
        &a,
        &format!("{}/api/v1/applications/{app_id}/reviewers", r.url),
        &token("manager"),
        &json!({ "reviewer": reviewer }),
    )?;
    let review_id = review["id"].as_str().context("review id")?.to_string();
    let entry = "dataset/baltic-vision-oy/steel-surface-defects";
    let pages: Vec<(String, &str, String)> = vec![
        ("/login".into(), "", "/healthz".into()),
        ("/signup".into(), "", "/healthz".into()),
        ("/".into(), "startup", "/api/v1/projects".into()),
        ("/jobs/new".into(), "startup", "/api/v1/projects".into()),
        (format!("/jobs/{job}"), "startup", format!("/api/v1/jobs/{job}")),
        ("/queue".into(), "startup", "/api/v1/nodes".into()),
        ("/sites".into(), "startup", "/api/v1/sites".into()),
        ("/catalogue".into(), "startup", "/api/v1/catalogue".into()),
        (
            format!("/catalogue/{entry}"),
            "startup",
            format!("/api/v1/catalogue/{entry}"),
        ),
        ("/calls".into(), "startup", "/api/v1/calls".into()),
        ("/calls/playground".into(), "startup", "/api/v1/calls/playground".into()),
        ("/applications".into(), "startup", "/api/v1/applications".into()),
        (
            format!("/applications/{app_id}"),
            "startup",
            format!("/api/v1/applications/{app_id}"),
        ),
        ("/courses".into(), "startup", "/api/v1/courses".into()),
        ("/tokens".into(), "startup", "/api/v1/tokens".into()),
        ("/reviews".into(), "reviewer", "/api/v1/reviews".into()),
        (
            format!("/reviews/{review_id}"),
            "reviewer",
            format!("/api/v1/reviews/{review_id}"),
        ),
        ("/operations".into(), "operator", "/api/v1/nodes".into()),
        (
            "/operations/energy".into(),
            "operator",
            "/api/v1/reports/usage?group_by=site".into(),
        ),
        (
            "/operations/indicators".into(),
            "operator",
            "/api/v1/reports/programme".into(),
        ),
        ("/operations/usage".into(), "operator", "/api/v1/reports/usage".into()),
        (
            "/operations/usage.csv".into(),
            "operator",
            "/api/v1/reports/usage?format=csv".into(),
        ),
    ];
    let mut figures = Vec::new();
    for (page, who, api) in &pages {
        let cookie = cookies.get(who).cloned().unwrap_or_default();
        let page_url = format!("{}{page}", r.url);
        let page_ms = timed(requests, || {
            let mut resp = a.get(&page_url).header("Cookie", &cookie).call()?;
            anyhow::ensure!(resp.status().as_u16() == 200, "{page}: {}", resp.status());
            resp.body_mut().read_to_vec()?;
            Ok(())
        })?;
        let api_url = format!("{}{api}", r.url);
        let api_token = if who.is_empty() { token("startup") } else { token(who) };
        let api_ms = timed(requests, || {
            let mut resp = a
                .get(&api_url)
                .header("Authorization", &format!("Bearer {api_token}"))
                .call()?;
            anyhow::ensure!(resp.status().as_u16() == 200, "{api}: {}", resp.status());
            resp.body_mut().read_to_vec()?;
            Ok(())
        })?;
        let (p99, api_p99) = (percentile(&page_ms, 0.99), percentile(&api_ms, 0.99));
        figures.push(PageFigure {
            page: page.clone(),
            who: if who.is_empty() {
                "nobody".into()
            } else {
                (*who).to_string()
            },
            p50_ms: percentile(&page_ms, 0.5),
            p99_ms: p99,
            api: api.clone(),
            api_p99_ms: api_p99,
            vs_api: p99 / api_p99.max(1e-6),
        });
    }
    let worst = figures.iter().map(|f| f.p99_ms).fold(0.0, f64::max);
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "pages": figures, "worst_p99_ms": worst, "requests_per_page": requests })
            )?
        );
    } else {
        println!("portal pages on the demo data, {requests} requests each, one at a time (target: p99 < 50 ms)");
        println!(
            "{:<44} {:<9} {:>8} {:>8}   {:<42} {:>8} {:>7}",
            "page", "as", "p50 ms", "p99 ms", "API baseline", "p99 ms", "ratio"
        );
        for f in &figures {
            let page: String = f.page.chars().take(44).collect();
            let api: String = f.api.chars().take(42).collect();
            println!(
                "{:<44} {:<9} {:>8.2} {:>8.2}   {:<42} {:>8.2} {:>6.2}x",
                page, f.who, f.p50_ms, f.p99_ms, api, f.api_p99_ms, f.vs_api
            );
        }
        println!("worst page p99: {worst:.2} ms");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
