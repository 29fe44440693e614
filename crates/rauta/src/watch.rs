//! Watching the `--manifests` paths for changes.
//!
//! A file is watched through its parent directory, not its inode: editors and `kubectl cp` replace files by
//! renaming a new one over the old, which an inode watch would lose after the first save. Directories are
//! watched recursively, so new files and subdirectories count. If the kernel watcher cannot be set up (for
//! instance the inotify watch limit is exhausted) a polling watcher takes over.
//!
//! The watcher only says "something changed"; the reloader re-reads everything, so a missed detail in an
//! event never leaves a stale file behind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::EventKind;
use notify::{Event, PollWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// How often the polling fallback compares file metadata.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Keeps the watch alive; dropping it stops change notifications.
pub struct ManifestWatcher {
    /// Held only to keep the watch registered (inotify or polling).
    _watcher: Box<dyn Watcher + Send + Sync>,
}

/// What to watch for one `--manifests` path.
#[derive(Debug, Clone)]
struct Target {
    /// Absolute form of the path the user gave.
    path: PathBuf,
    /// The path is a directory (watched recursively); otherwise a file watched through its parent.
    is_dir: bool,
}

impl Target {
    /// The directory watched for a file target: its parent (see the module comment).
    fn watch_root(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }

    /// Whether an event on `changed` concerns this target.
    fn concerns(&self, changed: &Path) -> bool {
        if self.is_dir {
            changed.starts_with(&self.path)
        } else {
            changed == self.path
        }
    }
}

/// Start watching `paths`; every relevant change sends a unit on `changes` (dropped if one is already
/// pending: the reloader reads everything anyway).
pub fn watch(
    paths: &[PathBuf],
    changes: mpsc::Sender<()>,
) -> Result<ManifestWatcher, notify::Error> {
    watch_with(paths, changes, false)
}

/// [`watch`], optionally skipping inotify (to test the fallback).
fn watch_with(
    paths: &[PathBuf],
    changes: mpsc::Sender<()>,
    force_polling: bool,
) -> Result<ManifestWatcher, notify::Error> {
    let targets: Vec<Target> = paths.iter().map(|p| target(p)).collect();
    let handler = {
        let targets = targets.clone();
        move |result: Result<Event, notify::Error>| match result {
            Ok(event) => {
                if is_change(&event.kind)
                    && event
                        .paths
                        .iter()
                        .any(|p| targets.iter().any(|t| t.concerns(p)))
                {
                    // Full means a change is already queued; the coming reload covers this one too.
                    let _ = changes.try_send(());
                }
            }
            Err(error) => {
                tracing::warn!(%error, "manifest watcher error; reloading to be safe");
                let _ = changes.try_send(());
            }
        }
    };

    if !force_polling {
        const FALLBACK: &str = "cannot watch manifests with inotify; polling every second instead";
        match notify::recommended_watcher(handler.clone()) {
            Ok(mut watcher) => match add_watches(&mut watcher, &targets) {
                Ok(()) => {
                    return Ok(ManifestWatcher {
                        _watcher: Box::new(watcher),
                    })
                }
                Err(error) => tracing::warn!(%error, "{FALLBACK}"),
            },
            Err(error) => tracing::warn!(%error, "{FALLBACK}"),
        }
    }
    // The poller compares mtimes in whole seconds, so an edit within the second of the previous scan would be
    // missed; hashing contents catches it. Manifest trees are small, so reading them once a second is cheap.
    let config = notify::Config::default()
        .with_poll_interval(POLL_INTERVAL)
        .with_compare_contents(true);
    let mut watcher = PollWatcher::new(handler, config)?;
    add_watches(&mut watcher, &targets)?;
    Ok(ManifestWatcher {
        _watcher: Box::new(watcher),
    })
}

fn add_watches(watcher: &mut dyn Watcher, targets: &[Target]) -> Result<(), notify::Error> {
    for target in targets {
        if target.is_dir {
            watcher.watch(&target.path, RecursiveMode::Recursive)?;
            // The parent too, so that the directory being replaced as a whole (deleted and re-created,
            // or renamed over) is seen; the reloader then builds a new watcher on the new directory.
            if let Some(parent) = target.path.parent() {
                if let Err(error) = watcher.watch(parent, RecursiveMode::NonRecursive) {
                    tracing::debug!(%error, dir = %parent.display(), "cannot watch the parent of a manifest directory");
                }
            }
        } else {
            watcher.watch(target.watch_root(), RecursiveMode::NonRecursive)?;
        }
    }
    Ok(())
}

fn target(path: &Path) -> Target {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    Target {
        is_dir: absolute.is_dir(),
        path: absolute,
    }
}

/// Reads (our own included) are not changes.
fn is_change(kind: &EventKind) -> bool {
    !matches!(kind, EventKind::Access(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn expect_change(rx: &mut mpsc::Receiver<()>) {
        // Generous: the poller's thread may wait for a CPU on a loaded machine.
        tokio::time::timeout(Duration::from_secs(15), rx.recv())
            .await
            .expect("no change seen")
            .unwrap();
    }

    async fn drain(rx: &mut mpsc::Receiver<()>) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        while rx.try_recv().is_ok() {}
    }

    #[tokio::test]
    async fn a_file_replaced_by_rename_is_still_watched() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("routes.yaml");
        std::fs::write(&file, "a").unwrap();
        let (tx, mut rx) = mpsc::channel(1);
        let _watcher = watch(std::slice::from_ref(&file), tx).unwrap();

        for round in 0..2 {
            let temp = dir.path().join(format!(".tmp{round}"));
            std::fs::write(&temp, format!("v{round}")).unwrap();
            std::fs::rename(&temp, &file).unwrap();
            expect_change(&mut rx).await;
            drain(&mut rx).await;
        }
    }

    #[tokio::test]
    async fn the_polling_fallback_sees_edits() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("routes.yaml");
        std::fs::write(&file, "a").unwrap();
        let (tx, mut rx) = mpsc::channel(1);
        let _watcher = watch_with(&[dir.path().to_path_buf()], tx, true).unwrap();
        drain(&mut rx).await;
        // Different length, so the change shows in metadata even within one mtime tick.
        std::fs::write(&file, "changed").unwrap();
        expect_change(&mut rx).await;
    }

    #[tokio::test]
    async fn unrelated_files_next_to_a_watched_file_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("routes.yaml");
        std::fs::write(&file, "a").unwrap();
        let (tx, mut rx) = mpsc::channel(1);
        let _watcher = watch(std::slice::from_ref(&file), tx).unwrap();
        std::fs::write(dir.path().join("other.yaml"), "b").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn new_files_in_new_subdirectories_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::channel(1);
        let _watcher = watch(&[dir.path().to_path_buf()], tx).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        expect_change(&mut rx).await;
        drain(&mut rx).await;
        std::fs::write(dir.path().join("sub/new.yaml"), "x").unwrap();
        expect_change(&mut rx).await;
    }
}
