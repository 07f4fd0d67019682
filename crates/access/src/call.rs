//! A call for proposals: its mode, who may apply, how much it gives and where, its rounds,
//! its form, its price and its promises in working days.

use crate::eligibility::Rules;
use crate::workflow::Steps;
use crate::{calendar, countries};
use domain::PriorityClass;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Small, first come first served, awarded at once while the budget lasts.
    Playground,
    /// Up to 50,000 GPU-hours after a technical assessment.
    FastLane,
    /// Peer review at cut-offs, a right to reply and a panel.
    LargeScale,
    /// Whatever steps the call sets.
    Custom,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::Playground, Mode::FastLane, Mode::LargeScale, Mode::Custom];
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Playground => "playground",
            Mode::FastLane => "fast-lane",
            Mode::LargeScale => "large-scale",
            Mode::Custom => "custom",
        }
    }
    /// The class the awarded allocation's jobs run in.
    pub fn class(self) -> PriorityClass {
        match self {
            Mode::Playground => PriorityClass::Playground,
            Mode::FastLane => PriorityClass::FastLane,
            Mode::LargeScale => PriorityClass::LargeScale,
            Mode::Custom => PriorityClass::Standard,
        }
    }
    /// The EU AI Factories access calls' promises: (decision, access) in working days.
    pub fn default_targets(self) -> (u32, u32) {
        match self {
            Mode::Playground => (2, 2),
            Mode::FastLane => (4, 4),
            Mode::LargeScale | Mode::Custom => (10, 15),
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown mode `{s}` (expected one of: playground, fast-lane, large-scale, custom)"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FieldKind {
    Text,
    LongText,
    Number,
    Choice,
    Url,
    Email,
    Boolean,
}

/// One question of a call's application form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// The key of the answer (`abstract`, `software_stack`).
    pub name: String,
    pub label: String,
    pub kind: FieldKind,
    #[serde(default)]
    pub required: bool,
    /// Characters at most for text; defaults to 500 (text) and 10,000 (long text).
    #[serde(default)]
    pub max_length: Option<u32>,
    /// The allowed answers of a choice.
    #[serde(default)]
    pub choices: Vec<String>,
    #[serde(default)]
    pub help: Option<String>,
}

/// A scored review criterion with its weight in the ranking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Criterion {
    pub name: String,
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// How applications are assessed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Review {
    pub technical_assessment: bool,
    pub peer_review: bool,
    pub min_reviewers: u32,
    /// Scores from 1 to `max_score` per criterion.
    pub criteria: Vec<Criterion>,
    pub max_score: u32,
    /// Reviewers do not see who applied.
    pub blind: bool,
    pub right_to_reply: bool,
    /// Working days a reviewer has for a review, and an applicant for a reply.
    pub review_working_days: u32,
    pub reply_working_days: u32,
}

/// GPU-hours a call gives at a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteBudget {
    pub site: String,
    pub gpu_hours: i64,
}

/// Everything a call sets beyond its name; what the store keeps as the call's spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallSpec {
    pub mode: Mode,
    pub eligibility: Rules,
    pub budgets: Vec<SiteBudget>,
    /// Cut-off times (Unix seconds) at which submitted applications are ranked together;
    /// none: continuous.
    pub cutoffs: Vec<i64>,
    pub max_gpu_hours: i64,
    pub min_duration_days: u32,
    pub max_duration_days: u32,
    pub form: Vec<Field>,
    /// What organisations that are not confirmed SMEs or start-ups pay per GPU-hour.
    pub price_cents_per_gpu_hour: i64,
    pub decision_working_days: u32,
    pub access_working_days: u32,
    /// Whose holidays the clocks skip (the host's country).
    pub calendar_country: String,
    pub review: Review,
}

impl CallSpec {
    /// A call of `mode` as the EU AI Factories' calls set it, at one site.
    pub fn defaults(mode: Mode, site: &str, country: &str, gpu_hours: i64) -> CallSpec {
        let (decision, access) = mode.default_targets();
        let large = matches!(mode, Mode::LargeScale);
        CallSpec {
            mode,
            eligibility: Rules {
                countries: vec!["EU".into(), "EEA".into(), "associated".into()],
                startup_max_age_years: 5,
                ..Default::default()
            },
            budgets: vec![SiteBudget {
                site: site.into(),
                gpu_hours,
            }],
            cutoffs: vec![],
            max_gpu_hours: match mode {
                Mode::Playground => 500,
                Mode::FastLane => 50_000,
                Mode::LargeScale | Mode::Custom => 1_000_000,
            },
            min_duration_days: 1,
            max_duration_days: match mode {
                Mode::Playground => 90,
                Mode::FastLane => 180,
                Mode::LargeScale | Mode::Custom => 365,
            },
            form: vec![Field {
                name: "abstract".into(),
                label: "What will you do with the GPUs?".into(),
                kind: FieldKind::LongText,
                required: true,
                max_length: Some(3000),
                choices: vec![],
                help: None,
            }],
            price_cents_per_gpu_hour: 0,
            decision_working_days: decision,
            access_working_days: access,
            calendar_country: country.into(),
            review: Review {
                technical_assessment: !matches!(mode, Mode::Playground),
                peer_review: large,
                min_reviewers: if large { 2 } else { 0 },
                criteria: if large {
                    ["excellence", "impact", "feasibility"]
                        .map(|n| Criterion {
                            name: n.into(),
                            weight: 1,
                        })
                        .to_vec()
                } else {
                    vec![]
                },
                max_score: 5,
                blind: false,
                right_to_reply: large,
                review_working_days: 5,
                reply_working_days: 3,
            },
        }
    }

    pub fn steps(&self) -> Steps {
        Steps {
            automatic_award: self.mode == Mode::Playground,
            technical_assessment: self.review.technical_assessment,
            peer_review: self.review.peer_review,
            right_to_reply: self.review.peer_review && self.review.right_to_reply,
        }
    }

    pub fn calendar(&self) -> calendar::Calendar {
        calendar::Calendar::for_country(&self.calendar_country)
    }

    /// The first cut-off at or after `submitted_at`; `None` for continuous calls, or when
    /// every cut-off has passed.
    pub fn round_of(&self, submitted_at: i64) -> Option<i64> {
        self.cutoffs.iter().copied().filter(|c| *c >= submitted_at).min()
    }

    pub fn budget_at(&self, site: &str) -> Option<i64> {
        self.budgets.iter().find(|b| b.site == site).map(|b| b.gpu_hours)
    }

    /// Checks the call's own consistency; `(field, message)` for the first problem.
    pub fn check(&self, known_site: impl Fn(&str) -> bool) -> Result<(), (String, String)> {
        let bad = |f: &str, m: String| Err((f.to_string(), m));
        if self.budgets.is_empty() {
            return bad("budgets", "a call gives GPU-hours at one site or more".into());
        }
        for b in &self.budgets {
            if !known_site(&b.site) {
                return bad("budgets", format!("no site `{}` in this factory", b.site));
            }
            if !(1..=1_000_000_000).contains(&b.gpu_hours) {
                return bad(
                    "budgets",
                    "a site's budget is between 1 and 1,000,000,000 GPU-hours".into(),
                );
            }
        }
        if self.max_gpu_hours < 1 {
            return bad("max_gpu_hours", "at least 1 GPU-hour".into());
        }
        if self.min_duration_days < 1
            || self.max_duration_days < self.min_duration_days
            || self.max_duration_days > 1830
        {
            return bad(
                "max_duration_days",
                "durations run from 1 day to 5 years, minimum first".into(),
            );
        }
        if let Err(m) = countries::check_list(&self.eligibility.countries) {
            return bad("eligibility.countries", m);
        }
        if countries::normalise(&self.calendar_country).is_none() {
            return bad("calendar_country", "a two-letter country code".into());
        }
        if self.price_cents_per_gpu_hour < 0 {
            return bad("price_cents_per_gpu_hour", "a price is not negative".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for f in &self.form {
            let valid_name = !f.name.is_empty()
                && f.name.len() <= 64
                && f.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_name || !names.insert(f.name.as_str()) {
                return bad(
                    "form",
                    format!("field names are unique, letters, digits and `_`: `{}`", f.name),
                );
            }
            if f.kind == FieldKind::Choice && f.choices.is_empty() {
                return bad("form", format!("the choice `{}` lists its choices", f.name));
            }
        }
        let r = &self.review;
        if r.peer_review && (r.min_reviewers == 0 || r.criteria.is_empty()) {
            return bad(
                "review",
                "peer review needs at least one reviewer and one criterion".into(),
            );
        }
        if r.max_score < 2 || r.max_score > 100 {
            return bad("review.max_score", "scores run from 1 to between 2 and 100".into());
        }
        Ok(())
    }

    /// Checks an applicant's answers against the form; `(field, message)` for the first problem.
    pub fn check_answers(
        &self,
        answers: &BTreeMap<String, serde_json::Value>,
        complete: bool,
    ) -> Result<(), (String, String)> {
        use serde_json::Value;
        for name in answers.keys() {
            if !self.form.iter().any(|f| &f.name == name) {
                return Err((format!("answers.{name}"), format!("the form has no question `{name}`")));
            }
        }
        for f in &self.form {
            let key = format!("answers.{}", f.name);
            let answer = answers.get(&f.name).filter(|v| !v.is_null() && v.as_str() != Some(""));
            let Some(v) = answer else {
                if complete && f.required {
                    return Err((key, format!("`{}` is required: {}", f.name, f.label)));
                }
                continue;
            };
            let max = f
                .max_length
                .unwrap_or(if f.kind == FieldKind::LongText { 10_000 } else { 500 }) as usize;
            let ok: Result<(), String> = match (f.kind, v) {
                (FieldKind::Text | FieldKind::LongText, Value::String(s)) if s.chars().count() > max => {
                    Err(format!("at most {max} characters ({} given)", s.chars().count()))
                }
                (FieldKind::Text | FieldKind::LongText, Value::String(_)) => Ok(()),
                (FieldKind::Number, Value::Number(_)) => Ok(()),
                (FieldKind::Boolean, Value::Bool(_)) => Ok(()),
                (FieldKind::Choice, Value::String(s)) if f.choices.contains(s) => Ok(()),
                (FieldKind::Choice, _) => Err(format!("one of: {}", f.choices.join(", "))),
                (FieldKind::Url, Value::String(s))
                    if (s.starts_with("https://") || s.starts_with("http://")) && s.len() <= 2000 =>
                {
                    Ok(())
                }
                (FieldKind::Email, Value::String(s)) if looks_like_email(s) => Ok(()),
                (kind, _) => Err(format!(
                    "expected {}",
                    match kind {
                        FieldKind::Number => "a number",
                        FieldKind::Boolean => "true or false",
                        FieldKind::Url => "an http(s) address",
                        FieldKind::Email => "an e-mail address",
                        _ => "text",
                    }
                )),
            };
            ok.map_err(|m| (key, format!("`{}`: {m}", f.name)))?;
        }
        Ok(())
    }
}

/// A plausible address: something@something.tld, no spaces; the verification e-mail proves it.
pub fn looks_like_email(s: &str) -> bool {
    let s = s.trim();
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && s.len() <= 254
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c == ',' || c == ';')
        && !domain.contains('@')
}

/// A review's weighted score, in thousandths of a point: Σ(score × weight) / Σ weight.
pub fn weighted_score_milli(criteria: &[Criterion], scores: &BTreeMap<String, u32>) -> i64 {
    let (mut total, mut weights) = (0i64, 0i64);
    for c in criteria {
        if let Some(s) = scores.get(&c.name) {
            total += i64::from(*s) * i64::from(c.weight) * 1000;
            weights += i64::from(c.weight);
        }
    }
    if weights == 0 { 0 } else { total / weights }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answers(v: serde_json::Value) -> BTreeMap<String, serde_json::Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_check_and_follow_the_mode() {
        for mode in Mode::ALL {
            let spec = CallSpec::defaults(mode, "it-bologna", "IT", 10_000);
            assert_eq!(spec.check(|s| s == "it-bologna"), Ok(()), "{mode:?}");
            assert!(spec.check(|_| false).is_err());
        }
        let p = CallSpec::defaults(Mode::Playground, "s", "IT", 1);
        assert!(p.steps().automatic_award && !p.steps().technical_assessment);
        let l = CallSpec::defaults(Mode::LargeScale, "s", "IT", 1);
        assert!(l.steps().peer_review && l.steps().right_to_reply && l.review.min_reviewers == 2);
        assert_eq!(Mode::FastLane.default_targets(), (4, 4));
        assert_eq!("fast_lane".parse::<Mode>(), Ok(Mode::FastLane));
    }

    #[test]
    fn rounds_take_the_next_cut_off() {
        let mut spec = CallSpec::defaults(Mode::LargeScale, "s", "IT", 1);
        assert_eq!(spec.round_of(100), None, "continuous");
        spec.cutoffs = vec![300, 100, 200];
        assert_eq!(spec.round_of(50), Some(100));
        assert_eq!(spec.round_of(100), Some(100));
        assert_eq!(spec.round_of(101), Some(200));
        assert_eq!(spec.round_of(301), None);
    }

    #[test]
    fn answers_are_checked_field_by_field() {
        let mut spec = CallSpec::defaults(Mode::FastLane, "s", "IT", 1);
        spec.form.push(Field {
            name: "stack".into(),
            label: "Software".into(),
            kind: FieldKind::Choice,
            required: false,
            max_length: None,
            choices: vec!["pytorch".into(), "jax".into()],
            help: None,
        });
        spec.form.push(Field {
            name: "repo".into(),
            label: "Code".into(),
            kind: FieldKind::Url,
            required: false,
            max_length: None,
            choices: vec![],
            help: None,
        });
        assert!(spec.check(|_| true).is_ok());
        assert!(spec.check_answers(&answers(json!({"abstract": "train"})), true).is_ok());
        assert!(
            spec.check_answers(&answers(json!({})), false).is_ok(),
            "a draft may be incomplete"
        );
        let field = |v| spec.check_answers(&answers(v), true).unwrap_err().0;
        assert_eq!(field(json!({})), "answers.abstract");
        assert_eq!(field(json!({"abstract": ""})), "answers.abstract");
        assert_eq!(field(json!({"abstract": "x".repeat(3001)})), "answers.abstract");
        assert_eq!(field(json!({"abstract": "ok", "stack": "tensorflow"})), "answers.stack");
        assert_eq!(field(json!({"abstract": "ok", "repo": "ftp://x"})), "answers.repo");
        assert_eq!(field(json!({"abstract": "ok", "colour": "blue"})), "answers.colour");
        assert_eq!(field(json!({"abstract": 5})), "answers.abstract");
    }

    #[test]
    fn e_mail_addresses_and_scores() {
        assert!(looks_like_email("ada@nebula.example"));
        for bad in [
            "ada",
            "ada@",
            "@x.io",
            "ada@localhost",
            "a b@x.io",
            "a@x.io,b@y.io",
            "a@.io",
        ] {
            assert!(!looks_like_email(bad), "{bad}");
        }
        let criteria = vec![
            Criterion {
                name: "excellence".into(),
                weight: 2,
            },
            Criterion {
                name: "impact".into(),
                weight: 1,
            },
        ];
        let scores: BTreeMap<String, u32> = [("excellence".to_string(), 5), ("impact".to_string(), 2)].into();
        assert_eq!(weighted_score_milli(&criteria, &scores), 4000);
    }
}
