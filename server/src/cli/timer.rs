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
        TimerAction::Extend { id, minutes } => Some(api.extend_timer(id, minutes * 60).await),
        TimerAction::Checkin { id, pin } => Some(api.check_in(id, pin).await),
        TimerAction::Cancel { id, pin } => Some(api.cancel_timer(id, pin).await),
        TimerAction::Pin { pin, duress } => {
            api.set_pin(pin, duress.as_deref()).await.map_err(refused)?;
            None
        }
    };
    match timer.transpose().map_err(refused)? {
        Some(t) => println!("timer {} {} (deadline {} ms)", t.id, t.status, t.deadline_ms),
        None => println!("ok"),
    }
    Ok(())
}

/// What the server said, for a person at a terminal.
fn refused(e: alertme_client::ApiError) -> anyhow::Error {
    if e.status == 0 {
        anyhow::anyhow!("reaching the server: {}", e.body.detail)
    } else {
        anyhow::anyhow!("server answered {}: {}", e.status, e.body.detail)
    }
}
