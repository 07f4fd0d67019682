//! Courses and enrolments. A seat is taken by a conditional update of the course's count
//! (never past its seats, whoever enrols at the same time); a seated trainee gets a
//! project of their own in the course's organisation and a playground allocation that ends
//! with the course; a freed seat goes to the first on the waitlist, in the same transaction.

use super::*;
use allocations::insert_allocation;
use outbox::enqueue;
use projects::insert_project;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCourse {
    pub name: String,
    pub title: String,
    pub description: String,
    pub site: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub seats: i64,
    pub gpu_hours_per_trainee: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Course {
    pub id: String,
    pub name: String,
    pub title: String,
    pub description: String,
    pub site: String,
    /// The organisation its trainees' projects belong to.
    pub org_id: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub seats: i64,
    pub taken: i64,
    pub gpu_hours_per_trainee: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolment {
    pub course_id: String,
    pub user_id: String,
    pub state: EnrolmentState,
    pub project_id: Option<String>,
    pub allocation_id: Option<String>,
    pub enrolled_at: i64,
    pub seated_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub cancelled_at: Option<i64>,
}

impl Store {
    /// Creates a course and the organisation its trainees work in.
    pub async fn create_course(&self, new: &NewCourse) -> Result<Course> {
        let mut tx = self.pool.begin().await?;
        let t = now();
        let org_id = accounts::insert_org(
            &mut tx,
            &NewOrg {
                name: format!("Course: {} ({})", new.title, new.name),
                org_type: domain::OrgType::Research,
                country: "EU".into(),
                sectors: vec!["training".into()],
                employees: None,
                turnover_eur: None,
            },
        )
        .await?
        .id;
        let course = Course {
            id: new_id("crs"),
            name: new.name.clone(),
            title: new.title.clone(),
            description: new.description.clone(),
            site: new.site.clone(),
            org_id,
            starts_at: new.starts_at,
            ends_at: new.ends_at,
            seats: new.seats,
            taken: 0,
            gpu_hours_per_trainee: new.gpu_hours_per_trainee,
            created_at: t,
        };
        sqlx::query(
            "INSERT INTO courses (id, name, title, description, site, org_id, starts_at, ends_at, seats, taken, gpu_hours_per_trainee, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11)",
        )
        .bind(&course.id)
        .bind(&course.name)
        .bind(&course.title)
        .bind(&course.description)
        .bind(&course.site)
        .bind(&course.org_id)
        .bind(course.starts_at)
        .bind(course.ends_at)
        .bind(course.seats)
        .bind(course.gpu_hours_per_trainee)
        .bind(t)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(course)
    }

    /// A course by id or name.
    pub async fn get_course(&self, id_or_name: &str) -> Result<Course> {
        self.one(
            "SELECT * FROM courses WHERE id = $1 OR name = $1",
            "course",
            id_or_name,
            course_from,
        )
        .await
    }

    pub async fn list_courses(&self) -> Result<Vec<Course>> {
        let rows = sqlx::query("SELECT * FROM courses ORDER BY starts_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(course_from).collect()
    }

    pub async fn enrolments(&self, course_id: &str) -> Result<Vec<(Enrolment, User)>> {
        let rows = sqlx::query(
            "SELECT e.*, u.id AS u_id, u.email, u.name, u.platform_role, u.created_at AS u_created_at, u.email_verified_at \
             FROM enrolments e JOIN users u ON u.id = e.user_id WHERE e.course_id = $1 ORDER BY e.enrolled_at, u.id",
        )
        .bind(course_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let role: Option<String> = r.try_get("platform_role")?;
                Ok((
                    enrolment_from(r)?,
                    User {
                        id: r.try_get("u_id")?,
                        email: r.try_get("email")?,
                        name: r.try_get("name")?,
                        platform_role: role.as_deref().map(parse).transpose()?,
                        created_at: r.try_get("u_created_at")?,
                        email_verified_at: opt_i64(r, "email_verified_at")?,
                    },
                ))
            })
            .collect()
    }

    pub async fn enrolment(&self, course_id: &str, user_id: &str) -> Result<Enrolment> {
        let row = sqlx::query("SELECT * FROM enrolments WHERE course_id = $1 AND user_id = $2")
            .bind(course_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found("enrolment", user_id))?;
        enrolment_from(&row)
    }

    /// Enrols a user: seated with a project and allocation while seats are left, else on the
    /// waitlist. `message` is what to tell them (filled with the outcome by the caller).
    pub async fn enrol(
        &self,
        course: &Course,
        user: &User,
        message: impl Fn(EnrolmentState) -> NewMessage,
    ) -> Result<Enrolment> {
        let mut tx = self.pool.begin().await?;
        let t = now();
        sqlx::query("INSERT INTO enrolments (course_id, user_id, state, enrolled_at) VALUES ($1, $2, $3, $4)")
            .bind(&course.id)
            .bind(&user.id)
            .bind(EnrolmentState::Waitlisted.as_str())
            .bind(t)
            .execute(&mut *tx)
            .await?;
        let seated = take_seat(&mut tx, course, &user.id).await?;
        let state = if seated {
            EnrolmentState::Enrolled
        } else {
            EnrolmentState::Waitlisted
        };
        enqueue(&mut tx, &[message(state)]).await?;
        tx.commit().await?;
        self.enrolment(&course.id, &user.id).await
    }

    /// Cancels an enrolment; a seat it held goes to the first on the waitlist, whose
    /// message `promoted` makes. Returns who was promoted.
    pub async fn cancel_enrolment(
        &self,
        course: &Course,
        user_id: &str,
        promoted: impl Fn(&str) -> Option<NewMessage>,
    ) -> Result<Option<String>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT * FROM enrolments WHERE course_id = $1 AND user_id = $2")
            .bind(&course.id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| not_found("enrolment", user_id))?;
        let e = enrolment_from(&row)?;
        if matches!(e.state, EnrolmentState::Cancelled | EnrolmentState::Completed) {
            return Err(StoreError::Conflict(format!(
                "the enrolment is {} already",
                e.state.as_str()
            )));
        }
        sqlx::query("UPDATE enrolments SET state = $1, cancelled_at = $2 WHERE course_id = $3 AND user_id = $4")
            .bind(EnrolmentState::Cancelled.as_str())
            .bind(now())
            .bind(&course.id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let mut next = None;
        if e.state == EnrolmentState::Enrolled {
            if let Some(alloc) = &e.allocation_id {
                sqlx::query("UPDATE allocations SET state = $1 WHERE id = $2")
                    .bind(AllocationState::Suspended.as_str())
                    .bind(alloc)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("UPDATE courses SET taken = taken - 1 WHERE id = $1")
                .bind(&course.id)
                .execute(&mut *tx)
                .await?;
            let first = sqlx::query(
                "SELECT user_id FROM enrolments WHERE course_id = $1 AND state = $2 ORDER BY enrolled_at, user_id LIMIT 1",
            )
            .bind(&course.id)
            .bind(EnrolmentState::Waitlisted.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(first) = first {
                let first: String = first.try_get("user_id")?;
                if take_seat(&mut tx, course, &first).await? {
                    if let Some(m) = promoted(&first) {
                        enqueue(&mut tx, &[m]).await?;
                    }
                    next = Some(first);
                }
            }
        }
        tx.commit().await?;
        Ok(next)
    }

    pub async fn complete_enrolment(&self, course_id: &str, user_id: &str) -> Result<Enrolment> {
        let n = sqlx::query(
            "UPDATE enrolments SET state = $1, completed_at = $2 WHERE course_id = $3 AND user_id = $4 AND state = $5",
        )
        .bind(EnrolmentState::Completed.as_str())
        .bind(now())
        .bind(course_id)
        .bind(user_id)
        .bind(EnrolmentState::Enrolled.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict("only a seated trainee completes a course".into()));
        }
        self.enrolment(course_id, user_id).await
    }

    /// Seats offered, taken (enrolled or completed), waitlisted and completed, over every course.
    pub async fn training_totals(&self) -> Result<(i64, i64, i64, i64)> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(seats), 0) AS BIGINT) AS seats, CAST(COALESCE(SUM(taken), 0) AS BIGINT) AS taken, \
             (SELECT COUNT(*) FROM enrolments WHERE state = 'waitlisted') AS waiting, \
             (SELECT COUNT(*) FROM enrolments WHERE state = 'completed') AS completed FROM courses",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((
            sum(&row, "seats")?,
            sum(&row, "taken")?,
            sum(&row, "waiting")?,
            sum(&row, "completed")?,
        ))
    }
}

/// Takes a seat for a waitlisted user if one is left (a conditional update: never past the
/// seats), with their project, allocation and membership of the course's organisation.
async fn take_seat(tx: &mut sqlx::Transaction<'_, sqlx::Any>, course: &Course, user_id: &str) -> Result<bool> {
    let took = sqlx::query("UPDATE courses SET taken = taken + 1 WHERE id = $1 AND taken < seats")
        .bind(&course.id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if took == 0 {
        return Ok(false);
    }
    let member = sqlx::query("SELECT 1 AS one FROM memberships WHERE user_id = $1 AND org_id = $2")
        .bind(user_id)
        .bind(&course.org_id)
        .fetch_optional(&mut **tx)
        .await?;
    if member.is_none() {
        sqlx::query("INSERT INTO memberships (user_id, org_id, role) VALUES ($1, $2, $3)")
            .bind(user_id)
            .bind(&course.org_id)
            .bind(OrgRole::Member.as_str())
            .execute(&mut **tx)
            .await?;
    }
    let t = now();
    let project = insert_project(
        tx,
        &NewProject {
            org_id: course.org_id.clone(),
            name: format!("{}-{user_id}", course.name),
            sector: "training".into(),
            pi_user_id: Some(user_id.to_string()),
        },
    )
    .await?;
    let alloc = insert_allocation(
        tx,
        &NewAllocation {
            project_id: project.id.clone(),
            site: course.site.clone(),
            class: domain::PriorityClass::Playground,
            gpu_seconds: course.gpu_hours_per_trainee * 3600,
            valid_from: t.min(course.starts_at),
            valid_until: course.ends_at,
            slurm: Default::default(),
            // Training is free.
            price_cents_per_gpu_hour: Some(0),
        },
    )
    .await?;
    sqlx::query(
        "UPDATE enrolments SET state = $1, project_id = $2, allocation_id = $3, seated_at = $4 WHERE course_id = $5 AND user_id = $6",
    )
    .bind(EnrolmentState::Enrolled.as_str())
    .bind(&project.id)
    .bind(&alloc.id)
    .bind(t)
    .bind(&course.id)
    .bind(user_id)
    .execute(&mut **tx)
    .await?;
    Ok(true)
}

fn course_from(r: &AnyRow) -> Result<Course> {
    Ok(Course {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        site: r.try_get("site")?,
        org_id: r.try_get("org_id")?,
        starts_at: r.try_get("starts_at")?,
        ends_at: r.try_get("ends_at")?,
        seats: r.try_get("seats")?,
        taken: r.try_get("taken")?,
        gpu_hours_per_trainee: r.try_get("gpu_hours_per_trainee")?,
        created_at: r.try_get("created_at")?,
    })
}

fn enrolment_from(r: &AnyRow) -> Result<Enrolment> {
    Ok(Enrolment {
        course_id: r.try_get("course_id")?,
        user_id: r.try_get("user_id")?,
        state: parse(&r.try_get::<String, _>("state")?)?,
        project_id: r.try_get("project_id")?,
        allocation_id: r.try_get("allocation_id")?,
        enrolled_at: r.try_get("enrolled_at")?,
        seated_at: opt_i64(r, "seated_at")?,
        completed_at: opt_i64(r, "completed_at")?,
        cancelled_at: opt_i64(r, "cancelled_at")?,
    })
}
