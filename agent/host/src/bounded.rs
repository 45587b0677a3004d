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
    in_flight: Arc<Mutex<HashMap<String, InFlight>>>,
}

/// A call in flight: when it started and its thread's kernel id (0 until the thread runs).
#[derive(Debug, Clone)]
struct InFlight {
    started: Instant,
    tid: Arc<std::sync::atomic::AtomicI32>,
}

/// Removes a key from the in-flight map when the worker thread ends, however it ends.
struct Release {
    in_flight: Arc<Mutex<HashMap<String, InFlight>>>,
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

    /// The kernel thread id of the call in flight for `key`, to read its wchan.
    pub fn thread_id(&self, key: &str) -> Option<i32> {
        let in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let tid = in_flight
            .get(key)?
            .tid
            .load(std::sync::atomic::Ordering::SeqCst);
        (tid > 0).then_some(tid)
    }

    /// Runs `call` on a new thread, waiting at most `deadline`.
    pub async fn run<T, F>(&self, key: &str, deadline: Duration, call: F) -> Bounded<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let tid = Arc::new(std::sync::atomic::AtomicI32::new(0));
        {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(call) = in_flight.get(key) {
                return Bounded::StillStuck {
                    since: call.started.elapsed(),
                };
            }
            in_flight.insert(
                key.to_owned(),
                InFlight {
                    started: Instant::now(),
                    tid: tid.clone(),
                },
            );
        }
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let release = Release {
            in_flight: self.in_flight.clone(),
            key: key.to_owned(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("lfb-{key}"))
            .spawn(move || {
                tid.store(
                    nix::unistd::gettid().as_raw(),
                    std::sync::atomic::Ordering::SeqCst,
                );
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

/// The kernel function a thread of this process is blocked in (`/proc/self/task/<tid>/wchan`),
/// when the kernel shows it (it prints `0` for a running task or when it hides symbols).
pub fn thread_wchan(tid: i32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/wchan")).ok()?;
    let text = text.trim();
    (!text.is_empty() && text != "0").then(|| text.to_owned())
}

/// What [`probe_reporting_wchan`] found.
#[derive(Debug)]
pub enum Probe {
    Done(Result<FsProbe, (PathBuf, std::io::Error)>),
    /// Still blocked after the wait; the kernel function it is blocked in, when shown.
    Stuck {
        wchan: Option<String>,
    },
}

/// [`statfs_and_stat`] on a thread, waiting at most `wait`; a probe still blocked then is
/// reported with its wchan. The blocked thread is left behind: the caller (the one-shot
/// probe child) exits, and the kernel ends the thread when the call returns or is killed.
pub fn probe_reporting_wchan(path: &Path, wait: Duration) -> Probe {
    let (sender, receiver) = std::sync::mpsc::channel();
    let tid = Arc::new(std::sync::atomic::AtomicI32::new(0));
    let thread_tid = tid.clone();
    let path = path.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("lfleet-probe".into())
        .spawn(move || {
            thread_tid.store(
                nix::unistd::gettid().as_raw(),
                std::sync::atomic::Ordering::SeqCst,
            );
            let _ = sender.send(statfs_and_stat(&path));
        });
    if let Err(error) = spawned {
        return Probe::Done(Err((PathBuf::new(), error)));
    }
    match receiver.recv_timeout(wait) {
        Ok(result) => Probe::Done(result),
        Err(_) => Probe::Stuck {
            wchan: thread_wchan(tid.load(std::sync::atomic::Ordering::SeqCst)),
        },
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
