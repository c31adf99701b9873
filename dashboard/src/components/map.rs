//! A small slippy map in SVG: optional raster tiles, the trail, accuracy circles, markers and a
//! scale bar. Without tiles (offline, or none configured) it still draws on a plain background.

use alertme_protocol::Fix;
use leptos::prelude::*;

/// Drawing size in SVG units; CSS scales it to the container.
const SIZE: f64 = 400.0;
const TILE: f64 = 256.0;

/// A point of interest drawn as a pin.
#[derive(Clone, Debug, PartialEq)]
pub struct Pin {
    /// Stable id (an alert id).
    pub id: String,
    /// Position.
    pub lat: f64,
    /// Position.
    pub lon: f64,
    /// Accuracy radius in metres.
    pub accuracy_m: f64,
    /// Label under the pin.
    pub label: String,
    /// Drawn highlighted (an unclaimed alert).
    pub urgent: bool,
}

/// Web Mercator: world pixel coordinates at zoom `z`.
fn project(lat: f64, lon: f64, z: f64) -> (f64, f64) {
    let scale = TILE * 2f64.powf(z);
    let x = (lon + 180.0) / 360.0 * scale;
    let s = lat.to_radians().sin().clamp(-0.9999, 0.9999);
    let y = (0.5 - ((1.0 + s) / (1.0 - s)).ln() / (4.0 * std::f64::consts::PI)) * scale;
    (x, y)
}

/// Metres per pixel at `lat` and zoom `z`.
fn metres_per_px(lat: f64, z: f64) -> f64 {
    156_543.033_92 * lat.to_radians().cos() / 2f64.powf(z)
}

/// The largest zoom (≤ 18) at which all points fit with a margin; 16 for a single point.
fn fit_zoom(points: &[(f64, f64)]) -> f64 {
    if points.len() < 2 {
        return 17.0;
    }
    for z in (2..=18).rev() {
        let z = z as f64;
        let px: Vec<(f64, f64)> = points.iter().map(|(la, lo)| project(*la, *lo, z)).collect();
        let (minx, maxx) = px.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (miny, maxy) = px.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        if maxx - minx < SIZE * 0.8 && maxy - miny < SIZE * 0.8 {
            return z;
        }
    }
    2.0
}

/// A round scale length (1, 2, 5 × 10ⁿ m) of at most ~100 px.
fn scale_bar(mpp: f64) -> (f64, String) {
    let max_m = mpp * 100.0;
    let mut best = 1.0;
    for exp in 0..7 {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(exp);
            if v <= max_m {
                best = v;
            }
        }
    }
    let label = if best >= 1000.0 { format!("{} km", best / 1000.0) } else { format!("{best} m") };
    (best / mpp, label)
}

/// The map. `follow`: centre on the newest trail point (the watch page); otherwise fit all.
#[component]
pub fn Map(
    /// Fixes to draw as a line, oldest first.
    #[prop(into)]
    trail: Signal<Vec<Fix>>,
    /// Pins to draw.
    #[prop(into)]
    pins: Signal<Vec<Pin>>,
    /// Tile URL template (`{z}/{x}/{y}`); empty for none.
    #[prop(into)]
    tiles: Signal<String>,
    /// What the tile provider requires under the map: shown only while tiles show.
    #[prop(into, optional)]
    attribution: Signal<String>,
    /// Centre on the last trail point instead of fitting everything.
    follow: bool,
) -> impl IntoView {
    let i = crate::i18n::use_i18n();
    let zoom_delta = RwSignal::new(0.0f64);
    // Tiles that failed are never drawn (no broken images); after a few failures and no
    // success the tile server is taken as unreachable (offline, blocked) and no more are asked
    // for: the map stays a clean background with the trail, markers and scale.
    let failed = RwSignal::new(std::collections::HashSet::<String>::new());
    let loaded = RwSignal::new(0usize);
    let unreachable = move || loaded.get() == 0 && failed.with(|f| f.len() >= GIVE_UP_AFTER);
    let view_state = Memo::new(move |_| {
        let trail = trail.get();
        let pins = pins.get();
        let mut pts: Vec<(f64, f64)> = pins.iter().map(|p| (p.lat, p.lon)).collect();
        if follow {
            // The recent path and where the person is now.
            pts.extend(trail.iter().rev().take(60).map(|f| (f.lat, f.lon)));
        } else {
            pts.extend(trail.iter().map(|f| (f.lat, f.lon)));
        }
        if pts.is_empty() {
            return None;
        }
        let z = (fit_zoom(&pts) + zoom_delta.get()).clamp(2.0, 19.0).round();
        let centre = if follow {
            *pts.first().expect("non-empty")
        } else {
            let (la, lo) = pts.iter().fold((0.0, 0.0), |(a, b), p| (a + p.0, b + p.1));
            (la / pts.len() as f64, lo / pts.len() as f64)
        };
        let (cx, cy) = project(centre.0, centre.1, z);
        Some((z, cx - SIZE / 2.0, cy - SIZE / 2.0, centre.0))
    });
    let to_px = move |lat: f64, lon: f64| {
        view_state.get().map(|(z, ox, oy, _)| {
            let (x, y) = project(lat, lon, z);
            (x - ox, y - oy)
        })
    };
    let tile_imgs = move || {
        let Some((z, ox, oy, _)) = view_state.get() else { return Vec::new() };
        let template = tiles.get();
        if template.is_empty() || unreachable() {
            return Vec::new();
        }
        let n = 2i64.pow(z as u32);
        let mut out = Vec::new();
        for tx in (ox / TILE).floor() as i64..=((ox + SIZE) / TILE).floor() as i64 {
            for ty in (oy / TILE).floor() as i64..=((oy + SIZE) / TILE).floor() as i64 {
                if ty < 0 || ty >= n {
                    continue;
                }
                let url = template
                    .replace("{z}", &(z as i64).to_string())
                    .replace("{x}", &tx.rem_euclid(n).to_string())
                    .replace("{y}", &ty.to_string());
                if failed.with_untracked(|f| f.contains(&url)) {
                    continue;
                }
                let (x, y) = (tx as f64 * TILE - ox, ty as f64 * TILE - oy);
                let bad = url.clone();
                out.push(view! {
                    <image class="tile" href=url x=x.to_string() y=y.to_string() width="256" height="256"
                        on:load=move |_| loaded.update(|n| *n += 1)
                        on:error=move |_| failed.update(|f| { f.insert(bad.clone()); }) />
                });
            }
        }
        out
    };
    let line = move || {
        trail
            .get()
            .iter()
            .filter_map(|f| to_px(f.lat, f.lon))
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let current = move || {
        let f = trail.get().last().cloned()?;
        let (x, y) = to_px(f.lat, f.lon)?;
        let (z, _, _, _) = view_state.get()?;
        let r = (f.accuracy_m / metres_per_px(f.lat, z)).max(6.0);
        Some(view! {
            <circle class="accuracy" cx=x.to_string() cy=y.to_string() r=r.to_string() />
            <circle class="marker" data-testid="marker" data-lat=f.lat.to_string() data-lon=f.lon.to_string()
                data-seq=f.seq.to_string() cx=x.to_string() cy=y.to_string() r="8" />
        })
    };
    let pin_views = move || {
        pins.get()
            .into_iter()
            .filter_map(|p| {
                let (x, y) = to_px(p.lat, p.lon)?;
                let (z, _, _, _) = view_state.get()?;
                let r = (p.accuracy_m / metres_per_px(p.lat, z)).max(6.0);
                let class = if p.urgent { "pin urgent" } else { "pin" };
                Some(view! {
                    <g class=class data-testid="pin" data-alert=p.id.clone()>
                        <circle class="accuracy" cx=x.to_string() cy=y.to_string() r=r.to_string() />
                        <circle class="marker" cx=x.to_string() cy=y.to_string() r="9" />
                        <text x=x.to_string() y=(y + 24.0).to_string() text-anchor="middle">{p.label.clone()}</text>
                    </g>
                })
            })
            .collect::<Vec<_>>()
    };
    // The scale is drawn over the map in page pixels: the drawing fills the box (`slice`), so
    // where the box is not square its edges are cut off, and a scale inside it was cut too.
    let host = NodeRef::<leptos::html::Div>::new();
    let box_size = RwSignal::new((SIZE, SIZE));
    let measure = move || {
        if let Some(el) = host.get_untracked() {
            box_size.set((f64::from(el.client_width()), f64::from(el.client_height())));
        }
    };
    Effect::new(move |_| {
        host.track();
        measure();
    });
    let on_resize = window_event_listener(leptos::ev::resize, move |_| measure());
    on_cleanup(move || on_resize.remove());
    let scale = move || {
        let (z, _, _, lat) = view_state.get()?;
        let (px, label) = scale_bar(metres_per_px(lat, z));
        let (w, h) = box_size.get();
        let css_px = px * w.max(h) / SIZE;
        Some(view! {
            <div class="scale" data-testid="scale">
                <span>{label}</span>
                <div class="bar" style=format!("width:{css_px:.0}px")></div>
            </div>
        })
    };
    // For people reading the page's state (and the tests): none configured, trying, shown, or
    // given up.
    let tile_state = move || match (tiles.get().is_empty(), loaded.get() > 0, unreachable()) {
        (true, _, _) => "none",
        (_, true, _) => "shown",
        (_, _, true) => "unreachable",
        _ => "loading",
    };
    view! {
        <div class="map" data-testid="map" data-tiles=tile_state node_ref=host>
            <svg viewBox="0 0 400 400" preserveAspectRatio="xMidYMid slice" role="img" aria-label=move || i.t("map-label")>
                <rect class="ground" x="0" y="0" width="400" height="400" />
                {tile_imgs}
                <polyline class="trail" data-testid="trail" points=line />
                {current}
                {pin_views}
            </svg>
            {scale}
            {move || (loaded.get() > 0 && !tiles.get().is_empty() && !attribution.get().is_empty()).then(|| view! {
                <p class="attribution" data-testid="attribution">{attribution.get()}</p>
            })}
            <div class="zoom">
                <button on:click=move |_| zoom_delta.update(|z| *z += 1.0) aria-label=move || i.t("map-zoom-in")>"+"</button>
                <button on:click=move |_| zoom_delta.update(|z| *z -= 1.0) aria-label=move || i.t("map-zoom-out")>"−"</button>
            </div>
        </div>
    }
}

/// Failed tiles, none loaded, after which no more are requested.
const GIVE_UP_AFTER: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_and_scale() {
        let (x, y) = project(0.0, 0.0, 0.0);
        assert!((x - 128.0).abs() < 1e-9 && (y - 128.0).abs() < 1e-9);
        let (px, label) = scale_bar(1.19);
        assert_eq!(label, "100 m");
        assert!(px > 80.0 && px <= 100.0);
    }
}
