//! Request rate limits (GCRA, the `governor` crate): per API token for authenticated calls,
//! and per client address for the public endpoints that create accounts or send mail
//! (sign-up, e-mail confirmation), so that nobody turns the factory into a mail cannon.

use crate::ApiError;
use axum::http::StatusCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::num::NonZeroU32;

#[derive(Debug)]
pub struct Limits {
    tokens: DefaultKeyedRateLimiter<String>,
    token_rate: u32,
    addresses: DefaultKeyedRateLimiter<String>,
    address_rate: u32,
    /// Portal sign-in attempts per client address.
    logins: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

/// Sign-in attempts a client address may make a minute (a burst of as many).
pub const LOGINS_PER_MINUTE: u32 = 10;

fn at_least_one(n: f64) -> NonZeroU32 {
    NonZeroU32::new(n.round().clamp(1.0, f64::from(u32::MAX)) as u32).unwrap_or(NonZeroU32::MIN)
}

impl Limits {
    /// `per_s` requests per second per token on average, `burst` at once; `signups_per_hour`
    /// public account and mail requests per client address (a quarter of it at once).
    pub fn new(per_s: f64, burst: f64, signups_per_hour: u32) -> Limits {
        let rate = at_least_one(per_s);
        let hourly = at_least_one(f64::from(signups_per_hour));
        let address_quota = Quota::with_period(std::time::Duration::from_secs(3600) / hourly.get())
            .unwrap_or_else(|| Quota::per_hour(hourly))
            .allow_burst(at_least_one(f64::from(signups_per_hour) / 4.0));
        Limits {
            tokens: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(at_least_one(burst))),
            token_rate: rate.get(),
            addresses: DefaultKeyedRateLimiter::keyed(address_quota),
            address_rate: hourly.get(),
            logins: DefaultKeyedRateLimiter::keyed(Quota::per_minute(
                NonZeroU32::new(LOGINS_PER_MINUTE).unwrap_or(NonZeroU32::MIN),
            )),
            clock: DefaultClock::default(),
        }
    }

    pub fn check_token(&self, token: &str) -> Result<(), ApiError> {
        self.tokens.check_key(&token.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now()).as_secs().max(1);
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                format!(
                    "more than {} requests per second with this token; retry in {wait} s",
                    self.token_rate
                ),
            )
        })
    }

    pub fn check_address(&self, address: &str) -> Result<(), ApiError> {
        self.addresses.check_key(&address.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now()).as_secs().max(1);
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                format!(
                    "more than {} sign-ups or confirmation requests an hour from this address; retry in {wait} s",
                    self.address_rate
                ),
            )
        })
    }

    /// One sign-in attempt from `address`; an error once it tried too often.
    pub fn check_login(&self, address: &str) -> Result<(), u64> {
        self.logins
            .check_key(&address.to_string())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()).as_secs().max(1))
    }

    /// Forgets keys that are back to a full bucket (keeps the maps small).
    pub fn forget_idle(&self) {
        self.tokens.retain_recent();
        self.addresses.retain_recent();
        self.logins.retain_recent();
    }
}
