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

/// Rate limits key on this: one IPv4 address, or an IPv6 /64 (one subscriber's whole block:
/// keying single IPv6 addresses would give an attacker 2^64 fresh quotas).
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The registration-text guards; in memory, per server process.
pub struct Guard {
    /// Countries whose numbers may be texted.
    pub countries: crate::e164::Countries,
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
        let global = NonZeroU32::new((cfg.reg_global / 10).max(1)).expect("max(1)");
        Self {
            countries: crate::e164::Countries::new(&cfg.sms_countries),
            ip: RateLimiter::keyed(per_hour(cfg.reg_per_ip)),
            number: RateLimiter::keyed(per_hour(cfg.reg_per_number)),
            prefix: RateLimiter::keyed(per_hour(cfg.reg_per_prefix)),
            global: RateLimiter::direct(per_hour(cfg.reg_global).allow_burst(global)),
            // Guessing codes: 60 tries an hour per client, on top of 5 per code.
            verify_ip: RateLimiter::keyed(per_hour(60)),
            // PIN entries (check-in, cancel) per person: whoever holds a stolen phone cannot
            // walk through 10,000 four-digit PINs; a person fumbling a few times is not stopped.
            pin_user: RateLimiter::keyed(per_hour(30)),
        }
    }

    /// Takes one registration text from every quota, or says which one is spent.
    pub fn allow_code(&self, ip: IpAddr, e164: &str) -> Result<(), Refusal> {
        self.ip.check_key(&ip_key(ip)).map_err(|_| Refusal::Ip)?;
        self.number.check_key(&e164.to_owned()).map_err(|_| Refusal::Number)?;
        self.prefix.check_key(&crate::e164::prefix(e164).to_owned()).map_err(|_| Refusal::Prefix)?;
        self.global.check().map_err(|_| Refusal::Global)?;
        Ok(())
    }

    /// Forgets quota state that has fully refilled, so the maps stay bounded by recent traffic.
    pub fn forget_idle(&self) {
        self.ip.retain_recent();
        self.number.retain_recent();
        self.prefix.retain_recent();
        self.verify_ip.retain_recent();
        self.pin_user.retain_recent();
        for l in [&self.ip, &self.verify_ip] {
            l.shrink_to_fit();
        }
    }

    /// Takes one PIN entry for this person.
    pub fn allow_pin(&self, user_id: &str) -> bool {
        self.pin_user.check_key(&user_id.to_owned()).is_ok()
    }

    /// Takes one code check for this client.
    pub fn allow_verify(&self, ip: IpAddr) -> bool {
        self.verify_ip.check_key(&ip_key(ip)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_keys_on_the_64_block() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b), "one /64 is one subscriber");
        assert_ne!(ip_key(a), ip_key(c));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(ip_key(v4), v4);
        assert_eq!(ip_key("::ffff:192.0.2.7".parse().unwrap()), v4);
    }
}
