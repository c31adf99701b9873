//! `alertme serve --demo`: a simulated phone streams a walk and a recording in a loop, so a
//! newcomer sees a moving marker and hears a voice as soon as the server is up.

use std::net::SocketAddr;
use std::path::PathBuf;

use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use crate::domain::accounts;
use crate::storage::entity::{devices, responders, users};
use crate::domain::Core;
use alertme_client::{Finish, PhoneArgs};

const DEMO_PHONE: &str = "+4915100000000";

/// Creates the demo person and a responder, prints how to watch, and starts the phone loop.
pub async fn start(state: &Core, addr: SocketAddr, static_dir: PathBuf) -> anyhow::Result<()> {
    let now = crate::now_ms();
    let user = match users::Entity::find().filter(users::Column::Phone.eq(DEMO_PHONE)).one(&state.db).await? {
        Some(u) => u,
        None => {
            users::ActiveModel {
                id: Set(uuid::Uuid::now_v7().to_string()),
                name: Set("Demo person".into()),
                phone: Set(DEMO_PHONE.into()),
                created_at: Set(now),
            }
            .insert(&state.db)
            .await?
        }
    };
    let device_token = accounts::new_token(accounts::DEVICE_PREFIX);
    devices::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        user_id: Set(user.id.clone()),
        label: Set("demo phone".into()),
        token_hash: Set(accounts::hash_token(&device_token)),
        created_at: Set(now),
        revoked_at: Set(None),
    }
    .insert(&state.db)
    .await?;
    let responder_token = accounts::new_token(accounts::RESPONDER_PREFIX);
    responders::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        name: Set("Demo responder".into()),
        token_hash: Set(accounts::hash_token(&responder_token)),
        created_at: Set(now),
        revoked_at: Set(None),
    }
    .insert(&state.db)
    .await?;
    println!("demo: a simulated phone streams a 10-minute walk with live audio, in a loop");
    println!("demo: responder console {}/console  (token {responder_token})", state.settings.public_url);
    let args = PhoneArgs {
        server: format!("http://{addr}"),
        token: device_token,
        gpx: static_dir.join("demo/walk.gpx"),
        audio: Some(static_dir.join("demo/speech.aac")),
        audio_mime: Some("audio/aac".into()),
        speed: 1.0,
        chunk_ms: 250,
        drop_every: None,
        finish: Finish::Resolve,
        client_id: None,
        ack_timeout: 60.0,
        loop_audio: true,
    };
    tokio::spawn(async move {
        loop {
            if let Err(e) = alertme_client::run(args.clone()).await {
                tracing::warn!(error = %e, "demo phone stopped; restarting in 5 s");
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        }
    });
    Ok(())
}
