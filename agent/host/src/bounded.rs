//! Running syscalls that can hang (statfs, stat, readdir on a sick Lustre mount) off the async
//! runtime, each on its own thread, under a deadline, at most one in flight per key.
//!
//! A call that passes its deadline is reported as [`Bounded::TimedOut`] and its thread is left
//! to finish (a thread blocked in the kernel cannot be killed); while it is still stuck, later
//! calls for the same key return [`Bounded::StillStuck`] at once instead of stacking another
//! thread on the same mount. When the thread finally returns, the key is free again.
//!
//! Entry points: [`BoundedWorker::run`], [`statfs_and_stat`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The outcome of a bounded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bounded<T> {
    Done(T),
    /// This call passed its deadline; its thread is still blocked.
    TimedOut {
        after: Duration,
    },
    /// An earlier call for the same key is still blocked, for this long.
    StillStuck {
        since: Duration,
    },
}

/// Runs blocking calls with deadlines, one in flight per key.
#[derive(Debug, Clone, Default)]
pub struct BoundedWorker {
    in_flight: Arc<Mutex<HashMap<String, Instant>>>,
}

/// Removes a key from the in-flight map when the worker thread ends, however it ends.
struct Release {
    in_flight: Arc<Mutex<HashMap<String, Instant>>>,
    key: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

impl BoundedWorker {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many calls are blocked right now.
    pub fn stuck(&self) -> usize {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Runs `call` on a new thread, waiting at most `deadline`.
    pub async fn run<T, F>(&self, key: &str, deadline: Duration, call: F) -> Bounded<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(started) = in_flight.get(key) {
                return Bounded::StillStuck {
                    since: started.elapsed(),
                };
            }
            in_flight.insert(key.to_owned(), Instant::now());
        }
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let release = Release {
            in_flight: self.in_flight.clone(),
            key: key.to_owned(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("lfleet-bounded-{key}"))
            .spawn(move || {
                // The key is released before the result is sent, so a caller that has its
                // answer can call again at once; a panic releases it while unwinding.
                let value = call();
                drop(release);
                let _ = sender.send(value);
            });
        if spawned.is_err() {
            self.in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(key);
            return Bounded::TimedOut {
                after: Duration::ZERO,
            };
        }
        match tokio::time::timeout(deadline, receiver).await {
            Ok(Ok(value)) => Bounded::Done(value),
            // The thread ended without sending: it panicked. Report it like a hang, once.
            Ok(Err(_)) => Bounded::TimedOut { after: deadline },
            Err(_) => Bounded::TimedOut { after: deadline },
        }
    }
}

/// What statfs and a stat of a mount's root say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsProbe {
    pub blocks: u64,
    pub blocks_available: u64,
    pub block_size: u64,
    pub fs_type: i64,
}

/// statfs(2) and stat(2) of `path`, the two calls a hung Lustre mount blocks.
pub fn statfs_and_stat(path: &Path) -> Result<FsProbe, (PathBuf, std::io::Error)> {
    let stats = nix::sys::statfs::statfs(path)
        .map_err(|errno| (path.to_path_buf(), std::io::Error::from(errno)))?;
    std::fs::metadata(path).map_err(|error| (path.to_path_buf(), error))?;
    Ok(FsProbe {
        blocks: stats.blocks(),
        blocks_available: stats.blocks_available(),
        block_size: stats.block_size() as u64,
        fs_type: stats.filesystem_type().0 as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_blocked_call_times_out_and_blocks_only_its_own_key() {
        let worker = BoundedWorker::new();
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let stuck = worker
            .run("/lustre", Duration::from_millis(100), move || {
                gate.recv().ok()
            })
            .await;
        assert_eq!(
            stuck,
            Bounded::TimedOut {
                after: Duration::from_millis(100)
            }
        );
        assert!(matches!(
            worker.run("/lustre", Duration::from_secs(1), || 1).await,
            Bounded::StillStuck { .. }
        ));
        assert_eq!(
            worker.run("/scratch", Duration::from_secs(1), || 2).await,
            Bounded::Done(2)
        );
        assert_eq!(worker.stuck(), 1);
        release.send(()).unwrap();
        for _ in 0..100 {
            if worker.stuck() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            worker.run("/lustre", Duration::from_secs(1), || 3).await,
            Bounded::Done(3)
        );
    }
}
