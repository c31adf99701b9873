//! An AlertMe server in the test's own process: `serve_with` on a 127.0.0.1 listener, with a
//! manual clock the test moves. Subprocesses remain for what must really die (SIGKILL, SIGTERM).

use std::path::Path;
use std::sync::Arc;

use alertme_server::clock::Clock;
use clap::Parser;

use super::Env;

/// A server running in-process until stopped or dropped.
pub struct TestApp {
    pub addr: String,
    /// The server's clock: `clock.advance(ms)` moves deadlines.
    pub clock: Arc<Clock>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// A server on `env`'s database and data directory, with extra `serve` flags.
    pub async fn start(env: &Env, extra: &[&str]) -> Self {
        Self::start_with(env, &env.data_dir, extra, Arc::new(Clock::manual())).await
    }

    /// A server with its own data directory and a given clock (a restart keeps the clock; two
    /// servers may share one).
    pub async fn start_with(env: &Env, data_dir: &Path, extra: &[&str], clock: Arc<Clock>) -> Self {
        let static_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../static");
        let mut args: Vec<String> = ["alertme", "serve", "--bind", "127.0.0.1:0", "--database-url", &env.url]
            .map(str::to_owned)
            .to_vec();
        args.extend(["--data-dir".into(), data_dir.display().to_string()]);
        args.extend(["--static-dir".into(), static_dir.display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let cli = alertme_server::config::Cli::try_parse_from(&args).expect("serve flags parse");
        let Some(alertme_server::config::Command::Serve(cfg)) = cli.command else { unreachable!("serve") };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(alertme_server::serve_with(
            cfg,
            listener,
            async move {
                let _ = stopped.await;
            },
            clock.clone(),
        ));
        let app = Self { addr, clock, stop: Some(stop), task: Some(task) };
        app.ready().await;
        app
    }

    /// Waits until the server answers its health check.
    async fn ready(&self) {
        let url = self.http("/healthz");
        for _ in 0..200 {
            if reqwest::get(&url).await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the in-process server did not come up at {url}");
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Stops it the way SIGTERM does (sockets closed with 1012, the writer flushed) and waits.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("the server task").expect("the server stopped cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
