//! Live video: a recording with video streams by the audio's rules (stored byte for byte,
//! relayed as whole units), and a late joiner starts at a keyframe.

use crate::support;

use std::process::Command;
use std::time::Duration;

use alertme_protocol::audio::{WatchHeader, KIND_INIT};
use alertme_protocol::{RecordingPart, WatchMsg};
use support::app::TestApp;
use support::*;
use tokio_tungstenite::tungstenite::Message;

/// The flags of the first video packet ffprobe reads (`K` for a keyframe).
fn first_video_packet_flags(path: &std::path::Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1"])
        .args(["-show_entries", "packet=flags", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_owned()
}

/// Both fixtures (WebM VP8+Opus, fragmented MP4 H.264+AAC): streamed by the simulator with
/// `--video`, a watcher joining mid-stream gets the init segment and whole units from a video
/// keyframe that decode on their own; the stored part is the file byte for byte and listed as
/// a video track.
async fn video_streams_and_late_joiners_start_at_keyframes(backend: Backend) {
    let env = Env::new(backend).await;
    let token = env.user("Ana", "+4915112345678");
    let server = TestApp::start(&env, &[]).await;
    // A walk as long as the recording (60 s).
    let walk = short_walk(&env, 60);
    for (name, ext) in [("sos_vp8_opus.webm", "webm"), ("sos_avc1_aac.mp4", "mp4")] {
        let file = fixture(&format!("video/{name}"));
        let path = file.display().to_string();
        let phone = Phone::start(
            &server,
            &token,
            &["--gpx", &walk, "--video", &path, "--speed", "6", "--chunk-ms", "500", "--finish", "resolve"],
        );
        tokio::time::sleep(Duration::from_secs(4)).await;
        let url = format!("/v1/watch?token={}", phone.watch_token());
        let mut ws = connect(&server.ws(&url), None, None).await.unwrap();
        let Some(Message::Text(t)) = next(&mut ws).await else { panic!("{name}: no snapshot") };
        let WatchMsg::Snapshot { audio: Some(a), .. } = serde_json::from_str(t.as_str()).unwrap() else {
            panic!("{name}: snapshot without media: {t}")
        };
        assert!(a.mime.starts_with("video/"), "{name}: {}", a.mime);
        assert!(a.first_unit > 0, "{name}: a late joiner starts mid-stream");
        // Everything from the join to the end (ffmpeg wants the last cluster whole).
        let mut bytes = Vec::new();
        let mut frames = 0;
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(60), next(&mut ws)).await {
            if let Message::Binary(b) = m {
                let (h, payload) = WatchHeader::parse(&b).unwrap();
                if frames == 0 {
                    assert_eq!(h.kind, KIND_INIT, "{name}: init segment first");
                }
                frames += 1;
                bytes.extend_from_slice(payload);
            }
        }
        assert!(frames > a.units, "{name}: live units followed the snapshot");
        let late = env.data_dir.join(format!("late.{ext}"));
        std::fs::write(&late, &bytes).unwrap();
        assert!(
            first_video_packet_flags(&late).starts_with('K'),
            "{name}: the late joiner's video starts at a keyframe"
        );
        decodes_cleanly(&late)
            .unwrap_or_else(|e| panic!("{name}: the late joiner's media does not decode: {e}"));
        let alert = phone.alert_id.clone();
        let (ok, out, err) = phone.wait(Duration::from_secs(120));
        assert!(ok, "{name}: {out}\n{err}");
        let parts: Vec<RecordingPart> =
            server.get_json(&format!("/v1/alerts/{alert}/recording"), &token).await;
        assert_eq!(parts.len(), 1, "{name}: {parts:?}");
        assert_eq!(parts[0].track, "video");
        let r = reqwest::Client::new()
            .get(server.http(&parts[0].url))
            .bearer_auth(&token)
            .header("range", "bytes=1000-1999")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206, "{name}: Range works on video parts");
        let source = std::fs::read(&file).unwrap();
        assert!(r.bytes().await.unwrap()[..] == source[1000..2000]);
        let r =
            reqwest::Client::new().get(server.http(&parts[0].url)).bearer_auth(&token).send().await.unwrap();
        assert!(r.bytes().await.unwrap()[..] == source[..], "{name}: stored byte for byte");
    }
    server.stop().await;
}
both!(late_joiner_keyframe, video_streams_and_late_joiners_start_at_keyframes);

/// The watch page shows the phone's camera live above the map: one tap, and the video element
/// plays frames (screenshot `watch-video.png`); a recording the phone uploads meanwhile shows
/// up on the page within the list's refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_page_shows_live_video() {
    use fantoccini::Locator;
    use support::browser::*;
    require_dashboard_build();
    let env = Env::new(Backend::Sqlite).await;
    let token = env.user("Ana", "+4915112345678");
    let server = Server::start(&env, "127.0.0.1:0", &["--tile-url", ""]);
    let video = fixture("video/sos_vp8_opus.webm").display().to_string();
    let walk = short_walk(&env, 60);
    let phone = Phone::start(&server, &token, &["--gpx", &walk, "--video", &video, "--finish", "keep"]);
    let driver = Driver::start();
    let c = driver.browser().await;
    c.goto(&phone.watch_url).await.unwrap();
    let play = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("[data-testid=play]"))
        .await
        .unwrap();
    until("the button to offer video", Duration::from_secs(10), || async {
        play.text().await.unwrap_or_default().contains("see and hear")
    })
    .await;
    play.click().await.unwrap();
    let playing = "const v = document.querySelector('[data-testid=live-audio]'); \
                   return v.paused || v.videoWidth === 0 ? -1 : v.currentTime;";
    until("video frames to play", Duration::from_secs(20), || async { js_f64(&c, playing).await > 1.5 })
        .await;
    let shown = "return document.querySelector('[data-testid=live-audio]').getBoundingClientRect().height;";
    assert!(js_f64(&c, shown).await > 100.0, "the video is shown on the page");
    let width = js_f64(&c, "return document.querySelector('[data-testid=live-audio]').videoWidth;").await;
    assert_eq!(width, 320.0, "the phone's frames, at their size");
    save_screenshot("watch-video.png", &c.screenshot().await.unwrap());
    let violations = axe_serious(&c).await;
    assert!(violations.is_empty(), "axe-core on the watch page with video:\n{}", violations.join("\n"));

    // The phone uploads a recording while the alert is live: the page offers it.
    let file = std::fs::read(fixture("audio/speech_aac128k.aac")).unwrap();
    let r = reqwest::Client::new()
        .post(server.http(&format!("/v1/alerts/{}/recording", phone.alert_id)))
        .bearer_auth(&token)
        .header("content-type", "audio/aac")
        .body(file)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("[data-testid=recording]"))
        .await
        .expect("the uploaded recording is offered on the page");
    drop(phone);
}
