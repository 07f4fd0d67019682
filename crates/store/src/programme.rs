//! The access programme's records: calls and their budgets, applications with their
//! history and documents, reviews and conflicts, self-service sign-up and e-mail
//! verification. Which transitions are allowed is decided by `access::workflow` and the
//! server's `applications` module; this module stores them, atomically, with what they
//! cause (budget, provisioning, notifications).

use super::*;
use access::call::CallSpec;
use access::eligibility::{Decision, Declaration};
use access::workflow::{Kind, State};
use allocations::insert_allocation;
use outbox::enqueue;
use projects::{insert_project, insert_project_member};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCall {
    pub name: String,
    pub title: String,
    pub description: String,
    pub spec: CallSpec,
    pub opens_at: i64,
    pub closes_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    pub id: String,
    pub name: String,
    pub title: String,
    pub description: String,
    pub spec: CallSpec,
    pub state: CallState,
    pub opens_at: i64,
    pub closes_at: Option<i64>,
    pub created_at: i64,
}

impl Call {
    /// Open for submissions at `now`.
    pub fn accepts(&self, now: i64) -> bool {
        self.state == CallState::Open && self.opens_at <= now && self.closes_at.is_none_or(|c| now < c)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallBudget {
    pub site: String,
    pub budget_gpu_seconds: i64,
    pub awarded_gpu_seconds: i64,
}

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub id: String,
    pub application_id: String,
    pub reviewer_user_id: String,
    pub state: ReviewState,
    pub scores: BTreeMap<String, u32>,
    pub comments: Option<String>,
    pub score_milli: Option<i64>,
    pub assigned_at: i64,
    pub due_at: i64,
    pub submitted_at: Option<i64>,
}

/// A self-service registration: the user (unverified), their organisation and a first token.
#[derive(Debug, Clone)]
pub struct SignUp {
    pub user: NewUser,
    pub org: NewOrg,
    pub token_name: String,
    pub code_sha256: String,
    pub code_expires_at: i64,
    pub message: NewMessage,
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("stored JSON: {e}")))
}

fn opt_json<T: serde::de::DeserializeOwned>(r: &AnyRow, col: &str) -> Result<Option<T>> {
    r.try_get::<Option<String>, _>(col)?
        .as_deref()
        .map(from_json)
        .transpose()
}

impl Store {
    // ----- sign-up and e-mail verification -----

    /// Registers a user with their organisation, in one transaction: the user (address not
    /// yet proven), the organisation, its admin membership, a token and the verification
    /// e-mail. Returns the token's secret.
    pub async fn sign_up(&self, s: &SignUp) -> Result<(User, Org, String)> {
        let mut tx = self.pool.begin().await?;
        let t = now();
        let user = User {
            id: new_id("usr"),
            email: s.user.email.clone(),
            name: s.user.name.clone(),
            platform_role: None,
            created_at: t,
            email_verified_at: None,
        };
        sqlx::query("INSERT INTO users (id, email, name, platform_role, created_at) VALUES ($1, $2, $3, NULL, $4)")
            .bind(&user.id)
            .bind(&user.email)
            .bind(&user.name)
            .bind(t)
            .execute(&mut *tx)
            .await?;
        let org = Org {
            id: new_id("org"),
            name: s.org.name.clone(),
            org_type: s.org.org_type,
            country: s.org.country.clone(),
            sectors: s.org.sectors.clone(),
            employees: s.org.employees,
            turnover_eur: s.org.turnover_eur,
            created_at: t,
        };
        sqlx::query(
            "INSERT INTO organisations (id, name, org_type, country, sectors, employees, turnover_eur, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&org.id)
        .bind(&org.name)
        .bind(org.org_type.as_str())
        .bind(&org.country)
        .bind(org.sectors.join(","))
        .bind(org.employees)
        .bind(org.turnover_eur)
        .bind(t)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO memberships (user_id, org_id, role) VALUES ($1, $2, $3)")
            .bind(&user.id)
            .bind(&org.id)
            .bind(OrgRole::Admin.as_str())
            .execute(&mut *tx)
            .await?;
        let (_, secret) = accounts::insert_token(&mut tx, &user.id, &s.token_name).await?;
        sqlx::query(
            "INSERT INTO email_verifications (code_sha256, user_id, email, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&s.code_sha256)
        .bind(&user.id)
        .bind(&user.email)
        .bind(t)
        .bind(s.code_expires_at)
        .execute(&mut *tx)
        .await?;
        let mut message = s.message.clone();
        message.to_user_id = Some(user.id.clone());
        enqueue(&mut tx, &[message]).await?;
        tx.commit().await?;
        Ok((user, org, secret))
    }

    /// Marks the address proven when the code is right, unused and not expired.
    pub async fn verify_email(&self, code_sha256: &str, at: i64) -> Result<User> {
        let mut tx = self.pool.begin().await?;
        let row =
            sqlx::query("SELECT user_id, email, expires_at, used_at FROM email_verifications WHERE code_sha256 = $1")
                .bind(code_sha256)
                .fetch_optional(&mut *tx)
                .await?;
        let refuse = |m: &str| StoreError::Rule {
            code: "invalid-verification-code",
            message: m.to_string(),
        };
        let Some(row) = row else {
            return Err(refuse(
                "this verification code is not known: check the e-mail, or ask for a new code",
            ));
        };
        if opt_i64(&row, "used_at")?.is_some() {
            return Err(refuse("this verification code was used already"));
        }
        if row.try_get::<i64, _>("expires_at")? < at {
            return Err(refuse("this verification code has expired: ask for a new one"));
        }
        let user_id: String = row.try_get("user_id")?;
        sqlx::query("UPDATE email_verifications SET used_at = $1 WHERE code_sha256 = $2")
            .bind(at)
            .bind(code_sha256)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE users SET email_verified_at = $1 WHERE id = $2 AND email = $3")
            .bind(at)
            .bind(&user_id)
            .bind(row.try_get::<String, _>("email")?)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.get_user(&user_id).await
    }

    /// A new code for a user whose address is not yet proven (the old ones stop working).
    pub async fn renew_verification(
        &self,
        user: &User,
        code_sha256: &str,
        expires_at: i64,
        message: &NewMessage,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE email_verifications SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL")
            .bind(now())
            .bind(&user.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO email_verifications (code_sha256, user_id, email, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(code_sha256)
        .bind(&user.id)
        .bind(&user.email)
        .bind(now())
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        enqueue(&mut tx, std::slice::from_ref(message)).await?;
        tx.commit().await?;
        Ok(())
    }

    // ----- calls -----

    pub async fn create_call(&self, new: &NewCall) -> Result<Call> {
        let call = Call {
            id: new_id("call"),
            name: new.name.clone(),
            title: new.title.clone(),
            description: new.description.clone(),
            spec: new.spec.clone(),
            state: CallState::Open,
            opens_at: new.opens_at,
            closes_at: new.closes_at,
            created_at: now(),
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO calls (id, name, title, description, mode, spec, state, opens_at, closes_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&call.id)
        .bind(&call.name)
        .bind(&call.title)
        .bind(&call.description)
        .bind(call.spec.mode.as_str())
        .bind(json(&call.spec))
        .bind(call.state.as_str())
        .bind(call.opens_at)
        .bind(call.closes_at)
        .bind(call.created_at)
        .execute(&mut *tx)
        .await?;
        for b in &call.spec.budgets {
            sqlx::query(
                "INSERT INTO call_budgets (call_id, site, budget_gpu_seconds, awarded_gpu_seconds) VALUES ($1, $2, $3, 0)",
            )
            .bind(&call.id)
            .bind(&b.site)
            .bind(b.gpu_hours * 3600)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(call)
    }

    /// A call by id or by name.
    pub async fn get_call(&self, id_or_name: &str) -> Result<Call> {
        self.one(
            "SELECT * FROM calls WHERE id = $1 OR name = $1",
            "call",
            id_or_name,
            call_from,
        )
        .await
    }

    pub async fn list_calls(&self) -> Result<Vec<Call>> {
        let rows = sqlx::query("SELECT * FROM calls ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(call_from).collect()
    }

    pub async fn set_call_state(&self, id: &str, state: CallState) -> Result<()> {
        let n = sqlx::query("UPDATE calls SET state = $1 WHERE id = $2")
            .bind(state.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(not_found("call", id));
        }
        Ok(())
    }

    pub async fn call_budgets(&self, call_id: &str) -> Result<Vec<CallBudget>> {
        let rows = sqlx::query("SELECT * FROM call_budgets WHERE call_id = $1 ORDER BY site")
            .bind(call_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(CallBudget {
                    site: r.try_get("site")?,
                    budget_gpu_seconds: r.try_get("budget_gpu_seconds")?,
                    awarded_gpu_seconds: r.try_get("awarded_gpu_seconds")?,
                })
            })
            .collect()
    }

    // ----- applications -----

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
            let alloc = insert_allocation(&mut tx, &alloc).await?;
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

fn call_from(r: &AnyRow) -> Result<Call> {
    Ok(Call {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        spec: from_json(&r.try_get::<String, _>("spec")?)?,
        state: parse(&r.try_get::<String, _>("state")?)?,
        opens_at: r.try_get("opens_at")?,
        closes_at: opt_i64(r, "closes_at")?,
        created_at: r.try_get("created_at")?,
    })
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

/// Reviews, conflicts of interest and reviewers' past collaborations.
impl Store {
    pub async fn assign_review(
        &self,
        application_id: &str,
        reviewer: &str,
        due_at: i64,
        message: &NewMessage,
    ) -> Result<Review> {
        let review = Review {
            id: new_id("rev"),
            application_id: application_id.into(),
            reviewer_user_id: reviewer.into(),
            state: ReviewState::Assigned,
            scores: BTreeMap::new(),
            comments: None,
            score_milli: None,
            assigned_at: now(),
            due_at,
            submitted_at: None,
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO reviews (id, application_id, reviewer_user_id, state, assigned_at, due_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&review.id)
        .bind(&review.application_id)
        .bind(&review.reviewer_user_id)
        .bind(review.state.as_str())
        .bind(review.assigned_at)
        .bind(review.due_at)
        .execute(&mut *tx)
        .await?;
        enqueue(&mut tx, std::slice::from_ref(message)).await?;
        tx.commit().await?;
        Ok(review)
    }

    pub async fn get_review(&self, id: &str) -> Result<Review> {
        self.one("SELECT * FROM reviews WHERE id = $1", "review", id, review_from)
            .await
    }

    pub async fn reviews_of_application(&self, application_id: &str) -> Result<Vec<Review>> {
        self.all(
            "SELECT * FROM reviews WHERE application_id = $1 ORDER BY id",
            application_id,
            review_from,
        )
        .await
    }

    pub async fn reviews_by(&self, reviewer: &str) -> Result<Vec<Review>> {
        self.all(
            "SELECT * FROM reviews WHERE reviewer_user_id = $1 ORDER BY id",
            reviewer,
            review_from,
        )
        .await
    }

    /// Records a submitted review (only an assigned one).
    pub async fn submit_review(
        &self,
        id: &str,
        scores: &BTreeMap<String, u32>,
        comments: &str,
        score_milli: i64,
        at: i64,
    ) -> Result<Review> {
        let n = sqlx::query(
            "UPDATE reviews SET state = $1, scores = $2, comments = $3, score_milli = $4, submitted_at = $5 WHERE id = $6 AND state = $7",
        )
        .bind(ReviewState::Submitted.as_str())
        .bind(json(scores))
        .bind(comments)
        .bind(score_milli)
        .bind(at)
        .bind(id)
        .bind(ReviewState::Assigned.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict(
                "this review was submitted or withdrawn already".into(),
            ));
        }
        self.get_review(id).await
    }

    /// A reviewer declares a conflict with an application; their review of it, if any, is
    /// withdrawn.
    pub async fn declare_conflict(&self, reviewer: &str, application_id: &str, reason: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO reviewer_conflicts (reviewer_user_id, application_id, reason, declared_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (reviewer_user_id, application_id) DO NOTHING",
        )
        .bind(reviewer)
        .bind(application_id)
        .bind(reason)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE reviews SET state = $1 WHERE reviewer_user_id = $2 AND application_id = $3")
            .bind(ReviewState::Withdrawn.as_str())
            .bind(reviewer)
            .bind(application_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Applications the reviewer declared a conflict with.
    pub async fn declared_conflicts(&self, reviewer: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT application_id FROM reviewer_conflicts WHERE reviewer_user_id = $1")
            .bind(reviewer)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("application_id")?)).collect()
    }

    pub async fn declare_collaboration(&self, reviewer: &str, org_id: &str, note: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO reviewer_collaborations (reviewer_user_id, org_id, note, declared_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (reviewer_user_id, org_id) DO NOTHING",
        )
        .bind(reviewer)
        .bind(org_id)
        .bind(note)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Organisations the reviewer worked with: declared collaborations, and the
    /// organisations of every project they are or were put in.
    pub async fn collaborations(&self, reviewer: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT org_id FROM reviewer_collaborations WHERE reviewer_user_id = $1 \
             UNION SELECT p.org_id FROM project_members pm JOIN projects p ON p.id = pm.project_id WHERE pm.user_id = $1",
        )
        .bind(reviewer)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("org_id")?)).collect()
    }
}

fn review_from(r: &AnyRow) -> Result<Review> {
    Ok(Review {
        id: r.try_get("id")?,
        application_id: r.try_get("application_id")?,
        reviewer_user_id: r.try_get("reviewer_user_id")?,
        state: parse(&r.try_get::<String, _>("state")?)?,
        scores: opt_json(r, "scores")?.unwrap_or_default(),
        comments: r.try_get("comments")?,
        score_milli: opt_i64(r, "score_milli")?,
        assigned_at: r.try_get("assigned_at")?,
        due_at: r.try_get("due_at")?,
        submitted_at: opt_i64(r, "submitted_at")?,
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
