//! The web portal through the router, on both stores: signing in (passwords set through
//! the API, Argon2id at rest), cookies, CSRF on every form, attempts limited, and pages
//! that show the signed-in user's organisation and nothing of another's. (The browser
//! journeys come with the portal's pages.)

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

struct Page {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Page {
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with(&format!("{name}=")))
    }
    /// The value of a hidden `csrf` field in the page.
    fn csrf(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
        self.body[at..at + 32].to_string()
    }
}

async fn browse(
    app: &TestApp,
    method: Method,
    path: &str,
    cookies: &str,
    form: Option<&str>,
    extra: &[(&str, &str)],
) -> Page {
    let mut req = Request::builder().method(method).uri(path);
    if !cookies.is_empty() {
        req = req.header(header::COOKIE, cookies);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let body = match form {
        Some(f) => {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Body::from(f.to_string())
        }
        None => Body::empty(),
    };
    let resp = app.router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    Page { status, headers, body }
}

fn value(cookie: &str) -> &str {
    cookie.split(';').next().unwrap().split_once('=').unwrap().1
}

/// Signs in through the form; the session cookie (`name=value`).
async fn sign_in(app: &TestApp, email: &str, password: &str) -> Page {
    let form = browse(app, Method::GET, "/login", "", None, &[]).await;
    let login_cookie = form.cookie("aif_form_csrf").expect("the sign-in form's cookie");
    let body = format!(
        "csrf={}&email={}&password={}",
        form.csrf(),
        email.replace('@', "%40"),
        password
    );
    browse(
        app,
        Method::POST,
        "/login",
        &format!("aif_form_csrf={}", value(&login_cookie)),
        Some(&body),
        &[],
    )
    .await
}

#[tokio::test]
async fn people_sign_in_with_a_password_and_see_only_their_organisation() {
    for backend in backends() {
        let app = app_in(fresh_dir(backend).await).await;
        // Not signed in: to the sign-in page, which works without JavaScript.
        let p = browse(&app, Method::GET, "/", "", None, &[]).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER);
        assert_eq!(p.headers[header::LOCATION], "/login");
        let form = browse(&app, Method::GET, "/login", "", None, &[]).await;
        assert_eq!(form.status, StatusCode::OK);
        assert!(form.body.contains("<label for=\"password\">"), "{}", form.body);

        // A password is set through the API with a token; too short is refused.
        let (s, v) = app
            .call(
                Method::PUT,
                "/api/v1/me/password",
                Some("startup"),
                Some(json!({"password": "short"})),
            )
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("password")),
            "{v}"
        );
        let password = "correct-horse-battery";
        let (s, v) = app
            .call(
                Method::PUT,
                "/api/v1/me/password",
                Some("startup"),
                Some(json!({"password": password})),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        let (_, me) = app.get("/api/v1/me", "startup").await;
        let email = me["user"]["email"].as_str().unwrap().to_string();
        let (_, phc) = app.state.store.password_of(&email).await.unwrap().unwrap();
        assert!(phc.starts_with("$argon2id$") && !phc.contains(password), "{phc}");

        let wrong = sign_in(&app, &email, "not-the-password").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert!(wrong.body.contains("Wrong e-mail address or password"));
        assert!(wrong.cookie("aif_session").is_none());
        let nobody = sign_in(&app, "nobody@example.org", password).await;
        assert_eq!(
            nobody.status,
            StatusCode::UNAUTHORIZED,
            "the same answer for an unknown address"
        );
        // A sign-in form posted without its cookie (from another site): refused.
        let form = browse(&app, Method::GET, "/login", "", None, &[]).await;
        let forged = format!(
            "csrf={}&email={}&password={password}",
            form.csrf(),
            email.replace('@', "%40")
        );
        let p = browse(&app, Method::POST, "/login", "", Some(&forged), &[]).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);
        // A form with fields missing: the sign-in page again, not a bare error.
        let p = browse(&app, Method::POST, "/login", "", Some("email=x"), &[]).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);
        assert!(p.body.contains("<form"), "{}", p.body);

        let ok = sign_in(&app, &email, password).await;
        assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
        let cookie = ok.cookie("aif_session").expect("a session cookie");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
        assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
        let session = format!("aif_session={}", value(&cookie));

        // The dashboard: the start-up's project, none of the SME's.
        let (_, mine) = app.get("/api/v1/projects", "startup").await;
        let (_, theirs) = app.get("/api/v1/projects", "sme").await;
        let home = browse(&app, Method::GET, "/", &session, None, &[]).await;
        assert_eq!(home.status, StatusCode::OK);
        assert!(
            home.body.contains(mine["items"][0]["name"].as_str().unwrap()),
            "{}",
            home.body
        );
        assert!(!home.body.contains(theirs["items"][0]["name"].as_str().unwrap()));
        assert!(home.body.contains("<svg"), "the allocation's bar");

        // A job of mine has its page; another organisation's job does not exist.
        let project = app.project_of("startup").await;
        let (_, job) = app
            .post(
                "/api/v1/jobs",
                "startup",
                json!({"project": project, "command": ["sh", "-c", "echo portal-says-hi"], "walltime_s": 60}),
            )
            .await;
        let id = job["id"].as_str().unwrap();
        app.wait_final(id, "startup").await;
        let p = browse(&app, Method::GET, &format!("/jobs/{id}"), &session, None, &[]).await;
        assert_eq!(p.status, StatusCode::OK);
        assert!(
            p.body.contains("portal-says-hi") && p.body.contains("completed"),
            "{}",
            p.body
        );
        let other = app.project_of("sme").await;
        let (_, theirs) = app
            .post(
                "/api/v1/jobs",
                "sme",
                json!({"project": other, "command": ["true"], "walltime_s": 60}),
            )
            .await;
        let p = browse(
            &app,
            Method::GET,
            &format!("/jobs/{}", theirs["id"].as_str().unwrap()),
            &session,
            None,
            &[],
        )
        .await;
        assert_eq!(p.status, StatusCode::NOT_FOUND);

        // Signing out needs the session's CSRF token.
        let p = browse(&app, Method::POST, "/logout", &session, Some("csrf=forged"), &[]).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);
        let p = browse(
            &app,
            Method::POST,
            "/logout",
            &session,
            Some(&format!("csrf={}", home.csrf())),
            &[],
        )
        .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER);
        let p = browse(&app, Method::GET, "/", &session, None, &[]).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "the session ended");

        // Behind a TLS proxy the cookie is Secure.
        let tls = {
            let form = browse(&app, Method::GET, "/login", "", None, &[("x-forwarded-proto", "https")]).await;
            let c = form.cookie("aif_form_csrf").unwrap();
            assert!(c.contains("Secure"), "{c}");
            let body = format!(
                "csrf={}&email={}&password={password}",
                form.csrf(),
                email.replace('@', "%40")
            );
            browse(
                &app,
                Method::POST,
                "/login",
                &format!("aif_form_csrf={}", value(&c)),
                Some(&body),
                &[("x-forwarded-proto", "https")],
            )
            .await
        };
        assert!(tls.cookie("aif_session").unwrap().contains("Secure"));
    }
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_address() {
    let app = app().await;
    let mut statuses = Vec::new();
    for _ in 0..=server::ratelimit::LOGINS_PER_MINUTE {
        statuses.push(sign_in(&app, "someone@example.org", "wrong-password-123").await.status);
    }
    assert!(
        statuses[..statuses.len() - 1]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert_eq!(*statuses.last().unwrap(), StatusCode::TOO_MANY_REQUESTS);
}

/// A signed-in browser of the demo start-up (its session cookie, as `name=value`).
async fn startup_session(app: &TestApp) -> String {
    let password = "composer-password-1";
    let (s, _) = app
        .call(
            Method::PUT,
            "/api/v1/me/password",
            Some("startup"),
            Some(json!({"password": password})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, me) = app.get("/api/v1/me", "startup").await;
    let ok = sign_in(app, me["user"]["email"].as_str().unwrap(), password).await;
    format!("aif_session={}", value(&ok.cookie("aif_session").unwrap()))
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
                    b' ' => "+".to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn the_composer_submits_as_the_api_does_and_shows_refusals_beside_their_field() {
    for backend in backends() {
        let app = app_in(fresh_dir(backend).await).await;
        let session = startup_session(&app).await;
        let form = browse(&app, Method::GET, "/jobs/new?template=steps", &session, None, &[]).await;
        assert_eq!(form.status, StatusCode::OK);
        assert!(
            form.body.contains("for step in 1 2 3 4 5"),
            "the template fills the script"
        );
        let project = app.project_of("startup").await;
        assert!(form.body.contains(&project), "the project is offered");
        let csrf = form.csrf();
        let post = |pairs: Vec<(&'static str, String)>| {
            let body = form_encode(&pairs.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
            let app = &app;
            let session = session.clone();
            async move { browse(app, Method::POST, "/jobs/new", &session, Some(&body), &[]).await }
        };
        let fields = |gpus: &str, csrf: &str| {
            vec![
                ("csrf", csrf.to_string()),
                ("project", project.clone()),
                ("name", "from the composer".to_string()),
                ("script", "echo composed on $CUDA_VISIBLE_DEVICES".to_string()),
                ("gpus", gpus.to_string()),
                ("minutes", "5".to_string()),
                ("datasets", String::new()),
            ]
        };
        // Without the session's token: refused, nothing submitted.
        let (_, before) = app.get("/api/v1/jobs", "startup").await;
        let p = post(fields("1", "forged")).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);
        // More GPUs than the site has: the API's refusal, shown on the form, values kept.
        let p = post(fields("64", &csrf)).await;
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.body);
        assert!(
            p.body.contains("no nodes at site") && p.body.contains("echo composed"),
            "{}",
            p.body
        );
        let p = post(fields("two", &csrf)).await;
        assert!(p.body.contains("id=\"gpus-error\""), "beside its field: {}", p.body);
        let (_, after) = app.get("/api/v1/jobs", "startup").await;
        assert_eq!(
            before["items"].as_array().unwrap().len(),
            after["items"].as_array().unwrap().len()
        );
        // Submitted: to the job's page, which shows its output once it ran.
        let p = post(fields("1", &csrf)).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        let location = p.headers[header::LOCATION].to_str().unwrap().to_string();
        let id = location.strip_prefix("/jobs/").unwrap();
        let job = app.wait_final(id, "startup").await;
        assert_eq!(job["state"], "completed", "{job}");
        assert_eq!(job["name"], "from the composer");
        let p = browse(&app, Method::GET, &location, &session, None, &[]).await;
        assert!(p.body.contains("composed on 0"), "{}", p.body);
    }
}

/// A signed-in browser of a demo user (its session cookie, as `name=value`).
async fn session_of(app: &TestApp, who: &str) -> String {
    let password = format!("{who}-password-123");
    let (s, _) = app
        .call(
            Method::PUT,
            "/api/v1/me/password",
            Some(who),
            Some(json!({ "password": password })),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, me) = app.get("/api/v1/me", who).await;
    let ok = sign_in(app, me["user"]["email"].as_str().unwrap(), &password).await;
    format!("aif_session={}", value(&ok.cookie("aif_session").unwrap()))
}

/// The API's authorisation matrix, page by page: every page route as nobody, a start-up, the
/// SME whose job and application these are, a reviewer assigned to another application, a
/// programme manager and an operator. 303 is the way to the sign-in page; an object of
/// another organisation is "not found", as in the API.
#[tokio::test]
async fn every_page_answers_only_whom_the_api_would() {
    let app = app_in(fresh_dir("sqlite").await).await;
    let project = app.project_of("sme").await;
    let job = submit(
        &app,
        "sme",
        json!({"project": project, "name": "sme-job", "command": ["true"], "gpus": 1, "walltime_s": 60}),
    )
    .await;
    let (s, application) = app
        .post(
            "/api/v1/applications",
            "sme",
            json!({"call": "fast-lane", "title": "Vision QA", "site": "fi-kajaani", "gpu_hours": 100,
                "duration_days": 30, "answers": {"abstract": "Defect detection"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{application}");
    let app_id = application["id"].as_str().unwrap();
    let who = ["", "startup", "sme", "reviewer", "manager", "operator"];
    let mut cookies = vec![String::new()];
    for w in &who[1..] {
        cookies.push(session_of(&app, w).await);
    }
    let all = [303, 200, 200, 200, 200, 200];
    let staff = [303, 403, 403, 403, 200, 200];
    let sme_only = [303, 404, 200, 404, 200, 200];
    let pages: Vec<(String, [u16; 6])> = vec![
        ("/".into(), all),
        ("/jobs/new".into(), all),
        ("/queue".into(), all),
        ("/sites".into(), all),
        ("/catalogue".into(), all),
        ("/catalogue/dataset/baltic-vision-oy/steel-surface-defects".into(), all),
        (
            "/catalogue/dataset/acciaierie-unite/furnace-telemetry".into(),
            [303, 404, 404, 404, 200, 200],
        ),
        ("/calls".into(), all),
        ("/calls/playground".into(), all),
        ("/calls/large-scale/ranking".into(), [303, 403, 403, 403, 200, 403]),
        ("/applications".into(), all),
        // Applications are the programme's: operators run machines, not calls.
        (format!("/applications/{app_id}"), [303, 404, 200, 404, 200, 404]),
        ("/reviews".into(), all),
        ("/courses".into(), all),
        ("/tokens".into(), all),
        (format!("/jobs/{job}"), sme_only),
        (format!("/jobs/{job}/live"), sme_only),
        ("/operations".into(), staff),
        ("/operations/energy".into(), staff),
        ("/operations/indicators".into(), staff),
        ("/operations/usage".into(), staff),
        ("/operations/usage.csv".into(), staff),
    ];
    let mut wrong = Vec::new();
    for (path, expected) in &pages {
        for (i, cookie) in cookies.iter().enumerate() {
            let p = browse(&app, Method::GET, path, cookie, None, &[]).await;
            if p.status.as_u16() != expected[i] {
                wrong.push(format!(
                    "GET {path} as {:?}: {} (expected {})",
                    who[i], p.status, expected[i]
                ));
            }
            if expected[i] == 200 && !path.ends_with(".csv") && !path.ends_with("/live") {
                // No page shows the SME's job to the start-up (names included).
                assert!(i == 2 || i >= 4 || !p.body.contains("sme-job"), "{path} as {}", who[i]);
            }
        }
    }
    // Forms: a drain is for operators; another organisation's application cannot be acted on.
    for (i, cookie) in cookies.iter().enumerate().skip(1) {
        let page = browse(&app, Method::GET, "/tokens", cookie, None, &[]).await;
        let csrf = page.csrf();
        let drain = browse(
            &app,
            Method::POST,
            "/operations/nodes/bo-gpu-0001",
            cookie,
            Some(&format!("csrf={csrf}&action=drain")),
            &[],
        )
        .await;
        let expected = if who[i] == "operator" { 303 } else { 403 };
        if drain.status.as_u16() != expected {
            wrong.push(format!("drain as {}: {} (expected {expected})", who[i], drain.status));
        }
        let withdraw = browse(
            &app,
            Method::POST,
            &format!("/applications/{app_id}/withdraw"),
            cookie,
            Some(&format!("csrf={csrf}")),
            &[],
        )
        .await;
        let expected = match who[i] {
            "sme" => 303,
            "manager" => 403,
            _ => 404,
        };
        if withdraw.status.as_u16() != expected {
            wrong.push(format!(
                "withdraw as {}: {} (expected {expected})",
                who[i], withdraw.status
            ));
        }
    }
    // Pages for nobody yet: sign-in, registration, password reset; a made-up reset link is dead.
    for (path, expected) in [
        ("/login", 200),
        ("/signup", 200),
        ("/signup/verify", 200),
        ("/password/forgot", 200),
        ("/password/reset?token=0123", 404),
    ] {
        let p = browse(&app, Method::GET, path, "", None, &[]).await;
        if p.status.as_u16() != expected {
            wrong.push(format!("GET {path}: {} (expected {expected})", p.status));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
