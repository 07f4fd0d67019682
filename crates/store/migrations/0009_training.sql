-- Training: courses with dates and seats; enrolment gives a trainee a playground
-- allocation that ends with the course; beyond the seats, a waitlist in order of arrival.
CREATE TABLE courses (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    site TEXT NOT NULL,
    org_id TEXT NOT NULL REFERENCES organisations(id),
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    seats BIGINT NOT NULL,
    taken BIGINT NOT NULL,
    gpu_hours_per_trainee BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE enrolments (
    course_id TEXT NOT NULL REFERENCES courses(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    state TEXT NOT NULL,
    project_id TEXT REFERENCES projects(id),
    allocation_id TEXT REFERENCES allocations(id),
    enrolled_at BIGINT NOT NULL,
    seated_at BIGINT,
    completed_at BIGINT,
    cancelled_at BIGINT,
    PRIMARY KEY (course_id, user_id)
);
CREATE INDEX enrolments_by_user ON enrolments (user_id);
