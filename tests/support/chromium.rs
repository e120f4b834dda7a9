//! Debian's headless Chromium, as the browser tests run it: the status
//! page's (tests/cli.rs) and the sample app's (app/tests/browser.rs, which
//! includes this file by path).
//!
//! Chromium is a test dependency: the test command (`.ci/run`) installs
//! it; without it these tests fail, never skip.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long one page may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(90);

/// The DOM of `url` once loaded, from `--dump-dom`. `extra` goes before the
/// URL (e.g. `--virtual-time-budget=10000` to let the page's timers run).
/// Blocking: async tests call it through `spawn_blocking`.
pub fn dump_dom(url: &str, extra: &[&str]) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the browser tests need Debian's Chromium. The test \
         command (.ci/run) installs it; by hand: apt-get update && apt-get install -y chromium"
    );
    let profile = tempfile::tempdir().unwrap();
    let child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg("--dump-dom")
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            panic!("chromium did not finish within {} s for {url}", DEADLINE.as_secs());
        }
    };
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium failed ({}) for {url}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}
