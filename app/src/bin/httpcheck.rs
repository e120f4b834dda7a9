//! `httpcheck URL`: exit 0 if an HTTP GET of URL answers 2xx, 1 otherwise.
//!
//! The container images' HEALTHCHECK. The final images have no shell, curl
//! or wget (distroless), so the check is this small std-only binary built
//! in the same `cargo build` as the app and ballast. Plain `http://` on a
//! local port is all a container health check needs.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// Connect, write and read deadlines each. Docker's own health-check
/// timeout (30 s by default) is the backstop.
const TIMEOUT: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url] = args.as_slice() else {
        eprintln!("usage: httpcheck http://HOST:PORT/PATH");
        return ExitCode::from(2);
    };
    match check(url) {
        Ok(status) => {
            println!("{url}: HTTP {status}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The parts of an `http://` URL a GET needs.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// `host:port`, for connecting and for the Host header.
    authority: String,
    path: String,
}

fn parse(url: &str) -> Result<Target, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("only http:// URLs are supported, got {url:?}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("no host in {url:?}"));
    }
    // A bracketed IPv6 literal contains colons of its own.
    let has_port = match authority.rfind(']') {
        Some(end) => authority[end..].contains(':'),
        None => authority.contains(':'),
    };
    let authority = if has_port { authority.to_string() } else { format!("{authority}:80") };
    Ok(Target { authority, path: path.to_string() })
}

/// The status code of the first line of an HTTP response.
fn status_code(head: &str) -> Result<u16, String> {
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => {
            code.parse().map_err(|_| format!("bad status line {line:?}"))
        }
        _ => Err(format!("not an HTTP response: {line:?}")),
    }
}

fn check(url: &str) -> Result<u16, String> {
    let target = parse(url)?;
    let addr = target
        .authority
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", target.authority))?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", target.authority))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    // HTTP/1.0 with Connection: close: the server ends the response by
    // closing, so no chunked decoding or keep-alive is needed.
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: httpcheck\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    stream.write_all(request.as_bytes()).map_err(|e| format!("send: {e}"))?;
    let mut head = [0u8; 512];
    let mut len = 0;
    // Only the status line matters; read until it is complete.
    while len < head.len() && !head[..len].contains(&b'\n') {
        match stream.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let status = status_code(&String::from_utf8_lossy(&head[..len]))?;
    if (200..300).contains(&status) { Ok(status) } else { Err(format!("HTTP {status}")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_urls_healthchecks_use() {
        let cases = [
            ("http://127.0.0.1:9090/healthz", "127.0.0.1:9090", "/healthz"),
            ("http://localhost:8000/status", "localhost:8000", "/status"),
            ("http://localhost", "localhost:80", "/"),
            ("http://[::1]:8000/status?x=1", "[::1]:8000", "/status?x=1"),
            ("http://[::1]/", "[::1]:80", "/"),
        ];
        for (url, authority, path) in cases {
            assert_eq!(parse(url), Ok(Target { authority: authority.into(), path: path.into() }), "{url}");
        }
    }

    #[test]
    fn rejects_what_it_cannot_check() {
        assert!(parse("https://example.com/").unwrap_err().contains("only http://"));
        assert!(parse("http:///x").unwrap_err().contains("no host"));
    }

    #[test]
    fn reads_the_status_code() {
        assert_eq!(status_code("HTTP/1.1 200 OK\r\n"), Ok(200));
        assert_eq!(status_code("HTTP/1.0 503 Service Unavailable\r\n"), Ok(503));
        assert!(status_code("SSH-2.0-OpenSSH\r\n").is_err());
        assert!(status_code("").is_err());
    }
}
