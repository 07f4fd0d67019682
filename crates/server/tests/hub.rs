//! The hub's refusals of bad input, through the router on both stores: paths that leave
//! the repository, malformed payloads, contents that do not match their digest or size,
//! cut-off uploads, strangers committing. Each leaves the repository as it was and stores
//! nothing. (The Hugging Face client's round trip is in the CLI's tests.)

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sha2::Digest;
use tower::ServiceExt;

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    who: Option<&str>,
    headers: &[(&str, &str)],
    body: Body,
) -> Answer {
    let mut req = Request::builder().method(method).uri(path).header("host", "hub.test");
    if let Some(w) = who {
        req = req.header("authorization", format!("Bearer {}", app.token(w)));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app.router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    if status.is_client_error() || status.is_server_error() {
        assert_eq!(
            headers.get("content-type").map(|v| v.to_str().unwrap()),
            Some("application/problem+json"),
            "{status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Answer { status, headers, body }
}

fn ndjson(lines: &[Value]) -> Body {
    Body::from(lines.iter().map(|l| format!("{l}\n")).collect::<String>())
}

fn header() -> Value {
    json!({"key": "header", "value": {"summary": "a change", "description": ""}})
}

fn inline(path: &str, content: &[u8]) -> Value {
    use base64::Engine;
    json!({"key": "file", "value": {"path": path, "encoding": "base64",
        "content": base64::engine::general_purpose::STANDARD.encode(content)}})
}

async fn head_of(app: &TestApp, repo: &str) -> String {
    let a = send(
        app,
        Method::GET,
        &format!("/api/models/{repo}"),
        Some("startup"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
    a.json()["sha"].as_str().unwrap().to_string()
}

fn stored_blobs(app: &TestApp) -> usize {
    fn count(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .flatten()
                .map(|e| if e.path().is_dir() { count(&e.path()) } else { 1 })
                .sum()
        })
    }
    count(&app.dir.join("blobs").join("sha256"))
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_stored_half_way() {
    for backend in backends() {
        let app = app_in(fresh_dir(backend).await).await;
        let a = send(
            &app,
            Method::POST,
            "/api/repos/create",
            Some("startup"),
            &[("content-type", "application/json")],
            Body::from(json!({"name": "nebula-robotics/arm", "private": true}).to_string()),
        )
        .await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "{backend}: {}",
            String::from_utf8_lossy(&a.body)
        );
        let repo = "nebula-robotics/arm";
        let commit = format!("/api/models/{repo}/commit/main");
        let first = head_of(&app, repo).await;
        let blobs = stored_blobs(&app);

        // Paths that leave the repository, bad base64, garbage, unknown operations,
        // deleting what is not there: 400, and the branch has not moved.
        for (what, body) in [
            ("a path with ..", ndjson(&[header(), inline("../escape.txt", b"x")])),
            ("an absolute path", ndjson(&[header(), inline("/etc/passwd", b"x")])),
            ("a .git path", ndjson(&[header(), inline(".git/config", b"x")])),
            (
                "bad base64",
                ndjson(&[
                    header(),
                    json!({"key": "file", "value": {"path": "a.txt", "content": "!!!", "encoding": "base64"}}),
                ]),
            ),
            ("not JSON", Body::from(format!("{}\n{{not json\n", header()))),
            (
                "an unknown operation",
                ndjson(&[header(), json!({"key": "rename", "value": {}})]),
            ),
            (
                "a missing file deleted",
                ndjson(&[header(), json!({"key": "deletedFile", "value": {"path": "nope"}})]),
            ),
            ("no header", ndjson(&[inline("a.txt", b"x")])),
            (
                "an LFS file never uploaded",
                ndjson(&[
                    header(),
                    json!({"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": "ab".repeat(32), "size": 5}}),
                ]),
            ),
        ] {
            let a = send(&app, Method::POST, &commit, Some("startup"), &[], body).await;
            assert_eq!(
                a.status,
                StatusCode::BAD_REQUEST,
                "{backend}, {what}: {}",
                String::from_utf8_lossy(&a.body)
            );
            assert_eq!(
                head_of(&app, repo).await,
                first,
                "{backend}, {what}: the branch did not move"
            );
        }
        // A commit that fails half-way (its second file has a bad path) stores its first
        // file's content at most, and never shows it.
        let a = send(
            &app,
            Method::POST,
            &commit,
            Some("startup"),
            &[],
            ndjson(&[header(), inline("ok.txt", b"fine"), inline("a/../b", b"x")]),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert_eq!(head_of(&app, repo).await, first);
        let a = send(
            &app,
            Method::GET,
            &format!("/{repo}/resolve/main/ok.txt"),
            Some("startup"),
            &[],
            Body::empty(),
        )
        .await;
        assert_eq!(
            (a.status, a.header("x-error-code")),
            (StatusCode::NOT_FOUND, "EntryNotFound".into())
        );
        assert!(stored_blobs(&app) <= blobs + 1);

        // Another organisation may neither see nor change it.
        let a = send(
            &app,
            Method::POST,
            &commit,
            Some("sme"),
            &[],
            ndjson(&[header(), inline("x.txt", b"x")]),
        )
        .await;
        assert_eq!(
            (a.status, a.header("x-error-code")),
            (StatusCode::NOT_FOUND, "RepoNotFound".into()),
            "{backend}"
        );
        let a = send(
            &app,
            Method::GET,
            &format!("/{repo}/resolve/main/.gitattributes"),
            None,
            &[],
            Body::empty(),
        )
        .await;
        assert_eq!(a.header("x-error-code"), "RepoNotFound");

        // LFS: an upload URL per object; a content that is not what was announced (digest,
        // size, cut short) is refused and not kept.
        let content = b"0123456789 weights".to_vec();
        let oid = hex(&sha2::Sha256::digest(&content));
        let batch = |size: usize| {
            json!({"operation": "upload", "transfers": ["basic"], "hash_algo": "sha256",
                   "objects": [{"oid": oid, "size": size}]})
            .to_string()
        };
        let upload_url = |a: &Answer| -> String {
            let href = a.json()["objects"][0]["actions"]["upload"]["href"]
                .as_str()
                .unwrap()
                .to_string();
            href.strip_prefix("http://hub.test").unwrap().to_string()
        };
        let lfs = format!("/{repo}.git/info/lfs/objects/batch");
        let a = send(
            &app,
            Method::POST,
            &lfs,
            Some("startup"),
            &[],
            Body::from(batch(content.len())),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
        let url = upload_url(&a);
        let before = stored_blobs(&app);
        for (what, body) in [
            ("other bytes", b"0123456789 WEIGHTS".to_vec()),
            ("too few bytes", content[..10].to_vec()),
            ("too many bytes", [content.clone(), b"!".to_vec()].concat()),
        ] {
            let a = send(&app, Method::PUT, &url, None, &[], Body::from(body)).await;
            assert_eq!(a.status, StatusCode::BAD_REQUEST, "{backend}, {what}");
            assert_eq!(stored_blobs(&app), before, "{backend}, {what}: nothing kept");
        }
        // A client that hangs up mid-upload.
        let broken = futures_util::stream::iter(vec![
            Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"0123")),
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "gone")),
        ]);
        let a = send(&app, Method::PUT, &url, None, &[], Body::from_stream(broken)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{backend}: a cut-off upload");
        assert_eq!(stored_blobs(&app), before);
        let verify = format!("/{repo}.git/info/lfs/objects/verify");
        let a = send(
            &app,
            Method::POST,
            &verify,
            Some("startup"),
            &[],
            Body::from(json!({"oid": oid, "size": content.len()}).to_string()),
        )
        .await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "not uploaded yet");
        // The right bytes: stored, verified, committed, downloaded with ranges.
        let a = send(&app, Method::PUT, &url, None, &[], Body::from(content.clone())).await;
        assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
        let a = send(
            &app,
            Method::POST,
            &verify,
            Some("startup"),
            &[],
            Body::from(json!({"oid": oid, "size": content.len()}).to_string()),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
        let a = send(
            &app,
            Method::POST,
            &lfs,
            Some("startup"),
            &[],
            Body::from(batch(content.len())),
        )
        .await;
        assert!(
            a.json()["objects"][0]["actions"].is_null(),
            "stored already: nothing to send"
        );
        let lfs_line = json!({"key": "lfsFile", "value": {"path": "weights.bin", "algo": "sha256", "oid": oid, "size": content.len()}});
        let a = send(
            &app,
            Method::POST,
            &commit,
            Some("startup"),
            &[],
            ndjson(&[header(), lfs_line]),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
        let sha = a.json()["commitOid"].as_str().unwrap().to_string();
        assert_eq!(head_of(&app, repo).await, sha);
        let file = format!("/{repo}/resolve/main/weights.bin");
        let a = send(&app, Method::HEAD, &file, Some("startup"), &[], Body::empty()).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.header("x-repo-commit"), sha);
        assert_eq!(a.header("x-linked-etag"), format!("\"{oid}\""));
        assert_eq!(a.header("x-linked-size"), content.len().to_string());
        let a = send(
            &app,
            Method::GET,
            &file,
            Some("startup"),
            &[("range", "bytes=2-5")],
            Body::empty(),
        )
        .await;
        assert_eq!(a.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(a.body, b"2345");
        assert_eq!(a.header("content-range"), format!("bytes 2-5/{}", content.len()));
        let a = send(
            &app,
            Method::GET,
            &file,
            Some("startup"),
            &[("range", "bytes=10-")],
            Body::empty(),
        )
        .await;
        assert_eq!(a.body, &content[10..]);
        let a = send(
            &app,
            Method::GET,
            &file,
            Some("startup"),
            &[("range", "bytes=99-")],
            Body::empty(),
        )
        .await;
        assert_eq!(a.status, StatusCode::RANGE_NOT_SATISFIABLE);
        // The old commit still has its old content.
        let a = send(
            &app,
            Method::GET,
            &format!("/{repo}/resolve/{first}/weights.bin"),
            Some("startup"),
            &[],
            Body::empty(),
        )
        .await;
        assert_eq!(a.header("x-error-code"), "EntryNotFound");
        assert_eq!(a.header("x-repo-commit"), first);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn catalogue_metadata_is_checked_owned_and_listed_by_access() {
    for backend in backends() {
        let app = app_in(fresh_dir(backend).await).await;
        // The demo's entries: the non-public one is listed for nobody.
        let (s, v) = app.call(Method::GET, "/api/v1/catalogue", None, None).await;
        assert_eq!(s, StatusCode::OK);
        let ids: Vec<&str> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["repo_id"].as_str().unwrap())
            .collect();
        assert!(ids.contains(&"universita-di-bologna/italian-court-rulings"), "{ids:?}");
        assert!(!ids.iter().any(|i| i.contains("furnace")), "{backend}: {ids:?}");
        let (s, _) = app
            .call(
                Method::GET,
                "/api/v1/catalogue/dataset/acciaierie-unite/furnace-telemetry",
                None,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let entry = "/api/v1/catalogue/model/nebula-robotics/arm-policy-tiny";
        let good = json!({"titles": {"en": "Arm policy", "it": "Politica del braccio"}, "themes": ["TECH"],
                          "licence": "apache-2.0", "spatial": ["ITA"], "temporal_start": "2025-01-01",
                          "contact_email": "ml@nebula.example", "keywords": ["robotics"]});
        // Field by field refusals.
        for (field, bad) in [
            ("themes", json!({"themes": ["ROBOTS"]})),
            ("licence", json!({"licence": "wtfpl"})),
            ("spatial", json!({"spatial": ["IT"]})),
            ("titles", json!({"titles": {"english": "x"}})),
            ("temporal_end", json!({"temporal_end": "soon"})),
        ] {
            let (s, v) = app.call(Method::PUT, entry, Some("startup"), Some(bad)).await;
            assert_eq!(
                (s, v["field"].as_str()),
                (StatusCode::BAD_REQUEST, Some(field)),
                "{backend}: {v}"
            );
        }
        // Only the owner's members describe it.
        let (s, _) = app.call(Method::PUT, entry, Some("sme"), Some(good.clone())).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = app.call(Method::PUT, entry, None, Some(good.clone())).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, v) = app.call(Method::PUT, entry, Some("startup"), Some(good.clone())).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (_, v) = app.call(Method::GET, entry, None, None).await;
        assert_eq!(v["metadata"]["titles"]["it"], "Politica del braccio");
        assert_eq!(v["publisher"], "Nebula Robotics");
        // Search: the new words are found at once, facets narrow and are counted.
        let (s, v) = app
            .call(Method::GET, "/api/v1/catalogue?q=politica%20bracc", None, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["total"], 1, "{backend}: {v}");
        assert_eq!(v["items"][0]["repo_id"], "nebula-robotics/arm-policy-tiny");
        assert_eq!(v["items"][0]["formats"], json!(["bin", "json"]));
        let (_, v) = app.call(Method::GET, "/api/v1/catalogue", None, None).await;
        assert_eq!(v["total"], 3, "{v}");
        assert_eq!(v["facets"]["kind"], json!({"dataset": 2, "model": 1}));
        assert_eq!(v["facets"]["access_rights"], json!({"public": 2, "restricted": 1}));
        let (_, v) = app
            .call(
                Method::GET,
                "/api/v1/catalogue?theme=JUST,ENER&kind=dataset",
                None,
                None,
            )
            .await;
        let ids: Vec<&str> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["repo_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            ["universita-di-bologna/italian-court-rulings"],
            "the non-public ENER entry is not listed"
        );
        let (_, v) = app
            .call(Method::GET, "/api/v1/catalogue?format=csv&org_type=sme", None, None)
            .await;
        assert_eq!(
            v["items"][0]["repo_id"], "baltic-vision-oy/steel-surface-defects",
            "{v}"
        );
        let (_, page) = app.call(Method::GET, "/api/v1/catalogue?limit=2", None, None).await;
        assert_eq!(page["items"].as_array().unwrap().len(), 2);
        let next = page["next_cursor"].as_str().unwrap().to_string();
        let (_, rest) = app
            .call(
                Method::GET,
                &format!("/api/v1/catalogue?limit=2&cursor={next}"),
                None,
                None,
            )
            .await;
        assert_eq!(rest["items"].as_array().unwrap().len(), 1);
        assert!(rest["next_cursor"].is_null());
        for (query, field) in [("limit=0", "limit"), ("cursor=x", "cursor")] {
            let (s, v) = app
                .call(Method::GET, &format!("/api/v1/catalogue?{query}"), None, None)
                .await;
            assert_eq!((s, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)));
        }
        let a = send(&app, Method::GET, "/api/v1/catalogue/dcat", None, &[], Body::empty()).await;
        let turtle = String::from_utf8(a.body).unwrap();
        assert!(turtle.contains("\"Politica del braccio\"@it"), "{turtle}");
        assert!(turtle.contains("<mailto:ml@nebula.example>"));
        let a = send(
            &app,
            Method::GET,
            "/api/v1/catalogue/dcat?format=jsonld",
            None,
            &[],
            Body::empty(),
        )
        .await;
        let graph: Value = serde_json::from_slice(&a.body).unwrap();
        assert!(
            graph
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["@type"][0] == "http://www.w3.org/ns/dcat#Catalog")
        );
        let a = send(
            &app,
            Method::GET,
            "/api/v1/catalogue/dcat?format=rdfxml",
            None,
            &[],
            Body::empty(),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn restricted_entries_are_read_through_time_boxed_grants_and_everything_is_audited() {
    for backend in backends() {
        let app = app_in(fresh_dir(backend).await).await;
        let entry = "/api/v1/catalogue/dataset/universita-di-bologna/italian-court-rulings";
        let file = "/datasets/universita-di-bologna/italian-court-rulings/resolve/main/rulings.jsonl";
        let download = |who: &'static str| {
            let app = &app;
            async move { send(app, Method::GET, file, Some(who), &[], Body::empty()).await }
        };
        assert_eq!(download("sme").await.header("x-error-code"), "GatedRepo");
        // The default policy: the owner decides.
        let (s, r) = app
            .post(
                &format!("{entry}/access-requests"),
                "sme",
                json!({"purpose": "research", "days": 30}),
            )
            .await;
        assert_eq!(
            (s, r["state"].as_str()),
            (StatusCode::CREATED, Some("pending")),
            "{backend}: {r}"
        );
        assert!(
            r["rules"].as_array().unwrap().iter().all(|rule| rule["passed"] == true),
            "{r}"
        );
        let id = r["id"].as_str().unwrap().to_string();
        assert_eq!(
            download("sme").await.status,
            StatusCode::FORBIDDEN,
            "not before the decision"
        );
        // Who sees the requests: the owner all, the requester theirs, others none of theirs.
        let (_, mine) = app.get(&format!("{entry}/access-requests"), "sme").await;
        assert_eq!(mine["items"].as_array().unwrap().len(), 1);
        let (_, theirs) = app.get(&format!("{entry}/access-requests"), "startup").await;
        assert_eq!(theirs["items"].as_array().unwrap().len(), 0);
        let (_, all) = app.get(&format!("{entry}/access-requests"), "research").await;
        assert_eq!(all["items"][0]["id"], json!(id));
        // Only the owner decides; the requester is told so, others learn nothing.
        let decision = |grant: bool| json!({"grant": grant, "reason": "for the legal NLP project", "days": 20});
        let (s, _) = app
            .post(&format!("/api/v1/access-requests/{id}/decision"), "sme", decision(true))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = app
            .post(
                &format!("/api/v1/access-requests/{id}/decision"),
                "startup",
                decision(true),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, too_long) = app
            .post(
                &format!("/api/v1/access-requests/{id}/decision"),
                "research",
                json!({"grant": true, "reason": "x", "days": 400}),
            )
            .await;
        assert_eq!((s, too_long["field"].as_str()), (StatusCode::BAD_REQUEST, Some("days")));
        let (s, granted) = app
            .post(
                &format!("/api/v1/access-requests/{id}/decision"),
                "research",
                decision(true),
            )
            .await;
        assert_eq!(
            (s, granted["state"].as_str()),
            (StatusCode::OK, Some("granted")),
            "{granted}"
        );
        assert!(granted["valid_until"].is_string());
        let (s, _) = app
            .post(
                &format!("/api/v1/access-requests/{id}/decision"),
                "research",
                decision(false),
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "decided once");
        // Granted: the SME's members read the files; another organisation still may not.
        let a = download("sme").await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(String::from_utf8_lossy(&a.body).contains("Tribunale di Bologna"));
        assert_eq!(download("startup").await.header("x-error-code"), "GatedRepo");
        // A policy without the owner's decision: met rules grant at once, a failed one refuses.
        let (s, _) = app
            .call(Method::PUT, &format!("{entry}/policy"), Some("research"),
                  Some(json!({"org_types": ["startup"], "purposes": ["research"], "max_days": 90, "owner_approves": false})))
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = app
            .call(
                Method::PUT,
                &format!("{entry}/policy"),
                Some("startup"),
                Some(json!({})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "only the owner sets the policy");
        let (_, refused) = app
            .post(
                &format!("{entry}/access-requests"),
                "startup",
                json!({"purpose": "commercial", "days": 30}),
            )
            .await;
        assert_eq!(refused["state"], "refused");
        let failed: Vec<&str> = refused["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["passed"] == false)
            .map(|r| r["rule"].as_str().unwrap())
            .collect();
        assert_eq!(failed, ["purpose"]);
        let (_, auto) = app
            .post(
                &format!("{entry}/access-requests"),
                "startup",
                json!({"purpose": "research", "days": 30}),
            )
            .await;
        assert_eq!(auto["state"], "granted", "{auto}");
        assert_eq!(download("startup").await.status, StatusCode::OK, "at once");
        // Public entries are open: nothing to ask.
        let (s, _) = app
            .post(
                "/api/v1/catalogue/model/nebula-robotics/arm-policy-tiny/access-requests",
                "sme",
                json!({"purpose": "research", "days": 1}),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        // The audit log: the owner and staff read every decision and download.
        let (s, _) = app.get(&format!("{entry}/audit"), "sme").await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, log) = app.get(&format!("{entry}/audit"), "research").await;
        assert_eq!(s, StatusCode::OK);
        let actions: Vec<&str> = log["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["action"].as_str().unwrap())
            .collect();
        for action in ["request", "grant", "download", "policy"] {
            assert!(actions.contains(&action), "{backend}: {action} in {actions:?}");
        }
        assert_eq!(actions.iter().filter(|a| **a == "download").count(), 2, "{actions:?}");
        let (s, _) = app.get(&format!("{entry}/audit"), "operator").await;
        assert_eq!(s, StatusCode::OK);
    }
}

fn example(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/dcat-ap/examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn harvest(app: &TestApp, who: &str, source: &str, doc: &str) -> (StatusCode, Value) {
    let a = send(
        app,
        Method::POST,
        &format!("/api/v1/catalogue/harvest?source={source}"),
        Some(who),
        &[("content-type", "text/turtle")],
        Body::from(doc.to_string()),
    )
    .await;
    (a.status, a.json())
}

#[tokio::test]
async fn the_shared_dcat_ap_examples_harvest_whole_and_reharvests_tell_what_changed() {
    for backend in backends() {
        let app = app_in(fresh_dir(backend).await).await;
        let (s, r) = harvest(&app, "operator", "gr", &example("example-bee-population-2022-2023.ttl")).await;
        assert_eq!(s, StatusCode::OK, "{backend}: {r}");
        assert_eq!(r["new"].as_array().unwrap().len(), 2, "{r}");
        let (s, r) = harvest(
            &app,
            "operator",
            "gr-series",
            &example("example-bee-population-dataset-series-combined.ttl"),
        )
        .await;
        assert_eq!(
            (s, r["new"].as_array().unwrap().len()),
            (StatusCode::OK, 6),
            "4 datasets, a series, a service: {r}"
        );
        let (_, list) = app.call(Method::GET, "/api/v1/catalogue/external", None, None).await;
        let entries = list["items"].as_array().unwrap();
        let find = |source: &str, id: &str| {
            entries
                .iter()
                .find(|e| e["source"] == source && e["identifier"] == id)
                .unwrap_or_else(|| panic!("{id} of {source} in {list}"))
                .clone()
        };
        let dct = |p: &str| format!("http://purl.org/dc/terms/{p}");
        let dcat = |p: &str| format!("http://www.w3.org/ns/dcat#{p}");
        // The mandatory (title, description) and recommended (publisher...) fields, whole.
        let e = find("gr", "https://data.gov.gr/id/dataset/BeePopulation2022");
        assert_eq!(e["titles"]["en"], "Bee population 2022");
        assert_eq!(
            e["descriptions"]["en"],
            "A dataset about bee population in Greece in 2022"
        );
        assert_eq!(
            e["properties"][dct("publisher")],
            json!(["<https://agencies.gov.gr/id/GreekEnvironmentAgency>"])
        );
        let e = find("gr-series", "https://data.gov.gr/id/dataset/BeePopulation2023");
        assert_eq!(e["properties"][dct("spatial")].as_array().unwrap().len(), 2);
        assert_eq!(
            e["properties"][dct("issued")],
            json!(["\"2023-03-21\"^^<http://www.w3.org/2001/XMLSchema#date>"])
        );
        assert_eq!(e["properties"][dct("modified")].as_array().unwrap().len(), 1);
        assert_eq!(
            e["properties"][dcat("inSeries")],
            json!(["<https://data.gov.gr/id/datasetseries/BeePopulation>"])
        );
        assert_eq!(
            e["properties"][dcat("prev")],
            json!(["<https://data.gov.gr/id/dataset/BeePopulation2022>"])
        );
        assert_eq!(e["distributions"].as_array().unwrap().len(), 2);
        let series = find("gr-series", "https://data.gov.gr/id/datasetseries/BeePopulation");
        assert_eq!(series["kind"], "dataset-series");
        assert_eq!(
            series["properties"][dcat("last")],
            json!(["<https://data.gov.gr/id/dataset/BeePopulation2023>"])
        );
        let service = entries
            .iter()
            .find(|e| e["kind"] == "data-service")
            .expect("the data service");
        assert_eq!(
            service["properties"][dcat("endpointURL")],
            json!(["<https://ea.gov.gr/api/v2/biodiversity>"])
        );
        // Harvested entries are found by the catalogue's search, with their source.
        let search = |q: &str| {
            let app = &app;
            let q = q.to_string();
            async move {
                app.call(Method::GET, &format!("/api/v1/catalogue?{q}"), None, None)
                    .await
                    .1
            }
        };
        let found = search("q=bee+population&kind=dataset").await;
        let ids: Vec<&str> = found["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["repo_id"].as_str().unwrap())
            .collect();
        assert!(
            ids.contains(&"https://data.gov.gr/id/dataset/BeePopulation2022"),
            "{found}"
        );
        assert!(
            found["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["harvested_from"].is_string()),
            "{found}"
        );
        assert!(search("kind=data-service").await["total"].as_u64().unwrap() >= 1);
        let before = search("q=bee").await["total"].as_u64().unwrap();
        // The source now publishes one dataset, unchanged: the rest is withdrawn, and comes
        // back when published again.
        let (_, r) = harvest(
            &app,
            "operator",
            "gr-series",
            &example("example-bee-population-dataset-series-api.ttl"),
        )
        .await;
        assert_eq!(
            (r["unchanged"].as_u64(), r["withdrawn"].as_array().unwrap().len()),
            (Some(1), 5),
            "{r}"
        );
        let (_, list) = app.call(Method::GET, "/api/v1/catalogue/external", None, None).await;
        let withdrawn = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| !e["withdrawn_at"].is_null())
            .count();
        assert_eq!(withdrawn, 5);
        let after = search("q=bee&limit=100").await;
        assert!(after["total"].as_u64().unwrap() < before, "{after}");
        for gone in r["withdrawn"].as_array().unwrap() {
            assert!(
                after["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|e| &e["repo_id"] != gone || e["harvested_from"] != "gr-series"),
                "withdrawn {gone} left the search: {after}"
            );
        }
        let (_, r) = harvest(
            &app,
            "operator",
            "gr-series",
            &example("example-bee-population-dataset-series-combined.ttl"),
        )
        .await;
        assert_eq!(
            (r["changed"].as_array().unwrap().len(), r["unchanged"].as_u64()),
            (5, Some(1)),
            "{r}"
        );
        let edited =
            example("example-bee-population-2022-2023.ttl").replace("Bee population 2022\"", "Bee population, 2022\"");
        let (_, r) = harvest(&app, "operator", "gr", &edited).await;
        assert_eq!(
            r["changed"],
            json!(["https://data.gov.gr/id/dataset/BeePopulation2022"]),
            "{r}"
        );
        // Bad documents change nothing and say why; only staff harvest.
        for (doc, media, status) in [
            ("<a> <b> .", "text/turtle", StatusCode::BAD_REQUEST),
            ("<rdf:RDF xmlns:rdf=", "application/rdf+xml", StatusCode::BAD_REQUEST),
            ("{\"@id\": ", "application/ld+json", StatusCode::BAD_REQUEST),
            ("a,b", "text/csv", StatusCode::UNSUPPORTED_MEDIA_TYPE),
            (
                "<urn:a> <urn:b> <urn:c> .",
                "text/turtle",
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
        ] {
            let a = send(
                &app,
                Method::POST,
                "/api/v1/catalogue/harvest?source=gr",
                Some("operator"),
                &[("content-type", media)],
                Body::from(doc),
            )
            .await;
            assert_eq!(a.status, status, "{doc}: {}", String::from_utf8_lossy(&a.body));
        }
        let (_, after) = app.call(Method::GET, "/api/v1/catalogue/external", None, None).await;
        assert_eq!(after["items"].as_array().unwrap().len(), 8, "nothing changed");
        let (s, _) = harvest(&app, "startup", "gr", &edited).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
}

/// The upload action the LFS batch endpoint gives for one object.
async fn ask_upload(app: &TestApp, lfs: &str, batch: &str) -> Value {
    let a = send(
        app,
        Method::POST,
        lfs,
        Some("startup"),
        &[],
        Body::from(batch.to_string()),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
    a.json()["objects"][0]["actions"]["upload"].clone()
}

/// A large object goes in parts (the Hub's multipart LFS transfer) and resumes: the batch
/// endpoint gives the same session again for the same object, also after a restart, and
/// says which parts are in; a part of the wrong length, a wrong ETag or parts that do not
/// make the announced content are refused, and nothing is visible before the completion.
#[tokio::test]
async fn a_large_upload_goes_in_parts_resumes_after_a_restart_and_is_checked_whole() {
    for backend in backends() {
        let dir = fresh_dir(backend).await;
        let app = app_in(dir.clone()).await;
        let repo = "nebula-robotics/arm-policy-tiny";
        let lfs = format!("/{repo}.git/info/lfs/objects/batch");
        let part = 8 * 1024 * 1024usize;
        let content: Vec<u8> = (0..2 * part + 1000).map(|i| (i * 7 % 251) as u8).collect();
        let oid = hex(&sha2::Sha256::digest(&content));
        let batch = json!({"operation": "upload", "transfers": ["basic", "multipart"], "hash_algo": "sha256",
                           "objects": [{"oid": oid, "size": content.len()}]})
        .to_string();
        let path = |url: &Value| {
            url.as_str()
                .unwrap()
                .strip_prefix("http://hub.test")
                .unwrap()
                .to_string()
        };
        let upload = ask_upload(&app, &lfs, &batch).await;
        assert_eq!(upload["header"]["chunk_size"], part.to_string(), "{upload}");
        let urls: Vec<String> = (1..=3).map(|n| path(&upload["header"][format!("{n:05}")])).collect();
        assert!(upload["header"]["00004"].is_null(), "three parts: {upload}");
        let a = send(
            &app,
            Method::PUT,
            &urls[0],
            None,
            &[],
            Body::from(content[..part].to_vec()),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
        let first_etag = a.header("etag");
        // A part that is not a number: a problem document, like every refusal.
        let not_a_part = format!("{}/first", path(&upload["href"]));
        let a = send(&app, Method::PUT, &not_a_part, None, &[], Body::from(b"x".to_vec())).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert!(!first_etag.is_empty());
        // A part of the wrong length, a cut-off part: refused, not kept.
        let a = send(
            &app,
            Method::PUT,
            &urls[1],
            None,
            &[],
            Body::from(content[..10].to_vec()),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{backend}");
        let broken = futures_util::stream::iter(vec![
            Ok::<_, std::io::Error>(axum::body::Bytes::from(content[part..part + 100].to_vec())),
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "gone")),
        ]);
        let a = send(&app, Method::PUT, &urls[1], None, &[], Body::from_stream(broken)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{backend}: a cut-off part");
        let blobs_before = stored_blobs(&app);
        drop(app);

        // The factory restarts; the client asks again and is given the same session,
        // which holds part 1 only.
        let app = app_in(dir.clone()).await;
        let again = ask_upload(&app, &lfs, &batch).await;
        assert_eq!(again["href"], upload["href"], "the same session");
        let status = send(&app, Method::GET, &path(&upload["href"]), None, &[], Body::empty()).await;
        let parts = status.json()["parts"].clone();
        assert_eq!(parts.as_array().unwrap().len(), 1, "{parts}");
        assert_eq!(parts[0]["partNumber"], 1);
        assert_eq!(parts[0]["etag"], first_etag.as_str());
        let mut etags = vec![first_etag];
        for (n, url) in urls.iter().enumerate().skip(1) {
            let end = ((n + 1) * part).min(content.len());
            let a = send(
                &app,
                Method::PUT,
                url,
                None,
                &[],
                Body::from(content[n * part..end].to_vec()),
            )
            .await;
            assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
            etags.push(a.header("etag"));
        }
        assert_eq!(
            stored_blobs(&app),
            blobs_before,
            "nothing visible before the completion"
        );
        let completion = |etags: &[String]| {
            Body::from(
                json!({"oid": oid, "parts": etags.iter().enumerate()
                    .map(|(i, e)| json!({"partNumber": i + 1, "etag": e})).collect::<Vec<_>>()})
                .to_string(),
            )
        };
        let wrong = vec![etags[0].clone(), etags[0].clone(), etags[2].clone()];
        let a = send(
            &app,
            Method::POST,
            &path(&upload["href"]),
            None,
            &[],
            completion(&wrong),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "a wrong ETag");
        let a = send(
            &app,
            Method::POST,
            &path(&upload["href"]),
            None,
            &[],
            completion(&etags),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(stored_blobs(&app), blobs_before + 1);
        let a = send(&app, Method::GET, &path(&upload["href"]), None, &[], Body::empty()).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "the session is gone once complete");
        let lfs_line = json!({"key": "lfsFile", "value": {"path": "big.bin", "algo": "sha256", "oid": oid, "size": content.len()}});
        let a = send(
            &app,
            Method::POST,
            &format!("/api/models/{repo}/commit/main"),
            Some("startup"),
            &[],
            ndjson(&[header(), lfs_line]),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
        let a = send(
            &app,
            Method::GET,
            &format!("/{repo}/resolve/main/big.bin"),
            None,
            &[],
            Body::empty(),
        )
        .await;
        assert_eq!(a.body.len(), content.len());
        assert!(a.body == content, "{backend}: the whole object, in order");
    }
}

/// An organisation's hub content is limited (each content counted once): a commit or an
/// upload that would pass the quota is refused, and the branch stays where it was.
#[tokio::test]
async fn an_organisation_cannot_store_past_its_quota() {
    for backend in backends() {
        let quota = 40_000u64;
        let app = app_with(fresh_dir(backend).await, |c| c.hub_quota_bytes = Some(quota)).await;
        let repo = "nebula-robotics/arm-policy-tiny";
        let commit = format!("/api/models/{repo}/commit/main");
        let before = head_of(&app, repo).await;
        let used = app
            .state
            .store
            .org_hub_bytes(&app.org_of("startup").await)
            .await
            .unwrap();
        assert!(used > 0 && used < quota, "{used}");
        let too_much = vec![7u8; (quota - used) as usize + 1];
        let a = send(
            &app,
            Method::POST,
            &commit,
            Some("startup"),
            &[],
            ndjson(&[header(), inline("big.bin", &too_much)]),
        )
        .await;
        assert_eq!(
            a.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{backend}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert_eq!(a.json()["code"], "quota-exceeded");
        assert_eq!(head_of(&app, repo).await, before, "the branch did not move");
        // Just under: taken.
        let fits = vec![7u8; (quota - used) as usize];
        let a = send(
            &app,
            Method::POST,
            &commit,
            Some("startup"),
            &[],
            ndjson(&[header(), inline("fits.bin", &fits)]),
        )
        .await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "{backend}: {}",
            String::from_utf8_lossy(&a.body)
        );
        // Full now: the LFS batch refuses an upload object by object.
        let lfs = format!("/{repo}.git/info/lfs/objects/batch");
        let batch = json!({"operation": "upload", "hash_algo": "sha256",
                           "objects": [{"oid": "a".repeat(64), "size": 20_000_000}]});
        let a = send(
            &app,
            Method::POST,
            &lfs,
            Some("startup"),
            &[],
            Body::from(batch.to_string()),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(
            a.json()["objects"][0]["error"]["code"],
            413,
            "{}",
            String::from_utf8_lossy(&a.body)
        );
        // Other organisations have their own quota.
        let a = send(
            &app,
            Method::POST,
            "/api/repos/create",
            Some("sme"),
            &[("content-type", "application/json")],
            Body::from(json!({"name": "baltic-vision-oy/small", "type": "dataset"}).to_string()),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
    }
}
