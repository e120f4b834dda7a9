//! `app`: the sample workload's binary. Parses the command line and runs
//! both servers until SIGTERM (then keeps serving for `--drain-seconds`)
//! or Ctrl-C.

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use app::server::Listeners;
use clap::Parser;

/// The article's sample app: an HTML frontend and a JSON backend.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Port of the frontend page (the NLB's frontendTargetGroup port).
    #[arg(long, env = "FRONTEND_PORT", default_value_t = 80)]
    frontend_port: u16,
    /// Port of the backend API (the NLB's backendTargetGroup port).
    #[arg(long, env = "BACKEND_PORT", default_value_t = 8000)]
    backend_port: u16,
    /// Address both servers listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,
    /// After SIGTERM, keep serving new requests this many seconds before
    /// stopping: the load balancer may still send new connections for a
    /// while after the target is deregistered (up to about two minutes).
    /// Then in-flight requests get up to 10 s more, so the default fits
    /// the task definition's `stopTimeout` of 120 s in deploy/. Ctrl-C
    /// (SIGINT), or a second signal, stops at once.
    #[arg(long, env = "DRAIN_SECONDS", default_value_t = 100)]
    drain_seconds: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // Handlers first: a SIGTERM that arrives right after the "listening"
    // lines must drain, not hit the default action and kill the process.
    let shutdown = match shutdown_signal(Duration::from_secs(args.drain_seconds)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listeners = match Listeners::bind(args.bind, args.frontend_port, args.backend_port).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match app::server::serve(listeners, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Registers for SIGTERM (what ECS and Docker send to stop a task) and
/// SIGINT (Ctrl-C in a terminal) now. Completes on SIGINT at once; on
/// SIGTERM after `drain` more of serving, or at the next signal.
fn shutdown_signal(drain: Duration) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => println!("received SIGTERM"),
            _ = int.recv() => {
                println!("received Ctrl-C");
                return;
            }
        }
        if drain.is_zero() {
            return;
        }
        println!("still serving for {}s (--drain-seconds) while the load balancer stops sending", drain.as_secs());
        tokio::select! {
            () = tokio::time::sleep(drain) => {}
            _ = term.recv() => println!("received SIGTERM again: stopping now"),
            _ = int.recv() => println!("received Ctrl-C: stopping now"),
        }
    })
}
