//! The initiative's indicators, computed from one record per submitted application:
//! applications, awards and GPU-hours by mode, organisation type, country and sector; time
//! to decision and to first job against the mode's target; GPU-hours awarded against used.

use serde::Serialize;
use std::collections::BTreeMap;

/// What is known of one submitted application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub mode: String,
    pub org_type: String,
    pub country: String,
    pub sector: String,
    pub eligible: bool,
    pub awarded: bool,
    pub requested_gpu_hours: i64,
    pub awarded_gpu_hours: i64,
    /// GPU-seconds used so far by the allocation it became.
    pub used_gpu_seconds: i64,
    /// Working days from submission to decision, when decided.
    pub decision_working_days: Option<u32>,
    pub decision_target_working_days: u32,
    /// Seconds from submission to the first job that ran on the award.
    pub seconds_to_first_job: Option<i64>,
    /// Working days from submission to that first job, and the mode's access target.
    pub first_job_working_days: Option<u32>,
    pub access_target_working_days: u32,
    pub sme_or_startup: bool,
}

/// One row of the indicators: a dimension (`mode`, `org_type`, `country`, `sector`, `all`)
/// and a value of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Row {
    pub dimension: String,
    pub key: String,
    pub applications: u64,
    pub eligible: u64,
    pub awards: u64,
    pub requested_gpu_hours: i64,
    pub awarded_gpu_hours: i64,
    pub used_gpu_hours: i64,
    pub decisions: u64,
    pub median_decision_working_days: Option<u32>,
    /// Decisions made within their mode's target.
    pub decisions_within_target: u64,
    pub first_jobs: u64,
    pub median_seconds_to_first_job: Option<i64>,
    /// First jobs that ran within their mode's access target.
    pub first_jobs_within_target: u64,
}

fn median<T: Copy + Ord>(mut v: Vec<T>) -> Option<T> {
    v.sort();
    // The lower middle: an observed value, never an average of two.
    v.get(v.len().saturating_sub(1) / 2).copied()
}

fn row(dimension: &str, key: &str, records: &[&Record]) -> Row {
    let decisions: Vec<u32> = records.iter().filter_map(|r| r.decision_working_days).collect();
    let firsts: Vec<i64> = records.iter().filter_map(|r| r.seconds_to_first_job).collect();
    Row {
        dimension: dimension.into(),
        key: key.into(),
        applications: records.len() as u64,
        eligible: records.iter().filter(|r| r.eligible).count() as u64,
        awards: records.iter().filter(|r| r.awarded).count() as u64,
        requested_gpu_hours: records.iter().map(|r| r.requested_gpu_hours).sum(),
        awarded_gpu_hours: records.iter().map(|r| r.awarded_gpu_hours).sum(),
        used_gpu_hours: records.iter().map(|r| r.used_gpu_seconds).sum::<i64>() / 3600,
        decisions: decisions.len() as u64,
        decisions_within_target: records
            .iter()
            .filter(|r| {
                r.decision_working_days
                    .is_some_and(|d| d <= r.decision_target_working_days)
            })
            .count() as u64,
        median_decision_working_days: median(decisions),
        first_jobs: firsts.len() as u64,
        median_seconds_to_first_job: median(firsts),
        first_jobs_within_target: records
            .iter()
            .filter(|r| {
                r.first_job_working_days
                    .is_some_and(|d| d <= r.access_target_working_days)
            })
            .count() as u64,
    }
}

/// Rows for all records, then by mode, organisation type, country and sector.
pub fn rows(records: &[Record]) -> Vec<Row> {
    let all: Vec<&Record> = records.iter().collect();
    let mut out = vec![row("all", "all", &all)];
    type Key = fn(&Record) -> &str;
    let dims: [(&str, Key); 4] = [
        ("mode", |r| &r.mode),
        ("org_type", |r| &r.org_type),
        ("country", |r| &r.country),
        ("sector", |r| &r.sector),
    ];
    for (name, key) in dims {
        let mut groups: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
        for r in records {
            groups.entry(key(r)).or_default().push(r);
        }
        out.extend(groups.iter().map(|(k, rs)| row(name, k, rs)));
    }
    out
}

/// Shares in thousandths: of awarded GPU-hours and of used GPU-seconds that went to SMEs
/// and start-ups.
pub fn sme_share_permille(records: &[Record]) -> (Option<i64>, Option<i64>) {
    let share = |part: i64, whole: i64| (whole > 0).then(|| part * 1000 / whole);
    let awarded: i64 = records.iter().map(|r| r.awarded_gpu_hours).sum();
    let used: i64 = records.iter().map(|r| r.used_gpu_seconds).sum();
    let sme = records.iter().filter(|r| r.sme_or_startup);
    let (sme_awarded, sme_used) = sme.fold((0, 0), |(a, u), r| (a + r.awarded_gpu_hours, u + r.used_gpu_seconds));
    (share(sme_awarded, awarded), share(sme_used, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(mode: &str, country: &str, awarded: i64, days: Option<u32>, first: Option<i64>, sme: bool) -> Record {
        Record {
            mode: mode.into(),
            org_type: if sme { "sme" } else { "research" }.into(),
            country: country.into(),
            sector: "health".into(),
            eligible: true,
            awarded: awarded > 0,
            requested_gpu_hours: 100,
            awarded_gpu_hours: awarded,
            used_gpu_seconds: awarded * 1800,
            decision_working_days: days,
            decision_target_working_days: if mode == "playground" { 2 } else { 10 },
            seconds_to_first_job: first,
            first_job_working_days: first.map(|s| (s / 86_400) as u32),
            access_target_working_days: 2,
            sme_or_startup: sme,
        }
    }

    #[test]
    fn groups_medians_targets_and_shares() {
        let records = vec![
            rec("playground", "IT", 100, Some(0), Some(8), true),
            rec("playground", "FI", 100, Some(3), Some(20), true),
            rec("large-scale", "IT", 0, Some(12), None, false),
            rec("large-scale", "IT", 300, Some(9), Some(86_400), false),
            rec("large-scale", "DE", 0, None, None, false),
        ];
        let rows = rows(&records);
        let find = |d: &str, k: &str| rows.iter().find(|r| r.dimension == d && r.key == k).unwrap().clone();
        let all = find("all", "all");
        assert_eq!(
            (all.applications, all.awards, all.awarded_gpu_hours, all.used_gpu_hours),
            (5, 3, 500, 250)
        );
        assert_eq!(all.decisions, 4);
        let pg = find("mode", "playground");
        assert_eq!(
            (pg.decisions_within_target, pg.median_decision_working_days),
            (1, Some(0))
        );
        assert_eq!(pg.median_seconds_to_first_job, Some(8));
        assert_eq!(pg.first_jobs_within_target, 2);
        assert_eq!(
            find("mode", "large-scale").first_jobs_within_target,
            1,
            "a day is within two"
        );
        let ls = find("mode", "large-scale");
        assert_eq!(
            (
                ls.decisions,
                ls.decisions_within_target,
                ls.median_decision_working_days
            ),
            (2, 1, Some(9))
        );
        assert_eq!(find("country", "IT").applications, 3);
        assert_eq!(rows.iter().filter(|r| r.dimension == "country").count(), 3);
        assert_eq!(sme_share_permille(&records), (Some(400), Some(400)));
        assert_eq!(sme_share_permille(&[]), (None, None));
    }
}
