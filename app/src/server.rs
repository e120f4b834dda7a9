//! Running both servers side by side, and stopping them together.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::{backend, frontend};

/// How long in-flight requests get to finish after a shutdown signal.
/// Below ECS's default 30 s stop timeout, so the process exits on its own
/// before the agent sends SIGKILL.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Why the servers could not run.
#[derive(Debug)]
pub enum ServeError {
    /// A port could not be bound (in use, or below 1024 without privilege).
    Bind {
        /// "frontend" or "backend".
        server: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// A server failed while running.
    Serve {
        /// Which one ("frontend", "backend").
        server: &'static str,
        /// The underlying failure.
        source: io::Error,
    },
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Bind { server, addr, source } => {
                write!(f, "cannot listen for the {server} on {addr}: {source}")
            }
            ServeError::Serve { server, source } => write!(f, "the {server} failed: {source}"),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServeError::Bind { source, .. } | ServeError::Serve { source, .. } => Some(source),
        }
    }
}

/// The two listeners, bound before anything is served so that a port
/// conflict is reported before either server starts.
pub struct Listeners {
    /// Serves the page.
    pub frontend: TcpListener,
    /// Serves the JSON API; its port is the one the page is told.
    pub backend: TcpListener,
}

impl Listeners {
    /// Bind both ports on `ip`. Port 0 picks a free port (tests).
    pub async fn bind(ip: IpAddr, frontend_port: u16, backend_port: u16) -> Result<Self, ServeError> {
        async fn one(server: &'static str, addr: SocketAddr) -> Result<TcpListener, ServeError> {
            TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { server, addr, source })
        }
        Ok(Listeners {
            frontend: one("frontend", SocketAddr::new(ip, frontend_port)).await?,
            backend: one("backend", SocketAddr::new(ip, backend_port)).await?,
        })
    }
}

/// Serve the frontend and the backend until `shutdown` completes, then
/// stop accepting, let in-flight requests finish (at most
/// [`DRAIN_DEADLINE`]) and return.
///
/// If one server fails, the other is shut down too and the error returned:
/// a half-running app would pass one target group's health check and fail
/// the other's.
pub async fn serve(
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let local = |l: &TcpListener, server| l.local_addr().map_err(|source| ServeError::Serve { server, source });
    let frontend_addr = local(&listeners.frontend, "frontend")?;
    let backend_addr = local(&listeners.backend, "backend")?;

    // The page is told the port actually bound, which differs from the
    // requested one when that was 0.
    let frontend_app = frontend::router(backend_addr.port());
    let backend_app = backend::router();

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        // An error means the sender is gone, which also means stop.
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let mut frontend = tokio::spawn(
        axum::serve(listeners.frontend, frontend_app).with_graceful_shutdown(stopped(stop_rx.clone())).into_future(),
    );
    println!("frontend listening on http://{frontend_addr}/");
    let mut backend = tokio::spawn(
        axum::serve(listeners.backend, backend_app).with_graceful_shutdown(stopped(stop_rx)).into_future(),
    );
    println!("backend listening on http://{backend_addr}/");

    let join = |server: &'static str, r: Result<io::Result<()>, tokio::task::JoinError>| match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(ServeError::Serve { server, source }),
        Err(e) => Err(ServeError::Serve { server, source: io::Error::other(e) }),
    };

    // Whichever comes first: the signal, or a server ending on its own.
    let early = tokio::select! {
        () = shutdown => None,
        r = &mut frontend => Some(("frontend", r, &mut backend)),
        r = &mut backend => Some(("backend", r, &mut frontend)),
    };
    println!("shutting down: draining both servers");
    let _ = stop_tx.send(true);

    if let Some((server, result, other)) = early {
        // Stop the survivor too; its outcome no longer matters.
        if tokio::time::timeout(DRAIN_DEADLINE, &mut *other).await.is_err() {
            other.abort();
        }
        join(server, result)?;
        // Ending "cleanly" without being asked to is still a failure.
        return Err(ServeError::Serve { server, source: io::Error::other("stopped without a shutdown signal") });
    }

    let drain = async { (join("frontend", frontend.await), join("backend", backend.await)) };
    let (f, b) = match tokio::time::timeout(DRAIN_DEADLINE, drain).await {
        Ok(results) => results,
        Err(_) => {
            // The handles were moved into `drain`; dropping it detaches the
            // tasks, and returning from main ends the process.
            println!("drain deadline of {}s passed; closing the remaining connections", DRAIN_DEADLINE.as_secs());
            (Ok(()), Ok(()))
        }
    };
    f?;
    b?;
    println!("stopped");
    Ok(())
}
