//! `/sos`: the web SOS page. Sign in with a texted code, set up contacts and a PIN, then one big
//! button that streams position and microphone like the app does, survives reloads and dead
//! networks, and shows who is coming.

use std::time::Duration;

use alertme_protocol::{AlertStatus, Contact, Timer, VerifyResponse};
use leptos::prelude::*;
use serde_json::json;

use crate::api::{self, ApiError};
use crate::components::place::PlacePanel;
use crate::i18n::{use_i18n, Arg, I18n};
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

/// Words kept to show later, in the language of the moment: one of our messages, or the
/// server's own words (which come in English; better said as they came than not at all).
#[derive(Clone, Debug)]
enum Say {
    Msg(&'static str, Vec<(&'static str, Arg)>),
    Server(String),
}

impl Say {
    fn id(id: &'static str) -> Self {
        Self::Msg(id, Vec::new())
    }

    fn text(&self, i: I18n) -> String {
        match self {
            Self::Msg(id, args) => i.ta(id, args),
            Self::Server(detail) => i.ta("sos-error-server-said", &[("detail", Arg::from(detail.as_str()))]),
        }
    }
}

/// What a failed request means to the person (`ApiError::message` speaks English only).
fn api_error(e: ApiError) -> Say {
    match e {
        ApiError::Status(401) | ApiError::Refused(401, _) => Say::id("sos-error-signed-out"),
        ApiError::Status(429) | ApiError::Refused(429, _) => Say::id("sos-error-too-many-tries"),
        ApiError::Network => Say::id("sos-error-network"),
        ApiError::Status(s) | ApiError::Refused(s, _) if s >= 500 => Say::id("sos-error-server"),
        ApiError::Refused(_, detail) => Say::Server(detail),
        ApiError::Status(s) => Say::Msg("sos-error-status", vec![("status", Arg::from(s.to_string()))]),
    }
}

fn reload() {
    if let Some(w) = web_sys::window() {
        let _ = w.location().reload();
    }
}

#[component]
fn SignIn(account: RwSignal<Option<Account>>) -> impl IntoView {
    let i = use_i18n();
    let phone = RwSignal::new(String::new());
    let name = RwSignal::new(String::new());
    let code = RwSignal::new(String::new());
    let code_sent = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<Say>);
    let send_code = move |_| {
        busy.set(true);
        error.set(None);
        // The code is texted in the page's language.
        let lang = untrack(move || i.lang());
        leptos::task::spawn_local(async move {
            let body = json!({ "phone": phone.get_untracked().trim(), "language": lang });
            match api::send_json::<serde_json::Value>("POST", "/v1/auth/code", None, Some(&body)).await {
                Ok(_) => code_sent.set(true),
                // Not a number, or one that cannot be texted (costly, another country).
                Err(ApiError::Status(400) | ApiError::Refused(400, _)) => {
                    error.set(Some(Say::id("sos-error-phone")))
                }
                Err(e) => error.set(Some(api_error(e))),
            }
            busy.set(false);
        });
    };
    let verify = move |_| {
        busy.set(true);
        error.set(None);
        let lang = untrack(move || i.lang());
        leptos::task::spawn_local(async move {
            let body = json!({
                "phone": phone.get_untracked().trim(),
                "code": code.get_untracked().trim(),
                "name": Some(name.get_untracked().trim().to_owned()).filter(|n| !n.is_empty()),
                "device_label": "web browser",
                // The person's contacts are texted in the language they read the page in (the
                // server falls back to English).
                "language": lang,
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
                    error.set(Some(Say::id("sos-code-wrong")))
                }
                // A name over the server's limit, or a number changed after the code was sent.
                Err(ApiError::Status(400) | ApiError::Refused(400, _)) => {
                    let long = name.get_untracked().trim().chars().count() > alertme_protocol::MAX_NAME_CHARS;
                    error.set(Some(Say::id(if long { "sos-name-long" } else { "sos-error-phone" })))
                }
                Err(e) => error.set(Some(api_error(e))),
            }
            busy.set(false);
        });
    };
    view! {
        <main class="sos signin">
            <h1>"AlertMe SOS"</h1>
            <p>{move || i.t("sos-signin-intro")}</p>
            <label>{move || i.t("sos-signin-phone")}
                <input type="tel" autocomplete="tel" placeholder=move || i.t("sos-phone-example") data-testid="phone" bind:value=phone />
            </label>
            <button data-testid="send-code" disabled=move || busy.get() on:click=send_code>
                {move || if code_sent.get() { i.t("sos-send-code-again") } else { i.t("sos-send-code") }}
            </button>
            <Show when=move || code_sent.get()>
                <label>{move || i.t("sos-signin-code")}
                    <input inputmode="numeric" autocomplete="one-time-code" data-testid="code" bind:value=code />
                </label>
                <label>{move || i.t("sos-signin-name")}
                    <input autocomplete="name" data-testid="name" bind:value=name />
                </label>
                <button data-testid="verify" disabled=move || busy.get() on:click=verify>{move || i.t("sos-signin")}</button>
            </Show>
            {move || error.get().map(|e| view! { <p class="error" data-testid="error">{e.text(i)}</p> })}
        </main>
    }
}

fn status_line(i: I18n, v: engine::View) -> impl IntoView {
    move || {
        let d = v.deliveries.get();
        let notified =
            d.iter().filter(|d| matches!(d.status.as_str(), "sent" | "delivered" | "queued")).count();
        let opened = d.iter().filter(|d| d.opened).count();
        let mut parts = vec![if d.is_empty() {
            i.t("sos-audience-none")
        } else {
            i.ta("sos-audience-notified", &[("notified", Arg::from(notified)), ("total", Arg::from(d.len()))])
        }];
        if opened > 0 {
            parts.push(i.ta("sos-audience-opened", &[("n", Arg::from(opened))]));
        }
        parts.push(i.ta("sos-audience-watching", &[("n", Arg::from(v.watching.get()))]));
        parts.push(match v.claimed_by.get() {
            Some(r) => i.ta("sos-audience-responder", &[("name", Arg::from(r))]),
            None => i.t("sos-audience-no-responder"),
        });
        parts.join(" · ")
    }
}

/// How the position (`location`) or the microphone is doing: a class and a message id;
/// nothing while it is off. (What `Working` carries is for the tests' probe: the place panel
/// shows the accuracy, and a format name tells the person nothing.)
fn sensor_message(location: bool, s: &SensorState) -> Option<(&'static str, &'static str)> {
    Some(match s {
        SensorState::Off => return None,
        SensorState::Waiting => ("warn", if location { "sos-location-waiting" } else { "sos-mic-waiting" }),
        SensorState::Working(_) => ("ok", if location { "sos-location-on" } else { "sos-mic-on" }),
        SensorState::Denied => ("bad", if location { "sos-location-denied" } else { "sos-mic-denied" }),
        SensorState::Unavailable(id) => ("bad", *id),
    })
}

#[component]
fn Signed(account: Account) -> impl IntoView {
    let i = use_i18n();
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
    let message = RwSignal::new(None::<Say>);
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
                    message.set(Some(Say::id("sos-cancelled")));
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
                    <p class="note" data-testid="other-tab">{move || i.t("sos-other-tab")}</p>
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
            {move || v.problem.get().map(|p| view! { <p class="error">{i.t(p.message_id())}</p> })}
            {move || active.get().then(|| message.get()).flatten().map(|m| view! { <p class="error">{m.text(i)}</p> })}
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
    let i = use_i18n();
    let note = move || {
        i.t(match v.camera.get() {
            engine::Camera::Off => "sos-camera-off",
            engine::Camera::On => "sos-camera-on",
            engine::Camera::Paused => "sos-camera-paused",
            engine::Camera::Unavailable => "sos-camera-unavailable",
        })
    };
    view! {
        <section class="camera">
            <label class="toggle">
                <input type="checkbox" data-testid="camera"
                    prop:checked=move || v.camera.get() != engine::Camera::Off
                    on:change=move |e| on_change.run(event_target_checked(&e)) />
                " " {move || i.t("sos-camera-toggle")}
            </label>
            <p class="muted" data-testid="camera-state" aria-live="polite">{note}</p>
        </section>
    }
}

/// The few seconds to undo a pocket press.
#[component]
fn Countdown(n: u32, on_cancel: Callback<()>) -> impl IntoView {
    let i = use_i18n();
    view! {
        <section class="countdown">
            <p class="big" data-testid="countdown">{move || i.ta("sos-countdown", &[("n", Arg::from(n))])}</p>
            <button class="cancel" data-testid="countdown-cancel" on:click=move |_| on_cancel.run(())>{move || i.t("sos-countdown-cancel")}</button>
        </section>
    }
}

/// A running SOS: whether contacts were alerted, who is watching, the link, what is not yet
/// stored, the sensors, the watch link, and ending it with the PIN.
#[component]
fn ActiveSos(v: engine::View, pin: RwSignal<String>, end: Callback<()>) -> impl IntoView {
    let i = use_i18n();
    let link = move || match v.link.get() {
        Link::Online => ("ok", "sos-link-online"),
        Link::Connecting => ("warn", "sos-link-connecting"),
        // "Nothing is lost" only where this browser really keeps a copy.
        Link::Offline if v.problem.get() == Some(engine::Problem::Storage) => {
            ("bad", "sos-link-offline-unsaved")
        }
        Link::Offline => ("bad", "sos-link-offline"),
    };
    // Counted in positions and not in seconds of sound: with the camera on, media pieces are
    // cut by size, not by time.
    let backlog = move || {
        let (t, a) = (v.taken.get(), v.acked.get());
        let (f, s) = (t.fix.saturating_sub(a.fix), t.audio.saturating_sub(a.audio));
        let fixes = [("fixes", Arg::from(f))];
        match (f, s) {
            (0, 0) => i.t("sos-backlog-none"),
            (_, 0) => i.ta("sos-backlog-positions", &fixes),
            (0, _) => i.t("sos-backlog-recording"),
            _ => i.ta("sos-backlog-both", &fixes),
        }
    };
    let status = status_line(i, v);
    view! {
        <section class="active" data-testid="active">
            <h2>{move || if v.alert_id.get().is_some() { i.t("sos-sent") } else { i.t("sos-sending") }}</h2>
            <Show when=move || v.alert_id.get().is_none()>
                <p class="health bad" data-testid="not-alerted" role="alert">{move || i.t("sos-not-alerted")}</p>
            </Show>
            <p class="audience" data-testid="audience">{status}</p>
            <p class=move || format!("health {}", link().0) data-testid="link">{move || i.t(link().1)}</p>
            <p class="muted" data-testid="backlog">{backlog}</p>
            {move || sensor_message(true, &v.location.get()).map(|(c, id)| view! { <p class=format!("health {c}") data-testid="location">{i.t(id)}</p> })}
            {move || sensor_message(false, &v.mic.get()).map(|(c, id)| view! { <p class=format!("health {c}") data-testid="mic">{i.t(id)}</p> })}
            {move || v.watch_url.get().map(|u| view! {
                <p>{move || i.t("sos-watch-link")} " " <a href=u.clone() data-testid="watch-link" target="_blank">{u.clone()}</a></p>
            })}
            <div class="end">
                <input type="password" inputmode="numeric" placeholder=move || i.t("sos-pin-placeholder") aria-label=move || i.t("sos-pin-label") data-testid="pin" bind:value=pin />
                <button data-testid="end" disabled=move || v.alert_id.get().is_none() on:click=move |_| end.run(())>{move || i.t("sos-end")}</button>
            </div>
        </section>
    }
}

/// No SOS running: how the last one ended, and the button.
#[component]
fn IdleSos(
    v: engine::View,
    active: Signal<bool>,
    message: RwSignal<Option<Say>>,
    contacts: RwSignal<Vec<Contact>>,
    press: Callback<()>,
) -> impl IntoView {
    let i = use_i18n();
    let note = move || match v.phase.get() {
        Phase::Ended(AlertStatus::Resolved) => Some(Say::id("sos-resolved")),
        Phase::Ended(_) => Some(Say::id("sos-cancelled")),
        Phase::Elsewhere => Some(Say::id("sos-elsewhere")),
        _ => None,
    };
    view! {
        <section class="idle">
            {move || note().or(message.get()).filter(|_| !active.get()).map(|n| view! { <p class="note" data-testid="ended">{n.text(i)}</p> })}
            <button class="sos-button" data-testid="sos" on:click=move |_| press.run(())>"SOS"</button>
            <p class="muted">{move || {
                let n = contacts.get().len();
                if n == 0 { i.t("sos-no-contacts") } else { i.ta("sos-press-hint", &[("n", Arg::from(n))]) }
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
fn pin_error(e: ApiError) -> Say {
    match e {
        ApiError::Refused(403, _) | ApiError::Status(403) => Say::id("sos-pin-wrong"),
        ApiError::Refused(409, _) | ApiError::Status(409) => Say::id("sos-pin-missing"),
        e => api_error(e),
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
    let i = use_i18n();
    let minutes = RwSignal::new("30".to_owned());
    // A suggested note (the contacts read it if the timer fires), sent as written.
    let note = RwSignal::new(untrack(move || i.t("sos-timer-note-default")));
    // A language switch changes the suggestion too, unless the person wrote their own.
    Effect::new(move |shown: Option<String>| {
        let suggestion = i.t("sos-timer-note-default");
        if shown.is_some_and(|s| note.get_untracked() == s) {
            note.set(suggestion.clone());
        }
        suggestion
    });
    let pin = RwSignal::new(String::new());
    let error = RwSignal::new(None::<Say>);
    let lt = load_timers.clone();
    let start = move |_| {
        let lt = lt.clone();
        leptos::task::spawn_local(async move {
            // The server takes 1 minute to 24 hours.
            let m = minutes.get_untracked().trim().parse::<u64>().ok().filter(|m| (1..=1440).contains(m));
            let Some(m) = m else {
                error.set(Some(Say::id("sos-timer-minutes")));
                return;
            };
            let body = json!({ "duration_s": m * 60, "note": note.get_untracked().trim() });
            match api::send_json::<Timer>("POST", "/v1/timers", Some(&token.get_value()), Some(&body)).await {
                Ok(_) => {
                    error.set(None);
                    lt();
                }
                // The minutes passed above: the note is too long.
                Err(ApiError::Status(400) | ApiError::Refused(400, _)) => {
                    error.set(Some(Say::id("sos-timer-note-long")))
                }
                Err(e) => error.set(Some(api_error(e))),
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
                // Not running any more (it ran out, or changed meanwhile): the list is stale.
                Err(ApiError::Status(404) | ApiError::Refused(404, _)) => {
                    error.set(Some(Say::id("sos-timer-gone")));
                    lt();
                }
                Err(ApiError::Status(409) | ApiError::Refused(409, _)) if what == "extend" => {
                    error.set(Some(Say::id("sos-timer-gone")));
                    lt();
                }
                Err(e) => error.set(Some(if what == "extend" { api_error(e) } else { pin_error(e) })),
            }
        });
    };
    view! {
        <section class="timers">
            <h2>{move || i.t("sos-timer-title")}</h2>
            {move || {
                let list = timers.get();
                if list.is_empty() {
                    view! {
                        <p class="muted">{move || i.t("sos-timer-intro")}</p>
                        <div class="row">
                            <input type="number" min="1" max="1440" data-testid="timer-minutes" aria-label=move || i.t("sos-timer-minutes-label") bind:value=minutes />
                            <span>{move || i.t("sos-timer-min")}</span>
                            <input data-testid="timer-note" placeholder=move || i.t("sos-timer-note-placeholder") aria-label=move || i.t("sos-timer-note-label") bind:value=note />
                            <button data-testid="timer-start" on:click=start.clone()>{move || i.t("sos-timer-start")}</button>
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
                                        <strong>{let title = t.note.clone(); move || title.clone().unwrap_or_else(|| i.t("sos-timer-untitled"))}</strong>
                                        " — "
                                        {move || {
                                            let left = [("time", Arg::from(clock(deadline - now.get())))];
                                            if grace { i.ta("sos-timer-due", &left) } else { i.ta("sos-timer-running", &left) }
                                        }}
                                    </p>
                                    <div class="row">
                                        <input type="password" inputmode="numeric" placeholder=move || i.t("sos-pin-placeholder") aria-label=move || i.t("sos-pin-label") data-testid="timer-pin" bind:value=pin />
                                        <button data-testid="checkin" on:click=move |_| act1(id1.clone(), "checkin")>{move || i.t("sos-timer-safe")}</button>
                                        <button on:click=move |_| act2(id2.clone(), "extend")>{move || i.t("sos-timer-extend")}</button>
                                    </div>
                                </div>
                            }
                        })
                        .collect_view()
                        .into_any()
                }
            }}
            {move || error.get().map(|e| view! { <p class="error">{e.text(i)}</p> })}
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
    let i = use_i18n();
    let name = RwSignal::new(String::new());
    let phone = RwSignal::new(String::new());
    let pin = RwSignal::new(String::new());
    let duress = RwSignal::new(String::new());
    let note = RwSignal::new(None::<(bool, Say)>);
    let lc = load_contacts.clone();
    let add = move |_| {
        let lc = lc.clone();
        // The server's rule, checked here so the person reads why in their language.
        let n = name.get_untracked().trim().to_owned();
        if n.is_empty() || n.chars().count() > 100 {
            note.set(Some((false, Say::id("sos-contact-name-needed"))));
            return;
        }
        leptos::task::spawn_local(async move {
            let p = phone.get_untracked().trim().to_owned();
            let body = json!({ "name": n, "phone": p });
            match api::send_json::<Contact>("POST", "/v1/contacts", Some(&token.get_value()), Some(&body))
                .await
            {
                Ok(c) => {
                    name.set(String::new());
                    phone.set(String::new());
                    note.set(Some((true, Say::Msg("sos-contact-added", vec![("name", Arg::from(c.name))]))));
                    lc();
                }
                // The name passed above: the number is not valid, cannot be texted, or is their own.
                Err(ApiError::Status(400) | ApiError::Refused(400, _)) => {
                    note.set(Some((false, Say::id("sos-contact-phone-bad"))))
                }
                Err(e @ (ApiError::Status(409) | ApiError::Refused(409, _))) => {
                    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
                    let list = contacts.get_untracked();
                    let say = if list.iter().any(|c| digits(&c.phone) == digits(&p)) {
                        Say::id("sos-contact-exists")
                    } else if list.len() >= alertme_protocol::MAX_CONTACTS {
                        Say::id("sos-contact-limit")
                    } else {
                        // A number whose owner asked not to be texted again: the server says so.
                        api_error(e)
                    };
                    note.set(Some((false, say)));
                }
                Err(e) => note.set(Some((false, api_error(e)))),
            }
        });
    };
    let remove = move |id: String| {
        let lc = load_contacts.clone();
        leptos::task::spawn_local(async move {
            let url = format!("/v1/contacts/{id}");
            match api::send_json::<serde_json::Value>("DELETE", &url, Some(&token.get_value()), None).await {
                Ok(_) => lc(),
                Err(e) => note.set(Some((false, api_error(e)))),
            }
        });
    };
    let set_pin = move |_| {
        // The server's rules, checked here so the person reads why in their language.
        let (p, d) = (pin.get_untracked(), duress.get_untracked().trim().to_owned());
        let digits = |s: &str| (4..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(&p) || !(d.is_empty() || digits(&d)) {
            note.set(Some((false, Say::id("sos-pin-format"))));
            return;
        }
        if d == p {
            note.set(Some((false, Say::id("sos-pin-duress-same"))));
            return;
        }
        leptos::task::spawn_local(async move {
            let body = json!({ "pin": p, "duress_pin": Some(d).filter(|d| !d.is_empty()) });
            match api::send_json::<serde_json::Value>("PUT", "/v1/pin", Some(&token.get_value()), Some(&body))
                .await
            {
                Ok(_) => {
                    pin.set(String::new());
                    duress.set(String::new());
                    note.set(Some((true, Say::id("sos-pin-saved"))));
                }
                Err(e) => note.set(Some((false, api_error(e)))),
            }
        });
    };
    let sign_out = move |_| {
        account::forget();
        reload();
    };
    view! {
        <details class="setup" open=move || !contacts_loaded.get() || contacts.get_untracked().is_empty()>
            <summary>{move || i.t("sos-setup")}</summary>
            <h3>{move || i.t("sos-contacts-title")}</h3>
            <ul class="contacts" data-testid="contacts">
                {move || contacts.get().into_iter().map(|c| {
                    let id = c.id.clone();
                    let remove = remove.clone();
                    view! {
                        <li>
                            <span>{c.name.clone()} " " <span class="muted">{c.phone.clone()}</span>
                                {c.opted_out.then(|| view! { <span class="bad">" " {move || i.t("sos-contact-opted-out")}</span> })}</span>
                            <button class="small" on:click=move |_| remove(id.clone())>{move || i.t("sos-contact-remove")}</button>
                        </li>
                    }
                }).collect_view()}
            </ul>
            <div class="row">
                <input placeholder=move || i.t("sos-contact-name") aria-label=move || i.t("sos-contact-name-label") data-testid="contact-name" bind:value=name />
                <input type="tel" placeholder=move || i.t("sos-phone-example") aria-label=move || i.t("sos-contact-phone-label") data-testid="contact-phone" bind:value=phone />
                <button data-testid="contact-add" on:click=add>{move || i.t("sos-contact-add")}</button>
            </div>
            <h3>{move || i.t("sos-pin-title")}</h3>
            <p class="muted">{move || i.t("sos-pin-intro")}</p>
            <div class="row">
                <input type="password" inputmode="numeric" placeholder=move || i.t("sos-pin-new") aria-label=move || i.t("sos-pin-new") data-testid="pin-new" bind:value=pin />
                <input type="password" inputmode="numeric" placeholder=move || i.t("sos-pin-duress") aria-label=move || i.t("sos-pin-duress") data-testid="pin-duress" bind:value=duress />
                <button data-testid="pin-save" on:click=set_pin>{move || i.t("sos-pin-save")}</button>
            </div>
            {move || note.get().map(|(ok, n)| view! { <p class=if ok { "ok" } else { "error" } data-testid="setup-note">{n.text(i)}</p> })}
            <p><button class="small" on:click=sign_out>{move || i.t("sos-sign-out")}</button></p>
        </details>
    }
}
