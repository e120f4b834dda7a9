//! HTTP behaviour of the real `app` binary: what the NLB health checks,
//! the page and API clients rely on, and clean stops.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::App;

async fn get(url: &str) -> (u16, String, Value) {
    let resp = reqwest::get(url).await.expect(url);
    let status = resp.status().as_u16();
    let ctype = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body = resp.text().await.unwrap();
    let json = serde_json::from_str(&body).unwrap_or(Value::Null);
    (status, ctype, if json.is_null() { Value::String(body) } else { json })
}

#[tokio::test]
async fn status_reports_up_as_json() {
    let app = App::start();
    let (status, ctype, body) = get(&app.backend("/status")).await;
    assert_eq!(status, 200);
    assert_eq!(ctype, "application/json");
    assert_eq!(body, json!({"STATUS": "UP"}));
}

#[tokio::test]
async fn items_echo_an_integer_id_and_the_optional_q() {
    let app = App::start();
    let cases = [
        ("/items/42", json!({"item_id": 42, "q": null})),
        ("/items/-7?q=hello%20world", json!({"item_id": -7, "q": "hello world"})),
        ("/items/0?q=", json!({"item_id": 0, "q": ""})),
        // A repeated q keeps the last, as the FastAPI original did.
        ("/items/5?q=a&q=b", json!({"item_id": 5, "q": "b"})),
        ("/items/9223372036854775807?other=1", json!({"item_id": i64::MAX, "q": null})),
    ];
    for (path, want) in cases {
        let (status, _, body) = get(&app.backend(path)).await;
        assert_eq!((status, body), (200, want), "{path}");
    }
}

#[tokio::test]
async fn a_non_integer_item_id_is_422_with_a_message_naming_the_field() {
    let app = App::start();
    for (id, msg_part) in [("abc", "valid integer"), ("1.5", "valid integer"), ("99999999999999999999", "between")] {
        let (status, ctype, body) = get(&app.backend(&format!("/items/{id}"))).await;
        assert_eq!(status, 422, "{id}: {body}");
        assert_eq!(ctype, "application/json");
        let detail = &body["detail"][0];
        assert_eq!(detail["loc"], json!(["path", "item_id"]), "{body}");
        assert_eq!(detail["input"], json!(id), "{body}");
        assert!(detail["msg"].as_str().unwrap().contains(msg_part), "{id}: {body}");
    }
}

#[tokio::test]
async fn backend_allows_get_from_any_origin_and_nothing_else() {
    let app = App::start();
    let client = reqwest::Client::new();

    let resp = client
        .get(app.backend("/status"))
        .header("Origin", "https://abc.execute-api.us-east-2.amazonaws.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");

    let preflight = |method: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, app.backend("/items/1"))
            .header("Origin", "http://127.0.0.1:1")
            .header("Access-Control-Request-Method", method)
            .send()
    };
    let get = preflight("GET").await.unwrap();
    assert!(get.status().is_success(), "{}", get.status());
    assert_eq!(get.headers()["access-control-allow-methods"], "GET");
    assert_eq!(get.headers()["access-control-allow-origin"], "*");

    // The browser refuses a DELETE whose preflight does not list it.
    let delete = preflight("DELETE").await.unwrap();
    let allowed = delete
        .headers()
        .get("access-control-allow-methods")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(!allowed.contains("DELETE"), "DELETE allowed: {allowed}");
}

#[tokio::test]
async fn unknown_paths_are_404_on_both_ports() {
    let app = App::start();
    let (status, _, body) = get(&app.backend("/nope")).await;
    assert_eq!((status, body), (404, json!({"detail": "Not Found"})));
    let (status, _, _) = get(&app.frontend("/nope")).await;
    assert_eq!(status, 404);
    // The page is not served on the backend port, nor the API on the frontend's.
    assert_eq!(get(&app.backend("/")).await.0, 404);
    assert_eq!(get(&app.frontend("/status")).await.0, 404);
}

#[tokio::test]
async fn the_page_is_served_and_names_the_real_backend_port() {
    let app = App::start();
    for path in ["/", "/index.html"] {
        let (status, ctype, body) = get(&app.frontend(path)).await;
        assert_eq!(status, 200, "{path}");
        assert!(ctype.starts_with("text/html"), "{ctype}");
        let html = body.as_str().unwrap();
        let meta = format!(r#"<meta name="backend-port" content="{}">"#, app.backend_port);
        assert!(html.contains(&meta), "{path}: no {meta} in page");
        assert!(html.contains("API STATUS"), "{path}");
    }
}

#[test]
fn sigterm_stops_both_servers_with_exit_0() {
    let mut app = App::start();
    let (status, took) = app.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "log: {:?}", app.log());
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let log = app.log();
    assert!(log.iter().any(|l| l == "received SIGTERM"), "{log:?}");
    assert!(log.iter().any(|l| l == "stopped"), "{log:?}");
    // Both ports are closed afterwards.
    assert!(TcpStream::connect(("127.0.0.1", app.backend_port)).is_err());
    assert!(TcpStream::connect(("127.0.0.1", app.frontend_port)).is_err());
}

#[test]
fn after_sigterm_new_requests_are_served_for_the_drain_seconds_then_it_stops() {
    let mut app = App::start_with(&["--frontend-port", "0", "--backend-port", "0", "--drain-seconds", "2"]);
    app.signal(libc::SIGTERM);
    let signalled = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    // A new connection, as the NLB opens while the deregistration spreads.
    let mut conn = TcpStream::connect(("127.0.0.1", app.backend_port)).expect("still accepting after SIGTERM");
    conn.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 512];
    let n = conn.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    let (status, _) = app.wait(Duration::from_secs(5));
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "log: {:?}", app.log());
    assert!(took >= Duration::from_secs(2), "stopped after {took:?}, before its drain ended");
    let log = app.log();
    assert!(log.iter().any(|l| l.starts_with("still serving for 2s")), "{log:?}");
    assert!(log.iter().any(|l| l == "stopped"), "{log:?}");
}

#[test]
fn a_second_signal_ends_the_drain_at_once() {
    let mut app = App::start_with(&["--frontend-port", "0", "--backend-port", "0", "--drain-seconds", "600"]);
    app.signal(libc::SIGTERM);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !app.log().iter().any(|l| l.starts_with("still serving")) {
        assert!(std::time::Instant::now() < deadline, "no drain line: {:?}", app.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, took) = app.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "log: {:?}", app.log());
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(app.log().iter().any(|l| l == "received SIGTERM again: stopping now"), "{:?}", app.log());
}

#[test]
fn ctrl_c_stops_with_exit_0() {
    // At once: the drain is for an orchestrator's SIGTERM, not a person.
    let mut app = App::start_with(&["--frontend-port", "0", "--backend-port", "0", "--drain-seconds", "600"]);
    let (status, _) = app.signal_and_wait(libc::SIGINT, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "log: {:?}", app.log());
    assert!(app.log().iter().any(|l| l == "received Ctrl-C"));
}

#[test]
fn an_idle_keep_alive_connection_does_not_hold_up_shutdown() {
    let mut app = App::start();
    // A client (like the NLB or a browser) that keeps its connection open
    // after a response must not keep the process alive past SIGTERM.
    let mut conn = TcpStream::connect(("127.0.0.1", app.backend_port)).unwrap();
    conn.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 512];
    let n = conn.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    let (status, took) = app.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn a_port_in_use_is_a_clear_error_and_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_app"))
        .args(["--bind", "127.0.0.1", "--frontend-port", "0", "--backend-port", &port])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("cannot listen for the backend on 127.0.0.1:{port}")), "{stderr}");
}

#[test]
fn ports_come_from_the_environment_when_no_flags_are_given() {
    let probe = |()| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // Free ports, released just before the app binds them.
    let (fp, bp) = (probe(()), probe(()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_app"))
        .args(["--bind", "127.0.0.1"])
        .env("FRONTEND_PORT", fp.to_string())
        .env("BACKEND_PORT", bp.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut lines = String::new();
    for _ in 0..2 {
        std::io::BufRead::read_line(&mut out, &mut lines).unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(lines.contains(&format!("frontend listening on http://127.0.0.1:{fp}/")), "{lines}");
    assert!(lines.contains(&format!("backend listening on http://127.0.0.1:{bp}/")), "{lines}");
}

#[test]
fn httpcheck_passes_on_2xx_and_fails_otherwise() {
    let app = App::start();
    let check = |url: &str| Command::new(env!("CARGO_BIN_EXE_httpcheck")).arg(url).output().unwrap();
    let ok = check(&app.backend("/status"));
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");

    let missing = check(&app.backend("/nope"));
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("HTTP 404"));

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let refused = check(&format!("http://127.0.0.1:{closed}/status"));
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("connect"));
}
