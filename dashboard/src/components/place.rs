//! Where the person is, in forms that help act on it: the address, coordinates with accuracy and age, a Plus Code, directions, and a copy for the emergency services.

use alertme_protocol::Place;
use leptos::prelude::*;

use crate::api;
use crate::components::timeline::ago;
use crate::i18n::{use_i18n, I18n};

/// The panel for an alert: read from `/v1/alerts/{id}/place` when the alert is known and again
/// every 15 newer fixes (about 15 s while the phone sends one a second).
#[component]
pub fn PlacePanel(
    /// The alert, once known.
    alert_id: Memo<Option<String>>,
    /// The page's credential: `Ok("token=…")` for a query (a watch link, which is in the URL
    /// anyway), `Err(token)` for a device token, sent as a header (never in a URL).
    credential: Result<String, String>,
    /// The newest fix's seq: the place is read again as the person moves.
    seq: Signal<u64>,
    /// The page's clock, ms.
    now: RwSignal<f64>,
) -> impl IntoView {
    let i = use_i18n();
    let copied = RwSignal::new(None::<&'static str>);
    // Only a new bucket reads the place again, not every fix.
    let bucket = Memo::new(move |_| seq.get() / 15);
    // The address last known: kept while an answer comes without one (the service was busy).
    let last_address = RwSignal::new(None::<String>);
    let place = LocalResource::new(move || {
        let (id, credential) = (alert_id.get(), credential.clone());
        bucket.track();
        async move {
            let id = id?;
            // The address in the page's language.
            let lang = i.lang();
            let mut p = match credential {
                Ok(query) => {
                    api::get_json::<Place>(&format!("/v1/alerts/{id}/place?{query}&lang={lang}")).await
                }
                Err(token) => {
                    let url = format!("/v1/alerts/{id}/place?lang={lang}");
                    api::send_json::<Place>("GET", &url, Some(&token), None).await
                }
            }
            .ok()?;
            match &p.address {
                Some(a) => last_address.set(Some(a.clone())),
                None => p.address = last_address.get_untracked(),
            }
            Some(p)
        }
    });
    move || {
        let p = place.get().flatten()?;
        let age = move || ago(i, now.get() - p.time_ms as f64);
        let text = {
            let p = p.clone();
            move || emergency_text(i, &p, &age())
        };
        let copy = {
            let text = text.clone();
            move |_| {
                let t = text();
                let Some(w) = web_sys::window() else { return };
                // No clipboard outside secure contexts (a plain-http address): the text below
                // can still be selected.
                let nav = w.navigator();
                let has = js_sys::Reflect::get(&nav, &"clipboard".into()).is_ok_and(|c| !c.is_undefined());
                if !has {
                    copied.set(Some("place-select"));
                    return;
                }
                let done = wasm_bindgen_futures::JsFuture::from(nav.clipboard().write_text(&t));
                leptos::task::spawn_local(async move {
                    copied.set(Some(if done.await.is_ok() { "place-copied" } else { "place-select" }));
                });
            }
        };
        let (lat, lon) = (p.lat, p.lon);
        Some(view! {
            <section class="place" data-testid="place">
                <h2>{move || i.t("place-title")}</h2>
                {p.address.clone().map(|a| view! { <p class="address" data-testid="address">{a}</p> })}
                <p class="coords">
                    {let p = p.clone(); move || i.ta("place-coords", &[
                        ("coords", format!("{lat:.6}, {lon:.6}").into()),
                        ("accuracy", format!("{:.0}", p.accuracy_m).into()),
                        ("age", age().into()),
                        ("code", p.plus_code.clone().into()),
                    ])}
                </p>
                <div class="place-actions">
                    <a class="button" data-testid="directions" href=format!("geo:{lat:.6},{lon:.6}?q={lat:.6},{lon:.6}")>{move || i.t("place-directions")}</a>
                    <button data-testid="copy-location" on:click=copy>{move || i.t("place-copy")}</button>
                </div>
                <p class="muted small">
                    {move || i.t("place-open-in")} " "
                    <a target="_blank" rel="noopener noreferrer" href=format!("https://www.openstreetmap.org/?mlat={lat:.6}&mlon={lon:.6}#map=18/{lat:.6}/{lon:.6}")>"OpenStreetMap"</a>
                    " · "
                    <a target="_blank" rel="noopener noreferrer" href=format!("https://www.google.com/maps/dir/?api=1&destination={lat:.6},{lon:.6}")>"Google Maps"</a>
                    " · "
                    <a target="_blank" rel="noopener noreferrer" href=format!("https://maps.apple.com/?daddr={lat:.6},{lon:.6}")>"Apple Maps"</a>
                </p>
                <p class="muted small" aria-live="polite" data-testid="copied">{move || copied.get().map(|id| i.t(id))}</p>
                <pre class="location-text" data-testid="location-text">{text}</pre>
            </section>
        })
    }
}

/// What an emergency operator needs, in the order they ask: the address, the coordinates with
/// their accuracy and age, the Plus Code.
pub fn emergency_text(i: I18n, p: &Place, age: &str) -> String {
    let mut out = String::new();
    if let Some(a) = &p.address {
        out.push_str(a);
        out.push('\n');
    }
    out.push_str(&i.ta(
        "place-emergency",
        &[
            ("coords", format!("{:.6}, {:.6}", p.lat, p.lon).into()),
            ("accuracy", format!("{:.0}", p.accuracy_m).into()),
            ("age", age.into()),
        ],
    ));
    // A Plus Code reads the same in every language.
    out.push_str(&format!("\nPlus Code: {}", p.plus_code));
    out
}
