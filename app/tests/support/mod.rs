//! Starting the real `app` binary for tests, on free loopback ports.

#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// A running `app` process. Killed on drop if a test did not stop it.
pub struct App {
    child: Child,
    pub frontend_port: u16,
    pub backend_port: u16,
    /// Every line the process wrote to stdout so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl App {
    /// Start the binary on 127.0.0.1 with port 0 for both servers and
    /// learn the ports it bound from its log: no race between picking a
    /// free port and binding it. It stops at once on SIGTERM
    /// (`--drain-seconds 0`); the drain's own tests ask for one.
    pub fn start() -> App {
        Self::start_with(&["--frontend-port", "0", "--backend-port", "0", "--drain-seconds", "0"])
    }

    /// Start with these arguments besides `--bind 127.0.0.1`.
    pub fn start_with(args: &[&str]) -> App {
        let mut child = Command::new(env!("CARGO_BIN_EXE_app"))
            .args(["--bind", "127.0.0.1"])
            .args(args)
            .env_remove("FRONTEND_PORT")
            .env_remove("BACKEND_PORT")
            .env_remove("DRAIN_SECONDS")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the app binary");
        let stdout = child.stdout.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let (mut frontend_port, mut backend_port) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(10);
        while frontend_port.is_none() || backend_port.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    panic!("app did not report both listening addresses within 10s; output: {:?}", log.lock().unwrap());
                }
            };
            if let Some(port) = port_of(&line, "frontend listening on ") {
                frontend_port = Some(port);
            }
            if let Some(port) = port_of(&line, "backend listening on ") {
                backend_port = Some(port);
            }
        }
        App { child, frontend_port: frontend_port.unwrap(), backend_port: backend_port.unwrap(), log }
    }

    pub fn frontend(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.frontend_port)
    }

    pub fn backend(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.backend_port)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Send `signal` and wait at most `within` for the process to exit.
    /// Returns the exit status and how long the exit took.
    pub fn signal_and_wait(&mut self, signal: i32, within: Duration) -> (ExitStatus, Duration) {
        self.signal(signal);
        self.wait(within)
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Wait at most `within` for the process to exit (it is killed and the
    /// test fails otherwise): its status, and how long that took.
    pub fn wait(&mut self, within: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, start.elapsed());
            }
            if start.elapsed() > within {
                let _ = self.child.kill();
                panic!("app still running after {within:?}; log: {:?}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port at the end of `prefix http://127.0.0.1:PORT/`.
fn port_of(line: &str, prefix: &str) -> Option<u16> {
    let addr = line.strip_prefix(prefix)?.trim_end_matches('/');
    addr.rsplit(':').next()?.parse().ok()
}
