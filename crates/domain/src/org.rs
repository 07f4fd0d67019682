use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What kind of organisation a project belongs to; the access programme and the reports
/// treat them differently (SME and start-up eligibility, waits by organisation type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OrgType {
    Startup,
    Sme,
    Industry,
    Research,
    Public,
}

impl OrgType {
    pub const ALL: [OrgType; 5] = [
        OrgType::Startup,
        OrgType::Sme,
        OrgType::Industry,
        OrgType::Research,
        OrgType::Public,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrgType::Startup => "startup",
            OrgType::Sme => "sme",
            OrgType::Industry => "industry",
            OrgType::Research => "research",
            OrgType::Public => "public",
        }
    }
}

/// The priority class of a job, set by the allocation it runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PriorityClass {
    /// Small, short, interactive-style work for newcomers; start bound guaranteed.
    Playground,
    /// Urgent work (SMEs and start-ups on a deadline); start bound guaranteed.
    FastLane,
    Standard,
    /// Big multi-node runs awarded by the large-scale call.
    LargeScale,
    /// Runs on idle capacity and may be stopped at any time.
    Preemptible,
}

impl PriorityClass {
    pub const ALL: [PriorityClass; 5] = [
        PriorityClass::Playground,
        PriorityClass::FastLane,
        PriorityClass::Standard,
        PriorityClass::LargeScale,
        PriorityClass::Preemptible,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PriorityClass::Playground => "playground",
            PriorityClass::FastLane => "fast-lane",
            PriorityClass::Standard => "standard",
            PriorityClass::LargeScale => "large-scale",
            PriorityClass::Preemptible => "preemptible",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Error for a name that is not one of the known variants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{given}` (expected one of: {expected})")]
pub struct UnknownName {
    pub what: &'static str,
    pub given: String,
    pub expected: String,
}

fn parse_named<T: Copy>(what: &'static str, s: &str, all: &[T], name: fn(T) -> &'static str) -> Result<T, UnknownName> {
    let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
    all.iter()
        .copied()
        .find(|v| name(*v) == wanted)
        .ok_or_else(|| UnknownName {
            what,
            given: s.to_string(),
            expected: all.iter().map(|v| name(*v)).collect::<Vec<_>>().join(", "),
        })
}

impl FromStr for OrgType {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_named("organisation type", s, &Self::ALL, Self::as_str)
    }
}

impl FromStr for PriorityClass {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_named("priority class", s, &Self::ALL, Self::as_str)
    }
}

impl fmt::Display for OrgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for PriorityClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_accept_underscores() {
        for c in PriorityClass::ALL {
            assert_eq!(c.as_str().parse::<PriorityClass>().unwrap(), c);
        }
        assert_eq!("FAST_LANE".parse::<PriorityClass>().unwrap(), PriorityClass::FastLane);
        for o in OrgType::ALL {
            assert_eq!(o.to_string().parse::<OrgType>().unwrap(), o);
        }
        let err = "gold".parse::<PriorityClass>().unwrap_err();
        assert!(err.to_string().contains("fast-lane"), "{err}");
    }
}
