//! Watching the desired-state directory: file-system events, debounced
//! into one reload per burst (an editor's save-as-rename, a `git checkout`
//! touching fifty files).

use std::path::Path;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Keeps the OS watcher alive; dropping it stops watching.
pub struct DirWatcher {
    _watcher: notify::RecommendedWatcher,
}

/// Watch `dir` recursively. Each burst of events separated by less than
/// `quiet` yields one `()` on the returned channel, at most `quiet` after
/// the burst's last event (and no later than `max_wait` after its first).
pub fn watch(dir: &Path, quiet: Duration, max_wait: Duration) -> notify::Result<(DirWatcher, mpsc::Receiver<()>)> {
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res
            && !matches!(ev.kind, notify::EventKind::Access(_))
        {
            let _ = raw_tx.send(());
        }
    })?;
    watcher.watch(dir, RecursiveMode::Recursive)?;
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        while raw_rx.recv().await.is_some() {
            let deadline = tokio::time::Instant::now() + max_wait;
            loop {
                let wake = (tokio::time::Instant::now() + quiet).min(deadline);
                tokio::select! {
                    more = raw_rx.recv() => if more.is_none() { return },
                    _ = tokio::time::sleep_until(wake) => break,
                }
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
            }
            // A reload already pending covers this burst too.
            let _ = tx.try_send(());
        }
    });
    Ok((DirWatcher { _watcher: watcher }, rx))
}
