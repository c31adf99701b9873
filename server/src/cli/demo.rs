//! `alertme serve --demo`: a simulated phone streams a walk and a recording in a loop, so a
//! newcomer sees a moving marker and hears a voice as soon as the server is up.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::domain::accounts;
use crate::domain::Core;
use alertme_client::{Finish, PhoneArgs};

const DEMO_PHONE: &str = "+4915100000000";

/// Creates the demo person and a responder and prints how to watch; returns the phone loop,
/// for the server to run as a background task.
pub async fn start(
    state: &Core,
    addr: SocketAddr,
    static_dir: PathBuf,
) -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let user = accounts::user_for_phone(&state.db, "Demo person", DEMO_PHONE, None).await?;
    let (_, device_token) = accounts::add_device(&state.db, &user.id, "demo phone").await?;
    let (_, responder_token) = accounts::add_responder(&state.db, "Demo responder").await?;
    println!("demo: a simulated phone streams a 10-minute walk with live audio, in a loop");
    println!("demo: responder console {}/console  (token {responder_token})", state.settings.public_url);
    let args = PhoneArgs {
        server: vec![format!("http://{addr}")],
        token: device_token,
        gpx: static_dir.join("demo/walk.gpx"),
        audio: Some(static_dir.join("demo/speech.aac")),
        audio_mime: Some("audio/aac".into()),
        video: None,
        video_kbps: 190,
        speed: 1.0,
        chunk_ms: 250,
        drop_every: None,
        finish: Finish::Resolve,
        client_id: None,
        ack_timeout: 60.0,
        loop_audio: true,
    };
    Ok(async move {
        loop {
            // Each walk is its own SOS (it ends resolved): say so before the next link appears,
            // so whoever watches the old one knows why it ended.
            match alertme_client::run(args.clone()).await {
                Ok(()) => println!(
                    "demo: the walk starts again as a new SOS; the link above now shows it ended, the new one follows"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "demo phone stopped; restarting in 5 s");
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                }
            }
        }
    })
}
