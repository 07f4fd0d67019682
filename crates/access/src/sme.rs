//! The EU definition of micro, small and medium-sized enterprises (Commission
//! Recommendation 2003/361/EC, Annex, Articles 2 to 6).
//!
//! - Ceilings (Art. 2): a *medium* enterprise has fewer than 250 staff and a turnover of at
//!   most €50 m *or* a balance-sheet total of at most €43 m; *small*: fewer than 50 and
//!   €10 m or €10 m; *micro*: fewer than 10 and €2 m or €2 m. Staff is counted in annual
//!   work units (AWU), here in thousandths.
//! - Partner and linked enterprises (Art. 3, 6): figures of an enterprise holding, or held
//!   by, 25 % to 50 % of the capital or voting rights (a *partner*) are added in proportion
//!   to that share; of one holding or held by more than 50 % (*linked*), in full; below
//!   25 % the enterprise is autonomous of it and nothing is added.
//! - Public control (Art. 3(4)): an enterprise 25 % or more of whose capital or voting
//!   rights are held by public bodies is not an SME.
//! - The two-year rule (Art. 4(2)): crossing a ceiling changes the status only when it
//!   happens in two consecutive financial years. The earliest year given is taken as the
//!   status held; a new enterprise with one (estimated) year has that year's category.

use serde::{Deserialize, Serialize};

/// Shares are given in basis points (1 % = 100).
pub const PARTNER_FROM_BP: u32 = 2_500;
pub const LINKED_ABOVE_BP: u32 = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    Micro,
    Small,
    Medium,
    /// Above the medium ceilings: not an SME.
    Large,
}

impl Category {
    pub fn is_sme(self) -> bool {
        self != Category::Large
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Micro => "micro",
            Category::Small => "small",
            Category::Medium => "medium",
            Category::Large => "large",
        }
    }
}

/// One closed financial year of an enterprise (or, for a new one, bona fide estimates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct YearFigures {
    pub year: i16,
    /// Staff in thousandths of an annual work unit (12.5 AWU = 12500).
    pub staff_awu_milli: i64,
    pub turnover_eur: i64,
    pub balance_sheet_eur: i64,
}

/// An enterprise the applicant holds shares in, or that holds shares in the applicant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Related {
    pub name: String,
    /// The larger of the capital and voting-rights shares, either way, in basis points.
    pub share_bp: u32,
    /// Its figures for the same years as the applicant's (a year it lacks adds nothing).
    pub years: Vec<YearFigures>,
}

/// What the applicant declares about its size.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Enterprise {
    /// Its own figures, one entry per year (at least the last closed one).
    pub years: Vec<YearFigures>,
    #[serde(default)]
    pub related: Vec<Related>,
    /// Share held by public bodies (state, regions, public universities...), in basis points.
    #[serde(default)]
    pub public_share_bp: u32,
}

/// How a related enterprise counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Autonomous,
    Partner,
    Linked,
}

pub fn relation(share_bp: u32) -> Relation {
    if share_bp > LINKED_ABOVE_BP {
        Relation::Linked
    } else if share_bp >= PARTNER_FROM_BP {
        Relation::Partner
    } else {
        Relation::Autonomous
    }
}

/// The applicant's figures for `year` with its partners' added in proportion and its
/// linked enterprises' in full (rounded to the nearest unit).
pub fn aggregate(enterprise: &Enterprise, own: &YearFigures) -> YearFigures {
    let mut total = *own;
    for r in &enterprise.related {
        let fraction_bp = match relation(r.share_bp) {
            Relation::Autonomous => continue,
            Relation::Partner => i128::from(r.share_bp),
            Relation::Linked => 10_000,
        };
        let Some(theirs) = r.years.iter().find(|y| y.year == own.year) else {
            continue;
        };
        let part = |v: i64| ((i128::from(v) * fraction_bp + 5_000) / 10_000) as i64;
        total.staff_awu_milli += part(theirs.staff_awu_milli);
        total.turnover_eur += part(theirs.turnover_eur);
        total.balance_sheet_eur += part(theirs.balance_sheet_eur);
    }
    total
}

/// Ceilings: (category, staff below, turnover at most, balance sheet at most).
pub const CEILINGS: [(Category, i64, i64, i64); 3] = [
    (Category::Micro, 10_000, 2_000_000, 2_000_000),
    (Category::Small, 50_000, 10_000_000, 10_000_000),
    (Category::Medium, 250_000, 50_000_000, 43_000_000),
];

/// The category of one year's (aggregated) figures.
pub fn category(f: &YearFigures) -> Category {
    CEILINGS
        .iter()
        .find(|(_, staff, turnover, balance)| {
            f.staff_awu_milli < *staff && (f.turnover_eur <= *turnover || f.balance_sheet_eur <= *balance)
        })
        .map_or(Category::Large, |c| c.0)
}

/// The status after a sequence of yearly categories, oldest first, under the two-year rule.
pub fn status(categories: &[Category]) -> Option<Category> {
    let mut held = *categories.first()?;
    for pair in categories.windows(2) {
        let (before, now) = (pair[0], pair[1]);
        // The status moves only as far as both years went past it.
        if before > held && now > held {
            held = before.min(now);
        } else if before < held && now < held {
            held = before.max(now);
        }
    }
    Some(held)
}

/// The outcome of the SME test with the figures behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Assessment {
    pub status: Category,
    /// Each year's aggregated figures and category, oldest first.
    pub years: Vec<(YearFigures, Category)>,
    pub publicly_controlled: bool,
    pub explanation: String,
}

impl Assessment {
    pub fn is_sme(&self) -> bool {
        self.status.is_sme() && !self.publicly_controlled
    }
}

pub fn assess(enterprise: &Enterprise) -> Option<Assessment> {
    let mut own = enterprise.years.clone();
    own.sort_by_key(|y| y.year);
    own.dedup_by_key(|y| y.year);
    let years: Vec<(YearFigures, Category)> = own
        .iter()
        .map(|y| {
            let total = aggregate(enterprise, y);
            (total, category(&total))
        })
        .collect();
    let cats: Vec<Category> = years.iter().map(|(_, c)| *c).collect();
    let status = status(&cats)?;
    let publicly_controlled = enterprise.public_share_bp >= PARTNER_FROM_BP;
    let (last, last_cat) = years.last()?;
    let mut explanation = format!(
        "{}: {} AWU, turnover €{}, balance sheet €{}",
        last.year,
        awu(last.staff_awu_milli),
        thousands(last.turnover_eur),
        thousands(last.balance_sheet_eur)
    );
    let counted: Vec<String> = enterprise
        .related
        .iter()
        .filter_map(|r| match relation(r.share_bp) {
            Relation::Autonomous => None,
            Relation::Partner => Some(format!("partner {} added at {}", r.name, percent(r.share_bp))),
            Relation::Linked => Some(format!("linked {} added in full", r.name)),
        })
        .collect();
    if !counted.is_empty() {
        explanation += &format!(" ({})", counted.join("; "));
    }
    explanation += &format!(", a {} enterprise that year", last_cat.as_str());
    if *last_cat != status {
        explanation += &format!(
            "; the status stays {} because the ceilings were not crossed in two consecutive years",
            status.as_str()
        );
    }
    if publicly_controlled {
        explanation += &format!(
            "; {} of it is held by public bodies (25 % or more), so it is not an SME",
            percent(enterprise.public_share_bp)
        );
    }
    Some(Assessment {
        status,
        years,
        publicly_controlled,
        explanation,
    })
}

fn awu(milli: i64) -> String {
    let s = format!("{}.{:03}", milli / 1000, milli % 1000);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn percent(bp: u32) -> String {
    let s = format!("{}.{:02}", bp / 100, bp % 100);
    format!("{} %", s.trim_end_matches('0').trim_end_matches('.'))
}

fn thousands(v: i64) -> String {
    let digits = v.abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if v < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Category::*;

    fn y(year: i16, staff_awu_milli: i64, turnover_eur: i64, balance_sheet_eur: i64) -> YearFigures {
        YearFigures {
            year,
            staff_awu_milli,
            turnover_eur,
            balance_sheet_eur,
        }
    }

    /// Every ceiling from both sides: staff just under and at it, money at and just over it,
    /// and the "or" between turnover and balance sheet.
    #[test]
    fn ceilings_from_both_sides() {
        let m = 1_000_000;
        let cases = [
            (y(0, 9_999, 2 * m, 2 * m), Micro),
            (y(0, 10_000, 2 * m, 2 * m), Small),
            (y(0, 9_999, 2 * m + 1, 2 * m + 1), Small),
            (y(0, 9_999, 2 * m + 1, 2 * m), Micro),
            (y(0, 9_999, 2 * m, 2 * m + 1), Micro),
            (y(0, 49_999, 10 * m, 10 * m), Small),
            (y(0, 50_000, 10 * m, 10 * m), Medium),
            (y(0, 49_999, 10 * m + 1, 10 * m + 1), Medium),
            (y(0, 49_999, 10 * m + 1, 10 * m), Small),
            (y(0, 49_999, 10 * m, 10 * m + 1), Small),
            (y(0, 249_999, 50 * m, 43 * m), Medium),
            (y(0, 250_000, 50 * m, 43 * m), Large),
            (y(0, 249_999, 50 * m + 1, 43 * m + 1), Large),
            (y(0, 249_999, 50 * m + 1, 43 * m), Medium),
            (y(0, 249_999, 50 * m, 43 * m + 1), Medium),
            (y(0, 249_999, 60 * m, 43 * m), Medium),
            (y(0, 0, 0, 0), Micro),
        ];
        for (figures, expected) in cases {
            assert_eq!(category(&figures), expected, "{figures:?}");
        }
    }

    #[test]
    fn shares_classify_partners_and_linked_enterprises() {
        assert_eq!(relation(2_499), Relation::Autonomous);
        assert_eq!(relation(2_500), Relation::Partner);
        assert_eq!(relation(5_000), Relation::Partner);
        assert_eq!(relation(5_001), Relation::Linked);
    }

    #[test]
    fn partners_add_in_proportion_and_linked_in_full() {
        let e = Enterprise {
            years: vec![y(2025, 30_000, 6_000_000, 5_000_000)],
            related: vec![
                Related {
                    name: "Partner".into(),
                    share_bp: 3_000,
                    years: vec![y(2025, 40_000, 10_000_000, 8_000_000)],
                },
                Related {
                    name: "Linked".into(),
                    share_bp: 6_000,
                    years: vec![y(2025, 5_500, 1_000_000, 1_000_000)],
                },
                Related {
                    name: "Autonomous".into(),
                    share_bp: 2_400,
                    years: vec![y(2025, 1_000_000, 1_000_000_000, 1_000_000_000)],
                },
            ],
            public_share_bp: 0,
        };
        let total = aggregate(&e, &e.years[0]);
        // 30 + 30 % of 40 + 5.5 = 47.5 AWU; 6 + 3 + 1 = €10 m; 5 + 2.4 + 1 = €8.4 m.
        assert_eq!(total, y(2025, 47_500, 10_000_000, 8_400_000));
        assert_eq!(category(&total), Small);
        // A partner's share at 50 % tips staff over the small ceiling: 30 + 20 + 5.5 = 55.5.
        let mut bigger = e.clone();
        bigger.related[0].share_bp = 5_000;
        let a = assess(&bigger).unwrap();
        assert_eq!(a.status, Medium);
        assert!(
            a.explanation.contains("partner Partner added at 50 %"),
            "{}",
            a.explanation
        );
        assert!(
            a.explanation.contains("linked Linked added in full"),
            "{}",
            a.explanation
        );
        // Above 50 % the partner becomes linked and counts in full: 30 + 40 + 5.5 = 75.5.
        bigger.related[0].share_bp = 5_001;
        assert_eq!(aggregate(&bigger, &bigger.years[0]).staff_awu_milli, 75_500);
    }

    #[test]
    fn the_two_year_rule() {
        assert_eq!(status(&[]), None);
        assert_eq!(
            status(&[Small]),
            Some(Small),
            "a new enterprise has its one year's category"
        );
        assert_eq!(status(&[Small, Medium]), Some(Small), "one year over keeps the status");
        assert_eq!(
            status(&[Small, Medium, Medium]),
            Some(Medium),
            "two years over change it"
        );
        assert_eq!(
            status(&[Small, Medium, Small, Medium]),
            Some(Small),
            "alternating never changes it"
        );
        assert_eq!(status(&[Medium, Small, Small]), Some(Small), "downwards too");
        assert_eq!(
            status(&[Medium, Large, Large]),
            Some(Large),
            "losing SME status takes two years"
        );
        assert_eq!(status(&[Medium, Large]), Some(Medium));
        assert_eq!(
            status(&[Small, Medium, Large]),
            Some(Medium),
            "the small ceilings were crossed twice, the medium ones once: the status goes as far as both years went"
        );
        assert_eq!(status(&[Micro, Micro, Large]), Some(Micro));
        assert_eq!(status(&[Large, Micro, Small]), Some(Small));

        let e = Enterprise {
            years: vec![
                y(2025, 260_000, 60_000_000, 50_000_000),
                y(2024, 200_000, 30_000_000, 20_000_000),
            ],
            ..Default::default()
        };
        let a = assess(&e).unwrap();
        assert_eq!(a.status, Medium, "years are sorted; 2025 alone is over the ceilings");
        assert!(a.is_sme());
        assert!(a.explanation.contains("two consecutive years"), "{}", a.explanation);
    }

    #[test]
    fn public_control_disqualifies() {
        let mut e = Enterprise {
            years: vec![y(2025, 5_000, 100_000, 100_000)],
            public_share_bp: 2_499,
            ..Default::default()
        };
        assert!(assess(&e).unwrap().is_sme());
        e.public_share_bp = 2_500;
        let a = assess(&e).unwrap();
        assert_eq!(a.status, Micro);
        assert!(!a.is_sme());
        assert!(a.explanation.contains("public bodies"), "{}", a.explanation);
        assert_eq!(assess(&Enterprise::default()), None);
    }
}
