//! lfleet-node: real Debian 12 nodes for tests. A node image (a minbase root made by
//! mmdebstrap with systemd, Slurm's slurmd and munge) is built once and cached between runs
//! under `/var/cache/lfleet-tests` (or `$LFLEET_TEST_CACHE`), keyed by its suite and package
//! list; concurrent tests share it under a lock, and a fresh machine builds it inside the
//! test run. Each test gets its own copy-on-write [`Overlay`] of it, which is a scratch root
//! for rpm/dpkg or a root [`Container`] boots with systemd as PID 1 under systemd-nspawn
//! (sharing the host's network, so loopback services of the test are reachable), driven
//! with nsenter. [`Step`] runs a named step and fails with systemd's own answers.
//!
//! Entry points: [`NodeImage::get`], [`Overlay::new`], [`Container::boot`], [`Step::run`].
#![allow(
    clippy::disallowed_methods,
    reason = "test support: builds root file systems, mounts overlays and runs containers"
)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The Debian suite of the node image.
pub const SUITE: &str = "bookworm";

/// What the node image holds beyond minbase: systemd as init, what lfleet-agent's package
/// depends on, and the Slurm node daemon with munge.
pub const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "mount",
    "kmod",
    "iproute2",
    "procps",
    "munge",
    "slurmd",
];

/// Bumped when the way an image is made changes (its key changes with it).
const RECIPE: &str = "1";

/// The PATH commands run with inside a node.
pub const NODE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn run(command: &mut Command, what: &str) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{what}: cannot run {command:?}: {error}"));
    if !output.status.success() {
        panic!(
            "{what} failed ({}): {command:?}\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output
}

/// FNV-1a, 64 bits: a stable key for the cache directory's name.
fn fnv1a(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Where node images are cached.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("LFLEET_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/lfleet-tests"))
        .join("node-images")
}

/// A cached node image: a Debian root directory, never changed once built.
#[derive(Debug, Clone)]
pub struct NodeImage {
    root: PathBuf,
}

impl NodeImage {
    /// The image with [`PACKAGES`], built now if no run on this machine built it before.
    pub fn get() -> NodeImage {
        NodeImage::with_packages(PACKAGES)
    }

    pub fn with_packages(packages: &[&str]) -> NodeImage {
        let recipe = format!("{SUITE} minbase recipe {RECIPE}: {}", packages.join(","));
        let name = format!("{SUITE}-{:016x}", fnv1a(&recipe));
        let dir = cache_dir();
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let lock_path = dir.join("lock");
        let lock_file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .unwrap_or_else(|e| panic!("opening {}: {e}", lock_path.display()));
        let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
            .unwrap_or_else(|(_, errno)| panic!("locking {}: {errno}", lock_path.display()));
        let image = dir.join(&name);
        let recipe_file = image.join("recipe.txt");
        if fs::read_to_string(&recipe_file).ok().as_deref() == Some(recipe.as_str()) {
            return NodeImage {
                root: image.join("root"),
            };
        }
        // Older images (another package list) go: the cache holds one image.
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path != lock_path && path != image {
                let _ = fs::remove_dir_all(&path);
            }
        }
        let _ = fs::remove_dir_all(&image);
        let building = dir.join(format!("{name}.building"));
        let _ = fs::remove_dir_all(&building);
        fs::create_dir_all(&building).unwrap();
        // The machine's own apt sources, so the image comes from where this machine's
        // packages come from.
        let sources = [
            "/etc/apt/sources.list.d/debian.sources",
            "/etc/apt/sources.list",
        ]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("this machine has no apt sources (/etc/apt/sources.list[.d])");
        run(
            Command::new("mmdebstrap")
                .arg("--variant=minbase")
                .arg(format!("--include={}", packages.join(",")))
                .arg("--aptopt=Acquire::Check-Valid-Until \"false\"")
                .arg("--quiet")
                .arg(SUITE)
                .arg(building.join("root"))
                .arg(sources),
            "building the node image with mmdebstrap",
        );
        // Packages in the image do not start services at build time; at boot they do.
        let _ = fs::remove_file(building.join("root/etc/hostname"));
        fs::write(building.join("recipe.txt"), &recipe).unwrap();
        fs::rename(&building, &image).unwrap();
        NodeImage {
            root: image.join("root"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// A copy-on-write root over a node image (overlayfs), unmounted and removed when dropped.
#[derive(Debug)]
pub struct Overlay {
    dir: tempfile::TempDir,
    merged: PathBuf,
}

impl Overlay {
    pub fn new(image: &NodeImage) -> Overlay {
        let dir = tempfile::Builder::new()
            .prefix("lfleet-node-")
            .tempdir()
            .unwrap();
        let (upper, work, merged) = (
            dir.path().join("upper"),
            dir.path().join("work"),
            dir.path().join("root"),
        );
        for d in [&upper, &work, &merged] {
            fs::create_dir_all(d).unwrap();
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            image.root().display(),
            upper.display(),
            work.display()
        );
        nix::mount::mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(options.as_str()),
        )
        .unwrap_or_else(|e| panic!("mounting an overlay at {}: {e}", merged.display()));
        Overlay { dir, merged }
    }

    /// The node's root, as a path on this machine.
    pub fn root(&self) -> &Path {
        &self.merged
    }

    /// A path inside the node, on this machine.
    pub fn path(&self, inside: &str) -> PathBuf {
        self.merged.join(inside.trim_start_matches('/'))
    }

    /// Writes a file inside the node (parents made), with a mode.
    pub fn write(&self, inside: &str, text: impl AsRef<[u8]>, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.path(inside);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Copies a file of this machine into the node.
    pub fn copy_in(&self, from: &Path, inside: &str, mode: u32) {
        let bytes = fs::read(from).unwrap_or_else(|e| panic!("reading {}: {e}", from.display()));
        self.write(inside, bytes, mode);
    }

    /// Runs a program chrooted into the node (before it boots), with a /proc of its own
    /// mount namespace (gone when the program exits).
    pub fn chroot(&self, argv: &[&str]) -> Output {
        run(
            Command::new("unshare")
                .args(["--mount", "--fork", "chroot"])
                .arg(&self.merged)
                .args(["sh", "-c", "mount -t proc proc /proc && exec \"$@\"", "sh"])
                .args(argv)
                .env_clear()
                .env("PATH", NODE_PATH)
                .env("LC_ALL", "C"),
            &format!("chroot {argv:?}"),
        )
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if let Err(error) = nix::mount::umount2(&self.merged, nix::mount::MntFlags::MNT_DETACH) {
            eprintln!("unmounting {}: {error}", self.merged.display());
        }
        let _ = &self.dir;
    }
}

/// A node booted with systemd as PID 1 under systemd-nspawn; powered off (or killed, by
/// PID) when dropped.
#[derive(Debug)]
pub struct Container {
    pub name: String,
    nspawn: Option<Child>,
    leader: i32,
    console: PathBuf,
}

/// The processes whose parent is `parent`.
fn children(parent: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(status) = fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let ppid = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .and_then(|v| v.trim().parse::<i32>().ok());
        if ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}

/// The container's PID 1 as this machine sees it: a descendant of nspawn whose innermost
/// PID is 1.
fn find_leader(nspawn: i32) -> Option<i32> {
    let mut pending = children(nspawn);
    while let Some(pid) = pending.pop() {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let innermost = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|v| v.split_whitespace().last().map(str::to_owned));
        if innermost.as_deref() == Some("1") {
            return Some(pid);
        }
        pending.extend(children(pid));
    }
    None
}

impl Container {
    /// Boots `root` as machine `name` (also its hostname), with `binds` (this machine's
    /// directory, the path inside), and waits until systemd has finished booting.
    pub fn boot(root: &Path, name: &str, binds: &[(&Path, &str)], console: &Path) -> Container {
        let started = std::time::SystemTime::now();
        let log = fs::File::create(console).unwrap();
        let mut command = Command::new("systemd-nspawn");
        command
            .arg("--quiet")
            .arg("--directory")
            .arg(root)
            .args(["--boot", "--register=no", "--keep-unit", "--console=pipe"])
            .arg(format!("--machine={name}"));
        for (from, to) in binds {
            command.arg(format!("--bind={}:{to}", from.display()));
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("systemd-nspawn (package systemd-container) runs");
        let nspawn = child.id() as i32;
        let mut container = Container {
            name: name.to_owned(),
            nspawn: Some(child),
            leader: 0,
            console: console.to_path_buf(),
        };
        for _ in 0..300 {
            if let Some(leader) = find_leader(nspawn) {
                container.leader = leader;
                break;
            }
            if let Some(Ok(Some(status))) = container.nspawn.as_mut().map(Child::try_wait) {
                panic!(
                    "systemd-nspawn exited ({status}) booting {name}:\n{}",
                    container.console_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            container.leader != 0,
            "no init process in {name} after 30 s:\n{}",
            container.console_text()
        );
        let state = container.wait_booted();
        println!(
            "   {name} booted ({state}) in {:.1} s",
            started.elapsed().unwrap_or_default().as_secs_f64()
        );
        container
    }

    /// Waits (at most 90 s) until systemd says the boot is over: `running` or `degraded`.
    pub fn wait_booted(&self) -> String {
        let mut last = String::new();
        for _ in 0..90 {
            let output = self.exec(&["timeout", "5", "systemctl", "is-system-running", "--wait"]);
            last = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            if last == "running" || last == "degraded" {
                return last;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!(
            "{} did not finish booting in 90 s (last state {last:?}):\n{}\n{}",
            self.name,
            self.text(&["systemctl", "list-jobs", "--no-pager"]),
            self.console_text()
        );
    }

    pub fn console_text(&self) -> String {
        fs::read_to_string(&self.console).unwrap_or_default()
    }

    /// The container's init process, as this machine sees it.
    pub fn leader(&self) -> i32 {
        self.leader
    }

    /// Runs `argv` inside the node (all its namespaces, its root), with a clean environment.
    pub fn exec(&self, argv: &[&str]) -> Output {
        self.command(argv)
            .output()
            .unwrap_or_else(|e| panic!("nsenter into {}: {e}", self.name))
    }

    /// The command that runs `argv` inside the node, to add environment or input to.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg("--target")
            .arg(self.leader.to_string())
            .args(["--all", "--root", "--wd", "--", "env", "-i"])
            .arg(format!("PATH={NODE_PATH}"))
            .args([
                "LANG=C.UTF-8",
                "HOME=/root",
                "SYSTEMD_PAGER=",
                "SYSTEMD_COLORS=0",
            ])
            .args(argv)
            .stdin(Stdio::null());
        command
    }

    /// Runs `argv` inside the node; its stdout, or everything it printed as the error.
    pub fn ok(&self, argv: &[&str]) -> Result<String, String> {
        let output = self.exec(argv);
        if !output.status.success() {
            return Err(format!(
                "{argv:?} in {} failed ({}):\nstdout:\n{}\nstderr:\n{}",
                self.name,
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Whatever `argv` prints (stdout and stderr), whatever its exit status.
    pub fn text(&self, argv: &[&str]) -> String {
        let output = self.exec(argv);
        format!(
            "$ {}\n{}{}",
            argv.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    /// One property of a unit (`systemctl show -P`).
    pub fn unit_property(&self, unit: &str, property: &str) -> String {
        self.ok(&["systemctl", "show", "-P", property, unit])
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// systemd's own account of units: status and the journal's last lines.
    pub fn systemd_report(&self, units: &[&str]) -> String {
        let mut report = String::new();
        for unit in units {
            report.push_str(&self.text(&[
                "systemctl",
                "status",
                "--no-pager",
                "--full",
                "--lines=0",
                unit,
            ]));
            // Warnings and errors first (they are what explains a failure), then the tail.
            report.push_str(&self.text(&[
                "journalctl",
                "--no-pager",
                "--lines=25",
                "--priority=warning",
                "--output=short-monotonic",
                "--unit",
                unit,
            ]));
            report.push_str(&self.text(&[
                "journalctl",
                "--no-pager",
                "--lines=15",
                "--output=short-monotonic",
                "--unit",
                unit,
            ]));
        }
        report.push_str(&self.text(&["systemctl", "--failed", "--no-pager"]));
        report
    }

    /// `systemctl poweroff` and waits (at most 60 s) for the container to stop.
    pub fn poweroff(mut self) {
        let started = std::time::SystemTime::now();
        let _ = self.exec(&["systemctl", "poweroff"]);
        if let Some(mut child) = self.nspawn.take() {
            for _ in 0..600 {
                if let Ok(Some(_)) = child.try_wait() {
                    println!(
                        "   {} powered off in {:.1} s",
                        self.name,
                        started.elapsed().unwrap_or_default().as_secs_f64()
                    );
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let console = self.console_text();
            let _ = kill(Pid::from_raw(self.leader), Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not power off in 60 s:\n{console}", self.name);
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let Some(mut child) = self.nspawn.take() else {
            return;
        };
        // SIGTERM asks nspawn to shut the container down cleanly.
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        for _ in 0..150 {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if self.leader != 0 {
            let _ = kill(Pid::from_raw(self.leader), Signal::SIGKILL);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A named step of a node test: prints its name, and when it fails, fails the test with the
/// step's name, what went wrong and systemd's answers about the units involved.
#[derive(Debug)]
pub struct Step;

impl Step {
    pub fn run<T>(
        name: &str,
        node: &Container,
        units: &[&str],
        body: impl FnOnce() -> Result<T, String>,
    ) -> T {
        println!("== step: {name}");
        let _ = std::io::stdout().flush();
        let started = std::time::SystemTime::now();
        match body() {
            Ok(value) => {
                let took = started.elapsed().unwrap_or_default().as_secs_f64();
                println!("   ok ({took:.1} s): {name}");
                value
            }
            Err(why) => panic!(
                "step `{name}` failed: {why}\n--- systemd in {} ---\n{}",
                node.name,
                node.systemd_report(units)
            ),
        }
    }
}

/// Polls `probe` every 200 ms until it gives a value, for at most `limit`; the last error
/// otherwise.
pub fn wait_for<T>(
    limit: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let rounds = (limit.as_millis() / 200).max(1);
    let mut last = String::from("never probed");
    for _ in 0..rounds {
        match probe() {
            Ok(value) => return Ok(value),
            Err(why) => last = why,
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("after {} s: {last}", limit.as_secs()))
}

/// Every path under `root` whose name holds `needle`, sorted, leaving out the paths that
/// start with one of `skip` (relative to `root`, such as a package manager's own records).
pub fn paths_named(root: &Path, needle: &str, skip: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            if skip.iter().any(|s| relative.starts_with(s)) {
                continue;
            }
            if relative.contains(needle) {
                found.push(relative.clone());
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path);
            }
        }
    }
    found.sort();
    found
}
