//! `/v1/timers` (check-in timers), `/v1/pin` and the PIN-guarded SOS cancel, `/v1/geozones`, and
//! the test clock.

use alertme_protocol::{PinBody, PinSetup, Timer, TimerStart};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{post, put};
use axum::{Json, Router};

use crate::domain::timers::{self, status};
use crate::error::Result;
use crate::web::error::AppJson;
use crate::web::extract::DeviceAuth;
use crate::web::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/pin", put(set_pin))
        .route("/v1/alerts/{id}/cancel", post(cancel_alert))
        .route("/v1/timers", post(start).get(list))
        .route("/v1/timers/{id}/extend", post(extend))
        .route("/v1/timers/{id}/checkin", post(check_in))
        .route("/v1/timers/{id}/cancel", post(cancel))
        .route("/v1/geozones", post(add_zone).get(list_zones))
        .route("/v1/geozones/{id}", axum::routing::delete(remove_zone))
}

async fn set_pin(
    State(state): State<AppState>,
    DeviceAuth(me): DeviceAuth,
    AppJson(b): AppJson<PinSetup>,
) -> Result<StatusCode> {
    crate::domain::pins::set_pin(&state, &me, &b.pin, b.duress_pin.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends the caller's own SOS with the PIN; the duress PIN gets the same answer (see
/// `alerts::cancel_with_pin`).
async fn cancel_alert(
    State(state): State<AppState>,
    DeviceAuth(me): DeviceAuth,
    Path(id): Path<String>,
    AppJson(b): AppJson<PinBody>,
) -> Result<Json<alertme_protocol::StatusBody>> {
    let status = crate::domain::alerts::cancel_with_pin(&state, &me, &id, &b.pin).await?;
    Ok(Json(alertme_protocol::StatusBody { status: status.as_str().to_owned() }))
}

async fn start(
    State(state): State<AppState>,
    DeviceAuth(me): DeviceAuth,
    AppJson(b): AppJson<TimerStart>,
) -> Result<(StatusCode, Json<Timer>)> {
    Ok((StatusCode::CREATED, Json(timers::start(&state, &me, b).await?)))
}

async fn list(State(state): State<AppState>, DeviceAuth(me): DeviceAuth) -> Result<Json<Vec<Timer>>> {
    Ok(Json(timers::list(&state, &me).await?))
}

async fn extend(
    State(state): State<AppState>,
    DeviceAuth(me): DeviceAuth,
    Path(id): Path<String>,
    AppJson(b): AppJson<alertme_protocol::TimerExtend>,
) -> Result<Json<Timer>> {
    Ok(Json(timers::extend(&state, &me, &id, b.duration_s).await?))
}

async fn check_in(
    State(state): State<AppState>,
    DeviceAuth(me): DeviceAuth,
    Path(id): Path<String>,
    AppJson(b): AppJson<PinBody>,
) -> Result<Json<Timer>> {
    Ok(Json(timers::finish(&state, &me, &id, &b.pin, status::CHECKED_IN).await?))
}

async fn cancel(
    State(state): State<AppState>,
    DeviceAuth(me): DeviceAuth,
    Path(id): Path<String>,
    AppJson(b): AppJson<PinBody>,
) -> Result<Json<Timer>> {
    Ok(Json(timers::finish(&state, &me, &id, &b.pin, status::CANCELLED).await?))
}

async fn add_zone(
    State(state): State<AppState>,
    DeviceAuth(me): DeviceAuth,
    AppJson(z): AppJson<crate::domain::geozones::Zone>,
) -> Result<(StatusCode, Json<crate::domain::geozones::Zone>)> {
    Ok((StatusCode::CREATED, Json(crate::domain::geozones::create(&state, &me.user_id, z).await?)))
}

async fn list_zones(
    State(state): State<AppState>,
    DeviceAuth(me): DeviceAuth,
) -> Result<Json<Vec<crate::domain::geozones::Zone>>> {
    Ok(Json(crate::domain::geozones::list(&state, &me.user_id).await?))
}

async fn remove_zone(
    State(state): State<AppState>,
    DeviceAuth(me): DeviceAuth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    crate::domain::geozones::remove(&state, &me.user_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
