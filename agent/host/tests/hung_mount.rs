//! A truly hung mount: bindfs (FUSE) whose daemon is frozen with SIGSTOP. statfs on it blocks
//! in the kernel; the bounded worker reports the hang within its deadline, other paths still
//! answer, only one thread is left stuck, and after SIGCONT the mount answers again.
//! Needs root and /dev/fuse (CI runs as root; tests/setup.sh installs bindfs).
#![allow(
    clippy::disallowed_methods,
    reason = "the test starts and freezes a real FUSE daemon and reads /proc/self/mountinfo"
)]

use std::time::{Duration, Instant};

use lfleet_harness::bindfs::Bindfs;
use lfleet_host::{Bounded, BoundedWorker, statfs_and_stat};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_a_hung_fuse_mount_is_reported_within_its_deadline_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (source, mount_point) = (dir.path().join("src"), dir.path().join("mnt"));
    std::fs::create_dir_all(&source).unwrap();
    std::fs::create_dir_all(&mount_point).unwrap();
    let mount = Bindfs::mount(&source, &mount_point);
    let worker = BoundedWorker::new();
    let deadline = Duration::from_secs(1);

    let probe = mount_point.clone();
    assert!(matches!(
        worker
            .run("mnt", deadline, move || statfs_and_stat(&probe))
            .await,
        Bounded::Done(Ok(_))
    ));

    mount.freeze();
    let started = Instant::now();
    let probe = mount_point.clone();
    let outcome = worker
        .run("mnt", deadline, move || statfs_and_stat(&probe))
        .await;
    let took = started.elapsed();
    assert!(
        matches!(outcome, Bounded::TimedOut { after } if after == deadline),
        "{outcome:?}"
    );
    assert!(
        took < deadline + Duration::from_secs(1),
        "reported after {took:?}"
    );

    // Everything else still answers, and the hung mount does not collect more threads.
    let other = dir.path().to_path_buf();
    assert!(matches!(
        worker
            .run("tmp", deadline, move || statfs_and_stat(&other))
            .await,
        Bounded::Done(Ok(_))
    ));
    let probe = mount_point.clone();
    assert!(matches!(
        worker
            .run("mnt", deadline, move || statfs_and_stat(&probe))
            .await,
        Bounded::StillStuck { .. }
    ));
    assert_eq!(worker.stuck(), 1);

    mount.thaw();
    let mut freed = false;
    for _ in 0..100 {
        if worker.stuck() == 0 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "the stuck call never returned after SIGCONT");
    let probe = mount_point.clone();
    assert!(matches!(
        worker
            .run("mnt", deadline, move || statfs_and_stat(&probe))
            .await,
        Bounded::Done(Ok(_))
    ));
}
