//! The hub's repositories, commits, branches and stored contents. A commit and the move of
//! its branch happen in one transaction, and the move only if the branch still points where
//! the committer saw it: two commits racing on a branch never lose one another's files.

use super::*;
use hub::commit::FileEntry;
use hub::{AccessRights, RepoKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repo {
    pub id: String,
    pub kind: RepoKind,
    pub namespace: String,
    pub name: String,
    pub org_id: String,
    pub access_rights: AccessRights,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Repo {
    /// `namespace/name`.
    pub fn repo_id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone)]
pub struct NewRepo {
    pub kind: RepoKind,
    pub namespace: String,
    pub name: String,
    pub org_id: String,
    pub access_rights: AccessRights,
    pub created_by: String,
    /// The job whose token created it, if a job did.
    pub job_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoCommit {
    pub id: String,
    pub parent: Option<String>,
    pub author_user_id: String,
    pub summary: String,
    pub description: String,
    pub created_at: i64,
    /// The factory job whose token made it (provenance of what a job produced).
    pub job_id: Option<String>,
}

fn repo_from(r: &AnyRow) -> Result<Repo> {
    let kind: String = r.try_get("kind")?;
    let rights: String = r.try_get("access_rights")?;
    Ok(Repo {
        id: r.try_get("id")?,
        kind: RepoKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("repository kind `{kind}`")))?,
        namespace: r.try_get("namespace")?,
        name: r.try_get("name")?,
        org_id: r.try_get("org_id")?,
        access_rights: AccessRights::parse(&rights)
            .ok_or_else(|| StoreError::Corrupt(format!("access rights `{rights}`")))?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn commit_from(r: &AnyRow) -> Result<RepoCommit> {
    Ok(RepoCommit {
        id: r.try_get("id")?,
        parent: r.try_get("parent")?,
        author_user_id: r.try_get("author_user_id")?,
        summary: r.try_get("summary")?,
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
        job_id: r.try_get("job_id")?,
    })
}

async fn insert_commit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    repo_id: &str,
    commit: &RepoCommit,
    tree: &BTreeMap<String, FileEntry>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO repo_commits (repo_id, id, parent, author_user_id, summary, description, created_at, job_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(repo_id)
    .bind(&commit.id)
    .bind(commit.parent.as_deref())
    .bind(&commit.author_user_id)
    .bind(&commit.summary)
    .bind(&commit.description)
    .bind(commit.created_at)
    .bind(commit.job_id.as_deref())
    .execute(&mut **tx)
    .await?;
    for (path, f) in tree {
        sqlx::query(
            "INSERT INTO repo_files (repo_id, commit_id, path, sha256, size, git_oid, lfs) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(repo_id)
        .bind(&commit.id)
        .bind(path)
        .bind(&f.sha256)
        .bind(f.size as i64)
        .bind(&f.git_oid)
        .bind(i64::from(f.lfs))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Store {
    /// A repository with its first commit on `main`.
    pub async fn create_repo(
        &self,
        new: &NewRepo,
        first: &RepoCommit,
        tree: &BTreeMap<String, FileEntry>,
    ) -> Result<Repo> {
        let t = first.created_at;
        let repo = Repo {
            id: new_id("rep"),
            kind: new.kind,
            namespace: new.namespace.clone(),
            name: new.name.clone(),
            org_id: new.org_id.clone(),
            access_rights: new.access_rights,
            created_by: new.created_by.clone(),
            created_at: t,
            updated_at: t,
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO repos (id, kind, namespace, name, org_id, access_rights, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(&repo.id)
        .bind(repo.kind.as_str())
        .bind(&repo.namespace)
        .bind(&repo.name)
        .bind(&repo.org_id)
        .bind(repo.access_rights.as_str())
        .bind(&repo.created_by)
        .bind(t)
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!(
                "the {} {}/{} exists already",
                new.kind.as_str(),
                new.namespace,
                new.name
            )),
            other => other,
        })?;
        insert_commit(&mut tx, &repo.id, first, tree).await?;
        sqlx::query("INSERT INTO repo_refs (repo_id, name, commit_id) VALUES ($1, 'main', $2)")
            .bind(&repo.id)
            .bind(&first.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(repo)
    }

    pub async fn find_repo(&self, kind: RepoKind, namespace: &str, name: &str) -> Result<Option<Repo>> {
        let row = sqlx::query("SELECT * FROM repos WHERE kind = $1 AND namespace = $2 AND name = $3")
            .bind(kind.as_str())
            .bind(namespace)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(repo_from).transpose()
    }

    pub async fn find_repo_by_id(&self, id: &str) -> Result<Option<Repo>> {
        let row = sqlx::query("SELECT * FROM repos WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(repo_from).transpose()
    }

    /// Repositories of a kind whose `namespace/name` contains `search`, newest first.
    pub async fn list_repos(&self, kind: RepoKind, search: &str, limit: i64) -> Result<Vec<Repo>> {
        let pattern = format!("%{}%", search.to_lowercase().replace(['%', '_'], ""));
        let rows = sqlx::query(
            "SELECT * FROM repos WHERE kind = $1 AND lower(namespace || '/' || name) LIKE $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(kind.as_str())
        .bind(pattern)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(repo_from).collect()
    }

    /// The commit a revision names: a branch, or a commit id of this repository.
    pub async fn resolve_revision(&self, repo_id: &str, revision: &str) -> Result<Option<String>> {
        let branch = revision.strip_prefix("refs/heads/").unwrap_or(revision);
        let row = sqlx::query("SELECT commit_id FROM repo_refs WHERE repo_id = $1 AND name = $2")
            .bind(repo_id)
            .bind(branch)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(r) = row {
            return Ok(Some(r.try_get("commit_id")?));
        }
        if hub::oid::is_hex(revision, 40) {
            let row = sqlx::query("SELECT id FROM repo_commits WHERE repo_id = $1 AND id = $2")
                .bind(repo_id)
                .bind(revision)
                .fetch_optional(&self.pool)
                .await?;
            return Ok(row.map(|r| r.try_get("id")).transpose()?);
        }
        Ok(None)
    }

    /// The branches and the commits they point to.
    pub async fn repo_refs(&self, repo_id: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT name, commit_id FROM repo_refs WHERE repo_id = $1 ORDER BY name")
            .bind(repo_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("commit_id")?)))
            .collect()
    }

    pub async fn repo_commit(&self, repo_id: &str, commit_id: &str) -> Result<RepoCommit> {
        let row = sqlx::query("SELECT * FROM repo_commits WHERE repo_id = $1 AND id = $2")
            .bind(repo_id)
            .bind(commit_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found("commit", commit_id))?;
        commit_from(&row)
    }

    /// Every file of a commit, by path.
    pub async fn repo_tree(&self, repo_id: &str, commit_id: &str) -> Result<BTreeMap<String, FileEntry>> {
        let rows = sqlx::query("SELECT * FROM repo_files WHERE repo_id = $1 AND commit_id = $2 ORDER BY path")
            .bind(repo_id)
            .bind(commit_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let size: i64 = r.try_get("size")?;
                let lfs: i64 = r.try_get("lfs")?;
                Ok((
                    r.try_get("path")?,
                    FileEntry {
                        sha256: r.try_get("sha256")?,
                        size: size as u64,
                        git_oid: r.try_get("git_oid")?,
                        lfs: lfs != 0,
                    },
                ))
            })
            .collect()
    }

    /// Adds a commit whose parent is where `branch` points now, and moves the branch to it;
    /// a conflict if the branch moved meanwhile.
    pub async fn add_repo_commit(
        &self,
        repo_id: &str,
        branch: &str,
        commit: &RepoCommit,
        tree: &BTreeMap<String, FileEntry>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let moved = match &commit.parent {
            Some(parent) => {
                sqlx::query("UPDATE repo_refs SET commit_id = $1 WHERE repo_id = $2 AND name = $3 AND commit_id = $4")
                    .bind(&commit.id)
                    .bind(repo_id)
                    .bind(branch)
                    .bind(parent)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
            }
            None => sqlx::query("INSERT INTO repo_refs (repo_id, name, commit_id) VALUES ($1, $2, $3)")
                .bind(repo_id)
                .bind(branch)
                .bind(&commit.id)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
        };
        if moved == 0 {
            return Err(StoreError::Conflict(format!(
                "the branch {branch} moved while this commit was made: commit again on top of it"
            )));
        }
        insert_commit(&mut tx, repo_id, commit, tree).await?;
        sqlx::query("UPDATE repos SET updated_at = $1 WHERE id = $2")
            .bind(commit.created_at)
            .bind(repo_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The bytes of hub content an organisation's repositories hold, each content counted
    /// once (every commit's files: old revisions stay readable).
    pub async fn org_hub_bytes(&self, org_id: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM (SELECT DISTINCT f.sha256, f.size FROM repo_files f \
             JOIN repos r ON r.id = f.repo_id WHERE r.org_id = $1) t",
        )
        .bind(org_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(n.max(0) as u64)
    }

    /// The job that last committed to a repository (what produced it), if a job did.
    pub async fn repo_provenance(&self, repo_id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT job_id FROM repo_commits WHERE repo_id = $1 AND job_id IS NOT NULL ORDER BY created_at DESC, id LIMIT 1",
        )
        .bind(repo_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The repositories a job committed to.
    pub async fn repos_committed_by_job(&self, job_id: &str) -> Result<Vec<Repo>> {
        let rows = sqlx::query(
            "SELECT * FROM repos WHERE id IN (SELECT DISTINCT repo_id FROM repo_commits WHERE job_id = $1) ORDER BY id",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(repo_from).collect()
    }

    /// Records a content the blob store holds (once).
    pub async fn record_blob(&self, stored: &hub::blobs::Stored, at: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO blobs (sha256, size, git_blob_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(&stored.sha256)
        .bind(stored.size as i64)
        .bind(&stored.git_blob_id)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A stored content's size and git blob id.
    pub async fn blob(&self, sha256: &str) -> Result<Option<(u64, String)>> {
        let row = sqlx::query("SELECT size, git_blob_id FROM blobs WHERE sha256 = $1")
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let size: i64 = r.try_get("size")?;
            Ok((size as u64, r.try_get("git_blob_id")?))
        })
        .transpose()
    }
}

impl Store {
    /// Sets a repository's catalogue metadata (replacing what it had).
    pub async fn set_repo_metadata(&self, repo_id: &str, metadata: &hub::catalogue::Metadata, at: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM repo_metadata WHERE repo_id = $1")
            .bind(repo_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO repo_metadata (repo_id, metadata, updated_at) VALUES ($1, $2, $3)")
            .bind(repo_id)
            .bind(json(metadata))
            .bind(at)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE repos SET updated_at = $1 WHERE id = $2")
            .bind(at)
            .bind(repo_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every repository with its metadata (empty where none was set), oldest first.
    pub async fn catalogue(&self) -> Result<Vec<(Repo, hub::catalogue::Metadata)>> {
        let rows = sqlx::query(
            "SELECT r.*, m.metadata FROM repos r LEFT JOIN repo_metadata m ON m.repo_id = r.id ORDER BY r.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let metadata: Option<String> = r.try_get("metadata")?;
                Ok((
                    repo_from(r)?,
                    metadata.map(|m| from_json(&m)).transpose()?.unwrap_or_default(),
                ))
            })
            .collect()
    }

    pub async fn repo_metadata(&self, repo_id: &str) -> Result<hub::catalogue::Metadata> {
        let row = sqlx::query("SELECT metadata FROM repo_metadata WHERE repo_id = $1")
            .bind(repo_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => from_json(&r.try_get::<String, _>("metadata")?),
            None => Ok(Default::default()),
        }
    }
}
