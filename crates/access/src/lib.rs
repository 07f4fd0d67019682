//! The access programme's rules, pure and deterministic: what a call is
//! ([`call`]), who is eligible and why ([`eligibility`], [`sme`], [`countries`]), the
//! application workflow ([`workflow`]), working-day clocks ([`calendar`]) and reviewers'
//! conflicts of interest ([`conflicts`]). No I/O, no clock: callers pass the time.

pub mod calendar;
pub mod call;
pub mod conflicts;
pub mod countries;
pub mod eligibility;
pub mod indicators;
pub mod sme;
pub mod workflow;
