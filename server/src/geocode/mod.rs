//! Reverse geocoding: the address near a position, from a Nominatim-compatible service, cached and rate limited as its usage policy asks.
//!
//! Nominatim's public service allows at most one request per second, asks for an identifying
//! `User-Agent` and for results to be cached; self-hosted instances and commercial services
//! (LocationIQ, OpenCage's Nominatim-compatible endpoint) speak the same `/reverse` API.
//! Positions are rounded to about 11 m before they leave the server and are never logged.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

/// Addresses kept (each a position rounded to ~11 m and a language).
const CACHE_ENTRIES: usize = 10_000;
/// Longest a request waits for its turn under the rate limit.
const WAIT_FOR_TURN: Duration = Duration::from_secs(3);
/// One asker (an alert, in a language) makes the service look something up at most this often:
/// a phone sending made-up positions cannot use us as its free geocoder, nor starve the others.
const ASKER_EVERY: Duration = Duration::from_secs(10);

/// Why no address came back.
#[derive(Debug, thiserror::Error)]
pub enum GeocodeError {
    /// The service is busy for us (our own rate limit): ask again in a moment.
    #[error("the address service is busy; ask again shortly")]
    Busy,
    /// The service failed or answered something unreadable.
    #[error("address service: {0}")]
    Service(String),
}

/// A cache key: the position in 1e-4 degrees and the language.
type Key = (i32, i32, String);
/// Addresses by key, and the keys oldest first (the oldest goes when it is full).
type Cache = (HashMap<Key, Option<String>>, VecDeque<Key>);

/// A Nominatim-compatible reverse geocoder.
pub struct Geocoder {
    http: reqwest::Client,
    base: String,
    limiter: governor::DefaultDirectRateLimiter,
    cache: Mutex<Cache>,
    /// When each asker last made the service look something up (bounded like the cache).
    asked: Mutex<HashMap<String, std::time::Instant>>,
}

impl Geocoder {
    /// A geocoder for the service at `base` (e.g. `https://nominatim.openstreetmap.org`),
    /// asked at most `per_sec` times a second; `contact` identifies this deployment in the
    /// `User-Agent` (its public URL).
    pub fn new(base: &str, per_sec: u32, contact: &str) -> anyhow::Result<Self> {
        let agent = format!("AlertMe/{} (self-hosted personal safety; {contact})", env!("CARGO_PKG_VERSION"));
        let http = reqwest::Client::builder().user_agent(agent).timeout(Duration::from_secs(5)).build()?;
        let quota = governor::Quota::per_second(NonZeroU32::new(per_sec.max(1)).expect("at least 1"));
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            limiter: governor::RateLimiter::direct(quota),
            cache: Mutex::new((HashMap::new(), VecDeque::new())),
            asked: Mutex::new(HashMap::new()),
        })
    }

    /// The address near `(lat, lon)` in `language` (`None`: the service knows none there), for
    /// `asker` (who may make the service look up a new place once every 10 s).
    pub async fn address(
        &self,
        asker: &str,
        lat: f64,
        lon: f64,
        language: &str,
    ) -> Result<Option<String>, GeocodeError> {
        if !(lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0) {
            return Ok(None);
        }
        let key: Key = ((lat * 1e4).round() as i32, (lon * 1e4).round() as i32, language.to_owned());
        if let Some(hit) = self.cached(&key) {
            return Ok(hit);
        }
        {
            let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
            let who = format!("{asker}/{language}");
            if asked.get(&who).is_some_and(|t| t.elapsed() < ASKER_EVERY) {
                return Err(GeocodeError::Busy);
            }
            if asked.len() >= CACHE_ENTRIES {
                asked.retain(|_, t| t.elapsed() < ASKER_EVERY);
            }
            asked.insert(who, std::time::Instant::now());
        }
        tokio::time::timeout(WAIT_FOR_TURN, self.limiter.until_ready())
            .await
            .map_err(|_| GeocodeError::Busy)?;
        // Another request for the same place may have asked while this one waited its turn.
        if let Some(hit) = self.cached(&key) {
            return Ok(hit);
        }
        let (lat, lon) = (f64::from(key.0) / 1e4, f64::from(key.1) / 1e4);
        let res = self
            .http
            .get(self.reverse_url())
            .query(&[
                ("format", "jsonv2"),
                ("zoom", "18"),
                ("lat", &lat.to_string()),
                ("lon", &lon.to_string()),
            ])
            .header(reqwest::header::ACCEPT_LANGUAGE, language)
            .send()
            .await
            .map_err(|e| GeocodeError::Service(e.without_url().to_string()))?;
        if !res.status().is_success() {
            return Err(GeocodeError::Service(format!("HTTP {}", res.status().as_u16())));
        }
        let body: serde_json::Value =
            res.json().await.map_err(|e| GeocodeError::Service(e.without_url().to_string()))?;
        // Nominatim answers `{"error": "Unable to geocode"}` where it knows nothing.
        let address = body["display_name"].as_str().map(|s| s.chars().take(300).collect::<String>());
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *cache;
        if map.len() >= CACHE_ENTRIES {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
        if map.insert(key.clone(), address.clone()).is_none() {
            order.push_back(key);
        }
        Ok(address)
    }

    fn cached(&self, key: &Key) -> Option<Option<String>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).0.get(key).cloned()
    }

    /// `BASE/reverse`, keeping a query the base carries (a provider's `?key=…`).
    fn reverse_url(&self) -> String {
        match self.base.split_once('?') {
            Some((path, query)) => format!("{}/reverse?{query}", path.trim_end_matches('/')),
            None => format!("{}/reverse", self.base),
        }
    }
}
