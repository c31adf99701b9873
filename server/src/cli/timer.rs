//! `alertme timer`: start, extend, check in or cancel a check-in timer over the REST API, the way
//! the phone app does ("walking home, 25 min").

use alertme_protocol::TimerStart;
use clap::{Args, Subcommand};

/// Options of `alertme timer`.
#[derive(Debug, Clone, Args)]
pub struct TimerArgs {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Device token.
    #[arg(long, env = "ALERTME_DEVICE_TOKEN", hide_env_values = true)]
    pub token: String,
    /// What to do.
    #[command(subcommand)]
    pub action: TimerAction,
}

/// Timer actions.
#[derive(Debug, Clone, Subcommand)]
pub enum TimerAction {
    /// Start a timer; prints its id and deadline.
    Start {
        /// Minutes until the deadline.
        #[arg(long)]
        minutes: u64,
        /// What you are doing ("walking home").
        #[arg(long)]
        note: Option<String>,
        /// Where you are going.
        #[arg(long)]
        destination: Option<String>,
        /// Seconds between the prompt and the alert.
        #[arg(long)]
        grace: Option<u64>,
    },
    /// Push the deadline back.
    Extend {
        /// Timer id (default: your one running timer).
        id: Option<String>,
        /// Minutes to add.
        #[arg(long)]
        minutes: u64,
    },
    /// Check in: you are safe.
    Checkin {
        /// Timer id (default: your one running timer).
        id: Option<String>,
        /// Your PIN.
        #[arg(long)]
        pin: String,
    },
    /// Cancel the timer.
    Cancel {
        /// Timer id (default: your one running timer).
        id: Option<String>,
        /// Your PIN.
        #[arg(long)]
        pin: String,
    },
    /// Set your PIN and duress PIN.
    Pin {
        /// 4 to 8 digits.
        #[arg(long)]
        pin: String,
        /// Different digits that cancel visibly but raise a silent alert.
        #[arg(long)]
        duress: Option<String>,
    },
}

/// Runs one timer action against the server.
pub async fn run(args: TimerArgs) -> anyhow::Result<()> {
    let api = alertme_client::Api::new(&args.server).with_token(&args.token);
    let timer = match &args.action {
        TimerAction::Start { minutes, note, destination, grace } => Some(
            api.start_timer(&TimerStart {
                duration_s: minutes * 60,
                note: note.clone(),
                destination: destination.clone(),
                grace_s: *grace,
            })
            .await,
        ),
        TimerAction::Extend { id, minutes } => {
            Some(api.extend_timer(&running(&api, id.as_deref()).await?, minutes * 60).await)
        }
        TimerAction::Checkin { id, pin } => {
            Some(api.check_in(&running(&api, id.as_deref()).await?, pin).await)
        }
        TimerAction::Cancel { id, pin } => {
            Some(api.cancel_timer(&running(&api, id.as_deref()).await?, pin).await)
        }
        TimerAction::Pin { pin, duress } => {
            api.set_pin(pin, duress.as_deref()).await.map_err(refused)?;
            None
        }
    };
    match timer.transpose().map_err(refused)? {
        Some(t) => println!(
            "timer {} {} (deadline {})",
            t.id,
            t.status,
            when(t.deadline_ms, alertme_client::now_ms())
        ),
        None => println!("ok"),
    }
    Ok(())
}

/// The timer an action is about: the one named, else the person's only running one.
async fn running(api: &alertme_client::Api, id: Option<&str>) -> anyhow::Result<String> {
    if let Some(id) = id {
        return Ok(id.to_owned());
    }
    let now = alertme_client::now_ms();
    let running: Vec<_> = api
        .timers()
        .await
        .map_err(refused)?
        .into_iter()
        .filter(|t| t.status == "active" || t.status == "grace")
        .collect();
    match running.as_slice() {
        [] => anyhow::bail!("no timer is running"),
        [t] => Ok(t.id.clone()),
        many => {
            let list: Vec<String> =
                many.iter().map(|t| format!("{} (deadline {})", t.id, when(t.deadline_ms, now))).collect();
            anyhow::bail!("{} timers are running; name one: {}", many.len(), list.join(", "))
        }
    }
}

/// A deadline as the person reads it: local wall-clock time, and how far away.
fn when(deadline_ms: i64, now_ms: i64) -> String {
    use chrono::TimeZone;
    let local = chrono::Local
        .timestamp_millis_opt(deadline_ms)
        .single()
        .map_or_else(|| "?".to_owned(), |t| t.format("%H:%M").to_string());
    let minutes = (deadline_ms - now_ms) as f64 / 60_000.0;
    if minutes >= 0.0 {
        format!("{local}, in {} min", minutes.ceil() as i64)
    } else {
        format!("{local}, {} min ago", (-minutes).floor() as i64)
    }
}

/// What the server said, for a person at a terminal.
fn refused(e: alertme_client::ApiError) -> anyhow::Error {
    if e.status == 0 {
        anyhow::anyhow!("reaching the server: {}", e.body.detail)
    } else {
        anyhow::anyhow!("server answered {}: {}", e.status, e.body.detail)
    }
}
