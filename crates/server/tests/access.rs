//! The access programme through the API on both stores: a large-scale application through
//! every step (technical assessment, two reviewers with conflicts detected and declared, a
//! blind review, the right to reply, the ranking, the panel, acceptance), awards that never
//! exceed a call's budget under concurrency, withdrawal, and bad input.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

fn startup_declaration(declared: bool) -> Value {
    json!({"org_type": "startup", "country": "IT", "sector": "robotics", "founded_on": "2023-05-01",
        "enterprise": {"years": [
            {"year": 2024, "staff_awu_milli": 9000, "turnover_eur": 800000, "balance_sheet_eur": 500000},
            {"year": 2025, "staff_awu_milli": 14000, "turnover_eur": 1500000, "balance_sheet_eur": 900000}]},
        "declared_true": declared})
}

async fn apply(app: &TestApp, call: &str, site: &str, hours: i64) -> Value {
    let (status, a) = app
        .post(
            "/api/v1/applications",
            "startup",
            json!({"call": call, "title": "Foundation model for grasping", "site": site, "gpu_hours": hours,
                "duration_days": 180, "answers": {"abstract": "Pre-train a 7B vision-language-action model"},
                "declaration": startup_declaration(true), "team": ["member@startup.example"], "submit": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    a
}

async fn new_reviewer(app: &TestApp, n: u32) -> (String, String) {
    let (status, u) = app
        .post(
            "/api/v1/users",
            "admin",
            json!({"email": format!("pool{n}@reviewers.example"), "name": format!("Reviewer {n}"), "platform_role": "reviewer"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{u}");
    let id = u["id"].as_str().unwrap().to_string();
    let (_, t) = app
        .post("/api/v1/tokens", "admin", json!({"name": "pool", "user": id}))
        .await;
    (id, t["token"].as_str().unwrap().to_string())
}

async fn user_id(app: &TestApp, who: &str) -> String {
    app.get("/api/v1/me", who).await.1["user"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Every path by which a reviewer could read an application: all must hide it.
async fn hidden_from(app: &TestApp, who: &str, id: &str, review: &str) {
    for path in [
        format!("/api/v1/applications/{id}"),
        format!("/api/v1/applications/{id}/reviews"),
        format!("/api/v1/applications/{id}/events"),
        format!("/api/v1/applications/{id}/documents"),
        format!("/api/v1/reviews/{review}"),
    ] {
        let (status, v) = app.get(&path, who).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {v}");
    }
    for list in ["/api/v1/reviews", "/api/v1/applications"] {
        let (status, v) = app.get(list, who).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!v.to_string().contains(id), "{list} shows {id}: {v}");
    }
    let (status, _) = app
        .post(
            &format!("/api/v1/reviews/{review}/submit"),
            who,
            json!({"scores": {}, "comments": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_large_scale_application_goes_through_every_step_with_two_reviewers_a_reply_and_a_panel() {
    for backend in backends() {
        let app = app_with(fresh_dir(backend).await, |_| {}).await;
        // A blind large-scale call: reviewers judge the proposal, not who made it.
        let (_, demo_call) = app.get("/api/v1/calls/large-scale", "startup").await;
        let mut spec = demo_call["spec"].clone();
        spec["review"]["blind"] = json!(true);
        let (status, call) = app
            .post(
                "/api/v1/calls",
                "manager",
                json!({"name": "ls-blind", "title": "Large Scale (blind)", "spec": spec}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{call}");
        assert_eq!(call["decision_working_days"], 10);

        let a = apply(&app, "ls-blind", "it-bologna", 20_000).await;
        let id = a["id"].as_str().unwrap().to_string();
        assert_eq!(a["state"], "technical-assessment", "{a}");
        assert_eq!(a["eligibility"]["eligible"], true);
        // 2024 micro (9 AWU), 2025 small (14 AWU): one year over the micro ceiling, and the
        // two-year rule keeps it micro.
        assert_eq!(a["eligibility"]["sme_status"], "micro");
        let sme_rule = &a["eligibility"]["rules"][3];
        assert!(
            sme_rule["reason"].as_str().unwrap().contains("two consecutive years"),
            "{sme_rule}"
        );
        assert_eq!(a["clocks"]["decision"]["target_working_days"], 10);
        assert!(a["round_cutoff"].is_string(), "ranked at the next cut-off: {a}");

        // Reviewers cannot be assigned before the technical assessment passed.
        let reviewer = user_id(&app, "reviewer").await;
        let (status, _) = app
            .post(
                &format!("/api/v1/applications/{id}/reviewers"),
                "manager",
                json!({"reviewer": reviewer}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, v) = app
            .post(
                &format!("/api/v1/applications/{id}/assessment"),
                "manager",
                json!({"passed": true, "notes": "Scales to 64 GPUs; data ready"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["state"], "peer-review");

        // Conflicts are detected: a declared past collaboration, and membership of the
        // applicant organisation.
        let (_, me) = app.get("/api/v1/me", "startup").await;
        let org = me["memberships"][0]["org_id"].as_str().unwrap().to_string();
        let (status, _) = app
            .post(
                "/api/v1/me/collaborations",
                "reviewer2",
                json!({"org": org, "note": "co-authored a paper in 2025"}),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let reviewer2 = user_id(&app, "reviewer2").await;
        let (status, v) = app
            .post(
                &format!("/api/v1/applications/{id}/reviewers"),
                "manager",
                json!({"reviewer": reviewer2}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{v}");
        assert_eq!(v["code"], "conflict-of-interest");
        assert!(v["detail"].as_str().unwrap().contains("worked with"), "{v}");
        let startup_member = app.get(&format!("/api/v1/orgs/{org}/members"), "startup").await.1["items"][1]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let (status, v) = app
            .post(
                &format!("/api/v1/applications/{id}/reviewers"),
                "manager",
                json!({"reviewer": startup_member}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "not in the reviewer pool: {v}");

        // Three reviewers assigned; the third declares a conflict and loses every view of it.
        let (r3, r3_token) = new_reviewer(&app, 3).await;
        let (r4, r4_token) = new_reviewer(&app, 4).await;
        let mut reviews = Vec::new();
        for r in [&reviewer, &r3] {
            let (status, v) = app
                .post(
                    &format!("/api/v1/applications/{id}/reviewers"),
                    "manager",
                    json!({"reviewer": r}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{v}");
            reviews.push(v["id"].as_str().unwrap().to_string());
        }
        let mut app = app;
        app.tokens["r3"] = json!(r3_token);
        app.tokens["r4"] = json!(r4_token);
        let (status, inbox) = app.get("/api/v1/reviews", "r3").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(inbox["items"][0]["application"]["org"], "hidden", "blind: {inbox}");
        assert_eq!(inbox["items"][0]["application"]["declaration"], Value::Null);
        let (status, v) = app.get(&format!("/api/v1/applications/{id}"), "r3").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["applicant"], "hidden");
        let (status, _) = app.get(&format!("/api/v1/applications/{id}/documents"), "r3").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "evidence is not the reviewer's");
        let (status, _) = app
            .post(
                &format!("/api/v1/applications/{id}/conflict"),
                "r3",
                json!({"reason": "I advise a competitor"}),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        hidden_from(&app, "r3", &id, &reviews[1]).await;
        // Reviewer 4 was never asked: nothing either.
        hidden_from(&app, "r4", &id, &reviews[1]).await;
        let (status, v) = app
            .post(
                &format!("/api/v1/applications/{id}/reviewers"),
                "manager",
                json!({"reviewer": r3}),
            )
            .await;
        assert_eq!(
            (status, v["code"].as_str()),
            (StatusCode::CONFLICT, Some("conflict-of-interest"))
        );
        let (status, v) = app
            .post(
                &format!("/api/v1/applications/{id}/reviewers"),
                "manager",
                json!({"reviewer": r4}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        reviews[1] = v["id"].as_str().unwrap().to_string();

        // Scores per criterion: every criterion, within range.
        let (status, v) = app
            .post(
                &format!("/api/v1/reviews/{}/submit", reviews[0]),
                "reviewer",
                json!({"scores": {"excellence": 5, "impact": 4}, "comments": "Strong"}),
            )
            .await;
        assert_eq!(
            (status, v["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("scores.feasibility"))
        );
        let (status, v) = app
            .post(
                &format!("/api/v1/reviews/{}/submit", reviews[0]),
                "reviewer",
                json!({"scores": {"excellence": 5, "impact": 4, "feasibility": 6}, "comments": "Strong"}),
            )
            .await;
        assert_eq!(
            (status, v["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("scores.feasibility"))
        );
        let (status, _) = app
            .post(
                &format!("/api/v1/reviews/{}/submit", reviews[0]),
                "r4",
                json!({"scores": {"excellence": 5, "impact": 4, "feasibility": 4}, "comments": "Not mine"}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "another reviewer's review");
        for (review, who, scores) in [
            (
                &reviews[0],
                "reviewer",
                json!({"excellence": 5, "impact": 4, "feasibility": 3}),
            ),
            (
                &reviews[1],
                "r4",
                json!({"excellence": 4, "impact": 4, "feasibility": 4}),
            ),
        ] {
            let (status, v) = app
                .post(
                    &format!("/api/v1/reviews/{review}/submit"),
                    who,
                    json!({"scores": scores, "comments": "Clear plan; check the data licence"}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{v}");
            assert_eq!(v["score_milli"], 4000);
        }
        let (_, a) = app.get(&format!("/api/v1/applications/{id}"), "startup").await;
        assert_eq!(a["state"], "right-to-reply", "both reviews in: {a}");

        // The applicant reads the reviews, never who wrote them, and replies.
        let (_, rs) = app.get(&format!("/api/v1/applications/{id}/reviews"), "startup").await;
        assert_eq!(rs["items"].as_array().unwrap().len(), 2, "{rs}");
        assert!(
            rs["items"].as_array().unwrap().iter().all(|r| r["reviewer"].is_null()),
            "{rs}"
        );
        let (status, v) = app
            .post(
                &format!("/api/v1/applications/{id}/reply"),
                "startup",
                json!({"text": "The data is CC-BY 4.0; licence attached to the data plan."}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["state"], "panel");

        // The panel ranks the cut-off and decides with reasons.
        let (_, ranking) = app.get("/api/v1/calls/ls-blind/ranking", "manager").await;
        assert_eq!(ranking["items"][0]["application"], json!(id), "{ranking}");
        assert_eq!(ranking["items"][0]["mean_score_milli"], 4000);
        let (status, v) = app
            .post(
                &format!("/api/v1/applications/{id}/decision"),
                "manager",
                json!({"award": true, "gpu_hours": 15000, "reasons": "Ranked first; awarded 75 % of the request", "rank": 1}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["state"], "awarded");
        assert!(
            v["clocks"]["decision"]["stopped_at"].is_string(),
            "the decision stops its clock: {v}"
        );
        assert_eq!(v["clocks"]["decision"]["breached"], false);
        let (_, c) = app.get("/api/v1/calls/ls-blind", "startup").await;
        assert_eq!(c["budgets"][0]["awarded_gpu_hours"], 15000);

        let (status, v) = app
            .post(&format!("/api/v1/applications/{id}/accept"), "startup", json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let alloc = v["allocation"].as_str().unwrap();
        let (_, alloc) = app.get(&format!("/api/v1/allocations/{alloc}"), "startup").await;
        assert_eq!(alloc["gpu_seconds"]["granted"], 15000 * 3600);
        assert_eq!(alloc["class"], "large-scale");
        assert_eq!(alloc["price_cents_per_gpu_hour"], 0, "free for a start-up");
        let project = v["project"].as_str().unwrap();
        let (_, members) = app.get(&format!("/api/v1/projects/{project}/members"), "startup").await;
        assert!(
            members.to_string().contains("member@startup.example"),
            "the team joined: {members}"
        );
        // Nothing to withdraw once accepted.
        let (status, v) = app
            .post(&format!("/api/v1/applications/{id}/withdraw"), "startup", json!({}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{v}");

        let (_, events) = app.get(&format!("/api/v1/applications/{id}/events"), "startup").await;
        let states: Vec<&str> = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["to"].as_str().unwrap())
            .collect();
        assert_eq!(
            states,
            [
                "draft",
                "technical-assessment",
                "peer-review",
                "right-to-reply",
                "panel",
                "awarded",
                "accepted"
            ]
        );
        // Reviewers and the applicant were told what to do.
        let kinds: Vec<String> = app
            .state
            .store
            .all_messages(1000)
            .await
            .unwrap()
            .into_iter()
            .map(|m| format!("{} {}", m.kind, m.to_email))
            .collect();
        for expected in [
            "review-assigned reviewer@factory.example",
            "review-assigned pool4@reviewers.example",
            "right-to-reply startup@startup.example",
            "application-awarded startup@startup.example",
            "application-needs-action manager@factory.example",
        ] {
            assert!(kinds.iter().any(|k| k == expected), "{expected} missing from {kinds:?}");
        }
    }
}

#[tokio::test]
async fn concurrent_awards_never_exceed_the_budget_and_withdrawal_gives_it_back() {
    for backend in backends() {
        let app = app_with(fresh_dir(backend).await, |_| {}).await;
        let (status, c) = app
            .post(
                "/api/v1/calls",
                "manager",
                json!({"name": "tiny", "title": "Tiny playground", "mode": "playground", "site": "it-bologna", "gpu_hours": 10}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{c}");
        let body = json!({"call": "tiny", "title": "Race", "gpu_hours": 1, "duration_days": 7,
            "answers": {"abstract": "x"}, "declaration": startup_declaration(true), "submit": true});
        let tasks: Vec<_> = (0..24)
            .map(|_| spawn_post(&app, "startup", "/api/v1/applications", Some(body.clone())))
            .collect();
        let mut states = Vec::new();
        for t in tasks {
            let (status, v) = t.await.unwrap();
            assert_eq!(status, StatusCode::CREATED, "{v}");
            states.push((
                v["state"].as_str().unwrap().to_string(),
                v["id"].as_str().unwrap().to_string(),
            ));
        }
        let awarded: Vec<&String> = states
            .iter()
            .filter(|(s, _)| s == "awarded")
            .map(|(_, id)| id)
            .collect();
        assert_eq!(awarded.len(), 10, "{states:?}");
        assert!(states.iter().all(|(s, _)| s == "awarded" || s == "panel"), "{states:?}");
        let (_, c) = app.get("/api/v1/calls/tiny", "startup").await;
        assert_eq!(
            (
                c["budgets"][0]["awarded_gpu_hours"].as_i64(),
                c["budgets"][0]["left_gpu_hours"].as_i64()
            ),
            (Some(10), Some(0))
        );
        // Withdrawing an award gives its GPU-hours back to the call.
        let (status, v) = app
            .post(
                &format!("/api/v1/applications/{}/withdraw", awarded[0]),
                "startup",
                json!({}),
            )
            .await;
        assert_eq!((status, v["state"].as_str()), (StatusCode::OK, Some("withdrawn")));
        let (_, c) = app.get("/api/v1/calls/tiny", "startup").await;
        assert_eq!(c["budgets"][0]["left_gpu_hours"], 1);
        // A withdrawn application stays withdrawn.
        let (status, _) = app
            .post(
                &format!("/api/v1/applications/{}/withdraw", awarded[0]),
                "startup",
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
    }
}

#[tokio::test]
async fn bad_applications_get_field_named_errors_and_ineligible_ones_say_why() {
    let app = app_with(fresh_dir("sqlite").await, |_| {}).await;
    let good = json!({"call": "playground", "title": "T", "gpu_hours": 10, "duration_days": 30,
        "answers": {"abstract": "x"}, "declaration": startup_declaration(true)});
    let with = |field: &str, value: Value| {
        let mut b = good.clone();
        b[field] = value;
        b
    };
    for (body, field) in [
        (with("title", json!("x".repeat(201))), "title"),
        (with("gpu_hours", json!(501)), "gpu_hours"),
        (with("duration_days", json!(0)), "duration_days"),
        (with("site", json!("fi-kajaani")), "site"),
        (
            with("answers", json!({"abstract": "x".repeat(3001)})),
            "answers.abstract",
        ),
        (with("answers", json!({"colour": "blue"})), "answers.colour"),
        (with("team", json!(["not-an-address"])), "team[0]"),
        (with("call", json!("no-such-call")), "call"),
    ] {
        let (status, v) = app.post("/api/v1/applications", "startup", body).await;
        assert_eq!(
            (status, v["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{v}"
        );
    }
    let (status, v) = app
        .post("/api/v1/applications", "startup", with("extra", json!(1)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    // A document over the limit is refused without being kept.
    let (_, draft) = app.post("/api/v1/applications", "startup", good.clone()).await;
    let id = draft["id"].as_str().unwrap();
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/applications/{id}/documents?name=big.bin"),
            Some("startup"),
            Some(json!("x".repeat(11 * 1024 * 1024))),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (_, docs) = app
        .get(&format!("/api/v1/applications/{id}/documents"), "startup")
        .await;
    assert_eq!(docs["items"], json!([]));
    // Not declared true: ineligible, with the rule that failed and why; reopened it can pass.
    let mut undeclared = good.clone();
    undeclared["declaration"] = startup_declaration(false);
    undeclared["submit"] = json!(true);
    let (status, v) = app.post("/api/v1/applications", "startup", undeclared).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(v["state"], "ineligible");
    let failed: Vec<&Value> = v["eligibility"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["passed"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{v}");
    assert_eq!(failed[0]["rule"], "declaration");
    let id = v["id"].as_str().unwrap();
    let (status, v) = app
        .post(&format!("/api/v1/applications/{id}/reopen"), "startup", json!({}))
        .await;
    assert_eq!((status, v["state"].as_str()), (StatusCode::OK, Some("draft")));
    let (status, v) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/applications/{id}"),
            Some("startup"),
            Some(json!({"declaration": startup_declaration(true)})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, v) = app
        .post(&format!("/api/v1/applications/{id}/submit"), "startup", json!({}))
        .await;
    assert_eq!(v["state"], "awarded", "{v}");
    // Another organisation neither sees nor touches it.
    let (status, _) = app.get(&format!("/api/v1/applications/{id}"), "sme").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(&format!("/api/v1/applications/{id}/withdraw"), "sme", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Deadlines: reviewers are reminded once a day before and told once when late, programme
/// managers hear of a missed decision target, the time to reply runs out into the panel,
/// and principal investigators are warned before their allocation ends.
#[tokio::test]
async fn deadlines_send_each_reminder_once_and_a_reply_that_never_comes_goes_to_the_panel() {
    let app = app_with(fresh_dir("sqlite").await, |_| {}).await;
    let (_, demo_call) = app.get("/api/v1/calls/large-scale", "startup").await;
    let mut spec = demo_call["spec"].clone();
    spec["review"]["min_reviewers"] = json!(1);
    let (status, _) = app
        .post(
            "/api/v1/calls",
            "manager",
            json!({"name": "ls-one", "title": "One reviewer", "spec": spec}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let a = apply(&app, "ls-one", "it-bologna", 1000).await;
    let id = a["id"].as_str().unwrap().to_string();
    app.post(
        &format!("/api/v1/applications/{id}/assessment"),
        "manager",
        json!({"passed": true, "notes": "ok"}),
    )
    .await;
    let reviewer = user_id(&app, "reviewer").await;
    let (_, review) = app
        .post(
            &format!("/api/v1/applications/{id}/reviewers"),
            "manager",
            json!({"reviewer": reviewer}),
        )
        .await;
    let due = review["due_at"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_second();
    let count = |kind: &'static str| {
        let store = app.state.store.clone();
        async move {
            store
                .all_messages(1000)
                .await
                .unwrap()
                .iter()
                .filter(|m| m.kind == kind)
                .count()
        }
    };
    server::programme::tick(&app.state, due - 7200).await.unwrap();
    server::programme::tick(&app.state, due - 3600).await.unwrap();
    assert_eq!(count("review-reminder").await, 1, "reminded once");
    assert_eq!(count("review-overdue").await, 0);
    server::programme::tick(&app.state, due + 1).await.unwrap();
    server::programme::tick(&app.state, due + 3600).await.unwrap();
    assert_eq!(
        count("review-overdue").await,
        2,
        "the reviewer and the programme manager, once each"
    );

    let review = review["id"].as_str().unwrap();
    let (status, _) = app
        .post(
            &format!("/api/v1/reviews/{review}/submit"),
            "reviewer",
            json!({"scores": {"excellence": 3, "impact": 3, "feasibility": 3}, "comments": "Fine"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, v) = app.get(&format!("/api/v1/applications/{id}"), "startup").await;
    assert_eq!(v["state"], "right-to-reply");
    // Three working days to reply; a month later it has gone to the panel without one, and
    // the decision target (ten working days) has been missed.
    let later = server::accounting::unix_now() as i64 + 30 * 86_400;
    server::programme::tick(&app.state, later).await.unwrap();
    let (_, v) = app.get(&format!("/api/v1/applications/{id}"), "startup").await;
    assert_eq!(v["state"], "panel", "{v}");
    assert_eq!(v["reply"], Value::Null);
    server::programme::tick(&app.state, later).await.unwrap();
    assert_eq!(count("decision-overdue").await, 1);
    assert_eq!(v["clocks"]["decision"]["breached"], false, "not yet in real time");

    // Allocations a year long: warned 30 days before their end, once.
    let in_340_days = server::accounting::unix_now() as i64 + 340 * 86_400;
    server::programme::tick(&app.state, in_340_days).await.unwrap();
    server::programme::tick(&app.state, in_340_days + 60).await.unwrap();
    let ending = count("allocation-ending").await;
    assert_eq!(ending, 5, "one per demo allocation");
}

/// The initiative's indicators: by mode, organisation type, country and sector, with time
/// to decision against the target and the share that went to SMEs and start-ups; JSON and CSV.
#[tokio::test]
async fn indicators_count_applications_awards_and_time_to_decision_by_mode() {
    let app = app_with(fresh_dir("sqlite").await, |_| {}).await;
    let playground = |who: &'static str, declaration: Value| {
        json!({"call": "playground", "title": format!("{who} try"), "gpu_hours": 40, "duration_days": 30,
            "answers": {"abstract": "x"}, "declaration": declaration, "submit": true})
    };
    let mut awarded = Vec::new();
    for _ in 0..2 {
        let (status, v) = app
            .post(
                "/api/v1/applications",
                "startup",
                playground("startup", startup_declaration(true)),
            )
            .await;
        assert_eq!(
            (status, v["state"].as_str()),
            (StatusCode::CREATED, Some("awarded")),
            "{v}"
        );
        awarded.push(v["id"].as_str().unwrap().to_string());
    }
    // One award is accepted and its first job runs.
    let (_, accepted) = app
        .post(
            &format!("/api/v1/applications/{}/accept", awarded[0]),
            "startup",
            json!({}),
        )
        .await;
    let (status, job) = app
        .post(
            "/api/v1/jobs",
            "startup",
            json!({"project": accepted["project"], "command": ["true"], "walltime_s": 60}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    app.wait_final(job["id"].as_str().unwrap(), "startup").await;
    // A research organisation applies too: eligible (the playground is open to all), but
    // not free of charge.
    let research = json!({"org_type": "research", "country": "IT", "sector": "research", "declared_true": true});
    let (status, v) = app
        .post("/api/v1/applications", "research", playground("research", research))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    // One fast-lane application decided by the programme manager.
    let a = apply(&app, "fast-lane", "fi-kajaani", 5000).await;
    let id = a["id"].as_str().unwrap();
    app.post(
        &format!("/api/v1/applications/{id}/assessment"),
        "manager",
        json!({"passed": true, "notes": "ok"}),
    )
    .await;
    let (status, _) = app
        .post(
            &format!("/api/v1/applications/{id}/decision"),
            "manager",
            json!({"award": true, "reasons": "fits"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, report) = app.get("/api/v1/reports/programme", "manager").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let row = |d: &str, k: &str| {
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["dimension"] == d && r["key"] == k)
            .cloned()
            .unwrap_or_else(|| panic!("no row {d}={k}: {report}"))
    };
    let all = row("all", "all");
    assert_eq!(
        (all["applications"].as_u64(), all["awards"].as_u64()),
        (Some(4), Some(4)),
        "{all}"
    );
    assert_eq!(all["awarded_gpu_hours"], 40 * 3 + 5000);
    let pg = row("mode", "playground");
    assert_eq!(
        (
            pg["applications"].as_u64(),
            pg["awards"].as_u64(),
            pg["eligible"].as_u64()
        ),
        (Some(3), Some(3), Some(3))
    );
    assert_eq!(pg["median_decision_working_days"], 0, "awarded the day they applied");
    assert_eq!(pg["decisions_within_target"], 3);
    assert_eq!(
        (pg["first_jobs"].as_u64(), pg["first_jobs_within_target"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(pg["median_seconds_to_first_job"].as_i64().unwrap() <= 10, "{pg}");
    let fl = row("mode", "fast-lane");
    assert_eq!(
        (fl["decisions"].as_u64(), fl["decisions_within_target"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(row("org_type", "startup")["applications"], 3);
    assert_eq!(row("country", "IT")["applications"], 4);
    assert_eq!(row("sector", "robotics")["awards"], 3);
    assert_eq!(row("org_type", "research")["awarded_gpu_hours"], 40);
    // (40 + 40 + 5000) of 5120 GPU-hours went to the start-up.
    assert_eq!(report["sme_startup_awarded_permille"], 992);
    // Staff only.
    let (status, _) = app.get("/api/v1/reports/programme", "startup").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, csv) = app
        .call(
            Method::GET,
            "/api/v1/reports/programme?format=csv",
            Some("manager"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let text = csv.as_str().unwrap_or_default().to_string();
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("dimension,key,applications,eligible,awards,"),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("mode,playground,3,3,3,")), "{text}");
    let (status, usage) = app
        .call(
            Method::GET,
            "/api/v1/reports/usage?format=csv&group_by=country",
            Some("admin"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        usage
            .as_str()
            .unwrap_or_default()
            .starts_with("key,entries,gpu_seconds,"),
        "{usage}"
    );
}

/// Training: a class enrolled from CSV fills the seats and waits on the list beyond them;
/// a seated trainee runs jobs on a playground allocation that ends with the course; a
/// freed seat goes to the first on the waitlist; completion is recorded; concurrent
/// enrolments never take more seats than there are.
#[tokio::test]
async fn courses_seat_trainees_with_allocations_that_end_with_the_course_and_keep_a_waitlist() {
    for backend in backends() {
        let mut app = app_with(fresh_dir(backend).await, |_| {}).await;
        let (status, course) = app
            .post(
                "/api/v1/courses",
                "manager",
                json!({"name": "gpu-101", "title": "GPU computing 101", "site": "it-bologna",
                    "starts_at": "2030-03-02T09:00:00Z", "ends_at": "2030-03-04T17:00:00Z", "seats": 2, "gpu_hours_per_trainee": 5}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{course}");
        let csv = |text: &str| json!({ "$text": text });
        // A bad line refuses the whole file, naming the line.
        let (status, v) = app
            .post(
                "/api/v1/courses/gpu-101/enrolments",
                "manager",
                csv("email,name\nana@uni.example,Ana\nnot-an-address,Bob\n"),
            )
            .await;
        assert_eq!(
            (status, v["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("line 3")),
            "{v}"
        );
        let (_, list) = app.get("/api/v1/courses/gpu-101/enrolments", "manager").await;
        assert_eq!(list["items"], json!([]));
        let (status, v) = app
            .post(
                "/api/v1/courses/gpu-101/enrolments",
                "manager",
                csv("email,name\nana@uni.example,Ana\nbo@uni.example,Bo\ncy@uni.example,Cy\n"),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let states: Vec<&str> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["enrolled", "enrolled", "waitlisted"]);
        let (_, c) = app.get("/api/v1/courses/gpu-101", "startup").await;
        assert_eq!(c["seats_left"], 0);

        // Ana runs a job on her course allocation, which ends with the course.
        let ana = v["items"][0]["user"].as_str().unwrap().to_string();
        let (_, t) = app
            .post("/api/v1/tokens", "admin", json!({"name": "course", "user": ana}))
            .await;
        app.tokens["ana"] = t["token"].clone();
        let project = v["items"][0]["project"].as_str().unwrap();
        let alloc = v["items"][0]["allocation"].as_str().unwrap();
        let (_, a) = app.get(&format!("/api/v1/allocations/{alloc}"), "ana").await;
        assert_eq!(a["valid_until"], "2030-03-04T17:00:00Z");
        assert_eq!(
            (a["class"].as_str(), a["gpu_seconds"]["granted"].as_i64()),
            (Some("playground"), Some(5 * 3600))
        );
        let (status, job) = app
            .post(
                "/api/v1/jobs",
                "ana",
                json!({"project": project, "command": ["true"], "walltime_s": 60}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{job}");
        let ended = app.wait_final(job["id"].as_str().unwrap(), "ana").await;
        assert_eq!(ended["state"], "completed", "{ended}");
        let (_, usage) = app
            .get(&format!("/api/v1/usage?job={}", job["id"].as_str().unwrap()), "ana")
            .await;
        assert!(usage["gpu_seconds"].as_i64().unwrap() >= 1, "{usage}");
        assert_eq!(usage["cost_cents"], 0, "training is free: {usage}");
        // Trainees share the course's organisation, not each other's projects.
        let bo = v["items"][1]["user"].as_str().unwrap().to_string();
        let (_, t) = app
            .post("/api/v1/tokens", "admin", json!({"name": "course", "user": bo}))
            .await;
        app.tokens["bo"] = t["token"].clone();
        let (status, _) = app
            .post(
                "/api/v1/jobs",
                "bo",
                json!({"project": project, "command": ["true"], "walltime_s": 60}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "a trainee submits to their own project only"
        );

        // Bo cancels: Cy gets the seat and an allocation; Bo's is suspended.
        let (status, e) = app
            .post(
                &format!("/api/v1/courses/gpu-101/enrolments/{bo}/cancel"),
                "bo",
                json!({}),
            )
            .await;
        assert_eq!(
            (status, e["state"].as_str()),
            (StatusCode::OK, Some("cancelled")),
            "{e}"
        );
        let bo_alloc = v["items"][1]["allocation"].as_str().unwrap();
        let (_, a) = app.get(&format!("/api/v1/allocations/{bo_alloc}"), "manager").await;
        assert_eq!(a["state"], "suspended");
        let (_, list) = app.get("/api/v1/courses/gpu-101/enrolments", "manager").await;
        let cy = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["email"] == "cy@uni.example")
            .unwrap();
        assert_eq!(cy["state"], "enrolled");
        assert!(cy["allocation"].as_str().unwrap().starts_with("alc_"));
        let messages = app.state.store.all_messages(1000).await.unwrap();
        assert!(
            messages
                .iter()
                .any(|m| m.to_email == "cy@uni.example" && m.subject.contains("is yours"))
        );

        let (status, e) = app
            .post(
                &format!("/api/v1/courses/gpu-101/enrolments/{ana}/complete"),
                "manager",
                json!({}),
            )
            .await;
        assert_eq!((status, e["state"].as_str()), (StatusCode::OK, Some("completed")));
        let (status, _) = app
            .post(
                &format!("/api/v1/courses/gpu-101/enrolments/{bo}/complete"),
                "manager",
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "a cancelled seat is not completed");
        let (_, report) = app.get("/api/v1/reports/programme", "manager").await;
        assert_eq!(report["training"]["courses"], 2, "{report}");
        assert_eq!(report["training"]["completed"], 1);

        // Twelve people enrol at once in three seats: three are seated.
        let (status, _) = app
            .post(
                "/api/v1/courses",
                "manager",
                json!({"name": "rush", "title": "Rush", "site": "it-bologna",
                    "starts_at": "2030-03-02T09:00:00Z", "ends_at": "2030-03-04T17:00:00Z", "seats": 3, "gpu_hours_per_trainee": 1}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let mut tasks = Vec::new();
        for n in 0..12 {
            let key = format!("rusher{n}");
            let (_, u) = app
                .post(
                    "/api/v1/users",
                    "admin",
                    json!({"email": format!("{key}@uni.example"), "name": key}),
                )
                .await;
            let (_, t) = app
                .post("/api/v1/tokens", "admin", json!({"name": "rush", "user": u["id"]}))
                .await;
            app.tokens[&key] = t["token"].clone();
        }
        for n in 0..12 {
            tasks.push(spawn_post(
                &app,
                &format!("rusher{n}"),
                "/api/v1/courses/rush/enrol",
                None,
            ));
        }
        let mut seated = 0;
        for t in tasks {
            let (status, e) = t.await.unwrap();
            assert_eq!(status, StatusCode::CREATED, "{e}");
            seated += usize::from(e["state"] == "enrolled");
        }
        assert_eq!(seated, 3);
        let (_, c) = app.get("/api/v1/courses/rush", "startup").await;
        assert_eq!(c["seats_left"], 0);
    }
}

/// An award lives on: an extension and a supplement go straight to a decision, a renewal
/// waits for the final report and continues in the same project.
#[tokio::test]
async fn extensions_supplements_and_a_renewal_after_the_final_report() {
    for backend in backends() {
        let app = app_with(fresh_dir(backend).await, |_| {}).await;
        let (status, a) = app
            .post(
                "/api/v1/applications",
                "startup",
                json!({"call": "playground", "title": "Pilot", "gpu_hours": 40, "duration_days": 30,
                    "answers": {"abstract": "x"}, "declaration": startup_declaration(true), "submit": true}),
            )
            .await;
        assert_eq!((status, a["state"].as_str()), (StatusCode::CREATED, Some("awarded")));
        let (_, a) = app
            .post(
                &format!("/api/v1/applications/{}/accept", a["id"].as_str().unwrap()),
                "startup",
                json!({}),
            )
            .await;
        let alloc = a["allocation"].as_str().unwrap().to_string();
        let project = a["project"].as_str().unwrap().to_string();
        let (_, before) = app.get(&format!("/api/v1/allocations/{alloc}"), "startup").await;
        let until = |v: &Value| {
            v["valid_until"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_second()
        };

        // Extension: ten more days, decided by the programme manager.
        let decide_and_accept = |id: String| {
            let app = &app;
            async move {
                let (status, v) = app
                    .post(
                        &format!("/api/v1/applications/{id}/decision"),
                        "manager",
                        json!({"award": true, "reasons": "progress is good"}),
                    )
                    .await;
                assert_eq!((status, v["state"].as_str()), (StatusCode::OK, Some("awarded")), "{v}");
                let (status, v) = app
                    .post(&format!("/api/v1/applications/{id}/accept"), "startup", json!({}))
                    .await;
                assert_eq!((status, v["state"].as_str()), (StatusCode::OK, Some("accepted")), "{v}");
                v
            }
        };
        let (status, r) = app
            .post(
                &format!("/api/v1/allocations/{alloc}/requests"),
                "startup",
                json!({"kind": "extension", "duration_days": 10, "reason": "the data arrived late"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{r}");
        assert_eq!(
            (r["kind"].as_str(), r["state"].as_str()),
            (Some("extension"), Some("panel")),
            "never automatic: {r}"
        );
        decide_and_accept(r["id"].as_str().unwrap().to_string()).await;
        let (_, after) = app.get(&format!("/api/v1/allocations/{alloc}"), "startup").await;
        assert_eq!(until(&after) - until(&before), 10 * 86_400);

        // Supplement: twenty more GPU-hours, from the call's budget.
        let (_, call_before) = app.get("/api/v1/calls/playground", "startup").await;
        let (_, r) = app
            .post(
                &format!("/api/v1/allocations/{alloc}/requests"),
                "startup",
                json!({"kind": "supplement", "gpu_hours": 20, "reason": "one more ablation"}),
            )
            .await;
        decide_and_accept(r["id"].as_str().unwrap().to_string()).await;
        let (_, after) = app.get(&format!("/api/v1/allocations/{alloc}"), "startup").await;
        assert_eq!(after["gpu_seconds"]["granted"], 60 * 3600);
        let (_, call_after) = app.get("/api/v1/calls/playground", "startup").await;
        assert_eq!(
            call_after["budgets"][0]["awarded_gpu_hours"].as_i64().unwrap()
                - call_before["budgets"][0]["awarded_gpu_hours"].as_i64().unwrap(),
            20
        );

        // Renewal: not before the final report.
        let renewal = json!({"kind": "renewal", "gpu_hours": 100, "duration_days": 60, "reason": "scale up"});
        let (_, r) = app
            .post(
                &format!("/api/v1/allocations/{alloc}/requests"),
                "startup",
                renewal.clone(),
            )
            .await;
        assert_eq!(r["state"], "ineligible", "{r}");
        let rule = r["eligibility"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["rule"] == "final-report")
            .unwrap()
            .clone();
        assert_eq!(rule["passed"], false);
        assert!(rule["reason"].as_str().unwrap().contains(&alloc), "{rule}");
        let (status, v) = app
            .post(
                &format!("/api/v1/allocations/{alloc}/report"),
                "startup",
                json!({"summary": "Trained and evaluated the grasping model",
                    "outputs": [{"kind": "model", "title": "grasp-7b", "url": "https://hub.example/grasp-7b"},
                                {"kind": "paper", "title": "Grasping at scale", "url": "https://doi.org/10.1234/x"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        let (status, _) = app
            .post(
                &format!("/api/v1/allocations/{alloc}/report"),
                "startup",
                json!({"summary": "again"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "one final report");
        let (_, v) = app.get(&format!("/api/v1/allocations/{alloc}/report"), "startup").await;
        assert_eq!(v["outputs"][0]["kind"], "model");
        let id = r["id"].as_str().unwrap();
        app.post(&format!("/api/v1/applications/{id}/reopen"), "startup", json!({}))
            .await;
        let (_, v) = app
            .post(&format!("/api/v1/applications/{id}/submit"), "startup", json!({}))
            .await;
        assert_eq!(v["state"], "panel", "{v}");
        let v = decide_and_accept(id.to_string()).await;
        assert_eq!(v["project"], json!(project), "the renewal continues the project");
        let renewed = v["allocation"].as_str().unwrap();
        assert_ne!(renewed, alloc);
        let (_, n) = app.get(&format!("/api/v1/allocations/{renewed}"), "startup").await;
        assert_eq!(n["gpu_seconds"]["granted"], 100 * 3600);
        assert_eq!(n["class"], "playground");

        // Another organisation can neither ask nor read.
        let (status, _) = app
            .post(&format!("/api/v1/allocations/{alloc}/requests"), "sme", renewal)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = app.get(&format!("/api/v1/allocations/{alloc}/report"), "sme").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

/// Sign-ups and confirmation attempts are limited per client address, with a problem
/// document that says when to retry; nothing is created by a refused one.
#[tokio::test]
async fn sign_ups_are_rate_limited_per_address() {
    let app = app_with(fresh_dir("sqlite").await, |c| c.signups_per_hour = 8).await;
    let signup = |n: u32| {
        json!({"email": format!("burst{n}@new.example"), "name": "B",
            "organisation": {"name": format!("Burst {n}"), "type": "startup", "country": "IT"}})
    };
    for n in 0..2 {
        let (status, v) = app.call(Method::POST, "/api/v1/signup", None, Some(signup(n))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    }
    let (status, v) = app.call(Method::POST, "/api/v1/signup", None, Some(signup(2))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["code"], "rate-limited");
    assert!(v["detail"].as_str().unwrap().contains("retry in"), "{v}");
    let (_, orgs) = app.get("/api/v1/orgs", "admin").await;
    assert!(!orgs.to_string().contains("Burst 2"));
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/signup/verify",
            None,
            Some(json!({"code": "AAAAAAAA"})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "guessing codes shares the limit");
}

/// Signing up creates nothing until the code comes back: nobody can take another person's
/// address or an organisation's name, and the answer never tells whether an address is
/// registered.
#[tokio::test]
async fn sign_up_creates_nothing_until_the_code_comes_back() {
    let app = app_with(fresh_dir("sqlite").await, |_| {}).await;
    let code_for = |email: &'static str| {
        let store = app.state.store.clone();
        async move {
            let messages = store.all_messages(1000).await.unwrap();
            let m = messages
                .iter()
                .find(|m| m.to_email == email && m.kind == "verify-email")
                .unwrap();
            m.subject.rsplit(' ').next().unwrap().to_string()
        }
    };
    let body = |email: &str, org: &str| json!({"email": email, "name": "N", "organisation": {"name": org, "type": "startup", "country": "IT"}});
    // A squatter asks for the real owner's address and a name: nothing exists yet.
    let (status, squat) = app
        .call(
            Method::POST,
            "/api/v1/signup",
            None,
            Some(body("owner@real.example", "Real Srl")),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{squat}");
    assert!(
        app.state
            .store
            .user_by_email("owner@real.example")
            .await
            .unwrap()
            .is_none()
    );
    let (_, orgs) = app.get("/api/v1/orgs", "admin").await;
    assert!(!orgs.to_string().contains("Real Srl"));
    // The owner signs up too (replacing the earlier request) and confirms with their code.
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/signup",
            None,
            Some(body("owner@real.example", "Real Srl")),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let code = code_for("owner@real.example").await;
    let newest = app.state.store.all_messages(1000).await.unwrap();
    let codes: Vec<&str> = newest
        .iter()
        .filter(|m| m.kind == "verify-email" && m.to_email == "owner@real.example")
        .map(|m| m.subject.as_str())
        .collect();
    assert_eq!(codes.len(), 2);
    let (status, done) = app
        .call(Method::POST, "/api/v1/signup/verify", None, Some(json!({"code": code})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "the newest code works: {done}");
    assert_eq!(done["organisation"]["name"], "Real Srl");
    assert!(done["user"]["email_verified_at"].is_string());
    // The first code was replaced.
    let old = codes[1].rsplit(' ').next().unwrap();
    let (status, v) = app
        .call(Method::POST, "/api/v1/signup/verify", None, Some(json!({"code": old})))
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid-verification-code"))
    );
    // The same request for a registered address: the same answer; the owner is warned.
    let (status, again) = app
        .call(
            Method::POST,
            "/api/v1/signup",
            None,
            Some(body("owner@real.example", "Other")),
        )
        .await;
    assert_eq!((status, again), (StatusCode::ACCEPTED, squat));
    let messages = app.state.store.all_messages(1000).await.unwrap();
    assert!(
        messages
            .iter()
            .any(|m| m.kind == "signup-existing-account" && m.to_email == "owner@real.example")
    );
    assert_eq!(
        messages.iter().filter(|m| m.kind == "verify-email").count(),
        2,
        "no code for a registered address"
    );
}
