//! `/console`: the responder console. Every active alert on one map and in a list by urgency,
//! unmissable signalling of new ones, claim and resolve, live detail, and the finished ones.

use std::collections::HashSet;

use alertme_protocol::{AlertInfo, AlertStatus, AlertSummary, ResponderCmd, ResponderMsg};
use leptos::prelude::*;

use crate::api;
use crate::components::map::{Map, Pin};
use crate::components::timeline::clock;
use crate::pages::watch::Watch;
use crate::ws::{Event, Socket};

const TOKEN_KEY: &str = "alertme.responder_token";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

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

/// The console page.
#[component]
pub fn Console() -> impl IntoView {
    let token =
        RwSignal::new(storage().and_then(|s| s.get_item(TOKEN_KEY).ok().flatten()).unwrap_or_default());
    let signed_in = RwSignal::new(false);
    let me = RwSignal::new(String::new());
    let alerts = RwSignal::new(Vec::<AlertSummary>::new());
    let flash = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let selected = RwSignal::new(None::<String>);
    let tiles = RwSignal::new(String::new());
    let finished = RwSignal::new(Vec::<AlertInfo>::new());
    let search = RwSignal::new(String::new());
    let socket = StoredValue::new_local(None::<Socket>);
    let sound = StoredValue::new_local(None::<web_sys::AudioContext>);
    let known = StoredValue::new_local(HashSet::<String>::new());

    leptos::task::spawn_local(async move {
        if let Ok(c) = api::get_json::<api::Config>("/v1/config").await {
            tiles.set(c.tile_url);
        }
    });

    let alarm = move || {
        flash.set(true);
        sound.with_value(|c| {
            if let Some(c) = c {
                beep(c);
            }
        });
        let cb = wasm_bindgen::closure::Closure::once_into_js(move || flash.set(false));
        if let Some(w) = web_sys::window() {
            use wasm_bindgen::JsCast;
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(cb.unchecked_ref(), 4000);
        }
    };

    let load_finished = move || {
        let q = search.get_untracked();
        let t = token.get_untracked();
        leptos::task::spawn_local(async move {
            let url = format!(
                "/v1/alerts?status=ended&limit=50&q={}&token={}",
                js_sys::encode_uri_component(&q),
                js_sys::encode_uri_component(&t)
            );
            if let Ok(list) = api::get_json::<Vec<AlertInfo>>(&url).await {
                finished.set(list);
            }
        });
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
            sound.set_value(web_sys::AudioContext::new().ok());
        }
        let url = move || api::ws_url(&format!("/v1/responder?token={}", js_sys::encode_uri_component(&t)));
        let s = Socket::open(url, move |e| match e {
            Event::Open => {
                signed_in.set(true);
                error.set(None);
                true
            }
            Event::Text(text) => {
                match serde_json::from_str::<ResponderMsg>(&text) {
                    Ok(ResponderMsg::Overview { responder, alerts: list }) => {
                        me.set(responder);
                        known.update_value(|k| k.extend(list.iter().map(|a| a.alert.id.clone())));
                        alerts.set(list);
                    }
                    Ok(ResponderMsg::Update { alert }) => {
                        let id = alert.alert.id.clone();
                        let active = alert.alert.status == AlertStatus::Active;
                        let is_new =
                            active && known.try_update_value(|k| k.insert(id.clone())).unwrap_or(false);
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
                            load_finished();
                        }
                    }
                    Ok(ResponderMsg::Error { detail, .. }) => error.set(Some(detail)),
                    Ok(ResponderMsg::Done { .. }) => error.set(None),
                    Err(_) => {}
                }
                true
            }
            Event::Binary(_) => true,
            Event::Closed(_) => {
                if !signed_in.get_untracked() {
                    error.set(Some("That token was not accepted.".into()));
                    signed_in.set(false);
                    return false;
                }
                true
            }
        });
        socket.set_value(Some(s));
        load_finished();
    };
    if !token.get_untracked().is_empty() {
        connect();
    }

    let send = move |cmd: ResponderCmd| {
        let text = serde_json::to_string(&cmd).expect("serializes");
        socket.with_value(|s| {
            if let Some(s) = s {
                s.send(&text);
            }
        });
    };
    let sorted = Memo::new(move |_| {
        let mut v = alerts.get();
        // Unclaimed first, then the longest waiting.
        v.sort_by_key(|a| (a.alert.claimed_by.is_some(), a.alert.started_ms));
        v
    });
    let pins = Signal::derive(move || {
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
                    urgent: a.alert.claimed_by.is_none(),
                })
            })
            .collect()
    });

    let sign_in = move || {
        view! {
            <form class="signin" on:submit=move |e| { e.prevent_default(); connect(); }>
                <h1>"Responder console"</h1>
                <label>"Responder token"
                    <input type="password" data-testid="token" prop:value=move || token.get()
                        on:input=move |e| token.set(event_target_value(&e)) />
                </label>
                <button type="submit" data-testid="signin">"Sign in"</button>
                {move || error.get().map(|e| view! { <p class="bad">{e}</p> })}
            </form>
        }
    };
    let row = move |a: AlertSummary| {
        let id = a.alert.id.clone();
        let (claim_id, resolve_id, open_id) = (id.clone(), id.clone(), id.clone());
        let claimed = a.alert.claimed_by.clone();
        let unclaimed = claimed.is_none();
        let notes = a.notes.clone();
        let note_id = id.clone();
        let draft = RwSignal::new(String::new());
        let age_min = ((api::now_ms() - a.alert.started_ms as f64) / 60_000.0).floor();
        view! {
            <li class:unclaimed=unclaimed data-testid="alert-row" data-alert=id.clone()>
                <button class="name" on:click=move |_| selected.set(Some(open_id.clone()))>{a.alert.user_name.clone()}</button>
                <span class="meta">{format!("since {} ({age_min} min)", clock(a.alert.started_ms))}</span>
                {a.alert.duress.then(|| view! { <span class="duress">"POSSIBLE DURESS"</span> })}
                {a.alert.note.clone().map(|n| view! { <span class="meta">{n}</span> })}
                <span class="meta">{if a.phone.connected { "phone connected" } else { "phone lost" }}</span>
                {match claimed {
                    Some(r) => view! { <span class="claimed">{format!("{r} is on it")}</span> }.into_any(),
                    None => view! {
                        <button data-testid="claim" on:click=move |_| send(ResponderCmd::Claim { alert_id: claim_id.clone() })>"Claim"</button>
                    }.into_any(),
                }}
                <button data-testid="resolve" on:click=move |_| send(ResponderCmd::Resolve { alert_id: resolve_id.clone() })>"Resolve"</button>
                <div class="notes">
                    {notes.iter().map(|n| view! {
                        <p class="note" data-testid="note">{format!("{} at {}: {}", n.by, clock(n.at_ms), n.text)}</p>
                    }).collect::<Vec<_>>()}
                    <form on:submit=move |e| {
                        e.prevent_default();
                        let text = draft.get_untracked();
                        if !text.trim().is_empty() {
                            send(ResponderCmd::Note { alert_id: note_id.clone(), text });
                            draft.set(String::new());
                        }
                    }>
                        <input placeholder="Note for the team" data-testid="note-input" prop:value=move || draft.get()
                            on:input=move |e| draft.set(event_target_value(&e)) />
                        <button type="submit">"Add note"</button>
                    </form>
                </div>
            </li>
        }
    };
    let board = move || {
        view! {
            <div class="console" class:flash=move || flash.get()>
                <header>
                    <h1>"Active alerts " <span data-testid="count">{move || alerts.get().len()}</span></h1>
                    <span class="muted">{move || format!("signed in as {}", me.get())}</span>
                </header>
                {move || error.get().map(|e| view! { <p class="bad">{e}</p> })}
                <div class="board">
                    <div>
                        <Map trail=Signal::derive(Vec::new) pins=pins tiles=tiles follow=false />
                        <ul class="alerts">
                            <For each=move || sorted.get() key=|a| (a.alert.id.clone(), a.alert.claimed_by.clone(), a.phone.connected, a.notes.len()) children=row />
                        </ul>
                        <Show when=move || alerts.get().is_empty()>
                            <p class="muted">"No active alerts."</p>
                        </Show>
                    </div>
                    <div class="detail">
                        {move || selected.get().map(|id| view! {
                            <button class="close" on:click=move |_| selected.set(None)>"Close"</button>
                            <Watch token=token.get_untracked() alert=Some(id) />
                        })}
                    </div>
                </div>
                <section class="finished">
                    <h2>"Finished alerts"</h2>
                    <form on:submit=move |e| { e.prevent_default(); load_finished(); }>
                        <input placeholder="Search by name" prop:value=move || search.get()
                            on:input=move |e| search.set(event_target_value(&e)) />
                        <button type="submit">"Search"</button>
                    </form>
                    <ul>
                        <For each=move || finished.get() key=|a| a.id.clone() children=move |a: AlertInfo| {
                            let id = a.id.clone();
                            view! {
                                <li><button class="name" on:click=move |_| selected.set(Some(id.clone()))>
                                    {format!("{} — {} {}", a.user_name, a.status.as_str(), clock(a.started_ms))}
                                </button></li>
                            }
                        } />
                    </ul>
                </section>
            </div>
        }
    };
    view! {
        <main class="console-page">
            <Show when=move || signed_in.get() fallback=sign_in>{board}</Show>
        </main>
    }
}
