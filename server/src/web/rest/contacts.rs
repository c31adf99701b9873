//! `/v1/contacts`: a person's emergency contacts.

use alertme_protocol::{Contact, ContactInput};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};

use crate::domain::contacts;
use crate::error::Result;
use crate::web::error::AppJson;
use crate::web::extract::DeviceAuth;
use crate::web::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/contacts", get(list).post(add))
        .route("/v1/contacts/{id}", put(update).delete(remove))
}

async fn list(State(state): State<AppState>, DeviceAuth(me): DeviceAuth) -> Result<Json<Vec<Contact>>> {
    Ok(Json(contacts::list(&state.db, &me.user_id).await?))
}

async fn add(
    State(state): State<AppState>,
    DeviceAuth(me): DeviceAuth,
    AppJson(input): AppJson<ContactInput>,
) -> Result<(StatusCode, Json<Contact>)> {
    let (c, queued) =
        contacts::add(&state.db, &state.secret, &me.user_id, input, &state.guard.countries).await?;
    if queued {
        state.outbox.wake();
    }
    Ok((StatusCode::CREATED, Json(c)))
}

async fn update(
    State(state): State<AppState>,
    DeviceAuth(me): DeviceAuth,
    Path(id): Path<String>,
    AppJson(input): AppJson<ContactInput>,
) -> Result<Json<Contact>> {
    Ok(Json(
        contacts::update(&state.db, &state.secret, &me.user_id, &id, input, &state.guard.countries).await?,
    ))
}

async fn remove(
    State(state): State<AppState>,
    DeviceAuth(me): DeviceAuth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let revoked = contacts::remove(&state.db, &me.user_id, &id).await?;
    crate::domain::links::close_links(&state.hub, revoked);
    Ok(StatusCode::NO_CONTENT)
}
