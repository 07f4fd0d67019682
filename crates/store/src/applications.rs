//! Applications: their history, evidence documents and final reports. Which transitions
//! are allowed is decided by `access::workflow` and the server's `programme` module; this
//! module saves them, atomically, with what they cause (the call's budget, provisioning,
//! notifications).

use super::*;
use crate::slurm_accounts::request_slurm_account;
use access::eligibility::{Decision, Declaration};
use access::workflow::{Kind, State};
use allocations::insert_allocation;
use outbox::enqueue;
use projects::{insert_project, insert_project_member};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The panel's (or the programme manager's) decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PanelDecision {
    pub award: bool,
    pub gpu_hours: i64,
    pub reasons: String,
    /// `None` for an automatic award.
    pub decided_by: Option<String>,
    /// Place in its cut-off's ranking, when ranked.
    pub rank: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    pub id: String,
    pub kind: Kind,
    /// The allocation an extension, supplement or renewal is for.
    pub for_allocation: Option<String>,
    pub call_id: String,
    pub org_id: String,
    pub applicant_user_id: String,
    pub title: String,
    pub state: State,
    pub site: String,
    pub gpu_hours: i64,
    pub duration_days: i64,
    pub answers: BTreeMap<String, serde_json::Value>,
    pub declaration: Option<Declaration>,
    pub eligibility: Option<Decision>,
    /// E-mail addresses of the people who will work in the project.
    pub team: Vec<String>,
    pub round_cutoff: Option<i64>,
    pub reply: Option<String>,
    pub decision: Option<PanelDecision>,
    pub project_id: Option<String>,
    pub allocation_id: Option<String>,
    pub created_at: i64,
    pub submitted_at: Option<i64>,
    pub decided_at: Option<i64>,
    pub accepted_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub updated_at: i64,
}

impl Application {
    /// A new draft with nothing decided yet; the caller fills in what was asked.
    pub fn draft(kind: Kind, call_id: &str, org_id: &str, applicant_user_id: &str, now: i64) -> Application {
        Application {
            id: new_id("app"),
            kind,
            for_allocation: None,
            call_id: call_id.into(),
            org_id: org_id.into(),
            applicant_user_id: applicant_user_id.into(),
            title: String::new(),
            state: State::Draft,
            site: String::new(),
            gpu_hours: 0,
            duration_days: 0,
            answers: BTreeMap::new(),
            declaration: None,
            eligibility: None,
            team: vec![],
            round_cutoff: None,
            reply: None,
            decision: None,
            project_id: None,
            allocation_id: None,
            created_at: now,
            submitted_at: None,
            decided_at: None,
            accepted_at: None,
            closed_at: None,
            updated_at: now,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApplicationFilter {
    pub org_ids: Option<Vec<String>>,
    pub call_id: Option<String>,
    pub state: Option<State>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationEvent {
    pub at: i64,
    pub actor_user_id: Option<String>,
    pub from_state: Option<State>,
    pub to_state: State,
    pub note: String,
}

/// What saving an application also does, in the same transaction.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    pub actor_user_id: Option<String>,
    pub note: String,
    /// GPU-seconds taken from (positive) or given back to (negative) the call's budget at
    /// the application's site.
    pub budget_gpu_seconds: i64,
    pub messages: Vec<NewMessage>,
    pub provision: Option<Provision>,
    /// An accepted extension: the allocation's new end.
    pub extend: Option<(String, i64)>,
    /// An accepted supplement: GPU-seconds added to the allocation.
    pub top_up: Option<(String, i64)>,
}

/// What an allocation produced, sent when it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalReport {
    pub allocation_id: String,
    pub submitted_by: String,
    pub summary: String,
    pub outputs: serde_json::Value,
    pub submitted_at: i64,
}

/// The project and allocation an accepted award becomes.
#[derive(Debug, Clone)]
pub struct Provision {
    pub project: NewProject,
    /// A renewal's allocation goes to the project that exists already.
    pub existing_project: Option<String>,
    /// The Slurm account its jobs are charged to, `{project}` standing for the project's id
    /// (a site that keeps an account per project).
    pub slurm_account_template: Option<String>,
    /// Users added to the project besides its principal investigator.
    pub members: Vec<String>,
    pub allocation: NewAllocation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub id: String,
    pub application_id: String,
    pub name: String,
    pub content_type: String,
    pub sha256: String,
    pub size_bytes: i64,
    pub created_at: i64,
}

impl Store {
    pub async fn create_application(&self, app: &Application, actor: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO applications (id, call_id, org_id, applicant_user_id, title, state, site, gpu_hours, duration_days, \
             answers, declaration, team, created_at, updated_at, kind, for_allocation) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15)",
        )
        .bind(&app.id)
        .bind(&app.call_id)
        .bind(&app.org_id)
        .bind(&app.applicant_user_id)
        .bind(&app.title)
        .bind(app.state.as_str())
        .bind(&app.site)
        .bind(app.gpu_hours)
        .bind(app.duration_days)
        .bind(json(&app.answers))
        .bind(app.declaration.as_ref().map(json))
        .bind(json(&app.team))
        .bind(app.created_at)
        .bind(app.kind.as_str())
        .bind(app.for_allocation.as_deref())
        .execute(&mut *tx)
        .await?;
        insert_event(&mut tx, &app.id, Some(actor), None, app.state, "created").await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_application(&self, id: &str) -> Result<Application> {
        self.one(
            "SELECT * FROM applications WHERE id = $1",
            "application",
            id,
            application_from,
        )
        .await
    }

    pub async fn list_applications(&self, f: &ApplicationFilter) -> Result<Vec<Application>> {
        let mut sql = "SELECT * FROM applications WHERE 1 = 1".to_string();
        let mut binds: Vec<String> = Vec::new();
        if let Some(orgs) = &f.org_ids {
            if orgs.is_empty() {
                return Ok(vec![]);
            }
            sql += &format!(" AND org_id IN ({})", placeholders(binds.len() + 1, orgs.len()));
            binds.extend(orgs.iter().cloned());
        }
        if let Some(call) = &f.call_id {
            binds.push(call.clone());
            sql += &format!(" AND call_id = ${}", binds.len());
        }
        if let Some(state) = f.state {
            binds.push(state.as_str().into());
            sql += &format!(" AND state = ${}", binds.len());
        }
        sql += " ORDER BY id";
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(application_from).collect()
    }

    /// Saves a changed application if nobody changed it since it was read (its state and
    /// `updated_at` as `before` had them), with its effects, in one transaction: the budget
    /// taken or given back (never past the call's budget), the project and allocation of an
    /// accepted award, the history entry and the notifications.
    pub async fn save_application(
        &self,
        before: &Application,
        after: &Application,
        effects: Effects,
    ) -> Result<Application> {
        let mut tx = self.pool.begin().await?;
        let mut after = after.clone();
        after.updated_at = now().max(before.updated_at + 1);
        if effects.budget_gpu_seconds != 0 {
            let taken = sqlx::query(
                "UPDATE call_budgets SET awarded_gpu_seconds = awarded_gpu_seconds + $1 \
                 WHERE call_id = $2 AND site = $3 AND awarded_gpu_seconds + $1 <= budget_gpu_seconds AND awarded_gpu_seconds + $1 >= 0",
            )
            .bind(effects.budget_gpu_seconds)
            .bind(&after.call_id)
            .bind(&after.site)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if taken == 0 {
                return Err(StoreError::Rule {
                    code: "call-budget-exhausted",
                    message: format!(
                        "the call has fewer than {} GPU-hours left at {}",
                        effects.budget_gpu_seconds / 3600,
                        after.site
                    ),
                });
            }
        }
        if let Some(p) = &effects.provision {
            let project_id = match &p.existing_project {
                Some(existing) => existing.clone(),
                None => {
                    let project = insert_project(&mut tx, &p.project).await?;
                    for m in &p.members {
                        if Some(m) != p.project.pi_user_id.as_ref() {
                            insert_project_member(&mut tx, &project.id, m).await?;
                        }
                    }
                    project.id
                }
            };
            let mut alloc = p.allocation.clone();
            alloc.project_id = project_id.clone();
            // Slurm keeps account names in lower case.
            let account = p
                .slurm_account_template
                .as_ref()
                .map(|t| t.replace("{project}", &project_id).to_lowercase());
            alloc.slurm.account = account.clone();
            let alloc = insert_allocation(&mut tx, &alloc).await?;
            if let Some(account) = &account {
                request_slurm_account(&mut tx, account, &alloc.id, &project_id, after.updated_at).await?;
            }
            after.project_id = Some(project_id);
            after.allocation_id = Some(alloc.id);
        }
        if let Some((alloc, until)) = &effects.extend {
            sqlx::query("UPDATE allocations SET valid_until = $1 WHERE id = $2")
                .bind(until)
                .bind(alloc)
                .execute(&mut *tx)
                .await?;
            after.allocation_id = Some(alloc.clone());
        }
        if let Some((alloc, gpu_seconds)) = &effects.top_up {
            ledger::insert_ledger(&mut tx, alloc, None, LedgerKind::TopUp, *gpu_seconds, Usage::default()).await?;
            after.allocation_id = Some(alloc.clone());
        }
        let changed = sqlx::query(
            "UPDATE applications SET title = $1, state = $2, site = $3, gpu_hours = $4, duration_days = $5, answers = $6, \
             declaration = $7, eligibility = $8, team = $9, round_cutoff = $10, reply = $11, decision = $12, \
             awarded_gpu_hours = $13, project_id = $14, allocation_id = $15, submitted_at = $16, decided_at = $17, \
             accepted_at = $18, closed_at = $19, updated_at = $20 \
             WHERE id = $21 AND state = $22 AND updated_at = $23",
        )
        .bind(&after.title)
        .bind(after.state.as_str())
        .bind(&after.site)
        .bind(after.gpu_hours)
        .bind(after.duration_days)
        .bind(json(&after.answers))
        .bind(after.declaration.as_ref().map(json))
        .bind(after.eligibility.as_ref().map(json))
        .bind(json(&after.team))
        .bind(after.round_cutoff)
        .bind(after.reply.as_deref())
        .bind(after.decision.as_ref().map(json))
        .bind(after.decision.as_ref().filter(|d| d.award).map(|d| d.gpu_hours))
        .bind(after.project_id.as_deref())
        .bind(after.allocation_id.as_deref())
        .bind(after.submitted_at)
        .bind(after.decided_at)
        .bind(after.accepted_at)
        .bind(after.closed_at)
        .bind(after.updated_at)
        .bind(&after.id)
        .bind(before.state.as_str())
        .bind(before.updated_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::Conflict(
                "the application changed meanwhile: read it again and retry".into(),
            ));
        }
        if before.state != after.state || !effects.note.is_empty() {
            let note = if effects.note.is_empty() {
                "changed"
            } else {
                &effects.note
            };
            insert_event(
                &mut tx,
                &after.id,
                effects.actor_user_id.as_deref(),
                Some(before.state),
                after.state,
                note,
            )
            .await?;
        }
        enqueue(&mut tx, &effects.messages).await?;
        tx.commit().await?;
        Ok(after)
    }

    pub async fn application_events(&self, id: &str) -> Result<Vec<ApplicationEvent>> {
        let rows = sqlx::query("SELECT * FROM application_events WHERE application_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ApplicationEvent {
                    at: r.try_get("at")?,
                    actor_user_id: r.try_get("actor_user_id")?,
                    from_state: r
                        .try_get::<Option<String>, _>("from_state")?
                        .as_deref()
                        .map(parse)
                        .transpose()?,
                    to_state: parse(&r.try_get::<String, _>("to_state")?)?,
                    note: r.try_get("note")?,
                })
            })
            .collect()
    }

    // ----- documents -----

    pub async fn add_document(
        &self,
        application_id: &str,
        name: &str,
        content_type: &str,
        content: &[u8],
    ) -> Result<Document> {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(content);
        let doc = Document {
            id: new_id("doc"),
            application_id: application_id.into(),
            name: name.into(),
            content_type: content_type.into(),
            sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
            size_bytes: content.len() as i64,
            created_at: now(),
        };
        sqlx::query(
            "INSERT INTO application_documents (id, application_id, name, content_type, sha256, size_bytes, content, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&doc.id)
        .bind(&doc.application_id)
        .bind(&doc.name)
        .bind(&doc.content_type)
        .bind(&doc.sha256)
        .bind(doc.size_bytes)
        .bind(content.to_vec())
        .bind(doc.created_at)
        .execute(&self.pool)
        .await?;
        Ok(doc)
    }

    pub async fn documents(&self, application_id: &str) -> Result<Vec<Document>> {
        let rows = sqlx::query(
            "SELECT id, application_id, name, content_type, sha256, size_bytes, created_at FROM application_documents \
             WHERE application_id = $1 ORDER BY id",
        )
        .bind(application_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(document_from).collect()
    }

    pub async fn document_content(&self, application_id: &str, id: &str) -> Result<(Document, Vec<u8>)> {
        let row = sqlx::query("SELECT * FROM application_documents WHERE application_id = $1 AND id = $2")
            .bind(application_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found("document", id))?;
        Ok((document_from(&row)?, row.try_get("content")?))
    }
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    application_id: &str,
    actor: Option<&str>,
    from: Option<State>,
    to: State,
    note: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO application_events (id, application_id, at, actor_user_id, from_state, to_state, note) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id("evt"))
    .bind(application_id)
    .bind(now())
    .bind(actor)
    .bind(from.map(State::as_str))
    .bind(to.as_str())
    .bind(note)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn application_from(r: &AnyRow) -> Result<Application> {
    Ok(Application {
        id: r.try_get("id")?,
        kind: parse(&r.try_get::<String, _>("kind")?)?,
        for_allocation: r.try_get("for_allocation")?,
        call_id: r.try_get("call_id")?,
        org_id: r.try_get("org_id")?,
        applicant_user_id: r.try_get("applicant_user_id")?,
        title: r.try_get("title")?,
        state: parse(&r.try_get::<String, _>("state")?)?,
        site: r.try_get("site")?,
        gpu_hours: r.try_get("gpu_hours")?,
        duration_days: r.try_get("duration_days")?,
        answers: from_json(&r.try_get::<String, _>("answers")?)?,
        declaration: opt_json(r, "declaration")?,
        eligibility: opt_json(r, "eligibility")?,
        team: from_json(&r.try_get::<String, _>("team")?)?,
        round_cutoff: opt_i64(r, "round_cutoff")?,
        reply: r.try_get("reply")?,
        decision: opt_json(r, "decision")?,
        project_id: r.try_get("project_id")?,
        allocation_id: r.try_get("allocation_id")?,
        created_at: r.try_get("created_at")?,
        submitted_at: opt_i64(r, "submitted_at")?,
        decided_at: opt_i64(r, "decided_at")?,
        accepted_at: opt_i64(r, "accepted_at")?,
        closed_at: opt_i64(r, "closed_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn document_from(r: &AnyRow) -> Result<Document> {
    Ok(Document {
        id: r.try_get("id")?,
        application_id: r.try_get("application_id")?,
        name: r.try_get("name")?,
        content_type: r.try_get("content_type")?,
        sha256: r.try_get("sha256")?,
        size_bytes: r.try_get("size_bytes")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Final reports.
impl Store {
    pub async fn submit_final_report(&self, report: &FinalReport) -> Result<()> {
        sqlx::query(
            "INSERT INTO final_reports (allocation_id, submitted_by, summary, outputs, submitted_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&report.allocation_id)
        .bind(&report.submitted_by)
        .bind(&report.summary)
        .bind(report.outputs.to_string())
        .bind(report.submitted_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn final_report(&self, allocation_id: &str) -> Result<Option<FinalReport>> {
        let row = sqlx::query("SELECT * FROM final_reports WHERE allocation_id = $1")
            .bind(allocation_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(FinalReport {
                allocation_id: r.try_get("allocation_id")?,
                submitted_by: r.try_get("submitted_by")?,
                summary: r.try_get("summary")?,
                outputs: from_json(&r.try_get::<String, _>("outputs")?)?,
                submitted_at: r.try_get("submitted_at")?,
            })
        })
        .transpose()
    }

    /// Allocations an organisation was awarded through calls that have ended (or been
    /// renewed) without a final report.
    pub async fn unreported_allocations(&self, org_id: &str, now: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT a.id FROM applications ap JOIN allocations a ON a.id = ap.allocation_id \
             LEFT JOIN final_reports f ON f.allocation_id = a.id \
             WHERE ap.org_id = $1 AND ap.kind IN ('new', 'renewal') AND ap.state = 'accepted' AND a.valid_until <= $2 \
             AND f.allocation_id IS NULL ORDER BY a.id",
        )
        .bind(org_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    /// The accepted application an allocation was awarded by (its first, not a request).
    pub async fn application_of_allocation(&self, allocation_id: &str) -> Result<Option<Application>> {
        let row = sqlx::query(
            "SELECT * FROM applications WHERE allocation_id = $1 AND kind IN ('new', 'renewal') AND state = 'accepted' ORDER BY id LIMIT 1",
        )
        .bind(allocation_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(application_from).transpose()
    }
}
