//! Where the person is, in the forms that help: coordinates with accuracy and age, a Plus Code, and the address near them.

use alertme_protocol::Place;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::domain::Core;
use crate::error::{Error, Result};
use crate::storage::entity::fixes;

/// Languages the address may be asked in (others get English).
const LANGUAGES: &[&str] = &["en", "ru"];

/// The newest stored fix of an alert, its Plus Code and, with a geocoder, the address near it
/// in `language`. No fix yet: not found. The address is best effort: a busy or failing service
/// leaves it out (and is logged without the position).
pub async fn of_alert(state: &Core, alert_id: &str, language: &str) -> Result<Place> {
    let fix = fixes::Entity::find()
        .filter(fixes::Column::AlertId.eq(alert_id))
        .order_by_desc(fixes::Column::DeviceTime)
        .order_by_desc(fixes::Column::Seq)
        .one(&state.db)
        .await?
        .ok_or(Error::NotFound)?;
    let plus_code = open_location_code::encode(geo_types_point(fix.lon, fix.lat), 11);
    let language = LANGUAGES.iter().find(|l| language.starts_with(**l)).copied().unwrap_or("en");
    let address = match &state.geocoder {
        Some(g) => match g.address(alert_id, fix.lat, fix.lon, language).await {
            Ok(a) => a,
            Err(e) => {
                tracing::info!(error = %e, "no address this time");
                None
            }
        },
        None => None,
    };
    Ok(Place {
        lat: fix.lat,
        lon: fix.lon,
        accuracy_m: fix.accuracy_m,
        time_ms: fix.device_time,
        plus_code,
        address,
    })
}

/// The point type `open-location-code` takes (x is the longitude).
fn geo_types_point(lon: f64, lat: f64) -> geo04::Point<f64> {
    geo04::Point::new(lon, lat)
}
