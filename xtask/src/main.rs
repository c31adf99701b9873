//! `cargo xtask`: builds the Leptos dashboard to WebAssembly (no tools to install) and runs AlertMe.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

const USAGE: &str = "usage: cargo xtask build [--dev] | run [-- SERVE ARGS] | test [-- CARGO TEST ARGS]";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root()?;
    match args.first().map(String::as_str) {
        Some("build") => build(&root, !args.iter().any(|a| a == "--dev")),
        Some("run") => {
            // Say what the minutes go to: cargo's own progress follows each line.
            eprintln!("xtask: 1/2 building the web pages (WebAssembly; cold: several minutes)");
            build(&root, true)?;
            eprintln!(
                "xtask: 2/2 building and starting the server (release; cold: the longest step, later runs reuse it)"
            );
            let rest: Vec<&str> = args[1..].iter().map(String::as_str).filter(|a| *a != "--").collect();
            let serve: Vec<&str> = if rest.is_empty() { vec!["--demo"] } else { rest };
            // Exactly the README's `cargo run --release -- …` (the workspace's default members,
            // not `-p alertme-server`): the same features, so switching between the two reuses
            // one build instead of compiling the dependencies again.
            let status = Command::new(cargo())
                .current_dir(&root)
                .args(["run", "--release", "--bin", "alertme", "--", "serve"])
                .args(serve)
                .status()?;
            if !status.success() {
                bail!("alertme exited with {status}");
            }
            Ok(())
        }
        Some("test") => {
            // The browser tests load the built dashboard, so build it first.
            build(&root, true)?;
            let rest: Vec<&str> = args[1..].iter().map(String::as_str).filter(|a| *a != "--").collect();
            // The tests drive `alertme-tools` (phone simulator, fake Twilio, load generator),
            // another package's binary: built first, next to `alertme`.
            let status =
                Command::new(cargo()).current_dir(&root).args(["build", "-p", "alertme-tools"]).status()?;
            if !status.success() {
                bail!("building alertme-tools failed");
            }
            // Every test binary runs even when one fails, so a red run shows all that is wrong.
            // Most integration tests wait on sockets, timers and a browser rather than compute:
            // four at a time on two cores (measured: 82 tests in 223 s with two, 129 s with four).
            let threads = std::env::var("RUST_TEST_THREADS").unwrap_or_else(|_| "4".into());
            let status = Command::new(cargo())
                .current_dir(&root)
                .env("RUST_TEST_THREADS", threads)
                .args(["test", "--no-fail-fast"])
                .args(["-p", "alertme-server", "-p", "alertme-protocol", "-p", "alertme-migrations"])
                .args(["-p", "alertme-client", "-p", "alertme-tools"])
                .args(rest)
                .status()?;
            if !status.success() {
                bail!("tests failed");
            }
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}

/// The workspace the command was run in, asked of cargo at run time. Not the directory this
/// binary was compiled in: with a shared `CARGO_TARGET_DIR`, a checkout can reuse an `xtask`
/// built from another checkout, which would then build and test that other tree.
fn workspace_root() -> anyhow::Result<PathBuf> {
    let out = Command::new(cargo())
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .output()
        .context("running cargo locate-project")?;
    if !out.status.success() {
        bail!("cargo locate-project: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let manifest = PathBuf::from(String::from_utf8(out.stdout).context("workspace path")?.trim());
    Ok(manifest.parent().context("workspace root")?.to_owned())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Compiles the dashboard for wasm32 and writes `static/pkg/` with wasm-bindgen (as a library).
fn build(root: &Path, release: bool) -> anyhow::Result<()> {
    ensure_wasm_target()?;
    let profile = if release { "wasm-release" } else { "dev" };
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let status = Command::new(cargo())
        .current_dir(root)
        .args([
            "build",
            "-p",
            "alertme-dashboard",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            profile,
        ])
        .status()?;
    if !status.success() {
        bail!("building the dashboard failed");
    }
    let dir = if release { "wasm-release" } else { "debug" };
    let wasm = target_dir.join("wasm32-unknown-unknown").join(dir).join("alertme-dashboard.wasm");
    let out = root.join("static/pkg");
    std::fs::create_dir_all(&out)?;
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)?
        .out_name("dashboard")
        .generate(&out)
        .context("wasm-bindgen")?;
    let size = std::fs::metadata(out.join("dashboard_bg.wasm"))?.len();
    eprintln!("dashboard built into {} ({} KiB of wasm)", out.display(), size / 1024);
    Ok(())
}

/// The wasm target comes with rustup; add it when missing (a fresh machine).
fn ensure_wasm_target() -> anyhow::Result<()> {
    let out = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", "wasm32-unknown-unknown"])
        .output();
    let installed =
        out.ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if installed.is_some_and(|p| Path::new(&p).exists()) {
        return Ok(());
    }
    eprintln!("adding the wasm32-unknown-unknown target with rustup");
    let status = Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]).status()?;
    if !status.success() {
        bail!("rustup target add wasm32-unknown-unknown failed");
    }
    Ok(())
}
