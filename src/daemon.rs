//! The daemon: the controller loop, the desired-state watcher and the HTTP
//! server, side by side, until a shutdown signal.
//!
//! The signal is a parameter (as in mini-redis and [`crate::http::serve`]):
//! `ballast run` passes SIGTERM or Ctrl-C, tests pass their own future and
//! run the whole daemon in process.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tracing::{info, warn};

use crate::cloud::lease::LeaseStore;
use crate::cloud::{Clock, Cloud};
use crate::controller::leader::{Leadership, LeaseOptions};
use crate::controller::{Controller, Options};
use crate::desired::DesiredState;
use crate::metrics::Metrics;

/// How the daemon runs, beyond the loop's own [`Options`].
#[derive(Debug, Clone)]
pub struct Daemon {
    pub options: Options,
    /// How long shutdown waits for the change in flight.
    pub shutdown_timeout: Duration,
    /// Quiet time that ends a burst of file events before reloading.
    pub debounce: Duration,
}

impl Daemon {
    /// Run until `shutdown` completes, then let the change in flight finish
    /// (up to the shutdown timeout), release the lease if one is held, and
    /// stop the HTTP server. With `lease` (its timing and its store), the
    /// daemon writes only while it holds the lease; with `None`, it leads
    /// alone. An error is returned when the directory cannot be watched or
    /// the loop ends on its own.
    #[allow(clippy::too_many_arguments)]
    pub async fn run<C: Cloud, S: LeaseStore>(
        self,
        listener: tokio::net::TcpListener,
        cloud: C,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        desired: DesiredState,
        lease: Option<(LeaseOptions, S)>,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let bound = listener.local_addr().context("cannot read the listening address")?;
        let controller = Controller::new(cloud, clock.clone(), metrics.clone(), self.options.clone(), desired);
        let (campaign_stop, campaign_stop_rx) = tokio::sync::watch::channel(false);
        let lease_name = lease.as_ref().map(|(o, _)| o.name.clone());
        let (controller, campaign) = match lease {
            Some((options, store)) => {
                let leadership = Leadership::contender(options, metrics.clone(), controller.status(), clock.clone());
                let campaign = tokio::spawn(leadership.clone().campaign(store, campaign_stop_rx));
                (controller.with_leadership(leadership), Some(campaign))
            }
            None => (controller, None),
        };
        let (_watcher, reloads) =
            crate::controller::watch::watch(&self.options.dir, self.debounce, Duration::from_secs(1))
                .with_context(|| format!("cannot watch {}", self.options.dir.display()))?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let state =
            crate::http::AppState { status: controller.status(), metrics, clock, interval: self.options.interval };
        let mut http_stop = stop_rx.clone();
        let http = tokio::spawn(crate::http::serve(listener, state, async move {
            let _ = http_stop.wait_for(|s| *s).await;
        }));
        info!(
            listen = %bound,
            dir = %self.options.dir.display(),
            interval = ?self.options.interval,
            dry_run = self.options.dry_run,
            lease = lease_name.as_deref().unwrap_or("none (leader alone)"),
            "ballast running"
        );
        let mut ctrl = tokio::spawn(controller.run(reloads, stop_rx));
        tokio::select! {
            _ = shutdown => {}
            _ = &mut ctrl => anyhow::bail!("the controller loop ended unexpectedly"),
        }
        info!(timeout = ?self.shutdown_timeout, "shutting down: finishing the change in flight");
        let _ = stop_tx.send(true);
        let finished = tokio::time::timeout(self.shutdown_timeout, &mut ctrl).await.is_ok();
        if !finished {
            warn!("the change in flight did not finish within the shutdown timeout");
            ctrl.abort();
        }
        if let Some(campaign) = campaign {
            if finished {
                // No write is in flight: the next leader may start now.
                let _ = campaign_stop.send(true);
                if tokio::time::timeout(Duration::from_secs(2), campaign).await.is_err() {
                    warn!("the lease was not released within 2 s; it expires on its own");
                }
            } else {
                // A request of the abandoned write may still reach AWS: let
                // the lease run out rather than hand it over now.
                campaign.abort();
                warn!("the lease is not released: it expires on its own");
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), http).await;
        info!("stopped");
        Ok(())
    }
}
