//! Training courses: anyone reads them; a verified user enrols (seated while seats are
//! left, else waitlisted); programme managers create courses, enrol a class from a CSV,
//! cancel and record completion. A seated trainee gets a playground allocation that ends
//! with the course.

use super::prelude::*;
use store::{Course, Enrolment, EnrolmentState};

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e(
            "post",
            "/api/v1/courses",
            "Create a course (programme manager)",
            true,
            &[],
            Some(schema::<CreateCourse>),
            post(create_course),
        )
        .returns::<CourseView>(),
        e(
            "get",
            "/api/v1/courses",
            "Courses with their seats (public)",
            false,
            &[],
            None,
            get(list_courses),
        )
        .returns::<Items<CourseView>>(),
        e(
            "get",
            "/api/v1/courses/{id}",
            "One course by id or name (public)",
            false,
            &[],
            None,
            get(get_course),
        )
        .returns::<CourseView>(),
        e(
            "post",
            "/api/v1/courses/{id}/enrol",
            "Enrol yourself: a seat and a playground allocation until the course ends, or a place on the waitlist",
            true,
            &[],
            None,
            post(enrol_self),
        )
        .returns::<EnrolmentView>(),
        e(
            "get",
            "/api/v1/courses/{id}/enrolments",
            "Who is enrolled, waitlisted, completed (programme manager)",
            true,
            &[],
            None,
            get(list_enrolments),
        )
        .returns::<Items<EnrolmentView>>(),
        e(
            "post",
            "/api/v1/courses/{id}/enrolments",
            "Enrol a class from CSV (`email,name` per line; programme manager): accounts are created where missing",
            true,
            &[],
            None,
            post(enrol_csv),
        )
        .returns::<Items<EnrolmentView>>(),
        e(
            "post",
            "/api/v1/courses/{id}/enrolments/{user}/cancel",
            "Cancel an enrolment (the trainee or a programme manager); the seat goes to the first on the waitlist",
            true,
            &[],
            None,
            post(cancel),
        )
        .returns::<EnrolmentView>(),
        e(
            "post",
            "/api/v1/courses/{id}/enrolments/{user}/complete",
            "Record that a trainee completed the course (programme manager)",
            true,
            &[],
            None,
            post(complete),
        )
        .returns::<EnrolmentView>(),
    ]
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct CourseView {
    id: String,
    name: String,
    title: String,
    description: String,
    site: String,
    starts_at: String,
    ends_at: String,
    seats: i64,
    seats_left: i64,
    gpu_hours_per_trainee: i64,
}

fn course_view(c: &Course) -> CourseView {
    CourseView {
        id: c.id.clone(),
        name: c.name.clone(),
        title: c.title.clone(),
        description: c.description.clone(),
        site: c.site.clone(),
        starts_at: rfc3339(c.starts_at),
        ends_at: rfc3339(c.ends_at),
        seats: c.seats,
        seats_left: c.seats - c.taken,
        gpu_hours_per_trainee: c.gpu_hours_per_trainee,
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct EnrolmentView {
    course: String,
    user: String,
    email: Option<String>,
    state: EnrolmentState,
    project: Option<String>,
    allocation: Option<String>,
    enrolled_at: String,
    completed_at: Option<String>,
}

fn enrolment_view(e: &Enrolment, email: Option<&str>) -> EnrolmentView {
    EnrolmentView {
        course: e.course_id.clone(),
        user: e.user_id.clone(),
        email: email.map(str::to_string),
        state: e.state,
        project: e.project_id.clone(),
        allocation: e.allocation_id.clone(),
        enrolled_at: rfc3339(e.enrolled_at),
        completed_at: e.completed_at.map(rfc3339),
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateCourse {
    name: String,
    title: String,
    #[serde(default)]
    description: String,
    site: String,
    /// RFC 3339 times.
    starts_at: String,
    ends_at: String,
    seats: i64,
    gpu_hours_per_trainee: i64,
}

fn time(field: &str, v: &str) -> Result<i64, ApiError> {
    v.parse::<jiff::Timestamp>().map(|t| t.as_second()).map_err(|_| {
        ApiError::field(
            field,
            format!("`{field}` is an RFC 3339 time such as 2027-02-01T09:00:00Z"),
        )
    })
}

pub(crate) async fn create_course(
    State(state): State<AppState>,
    caller: Caller,
    Body(b): Body<CreateCourse>,
) -> ApiResult {
    programme_manager(&caller, "create courses")?;
    short_name("name", &b.name)?;
    non_empty("title", &b.title, 200)?;
    if state.cluster.site_by_name(&b.site).is_none() {
        return Err(ApiError::field("site", format!("no site `{}` in this factory", b.site)));
    }
    let (starts_at, ends_at) = (time("starts_at", &b.starts_at)?, time("ends_at", &b.ends_at)?);
    if ends_at <= starts_at || ends_at <= unix_now() as i64 {
        return Err(ApiError::field(
            "ends_at",
            "a course ends after it starts, and in the future",
        ));
    }
    if !(1..=10_000).contains(&b.seats) {
        return Err(ApiError::field("seats", "between 1 and 10,000 seats"));
    }
    if !(1..=10_000).contains(&b.gpu_hours_per_trainee) {
        return Err(ApiError::field(
            "gpu_hours_per_trainee",
            "between 1 and 10,000 GPU-hours",
        ));
    }
    let course = state
        .store
        .create_course(&store::NewCourse {
            name: b.name,
            title: b.title.trim().to_string(),
            description: b.description,
            site: b.site,
            starts_at,
            ends_at,
            seats: b.seats,
            gpu_hours_per_trainee: b.gpu_hours_per_trainee,
        })
        .await?;
    Ok(created(course_view(&course)))
}

pub(crate) async fn list_courses(State(state): State<AppState>) -> ApiResult {
    ok(items(
        state.store.list_courses().await?.iter().map(course_view).collect(),
    ))
}

pub(crate) async fn get_course(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    ok(course_view(&state.store.get_course(&id).await?))
}

fn enrolment_message(course: &Course, user: &User, s: EnrolmentState) -> store::NewMessage {
    let (subject, body) = match s {
        EnrolmentState::Enrolled => (
            format!("You have a seat in \"{}\"", course.title),
            format!(
                "You are enrolled in \"{}\" ({} to {}). Your playground allocation of {} GPU-hours at {} lasts until the course ends: aifactory project list, then aifactory job submit --project ...",
                course.title,
                rfc3339(course.starts_at),
                rfc3339(course.ends_at),
                course.gpu_hours_per_trainee,
                course.site
            ),
        ),
        _ => (
            format!("You are on the waitlist of \"{}\"", course.title),
            format!(
                "\"{}\" is full; you are on its waitlist and will be told as soon as a seat is yours.",
                course.title
            ),
        ),
    };
    store::NewMessage {
        to_user_id: Some(user.id.clone()),
        to_email: user.email.clone(),
        kind: format!("course-{}", s.as_str()),
        subject,
        body,
        about: Some(course.id.clone()),
        dedupe_key: None,
    }
}

async fn enrol(state: &AppState, course: &Course, user: &User) -> Result<Enrolment, ApiError> {
    let e = state
        .store
        .enrol(course, user, |s| enrolment_message(course, user, s))
        .await?;
    state.outbox_wake.notify_one();
    state.auth_cache.clear();
    state.submission_cache.clear();
    Ok(e)
}

pub(crate) async fn enrol_self(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    verified(&caller)?;
    let course = state.store.get_course(&id).await?;
    if course.ends_at <= unix_now() as i64 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "course-over",
            "the course is over",
        ));
    }
    let e = enrol(&state, &course, &caller.user).await?;
    Ok(created(enrolment_view(&e, Some(&caller.user.email))))
}

pub(crate) async fn list_enrolments(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult {
    programme_manager(&caller, "see who is enrolled")?;
    let course = state.store.get_course(&id).await?;
    let list = state.store.enrolments(&course.id).await?;
    ok(items(
        list.iter().map(|(e, u)| enrolment_view(e, Some(&u.email))).collect(),
    ))
}

/// At most this many trainees per file.
const CSV_ROWS: usize = 2000;

pub(crate) async fn enrol_csv(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: String,
) -> ApiResult {
    programme_manager(&caller, "enrol a class")?;
    let course = state.store.get_course(&id).await?;
    // Checked in full before anyone is enrolled: a bad line changes nothing.
    let mut rows = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(body.as_bytes());
    for (i, record) in reader.records().enumerate() {
        let line = i + 1;
        let record = record.map_err(|e| ApiError::field(&format!("line {line}"), format!("not CSV: {e}")))?;
        let email = record.get(0).unwrap_or_default().to_string();
        if line == 1 && email.eq_ignore_ascii_case("email") {
            continue;
        }
        if !access::call::looks_like_email(&email) {
            return Err(ApiError::field(
                &format!("line {line}"),
                format!("`{email}` is not an e-mail address"),
            ));
        }
        let name = record.get(1).filter(|n| !n.is_empty()).unwrap_or(&email).to_string();
        rows.push((email, name));
    }
    if rows.is_empty() || rows.len() > CSV_ROWS {
        return Err(ApiError::field(
            "body",
            format!("one to {CSV_ROWS} lines of `email,name`"),
        ));
    }
    let mut out = Vec::new();
    for (email, name) in rows {
        let user = match state.store.user_by_email(&email).await? {
            Some(u) => u,
            // Accounts that staff create count as confirmed, like every staff-made account.
            None => {
                state
                    .store
                    .create_user(&NewUser {
                        email: email.clone(),
                        name,
                        platform_role: None,
                    })
                    .await?
            }
        };
        let e = match state.store.enrolment(&course.id, &user.id).await {
            Ok(existing) => existing,
            Err(_) => enrol(&state, &course, &user).await?,
        };
        out.push(enrolment_view(&e, Some(&user.email)));
    }
    ok(items(out))
}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user)): Path<(String, String)>,
) -> ApiResult {
    let course = state.store.get_course(&id).await?;
    enrolment_of(&caller, &user)?;
    let title = course.title.clone();
    let promoted_users = state.store.enrolments(&course.id).await?;
    state
        .store
        .cancel_enrolment(&course, &user, |next| {
            let (_, u) = promoted_users.iter().find(|(_, u)| u.id == next)?;
            Some(store::NewMessage {
                to_user_id: Some(u.id.clone()),
                to_email: u.email.clone(),
                kind: "course-enrolled".into(),
                subject: format!("A seat in \"{title}\" is yours"),
                body: format!(
                    "A seat in \"{title}\" came free and is yours, with a playground allocation until the course ends."
                ),
                about: Some(course.id.clone()),
                dedupe_key: None,
            })
        })
        .await?;
    state.outbox_wake.notify_one();
    state.submission_cache.clear();
    state.auth_cache.clear();
    let e = state.store.enrolment(&course.id, &user).await?;
    ok(enrolment_view(&e, None))
}

pub(crate) async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user)): Path<(String, String)>,
) -> ApiResult {
    programme_manager(&caller, "record completion")?;
    let course = state.store.get_course(&id).await?;
    let e = state.store.complete_enrolment(&course.id, &user).await?;
    ok(enrolment_view(&e, None))
}
