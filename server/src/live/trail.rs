//! A live alert's trail in memory: ordered by device time, bounded at any length of SOS, the
//! older part thinned (Douglas-Peucker) so that snapshots stay small.

use std::collections::BTreeMap;

use alertme_protocol::Fix;

/// Fixes kept in full: the newest ones (2.8 hours at one a second).
pub const KEEP_FULL: usize = 10_000;
/// A snapshot carries at most this many of the newest fixes in full ...
pub const SNAPSHOT_FULL: usize = 2_000;
/// ... and everything older thinned to at most this many points (a snapshot of any SOS is
/// then ~600 KB at most, inside a watcher's 1 MiB write budget).
pub const SNAPSHOT_THINNED: usize = 2_000;
/// First Douglas-Peucker tolerance tried, in degrees (about a metre).
const FIRST_EPSILON: f64 = 1e-5;

/// Ordered by `(time_ms, seq)`: a backfilled fix slots in where it belongs in O(log n).
#[derive(Debug, Default)]
pub struct Trail {
    full: BTreeMap<(i64, u64), Fix>,
    /// Fixes older than all of `full`, thinned, in time order.
    thinned: Vec<Fix>,
    /// The tolerance that last thinned enough: the next thinning starts there.
    epsilon: f64,
}

impl Trail {
    /// Adds a fix (a seq already present at the same time replaces it).
    pub fn insert(&mut self, f: Fix) {
        self.full.insert((f.time_ms, f.seq), f);
        if self.full.len() > KEEP_FULL {
            // Move the oldest quarter out and thin it with what was thinned before.
            let mut older = std::mem::take(&mut self.thinned);
            for _ in 0..KEEP_FULL / 4 {
                if let Some((_, f)) = self.full.pop_first() {
                    older.push(f);
                }
            }
            older.sort_by_key(|f| (f.time_ms, f.seq));
            self.thinned = self.thin(older, SNAPSHOT_THINNED);
        }
    }

    /// The newest fix by device time.
    pub fn newest(&self) -> Option<&Fix> {
        self.full.last_key_value().map(|(_, f)| f).or(self.thinned.last())
    }

    /// Fixes held (full and thinned).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.full.len() + self.thinned.len()
    }

    /// What a watcher gets: the newest [`SNAPSHOT_FULL`] fixes in full, everything before them
    /// thinned to at most [`SNAPSHOT_THINNED`] points, in time order.
    pub fn snapshot(&mut self) -> Vec<Fix> {
        let split = self.full.len().saturating_sub(SNAPSHOT_FULL);
        let mut older = self.thinned.clone();
        older.extend(self.full.values().take(split).cloned());
        // A backfilled fix older than the thinned part sits in `full`.
        older.sort_by_key(|f| (f.time_ms, f.seq));
        let mut out = self.thin(older, SNAPSHOT_THINNED);
        out.extend(self.full.values().skip(split).cloned());
        out
    }

    /// At most `max` of `fixes` (time-ordered), keeping the shape: first and last, and every
    /// turn larger than the tolerance, which grows until few enough remain.
    fn thin(&mut self, fixes: Vec<Fix>, max: usize) -> Vec<Fix> {
        if fixes.len() <= max {
            return fixes;
        }
        let points: Vec<(f64, f64)> = fixes.iter().map(|f| (f.lon, f.lat)).collect();
        let mut eps = if self.epsilon > 0.0 { self.epsilon / 2.0 } else { FIRST_EPSILON };
        loop {
            let keep = simplify_idx(&points, eps);
            if keep.len() <= max {
                self.epsilon = eps;
                return keep.into_iter().map(|i| fixes[i].clone()).collect();
            }
            eps *= 2.0;
        }
    }
}

/// Douglas-Peucker: indices of the points that stay at tolerance `eps` (first and last always).
/// Iterative: `geo`'s recursive version overflows the stack on a long zig-zag (GPS jitter of
/// a phone standing still draws one), which a phone can send at will.
fn simplify_idx(points: &[(f64, f64)], eps: f64) -> Vec<usize> {
    let n = points.len();
    if n < 3 {
        return (0..n).collect();
    }
    let mut keep = vec![false; n];
    keep[0] = true;
    keep[n - 1] = true;
    let mut spans = vec![(0, n - 1)];
    while let Some((a, b)) = spans.pop() {
        let (mut far, mut dmax) = (0, 0.0);
        for (i, p) in points.iter().enumerate().take(b).skip(a + 1) {
            let d = distance_to_segment(*p, points[a], points[b]);
            if d > dmax {
                (far, dmax) = (i, d);
            }
        }
        if dmax > eps {
            keep[far] = true;
            spans.push((a, far));
            spans.push((far, b));
        }
    }
    keep.iter().enumerate().filter_map(|(i, k)| k.then_some(i)).collect()
}

/// Planar distance from `p` to the segment `a`–`b` (degrees; fine for thinning a drawn line).
fn distance_to_segment(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 { 0.0 } else { (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0) };
    (p.0 - (a.0 + t * dx)).hypot(p.1 - (a.1 + t * dy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(seq: u64, t: i64) -> Fix {
        // A zig-zag walk: every point is a turn, so thinning has real work to do.
        let wiggle = if seq % 2 == 0 { 1e-4 } else { -1e-4 };
        Fix {
            seq,
            lat: 52.0 + seq as f64 * 1e-5 + wiggle,
            lon: 13.0 + (seq as f64 * 3e-6).sin(),
            accuracy_m: 5.0,
            time_ms: t,
            battery_pct: None,
            speed_mps: None,
            heading_deg: None,
            altitude_m: None,
        }
    }

    #[test]
    fn any_length_stays_bounded_and_ordered() {
        let mut t = Trail::default();
        // 200,000 fixes arriving newest first (the worst order for a sorted vector).
        for seq in (1..=200_000u64).rev() {
            t.insert(fix(seq, seq as i64 * 1000));
        }
        assert!(t.len() <= KEEP_FULL + SNAPSHOT_THINNED, "{} held", t.len());
        let snap = t.snapshot();
        assert!(snap.len() <= SNAPSHOT_FULL + SNAPSHOT_THINNED, "{} in a snapshot", snap.len());
        assert!(snap.windows(2).all(|w| (w[0].time_ms, w[0].seq) < (w[1].time_ms, w[1].seq)), "time order");
        assert_eq!(t.newest().unwrap().seq, 200_000);
        let bytes = serde_json::to_vec(&snap).unwrap().len();
        assert!(bytes < 1024 * 1024, "snapshot of {bytes} bytes");
    }

    #[test]
    fn recent_fixes_are_whole_and_the_route_keeps_its_ends() {
        let mut t = Trail::default();
        for seq in 1..=20_000u64 {
            t.insert(fix(seq, seq as i64 * 1000));
        }
        let snap = t.snapshot();
        let tail: Vec<u64> = snap[snap.len() - SNAPSHOT_FULL..].iter().map(|f| f.seq).collect();
        assert_eq!(tail, (20_000 - SNAPSHOT_FULL as u64 + 1..=20_000).collect::<Vec<_>>());
        assert_eq!(snap[0].seq, 1, "the start of the route is kept");
        // A late backfill of an early fix still lands in order.
        t.insert(fix(500_000, 1500));
        let snap = t.snapshot();
        assert!(snap.windows(2).all(|w| (w[0].time_ms, w[0].seq) < (w[1].time_ms, w[1].seq)));
    }
}
