//! Slurm accounts through slurmdbd's API (`/slurmdb/...`): a site that keeps an account per
//! project has it created, with the associations that let its users charge it, when the
//! project is awarded. Creating is idempotent: asking again for an account and
//! associations that exist changes nothing, so a creation that failed halfway is simply
//! asked for again.

use crate::{ApiVersion, Client, SlurmError, mapping};
use serde_json::{Value, json};

/// An account and the users who may charge jobs to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRequest {
    /// Slurm keeps account names in lower case.
    pub name: String,
    pub description: String,
    pub organization: String,
    pub users: Vec<String>,
}

/// Slurm's code for a query that found nothing (slurm_errno.h, ESLURM_REST_EMPTY_RESULT).
const NOTHING_FOUND: i64 = 9003;

/// The version of slurmdbd's API in use and how its collection paths end (24.11 writes
/// them with a trailing slash, `/slurmdb/v0.0.42/accounts/`; earlier versions without).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbApi {
    pub version: ApiVersion,
    pub trailing_slash: bool,
}

/// The highest version of slurmdbd's API that slurmrestd offers (loaded with
/// `-s openapi/dbv0.0.38` up to 23.02, `openapi/slurmdbd` since 23.11).
pub fn pick_version(openapi: &Value) -> Option<DbApi> {
    let paths = openapi.get("paths")?.as_object()?;
    ApiVersion::ALL.iter().rev().find_map(|&version| {
        [false, true].into_iter().find_map(|trailing_slash| {
            let api = DbApi {
                version,
                trailing_slash,
            };
            ["accounts", "associations", "clusters"]
                .iter()
                .all(|p| paths.contains_key(&api.path(p)))
                .then_some(api)
        })
    })
}

impl DbApi {
    /// The path of a collection (`accounts`, `associations`...).
    pub fn path(self, collection: &str) -> String {
        let slash = if self.trailing_slash { "/" } else { "" };
        format!("/slurmdb/{}/{collection}{slash}", self.version.as_str())
    }
}

/// The body that adds an account (its description and organization; no association).
pub fn account_body(account: &AccountRequest) -> Value {
    json!({"accounts": [{
        "name": account.name,
        "description": account.description,
        "organization": account.organization,
    }]})
}

/// The body that adds the account's association on `cluster` (under `root`) and one for
/// each of its users. The account's own association has an empty user: v0.0.38 asks for
/// the field and takes "" as none.
pub fn associations_body(cluster: &str, account: &AccountRequest) -> Value {
    let mut associations = vec![json!({
        "account": account.name, "cluster": cluster, "parent_account": "root", "user": "",
    })];
    associations.extend(
        account
            .users
            .iter()
            .map(|u| json!({"account": account.name, "cluster": cluster, "user": u})),
    );
    json!({ "associations": associations })
}

/// The users with an association to an account, from a `GET .../associations` answer.
pub fn parse_association_users(body: &Value, account: &str, cluster: &str) -> Vec<String> {
    let mut users: Vec<String> = body
        .get("associations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|a| a.get("account").and_then(Value::as_str) == Some(account))
        .filter(|a| a.get("cluster").and_then(Value::as_str) == Some(cluster))
        .filter_map(|a| a.get("user").and_then(Value::as_str))
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect();
    users.sort();
    users.dedup();
    users
}

impl Client {
    /// The version of slurmdbd's API in use, or why there is none.
    fn accounting(&self) -> Result<DbApi, SlurmError> {
        self.accounting.ok_or_else(|| {
            SlurmError::Unsupported(format!(
                "slurmrestd at {} offers no accounting API: start it with -s {} and slurmdbd behind it",
                self.url,
                match self.version {
                    ApiVersion::V0038 => "openapi/v0.0.38,openapi/dbv0.0.38",
                    ApiVersion::V0039 => "openapi/v0.0.39,openapi/dbv0.0.39",
                    _ => "openapi/slurmctld,openapi/slurmdbd",
                }
            ))
        })
    }

    /// The clusters slurmdbd keeps accounts for.
    pub async fn clusters(&self) -> Result<Vec<String>, SlurmError> {
        let v = self.accounting()?;
        let body = self.request("GET", &v.path("clusters"), None).await?;
        Ok(body
            .get("clusters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
            .collect())
    }

    /// The users who may charge `account` on `cluster` (empty when there is no such account).
    pub async fn account_users(&self, cluster: &str, account: &str) -> Result<Vec<String>, SlurmError> {
        Ok(self.associations(cluster, account).await?.unwrap_or_default())
    }

    /// The users associated with `account` on `cluster`, or `None` when the account has no
    /// association there at all.
    async fn associations(&self, cluster: &str, account: &str) -> Result<Option<Vec<String>>, SlurmError> {
        let v = self.accounting()?;
        let path = format!("{}?account={account}&cluster={cluster}", v.path("associations"));
        let (status, body) = self.request_raw("GET", &path, None).await?;
        if mapping::error_numbers(&body).any(|n| n == NOTHING_FOUND) {
            return Ok(None);
        }
        if status >= 400 || mapping::errors(&body).is_some() {
            return Err(SlurmError::Http {
                status,
                message: mapping::errors(&body).unwrap_or_else(|| body.to_string()),
            });
        }
        let any = body
            .get("associations")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        Ok(any.then(|| parse_association_users(&body, account, cluster)))
    }

    /// Makes sure `account` exists on `cluster` and every one of its users may charge it,
    /// creating what is missing, and reads the associations back to prove it.
    pub async fn ensure_account(&self, cluster: &str, account: &AccountRequest) -> Result<(), SlurmError> {
        let v = self.accounting()?;
        let missing = |found: &Option<Vec<String>>| -> Vec<String> {
            match found {
                None => account.users.clone(),
                Some(have) => account.users.iter().filter(|u| !have.contains(u)).cloned().collect(),
            }
        };
        let found = self.associations(cluster, &account.name).await?;
        if found.is_some() && missing(&found).is_empty() {
            return Ok(());
        }
        // What slurmdbd objected to, if it still lacks something afterwards.
        let mut objections = Vec::new();
        for (what, body) in [
            ("accounts", account_body(account)),
            ("associations", associations_body(cluster, account)),
        ] {
            let (status, answer) = self.request_raw("POST", &v.path(what), Some(&body)).await?;
            if let Some(e) = mapping::errors(&answer) {
                objections.push(e);
            } else if status >= 400 {
                objections.push(format!("HTTP {status}"));
            }
        }
        let found = self.associations(cluster, &account.name).await?;
        let lacking = missing(&found);
        if found.is_some() && lacking.is_empty() {
            return Ok(());
        }
        let message = format!(
            "slurmdbd did not create {} on cluster {cluster}{}",
            match found {
                None => format!("account {}", account.name),
                Some(_) => format!(
                    "the association of {} with account {}",
                    lacking.join(", "),
                    account.name
                ),
            },
            match objections.is_empty() {
                true => String::new(),
                false => format!(": {}", objections.join("; ")),
            }
        );
        // Our user may not create accounts (it is no operator): retrying will not help.
        if objections
            .iter()
            .any(|e| e.contains("ermission") || e.contains("ccess denied"))
        {
            return Err(SlurmError::Invalid(message));
        }
        Err(SlurmError::Refused(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_association_comes_before_its_users() {
        let account = AccountRequest {
            name: "aif_prj_1".into(),
            description: "d".into(),
            organization: "acme".into(),
            users: vec!["slurm".into(), "alice".into()],
        };
        let body = associations_body("c1", &account);
        let list = body["associations"].as_array().unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[0]["user"], "");
        assert_eq!(list[0]["parent_account"], "root");
        assert_eq!(list[1]["user"], "slurm");
        assert_eq!(list[2]["cluster"], "c1");
    }

    #[test]
    fn association_users_are_those_of_the_account_on_the_cluster() {
        let body = json!({"associations": [
            {"account": "a", "cluster": "c", "user": null},
            {"account": "a", "cluster": "c", "user": "bob"},
            {"account": "a", "cluster": "other", "user": "eve"},
            {"account": "b", "cluster": "c", "user": "mallory"},
            {"account": "a", "cluster": "c", "user": "alice"},
        ]});
        assert_eq!(parse_association_users(&body, "a", "c"), ["alice", "bob"]);
    }
}
