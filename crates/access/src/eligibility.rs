//! Whether an applicant may apply to a call, rule by rule, each passed or failed with the
//! reason: organisation type, country, sector, the EU SME definition for SMEs and
//! start-ups, a start-up's age, and the applicant's declaration of honour.

use crate::sme::{self, Enterprise};
use crate::{calendar, countries};
use domain::OrgType;
use serde::{Deserialize, Serialize};

/// What a call admits; an empty list admits everyone.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    #[serde(default)]
    pub org_types: Vec<OrgType>,
    /// Two-letter codes and the groups `EU`, `EEA`, `associated`.
    #[serde(default)]
    pub countries: Vec<String>,
    #[serde(default)]
    pub sectors: Vec<String>,
    /// A start-up is an SME younger than this many years.
    #[serde(default = "default_startup_years")]
    pub startup_max_age_years: u32,
    /// Evidence documents (accounts, registry extract) that SMEs and start-ups attach.
    #[serde(default)]
    pub evidence_required: bool,
}

fn default_startup_years() -> u32 {
    5
}

/// The applicant's declaration, kept with the decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Declaration {
    pub org_type: OrgType,
    pub country: String,
    pub sector: String,
    /// The date the enterprise was registered (start-ups), `YYYY-MM-DD`.
    #[serde(default)]
    pub founded_on: Option<String>,
    /// Size figures for the SME test (SMEs and start-ups).
    #[serde(default)]
    pub enterprise: Option<Enterprise>,
    /// The applicant declares on their honour that the above is true.
    pub declared_true: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Outcome {
    /// Stable code: `org-type`, `country`, `sector`, `sme-definition`, `startup-age`,
    /// `evidence`, `declaration`.
    pub rule: String,
    pub passed: bool,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Decision {
    pub eligible: bool,
    /// The SME status found (absent when the applicant is neither SME nor start-up).
    pub sme_status: Option<sme::Category>,
    /// Free of charge: an SME or start-up whose status was confirmed.
    pub free_of_charge: bool,
    pub rules: Vec<Outcome>,
    /// When it was decided (Unix seconds).
    pub decided_at: i64,
}

impl Decision {
    pub fn failed(&self) -> impl Iterator<Item = &Outcome> {
        self.rules.iter().filter(|r| !r.passed)
    }
}

fn outcome(rule: &str, passed: bool, reason: impl Into<String>) -> Outcome {
    Outcome {
        rule: rule.into(),
        passed,
        reason: reason.into(),
    }
}

fn listing(items: &[String]) -> String {
    items.join(", ")
}

/// Decides `declaration` against `rules` on `today` (Unix seconds), with the number of
/// evidence documents attached.
pub fn decide(rules: &Rules, d: &Declaration, evidence_documents: usize, now: i64) -> Decision {
    let mut out = Vec::new();
    let types: Vec<String> = rules.org_types.iter().map(|t| t.to_string()).collect();
    out.push(if rules.org_types.is_empty() || rules.org_types.contains(&d.org_type) {
        outcome("org-type", true, format!("{} organisations may apply", d.org_type))
    } else {
        outcome(
            "org-type",
            false,
            format!(
                "the call is open to {} organisations, not {}",
                listing(&types),
                d.org_type
            ),
        )
    });
    out.push(
        if rules.countries.is_empty() || countries::listed(&rules.countries, &d.country) {
            outcome(
                "country",
                true,
                format!("{} is an eligible country", d.country.to_ascii_uppercase()),
            )
        } else {
            outcome(
                "country",
                false,
                format!(
                    "the call is open to {}; {} is not among them",
                    listing(&rules.countries),
                    d.country.to_ascii_uppercase()
                ),
            )
        },
    );
    let sector_ok = rules.sectors.is_empty() || rules.sectors.iter().any(|s| s.eq_ignore_ascii_case(d.sector.trim()));
    out.push(if sector_ok {
        outcome("sector", true, format!("the {} sector is eligible", d.sector))
    } else {
        outcome(
            "sector",
            false,
            format!(
                "the call is open to the sectors {}; not {}",
                listing(&rules.sectors),
                d.sector
            ),
        )
    });

    let claims_sme = matches!(d.org_type, OrgType::Sme | OrgType::Startup);
    let mut sme_status = None;
    let mut sme_confirmed = false;
    if claims_sme {
        match d.enterprise.as_ref().and_then(sme::assess) {
            None => out.push(outcome(
                "sme-definition",
                false,
                "SMEs and start-ups give their staff (annual work units), turnover and balance sheet for at least their last closed year",
            )),
            Some(a) => {
                sme_status = Some(a.status);
                sme_confirmed = a.is_sme();
                let verdict = if sme_confirmed {
                    format!("an SME ({} enterprise) under Recommendation 2003/361/EC", a.status.as_str())
                } else {
                    "not an SME under Recommendation 2003/361/EC".to_string()
                };
                out.push(outcome("sme-definition", sme_confirmed, format!("{verdict}: {}", a.explanation)));
            }
        }
    }
    if d.org_type == OrgType::Startup {
        out.push(startup_age(rules, d, now));
    }
    if claims_sme && rules.evidence_required {
        out.push(if evidence_documents > 0 {
            outcome("evidence", true, format!("{evidence_documents} evidence document(s) attached"))
        } else {
            outcome(
                "evidence",
                false,
                "the call asks SMEs and start-ups for evidence of their size (annual accounts, a registry extract): attach a document",
            )
        });
    }
    out.push(if d.declared_true {
        outcome("declaration", true, "the applicant declared the information true")
    } else {
        outcome(
            "declaration",
            false,
            "the applicant must declare on their honour that the information is true (`declared_true`)",
        )
    });
    let eligible = out.iter().all(|o| o.passed);
    Decision {
        eligible,
        sme_status,
        free_of_charge: sme_confirmed,
        rules: out,
        decided_at: now,
    }
}

fn startup_age(rules: &Rules, d: &Declaration, now: i64) -> Outcome {
    let Some(founded) = d.founded_on.as_deref() else {
        return outcome(
            "startup-age",
            false,
            "a start-up gives the date it was registered (`founded_on`)",
        );
    };
    let Ok(founded) = founded.parse::<jiff::civil::Date>() else {
        return outcome("startup-age", false, format!("`{founded}` is not a date (YYYY-MM-DD)"));
    };
    let today = calendar::utc_date(now);
    let limit = i16::try_from(rules.startup_max_age_years).unwrap_or(i16::MAX);
    let Ok(anniversary) = founded.checked_add(jiff::Span::new().years(limit)) else {
        return outcome("startup-age", true, "registered within the limit");
    };
    if founded > today {
        outcome(
            "startup-age",
            false,
            format!("registered on {founded}, which is in the future"),
        )
    } else if today < anniversary {
        outcome(
            "startup-age",
            true,
            format!("registered on {founded}, less than {limit} years ago"),
        )
    } else {
        outcome(
            "startup-age",
            false,
            format!("registered on {founded}: a start-up is younger than {limit} years (since {anniversary})"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sme::YearFigures;
    use jiff::civil::date;

    fn now() -> i64 {
        calendar::start_of(date(2026, 11, 30)) + 12 * 3600
    }

    fn startup() -> Declaration {
        Declaration {
            org_type: OrgType::Startup,
            country: "IT".into(),
            sector: "robotics".into(),
            founded_on: Some("2023-03-01".into()),
            enterprise: Some(Enterprise {
                years: vec![YearFigures {
                    year: 2025,
                    staff_awu_milli: 12_000,
                    turnover_eur: 900_000,
                    balance_sheet_eur: 700_000,
                }],
                ..Default::default()
            }),
            declared_true: true,
        }
    }

    fn rules() -> Rules {
        Rules {
            org_types: vec![OrgType::Startup, OrgType::Sme],
            countries: vec!["EU".into(), "EEA".into()],
            sectors: vec![],
            startup_max_age_years: 5,
            evidence_required: false,
        }
    }

    fn failed(d: &Decision) -> Vec<&str> {
        d.failed().map(|o| o.rule.as_str()).collect()
    }

    #[test]
    fn an_eligible_start_up_passes_every_rule_with_reasons() {
        let d = decide(&rules(), &startup(), 0, now());
        assert!(d.eligible, "{d:?}");
        assert!(d.free_of_charge);
        assert_eq!(d.sme_status, Some(sme::Category::Small));
        let codes: Vec<&str> = d.rules.iter().map(|o| o.rule.as_str()).collect();
        assert_eq!(
            codes,
            [
                "org-type",
                "country",
                "sector",
                "sme-definition",
                "startup-age",
                "declaration"
            ]
        );
        assert!(d.rules.iter().all(|o| !o.reason.is_empty()));
        assert!(d.rules[3].reason.contains("small enterprise"), "{}", d.rules[3].reason);
    }

    #[test]
    fn each_rule_fails_on_its_own() {
        let r = rules();
        let mut industry = startup();
        industry.org_type = OrgType::Industry;
        let d = decide(&r, &industry, 0, now());
        assert_eq!(failed(&d), ["org-type"]);
        assert!(!d.free_of_charge, "industry pays");
        assert!(d.rules[0].reason.contains("startup, sme"), "{}", d.rules[0].reason);

        let mut swiss = startup();
        swiss.country = "CH".into();
        assert_eq!(failed(&decide(&r, &swiss, 0, now())), ["country"]);
        let mut with_associated = r.clone();
        with_associated.countries.push("associated".into());
        assert!(decide(&with_associated, &swiss, 0, now()).eligible);

        let mut sectors = r.clone();
        sectors.sectors = vec!["health".into(), "Robotics".into()];
        assert!(
            decide(&sectors, &startup(), 0, now()).eligible,
            "sectors match without case"
        );
        sectors.sectors = vec!["health".into()];
        assert_eq!(failed(&decide(&sectors, &startup(), 0, now())), ["sector"]);

        let mut big = startup();
        big.enterprise.as_mut().unwrap().years[0].staff_awu_milli = 300_000;
        let d = decide(&r, &big, 0, now());
        assert_eq!(failed(&d), ["sme-definition"]);
        assert!(!d.free_of_charge);

        let mut no_figures = startup();
        no_figures.enterprise = None;
        assert_eq!(failed(&decide(&r, &no_figures, 0, now())), ["sme-definition"]);

        let mut undeclared = startup();
        undeclared.declared_true = false;
        assert_eq!(failed(&decide(&r, &undeclared, 0, now())), ["declaration"]);

        let mut evidence = r.clone();
        evidence.evidence_required = true;
        assert_eq!(failed(&decide(&evidence, &startup(), 0, now())), ["evidence"]);
        assert!(decide(&evidence, &startup(), 1, now()).eligible);
    }

    #[test]
    fn start_up_age_from_both_sides() {
        let r = rules();
        for (founded, passes) in [
            ("2021-12-01", true),
            ("2021-11-30", false),
            ("2021-11-29", false),
            ("2026-11-30", true),
            ("2026-12-01", false),
            ("30/11/2021", false),
        ] {
            let mut d = startup();
            d.founded_on = Some(founded.into());
            let decision = decide(&r, &d, 0, now());
            assert_eq!(decision.eligible, passes, "{founded}: {:?}", decision.rules);
        }
        let mut unknown = startup();
        unknown.founded_on = None;
        assert_eq!(failed(&decide(&r, &unknown, 0, now())), ["startup-age"]);
        let mut sme = startup();
        sme.org_type = OrgType::Sme;
        sme.founded_on = Some("1990-01-01".into());
        assert!(decide(&r, &sme, 0, now()).eligible, "an SME has no age limit");
    }
}

/// The rule that a new award waits for the final reports of the applicant's earlier awards
/// that have ended (`missing`: their allocations).
pub fn final_reports(missing: &[String]) -> Outcome {
    if missing.is_empty() {
        outcome(
            "final-report",
            true,
            "every ended allocation of earlier awards has its final report",
        )
    } else {
        outcome(
            "final-report",
            false,
            format!(
                "send the final report (outputs: papers, models, datasets) of {} first: aifactory alloc report ID",
                missing.join(", ")
            ),
        )
    }
}

#[cfg(test)]
mod final_report_tests {
    #[test]
    fn missing_reports_fail_the_rule() {
        assert!(super::final_reports(&[]).passed);
        let r = super::final_reports(&["alc_1".into()]);
        assert!(!r.passed && r.reason.contains("alc_1"), "{r:?}");
    }
}
