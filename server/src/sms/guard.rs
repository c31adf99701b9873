//! Guards on registration texts against abuse and SMS pumping (toll fraud): per number, per
//! number block, per client IP, and a global circuit breaker. Texts to contacts during a real
//! SOS never pass through here.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::SmsConfig;

/// Which guard refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This client sent too many requests.
    Ip,
    /// This number got too many codes.
    Number,
    /// This number block got too many codes (pumping).
    Prefix,
    /// The server sends too many codes overall.
    Global,
}

/// The registration-text guards; in memory, per server process.
pub struct Guard {
    ip: DefaultKeyedRateLimiter<IpAddr>,
    number: DefaultKeyedRateLimiter<String>,
    prefix: DefaultKeyedRateLimiter<String>,
    global: governor::DefaultDirectRateLimiter,
    verify_ip: DefaultKeyedRateLimiter<IpAddr>,
    pin_user: DefaultKeyedRateLimiter<String>,
}

fn per_hour(n: u32) -> Quota {
    let n = NonZeroU32::new(n.max(1)).expect("max(1)");
    Quota::with_period(Duration::from_secs(3600) / n.get()).expect("non-zero period").allow_burst(n)
}

impl Guard {
    /// Guards with the configured hourly quotas (each also the burst size).
    pub fn new(cfg: &SmsConfig) -> Self {
        Self {
            ip: RateLimiter::keyed(per_hour(cfg.reg_per_ip)),
            number: RateLimiter::keyed(per_hour(cfg.reg_per_number)),
            prefix: RateLimiter::keyed(per_hour(cfg.reg_per_prefix)),
            global: RateLimiter::direct(per_hour(cfg.reg_global)),
            // Guessing codes: 60 tries an hour per client, on top of 5 per code.
            verify_ip: RateLimiter::keyed(per_hour(60)),
            // PIN entries (check-in, cancel) per person: whoever holds a stolen phone cannot
            // walk through 10,000 four-digit PINs; a person fumbling a few times is not stopped.
            pin_user: RateLimiter::keyed(per_hour(30)),
        }
    }

    /// Takes one registration text from every quota, or says which one is spent.
    pub fn allow_code(&self, ip: IpAddr, e164: &str) -> Result<(), Refusal> {
        self.ip.check_key(&ip).map_err(|_| Refusal::Ip)?;
        self.number.check_key(&e164.to_owned()).map_err(|_| Refusal::Number)?;
        self.prefix.check_key(&crate::e164::prefix(e164).to_owned()).map_err(|_| Refusal::Prefix)?;
        self.global.check().map_err(|_| Refusal::Global)?;
        Ok(())
    }

    /// Takes one PIN entry for this person.
    pub fn allow_pin(&self, user_id: &str) -> bool {
        self.pin_user.check_key(&user_id.to_owned()).is_ok()
    }

    /// Takes one code check for this client.
    pub fn allow_verify(&self, ip: IpAddr) -> bool {
        self.verify_ip.check_key(&ip).is_ok()
    }
}
