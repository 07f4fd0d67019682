//! Working days: weekends and each country's public holidays excluded, for the access
//! programme's service-level clocks ("access within 2 working days").
//!
//! Days are UTC calendar days. A clock started on day D is due at the end of the N-th
//! working day after D: a playground application submitted on a Friday with a 2-day target
//! is due at the end of Tuesday, or of Wednesday when Monday is a holiday.

use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use std::collections::BTreeMap;

/// How a holiday's date is found in a given year.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// The same month and day every year.
    Fixed(i8, i8),
    /// Days after Western (Gregorian) Easter Sunday: -2 Good Friday, 1 Easter Monday,
    /// 39 Ascension, 50 Whit Monday.
    Easter(i16),
    /// The given weekday in a range of days of a month (Midsummer Eve: the Friday of 19-25 June).
    WeekdayIn(Weekday, i8, i8, i8),
}

type Holiday = (&'static str, Rule);

use Rule::{Easter, Fixed, WeekdayIn};

/// National public holidays that fall on working days, for the countries that host
/// factories today; others count weekends only unless the factory configures dates.
const RULES: &[(&str, &[Holiday])] = &[
    (
        "DE",
        &[
            ("New Year's Day", Fixed(1, 1)),
            ("Good Friday", Easter(-2)),
            ("Easter Monday", Easter(1)),
            ("Labour Day", Fixed(5, 1)),
            ("Ascension Day", Easter(39)),
            ("Whit Monday", Easter(50)),
            ("Day of German Unity", Fixed(10, 3)),
            ("Christmas Day", Fixed(12, 25)),
            ("St Stephen's Day", Fixed(12, 26)),
        ],
    ),
    (
        "ES",
        &[
            ("New Year's Day", Fixed(1, 1)),
            ("Epiphany", Fixed(1, 6)),
            ("Good Friday", Easter(-2)),
            ("Labour Day", Fixed(5, 1)),
            ("Assumption", Fixed(8, 15)),
            ("National Day", Fixed(10, 12)),
            ("All Saints' Day", Fixed(11, 1)),
            ("Constitution Day", Fixed(12, 6)),
            ("Immaculate Conception", Fixed(12, 8)),
            ("Christmas Day", Fixed(12, 25)),
        ],
    ),
    (
        "FI",
        &[
            ("New Year's Day", Fixed(1, 1)),
            ("Epiphany", Fixed(1, 6)),
            ("Good Friday", Easter(-2)),
            ("Easter Monday", Easter(1)),
            ("May Day", Fixed(5, 1)),
            ("Ascension Day", Easter(39)),
            ("Midsummer Eve", WeekdayIn(Weekday::Friday, 6, 19, 25)),
            ("Independence Day", Fixed(12, 6)),
            ("Christmas Eve", Fixed(12, 24)),
            ("Christmas Day", Fixed(12, 25)),
            ("St Stephen's Day", Fixed(12, 26)),
        ],
    ),
    (
        "FR",
        &[
            ("New Year's Day", Fixed(1, 1)),
            ("Easter Monday", Easter(1)),
            ("Labour Day", Fixed(5, 1)),
            ("Victory in Europe Day", Fixed(5, 8)),
            ("Ascension Day", Easter(39)),
            ("Whit Monday", Easter(50)),
            ("Bastille Day", Fixed(7, 14)),
            ("Assumption", Fixed(8, 15)),
            ("All Saints' Day", Fixed(11, 1)),
            ("Armistice Day", Fixed(11, 11)),
            ("Christmas Day", Fixed(12, 25)),
        ],
    ),
    (
        "IT",
        &[
            ("New Year's Day", Fixed(1, 1)),
            ("Epiphany", Fixed(1, 6)),
            ("Easter Monday", Easter(1)),
            ("Liberation Day", Fixed(4, 25)),
            ("Labour Day", Fixed(5, 1)),
            ("Republic Day", Fixed(6, 2)),
            ("Assumption", Fixed(8, 15)),
            ("All Saints' Day", Fixed(11, 1)),
            ("Immaculate Conception", Fixed(12, 8)),
            ("Christmas Day", Fixed(12, 25)),
            ("St Stephen's Day", Fixed(12, 26)),
        ],
    ),
    (
        "SE",
        &[
            ("New Year's Day", Fixed(1, 1)),
            ("Epiphany", Fixed(1, 6)),
            ("Good Friday", Easter(-2)),
            ("Easter Monday", Easter(1)),
            ("May Day", Fixed(5, 1)),
            ("Ascension Day", Easter(39)),
            ("National Day", Fixed(6, 6)),
            ("Midsummer Eve", WeekdayIn(Weekday::Friday, 6, 19, 25)),
            ("Christmas Eve", Fixed(12, 24)),
            ("Christmas Day", Fixed(12, 25)),
            ("St Stephen's Day", Fixed(12, 26)),
            ("New Year's Eve", Fixed(12, 31)),
        ],
    ),
];

/// Western Easter Sunday of a Gregorian year (the anonymous Gregorian algorithm of
/// Meeus, Jones and Butcher).
pub fn easter_sunday(year: i16) -> Date {
    let y = i32::from(year);
    let a = y % 19;
    let b = y / 100;
    let c = y % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    Date::new(year, month as i8, day as i8).expect("Easter falls in March or April")
}

/// One country's working days: its holiday rules and any dates the factory adds.
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    country: String,
    rules: &'static [Holiday],
    extra: BTreeMap<Date, String>,
}

impl Calendar {
    /// The built-in calendar of a country (weekends only for one without rules).
    pub fn for_country(country: &str) -> Calendar {
        let country = crate::countries::normalise(country).unwrap_or_default();
        let rules = RULES.iter().find(|(c, _)| *c == country).map_or(&[][..], |(_, r)| *r);
        Calendar {
            country,
            rules,
            extra: BTreeMap::new(),
        }
    }

    /// Adds holidays of the factory's own (regional days, a closure between Christmas and New Year).
    pub fn with_extra(mut self, dates: impl IntoIterator<Item = (Date, String)>) -> Calendar {
        self.extra.extend(dates);
        self
    }

    pub fn country(&self) -> &str {
        &self.country
    }

    /// Whether the country has built-in holiday rules.
    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The holiday on `date`, by name.
    pub fn holiday(&self, date: Date) -> Option<&str> {
        if let Some(name) = self.extra.get(&date) {
            return Some(name);
        }
        self.rules
            .iter()
            .find(|(_, rule)| rule_date(*rule, date.year()) == Some(date))
            .map(|(name, _)| *name)
    }

    pub fn is_working_day(&self, date: Date) -> bool {
        !matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) && self.holiday(date).is_none()
    }

    /// Holidays of a year that fall on working days of the week, in date order.
    pub fn holidays(&self, year: i16) -> Vec<(Date, String)> {
        let mut days: Vec<(Date, String)> = self
            .rules
            .iter()
            .filter_map(|(name, rule)| Some((rule_date(*rule, year)?, name.to_string())))
            .chain(
                self.extra
                    .iter()
                    .filter(|(d, _)| d.year() == year)
                    .map(|(d, n)| (*d, n.clone())),
            )
            .filter(|(d, _)| !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday))
            .collect();
        days.sort();
        days.dedup_by(|a, b| a.0 == b.0);
        days
    }

    /// The end (last second, UTC) of the `n`-th working day after the day of `start`.
    pub fn due(&self, start: i64, n: u32) -> i64 {
        let mut day = utc_date(start);
        let mut left = n;
        while left > 0 {
            day = next_day(day);
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        start_of(next_day(day)) - 1
    }

    /// Working days after the day of `start` up to and including the day of `now`.
    pub fn working_days_between(&self, start: i64, now: i64) -> u32 {
        let (mut day, last) = (utc_date(start), utc_date(now));
        let mut count = 0;
        while day < last {
            day = next_day(day);
            if self.is_working_day(day) {
                count += 1;
            }
        }
        count
    }
}

fn rule_date(rule: Rule, year: i16) -> Option<Date> {
    match rule {
        Fixed(month, day) => Date::new(year, month, day).ok(),
        Easter(offset) => easter_sunday(year).checked_add(jiff::Span::new().days(offset)).ok(),
        WeekdayIn(weekday, month, from, to) => (from..=to)
            .filter_map(|d| Date::new(year, month, d).ok())
            .find(|d| d.weekday() == weekday),
    }
}

fn next_day(d: Date) -> Date {
    d.tomorrow().unwrap_or(d)
}

/// The UTC calendar day of a Unix time.
pub fn utc_date(unix: i64) -> Date {
    Timestamp::from_second(unix)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned(TimeZone::UTC)
        .date()
}

/// Midnight UTC at the start of `date`, in Unix seconds.
pub fn start_of(date: Date) -> i64 {
    date.to_zoned(TimeZone::UTC).map_or(0, |z| z.timestamp().as_second())
}

/// A service-level clock as an application shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Clock {
    /// Working days the call promises.
    pub target_working_days: u32,
    /// Working days counted so far (until `stopped_at` once it stopped).
    pub elapsed_working_days: u32,
    pub started_at: i64,
    pub due_at: i64,
    pub stopped_at: Option<i64>,
    /// Stopped after it was due, or still running past it.
    pub breached: bool,
}

impl Clock {
    pub fn read(calendar: &Calendar, target: u32, started_at: i64, stopped_at: Option<i64>, now: i64) -> Clock {
        let due_at = calendar.due(started_at, target);
        let until = stopped_at.unwrap_or(now);
        Clock {
            target_working_days: target,
            elapsed_working_days: calendar.working_days_between(started_at, until),
            started_at,
            due_at,
            stopped_at,
            breached: until > due_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn at(d: Date, h: i8) -> i64 {
        start_of(d) + i64::from(h) * 3600
    }

    #[test]
    fn easter_dates_match_the_published_ones() {
        for (y, m, d) in [
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2019, 4, 21),
            (2038, 4, 25),
        ] {
            assert_eq!(easter_sunday(y), date(y, m, d), "{y}");
        }
    }

    #[test]
    fn holidays_by_country() {
        let it = Calendar::for_country("IT");
        assert_eq!(it.holiday(date(2026, 4, 6)), Some("Easter Monday"));
        assert_eq!(it.holiday(date(2026, 6, 2)), Some("Republic Day"));
        assert!(!it.is_working_day(date(2026, 12, 8)));
        assert!(it.is_working_day(date(2026, 12, 9)));
        let fi = Calendar::for_country("fi");
        assert_eq!(fi.holiday(date(2026, 6, 19)), Some("Midsummer Eve"));
        assert_eq!(fi.holiday(date(2027, 6, 25)), Some("Midsummer Eve"));
        assert_eq!(fi.holiday(date(2026, 5, 14)), Some("Ascension Day"));
        assert_eq!(fi.holiday(date(2026, 4, 3)), Some("Good Friday"));
        let de = Calendar::for_country("DE");
        assert_eq!(de.holiday(date(2026, 5, 25)), Some("Whit Monday"));
        let nowhere = Calendar::for_country("MT");
        assert!(!nowhere.has_rules());
        assert!(nowhere.is_working_day(date(2026, 12, 25)));
        let extra = nowhere.with_extra([(date(2026, 12, 25), "Christmas Day".to_string())]);
        assert!(!extra.is_working_day(date(2026, 12, 25)));
        // 25 April, 15 August and 26 December 2026 are Saturdays, 1 November a Sunday.
        assert_eq!(Calendar::for_country("IT").holidays(2026).len(), 7);
    }

    /// Hand-computed: each case's due day and the working days counted, across weekends
    /// and holidays.
    #[test]
    fn clocks_across_weekends_and_holidays() {
        let it = Calendar::for_country("IT");
        let fi = Calendar::for_country("FI");
        let cases: &[(&Calendar, Date, u32, Date)] = &[
            // Monday, 2 days: Tuesday, Wednesday.
            (&it, date(2026, 11, 30), 2, date(2026, 12, 2)),
            // Friday, 2 days: Monday, Tuesday.
            (&it, date(2026, 11, 27), 2, date(2026, 12, 1)),
            // Saturday, 2 days: Monday, Tuesday.
            (&it, date(2026, 11, 28), 2, date(2026, 12, 1)),
            // Thursday 3 Dec 2026 in Italy, 4 days: Fri 4, Mon 7, (Tue 8 Immaculate
            // Conception), Wed 9, Thu 10.
            (&it, date(2026, 12, 3), 4, date(2026, 12, 10)),
            // Wednesday 23 Dec 2026, 2 days: Thu 24, (Fri 25, Sat, Sun), (Mon 28 is not a
            // holiday in Italy) Mon 28.
            (&it, date(2026, 12, 23), 2, date(2026, 12, 28)),
            // The same in Finland: (Thu 24 Christmas Eve, Fri 25) Mon 28, Tue 29.
            (&fi, date(2026, 12, 23), 2, date(2026, 12, 29)),
            // Easter 2026 in Finland from Thursday 2 April, 2 days: (Fri 3 Good Friday,
            // Mon 6 Easter Monday) Tue 7, Wed 8.
            (&fi, date(2026, 4, 2), 2, date(2026, 4, 8)),
            // Large scale, 10 days from Thursday 23 April 2026 in Italy: Fri 24, (Sat 25
            // Liberation Day is a weekend), Mon 27, Tue 28, Wed 29, Thu 30, (Fri 1 May),
            // Mon 4, Tue 5, Wed 6, Thu 7, Fri 8.
            (&it, date(2026, 4, 23), 10, date(2026, 5, 8)),
            // Zero days: the end of the same day.
            (&it, date(2026, 11, 30), 0, date(2026, 11, 30)),
        ];
        for (cal, start, days, due_day) in cases {
            let start_t = at(*start, 15);
            let due = cal.due(start_t, *days);
            assert_eq!(utc_date(due), *due_day, "{} from {start} + {days}", cal.country());
            assert_eq!(due, start_of(due_day.tomorrow().unwrap()) - 1);
            assert_eq!(cal.working_days_between(start_t, due), *days, "{start} + {days}");
            let clock = Clock::read(cal, *days, start_t, Some(due), due);
            assert!(!clock.breached);
            let late = Clock::read(cal, *days, start_t, None, due + 1);
            assert!(late.breached, "one second after the due day ends");
        }
        // Counting: Friday 15:00 to Monday 09:00 is one working day; within the same day none.
        assert_eq!(
            it.working_days_between(at(date(2026, 11, 27), 15), at(date(2026, 11, 30), 9)),
            1
        );
        assert_eq!(
            it.working_days_between(at(date(2026, 11, 30), 1), at(date(2026, 11, 30), 20)),
            0
        );
    }
}
