//! `GET /v1/alerts/{id}/trail`: every stored fix of an alert, as GeoJSON or (with
//! `Accept: application/gpx+xml`) GPX, read from the database a page at a time.

use std::collections::HashMap;

use alertme_protocol::Fix;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;

use crate::error::Result;
use crate::web::extract::authorize_alert;
use crate::web::state::AppState;

/// Fixes read per database query: the answer streams, so memory stays bounded at any length.
const PAGE: u64 = 2_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/alerts/{id}/trail", get(trail))
}

/// The two formats.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    GeoJson,
    Gpx,
}

async fn trail(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response> {
    authorize_alert(&state, &headers, &query, &id).await?;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let format = if accept.contains("gpx") { Format::Gpx } else { Format::GeoJson };
    let (mime, head, tail) = match format {
        Format::GeoJson => {
            ("application/geo+json", "{\"type\":\"FeatureCollection\",\"features\":[".to_owned(), "]}")
        }
        Format::Gpx => (
            "application/gpx+xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<gpx version=\"1.1\" creator=\"AlertMe\" \
                 xmlns=\"http://www.topografix.com/GPX/1/1\">\n<trk><name>alert {id}</name><trkseg>\n"
            ),
            "</trkseg></trk>\n</gpx>\n",
        ),
    };
    // Keyset pages (after the last (device time, seq) sent): a phone backfilling older fixes
    // meanwhile cannot make a page repeat or skip one.
    let pages = futures_util::stream::unfold(Some(None::<(i64, u64)>), move |cursor| {
        let (db, id) = (state.db.clone(), id.clone());
        async move {
            let after = cursor?;
            match crate::domain::positions::page(&db, &id, after, PAGE).await {
                Ok(fixes) => {
                    let last = fixes.last().map(|f| (f.time_ms, f.seq));
                    let next = (fixes.len() as u64 == PAGE).then_some(last);
                    let text: String = fixes
                        .iter()
                        .enumerate()
                        .map(|(i, f)| item(format, after.is_none() && i == 0, f))
                        .collect();
                    Some((Ok::<_, std::io::Error>(Bytes::from(text)), next))
                }
                // The status line went out already: end the body early, which clients see as a
                // broken transfer rather than a complete trail.
                Err(e) => Some((Err(std::io::Error::other(e)), None)),
            }
        }
    });
    let body = futures_util::stream::once(async move { Ok(Bytes::from(head)) })
        .chain(pages)
        .chain(futures_util::stream::once(async move { Ok(Bytes::from_static(tail.as_bytes())) }));
    let mut res = Body::from_stream(body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    Ok(res)
}

/// One fix in the chosen format.
fn item(format: Format, first: bool, f: &Fix) -> String {
    match format {
        Format::GeoJson => {
            let feature = serde_json::json!({
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [f.lon, f.lat]},
                "properties": {
                    "seq": f.seq, "time_ms": f.time_ms, "accuracy_m": f.accuracy_m,
                    "battery_pct": f.battery_pct, "speed_mps": f.speed_mps,
                    "heading_deg": f.heading_deg, "altitude_m": f.altitude_m,
                },
            });
            format!("{}{feature}", if first { "" } else { "," })
        }
        Format::Gpx => {
            let time = chrono::DateTime::from_timestamp_millis(f.time_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default();
            let ele = f.altitude_m.map(|a| format!("<ele>{a}</ele>")).unwrap_or_default();
            format!("<trkpt lat=\"{}\" lon=\"{}\">{ele}<time>{time}</time></trkpt>\n", f.lat, f.lon)
        }
    }
}
