//! `/sos`: the web SOS page. Sign in with a texted code, set up contacts and a PIN, then one big
//! button that streams position and microphone like the app does, survives reloads and dead
//! networks, and shows who is coming.

use std::time::Duration;

use alertme_protocol::{AlertStatus, Contact, Timer, VerifyResponse};
use leptos::prelude::*;
use serde_json::json;

use crate::api::{self, ApiError};
use crate::components::place::PlacePanel;
use crate::sos::account::{self, Account};
use crate::sos::engine::{self, Input, Link, Phase};
use crate::sos::sensors::SensorState;

/// Seconds between pressing SOS and the alert going out: time to undo a pocket press.
const COUNTDOWN_S: u32 = 3;

/// The page: sign-in, or the SOS console of a signed-in device.
#[component]
pub fn Sos() -> impl IntoView {
    let account = RwSignal::new(account::load());
    move || match account.get() {
        None => view! { <SignIn account /> }.into_any(),
        Some(a) => view! { <Signed account=a /> }.into_any(),
    }
}

/// The browser's preferred language tag (`ru-RU`), if it says.
fn browser_language() -> Option<String> {
    web_sys::window()?.navigator().language()
}

fn reload() {
    if let Some(w) = web_sys::window() {
        let _ = w.location().reload();
    }
}

#[component]
fn SignIn(account: RwSignal<Option<Account>>) -> impl IntoView {
    let phone = RwSignal::new(String::new());
    let name = RwSignal::new(String::new());
    let code = RwSignal::new(String::new());
    let code_sent = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let send_code = move |_| {
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            let body = json!({ "phone": phone.get_untracked().trim(), "language": browser_language() });
            match api::send_json::<serde_json::Value>("POST", "/v1/auth/code", None, Some(&body)).await {
                Ok(_) => code_sent.set(true),
                Err(e) => error.set(Some(e.message())),
            }
            busy.set(false);
        });
    };
    let verify = move |_| {
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            let body = json!({
                "phone": phone.get_untracked().trim(),
                "code": code.get_untracked().trim(),
                "name": Some(name.get_untracked().trim().to_owned()).filter(|n| !n.is_empty()),
                "device_label": "web browser",
                // The person's contacts are texted in it (the server falls back to English).
                "language": browser_language(),
            });
            match api::send_json::<VerifyResponse>("POST", "/v1/auth/verify", None, Some(&body)).await {
                Ok(r) => {
                    let a = Account {
                        token: r.device_token,
                        name: name.get_untracked().trim().to_owned(),
                        phone: phone.get_untracked().trim().to_owned(),
                    };
                    account::save(&a);
                    account.set(Some(a));
                }
                Err(ApiError::Status(401) | ApiError::Refused(401, _)) => {
                    error.set(Some("That code is wrong or expired; ask for a new one.".into()))
                }
                Err(e) => error.set(Some(e.message())),
            }
            busy.set(false);
        });
    };
    view! {
        <main class="sos signin">
            <h1>"AlertMe SOS"</h1>
            <p>"Sign in with your phone number. We text you a code; no password."</p>
            <label>"Your phone number (with country code)"
                <input type="tel" autocomplete="tel" placeholder="+49 151 12345678" data-testid="phone" bind:value=phone />
            </label>
            <button data-testid="send-code" disabled=move || busy.get() on:click=send_code>
                {move || if code_sent.get() { "Text me a new code" } else { "Text me a code" }}
            </button>
            <Show when=move || code_sent.get()>
                <label>"Code from the text"
                    <input inputmode="numeric" autocomplete="one-time-code" data-testid="code" bind:value=code />
                </label>
                <label>"Your name (your contacts see it)"
                    <input autocomplete="name" data-testid="name" bind:value=name />
                </label>
                <button data-testid="verify" disabled=move || busy.get() on:click=verify>"Sign in"</button>
            </Show>
            {move || error.get().map(|e| view! { <p class="error" data-testid="error">{e}</p> })}
        </main>
    }
}

fn status_line(v: engine::View) -> impl IntoView {
    move || {
        let d = v.deliveries.get();
        let notified =
            d.iter().filter(|d| matches!(d.status.as_str(), "sent" | "delivered" | "queued")).count();
        let opened = d.iter().filter(|d| d.opened).count();
        let mut parts = vec![if d.is_empty() {
            "no contacts texted".to_owned()
        } else {
            format!("{notified} of {} contacts notified", d.len())
        }];
        if opened > 0 {
            parts.push(format!("{opened} opened the link"));
        }
        parts.push(format!("{} watching", v.watching.get()));
        parts.push(match v.claimed_by.get() {
            Some(r) => format!("responder {r} on it"),
            None => "no responder yet".to_owned(),
        });
        parts.join(" · ")
    }
}

fn sensor_text(what: &str, s: &SensorState) -> Option<(&'static str, String)> {
    Some(match s {
        SensorState::Off => return None,
        SensorState::Waiting => ("warn", format!("{what}: waiting…")),
        SensorState::Working(detail) => ("ok", format!("{what}: sending ({detail})")),
        SensorState::Denied => (
            "bad",
            format!(
                "{what}: permission denied. Your SOS still goes out without it; allow it for this site in the browser settings."
            ),
        ),
        SensorState::Unavailable(why) => ("bad", format!("{what}: {why}. Your SOS still goes out.")),
    })
}

#[component]
fn Signed(account: Account) -> impl IntoView {
    let token = account.token.clone();
    let h = engine::start(token.clone());
    let v = h.view;
    let hs = StoredValue::new_local(h);
    let token = StoredValue::new(token);
    let contacts = RwSignal::new(Vec::<Contact>::new());
    let contacts_loaded = RwSignal::new(false);
    let timers = RwSignal::new(Vec::<Timer>::new());
    let countdown = RwSignal::new(None::<u32>);
    let pin = RwSignal::new(String::new());
    let message = RwSignal::new(None::<String>);
    let now = RwSignal::new(api::now_ms());
    set_interval(move || now.set(api::now_ms()), Duration::from_secs(1));

    let load_contacts = move || {
        leptos::task::spawn_local(async move {
            if let Ok(c) =
                api::send_json::<Vec<Contact>>("GET", "/v1/contacts", Some(&token.get_value()), None).await
            {
                contacts.set(c);
                if !contacts_loaded.get_untracked() {
                    contacts_loaded.set(true);
                }
            }
        })
    };
    let load_timers = move || {
        leptos::task::spawn_local(async move {
            if let Ok(t) =
                api::send_json::<Vec<Timer>>("GET", "/v1/timers", Some(&token.get_value()), None).await
            {
                let running: Vec<Timer> =
                    t.into_iter().filter(|t| t.status == "active" || t.status == "grace").collect();
                hs.with_value(|h| h.send(Input::Track(!running.is_empty())));
                timers.set(running);
            }
        })
    };
    load_contacts();
    load_timers();
    {
        let load_timers = load_timers.clone();
        set_interval(move || load_timers(), Duration::from_secs(30));
    }
    // A prompt from the server refreshes the timers at once.
    {
        let load_timers = load_timers.clone();
        Effect::new(move |_| {
            if v.check_in_due.get().is_some() {
                load_timers();
            }
        });
    }
    Effect::new(move |_| {
        if v.signed_out.get() {
            account::forget();
            reload();
        }
    });

    let generation = StoredValue::new(0u32);
    let press = move |()| {
        message.set(None);
        if v.phase.get_untracked() == Phase::Active {
            hs.with_value(|h| h.send(Input::Press)); // un-hide an SOS cancelled on this page
            return;
        }
        generation.update_value(|g| *g += 1);
        let mine = generation.get_value();
        countdown.set(Some(COUNTDOWN_S));
        leptos::task::spawn_local(async move {
            loop {
                sleep_ms(1000).await;
                if generation.get_value() != mine {
                    return;
                }
                match countdown.get_untracked() {
                    Some(n) if n <= 1 => {
                        countdown.set(None);
                        hs.with_value(|h| h.send(Input::Press));
                        return;
                    }
                    Some(n) => countdown.set(Some(n - 1)),
                    None => return,
                }
            }
        });
    };
    // Ending the SOS with the PIN: the recorder finishes and what is on its way lands first
    // (bounded: a dead link must not block the cancel), then the server is asked.
    let end_sos = Action::new_local(move |p: &String| {
        let p = p.clone();
        async move {
            let Some(id) = v.alert_id.get_untracked() else { return };
            v.flushed.set(false);
            hs.with_value(|h| h.send(Input::Flush));
            for _ in 0..20 {
                if v.flushed.get_untracked() {
                    break;
                }
                sleep_ms(100).await;
            }
            for _ in 0..30 {
                let (t, a) = (v.taken.get_untracked(), v.acked.get_untracked());
                if a.fix >= t.fix && a.audio >= t.audio {
                    break;
                }
                sleep_ms(100).await;
            }
            let url = format!("/v1/alerts/{id}/cancel");
            let body = json!({"pin": p});
            match api::send_json::<serde_json::Value>("POST", &url, Some(&token.get_value()), Some(&body))
                .await
            {
                Ok(_) => {
                    pin.set(String::new());
                    hs.with_value(|h| h.send(Input::Hide));
                    message.set(Some("Your SOS was cancelled.".into()));
                }
                Err(e) => {
                    hs.with_value(|h| h.send(Input::Record));
                    message.set(Some(pin_error(e)));
                }
            }
        }
    });

    let active = Signal::derive(move || v.phase.get() == Phase::Active && !v.hidden.get());
    let sos_alert = Memo::new(move |_| v.alert_id.get());
    let press = Callback::new(press);
    let end = Callback::new(move |()| {
        end_sos.dispatch(pin.get_untracked());
    });
    let sos_panel = move || {
        if let Some(n) = countdown.get() {
            return view! { <Countdown n on_cancel=Callback::new(move |()| countdown.set(None)) /> }
                .into_any();
        }
        if active.get() {
            return view! { <ActiveSos v pin end /> }.into_any();
        }
        if v.phase.get() == Phase::OtherTab {
            return view! {
                <section class="idle">
                    <p class="note" data-testid="other-tab">
                        "AlertMe is open in another tab or window of this browser: use that one. This tab takes over when it closes."
                    </p>
                </section>
            }
            .into_any();
        }
        view! { <IdleSos v active message contacts press /> }.into_any()
    };

    view! {
        <main class="sos">
            <header>
                <h1>"AlertMe SOS"</h1>
                <span class="muted">{account.name.clone()}</span>
            </header>
            {move || v.problem.get().map(|p| view! { <p class="error">{p}</p> })}
            {move || active.get().then(|| message.get()).flatten().map(|m| view! { <p class="error">{m}</p> })}
            {sos_panel}
            // The person's own position as help would need it (the original app's SOS screen
            // shows the address): to read out on a call, or to copy.
            <Show when=move || active.get()>
                <PlacePanel alert_id=sos_alert credential=Err(token.get_value()) now=now
                    seq=Signal::derive(move || v.acked.get().fix) />
            </Show>
            <CameraToggle v on_change=Callback::new(move |on: bool| hs.with_value(|h| h.send(Input::Camera(on)))) />
            <Timers token timers load_timers=load_timers.clone() due=v.check_in_due now />
            <Setup token contacts contacts_loaded load_contacts />
            <StateProbe v />
        </main>
    }
}

/// Video from the camera, off by default: it needs far more of a bad link than position and
/// voice, and goes off by itself when the link cannot carry it.
#[component]
fn CameraToggle(v: engine::View, on_change: Callback<bool>) -> impl IntoView {
    let note = move || {
        match v.camera.get() {
        engine::Camera::Off => "Off: your position and voice are sent. Video needs a good connection.",
        engine::Camera::On => "On: the camera (the back one, where there is one) is sent with your voice.",
        engine::Camera::Paused => "Paused: the connection is slow, so your position and voice go first. Video comes back when it improves.",
        engine::Camera::Unavailable => "The camera could not be used; your position and voice are sent.",
    }
    };
    view! {
        <section class="camera">
            <label class="toggle">
                <input type="checkbox" data-testid="camera"
                    prop:checked=move || v.camera.get() != engine::Camera::Off
                    on:change=move |e| on_change.run(event_target_checked(&e)) />
                " Send video from the camera"
            </label>
            <p class="muted" data-testid="camera-state" aria-live="polite">{note}</p>
        </section>
    }
}

/// The few seconds to undo a pocket press.
#[component]
fn Countdown(n: u32, on_cancel: Callback<()>) -> impl IntoView {
    view! {
        <section class="countdown">
            <p class="big" data-testid="countdown">{format!("Sending SOS in {n}…")}</p>
            <button class="cancel" data-testid="countdown-cancel" on:click=move |_| on_cancel.run(())>"Cancel"</button>
        </section>
    }
}

/// A running SOS: whether contacts were alerted, who is watching, the link, what is not yet
/// stored, the sensors, the watch link, and ending it with the PIN.
#[component]
fn ActiveSos(v: engine::View, pin: RwSignal<String>, end: Callback<()>) -> impl IntoView {
    let link = move || match v.link.get() {
        Link::Online => ("ok", "Connected: live"),
        Link::Connecting => ("warn", "Connecting…"),
        Link::Offline => ("bad", "No connection: retrying. Nothing is lost; it is kept on this phone."),
    };
    let backlog = move || {
        let (t, a) = (v.taken.get(), v.acked.get());
        let (f, s) = (t.fix.saturating_sub(a.fix), t.audio.saturating_sub(a.audio));
        if f == 0 && s == 0 {
            "Everything recorded is stored on the server.".to_owned()
        } else {
            format!("Waiting to be stored: {f} positions, {} s of audio", s / 4)
        }
    };
    let status = status_line(v);
    view! {
        <section class="active" data-testid="active">
            <h2>{move || if v.alert_id.get().is_some() { "SOS sent" } else { "Sending SOS…" }}</h2>
            <Show when=move || v.alert_id.get().is_none()>
                <p class="health bad" data-testid="not-alerted" role="alert">
                    "Your contacts have not been alerted yet: the server has not confirmed your SOS. This page keeps trying. If you can, call the emergency number now."
                </p>
            </Show>
            <p class="audience" data-testid="audience">{status}</p>
            <p class=move || format!("health {}", link().0) data-testid="link">{move || link().1}</p>
            <p class="muted" data-testid="backlog">{backlog}</p>
            {move || sensor_text("Location", &v.location.get()).map(|(c, t)| view! { <p class=format!("health {c}") data-testid="location">{t}</p> })}
            {move || sensor_text("Microphone", &v.mic.get()).map(|(c, t)| view! { <p class=format!("health {c}") data-testid="mic">{t}</p> })}
            {move || v.watch_url.get().map(|u| view! {
                <p>"Live link for anyone you tell: " <a href=u.clone() data-testid="watch-link" target="_blank">{u.clone()}</a></p>
            })}
            <div class="end">
                <input type="password" inputmode="numeric" placeholder="PIN" aria-label="Your PIN" data-testid="pin" bind:value=pin />
                <button data-testid="end" disabled=move || v.alert_id.get().is_none() on:click=move |_| end.run(())>"End SOS"</button>
            </div>
        </section>
    }
}

/// No SOS running: how the last one ended, and the button.
#[component]
fn IdleSos(
    v: engine::View,
    active: Signal<bool>,
    message: RwSignal<Option<String>>,
    contacts: RwSignal<Vec<Contact>>,
    press: Callback<()>,
) -> impl IntoView {
    let note = move || match v.phase.get() {
        Phase::Ended(AlertStatus::Resolved) => Some("Your SOS was resolved.".to_owned()),
        Phase::Ended(_) => Some("Your SOS was cancelled.".to_owned()),
        Phase::Elsewhere => Some("This SOS continues in another window.".to_owned()),
        _ => None,
    };
    view! {
        <section class="idle">
            {move || note().or(message.get()).filter(|_| !active.get()).map(|n| view! { <p class="note" data-testid="ended">{n}</p> })}
            <button class="sos-button" data-testid="sos" on:click=move |_| press.run(())>"SOS"</button>
            <p class="muted">{move || {
                let n = contacts.get().len();
                if n == 0 { "No emergency contacts yet: add them below. Responders still see your SOS.".to_owned() }
                else { format!("Press to alert your {n} contact{} with your live position and audio.", if n == 1 { "" } else { "s" }) }
            }}</p>
        </section>
    }
}

/// The engine's state as data attributes, for the browser tests.
#[component]
fn StateProbe(v: engine::View) -> impl IntoView {
    view! {
        <div hidden data-testid="sos-state"
            data-phase=move || format!("{:?}", v.phase.get()).to_lowercase()
            data-hidden=move || v.hidden.get().to_string()
            data-link=move || format!("{:?}", v.link.get()).to_lowercase()
            data-alert=move || v.alert_id.get().unwrap_or_default()
            data-taken-fix=move || v.taken.get().fix.to_string()
            data-fix-ack-ms=move || v.fix_ack_ms.with(|l| l.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
            data-fix-behind-max=move || v.fix_behind_max.get().to_string()
            data-camera=move || format!("{:?}", v.camera.get()).to_lowercase()
            data-taken-audio=move || v.taken.get().audio.to_string()
            data-acked-fix=move || v.acked.get().fix.to_string()
            data-acked-audio=move || v.acked.get().audio.to_string()
            data-mic=move || format!("{:?}", v.mic.get())
            data-location=move || format!("{:?}", v.location.get())
        ></div>
    }
}

/// What a refused PIN entry means to the person (the server's 409 names an API call).
fn pin_error(e: ApiError) -> String {
    match e {
        ApiError::Refused(403, _) | ApiError::Status(403) => "Wrong PIN.".into(),
        ApiError::Refused(409, _) | ApiError::Status(409) => {
            "No PIN is set yet: set one under \u{201c}Contacts and PIN\u{201d} below, then try again.".into()
        }
        e => e.message(),
    }
}

async fn sleep_ms(ms: i32) {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(p).await;
}

fn clock(ms: f64) -> String {
    let s = (ms / 1000.0).max(0.0) as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

#[component]
fn Timers(
    token: StoredValue<String>,
    timers: RwSignal<Vec<Timer>>,
    load_timers: impl Fn() + Clone + Send + Sync + 'static,
    due: RwSignal<Option<(String, i64)>>,
    now: RwSignal<f64>,
) -> impl IntoView {
    let minutes = RwSignal::new("30".to_owned());
    let note = RwSignal::new("Walking home".to_owned());
    let pin = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let lt = load_timers.clone();
    let start = move |_| {
        let lt = lt.clone();
        leptos::task::spawn_local(async move {
            let Ok(m) = minutes.get_untracked().trim().parse::<u64>() else {
                error.set(Some("Minutes must be a number.".into()));
                return;
            };
            let body = json!({ "duration_s": m * 60, "note": note.get_untracked().trim() });
            match api::send_json::<Timer>("POST", "/v1/timers", Some(&token.get_value()), Some(&body)).await {
                Ok(_) => {
                    error.set(None);
                    lt();
                }
                Err(e) => error.set(Some(e.message())),
            }
        });
    };
    let act = move |id: String, what: &'static str| {
        let lt = load_timers.clone();
        leptos::task::spawn_local(async move {
            let body = match what {
                "extend" => json!({ "duration_s": 15 * 60 }),
                _ => json!({ "pin": pin.get_untracked() }),
            };
            let url = format!("/v1/timers/{id}/{what}");
            match api::send_json::<Timer>("POST", &url, Some(&token.get_value()), Some(&body)).await {
                Ok(_) => {
                    error.set(None);
                    pin.set(String::new());
                    due.set(None);
                    lt();
                }
                Err(e) => error.set(Some(if what == "extend" { e.message() } else { pin_error(e) })),
            }
        });
    };
    view! {
        <section class="timers">
            <h2>"Check-in timer"</h2>
            {move || {
                let list = timers.get();
                if list.is_empty() {
                    view! {
                        <p class="muted">"Going somewhere alone? If you do not check in in time, your contacts are alerted with your last position."</p>
                        <div class="row">
                            <input type="number" min="1" max="1440" data-testid="timer-minutes" aria-label="Minutes until you check in" bind:value=minutes />
                            <span>"min"</span>
                            <input data-testid="timer-note" placeholder="Where to (optional)" aria-label="Where you are going (optional)" bind:value=note />
                            <button data-testid="timer-start" on:click=start.clone()>"Start"</button>
                        </div>
                    }
                    .into_any()
                } else {
                    let act = act.clone();
                    list.into_iter()
                        .map(|t| {
                            let (id1, id2) = (t.id.clone(), t.id.clone());
                            let act1 = act.clone();
                            let act2 = act.clone();
                            let deadline = t.deadline_ms as f64;
                            let grace = t.status == "grace" || due.get().is_some_and(|(d, _)| d == t.id);
                            view! {
                                <div class=if grace { "timer due" } else { "timer" } data-testid="timer">
                                    <p>
                                        <strong>{t.note.clone().unwrap_or_else(|| "Timer".into())}</strong>
                                        {move || if grace { format!(" — check in now! Alert in {}", clock(deadline - now.get())) }
                                            else { format!(" — check in within {}", clock(deadline - now.get())) }}
                                    </p>
                                    <div class="row">
                                        <input type="password" inputmode="numeric" placeholder="PIN" aria-label="Your PIN" data-testid="timer-pin" bind:value=pin />
                                        <button data-testid="checkin" on:click=move |_| act1(id1.clone(), "checkin")>"I'm safe"</button>
                                        <button on:click=move |_| act2(id2.clone(), "extend")>"+15 min"</button>
                                    </div>
                                </div>
                            }
                        })
                        .collect_view()
                        .into_any()
                }
            }}
            {move || error.get().map(|e| view! { <p class="error">{e}</p> })}
        </section>
    }
}

#[component]
fn Setup(
    token: StoredValue<String>,
    contacts: RwSignal<Vec<Contact>>,
    contacts_loaded: RwSignal<bool>,
    load_contacts: impl Fn() + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let phone = RwSignal::new(String::new());
    let pin = RwSignal::new(String::new());
    let duress = RwSignal::new(String::new());
    let note = RwSignal::new(None::<(bool, String)>);
    let lc = load_contacts.clone();
    let add = move |_| {
        let lc = lc.clone();
        leptos::task::spawn_local(async move {
            let body = json!({ "name": name.get_untracked().trim(), "phone": phone.get_untracked().trim() });
            match api::send_json::<Contact>("POST", "/v1/contacts", Some(&token.get_value()), Some(&body))
                .await
            {
                Ok(c) => {
                    name.set(String::new());
                    phone.set(String::new());
                    note.set(Some((true, format!("{} added; they got a text saying so.", c.name))));
                    lc();
                }
                Err(e) => note.set(Some((false, e.message()))),
            }
        });
    };
    let remove = move |id: String| {
        let lc = load_contacts.clone();
        leptos::task::spawn_local(async move {
            let url = format!("/v1/contacts/{id}");
            match api::send_json::<serde_json::Value>("DELETE", &url, Some(&token.get_value()), None).await {
                Ok(_) => lc(),
                Err(e) => note.set(Some((false, e.message()))),
            }
        });
    };
    let set_pin = move |_| {
        leptos::task::spawn_local(async move {
            let d = duress.get_untracked();
            let body = json!({ "pin": pin.get_untracked(), "duress_pin": Some(d.trim().to_owned()).filter(|d| !d.is_empty()) });
            match api::send_json::<serde_json::Value>("PUT", "/v1/pin", Some(&token.get_value()), Some(&body))
                .await
            {
                Ok(_) => {
                    pin.set(String::new());
                    duress.set(String::new());
                    note.set(Some((true, "PIN saved.".into())));
                }
                Err(e) => note.set(Some((false, e.message()))),
            }
        });
    };
    let sign_out = move |_| {
        account::forget();
        reload();
    };
    view! {
        <details class="setup" open=move || !contacts_loaded.get() || contacts.get_untracked().is_empty()>
            <summary>"Contacts and PIN"</summary>
            <h3>"Emergency contacts"</h3>
            <ul class="contacts" data-testid="contacts">
                {move || contacts.get().into_iter().map(|c| {
                    let id = c.id.clone();
                    let remove = remove.clone();
                    view! {
                        <li>
                            <span>{c.name.clone()} " " <span class="muted">{c.phone.clone()}</span>
                                {c.opted_out.then(|| view! { <span class="bad">" (opted out of texts)"</span> })}</span>
                            <button class="small" on:click=move |_| remove(id.clone())>"Remove"</button>
                        </li>
                    }
                }).collect_view()}
            </ul>
            <div class="row">
                <input placeholder="Name" aria-label="Contact's name" data-testid="contact-name" bind:value=name />
                <input type="tel" placeholder="+49 151 …" aria-label="Contact's phone number" data-testid="contact-phone" bind:value=phone />
                <button data-testid="contact-add" on:click=add>"Add"</button>
            </div>
            <h3>"PIN"</h3>
            <p class="muted">"Ends an SOS or a timer. A duress PIN looks the same to whoever forces you, but keeps the alert going silently."</p>
            <div class="row">
                <input type="password" inputmode="numeric" placeholder="PIN (4-8 digits)" aria-label="New PIN (4-8 digits)" data-testid="pin-new" bind:value=pin />
                <input type="password" inputmode="numeric" placeholder="Duress PIN (optional)" aria-label="Duress PIN (optional)" data-testid="pin-duress" bind:value=duress />
                <button data-testid="pin-save" on:click=set_pin>"Save PIN"</button>
            </div>
            {move || note.get().map(|(ok, n)| view! { <p class=if ok { "ok" } else { "error" } data-testid="setup-note">{n}</p> })}
            <p><button class="small" on:click=sign_out>"Sign out of this browser"</button></p>
        </details>
    }
}
