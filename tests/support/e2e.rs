//! The `ballast` binary against an emulator account: desired-state
//! documents naming the seeded resources, one-shot commands (`plan`,
//! `apply --once`) and the daemon (`run`) with its HTTP endpoints.
//!
//! The binary is configured only through the environment, as a user would
//! configure it: the account's keys, `AWS_REGION`, `AWS_ENDPOINT_URL` (moto,
//! or a proxy in front of it) and `AWS_ENDPOINT_URL_CLOUDWATCH` (the CBOR
//! bridge). Everything else is cleared, so a developer's own `AWS_PROFILE`
//! or `~/.aws` can never leak into a test.
//!
//! Commands run on the blocking pool: a test's runtime must keep serving
//! the fault proxies the child process talks to.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::emulator::{Account, REGION};

pub use super::declared::{Declared, MISSING_DATA, SCALE_IN, SCALE_OUT};

/// What one command printed, and how it exited.
#[derive(Debug, Clone)]
pub struct Output {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// The binary, configured for one account, with a desired-state directory.
pub struct Ballast {
    /// The desired-state directory (and a scratch `HOME`).
    pub dir: tempfile::TempDir,
    home: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Ballast {
    /// Talk to moto and the bridge directly.
    pub fn new(account: &Account, declared: &Declared) -> Ballast {
        Ballast::via(account, &account.moto_url, &account.bridge_url, declared)
    }

    /// Talk to `endpoint` for every service but CloudWatch, and to
    /// `cloudwatch` for CloudWatch (e.g. fault proxies).
    pub fn via(account: &Account, endpoint: &str, cloudwatch: &str, declared: &Declared) -> Ballast {
        let dir = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        declared.write_to(dir.path());
        // Empty AWS config files: nothing of the developer's own is read.
        let empty = home.path().join("empty-aws-config");
        std::fs::write(&empty, "").unwrap();
        let empty = empty.display().to_string();
        let env = vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("HOME".into(), home.path().display().to_string()),
            ("RUST_LOG".into(), "info".into()),
            ("AWS_ACCESS_KEY_ID".into(), account.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), account.secret_key.clone()),
            ("AWS_REGION".into(), REGION.into()),
            ("AWS_ENDPOINT_URL".into(), endpoint.into()),
            ("AWS_ENDPOINT_URL_CLOUDWATCH".into(), cloudwatch.into()),
            ("AWS_CONFIG_FILE".into(), empty.clone()),
            ("AWS_SHARED_CREDENTIALS_FILE".into(), empty),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ];
        Ballast { dir, home, env }
    }

    /// Set one more environment variable of the binary (e.g.
    /// `AWS_ENDPOINT_URL_DYNAMODB`, to put a proxy of its own in front of one service).
    pub fn with_env(mut self, key: &str, value: &str) -> Ballast {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Replace the desired state on disk.
    pub fn declare(&self, declared: &Declared) {
        declared.write_to(self.dir.path());
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ballast"));
        c.env_clear().envs(self.env.iter().map(|(k, v)| (k, v))).current_dir(self.home.path());
        c
    }

    /// Run `ballast ARGS… DIR --cloud aws` to completion.
    pub async fn run(&self, args: &[&str]) -> Output {
        let mut c = self.command();
        c.args(args).arg(self.dir.path()).args(["--cloud", "aws"]);
        let out = tokio::task::spawn_blocking(move || c.output().expect("run ballast")).await.unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    /// `ballast plan DIR --cloud aws`.
    pub async fn plan(&self) -> Output {
        self.run(&["plan"]).await
    }

    /// `plan --output json`, parsed.
    pub async fn plan_json(&self) -> (i32, serde_json::Value) {
        let out = self.run(&["plan", "--output", "json"]).await;
        let v = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("plan JSON: {e}\n{out}"));
        (out.code, v)
    }

    /// `ballast apply --once DIR --cloud aws`.
    pub async fn apply(&self) -> Output {
        self.run(&["apply", "--once"]).await
    }

    /// `ballast run DIR --cloud aws --listen 127.0.0.1:0 EXTRA…`, once its
    /// HTTP server is up.
    pub async fn daemon(&self, extra: &[&str]) -> Daemon {
        let mut c = self.command();
        c.arg("--log-format")
            .arg("json")
            .arg("run")
            .arg(self.dir.path())
            .args(["--cloud", "aws", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("start ballast run");
        let (logs, rx) = super::daemon_logs::follow(&mut child);
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30))).await.unwrap();
        let addr = addr.unwrap_or_else(|_| panic!("the daemon did not start: {:#?}", logs.lock().unwrap()));
        Daemon { child: Mutex::new(child), addr, logs, http: reqwest::Client::new() }
    }
}

/// A running `ballast run`, killed when dropped.
pub struct Daemon {
    child: Mutex<Child>,
    /// The address its HTTP server bound, from its log.
    pub addr: String,
    logs: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

impl Daemon {
    /// GET a path of its HTTP server: status code and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(format!("http://{}{path}", self.addr)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// `/status`, parsed.
    pub async fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.get("/status").await.1).unwrap()
    }

    /// `/metrics`, in the Prometheus text format.
    pub async fn metrics(&self) -> Metrics {
        Metrics(self.get("/metrics").await.1)
    }

    /// Poll until `f` holds (checking the daemon stays alive), or fail
    /// after `within` with `what` and the last value seen.
    pub async fn wait_for<T: std::fmt::Debug>(
        &self,
        within: Duration,
        what: &str,
        mut f: impl AsyncFnMut(&Daemon) -> Result<T, String>,
    ) -> T {
        let start = Instant::now();
        loop {
            assert!(self.alive(), "the daemon exited while waiting for {what}; logs:\n{}", self.logs().join("\n"));
            match f(self).await {
                Ok(v) => return v,
                Err(last) => {
                    assert!(start.elapsed() < within, "timed out after {within:?} waiting for {what}; last: {last}")
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kill -9`: no shutdown, no lease released.
    pub fn kill(&self) {
        let mut c = self.child.lock().unwrap();
        c.kill().expect("SIGKILL the daemon");
        c.wait().expect("reap the daemon");
    }

    /// SIGTERM, as ECS stops a task; the daemon shuts down on its own.
    pub fn terminate(&self) {
        let pid = self.child.lock().unwrap().id();
        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -TERM {pid}");
    }

    /// Still running.
    pub fn alive(&self) -> bool {
        self.child.lock().unwrap().try_wait().unwrap().is_none()
    }

    /// The JSON log lines so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let mut c = self.child.lock().unwrap();
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A `/metrics` page in the Prometheus text format.
#[derive(Debug, Clone)]
pub struct Metrics(pub String);

impl Metrics {
    /// The value of the sample written exactly `series` (name and labels).
    pub fn value(&self, series: &str) -> Option<f64> {
        self.0.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// The sum over the samples of `name` whose labels contain every one
    /// of `labels` (written `key="value"`).
    pub fn sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let rest = l.strip_prefix(name)?;
                let (labelset, value) = match rest.strip_prefix('{') {
                    Some(r) => r.split_once("} ")?,
                    None => ("", rest.strip_prefix(' ')?),
                };
                labels
                    .iter()
                    .all(|want| labelset.split(',').any(|l| l == *want))
                    .then(|| value.trim().parse::<f64>().ok())?
            })
            .sum()
    }
}
