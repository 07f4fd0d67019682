//! Access policies of restricted entries, in the spirit of ODRL: who may ask (organisation
//! types, countries, sectors), for what (purposes), for how long, and whether the owner
//! decides or a request that meets the rules is granted at once. A request is evaluated
//! rule by rule, each passed or failed with its reason. Pure.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Organisation types that may ask (`startup`, `sme`, `industry`, `research`, `public`);
    /// empty: any.
    #[serde(default)]
    pub org_types: Vec<String>,
    /// Countries of the asking organisation (ISO 3166-1 alpha-2); empty: any.
    #[serde(default)]
    pub countries: Vec<String>,
    /// Sectors of the asking organisation; empty: any.
    #[serde(default)]
    pub sectors: Vec<String>,
    /// Purposes access is given for (`research`, `training`, `evaluation`, `commercial`...);
    /// empty: any.
    #[serde(default)]
    pub purposes: Vec<String>,
    /// The longest grant, in days.
    #[serde(default = "default_days")]
    pub max_days: u32,
    /// Whether the owner decides each request (else one that meets every rule is granted
    /// at once).
    #[serde(default = "yes")]
    pub owner_approves: bool,
}

fn default_days() -> u32 {
    365
}

fn yes() -> bool {
    true
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            org_types: Vec::new(),
            countries: Vec::new(),
            sectors: Vec::new(),
            purposes: Vec::new(),
            max_days: default_days(),
            owner_approves: true,
        }
    }
}

/// Who asks.
#[derive(Debug, Clone)]
pub struct Requester {
    pub org_type: String,
    pub country: String,
    pub sectors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Rule {
    pub rule: String,
    pub passed: bool,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every rule met and the owner does not decide: granted for this many days.
    Grant(u32),
    /// Every rule met; the owner decides.
    Review,
    /// A rule failed: refused, the rules say why.
    Refuse,
}

impl Policy {
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for t in &self.org_types {
            if !["startup", "sme", "industry", "research", "public"].contains(&t.as_str()) {
                out.push(("org_types".into(), format!("`{t}` is not an organisation type")));
            }
        }
        for c in &self.countries {
            if !(c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())) {
                out.push(("countries".into(), format!("`{c}` is not an ISO 3166-1 alpha-2 code")));
            }
        }
        if !(1..=3650).contains(&self.max_days) {
            out.push(("max_days".into(), "from 1 to 3650 days".into()));
        }
        out
    }

    /// Every rule, passed or failed, and what follows.
    pub fn evaluate(&self, who: &Requester, purpose: &str, days: u32) -> (Outcome, Vec<Rule>) {
        let mut rules = Vec::new();
        let mut check = |rule: &str, passed: bool, reason: String| {
            rules.push(Rule {
                rule: rule.into(),
                passed,
                reason,
            })
        };
        let any = |list: &[String]| {
            if list.is_empty() {
                "any".to_string()
            } else {
                list.join(", ")
            }
        };
        check(
            "org-type",
            self.org_types.is_empty() || self.org_types.iter().any(|t| t == &who.org_type),
            format!("`{}` among {}", who.org_type, any(&self.org_types)),
        );
        check(
            "country",
            self.countries.is_empty() || self.countries.iter().any(|c| c.eq_ignore_ascii_case(&who.country)),
            format!("`{}` among {}", who.country, any(&self.countries)),
        );
        check(
            "sector",
            self.sectors.is_empty() || who.sectors.iter().any(|s| self.sectors.contains(s)),
            format!("{:?} meets {}", who.sectors, any(&self.sectors)),
        );
        check(
            "purpose",
            !purpose.trim().is_empty() && (self.purposes.is_empty() || self.purposes.iter().any(|p| p == purpose)),
            format!("`{purpose}` among {}", any(&self.purposes)),
        );
        check(
            "duration",
            (1..=self.max_days).contains(&days),
            format!("{days} days, {} at most", self.max_days),
        );
        let outcome = if rules.iter().any(|r| !r.passed) {
            Outcome::Refuse
        } else if self.owner_approves {
            Outcome::Review
        } else {
            Outcome::Grant(days)
        };
        (outcome, rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup() -> Requester {
        Requester {
            org_type: "startup".into(),
            country: "IT".into(),
            sectors: vec!["robotics".into()],
        }
    }

    #[test]
    fn every_rule_is_reported_and_decides() {
        let open = Policy {
            owner_approves: false,
            ..Policy::default()
        };
        assert_eq!(open.evaluate(&startup(), "research", 30).0, Outcome::Grant(30));
        let strict = Policy {
            org_types: vec!["research".into(), "sme".into()],
            countries: vec!["FI".into()],
            sectors: vec!["legal".into()],
            purposes: vec!["research".into()],
            max_days: 90,
            owner_approves: true,
        };
        let (outcome, rules) = strict.evaluate(&startup(), "commercial", 120);
        assert_eq!(outcome, Outcome::Refuse);
        let failed: Vec<&str> = rules.iter().filter(|r| !r.passed).map(|r| r.rule.as_str()).collect();
        assert_eq!(failed, ["org-type", "country", "sector", "purpose", "duration"]);
        let fits = Requester {
            org_type: "sme".into(),
            country: "fi".into(),
            sectors: vec!["legal".into(), "finance".into()],
        };
        assert_eq!(strict.evaluate(&fits, "research", 90).0, Outcome::Review);
        assert_eq!(
            strict.evaluate(&fits, "research", 0).0,
            Outcome::Refuse,
            "no empty grant"
        );
        assert_eq!(
            open.evaluate(&startup(), " ", 1).0,
            Outcome::Refuse,
            "a purpose is said"
        );
    }

    #[test]
    fn policies_are_checked() {
        let bad = Policy {
            org_types: vec!["robots".into()],
            countries: vec!["ITA".into()],
            max_days: 0,
            ..Policy::default()
        };
        let fields: Vec<String> = bad.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["org_types", "countries", "max_days"]);
        assert!(Policy::default().problems().is_empty());
    }
}
