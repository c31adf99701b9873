//! `/console`: the responder console. Every active alert on one map and in a list by urgency,
//! unmissable signalling of new ones, claim and resolve, live detail, and the finished ones.

mod detail;
mod evidence;
mod finished;
mod keys;
mod row;

use std::collections::HashSet;
use std::time::Duration;

use alertme_protocol::{AlertStatus, AlertSummary, ResponderCmd, ResponderMsg};
use leptos::prelude::*;

use crate::api;
use crate::components::map::{Map, Pin};
use crate::i18n::{use_i18n, Arg, I18n};
use crate::ws::{Event, Socket};
use detail::Detail;
use finished::Finished;
use row::AlertRow;

const TOKEN_KEY: &str = "alertme.responder_token";

/// What went wrong, kept as what happened (not as words), so a language switch rewords it.
#[derive(Clone)]
enum Problem {
    /// The server closed the socket before it opened: the token was refused.
    Refused,
    /// A command failed: the server's code and its own words.
    Command { code: String, detail: String },
}

impl Problem {
    fn text(&self, i: I18n) -> String {
        match self {
            Problem::Refused => i.t("console-token-refused"),
            Problem::Command { code, detail } => match code.as_str() {
                "already_ended" => i.t("console-error-ended"),
                "not_found" => i.t("console-error-not-active"),
                "internal" => i.t("console-error-retry"),
                // Anything else (a note the server would not take, say) in the server's words.
                _ => detail.clone(),
            },
        }
    }
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

/// How often the alarm sounds again while an alert waits for someone to take it.
const ALARM_EVERY: Duration = Duration::from_secs(8);

/// Three short beeps; browsers allow sound once the responder clicked something.
fn beep(ctx: &web_sys::AudioContext) {
    let t = ctx.current_time();
    for i in 0..3 {
        let (Ok(osc), Ok(gain)) = (ctx.create_oscillator(), ctx.create_gain()) else { return };
        osc.frequency().set_value(880.0);
        let _ = gain.gain().set_value_at_time(0.25, t + i as f64 * 0.25);
        let _ = osc.connect_with_audio_node(&gain);
        let _ = gain.connect_with_audio_node(&ctx.destination());
        let _ = osc.start_with_when(t + i as f64 * 0.25);
        let _ = osc.stop_with_when(t + i as f64 * 0.25 + 0.15);
    }
}

/// The console page: the responder's socket and sign-in; the board once signed in.
#[component]
pub fn Console() -> impl IntoView {
    let token =
        RwSignal::new(storage().and_then(|s| s.get_item(TOKEN_KEY).ok().flatten()).unwrap_or_default());
    let signed_in = RwSignal::new(false);
    let me = RwSignal::new(String::new());
    let alerts = RwSignal::new(Vec::<AlertSummary>::new());
    let flash = RwSignal::new(false);
    // Sound is allowed (the browser's audio runs) and how many alarms sounded (for the tests).
    let sound_on = RwSignal::new(false);
    let beeps = RwSignal::new(0u32);
    // The last new alert, in words, for screen readers.
    let announce = RwSignal::new(String::new());
    let i = use_i18n();
    let error = RwSignal::new(None::<Problem>);
    // Bumped when an alert ends, so the finished list reloads.
    let ended = RwSignal::new(0u32);
    let socket = StoredValue::new_local(None::<Socket>);
    let sound = StoredValue::new_local(None::<web_sys::AudioContext>);
    let known = StoredValue::new_local(HashSet::<String>::new());

    let sound_alarm = move || {
        if !sound_on.get_untracked() {
            return;
        }
        sound.with_value(|c| {
            if let Some(c) = c {
                beep(c);
                beeps.update(|n| *n += 1);
            }
        });
    };
    // Until someone takes every alert, the alarm sounds again (the rows keep flashing in CSS).
    let repeat = set_interval_with_handle(
        move || {
            if alerts.with_untracked(|l| l.iter().any(|a| a.alert.claimed_by.is_none())) {
                sound_alarm();
            }
        },
        ALARM_EVERY,
    );
    on_cleanup(move || {
        if let Ok(h) = repeat {
            h.clear();
        }
    });
    let alarm = move || {
        flash.set(true);
        sound_alarm();
        let cb = wasm_bindgen::closure::Closure::once_into_js(move || flash.set(false));
        if let Some(w) = web_sys::window() {
            use wasm_bindgen::JsCast;
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(cb.unchecked_ref(), 4000);
        }
    };

    let on_message = move |msg: ResponderMsg| match msg {
        ResponderMsg::Overview { responder, alerts: list } => {
            me.set(responder);
            known.update_value(|k| k.extend(list.iter().map(|a| a.alert.id.clone())));
            alerts.set(list);
        }
        ResponderMsg::Update { alert } => {
            let id = alert.alert.id.clone();
            let active = alert.alert.status == AlertStatus::Active;
            let is_new = active && known.try_update_value(|k| k.insert(id.clone())).unwrap_or(false);
            if is_new {
                announce
                    .set(i.ta("console-new-alert", &[("name", Arg::from(alert.alert.user_name.clone()))]));
            }
            alerts.update(|list| {
                list.retain(|a| a.alert.id != id);
                if active {
                    list.push(alert);
                }
            });
            if is_new {
                alarm();
            }
            if !active {
                ended.update(|n| *n += 1);
            }
        }
        ResponderMsg::Error { code, detail } => error.set(Some(Problem::Command { code, detail })),
        ResponderMsg::Done { .. } => error.set(None),
    };

    let connect = move || {
        let t = token.get_untracked();
        if t.is_empty() {
            return;
        }
        if let Some(s) = storage() {
            let _ = s.set_item(TOKEN_KEY, &t);
        }
        if sound.with_value(Option::is_none) {
            let ctx = web_sys::AudioContext::new().ok();
            // Running when this came from a click; else it waits for the "turn on sound" one.
            sound_on.set(ctx.as_ref().is_some_and(|c| c.state() == web_sys::AudioContextState::Running));
            sound.set_value(ctx);
        }
        let url = move || api::ws_url(&format!("/v1/responder?token={}", js_sys::encode_uri_component(&t)));
        let s = Socket::open(url, move |e| match e {
            Event::Open => {
                signed_in.set(true);
                error.set(None);
                true
            }
            Event::Text(text) => {
                if let Ok(m) = serde_json::from_str::<ResponderMsg>(&text) {
                    on_message(m);
                }
                true
            }
            Event::Binary(_) => true,
            Event::Closed(_) => {
                if !signed_in.get_untracked() {
                    error.set(Some(Problem::Refused));
                    signed_in.set(false);
                    return false;
                }
                true
            }
        });
        socket.set_value(Some(s));
    };
    if !token.get_untracked().is_empty() {
        connect();
    }
    let send = Callback::new(move |cmd: ResponderCmd| {
        let text = serde_json::to_string(&cmd).expect("serializes");
        socket.with_value(|s| {
            if let Some(s) = s {
                s.send(&text);
            }
        });
    });
    // Any click or key is the gesture browsers want before sound: the first one turns the
    // alarm's sound on (the button only says so), and sound counts as on once it really runs.
    let wake = move || {
        if sound_on.get_untracked() {
            return;
        }
        sound.with_value(|c| {
            if let Some(Ok(p)) = c.as_ref().map(web_sys::AudioContext::resume) {
                leptos::task::spawn_local(async move {
                    if wasm_bindgen_futures::JsFuture::from(p).await.is_ok() {
                        sound_on.set(true);
                    }
                });
            }
        });
    };
    let on_click = window_event_listener(leptos::ev::click, move |_| wake());
    let on_key = window_event_listener(leptos::ev::keydown, move |_| wake());
    on_cleanup(move || {
        on_click.remove();
        on_key.remove();
    });
    let enable_sound = Callback::new(move |()| wake());
    let sign_in = move || view! { <SignIn token error on_submit=Callback::new(move |()| connect()) /> };
    view! {
        <main class="console-page">
            <Show when=move || signed_in.get() fallback=sign_in>
                <Board token me alerts flash error ended send sound_on beeps enable_sound announce />
            </Show>
        </main>
    }
}

/// The responder's token, asked for once (kept in this browser).
#[component]
fn SignIn(
    token: RwSignal<String>,
    error: RwSignal<Option<Problem>>,
    on_submit: Callback<()>,
) -> impl IntoView {
    let i = use_i18n();
    view! {
        <form class="signin" on:submit=move |e| { e.prevent_default(); on_submit.run(()); }>
            <h1>{move || i.t("console-title")}</h1>
            <label>{move || i.t("console-token")}
                <input type="password" data-testid="token" prop:value=move || token.get()
                    on:input=move |e| token.set(event_target_value(&e)) />
            </label>
            <button type="submit" data-testid="signin">{move || i.t("console-sign-in")}</button>
            {move || error.get().map(|e| view! { <p class="bad">{e.text(i)}</p> })}
        </form>
    }
}

/// The dispatcher's view: the list by urgency (with a filter) on the left, every active alert on
/// the map in the middle, the selected one's detail on the right; j/k, c, r, n at the keyboard.
#[component]
fn Board(
    token: RwSignal<String>,
    me: RwSignal<String>,
    alerts: RwSignal<Vec<AlertSummary>>,
    flash: RwSignal<bool>,
    error: RwSignal<Option<Problem>>,
    ended: RwSignal<u32>,
    send: Callback<ResponderCmd>,
    sound_on: RwSignal<bool>,
    beeps: RwSignal<u32>,
    enable_sound: Callback<()>,
    announce: RwSignal<String>,
) -> impl IntoView {
    let i = use_i18n();
    let selected = RwSignal::new(None::<String>);
    let confirm = RwSignal::new(None::<String>);
    let filter = RwSignal::new(String::new());
    // The rows' "3 min ago" move on with it.
    let now = RwSignal::new(api::now_ms());
    set_interval(move || now.set(api::now_ms()), Duration::from_secs(15));
    let config = LocalResource::new(|| api::get_json::<api::Config>("/v1/config"));
    let tiles =
        Signal::derive(move || config.get().and_then(Result::ok).map(|c| c.tile_url).unwrap_or_default());
    let attribution = Signal::derive(move || {
        config.get().and_then(Result::ok).map(|c| c.tile_attribution).unwrap_or_default()
    });
    let sorted = Memo::new(move |_| {
        let needle = filter.get().trim().to_lowercase();
        let mut v: Vec<AlertSummary> = alerts
            .get()
            .into_iter()
            .filter(|a| needle.is_empty() || a.alert.user_name.to_lowercase().contains(&needle))
            .collect();
        // Unclaimed first, then the longest waiting.
        v.sort_by_key(|a| (a.alert.claimed_by.is_some(), a.alert.started_ms));
        v
    });
    // On arrival the most urgent alert is selected, so its detail is one look away; after
    // that the responder chooses (Close closes).
    let arrived = StoredValue::new(false);
    Effect::new(move |_| {
        if arrived.get_value() {
            return;
        }
        if let Some(first) = sorted.with(|v| v.first().map(|a| a.alert.id.clone())) {
            arrived.set_value(true);
            selected.set(Some(first));
        }
    });
    // A question about another alert does not carry over to the next one.
    Effect::new(move |_| {
        selected.track();
        confirm.set(None);
    });
    let order =
        Signal::derive(move || sorted.with(|v| v.iter().map(|a| a.alert.id.clone()).collect::<Vec<_>>()));
    keys::listen(keys::Keys { order, alerts, selected, confirm, send });
    let pins = Signal::derive(move || {
        let chosen = selected.get();
        sorted
            .get()
            .iter()
            .filter_map(|a| {
                let f = a.last_fix.as_ref()?;
                Some(Pin {
                    id: a.alert.id.clone(),
                    lat: f.lat,
                    lon: f.lon,
                    accuracy_m: f.accuracy_m,
                    label: a.alert.user_name.clone(),
                    urgent: a.alert.claimed_by.is_none() || chosen.as_deref() == Some(a.alert.id.as_str()),
                })
            })
            .collect()
    });
    let summary = Signal::derive(move || {
        let id = selected.get()?;
        alerts.with(|l| l.iter().find(|a| a.alert.id == id).cloned())
    });
    view! {
        <div class="console" class:flash=move || flash.get() data-testid="alarm"
            data-beeps=move || beeps.get().to_string()>
            <header>
                <h1>{move || i.t("console-active")} " " <span data-testid="count">{move || alerts.get().len()}</span></h1>
                <span class="muted">{move || i.ta("console-signed-in", &[("name", Arg::from(me.get()))])}</span>
                <Show when=move || !sound_on.get()>
                    <button class="sound" data-testid="enable-sound" on:click=move |_| enable_sound.run(())>
                        {move || i.t("console-sound-on")}
                    </button>
                </Show>
                <span class="muted keys">{move || i.t("console-keys")}</span>
            </header>
            {move || error.get().map(|e| view! { <p class="bad">{e.text(i)}</p> })}
            <section class="list" aria-label=move || i.t("console-active")>
                <input type="search" class="filter" data-testid="filter" placeholder=move || i.t("console-filter")
                    aria-label=move || i.t("console-filter") prop:value=move || filter.get()
                    on:input=move |e| filter.set(event_target_value(&e)) />
                <ul class="alerts">
                    <For
                        each=move || sorted.get()
                        key=|a| (a.alert.id.clone(), a.alert.claimed_by.clone(), a.phone.connected, a.alert.duress)
                        children=move |a| view! { <AlertRow alert=a now selected send /> }
                    />
                </ul>
                <Show when=move || alerts.with(Vec::is_empty)>
                    <p class="muted">{move || i.t("console-none")}</p>
                </Show>
                <Finished token selected ended />
            </section>
            <section class="overview" aria-label=move || i.t("map-label")>
                <Map trail=Signal::derive(Vec::new) pins=pins tiles=tiles attribution=attribution follow=false />
            </section>
            // New alerts are announced (a screen reader says the name); the detail is not live,
            // or its ticking clock would be read out every second.
            <p class="sr-only" aria-live="assertive" data-testid="announce">{move || announce.get()}</p>
            <section class="detail">
                {move || match selected.get() {
                    Some(id) => view! {
                        <button class="close" on:click=move |_| selected.set(None)>{move || i.t("console-close")}</button>
                        <Detail token=token.get_untracked() id summary confirm send />
                    }.into_any(),
                    None => view! { <p class="muted">{move || i.t("console-pick")}</p> }.into_any(),
                }}
            </section>
        </div>
    }
}
