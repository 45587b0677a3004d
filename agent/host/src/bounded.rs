//! Running syscalls that can hang (statfs, stat, readdir on a sick Lustre mount) off the async
//! runtime, each on its own thread, under a deadline, at most one in flight per key.
//!
//! A call that passes its deadline is reported as [`Bounded::TimedOut`] and its thread is left
//! to finish (a thread blocked in the kernel cannot be killed); while it is still stuck, later
//! calls for the same key return [`Bounded::StillStuck`] at once instead of stacking another
//! thread on the same mount. When the thread finally returns, the key is free again.
//!
//! A worker made with [`BoundedWorker::keeping_threads`] keeps each key's thread between
//! calls (the telemetry cycle runs every few seconds, and a new thread each time costs a
//! dozen syscalls and fresh stack pages); a thread left idle for [`IDLE_EXIT`] ends, and a key
//! whose thread ended (or panicked) gets a new one, so a key never has more than one thread,
//! busy, stuck or idle. [`BoundedWorker::new`] starts a thread per call, so a probe thread
//! exists only while its probe runs: one seen for long is a stuck one.
//!
//! Entry points: [`BoundedWorker::run`], [`statfs_and_stat`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a key's thread waits for its next call before it ends.
pub const IDLE_EXIT: Duration = Duration::from_secs(600);

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
    keys: Arc<Mutex<HashMap<String, KeyState>>>,
    /// Keep each key's thread for its next call.
    keep_threads: bool,
}

/// A call as its key's thread runs it.
type Job = Box<dyn FnOnce() + Send>;

/// One key: its call in flight, and its thread (waiting for the next call when idle).
#[derive(Debug, Default)]
struct KeyState {
    in_flight: Option<InFlight>,
    thread: Option<mpsc::Sender<Job>>,
}

/// A call in flight: when it started and its thread's kernel id (0 until the thread runs).
#[derive(Debug, Clone)]
struct InFlight {
    started: Instant,
    tid: Arc<std::sync::atomic::AtomicI32>,
}

type Keys = Arc<Mutex<HashMap<String, KeyState>>>;

fn lock(keys: &Keys) -> std::sync::MutexGuard<'_, HashMap<String, KeyState>> {
    keys.lock().unwrap_or_else(|e| e.into_inner())
}

/// A key held by [`BoundedWorker::claim`]; dropping it frees the key.
#[derive(Debug)]
pub struct Claim {
    _release: Release,
}

/// Frees a key when its call ends, however it ends (a panic frees it while unwinding).
#[derive(Debug)]
struct Release {
    keys: Keys,
    key: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        if let Some(state) = lock(&self.keys).get_mut(&self.key) {
            state.in_flight = None;
            // Dropped while the call unwinds: its thread is about to end. Forgotten under the
            // same lock, so the key's next call starts a new thread instead of queueing on a
            // channel whose receiver is being dropped (the call would be lost).
            if std::thread::panicking() {
                state.thread = None;
            }
        }
    }
}

impl BoundedWorker {
    /// A worker that starts a thread for every call.
    pub fn new() -> Self {
        Self::default()
    }

    /// A worker that keeps each key's thread for the key's next call.
    pub fn keeping_threads() -> Self {
        BoundedWorker {
            keep_threads: true,
            ..Self::default()
        }
    }

    /// How many calls are in flight (blocked or running) right now.
    pub fn stuck(&self) -> usize {
        lock(&self.keys)
            .values()
            .filter(|state| state.in_flight.is_some())
            .count()
    }

    /// The kernel thread id of the call in flight for `key`, to read its wchan.
    pub fn thread_id(&self, key: &str) -> Option<i32> {
        let keys = lock(&self.keys);
        let tid = keys
            .get(key)?
            .in_flight
            .as_ref()?
            .tid
            .load(std::sync::atomic::Ordering::SeqCst);
        (tid > 0).then_some(tid)
    }

    /// Holds `key` as in flight for work that runs elsewhere (a child process on the same
    /// mount), so nothing else is started on the key meanwhile; released when the claim is
    /// dropped. An earlier call still in flight refuses it with how long it has been stuck.
    pub fn claim(&self, key: &str) -> Result<Claim, Duration> {
        let mut keys = lock(&self.keys);
        let state = keys.entry(key.to_owned()).or_default();
        if let Some(call) = &state.in_flight {
            return Err(call.started.elapsed());
        }
        state.in_flight = Some(InFlight {
            started: Instant::now(),
            tid: Arc::new(std::sync::atomic::AtomicI32::new(0)),
        });
        Ok(Claim {
            _release: Release {
                keys: self.keys.clone(),
                key: key.to_owned(),
            },
        })
    }

    /// Runs `call` on the key's thread, waiting at most `deadline`.
    pub async fn run<T, F>(&self, key: &str, deadline: Duration, call: F) -> Bounded<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        // A queue whose thread could not be started: dropped only after the lock is let go,
        // since dropping its call runs the call's release, which takes the lock.
        let mut orphan = None;
        {
            let mut keys = lock(&self.keys);
            let state = match keys.get_mut(key) {
                Some(state) => state,
                None => keys.entry(key.to_owned()).or_default(),
            };
            if let Some(call) = &state.in_flight {
                return Bounded::StillStuck {
                    since: call.started.elapsed(),
                };
            }
            let tid = Arc::new(std::sync::atomic::AtomicI32::new(0));
            state.in_flight = Some(InFlight {
                started: Instant::now(),
                tid: tid.clone(),
            });
            let release = Release {
                keys: self.keys.clone(),
                key: key.to_owned(),
            };
            let job: Job = Box::new(move || {
                tid.store(
                    nix::unistd::gettid().as_raw(),
                    std::sync::atomic::Ordering::SeqCst,
                );
                // The key is released before the result is sent, so a caller that has its
                // answer can call again at once.
                let value = call();
                drop(release);
                let _ = sender.send(value);
            });
            // Handed over under the lock, so an idle thread deciding to end cannot miss it.
            let unsent = match &state.thread {
                Some(thread) => thread.send(job).err().map(|unsent| unsent.0),
                None => Some(job),
            };
            if let Some(job) = unsent {
                let (thread, jobs) = mpsc::channel();
                let _ = thread.send(job);
                state.thread = Some(thread);
                let keys = self.keys.clone();
                let owner = key.to_owned();
                let idle_exit = if self.keep_threads {
                    IDLE_EXIT
                } else {
                    Duration::ZERO
                };
                let spawned = std::thread::Builder::new()
                    .name(format!("lfb-{key}"))
                    .spawn(move || serve(keys, owner, jobs, idle_exit));
                if spawned.is_err() {
                    orphan = state.thread.take();
                }
            }
        }
        if orphan.is_some() {
            drop(orphan);
            return Bounded::TimedOut {
                after: Duration::ZERO,
            };
        }
        match tokio::time::timeout(deadline, receiver).await {
            Ok(Ok(value)) => Bounded::Done(value),
            // The call ended without sending: it panicked. Report it like a hang, once.
            Ok(Err(_)) => Bounded::TimedOut { after: deadline },
            Err(_) => Bounded::TimedOut { after: deadline },
        }
    }
}

/// A key's thread: runs its calls as they come; ends after `idle_exit` without one (at once
/// after its call, with zero).
fn serve(keys: Keys, key: String, jobs: mpsc::Receiver<Job>, idle_exit: Duration) {
    loop {
        match jobs.recv_timeout(idle_exit) {
            Ok(job) => job(),
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Calls are handed over under the lock: with it held and nothing queued, no
                // call can come to this thread any more.
                let mut keys = lock(&keys);
                match jobs.try_recv() {
                    Ok(job) => {
                        drop(keys);
                        job();
                    }
                    Err(_) => {
                        if let Some(state) = keys.get_mut(&key) {
                            state.thread = None;
                        }
                        return;
                    }
                }
            }
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

    #[tokio::test]
    async fn a_claim_holds_its_key_against_calls_and_a_stuck_call_refuses_a_claim() {
        let worker = BoundedWorker::new();
        let claim = worker.claim("/lustre").unwrap();
        assert!(matches!(
            worker.run("/lustre", Duration::from_secs(1), || 1).await,
            Bounded::StillStuck { .. }
        ));
        assert!(worker.claim("/lustre").is_err());
        assert!(worker.claim("/scratch").is_ok());
        drop(claim);
        assert_eq!(
            worker.run("/lustre", Duration::from_secs(1), || 2).await,
            Bounded::Done(2)
        );
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let stuck = worker
            .run("/lustre", Duration::from_millis(50), move || {
                gate.recv().ok()
            })
            .await;
        assert!(matches!(stuck, Bounded::TimedOut { .. }));
        assert!(
            worker.claim("/lustre").is_err(),
            "the stuck call holds the key"
        );
        release.send(()).unwrap();
    }

    fn tid() -> i32 {
        nix::unistd::gettid().as_raw()
    }

    #[tokio::test]
    async fn a_keeping_worker_runs_a_keys_calls_on_one_thread_and_survives_a_panic() {
        let worker = BoundedWorker::keeping_threads();
        let Bounded::Done(first) = worker.run("cycle", Duration::from_secs(5), tid).await else {
            panic!("the first call did not finish");
        };
        for _ in 0..3 {
            assert_eq!(
                worker.run("cycle", Duration::from_secs(5), tid).await,
                Bounded::Done(first),
                "a kept thread runs every call of its key"
            );
        }
        // Another key, another thread.
        let Bounded::Done(other) = worker.run("other", Duration::from_secs(5), tid).await else {
            panic!("the other key's call did not finish");
        };
        assert_ne!(other, first);
        // A call that panics is reported like a hang, once; the key gets a new thread.
        let panicked = worker
            .run("cycle", Duration::from_secs(5), || -> i32 {
                panic!("injected")
            })
            .await;
        assert!(matches!(panicked, Bounded::TimedOut { .. }), "{panicked:?}");
        let Bounded::Done(after) = worker.run("cycle", Duration::from_secs(5), tid).await else {
            panic!("the key stayed blocked after a panic");
        };
        assert_ne!(after, first, "the panicked thread is gone");
        assert_eq!(worker.stuck(), 0);
    }

    #[tokio::test]
    async fn a_plain_worker_ends_each_calls_thread_after_the_call() {
        let worker = BoundedWorker::new();
        for _ in 0..3 {
            let Bounded::Done(id) = worker.run("/lustre", Duration::from_secs(5), tid).await else {
                panic!("a call did not finish");
            };
            let task = format!("/proc/self/task/{id}");
            let mut gone = false;
            for _ in 0..200 {
                if !std::path::Path::new(&task).exists() {
                    gone = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert!(gone, "the thread of a finished call is still there");
        }
    }
}
