//! A FUSE mount (bindfs) that a test can freeze with SIGSTOP: every request to it then
//! blocks in the kernel, which is what a hung Lustre mount does to its callers. Used by the
//! agent's hung-mount tests and the drain tests; needs root and FUSE.

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A bindfs daemon mounted at a path; dropping it thaws, kills and unmounts it.
#[derive(Debug)]
pub struct Bindfs {
    child: Child,
    mount_point: std::path::PathBuf,
}

impl Bindfs {
    /// Mounts `source` at `mount_point` and waits (at most 5 s) until the kernel shows it.
    pub fn mount(source: &Path, mount_point: &Path) -> Bindfs {
        std::fs::create_dir_all(source).unwrap();
        let child = Command::new("bindfs")
            .arg("-f")
            .arg(source)
            .arg(mount_point)
            .spawn()
            .expect("bindfs runs");
        let bindfs = Bindfs {
            child,
            mount_point: mount_point.to_path_buf(),
        };
        let wanted = format!(" {} ", mount_point.display());
        for _ in 0..100 {
            if std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .contains(&wanted)
            {
                return bindfs;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("bindfs did not mount {}", mount_point.display());
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Every request to the mount now blocks in the kernel.
    pub fn freeze(&self) {
        self.signal(Signal::SIGSTOP);
    }

    pub fn thaw(&self) {
        self.signal(Signal::SIGCONT);
    }
}

impl Drop for Bindfs {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("fusermount")
            .arg("-u")
            .arg(&self.mount_point)
            .status();
    }
}
