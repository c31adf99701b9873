//! Reads a recorded track (GPX 1.1, or the fixtures' CSV) into fixes with their time offsets.

use std::path::Path;

use alertme_protocol::Fix;
use anyhow::{bail, Context};

/// GPX has no accuracy field; phones report roughly HDOP × 5 m (a typical user range error).
const METRES_PER_HDOP: f64 = 5.0;

/// Loads fixes numbered from 1, with `time_ms` as recorded.
pub fn load(path: &Path) -> anyhow::Result<Vec<Fix>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let fixes = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
        csv(&text)?
    } else {
        gpx(&text)?
    };
    if fixes.is_empty() {
        bail!("{} holds no track points", path.display());
    }
    for f in &fixes {
        f.validate().map_err(|e| anyhow::anyhow!("track point {}: {e}", f.seq))?;
    }
    Ok(fixes)
}

fn gpx(text: &str) -> anyhow::Result<Vec<Fix>> {
    let doc = roxmltree::Document::parse(text).context("parsing GPX")?;
    let mut out = Vec::new();
    for (i, pt) in doc.descendants().filter(|n| n.has_tag_name("trkpt")).enumerate() {
        let num = |name: &str| -> anyhow::Result<f64> {
            pt.attribute(name).context("trkpt without lat/lon")?.parse().context("bad lat/lon")
        };
        let child = |name: &str| pt.children().find(|c| c.has_tag_name(name)).and_then(|c| c.text());
        let time = child("time").context("trkpt without <time>")?;
        out.push(Fix {
            seq: i as u64 + 1,
            lat: num("lat")?,
            lon: num("lon")?,
            accuracy_m: child("hdop")
                .and_then(|h| h.parse::<f64>().ok())
                .map_or(5.0, |h| h * METRES_PER_HDOP),
            time_ms: parse_rfc3339_ms(time)?,
            battery_pct: None,
            speed_mps: None,
            heading_deg: None,
            altitude_m: child("ele").and_then(|e| e.parse().ok()),
        });
    }
    Ok(out)
}

fn csv(text: &str) -> anyhow::Result<Vec<Fix>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().context("empty CSV")?.split(',').collect();
    let col = |name: &str| {
        header.iter().position(|h| *h == name).with_context(|| format!("CSV lacks column {name}"))
    };
    let (t, lat, lon, acc) = (col("unix_ms")?, col("lat")?, col("lon")?, col("accuracy_m")?);
    let (alt, speed, heading) = (col("altitude_m").ok(), col("speed_mps").ok(), col("heading_deg").ok());
    let mut out = Vec::new();
    for (i, line) in lines.filter(|l| !l.trim().is_empty()).enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let opt = |c: Option<usize>| c.and_then(|c| f.get(c)).and_then(|v| v.parse::<f64>().ok());
        let req = |c: usize| -> anyhow::Result<f64> {
            f.get(c).context("short CSV line")?.parse::<f64>().with_context(|| format!("CSV line {}", i + 2))
        };
        out.push(Fix {
            seq: i as u64 + 1,
            lat: req(lat)?,
            lon: req(lon)?,
            accuracy_m: req(acc)?,
            time_ms: req(t)? as i64,
            battery_pct: None,
            speed_mps: opt(speed),
            heading_deg: opt(heading),
            altitude_m: opt(alt),
        });
    }
    Ok(out)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff]Z` (what GPX writers emit) to ms since the epoch.
fn parse_rfc3339_ms(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    let bad = || anyhow::anyhow!("unsupported GPX time {s:?} (want YYYY-MM-DDTHH:MM:SS[.fff]Z)");
    let s = s.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = s.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date.split('-').map(|p| p.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|p| p.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    if d.len() != 3 || t.len() != 3 {
        return Err(bad());
    }
    let ms: i64 = format!("{frac:0<3}")[..3].parse().map_err(|_| bad())?;
    Ok(((days_from_civil(d[0], d[1], d[2]) * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpx_and_csv_fixtures_agree() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/gps");
        let g = load(&dir.join("gps_walk_10min.gpx")).unwrap();
        let c = load(&dir.join("gps_walk_10min.csv")).unwrap();
        assert_eq!(g.len(), 600);
        assert_eq!(c.len(), 600);
        assert_eq!(g[0].time_ms, 1_749_937_320_000);
        assert_eq!(g[599].time_ms, c[599].time_ms);
        assert!((g[10].lat - c[10].lat).abs() < 1e-9);
    }
}
