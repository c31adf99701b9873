// Loads the dashboard (Leptos compiled to WebAssembly). A file, not an inline script, so the
// Content-Security-Policy can forbid inline scripts.
import init from "/pkg/dashboard.js";

init({ module_or_path: "/pkg/dashboard_bg.wasm" }).catch((e) => {
  document.body.innerHTML =
    '<main class="invalid"><h1>AlertMe could not start</h1><p>The dashboard is not built on this server (run <code>cargo xtask build</code>), or this browser is too old.</p></main>';
  console.error(e);
});
