//! `aifactory serve --demo`: a small factory to try things on: two sites in two countries
//! with a few nodes of virtual GPUs, organisations of every type, users of every role,
//! projects with allocations, an open call of each mode (playground, fast lane, large
//! scale), a two-day course, a programme manager and a pool of two reviewers, and a token per demo user
//! written to `demo-tokens.json`.

use access::call::{CallSpec, Mode};
use domain::{Cluster, OrgType, PriorityClass};
use serde_json::json;
use std::path::Path;
use store::{NewAllocation, NewCall, NewOrg, NewProject, NewUser, OrgRole, PlatformRole, Store, StoreError};

pub fn demo_cluster() -> Cluster {
    Cluster::from_toml(
        r#"
        [[sites]]
        name = "it-bologna"
        country = "IT"
        pue = 1.15
        carbon_g_per_kwh = 330
        energy_price_eur_per_mwh = 140
        gpu_hour_price_cents = 250
        [[sites]]
        name = "fi-kajaani"
        country = "FI"
        pue = 1.05
        carbon_g_per_kwh = 90
        energy_price_eur_per_mwh = 60
        gpu_hour_price_cents = 190
        [[nodes]]
        name = "bo-gpu"
        count = 2
        site = "it-bologna"
        gpu_model = "H100-SXM"
        gpus = 4
        cpu_cores = 64
        ram_gib = 512
        [[nodes]]
        name = "kaj-gpu"
        count = 2
        site = "fi-kajaani"
        gpu_model = "H200-SXM"
        gpus = 4
        cpu_cores = 64
        ram_gib = 512
        "#,
    )
    .expect("the demo cluster is valid")
}

/// Seeds the demo once (when the store has no organisation yet) and writes the tokens
/// file; returns the tokens by role, or `None` when the store was already seeded.
pub async fn seed(store: &Store, data_dir: &Path) -> Result<Option<serde_json::Value>, StoreError> {
    let blobs = crate::hub::open_blobs(data_dir, None).map_err(StoreError::Corrupt)?;
    seed_with(store, data_dir, &blobs).await
}

/// As [`seed`], the hub's contents written to `blobs` (the factory's object storage).
pub async fn seed_with(
    store: &Store,
    data_dir: &Path,
    blobs: &hub::blobs::Blobs,
) -> Result<Option<serde_json::Value>, StoreError> {
    if !store.list_orgs().await?.is_empty() {
        return Ok(None);
    }
    let now = crate::accounting::unix_now() as i64;
    let year = 365 * 86_400;
    let mut tokens = serde_json::Map::new();
    for (key, email, role) in [
        ("admin", "admin@factory.example", PlatformRole::Admin),
        ("operator", "operator@factory.example", PlatformRole::Operator),
        ("reviewer", "reviewer@factory.example", PlatformRole::Reviewer),
        ("reviewer2", "reviewer2@factory.example", PlatformRole::Reviewer),
        ("manager", "manager@factory.example", PlatformRole::ProgrammeManager),
    ] {
        let u = store
            .create_user(&NewUser {
                email: email.into(),
                name: key.into(),
                platform_role: Some(role),
            })
            .await?;
        tokens.insert(key.into(), json!(store.create_token(&u.id, "demo").await?.1));
    }
    let orgs = [
        (
            "startup",
            "Nebula Robotics",
            OrgType::Startup,
            "IT",
            "robotics",
            12,
            PriorityClass::FastLane,
            "it-bologna",
        ),
        (
            "sme",
            "Baltic Vision Oy",
            OrgType::Sme,
            "FI",
            "manufacturing",
            85,
            PriorityClass::FastLane,
            "fi-kajaani",
        ),
        (
            "industry",
            "Acciaierie Unite",
            OrgType::Industry,
            "IT",
            "steel",
            4200,
            PriorityClass::Standard,
            "it-bologna",
        ),
        (
            "research",
            "Università di Bologna",
            OrgType::Research,
            "IT",
            "research",
            6000,
            PriorityClass::LargeScale,
            "it-bologna",
        ),
        (
            "public",
            "City of Oulu",
            OrgType::Public,
            "FI",
            "public-services",
            900,
            PriorityClass::Playground,
            "fi-kajaani",
        ),
    ];
    let mut owners = std::collections::HashMap::new();
    for (key, name, org_type, country, sector, employees, class, site) in orgs {
        let org = store
            .create_org(&NewOrg {
                name: name.into(),
                org_type,
                country: country.into(),
                sectors: vec![sector.into()],
                employees: Some(employees),
                turnover_eur: None,
            })
            .await?;
        let user = store
            .create_user(&NewUser {
                email: format!("{key}@{key}.example"),
                name: format!("{name} admin"),
                platform_role: None,
            })
            .await?;
        store.add_membership(&user.id, &org.id, OrgRole::Admin).await?;
        owners.insert(key, (org.clone(), user.id.clone()));
        let member = store
            .create_user(&NewUser {
                email: format!("member@{key}.example"),
                name: format!("{name} member"),
                platform_role: None,
            })
            .await?;
        store.add_membership(&member.id, &org.id, OrgRole::Member).await?;
        let project = store
            .create_project(&NewProject {
                org_id: org.id.clone(),
                name: format!("{key}-pilot"),
                sector: sector.into(),
                pi_user_id: Some(user.id.clone()),
            })
            .await?;
        store.add_project_member(&project.id, &member.id).await?;
        store
            .create_allocation(&NewAllocation {
                project_id: project.id,
                site: site.into(),
                class,
                gpu_seconds: 500 * 3600,
                valid_from: now - 3600,
                valid_until: now + year,
                slurm: Default::default(),
                price_cents_per_gpu_hour: None,
            })
            .await?;
        if ["startup", "sme", "research"].contains(&key) {
            tokens.insert(key.into(), json!(store.create_token(&user.id, "demo").await?.1));
        }
    }
    for (name, title, mode, site, country, hours) in [
        (
            "playground",
            "Playground: try the factory's GPUs",
            Mode::Playground,
            "it-bologna",
            "IT",
            20_000,
        ),
        (
            "fast-lane",
            "Fast Lane: up to 50,000 GPU-hours for SMEs and start-ups",
            Mode::FastLane,
            "fi-kajaani",
            "FI",
            200_000,
        ),
        (
            "large-scale",
            "Large Scale: peer-reviewed access for big runs",
            Mode::LargeScale,
            "it-bologna",
            "IT",
            1_000_000,
        ),
    ] {
        let mut spec = CallSpec::defaults(mode, site, country, hours);
        if mode == Mode::LargeScale {
            // Ranked together at cut-offs every three months.
            spec.cutoffs = (1..=4).map(|q| now + q * 91 * 86_400).collect();
        }
        store
            .create_call(&NewCall {
                name: name.into(),
                title: title.into(),
                description: format!(
                    "{title}. Free of charge for SMEs and start-ups of the EU, the EEA and associated countries."
                ),
                spec,
                opens_at: now - 86_400,
                closes_at: None,
            })
            .await?;
    }
    store
        .create_course(&store::NewCourse {
            name: "llm-finetuning".into(),
            title: "Fine-tuning open LLMs on a GPU cluster".into(),
            description: "Two days, hands-on: data preparation, LoRA, evaluation, and running it all as jobs.".into(),
            site: "fi-kajaani".into(),
            starts_at: now + 14 * 86_400,
            ends_at: now + 16 * 86_400,
            seats: 20,
            gpu_hours_per_trainee: 20,
        })
        .await?;
    seed_hub(store, blobs, &owners, now).await?;
    let tokens = serde_json::Value::Object(tokens);
    std::fs::create_dir_all(data_dir)
        .map_err(|e| StoreError::Corrupt(format!("cannot create {}: {e}", data_dir.display())))?;
    let path = data_dir.join("demo-tokens.json");
    std::fs::write(&path, serde_json::to_string_pretty(&tokens).unwrap_or_default())
        .map_err(|e| StoreError::Corrupt(format!("cannot write {}: {e}", path.display())))?;
    Ok(Some(tokens))
}

/// A few small datasets and one small model, made here, with different access rights.
async fn seed_hub(
    store: &Store,
    blobs: &hub::blobs::Blobs,
    owners: &std::collections::HashMap<&str, (store::Org, String)>,
    now: i64,
) -> Result<(), StoreError> {
    use hub::{AccessRights, RepoKind};
    let defects: String = std::iter::once("image,label,width_px,height_px\n".to_string())
        .chain((0..200).map(|i| {
            let label = ["ok", "scratch", "dent", "crack"][i % 4];
            format!("img_{i:04}.png,{label},640,480\n")
        }))
        .collect();
    let rulings: String = (0..50)
        .map(|i| {
            format!(
                "{{\"id\": {i}, \"court\": \"Tribunale di Bologna\", \"year\": {}, \"text\": \"Sentenza n. {i}\"}}\n",
                2015 + i % 10
            )
        })
        .collect();
    // A tiny linear policy: 4 inputs, 2 outputs, little-endian f32, made deterministically.
    let weights: Vec<u8> = (0..8u32).flat_map(|i| (i as f32 * 0.125 - 0.5).to_le_bytes()).collect();
    type Files = Vec<(&'static str, Vec<u8>)>;
    let repos: [(&str, RepoKind, &str, AccessRights, Files); 4] = [
        (
            "sme",
            RepoKind::Dataset,
            "steel-surface-defects",
            AccessRights::Public,
            vec![
                ("README.md", b"---\nlicense: cc-by-4.0\ntask_categories:\n- image-classification\nlanguage:\n- en\n---\n# Steel surface defects\nLabels of 200 surface images from a Finnish line: ok, scratch, dent, crack.\n".to_vec()),
                ("data/labels.csv", defects.into_bytes()),
            ],
        ),
        (
            "research",
            RepoKind::Dataset,
            "italian-court-rulings",
            AccessRights::Restricted,
            vec![
                ("README.md", b"---\nlicense: other\nlanguage:\n- it\n---\n# Italian court rulings\nFifty anonymised rulings; access on request, for research.\n".to_vec()),
                ("rulings.jsonl", rulings.into_bytes()),
            ],
        ),
        (
            "industry",
            RepoKind::Dataset,
            "furnace-telemetry",
            AccessRights::NonPublic,
            vec![("README.md", b"# Furnace telemetry\nInternal to Acciaierie Unite.\n".to_vec())],
        ),
        (
            "startup",
            RepoKind::Model,
            "arm-policy-tiny",
            AccessRights::Public,
            vec![
                ("README.md", b"---\nlicense: apache-2.0\nlibrary_name: aifactory\n---\n# Arm policy (tiny)\nA 4x2 linear policy, trained on the factory's demo data.\n".to_vec()),
                ("config.json", br#"{"inputs": 4, "outputs": 2, "dtype": "float32"}"#.to_vec()),
                ("model.bin", weights),
            ],
        ),
    ];
    for (owner, kind, name, access_rights, files) in repos {
        let Some((org, user)) = owners.get(owner) else { continue };
        let new = store::NewRepo {
            kind,
            namespace: hub::namespace_of(&org.name),
            name: name.into(),
            org_id: org.id.clone(),
            access_rights,
            created_by: user.clone(),
            job_id: None,
        };
        let files: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (*p, c.as_slice())).collect();
        let repo = crate::hub::new_repo(store, blobs, &new, &files, now)
            .await
            .map_err(|e| StoreError::Corrupt(format!("seeding the demo hub: {e:?}")))?;
        store
            .set_repo_metadata(&repo.id, &demo_metadata(name, &org.name), now)
            .await?;
    }
    Ok(())
}

/// What the demo's entries are described with.
fn demo_metadata(name: &str, owner: &str) -> hub::catalogue::Metadata {
    let mut m = match name {
        "steel-surface-defects" => described(
            &[("en", "Steel surface defects"), ("fi", "Teräspinnan viat")],
            "Labels of 200 surface images from a Finnish steel line: ok, scratch, dent, crack.",
            &["TECH", "ECON"],
            Some("cc-by-4.0"),
            &["FIN"],
            Some(("2024-01-01", "2024-12-31")),
            &["computer vision", "quality control", "steel"],
        ),
        "italian-court-rulings" => described(
            &[
                ("en", "Italian court rulings"),
                ("it", "Sentenze dei tribunali italiani"),
            ],
            "Fifty anonymised rulings of the Tribunale di Bologna, for legal language models; access on request.",
            &["JUST"],
            None,
            &["ITA"],
            Some(("2015-01-01", "2024-12-31")),
            &["legal", "italian", "nlp"],
        ),
        "furnace-telemetry" => described(
            &[("en", "Furnace telemetry")],
            "Internal telemetry.",
            &["ENER"],
            None,
            &["ITA"],
            None,
            &[],
        ),
        _ => described(
            &[("en", "Arm policy (tiny)")],
            "A 4x2 linear policy for a robot arm, trained on the factory's demo data.",
            &["TECH"],
            Some("apache-2.0"),
            &[],
            None,
            &["robotics", "policy"],
        ),
    };
    m.contact_name = Some(format!("{owner} data desk"));
    m.contact_email = Some(format!("data@{}.example", hub::namespace_of(owner)));
    m
}

fn described(
    titles: &[(&str, &str)],
    description: &str,
    themes: &[&str],
    licence: Option<&str>,
    spatial: &[&str],
    period: Option<(&str, &str)>,
    keywords: &[&str],
) -> hub::catalogue::Metadata {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    hub::catalogue::Metadata {
        titles: titles.iter().map(|(l, t)| (l.to_string(), t.to_string())).collect(),
        descriptions: [("en".to_string(), description.to_string())].into(),
        keywords: strings(keywords),
        themes: strings(themes),
        licence: licence.map(str::to_string),
        spatial: strings(spatial),
        temporal_start: period.map(|p| p.0.to_string()),
        temporal_end: period.map(|p| p.1.to_string()),
        ..Default::default()
    }
}

/// The demo users' e-mail addresses.
fn demo_emails() -> Vec<String> {
    let mut out: Vec<String> = ["admin", "operator", "reviewer", "reviewer2", "manager"]
        .iter()
        .map(|k| format!("{k}@factory.example"))
        .collect();
    for key in ["startup", "sme", "industry", "research", "public"] {
        out.push(format!("{key}@{key}.example"));
        out.push(format!("member@{key}.example"));
    }
    out
}

/// One random portal password for every demo user (hashed once: the demo's users share it),
/// added to `demo-tokens.json` as `portal_password`. For `serve --demo` only: the tests
/// set the passwords they use.
pub async fn set_portal_passwords(store: &Store, data_dir: &Path) -> Result<String, StoreError> {
    let mut raw = [0u8; 9];
    getrandom::getrandom(&mut raw).map_err(|e| StoreError::Corrupt(format!("no randomness: {e}")))?;
    let password = format!("demo-{}", raw.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let phc = crate::portal::hash_password(password.clone())
        .await
        .map_err(|e| StoreError::Corrupt(e.detail))?;
    let now = crate::accounting::unix_now() as i64;
    for email in demo_emails() {
        if let Some(user) = store.user_by_email(&email).await? {
            store.set_password(&user.id, &phc, now).await?;
        }
    }
    let path = data_dir.join("demo-tokens.json");
    let mut tokens: serde_json::Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| json!({}));
    tokens["portal_password"] = json!(password);
    std::fs::write(&path, serde_json::to_string_pretty(&tokens).unwrap_or_default())
        .map_err(|e| StoreError::Corrupt(format!("cannot write {}: {e}", path.display())))?;
    Ok(password)
}
