//! One suite, every backend: SQLite always, PostgreSQL when `AIFACTORY_TEST_PG` holds its
//! URL (`scripts/test` starts one and sets it; in CI its absence is an error).

use domain::{GpuRequest, JobSpec, OrgType, PriorityClass};
use store::*;

async fn backends() -> Vec<(&'static str, Store)> {
    let dir = std::env::temp_dir().join(format!("aifactory-store-{}", new_id("t")));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = Store::connect(&format!("sqlite:{}", dir.join("db.sqlite").display()))
        .await
        .unwrap();
    let mut all = vec![("sqlite", sqlite)];
    match std::env::var("AIFACTORY_TEST_PG") {
        Ok(url) => all.push((
            "postgres",
            Store::connect(&url).await.expect("AIFACTORY_TEST_PG is reachable"),
        )),
        Err(_) if std::env::var("CI").is_ok() => {
            panic!("CI must run the PostgreSQL suite: AIFACTORY_TEST_PG is not set")
        }
        Err(_) => eprintln!("AIFACTORY_TEST_PG not set: PostgreSQL suite skipped (./scripts/test sets it)"),
    }
    all
}

struct World {
    org: Org,
    user: User,
    project: Project,
    alloc: Allocation,
}

async fn world(s: &Store, gpu_seconds: i64) -> World {
    let org = s
        .create_org(&NewOrg {
            name: format!("Acme {}", new_id("n")),
            org_type: OrgType::Sme,
            country: "IT".into(),
            sectors: vec!["health".into(), "manufacturing".into()],
            employees: Some(40),
            turnover_eur: Some(5_000_000),
        })
        .await
        .unwrap();
    let user = s
        .create_user(&NewUser {
            email: format!("{}@acme.example", new_id("u")),
            name: "Ada".into(),
            platform_role: None,
        })
        .await
        .unwrap();
    s.add_membership(&user.id, &org.id, OrgRole::Admin).await.unwrap();
    let project = s
        .create_project(&NewProject {
            org_id: org.id.clone(),
            name: "vision".into(),
            sector: "health".into(),
            pi_user_id: Some(user.id.clone()),
        })
        .await
        .unwrap();
    let alloc = s
        .create_allocation(&NewAllocation {
            project_id: project.id.clone(),
            site: "it-bologna".into(),
            class: PriorityClass::FastLane,
            gpu_seconds,
            valid_from: 0,
            valid_until: i64::MAX / 2,
            slurm: Default::default(),
            price_cents_per_gpu_hour: None,
        })
        .await
        .unwrap();
    World {
        org,
        user,
        project,
        alloc,
    }
}

fn job(w: &World, reserve: i64, key: Option<&str>) -> NewJob {
    NewJob {
        allocation_id: w.alloc.id.clone(),
        user_id: w.user.id.clone(),
        name: "train".into(),
        spec: JobSpec::new(w.project.id.clone(), GpuRequest::Spread { gpus: 2 }, 3600),
        command: vec!["python".into(), "train.py".into()],
        reserved_gpu_seconds: reserve,
        submitted_at: now(),
        idempotency_key: key.map(str::to_string),
        datasets: Vec::new(),
    }
}

fn end(state: JobState, gpu_seconds: i64) -> JobEnd {
    JobEnd {
        state,
        ended_at: now(),
        exit_code: Some(0),
        reason: None,
        usage: Usage {
            gpu_seconds,
            energy_wh: gpu_seconds / 10,
            carbon_g: gpu_seconds / 20,
            cost_cents: gpu_seconds / 3,
        },
    }
}

#[tokio::test]
async fn accounts_and_tokens() {
    for (name, s) in backends().await {
        let w = world(&s, 1000).await;
        assert_eq!(s.get_org(&w.org.id).await.unwrap(), w.org, "{name}");
        assert_eq!(
            s.memberships(&w.user.id).await.unwrap(),
            vec![Membership {
                org_id: w.org.id.clone(),
                role: OrgRole::Admin
            }]
        );
        let (token, secret) = s.create_token(&w.user.id, "laptop").await.unwrap();
        assert_ne!(hash_secret(&secret), secret);
        let (user, token_id, _) = s.authenticate(&secret).await.unwrap().expect("valid token");
        assert_eq!(
            (user.id.as_str(), token_id.as_str()),
            (w.user.id.as_str(), token.id.as_str()),
            "{name}"
        );
        assert!(s.authenticate("aif_wrong").await.unwrap().is_none());
        s.revoke_token(&w.user.id, &token.id).await.unwrap();
        assert!(
            s.authenticate(&secret).await.unwrap().is_none(),
            "{name}: revoked tokens stop working"
        );
        assert!(matches!(
            s.revoke_token(&w.user.id, &token.id).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(s.list_tokens(&w.user.id).await.unwrap()[0].revoked_at.is_some());
        // Uniqueness and references become 409 and 422, never a database error.
        let again = NewOrg {
            name: w.org.name.clone(),
            org_type: OrgType::Sme,
            country: "IT".into(),
            sectors: vec![],
            employees: None,
            turnover_eur: None,
        };
        match s.create_org(&again).await {
            Err(StoreError::Conflict(words)) => {
                assert_eq!(words, "an organisation with this name exists already", "{name}")
            }
            other => panic!("{name}: {other:?}"),
        }
        s.add_project_member(&w.project.id, &w.user.id).await.ok();
        match s.add_project_member(&w.project.id, &w.user.id).await {
            Err(StoreError::Conflict(words)) => {
                assert_eq!(words, "the user is already a member of this project", "{name}")
            }
            other => panic!("{name}: {other:?}"),
        }
        let orphan = NewProject {
            org_id: "org_missing".into(),
            name: "x".into(),
            sector: "x".into(),
            pi_user_id: None,
        };
        assert!(
            matches!(
                s.create_project(&orphan).await,
                Err(StoreError::Rule {
                    code: "unknown-reference",
                    ..
                })
            ),
            "{name}"
        );
    }
}

#[tokio::test]
async fn admission_reserves_and_settlement_is_booked_once() {
    for (name, s) in backends().await {
        let w = world(&s, 1000).await;
        let ctx = s.submission_context(&w.project.id).await.unwrap();
        assert_eq!(
            (ctx.project, ctx.org_type, ctx.allocations.len()),
            (w.project.clone(), OrgType::Sme, 1),
            "{name}"
        );
        assert_eq!(ctx.allocations[0].id, w.alloc.id);
        assert_eq!(
            ctx.members,
            std::slice::from_ref(&w.user.id),
            "{name}: the PI is a member"
        );
        let bare = s
            .create_project(&NewProject {
                org_id: w.org.id.clone(),
                name: "bare".into(),
                sector: "x".into(),
                pi_user_id: None,
            })
            .await
            .unwrap();
        let ctx = s.submission_context(&bare.id).await.unwrap();
        assert!(ctx.allocations.is_empty() && ctx.members.is_empty(), "{name}");
        // Members: added to the organisation, then to a project; leaving the organisation
        // leaves its projects.
        let bob = s
            .create_user(&NewUser {
                email: format!("{}@acme.example", new_id("u")),
                name: "Bob".into(),
                platform_role: None,
            })
            .await
            .unwrap();
        s.add_membership(&bob.id, &w.org.id, OrgRole::Member).await.unwrap();
        assert!(matches!(
            s.add_membership(&bob.id, &w.org.id, OrgRole::Admin).await,
            Err(StoreError::Conflict(_))
        ));
        let members = s.org_members(&w.org.id).await.unwrap();
        assert_eq!(
            members.iter().map(|(u, r)| (u.name.as_str(), *r)).collect::<Vec<_>>(),
            [("Ada", OrgRole::Admin), ("Bob", OrgRole::Member)],
            "{name}"
        );
        s.add_project_member(&bare.id, &bob.id).await.unwrap();
        assert_eq!(s.project_members(&bare.id).await.unwrap()[0].id, bob.id);
        s.remove_membership(&bob.id, &w.org.id).await.unwrap();
        assert!(s.project_members(&bare.id).await.unwrap().is_empty(), "{name}");
        assert!(matches!(
            s.remove_membership(&bob.id, &w.org.id).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            s.remove_project_member(&bare.id, &bob.id).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            s.submission_context("prj_missing").await,
            Err(StoreError::NotFound { .. })
        ));
        let first = s.submit_job(&job(&w, 600, None)).await.unwrap();
        assert_eq!(first.state, JobState::Pending);
        assert_eq!(
            s.balance(&w.alloc.id).await.unwrap(),
            Balance {
                granted: 1000,
                reserved: 600,
                used: 0,
                available: 400
            },
            "{name}"
        );
        let err = s.submit_job(&job(&w, 600, None)).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Rule {
                    code: "allocation-exhausted",
                    ..
                }
            ),
            "{name}: {err}"
        );
        assert!(
            s.mark_running(&first.id, now(), &serde_json::json!([{"node": 0, "gpus": [0, 1]}]))
                .await
                .unwrap()
        );
        assert!(
            !s.mark_running(&first.id, now(), &serde_json::json!([])).await.unwrap(),
            "{name}: a job starts once"
        );
        assert!(s.finish_job(&first.id, &end(JobState::Completed, 300)).await.unwrap());
        assert!(
            !s.finish_job(&first.id, &end(JobState::Completed, 300)).await.unwrap(),
            "{name}: accounted once"
        );
        assert_eq!(
            s.balance(&w.alloc.id).await.unwrap(),
            Balance {
                granted: 1000,
                reserved: 0,
                used: 300,
                available: 700
            }
        );
        let expected = Usage {
            gpu_seconds: 300,
            energy_wh: 30,
            carbon_g: 15,
            cost_cents: 100,
        };
        for scope in [
            UsageScope::Job(&first.id),
            UsageScope::Allocation(&w.alloc.id),
            UsageScope::Project(&w.project.id),
            UsageScope::Org(&w.org.id),
        ] {
            assert_eq!(s.usage(scope).await.unwrap(), expected, "{name}: {scope:?}");
        }
        let stored = s.get_job(&first.id).await.unwrap();
        assert_eq!((stored.state, stored.exit_code), (JobState::Completed, Some(0)));
        assert_eq!(stored.spec.gpus, GpuRequest::Spread { gpus: 2 });
        s.top_up(&w.alloc.id, 500).await.unwrap();
        assert_eq!(s.balance(&w.alloc.id).await.unwrap().available, 1200);
        assert!(
            s.verify_balances(&w.alloc.id).await.unwrap(),
            "{name}: running sums match the ledger"
        );
    }
}

#[tokio::test]
async fn allocation_rules_and_idempotency() {
    for (name, s) in backends().await {
        let w = world(&s, 1000).await;
        let a = s.submit_job(&job(&w, 100, Some("k1"))).await.unwrap();
        let b = s.submit_job(&job(&w, 100, Some("k1"))).await.unwrap();
        assert_eq!(a.id, b.id, "{name}: a retried submit returns the same job");
        assert_eq!(
            s.balance(&w.alloc.id).await.unwrap().reserved,
            100,
            "{name}: and reserves once"
        );
        s.set_allocation_state(&w.alloc.id, AllocationState::Suspended)
            .await
            .unwrap();
        let err = s.submit_job(&job(&w, 100, None)).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Rule {
                    code: "allocation-inactive",
                    ..
                }
            ),
            "{name}"
        );
        s.set_allocation_state(&w.alloc.id, AllocationState::Active)
            .await
            .unwrap();
        s.extend_allocation(&w.alloc.id, 1).await.unwrap();
        let err = s.submit_job(&job(&w, 100, None)).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Rule {
                    code: "allocation-expired",
                    ..
                }
            ),
            "{name}"
        );
        assert!(matches!(
            s.extend_allocation(&w.alloc.id, 0).await,
            Err(StoreError::Rule {
                code: "invalid-window",
                ..
            })
        ));
        let mut bad = job(&w, 100, None);
        bad.allocation_id = "alc_missing".into();
        assert!(matches!(s.submit_job(&bad).await, Err(StoreError::NotFound { .. })));
        // The Slurm account and QoS the site charges the allocation's jobs to.
        assert_eq!(w.alloc.slurm, SlurmCharge::default(), "{name}");
        let charge = SlurmCharge {
            account: Some("euhpc_a01_042".into()),
            qos: Some("normal".into()),
        };
        s.set_allocation_slurm(&w.alloc.id, &charge).await.unwrap();
        assert_eq!(s.get_allocation(&w.alloc.id).await.unwrap().slurm, charge, "{name}");
        let context = s.submission_context(&w.alloc.project_id).await.unwrap();
        assert_eq!(context.allocations[0].slurm, charge, "{name}");
        assert!(matches!(
            s.set_allocation_slurm("alc_missing", &charge).await,
            Err(StoreError::NotFound { .. })
        ));
    }
}

#[tokio::test]
async fn listing_filters_and_pages_newest_first() {
    for (name, s) in backends().await {
        let w = world(&s, 1_000_000).await;
        let mut ids = Vec::new();
        for _ in 0..25 {
            ids.push(s.submit_job(&job(&w, 10, None)).await.unwrap().id);
        }
        s.finish_job(&ids[3], &end(JobState::Cancelled, 0)).await.unwrap();
        let filter = JobFilter {
            project_id: Some(w.project.id.clone()),
            ..JobFilter::default()
        };
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = s.list_jobs(&filter, cursor.as_deref(), 10).await.unwrap();
            if page.is_empty() {
                break;
            }
            cursor = page.last().map(|j| j.id.clone());
            seen.extend(page.into_iter().map(|j| j.id));
        }
        ids.reverse();
        assert_eq!(seen, ids, "{name}");
        let cancelled = JobFilter {
            state: Some(JobState::Cancelled),
            ..filter.clone()
        };
        assert_eq!(s.list_jobs(&cancelled, None, 100).await.unwrap().len(), 1);
        let other = JobFilter {
            org_id: Some("org_other".into()),
            ..JobFilter::default()
        };
        assert!(s.list_jobs(&other, None, 100).await.unwrap().is_empty());
        assert_eq!(
            s.active_jobs()
                .await
                .unwrap()
                .iter()
                .filter(|j| j.project_id == w.project.id)
                .count(),
            24
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_submits_never_overspend() {
    for (name, s) in backends().await {
        let w = world(&s, 1000).await;
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let s = s.clone();
            let j = job(&w, 100, None);
            tasks.push(tokio::spawn(async move { s.submit_job(&j).await }));
        }
        let mut admitted = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => admitted += 1,
                Err(StoreError::Rule {
                    code: "allocation-exhausted",
                    ..
                }) => {}
                Err(e) => panic!("{name}: {e}"),
            }
        }
        assert_eq!(admitted, 10, "{name}");
        assert_eq!(s.balance(&w.alloc.id).await.unwrap().available, 0, "{name}");
        assert!(
            s.verify_balances(&w.alloc.id).await.unwrap(),
            "{name}: running sums match the ledger"
        );
    }
}

#[tokio::test]
async fn a_batch_admits_like_one_by_one() {
    for (name, s) in backends().await {
        let w = world(&s, 1000).await;
        let other = world(&s, 100).await;
        let missing = NewJob {
            allocation_id: "alc_missing".into(),
            ..job(&w, 1, None)
        };
        let batch = vec![
            job(&w, 400, Some("a")),
            job(&w, 400, Some("a")), // the same key again: the same job, reserved once
            job(&other, 100, None),
            job(&w, 400, None),
            job(&w, 700, None), // 200 left: refused
            missing,
            job(&other, 1, None), // other's 100 are gone
            job(&w, 200, None),
        ];
        let results = s.submit_jobs(&batch).await.unwrap();
        let verdict: Vec<&str> = results
            .iter()
            .map(|r| match r {
                Ok(_) => "ok",
                Err(StoreError::Rule { code, .. }) => code,
                Err(StoreError::NotFound { .. }) => "not-found",
                Err(_) => "other",
            })
            .collect();
        assert_eq!(
            verdict,
            [
                "ok",
                "ok",
                "ok",
                "ok",
                "allocation-exhausted",
                "not-found",
                "allocation-exhausted",
                "ok"
            ],
            "{name}"
        );
        let ids: Vec<&str> = results.iter().flatten().map(|j| j.id.as_str()).collect();
        assert_eq!(ids[0], ids[1], "{name}");
        assert_eq!(s.balance(&w.alloc.id).await.unwrap().available, 0, "{name}");
        assert_eq!(s.balance(&other.alloc.id).await.unwrap().available, 0, "{name}");
        for id in &ids {
            assert_eq!(s.get_job(id).await.unwrap().state, JobState::Pending, "{name}");
        }
        assert!(s.verify_balances(&w.alloc.id).await.unwrap(), "{name}");
        assert!(s.verify_balances(&other.alloc.id).await.unwrap(), "{name}");
        let again = s.submit_jobs(&[job(&w, 1, Some("a"))]).await.unwrap();
        assert_eq!(
            again[0].as_ref().unwrap().id,
            ids[0],
            "{name}: the key outlives the batch"
        );
    }
}

#[tokio::test]
async fn invitations_need_the_invitees_consent() {
    for (name, s) in backends().await {
        let w = world(&s, 1000).await;
        let email = format!("{}@elsewhere.example", new_id("guest"));
        let guest = s
            .create_user(&NewUser {
                email: email.clone(),
                name: "Guest".into(),
                platform_role: None,
            })
            .await
            .unwrap();
        let day = 86_400;
        let invitation = s
            .create_invitation(&w.org.id, &email.to_uppercase(), OrgRole::Member, &w.user.id, day)
            .await
            .unwrap();
        assert_eq!(
            (invitation.email.as_str(), invitation.state),
            (email.as_str(), InvitationState::Pending)
        );
        assert!(
            s.memberships(&guest.id).await.unwrap().is_empty(),
            "{name}: no member before consent"
        );
        assert!(
            matches!(
                s.create_invitation(&w.org.id, &email, OrgRole::Member, &w.user.id, day)
                    .await,
                Err(StoreError::Conflict(_))
            ),
            "{name}: one waiting invitation per address"
        );
        assert_eq!(s.pending_invitations(&email).await.unwrap(), vec![invitation.clone()]);
        assert_eq!(s.org_invitations(&w.org.id).await.unwrap().len(), 1);
        let accepted = s
            .decide_invitation(&invitation.id, InvitationState::Accepted, Some(&guest.id))
            .await
            .unwrap();
        assert_eq!(accepted.state, InvitationState::Accepted);
        assert_eq!(
            s.memberships(&guest.id).await.unwrap(),
            vec![Membership {
                org_id: w.org.id.clone(),
                role: OrgRole::Member
            }],
            "{name}"
        );
        assert!(
            matches!(
                s.decide_invitation(&invitation.id, InvitationState::Declined, Some(&guest.id))
                    .await,
                Err(StoreError::Rule {
                    code: "invitation-closed",
                    ..
                })
            ),
            "{name}: decided once"
        );
        assert!(
            matches!(
                s.create_invitation(&w.org.id, &email, OrgRole::Member, &w.user.id, day)
                    .await,
                Err(StoreError::Conflict(_))
            ),
            "{name}: members are not invited"
        );
        // An expired invitation cannot be accepted.
        let late = s
            .create_invitation(&w.org.id, "late@elsewhere.example", OrgRole::Member, &w.user.id, -1)
            .await
            .unwrap();
        assert!(
            s.pending_invitations("late@elsewhere.example")
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            s.decide_invitation(&late.id, InvitationState::Accepted, Some(&guest.id))
                .await,
            Err(StoreError::Rule {
                code: "invitation-closed",
                ..
            })
        ));
    }
}
