//! Geozones that raise alerts by themselves: leaving a "safe" zone, entering a "danger" zone.
//!
//! GPS noise must never make a false crossing. A fix only counts as evidence when it is clearly
//! on one side: farther from the boundary than max(its accuracy, 25 m). A crossing is confirmed
//! by two consecutive clear fixes on the new side (uncertain fixes in between neither count nor
//! reset). The first clear fix sets the state without firing (a zone created while inside does
//! not fire), fixes older than the last one seen (backfill) are ignored, and the state is stored,
//! so a restart never fires twice.

use alertme_protocol::{Fix, Reason};
use geo::{Contains, Coord, Distance, Haversine, LineString, Point, Polygon};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;

use crate::domain::alerts::{Raise, Source};
use crate::domain::Core;
use crate::error::{Error, Result};
use crate::storage::entity::geozones;

/// Smallest hysteresis band, metres.
pub const MIN_MARGIN_M: f64 = 25.0;
/// Clear fixes on the new side that confirm a crossing.
pub const CONFIRM_FIXES: i32 = 2;
/// Most zones per person.
pub const MAX_ZONES: usize = 20;

/// A zone's area.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// A circle.
    Circle {
        /// Centre latitude.
        lat: f64,
        /// Centre longitude.
        lon: f64,
        /// Radius in metres.
        radius_m: f64,
    },
    /// Outer ring of (lat, lon), closed.
    Polygon(Vec<(f64, f64)>),
}

impl Shape {
    /// Reads a GeoJSON geometry: a Point with `radius_m`, or a Polygon (outer ring used).
    pub fn from_geojson(g: &Value, radius_m: Option<f64>) -> Result<Self> {
        let bad = |m: &str| Error::BadRequest(format!("geometry: {m}"));
        let pos = |v: &Value| -> Result<(f64, f64)> {
            let a = v.as_array().filter(|a| a.len() >= 2).ok_or_else(|| bad("positions are [lon, lat]"))?;
            let (lon, lat) = (a[0].as_f64().unwrap_or(f64::NAN), a[1].as_f64().unwrap_or(f64::NAN));
            if !((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)) {
                return Err(bad("coordinates out of range"));
            }
            Ok((lat, lon))
        };
        match g.get("type").and_then(Value::as_str) {
            Some("Point") => {
                let (lat, lon) = pos(g.get("coordinates").ok_or_else(|| bad("no coordinates"))?)?;
                let r = radius_m.ok_or_else(|| bad("a Point needs radius_m"))?;
                if !(20.0..=50_000.0).contains(&r) {
                    return Err(bad("radius_m must be 20 to 50,000"));
                }
                Ok(Self::Circle { lat, lon, radius_m: r })
            }
            Some("Polygon") => {
                let ring = g
                    .get("coordinates")
                    .and_then(Value::as_array)
                    .and_then(|r| r.first())
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad("a Polygon needs an outer ring"))?;
                let pts = ring.iter().map(pos).collect::<Result<Vec<_>>>()?;
                if pts.len() < 4 || pts.len() > 500 || pts.first() != pts.last() {
                    return Err(bad("the ring must be closed and have 4 to 500 positions"));
                }
                Ok(Self::Polygon(pts))
            }
            _ => Err(bad("type must be Point or Polygon")),
        }
    }

    /// Distance to the boundary in metres: positive inside, negative outside.
    pub fn signed_distance(&self, lat: f64, lon: f64) -> f64 {
        match self {
            Self::Circle { lat: clat, lon: clon, radius_m } => {
                radius_m - Haversine.distance(Point::new(*clon, *clat), Point::new(lon, lat))
            }
            Self::Polygon(ring) => {
                // Local metres around the point: exact enough for zones of city size.
                let k_lat = 110_540.0;
                let k_lon = 111_320.0 * lat.to_radians().cos();
                let xy: Vec<Coord<f64>> =
                    ring.iter().map(|(a, o)| Coord { x: (o - lon) * k_lon, y: (a - lat) * k_lat }).collect();
                let poly = Polygon::new(LineString::from(xy.clone()), vec![]);
                let inside = poly.contains(&Point::new(0.0, 0.0));
                let d = xy.windows(2).map(|w| segment_distance(w[0], w[1])).fold(f64::INFINITY, f64::min);
                if inside {
                    d
                } else {
                    -d
                }
            }
        }
    }
}

/// Distance from the origin to segment a–b.
fn segment_distance(a: Coord<f64>, b: Coord<f64>) -> f64 {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 { 0.0 } else { (-(a.x * dx + a.y * dy) / len2).clamp(0.0, 1.0) };
    let (px, py) = (a.x + t * dx, a.y + t * dy);
    (px * px + py * py).sqrt()
}

/// What the zone state machine remembers between fixes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZoneState {
    /// Confirmed side; `None` until the first clear fix.
    pub inside: Option<bool>,
    /// Side a crossing is pending towards.
    pub candidate: Option<bool>,
    /// Clear fixes seen on the candidate side.
    pub count: i32,
    /// Device time of the newest fix considered.
    pub last_time: Option<i64>,
}

/// A confirmed crossing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossing {
    /// Now inside.
    Entered,
    /// Now outside.
    Left,
}

/// Feeds one fix (its signed distance to the boundary) to the state machine.
pub fn observe(st: &mut ZoneState, signed_m: f64, accuracy_m: f64, time_ms: i64) -> Option<Crossing> {
    if st.last_time.is_some_and(|t| time_ms <= t) {
        return None; // backfilled or repeated: history, not news
    }
    st.last_time = Some(time_ms);
    let margin = accuracy_m.max(MIN_MARGIN_M);
    let side = if signed_m > margin {
        true
    } else if signed_m < -margin {
        false
    } else {
        return None; // too close to the line to say
    };
    match st.inside {
        None => {
            st.inside = Some(side);
            None
        }
        Some(cur) if cur == side => {
            st.candidate = None;
            st.count = 0;
            None
        }
        Some(_) => {
            if st.candidate == Some(side) {
                st.count += 1;
            } else {
                st.candidate = Some(side);
                st.count = 1;
            }
            if st.count < CONFIRM_FIXES {
                return None;
            }
            st.inside = Some(side);
            st.candidate = None;
            st.count = 0;
            Some(if side { Crossing::Entered } else { Crossing::Left })
        }
    }
}

pub use alertme_protocol::Zone;

fn wire(z: &geozones::Model) -> Zone {
    Zone {
        id: Some(z.id.clone()),
        name: z.name.clone(),
        kind: z.kind.clone(),
        geometry: serde_json::from_str(&z.geometry).unwrap_or(Value::Null),
        radius_m: z.radius_m,
        inside: z.inside,
    }
}

/// Adds a zone for a person.
pub async fn create(state: &Core, user_id: &str, z: Zone) -> Result<Zone> {
    if z.kind != "safe" && z.kind != "danger" {
        return Err(Error::BadRequest("kind must be safe or danger".into()));
    }
    let name = z.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::BadRequest("name must be 1 to 100 characters".into()));
    }
    Shape::from_geojson(&z.geometry, z.radius_m)?;
    let existing =
        geozones::Entity::find().filter(geozones::Column::UserId.eq(user_id)).all(&state.db).await?;
    if existing.len() >= MAX_ZONES {
        return Err(Error::Conflict(format!("at most {MAX_ZONES} zones")));
    }
    let row = geozones::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        user_id: Set(user_id.to_owned()),
        name: Set(name.to_owned()),
        kind: Set(z.kind),
        geometry: Set(z.geometry.to_string()),
        radius_m: Set(z.radius_m),
        inside: Set(None),
        candidate: Set(None),
        candidate_count: Set(0),
        candidate_since: Set(None),
        last_fix_time: Set(None),
        created_at: Set(crate::now_ms()),
    }
    .insert(&state.db)
    .await?;
    state.zone_free.remove(user_id);
    Ok(wire(&row))
}

/// A person's zones.
pub async fn list(state: &Core, user_id: &str) -> Result<Vec<Zone>> {
    Ok(geozones::Entity::find()
        .filter(geozones::Column::UserId.eq(user_id))
        .all(&state.db)
        .await?
        .iter()
        .map(wire)
        .collect())
}

/// Removes a zone.
pub async fn remove(state: &Core, user_id: &str, id: &str) -> Result<()> {
    let res = geozones::Entity::delete_many()
        .filter(geozones::Column::Id.eq(id))
        .filter(geozones::Column::UserId.eq(user_id))
        .exec(&state.db)
        .await?;
    if res.rows_affected == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// How long "this person has no geozones" is trusted without asking the database again.
const ZONE_FREE_TTL: std::time::Duration = std::time::Duration::from_secs(10);
/// People remembered as zone-free at most; beyond it, marks past their time are dropped.
const ZONE_FREE_MAX: usize = 50_000;

/// Marks `user_id` as having no zones, now. Marks are only read within [`ZONE_FREE_TTL`] but
/// stayed in the map for good, one per person who ever streamed a fix: once it holds `max`,
/// expired marks are dropped, and if every mark is fresh, all are (each person's next fix asks
/// the database again), so that a full map is swept once per `max` new marks, not per fix.
fn remember_zone_free(marks: &dashmap::DashMap<String, std::time::Instant>, user_id: &str, max: usize) {
    if marks.len() >= max && !marks.contains_key(user_id) {
        marks.retain(|_, since| since.elapsed() < ZONE_FREE_TTL);
        if marks.len() >= max {
            marks.clear();
        }
    }
    marks.insert(user_id.to_owned(), std::time::Instant::now());
}

/// Checks a person's zones against a new fix; raises an alert on a confirmed crossing out of a
/// safe zone or into a danger zone (unless an alert of theirs is already active).
pub async fn check(state: &Core, user_id: &str, device_id: &str, fix: &Fix) -> Result<()> {
    // Most people have no zones: remember that for a while instead of asking the database on
    // every fix (it was ~5 % of the server's CPU at 1000 streaming phones, measured with perf).
    // Zones added here clear the mark at once; added through another server, they apply within
    // ZONE_FREE_TTL.
    if state.zone_free.get(user_id).is_some_and(|since| since.elapsed() < ZONE_FREE_TTL) {
        return Ok(());
    }
    let zones = geozones::Entity::find().filter(geozones::Column::UserId.eq(user_id)).all(&state.db).await?;
    if zones.is_empty() {
        remember_zone_free(&state.zone_free, user_id, ZONE_FREE_MAX);
        return Ok(());
    }
    state.zone_free.remove(user_id);
    for z in zones {
        let geometry: Value = serde_json::from_str(&z.geometry).unwrap_or(Value::Null);
        let Ok(shape) = Shape::from_geojson(&geometry, z.radius_m) else { continue };
        let mut st = ZoneState {
            inside: z.inside,
            candidate: z.candidate,
            count: z.candidate_count,
            last_time: z.last_fix_time,
        };
        let before = st.clone();
        let crossing = observe(&mut st, shape.signed_distance(fix.lat, fix.lon), fix.accuracy_m, fix.time_ms);
        if st == before {
            continue;
        }
        let txn = crate::storage::write_txn(&state.db).await?;
        // Conditional on what we read: a racing update of the same zone wins, this one yields.
        let mut q = geozones::Entity::update_many()
            .col_expr(geozones::Column::Inside, st.inside.into())
            .col_expr(geozones::Column::Candidate, st.candidate.into())
            .col_expr(geozones::Column::CandidateCount, st.count.into())
            .col_expr(geozones::Column::LastFixTime, st.last_time.into())
            .filter(geozones::Column::Id.eq(z.id.clone()));
        q = match z.last_fix_time {
            Some(t) => q.filter(geozones::Column::LastFixTime.eq(t)),
            None => q.filter(geozones::Column::LastFixTime.is_null()),
        };
        if q.exec(&txn).await?.rows_affected == 0 {
            continue;
        }
        let raise = match (crossing, z.kind.as_str()) {
            (Some(Crossing::Left), "safe") => Some(Reason::LeftSafeZone { zone: z.name.clone() }),
            (Some(Crossing::Entered), "danger") => Some(Reason::EnteredDangerZone { zone: z.name.clone() }),
            _ => None,
        };
        let mut raised = None;
        if let Some(reason) = raise {
            if crate::domain::alerts::active_of_user(&state.db, user_id).await?.is_none() {
                let client_id = format!("geozone:{}:{}", z.id, fix.time_ms);
                let row = crate::domain::alerts::new_alert(Raise {
                    source: Source::Geozone,
                    user_id,
                    device_id,
                    client_id: &client_id,
                    audio_mime: None,
                    reason: Some(reason),
                    duress: false,
                });
                crate::domain::alerts::raise_in(state, &txn, &row, Some(fix)).await?;
                raised = Some(row);
            }
        }
        txn.commit().await?;
        if let Some(row) = raised {
            tracing::warn!(alert = %row.id, zone = %z.id, "geozone crossing; alert raised");
            crate::domain::alerts::raised(state, &row).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The zone-free marks stay bounded: a full map drops expired marks for a new one, and
    /// drops them all when every one is fresh; a mark given again is renewed.
    #[test]
    fn zone_free_marks_are_bounded() {
        let now = std::time::Instant::now();
        let ago = |d| now.checked_sub(d).expect("the clock started long enough ago");
        let marks = dashmap::DashMap::new();
        for i in 0..4 {
            marks.insert(format!("old{i}"), ago(ZONE_FREE_TTL * 2));
        }
        remember_zone_free(&marks, "new", 4);
        assert_eq!(marks.len(), 1, "the expired marks made room");
        assert!(marks.contains_key("new"));
        for i in 0..3 {
            remember_zone_free(&marks, &format!("fresh{i}"), 4);
        }
        assert_eq!(marks.len(), 4);
        remember_zone_free(&marks, "one-too-many", 4);
        assert_eq!(marks.len(), 1, "a map of fresh marks starts over");
        assert!(marks.contains_key("one-too-many"));
        // Someone already marked is marked again from now, even in a full map.
        for i in 0..3 {
            marks.insert(format!("half{i}"), ago(ZONE_FREE_TTL / 2));
        }
        marks.insert("one-too-many".into(), ago(ZONE_FREE_TTL / 2));
        remember_zone_free(&marks, "one-too-many", 4);
        assert_eq!(marks.len(), 4);
        assert!(marks.get("one-too-many").unwrap().elapsed() < ZONE_FREE_TTL / 4);
    }

    /// Seeded noise for the property test: the same walk on every run.
    struct Rng(rand::rngs::StdRng);
    impl Rng {
        fn seeded(seed: u64) -> Self {
            Self(rand::SeedableRng::seed_from_u64(seed))
        }
        fn next(&mut self) -> f64 {
            rand::Rng::random::<f64>(&mut self.0)
        }
        fn gauss(&mut self) -> f64 {
            let (u, v) = (self.next().max(1e-12), self.next());
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        }
    }

    #[test]
    fn circle_and_polygon_distances() {
        let c = Shape::Circle { lat: 52.5, lon: 13.4, radius_m: 150.0 };
        assert!((c.signed_distance(52.5, 13.4) - 150.0).abs() < 1e-6);
        // ~0.0027° of latitude ≈ 300 m north: 150 m outside.
        assert!((c.signed_distance(52.5 + 300.0 / 111_195.0, 13.4) + 150.0).abs() < 1.0);
        let sq = Shape::from_geojson(
            &serde_json::json!({"type": "Polygon", "coordinates": [[[13.0, 52.0], [13.01, 52.0], [13.01, 52.01], [13.0, 52.01], [13.0, 52.0]]]}),
            None,
        )
        .unwrap();
        let inside = sq.signed_distance(52.005, 13.005);
        assert!(inside > 300.0 && inside < 400.0, "{inside}");
        assert!(sq.signed_distance(52.02, 13.005) < -1000.0);
        assert!(Shape::from_geojson(
            &serde_json::json!({"type": "Point", "coordinates": [13.0, 52.0]}),
            None
        )
        .is_err());
    }

    #[test]
    fn crossing_needs_two_clear_fixes_and_ignores_backfill() {
        let mut st = ZoneState::default();
        assert_eq!(observe(&mut st, 100.0, 5.0, 1), None, "first clear fix sets state");
        assert_eq!(st.inside, Some(true));
        assert_eq!(observe(&mut st, -40.0, 5.0, 2), None, "one clear fix outside is not enough");
        assert_eq!(observe(&mut st, -10.0, 5.0, 3), None, "uncertain fixes neither count nor reset");
        assert_eq!(observe(&mut st, -40.0, 30.0, 4), Some(Crossing::Left));
        assert_eq!(observe(&mut st, 100.0, 5.0, 3), None, "backfill never crosses");
        assert_eq!(observe(&mut st, 100.0, 5.0, 5), None);
        assert_eq!(observe(&mut st, 100.0, 5.0, 6), Some(Crossing::Entered));
        // A zone created while inside does not fire.
        let mut fresh = ZoneState::default();
        assert_eq!(observe(&mut fresh, 60.0, 5.0, 1), None);
        assert_eq!(observe(&mut fresh, 60.0, 5.0, 2), None);
    }

    /// Thousands of noisy tracks that stay ≥ 50 m inside a 150 m zone never "leave" it.
    /// Noise model: correlated (AR(1), ρ = 0.9) Gaussian error with σ = accuracy / 1.5 (the
    /// reported accuracy is a 68 % radius), truncated at 2.5 σ, accuracy 3-30 m, with
    /// urban-canyon stretches at 15-30 m.
    #[test]
    fn noisy_tracks_inside_never_exit() {
        let zone = Shape::Circle { lat: 52.52, lon: 13.40, radius_m: 150.0 };
        let m_per_deg_lat = 111_195.0;
        let m_per_deg_lon = m_per_deg_lat * 52.52f64.to_radians().cos();
        let mut rng = Rng::seeded(0x9E37_79B9_7F4A_7C15);
        let mut exits = 0;
        for _track in 0..2000 {
            let mut st = ZoneState::default();
            // True position: a random walk kept within 100 m of the centre.
            let (mut x, mut y) = ((rng.next() - 0.5) * 100.0, (rng.next() - 0.5) * 100.0);
            let (mut ex, mut ey) = (0.0f64, 0.0f64);
            for i in 0..300 {
                x += rng.gauss() * 1.5;
                y += rng.gauss() * 1.5;
                let r = (x * x + y * y).sqrt();
                if r > 100.0 {
                    x *= 100.0 / r;
                    y *= 100.0 / r;
                }
                let canyon = (i / 50) % 3 == 2;
                let acc = if canyon { 15.0 + rng.next() * 15.0 } else { 3.0 + rng.next() * 5.0 };
                let sigma = acc / 1.5;
                ex = 0.9 * ex + (1.0f64 - 0.81).sqrt() * rng.gauss() * sigma;
                ey = 0.9 * ey + (1.0f64 - 0.81).sqrt() * rng.gauss() * sigma;
                let (nx, ny) = (ex.clamp(-2.5 * sigma, 2.5 * sigma), ey.clamp(-2.5 * sigma, 2.5 * sigma));
                let lat = 52.52 + (y + ny) / m_per_deg_lat;
                let lon = 13.40 + (x + nx) / m_per_deg_lon;
                if observe(&mut st, zone.signed_distance(lat, lon), acc, i as i64 * 1000)
                    == Some(Crossing::Left)
                {
                    exits += 1;
                }
            }
        }
        assert_eq!(exits, 0);
    }
}
