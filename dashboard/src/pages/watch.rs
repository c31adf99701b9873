//! `/w/TOKEN`: where a contact's link lands. Where the person is now, what they hear, what is
//! being done; after the SOS, the trail and the recording on one timeline.

use alertme_protocol::{AlertStatus, RecordingPart};
use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::api::{self, ApiError, Config};
use crate::components::map::Map;
use crate::components::place::PlacePanel;
use crate::components::timeline::Timeline;
use crate::i18n::use_i18n;
use crate::watch::audio::Support;
use crate::watch::live::{self, Link, Live};

/// Why the page cannot show an alert.
#[derive(Clone, Copy, PartialEq)]
enum Load {
    Loading,
    Ready,
    Invalid,
    Expired,
    Offline,
}

fn query_value(s: &str) -> String {
    js_sys::encode_uri_component(s).as_string().unwrap_or_default()
}

/// The live view of one alert, opened with a watch token (or, from the console, a responder
/// token plus the alert id).
#[component]
pub fn Watch(
    /// Watch token from the link, or a responder token.
    token: String,
    /// Alert id, when `token` is a responder's.
    alert: Option<String>,
) -> impl IntoView {
    let i = use_i18n();
    let live = Live::new();
    let load = RwSignal::new(Load::Loading);
    let tiles = RwSignal::new(String::new());
    let attribution = RwSignal::new(String::new());
    let now = RwSignal::new(api::now_ms());
    let playing = RwSignal::new(false);
    let replay_ms = RwSignal::new(None::<f64>);
    let audio_ref = NodeRef::<leptos::html::Video>::new();
    let socket = StoredValue::new_local(None::<crate::ws::Socket>);
    let player = StoredValue::new_local(None::<crate::watch::audio::Player>);

    let mut query = format!("token={}", query_value(&token));
    if let Some(a) = &alert {
        query.push_str(&format!("&alert={}", query_value(a)));
    }
    set_interval(move || now.set(api::now_ms()), std::time::Duration::from_secs(1));
    // Leaving the view (the console switching alerts) closes its socket.
    on_cleanup(move || {
        socket.with_value(|s| {
            if let Some(s) = s {
                s.close();
            }
        })
    });

    {
        let query = query.clone();
        leptos::task::spawn_local(async move {
            if let Ok(c) = api::get_json::<Config>("/v1/config").await {
                tiles.set(c.tile_url);
                attribution.set(c.tile_attribution);
            }
            match api::get_json::<alertme_protocol::AlertInfo>(&format!("/v1/watch/alert?{query}")).await {
                Ok(info) => {
                    live.alert.set(Some(info));
                    load.set(Load::Ready);
                }
                Err(ApiError::Status(410)) => {
                    load.set(Load::Expired);
                    return;
                }
                Err(ApiError::Status(400 | 401 | 403 | 404)) => {
                    load.set(Load::Invalid);
                    return;
                }
                Err(_) => {
                    load.set(Load::Offline);
                    return;
                }
            }
            let Some(audio) = audio_ref.get_untracked() else { return };
            let el: web_sys::HtmlMediaElement = audio.unchecked_into();
            let (s, p) = live::follow(live, format!("/v1/watch?{query}"), el);
            socket.set_value(Some(s));
            player.set_value(Some(p));
        });
    }

    // Once over, offer the stored recording: loaded when (and each time) the alert is seen ended.
    // A recording the phone uploads (during or after) shows up too: the list is read again
    // every 20 s while the page is open.
    let ended_id = Memo::new(move |_| {
        live.alert.with(|a| a.as_ref().filter(|a| a.status != AlertStatus::Active).map(|a| a.id.clone()))
    });
    let alert_id = Memo::new(move |_| live.alert.with(|a| a.as_ref().map(|a| a.id.clone())));
    let refresh = RwSignal::new(0u32);
    set_interval(move || refresh.update(|n| *n += 1), std::time::Duration::from_secs(20));
    let parts = {
        let query = query.clone();
        LocalResource::new(move || {
            let (id, query, over) = (alert_id.get(), query.clone(), ended_id.with(Option::is_some));
            refresh.track();
            async move {
                let Some(id) = id else { return Vec::new() };
                let url = format!("/v1/alerts/{id}/recording?{query}");
                let list = api::get_json::<Vec<RecordingPart>>(&url).await.unwrap_or_default();
                // While live, the stream plays above; only what was uploaded is offered here.
                list.into_iter()
                    .filter(|r| over || r.uploaded)
                    .map(|mut r| {
                        r.url = format!("{}?{query}", r.url);
                        r
                    })
                    .collect::<Vec<_>>()
            }
        })
    };

    let trail = Signal::derive(move || {
        let t = live.trail.get();
        match (replay_ms.get(), t.first().map(|f| f.time_ms)) {
            (Some(ms), Some(t0)) => t.into_iter().filter(|f| (f.time_ms - t0) as f64 <= ms).collect(),
            _ => t,
        }
    });
    let title = move || {
        live.alert.get().map_or_else(
            || i.t("watch-title-loading"),
            |a| {
                let id = match a.status {
                    AlertStatus::Active => "watch-title-active",
                    AlertStatus::Resolved => "watch-title-resolved",
                    AlertStatus::Cancelled => "watch-title-ended-phone",
                };
                i.ta(id, &[("name", a.user_name.into())])
            },
        )
    };
    let over = move || ended_id.with(Option::is_some);
    let updated = move || {
        // After the end nothing updates any more: "updated 6 min ago" would only mislead.
        if over() {
            return None;
        }
        let seen = live.fix_seen_ms.get()?;
        let secs = ((now.get() - seen) / 1000.0).max(0.0).round();
        Some(if secs < 2.0 { i.t("watch-updated-now") } else { i.ta("watch-updated", &[("n", secs.into())]) })
    };
    // Built once: only the words change, so the live region is announced when the state
    // changes (connected, lost, over) and not re-inserted with every position.
    let state = Memo::new(move |_| {
        let connected = live.phone.with(|p| p.connected);
        match live.link.get() {
            Link::Connecting => ("warn", "watch-link-connecting"),
            Link::Reconnecting => ("warn", "watch-link-reconnecting"),
            Link::Ended => ("ok", "watch-link-ended"),
            Link::Revoked => ("bad", "watch-link-revoked"),
            Link::Live if !connected => ("bad", "watch-phone-lost"),
            Link::Live => ("ok", "watch-phone-connected"),
        }
    });
    // Live readings only while it is live.
    let battery = Memo::new(move |_| live.current().and_then(|f| f.battery_pct).filter(|_| !over()));
    let health = move || {
        view! {
            <div class=move || format!("health {}", state.get().0) data-testid="health">
                <span role="status" aria-live="polite">{move || i.t(state.get().1)}</span>
                {move || battery.get().map(|b| view! { <span class="battery">{i.ta("watch-battery", &[("pct", b.into())])}</span> })}
                <span class="updated" data-testid="updated">{updated}</span>
            </div>
        }
    };
    let play = move |_| {
        let Some(audio) = audio_ref.get_untracked() else { return };
        let el: web_sys::HtmlMediaElement = audio.unchecked_into();
        el.set_muted(false);
        el.set_autoplay(true);
        let _ = el.play();
        player.with_value(|p| {
            if let Some(p) = p {
                p.resume();
            }
        });
        playing.set(true);
    };
    let audio_panel = move || {
        // Over: no live controls; the recording is offered below.
        if over() {
            return ().into_any();
        }
        match live.audio.get() {
        Support::Unknown => view! { <p class="muted">{move || i.t("watch-audio-waiting")}</p> }.into_any(),
        Support::Unsupported => view! { <p class="muted">{move || i.t("watch-audio-unsupported")}</p> }.into_any(),
        // Browsers play sound only after a gesture: one big button, and why it is there.
        Support::Live | Support::Decoder => view! {
            <button class="play" data-testid="play" class:on=move || playing.get() on:click=play
                aria-describedby="play-why">
                {move || i.t(match (playing.get(), live.video.get()) {
                    (true, false) => "watch-listening",
                    (true, true) => "watch-watching",
                    (false, false) => "watch-tap-listen",
                    (false, true) => "watch-tap-watch",
                })}
            </button>
            <p id="play-why" class="muted small" hidden=move || playing.get()>{move || i.t("watch-tap-why")}</p>
        }
        .into_any(),
    }
    };
    let replay = move || {
        let p = parts.get().unwrap_or_default();
        (!p.is_empty()).then(|| {
            let moved = move |e: leptos::ev::Event| {
                let el: web_sys::HtmlMediaElement = event_target(&e);
                replay_ms.set(Some(el.current_time() * 1000.0));
            };
            let players = p
                .into_iter()
                .map(|r| {
                    if r.track == "video" {
                        view! {
                            <video controls playsinline preload="metadata" src=r.url.clone()
                                data-testid="recording" class="replay-video" on:timeupdate=moved></video>
                        }
                        .into_any()
                    } else {
                        view! {
                            <audio controls preload="metadata" src=r.url.clone() data-testid="recording"
                                on:timeupdate=moved></audio>
                        }
                        .into_any()
                    }
                })
                .collect::<Vec<_>>();
            let title = move || i.t(if over() { "watch-recording" } else { "watch-recording-sent" });
            view! {
                <section class="replay">
                    <h2>{title}</h2>
                    <p class="muted">{move || i.t("watch-replay-hint")}</p>
                    {players}
                </section>
            }
        })
    };

    // On the console (a responder token and an alert id), a contact's link can be withdrawn.
    let revoke = alert.clone().map(|alert_id| {
        let token = token.clone();
        Callback::new(move |contact_id: String| {
            let (token, alert_id) = (token.clone(), alert_id.clone());
            leptos::task::spawn_local(async move {
                let url = format!("/v1/alerts/{alert_id}/links/{contact_id}");
                let _ = api::send_json::<serde_json::Value>("DELETE", &url, Some(&token), None).await;
            });
        })
    });

    // Why the page cannot show the alert, if it cannot.
    let blocked = move || match (load.get(), live.link.get()) {
        (Load::Invalid, _) => Some(("watch-invalid-title", "watch-invalid-body")),
        (Load::Expired, _) => Some(("watch-expired-title", "watch-expired-body")),
        (_, Link::Revoked) => Some(("watch-withdrawn-title", "watch-withdrawn-body")),
        _ => None,
    };

    view! {
        <main class="watch">
            <Show when=move || blocked().is_none() fallback=move || {
                let (h, p) = blocked().unwrap_or_default();
                view! {
                    <section class="invalid" data-testid="invalid">
                        <h1>{move || i.t(h)}</h1>
                        <p>{move || i.t(p)}</p>
                    </section>
                }
            }>
                <header class=move || format!("status {}", live.alert.get().map_or("loading", |a| if a.status == AlertStatus::Active { "active" } else { "ended" }))>
                    <h1 data-testid="title">{title}</h1>
                    {move || live.alert.get().and_then(|a| {
                        let why = if a.duress {
                            Some(i.ta("watch-why-duress", &[("name", a.user_name.into())]))
                        } else {
                            crate::reason::of_alert(i, &a)
                                .map(|reason| i.ta("watch-why-auto", &[("reason", reason.into())]))
                        };
                        why.map(|w| view! { <p class="why" data-testid="why">{w}</p> })
                    })}
                </header>
                <Show when=move || load.get() == Load::Offline>
                    <p class="bad">{move || i.t("watch-offline")}</p>
                </Show>
                {health}
                // The one tap that lets a relative hear the person: first, above the map.
                <section class="audio">
                    {audio_panel}
                </section>
                // The phone's camera, when it streams one (above the map); audio-only
                // recordings play through the same element, hidden.
                <video node_ref=audio_ref data-testid="live-audio" class="live-video" playsinline
                    class:shown=move || live.video.get() && !over()
                    aria-label=move || i.t("watch-video-label")></video>
                // Before the first position the map is empty: say why, rather than look broken.
                <Show when=move || !over() && load.get() == Load::Ready && live.trail.with(Vec::is_empty)>
                    <p class="waiting-fix" data-testid="no-fix">{move || i.t("watch-waiting-fix")}</p>
                </Show>
                <Map trail=trail pins=Signal::derive(Vec::new) tiles=tiles attribution=attribution follow=true />
                <PlacePanel alert_id=alert_id credential=Ok(query.clone()) now=now
                    seq=Signal::derive(move || live.current().map_or(0, |f| f.seq)) />
                <div hidden data-testid="perf"
                    data-first-fix=move || live.first_fix_ms.get().map(|v| v.round().to_string())
                    data-first-audio=move || live.first_audio_ms.get().map(|v| v.round().to_string())
                    data-decoded-frames=move || live.decoded_frames.get().to_string()
                    data-audio-mode=move || format!("{:?}", live.audio.get())></div>
                <Timeline alert=live.alert deliveries=live.deliveries revoke=revoke />
                {replay}
            </Show>
        </main>
    }
}
