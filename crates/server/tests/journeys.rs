//! The portal's journeys in headless Chromium (Debian's `chromium` and `chromium-driver`,
//! which `scripts/test` installs), against the real server on a loopback port with the
//! demo data: every page visited is checked for console errors, failed requests and
//! serious accessibility violations (axe-core), and photographed into `target/screenshots/`.

mod common;
mod webdriver;

use common::*;
use serde_json::json;
use std::time::Duration;
use webdriver::Browser;

/// The demo factory served on a loopback port from a runtime of its own; the test drives
/// it from this thread.
struct Served {
    app: TestApp,
    url: String,
    runtime: tokio::runtime::Runtime,
}

impl Served {
    fn start() -> Served {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = std::env::temp_dir().join(format!("aifactory-journey-{}", store::new_id("t")));
        let app = runtime.block_on(app_in(dir));
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = app.router.clone();
        runtime.spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
        });
        Served { app, url, runtime }
    }

    fn api(
        &self,
        method: axum::http::Method,
        path: &str,
        who: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let (status, answer) = self
            .runtime
            .block_on(self.app.call(method.clone(), path, Some(who), body));
        assert!(status.is_success(), "{method} {path} as {who}: {status} {answer}");
        answer
    }

    fn set_password(&self, who: &str, password: &str) {
        self.api(
            axum::http::Method::PUT,
            "/api/v1/me/password",
            who,
            Some(json!({ "password": password })),
        );
    }
}

fn sign_in(browser: &mut Browser, served: &Served, email: &str, password: &str) {
    browser.go(&format!("{}/login", served.url));
    browser.check_page("sign-in");
    browser.fill("#email", email);
    browser.fill("#password", password);
    browser.click("main button[type=submit]");
    browser.wait_for_text("Sign out", Duration::from_secs(10));
}

/// The newest message of `kind` to `email` in the outbox.
fn message(served: &Served, email: &str, kind: &str) -> store::Message {
    let messages = served
        .runtime
        .block_on(served.app.state.store.all_messages(1000))
        .unwrap();
    messages
        .into_iter()
        .rfind(|m| m.to_email == email && m.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} message to {email}"))
}

/// A start-up registers, confirms its address with the code from the outbox, applies to the
/// playground call with the generated form, is awarded at once and accepts; then it looks
/// for data in the catalogue and asks for a restricted dataset, makes an API token,
/// submits a job from the composer, watches its log follow it and sees its usage on the
/// dashboard; signs out, forgets its password and sets a new one through the e-mailed link.
#[test]
fn a_start_up_signs_up_applies_is_awarded_and_runs_its_first_job() {
    let Some(mut browser) = Browser::start("startup") else {
        return;
    };
    let served = Served::start();
    let email = "founder@nova-robotics.example";
    browser.go(&format!("{}/signup", served.url));
    browser.check_page("register");
    browser.fill("#email", email);
    browser.fill("#name", "Nora Founder");
    browser.fill("#organisation", "Nova Robotics Srl");
    browser.select("#org_type", "startup");
    browser.fill("#country", "IT");
    browser.fill("#sector", "robotics");
    browser.click("main button[type=submit]");
    browser.wait_for_text("We sent a code", Duration::from_secs(5));
    browser.check_page("confirm-address");
    let code = message(&served, email, "verify-email")
        .subject
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    browser.fill("#code", &code);
    browser.fill("#password", "a long enough password");
    browser.click("main button[type=submit]");
    browser.wait_for_text("Playground", Duration::from_secs(10));
    assert!(
        browser.url().ends_with("/calls"),
        "signed in and sent to the calls: {}",
        browser.url()
    );
    browser.check_page("calls");

    browser.click("#call-playground a");
    browser.wait_for_text("Apply", Duration::from_secs(5));
    browser.check_page("playground-call");
    browser.fill("#title", "Grasping policies for soft fruit");
    browser.fill("#gpu_hours", "200");
    browser.fill("#duration_days", "60");
    browser.fill(
        "#answer-abstract",
        "Fine-tune a small vision-language-action model on our picking data.",
    );
    // A date field takes typed keys in the browser's locale order: set its value instead.
    browser.select("#founded_on", "2024-03-01");
    browser.fill("#staff", "6");
    browser.fill("#turnover", "400000");
    browser.fill("#balance", "250000");
    browser.click("#declared_true");
    browser.click("button[value=submit]");
    browser.wait_for_text("Accept the award", Duration::from_secs(10));
    assert!(browser.text().contains("awarded"), "{}", browser.text());
    browser.check_page("application-awarded");
    browser.click("form[action$='/accept'] button");
    browser.wait_for_text("submit a job", Duration::from_secs(10));
    assert!(browser.text().contains("accepted"), "{}", browser.text());
    browser.check_page("application-accepted");
    browser.go(&format!("{}/applications", served.url));
    browser.wait_for_text("Grasping policies for soft fruit", Duration::from_secs(5));
    browser.check_page("applications");

    browser.go(&format!("{}/catalogue?q=court", served.url));
    browser.wait_for_text("Italian court rulings", Duration::from_secs(5));
    browser.check_page("catalogue-search");
    browser.go(&format!(
        "{}/catalogue/dataset/universita-di-bologna/italian-court-rulings",
        served.url
    ));
    browser.check_page("catalogue-entry");
    browser.fill("#purpose", "research");
    browser.fill("#days", "30");
    browser.click("form[action$='/access'] button");
    browser.wait_for_text("Asked", Duration::from_secs(5));
    assert!(
        browser.exists("main table"),
        "the request is listed on the entry's page: {}",
        browser.text()
    );
    browser.check_page("access-requested");

    browser.go(&format!("{}/tokens", served.url));
    browser.check_page("tokens");
    browser.fill("#token-name", "laptop");
    browser.click("form[action='/tokens'] button");
    browser.wait_for_text("shown this once", Duration::from_secs(5));
    browser.check_page("token-created");

    browser.go(&format!("{}/courses", served.url));
    browser.check_page("courses");

    browser.go(&format!("{}/jobs/new?template=steps", served.url));
    browser.wait_for_text("playground-", Duration::from_secs(5));
    browser.check_page("composer");
    browser.fill("#name", "first-steps");
    browser.fill(
        "#script",
        "for step in 1 2 3 4 5 6; do echo \"step $step on GPU $CUDA_VISIBLE_DEVICES\"; sleep 1; done",
    );
    browser.click("form[action='/jobs/new'] button[type=submit]");
    // The log follows the job without a reload (portal.js), then the page shows the end.
    browser.wait_live("step 2 on GPU", Duration::from_secs(60));
    browser.check_page("job-running");
    browser.wait_live("completed", Duration::from_secs(60));
    assert!(browser.text().contains("step 6 on GPU"), "{}", browser.text());
    browser.check_page("job-completed");

    browser.go(&format!("{}/", served.url));
    browser.wait_for_text("first-steps", Duration::from_secs(5));
    let dashboard = browser.text();
    assert!(dashboard.contains("playground-"), "the awarded project: {dashboard}");
    assert!(
        !dashboard.contains("Used so far: 0.000 GPU-hours"),
        "usage shows: {dashboard}"
    );
    browser.check_page("dashboard-with-usage");
    // The same pages on a phone's screen.
    browser.window(390, 844);
    browser.check_page("dashboard-phone");
    browser.go(&format!("{}/calls", served.url));
    browser.check_page("calls-phone");
    browser.window(1280, 900);
    browser.go(&format!("{}/queue", served.url));
    browser.check_page("queue");
    browser.go(&format!("{}/sites", served.url));
    browser.check_page("sites");

    browser.click("header form button");
    browser.wait_for_text("Forgot your password?", Duration::from_secs(5));
    browser.click("a[href='/password/forgot']");
    browser.check_page("forgot-password");
    browser.fill("#email", email);
    browser.click("main button[type=submit]");
    browser.wait_for_text("a link is on its way", Duration::from_secs(5));
    let link = message(&served, email, "password-reset").body;
    let token = link
        .split("token=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    browser.go(&format!("{}/password/reset?token={token}", served.url));
    browser.check_page("reset-password");
    browser.fill("#password", "another long password");
    browser.click("main button[type=submit]");
    browser.wait_for_text("Projects and allocations", Duration::from_secs(10));
    // The link works once.
    browser.go(&format!("{}/password/reset?token={token}", served.url));
    assert!(browser.text().contains("expired or was used"), "{}", browser.text());
}

/// A large-scale application (submitted through the API) is assessed by the programme
/// manager, who assigns a reviewer, in the browser; the reviewer scores it in the browser and
/// the manager sees the score. Then a dataset's owner grants a request for it.
#[test]
fn a_reviewer_scores_a_large_scale_application() {
    use axum::http::Method;
    let Some(mut browser) = Browser::start("reviewer") else {
        return;
    };
    let served = Served::start();
    let declaration = json!({"org_type": "research", "country": "IT", "sector": "research", "declared_true": true});
    let application = served.api(
        Method::POST,
        "/api/v1/applications",
        "research",
        Some(json!({"call": "large-scale", "title": "Italian legal language model", "site": "it-bologna",
            "gpu_hours": 40000, "duration_days": 180, "answers": {"abstract": "Pre-train a 3B model on Italian legal text."},
            "declaration": declaration, "submit": true})),
    );
    let id = application["id"].as_str().unwrap().to_string();
    served.set_password("manager", "manager password 1");
    served.set_password("reviewer", "reviewer password 1");

    sign_in(&mut browser, &served, "manager@factory.example", "manager password 1");
    browser.go(&format!("{}/applications/{id}", served.url));
    browser.wait_for_text("Technical assessment", Duration::from_secs(5));
    browser.check_page("manager-assessment");
    browser.select("#passed", "yes");
    browser.fill("#notes", "Feasible at it-bologna; data pipeline ready.");
    browser.click("form[action$='/assessment'] button");
    browser.wait_for_text("Assign the reviewer", Duration::from_secs(5));
    browser.check_page("manager-assign");
    let reviewer = served.api(Method::GET, "/api/v1/me", "reviewer", None)["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    browser.select("#reviewer", &reviewer);
    browser.click("form[action$='/reviewers'] button");
    browser.wait_for_text("assigned", Duration::from_secs(5));
    browser.click("header form button");
    browser.wait_for_text("Forgot your password?", Duration::from_secs(5));

    sign_in(&mut browser, &served, "reviewer@factory.example", "reviewer password 1");
    browser.go(&format!("{}/reviews", served.url));
    browser.wait_for_text("Italian legal language model", Duration::from_secs(5));
    browser.check_page("inbox");
    browser.click("main table a");
    browser.wait_for_text("Your review", Duration::from_secs(5));
    browser.check_page("review-form");
    browser.select("#score-excellence", "5");
    browser.select("#score-impact", "4");
    browser.select("#score-feasibility", "3");
    browser.fill("#comments", "Strong team and data; the compute plan needs milestones.");
    browser.click("main form button[type=submit]");
    browser.wait_for_text("submitted", Duration::from_secs(5));
    assert!(
        browser.text().contains("4.000"),
        "the weighted score (5+4+3)/3: {}",
        browser.text()
    );
    browser.check_page("inbox-after");
    let reviews = served.api(
        Method::GET,
        &format!("/api/v1/applications/{id}/reviews"),
        "manager",
        None,
    );
    let submitted = &reviews["items"][0];
    assert_eq!(submitted["state"], "submitted", "{reviews}");
    assert_eq!(submitted["scores"]["impact"], 4, "{reviews}");
    browser.click("header form button");
    browser.wait_for_text("Forgot your password?", Duration::from_secs(5));

    // The manager sees the application with its review and score (the call wants a second
    // reviewer before the right to reply).
    sign_in(&mut browser, &served, "manager@factory.example", "manager password 1");
    browser.go(&format!("{}/applications/{id}", served.url));
    browser.wait_for_text("Italian legal language model", Duration::from_secs(5));
    browser.check_page("manager-application");
    browser.go(&format!("{}/calls/large-scale/ranking", served.url));
    browser.wait_for_text("4.000", Duration::from_secs(5));
    browser.check_page("ranking");
    browser.go(&format!("{}/operations/indicators", served.url));
    browser.check_page("indicators");
    browser.click("header form button");
    browser.wait_for_text("Forgot your password?", Duration::from_secs(5));

    // A dataset's owner decides a request for it.
    served.api(
        Method::POST,
        "/api/v1/catalogue/dataset/universita-di-bologna/italian-court-rulings/access-requests",
        "sme",
        Some(json!({"purpose": "commercial", "days": 30})),
    );
    served.set_password("research", "research password 1");
    sign_in(
        &mut browser,
        &served,
        "research@research.example",
        "research password 1",
    );
    browser.go(&format!(
        "{}/catalogue/dataset/universita-di-bologna/italian-court-rulings",
        served.url
    ));
    browser.wait_for_text("Decision", Duration::from_secs(5));
    browser.check_page("owner-requests");
    let pending = served.api(
        Method::GET,
        "/api/v1/catalogue/dataset/universita-di-bologna/italian-court-rulings/access-requests",
        "research",
        None,
    );
    let request = pending["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["state"] == "pending");
    if let Some(request) = request {
        let rid = request["id"].as_str().unwrap();
        browser.select(&format!("#grant-{rid}"), "yes");
        browser.fill(&format!("#reason-{rid}"), "a pilot for legal search");
        browser.click(&format!("form[action='/catalogue/requests/{rid}/decide'] button"));
        browser.wait_for_text("granted", Duration::from_secs(5));
        browser.check_page("owner-granted");
        let after = served.api(
            Method::GET,
            "/api/v1/catalogue/dataset/universita-di-bologna/italian-court-rulings/access-requests",
            "research",
            None,
        );
        let decided = after["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == rid)
            .unwrap();
        assert_eq!(decided["state"], "granted", "{decided}");
    } else {
        panic!("the policy decided the request at once; a pending one was expected: {pending}");
    }
}

/// An operator looks at the nodes' heat map and drains a node, which the engine then
/// leaves alone; energy, indicators and usage reports (with their CSV) are a click away.
#[test]
fn an_operator_drains_a_node() {
    use axum::http::Method;
    let Some(mut browser) = Browser::start("operator") else {
        return;
    };
    let served = Served::start();
    // Some usage to report.
    let project = served.runtime.block_on(served.app.project_of("sme"));
    let job = served.api(
        Method::POST,
        "/api/v1/jobs",
        "sme",
        Some(json!({"project": project, "name": "warm-up", "command": ["sleep", "1"], "gpus": 2, "walltime_s": 600})),
    );
    served
        .runtime
        .block_on(served.app.wait_final(job["id"].as_str().unwrap(), "sme"));
    served.set_password("operator", "operator password 1");
    sign_in(&mut browser, &served, "operator@factory.example", "operator password 1");
    browser.wait_for_text("Dashboard", Duration::from_secs(5));
    browser.click("header a[href='/operations']");
    browser.wait_for_text("GPU utilisation by node", Duration::from_secs(5));
    browser.check_page("nodes");
    let node = browser
        .script(
            "return document.querySelector('main table tbody tr td').textContent",
            json!([]),
        )
        .as_str()
        .unwrap()
        .to_string();
    browser.click(&format!("button[aria-label='Drain {node}']"));
    browser.wait_for_text("Resume", Duration::from_secs(5));
    assert!(
        browser.exists(&format!("button[aria-label='Resume {node}']")),
        "{node} is drained"
    );
    browser.check_page("node-drained");
    let nodes = served.api(Method::GET, "/api/v1/nodes", "operator", None);
    let drained = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == node.as_str())
        .unwrap();
    assert_eq!(drained["status"], "drained", "{drained}");
    browser.click("a[href='/operations/energy']");
    browser.wait_for_text("Energy used per site", Duration::from_secs(5));
    browser.check_page("energy");
    browser.click("main a[href='/operations/usage']");
    browser.wait_for_text("GPU-hours by", Duration::from_secs(5));
    browser.check_page("usage");
    browser.select("#group_by", "site");
    browser.click("main form button");
    browser.wait_for_text("Download as CSV", Duration::from_secs(5));
    browser.check_page("usage-by-site");
    let csv = browser.fetch_text("/operations/usage.csv?group_by=site");
    assert!(
        csv.starts_with("key,entries,gpu_seconds,energy_wh,carbon_g,cost_cents"),
        "{csv}"
    );
    assert!(csv.contains("fi-kajaani"), "the SME's job ran at its site: {csv}");
    browser.click("main a[href='/operations/indicators']");
    browser.check_page("indicators");
    browser.go(&format!("{}/queue", served.url));
    browser.check_page("queue");
}

/// Pages answer only for what the signed-in user may see.
#[test]
fn pages_never_show_another_organisations_objects() {
    use axum::http::Method;
    let Some(mut browser) = Browser::start("isolation") else {
        return;
    };
    let served = Served::start();
    let project = served.runtime.block_on(served.app.project_of("sme"));
    let job = served.api(
        Method::POST,
        "/api/v1/jobs",
        "sme",
        Some(json!({"project": project, "name": "private-sme-job", "command": ["true"], "gpus": 1, "walltime_s": 60})),
    );
    let id = job["id"].as_str().unwrap();
    served.set_password("startup", "correct horse battery");
    sign_in(
        &mut browser,
        &served,
        "startup@startup.example",
        "correct horse battery",
    );
    browser.wait_for_text("Dashboard", Duration::from_secs(5));
    browser.check_page("dashboard");
    assert!(!browser.text().contains("private-sme-job"));
    browser.go(&format!("{}/queue", served.url));
    assert!(!browser.text().contains("private-sme-job"));
    for path in [
        format!("/jobs/{id}"),
        "/operations".to_string(),
        "/reviews/rev_missing".to_string(),
    ] {
        let status = browser.fetch_status(&path);
        assert!(status == 404 || status == 403, "{path} answered {status}");
    }
}
