//! Harvested entries: a harvest of a source replaces what is known of it in one
//! transaction, telling entries new, changed (their fingerprint differs), unchanged, and
//! withdrawn (no longer in the source; kept, marked).

use super::*;
use hub::harvest::External;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HarvestReport {
    pub new: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: usize,
    pub withdrawn: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredExternal {
    pub source: String,
    pub entry: External,
    pub first_seen_at: i64,
    pub changed_at: i64,
    pub harvested_at: i64,
    pub withdrawn_at: Option<i64>,
}

impl Store {
    pub async fn harvest(&self, source: &str, entries: &[External], at: i64) -> Result<HarvestReport> {
        let mut report = HarvestReport::default();
        let mut tx = self.pool.begin().await?;
        let known = sqlx::query("SELECT identifier, fingerprint, withdrawn_at FROM external_entries WHERE source = $1")
            .bind(source)
            .fetch_all(&mut *tx)
            .await?;
        let mut before: std::collections::HashMap<String, (String, Option<i64>)> = std::collections::HashMap::new();
        for r in &known {
            before.insert(
                r.try_get("identifier")?,
                (r.try_get("fingerprint")?, r.try_get("withdrawn_at")?),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for e in entries {
            if !seen.insert(e.identifier.clone()) {
                continue;
            }
            let fingerprint = e.fingerprint();
            match before.get(&e.identifier) {
                None => {
                    sqlx::query(
                        "INSERT INTO external_entries (identifier, source, kind, entry, fingerprint, first_seen_at, changed_at, harvested_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $6, $6)",
                    )
                    .bind(&e.identifier)
                    .bind(source)
                    .bind(&e.kind)
                    .bind(json(e))
                    .bind(&fingerprint)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                    report.new.push(e.identifier.clone());
                }
                Some((old, withdrawn)) if old != &fingerprint || withdrawn.is_some() => {
                    sqlx::query(
                        "UPDATE external_entries SET kind = $1, entry = $2, fingerprint = $3, changed_at = $4, harvested_at = $4, \
                         withdrawn_at = NULL WHERE source = $5 AND identifier = $6",
                    )
                    .bind(&e.kind)
                    .bind(json(e))
                    .bind(&fingerprint)
                    .bind(at)
                    .bind(source)
                    .bind(&e.identifier)
                    .execute(&mut *tx)
                    .await?;
                    report.changed.push(e.identifier.clone());
                }
                Some(_) => {
                    sqlx::query("UPDATE external_entries SET harvested_at = $1 WHERE source = $2 AND identifier = $3")
                        .bind(at)
                        .bind(source)
                        .bind(&e.identifier)
                        .execute(&mut *tx)
                        .await?;
                    report.unchanged += 1;
                }
            }
        }
        for (id, (_, withdrawn)) in &before {
            if withdrawn.is_none() && !seen.contains(id) {
                sqlx::query("UPDATE external_entries SET withdrawn_at = $1 WHERE source = $2 AND identifier = $3")
                    .bind(at)
                    .bind(source)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                report.withdrawn.push(id.clone());
            }
        }
        tx.commit().await?;
        report.new.sort();
        report.changed.sort();
        report.withdrawn.sort();
        Ok(report)
    }

    /// Harvested entries (withdrawn ones too, marked), by source and identifier.
    pub async fn external_entries(&self) -> Result<Vec<StoredExternal>> {
        let rows = sqlx::query("SELECT * FROM external_entries ORDER BY source, identifier")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredExternal {
                    source: r.try_get("source")?,
                    entry: from_json(&r.try_get::<String, _>("entry")?)?,
                    first_seen_at: r.try_get("first_seen_at")?,
                    changed_at: r.try_get("changed_at")?,
                    harvested_at: r.try_get("harvested_at")?,
                    withdrawn_at: r.try_get("withdrawn_at")?,
                })
            })
            .collect()
    }
}
