//! `alertme timer`: start, extend, check in or cancel a check-in timer over the REST API, the way
//! the phone app does ("walking home, 25 min").

use alertme_protocol::{PinBody, Timer, TimerStart};
use anyhow::{bail, Context};
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
        /// Timer id.
        id: String,
        /// Minutes to add.
        #[arg(long)]
        minutes: u64,
    },
    /// Check in: you are safe.
    Checkin {
        /// Timer id.
        id: String,
        /// Your PIN.
        #[arg(long)]
        pin: String,
    },
    /// Cancel the timer.
    Cancel {
        /// Timer id.
        id: String,
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
    let http = reqwest::Client::new();
    let base = args.server.trim_end_matches('/');
    let req = match &args.action {
        TimerAction::Start { minutes, note, destination, grace } => {
            http.post(format!("{base}/v1/timers")).json(&TimerStart {
                duration_s: minutes * 60,
                note: note.clone(),
                destination: destination.clone(),
                grace_s: *grace,
            })
        }
        TimerAction::Extend { id, minutes } => http
            .post(format!("{base}/v1/timers/{id}/extend"))
            .json(&serde_json::json!({ "duration_s": minutes * 60 })),
        TimerAction::Checkin { id, pin } => {
            http.post(format!("{base}/v1/timers/{id}/checkin")).json(&PinBody { pin: pin.clone() })
        }
        TimerAction::Cancel { id, pin } => {
            http.post(format!("{base}/v1/timers/{id}/cancel")).json(&PinBody { pin: pin.clone() })
        }
        TimerAction::Pin { pin, duress } => {
            http.put(format!("{base}/v1/pin")).json(&serde_json::json!({ "pin": pin, "duress_pin": duress }))
        }
    };
    let res = req.bearer_auth(&args.token).send().await.context("reaching the server")?;
    let status = res.status();
    let body = res.text().await?;
    if !status.is_success() {
        bail!("server answered {status}: {body}");
    }
    if let Ok(t) = serde_json::from_str::<Timer>(&body) {
        println!("timer {} {} (deadline {} ms)", t.id, t.status, t.deadline_ms);
    } else {
        println!("ok");
    }
    Ok(())
}
