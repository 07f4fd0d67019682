//! `aifactory review`: the reviewer's inbox, scores and conflicts; assignment and
//! ranking (programme managers).

use super::*;

#[derive(Debug, Subcommand)]
pub enum ReviewCmd {
    /// Your review inbox (programme managers: every review).
    List,
    /// A review with the application it is about.
    Show { id: String },
    /// Submit your scores, `criterion=score` for each of the call's criteria.
    Submit {
        id: String,
        #[arg(long = "score", value_name = "CRITERION=SCORE")]
        scores: Vec<String>,
        #[arg(long)]
        comments: String,
    },
    /// Declare a conflict of interest with an application you were asked to review.
    Conflict {
        application: String,
        #[arg(long)]
        reason: String,
    },
    /// Assign a reviewer to an application in peer review (programme managers).
    Assign {
        application: String,
        #[arg(long)]
        reviewer: String,
    },
    /// An application's reviews (the applicant sees them, without authors, once all are in).
    Of { application: String },
    /// A cut-off's applications ranked by score (programme managers).
    Ranking {
        call: String,
        #[arg(long)]
        cutoff: Option<i64>,
    },
}

pub fn review(conn: &Conn, cmd: ReviewCmd) -> Result<()> {
    let c = Client::new(conn);
    let cols = ["id", "application", "state", "score_milli", "due_at"];
    match cmd {
        ReviewCmd::List => {
            let v = c.call("GET", "/api/v1/reviews", None)?;
            let rows: Vec<Value> = v["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|i| {
                    let mut r = i["review"].clone();
                    r["title"] = i["application"]["title"].clone();
                    r
                })
                .collect();
            c.print(
                &json!({ "items": rows }),
                &["id", "application", "title", "state", "due_at"],
            );
        }
        ReviewCmd::Show { id } => {
            let v = c.call("GET", &format!("/api/v1/reviews/{id}"), None)?;
            if c.output == Output::Json {
                println!("{v}");
            } else {
                c.print(&v["review"], &cols);
                println!();
                c.print(&v["application"], &["id", "title", "org", "gpu_hours", "state"]);
                if let Some(answers) = v["application"]["answers"].as_object() {
                    for (k, a) in answers {
                        println!("\n{k}:\n  {}", a.as_str().map_or_else(|| a.to_string(), str::to_string));
                    }
                }
            }
        }
        ReviewCmd::Submit { id, scores, comments } => {
            let mut map = serde_json::Map::new();
            for s in &scores {
                let (k, v) = s
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--score takes criterion=score, got `{s}`"))?;
                let n: u32 = v.parse().map_err(|_| anyhow!("`{v}` is not a whole score"))?;
                map.insert(k.to_string(), json!(n));
            }
            let v = c.call(
                "POST",
                &format!("/api/v1/reviews/{id}/submit"),
                Some(&json!({"scores": map, "comments": comments})),
            )?;
            c.print(&v, &cols);
        }
        ReviewCmd::Conflict { application, reason } => {
            c.call(
                "POST",
                &format!("/api/v1/applications/{application}/conflict"),
                Some(&json!({ "reason": reason })),
            )?;
            println!("conflict declared: {application} is no longer shown to you");
        }
        ReviewCmd::Assign { application, reviewer } => {
            let v = c.call(
                "POST",
                &format!("/api/v1/applications/{application}/reviewers"),
                Some(&json!({ "reviewer": reviewer })),
            )?;
            c.print(&v, &["id", "application", "reviewer", "due_at"]);
        }
        ReviewCmd::Of { application } => c.print(
            &c.call("GET", &format!("/api/v1/applications/{application}/reviews"), None)?,
            &["id", "state", "score_milli", "comments"],
        ),
        ReviewCmd::Ranking { call, cutoff } => {
            let q = cutoff.map(|c| format!("?cutoff={c}")).unwrap_or_default();
            c.print(
                &c.call("GET", &format!("/api/v1/calls/{call}/ranking{q}"), None)?,
                &["rank", "application", "title", "mean_score_milli", "reviews", "state"],
            );
        }
    }
    Ok(())
}
