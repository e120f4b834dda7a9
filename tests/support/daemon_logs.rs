//! The log of a spawned `ballast run --log-format json`: every stderr line
//! kept, and the address its HTTP server bound (from the "ballast running"
//! line), which is how a test started with `--listen 127.0.0.1:0` finds it.
//! Shared by the CLI tests (`tests/cli.rs`) and the AWS end-to-end tests.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread;

/// Start reading `child`'s stderr (which must be piped) on a thread: the
/// lines collected so far, and a channel that yields the listen address
/// once the daemon logs it.
pub fn follow(child: &mut Child) -> (Arc<Mutex<Vec<String>>>, Receiver<String>) {
    let stderr = child.stderr.take().expect("the daemon's stderr is piped");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = logs.clone();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["message"] == "ballast running"
            {
                let _ = tx.send(v["listen"].as_str().unwrap_or_default().to_string());
            }
            sink.lock().unwrap().push(line);
        }
    });
    (logs, rx)
}
