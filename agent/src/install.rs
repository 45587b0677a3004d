//! Making sure a kernel has its Lustre client: look for the module, install the
//! kernel-matched AMLFS package if it is missing, classify what went wrong.
//!
//! A kernel "has a client" when a `lustre.ko` (possibly compressed) exists under
//! `/lib/modules/<kernel>`: apt's metapackage carries the kernel as its version, so after a
//! kernel upgrade only one kernel's metapackage is installed while both kernels' modules are,
//! and the module is what a boot needs.
//!
//! The package manager's lock is waited for by the package manager itself
//! (`-o DPkg::Lock::Timeout` for apt-get; dnf and tdnf wait on their own), under the runner's
//! deadline. A pass makes one attempt by default (`InstallPolicy::attempts`); what to do
//! next is [`lfleet_install::follow_up`]'s decision from the class: a retry on that class's
//! schedule, a DKMS build, or a refusal with a reason. A missing package is sorted into
//! "not yet published" and "series unsupported" by [`missing_package`] from what the
//! repository does publish.
//!
//! Entry points: [`Installer::ensure_client`], [`find_module`], [`installed_kernels`],
//! [`running_kernel`].

use std::time::Duration;

use lfleet_host::{Clock, CommandError, CommandRunner, CommandSpec, HostError, HostRoot};
use lfleet_install::classify::{missing_package, says_package_missing};
use lfleet_install::package::PackageNameError;
use lfleet_install::{ClientPackage, Distro, FailureClass, PackageManager, classify};

/// How the installer behaves.
#[derive(Debug, Clone)]
pub struct InstallPolicy {
    /// The AMLFS Lustre client version, e.g. `2.15.7-33-g79ddf99`.
    pub lustre_version: String,
    /// Tries for transient failures within one call, the first included (1: the caller's
    /// follow-up schedules the next try).
    pub attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long the package manager may wait for its lock.
    pub lock_timeout: Duration,
    /// Deadline of one package-manager run (includes the lock wait).
    pub command_timeout: Duration,
}

impl InstallPolicy {
    pub fn new(lustre_version: impl Into<String>) -> Self {
        InstallPolicy {
            lustre_version: lustre_version.into(),
            attempts: 1,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(60),
            lock_timeout: Duration::from_secs(120),
            command_timeout: Duration::from_secs(900),
        }
    }
}

/// What [`Installer::ensure_client`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    /// The module was already there; nothing ran.
    AlreadyPresent,
    /// The package was installed and its module is now there.
    Installed { package: String },
}

/// Why a kernel has no client.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("kernel {kernel}: {class}{}", detail_suffix(.detail))]
    Failed {
        kernel: String,
        class: FailureClass,
        command: String,
        /// Why, when the output alone does not say (what the repository publishes).
        detail: Option<String>,
        #[source]
        source: Box<CommandError>,
    },
    #[error(
        "kernel {kernel}: {package} installed but no lustre module appeared under /lib/modules/{kernel}"
    )]
    NoModuleAfterInstall { kernel: String, package: String },
    #[error("kernel {kernel}")]
    PackageName {
        kernel: String,
        #[source]
        source: PackageNameError,
    },
    #[error("looking for the lustre module of kernel {kernel}")]
    Host {
        kernel: String,
        #[source]
        source: HostError,
    },
}

fn detail_suffix(detail: &Option<String>) -> String {
    detail
        .as_deref()
        .map(|detail| format!(" ({detail})"))
        .unwrap_or_default()
}

impl InstallError {
    /// The failure class, for `reboot-unsafe` findings and the coordinator.
    pub fn class(&self) -> FailureClass {
        match self {
            InstallError::Failed { class, .. } => *class,
            InstallError::NoModuleAfterInstall { .. } => FailureClass::ModuleMissing,
            InstallError::PackageName { .. } | InstallError::Host { .. } => FailureClass::Unknown,
        }
    }
}

/// Installs clients on one node.
#[derive(Debug)]
pub struct Installer<'a> {
    pub host: &'a HostRoot,
    pub runner: &'a dyn CommandRunner,
    pub clock: &'a dyn Clock,
    pub distro: &'a Distro,
    pub policy: &'a InstallPolicy,
}

// === impl Installer ===

impl Installer<'_> {
    /// Makes sure `kernel` has a Lustre client module, installing the package if needed.
    pub async fn ensure_client(&self, kernel: &str) -> Result<Ensured, InstallError> {
        self.ensure(kernel, false).await
    }

    /// Installs the configured client for `kernel` over the module present, which is another
    /// version.
    pub async fn replace_client(&self, kernel: &str) -> Result<Ensured, InstallError> {
        self.ensure(kernel, true).await
    }

    async fn ensure(&self, kernel: &str, replace: bool) -> Result<Ensured, InstallError> {
        if !replace && self.has_module(kernel)? {
            return Ok(Ensured::AlreadyPresent);
        }
        let manager = self.distro.package_manager();
        let package = ClientPackage::for_kernel(manager, &self.policy.lustre_version, kernel)
            .map_err(|source| InstallError::PackageName {
                kernel: kernel.to_owned(),
                source,
            })?;
        let mut refreshed = false;
        let mut refresh_problem = None;
        let mut attempt = 1;
        loop {
            let install = self.install_spec(&package);
            match self.runner.run(&install).await {
                Ok(_) => break,
                Err(error) => {
                    let said = classify(error.stdout(), error.stderr());
                    // dnf that skips an unreachable repository then misses the package too:
                    // the repository is the problem, not the package.
                    let missing = says_package_missing(error.stdout(), error.stderr())
                        && !blocks_resolution(said);
                    if missing && !refreshed {
                        // The lists may predate the package: refresh once and try again.
                        refreshed = true;
                        refresh_problem = self.refresh_lists(manager).await;
                        continue;
                    }
                    let (class, detail) = match (missing, refresh_problem) {
                        (true, Some(problem)) => (
                            problem,
                            Some("the package lists could not be refreshed".to_owned()),
                        ),
                        (true, None) => match self.published_kernels(&package).await {
                            Ok(published) => {
                                let found =
                                    missing_package(kernel, published.iter().map(String::as_str));
                                (found.class, Some(found.detail))
                            }
                            Err(problem) => (
                                problem,
                                Some(
                                    "the repository could not be asked what it publishes"
                                        .to_owned(),
                                ),
                            ),
                        },
                        // A run killed at its deadline: what it said last is the evidence.
                        (false, _) if error.is_timeout() => (
                            said,
                            [error.stdout(), error.stderr()]
                                .iter()
                                .flat_map(|text| text.lines())
                                .rfind(|line| !line.trim().is_empty())
                                .map(|line| format!("it said: {}", line.trim())),
                        ),
                        (false, _) => (said, None),
                    };
                    let retry_here = class.is_transient()
                        && class != FailureClass::NotYetPublished
                        && attempt < self.policy.attempts;
                    tracing::warn!(
                        kernel,
                        package = %package.install_arg(),
                        %class,
                        attempt,
                        retry = retry_here,
                        error = %lfleet_types::ErrorChain(&error),
                        "client install failed"
                    );
                    if !retry_here {
                        return Err(InstallError::Failed {
                            kernel: kernel.to_owned(),
                            class,
                            command: install.display(),
                            detail,
                            source: Box::new(error),
                        });
                    }
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
            }
        }
        if self.has_module(kernel)? {
            tracing::info!(kernel, package = %package.install_arg(), "client installed");
            Ok(Ensured::Installed {
                package: package.install_arg(),
            })
        } else {
            Err(InstallError::NoModuleAfterInstall {
                kernel: kernel.to_owned(),
                package: package.install_arg(),
            })
        }
    }

    fn has_module(&self, kernel: &str) -> Result<bool, InstallError> {
        find_module(self.host, kernel, "lustre")
            .map(|found| found.is_some())
            .map_err(|source| InstallError::Host {
                kernel: kernel.to_owned(),
                source,
            })
    }

    fn install_spec(&self, package: &ClientPackage) -> CommandSpec {
        let timeout = self.policy.command_timeout;
        match package.manager {
            PackageManager::Apt => CommandSpec::new("apt-get", timeout)
                .args(["install", "-y", "--no-install-recommends", "-o"])
                .arg(format!(
                    "DPkg::Lock::Timeout={}",
                    self.policy.lock_timeout.as_secs()
                ))
                .arg(package.install_arg())
                .env("DEBIAN_FRONTEND", "noninteractive"),
            PackageManager::Dnf | PackageManager::Tdnf => {
                CommandSpec::new(package.manager.program(), timeout)
                    .args(["install", "-y"])
                    .arg(package.install_arg())
            }
        }
    }

    /// Refreshes the package lists; a repository or lock problem it met (apt-get update
    /// exits 0 with `W: Failed to fetch`, dnf skips an unreachable repository) is returned.
    async fn refresh_lists(&self, manager: PackageManager) -> Option<FailureClass> {
        let timeout = self.policy.command_timeout;
        let spec = match manager {
            PackageManager::Apt => CommandSpec::new("apt-get", timeout)
                .args(["update", "-o"])
                .arg(format!(
                    "DPkg::Lock::Timeout={}",
                    self.policy.lock_timeout.as_secs()
                ))
                .env("DEBIAN_FRONTEND", "noninteractive"),
            PackageManager::Dnf | PackageManager::Tdnf => {
                CommandSpec::new(manager.program(), timeout).args(["makecache", "--refresh"])
            }
        };
        let class = match self.runner.run(&spec).await {
            Ok(output) => classify(&output.stdout, &output.stderr),
            Err(error) => {
                tracing::warn!(error = %lfleet_types::ErrorChain(&error), "refreshing the package lists failed");
                classify(error.stdout(), error.stderr())
            }
        };
        blocks_resolution(class).then_some(class)
    }

    /// The kernel releases (apt) or kernel parts of names (dnf, tdnf) the repository
    /// publishes this Lustre version for. Empty when the repository has none; the class when
    /// the repository or the lock stood in the way of asking.
    async fn published_kernels(
        &self,
        package: &ClientPackage,
    ) -> Result<Vec<String>, FailureClass> {
        let timeout = self.policy.command_timeout;
        match package.manager {
            PackageManager::Apt => {
                let spec = CommandSpec::new("apt-cache", timeout)
                    .arg("madison")
                    .arg(&package.name);
                match self.runner.run(&spec).await {
                    // ` name | version | source` per line.
                    Ok(output) => Ok(output
                        .stdout
                        .lines()
                        .filter_map(|line| line.split('|').nth(1))
                        .map(|version| version.trim().to_owned())
                        .filter(|version| !version.is_empty())
                        .collect()),
                    Err(error) => query_failure(&error),
                }
            }
            PackageManager::Dnf | PackageManager::Tdnf => {
                let name = format!(
                    "amlfs-lustre-client-{}",
                    self.policy.lustre_version.replace('-', "_")
                );
                let spec = CommandSpec::new(package.manager.program(), timeout)
                    .args(["list", "--showduplicates"])
                    .arg(&name);
                match self.runner.run(&spec).await {
                    Ok(output) => {
                        let class = classify(&output.stdout, &output.stderr);
                        if blocks_resolution(class) {
                            return Err(class);
                        }
                        Ok(published_rpm_kernels(&output.stdout, &name))
                    }
                    // dnf exits 1 with "No matching Packages to list" for none.
                    Err(error) => query_failure(&error),
                }
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self
            .policy
            .backoff_base
            .saturating_mul(1 << attempt.min(16))
            .min(self.policy.backoff_max);
        // Full jitter between half and all of it, so a fleet does not retry in lockstep.
        let nanos = self
            .clock
            .wall()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let fraction = 0.5 + f64::from(nanos % 1000) / 2000.0;
        exponential.mul_f64(fraction)
    }
}

/// Classes that keep a package manager from knowing what is published at all.
fn blocks_resolution(class: FailureClass) -> bool {
    matches!(
        class,
        FailureClass::RepositoryUnreachable | FailureClass::PackageLockHeld
    )
}

/// A failed query of what is published: nothing, unless the repository or the lock stood
/// in the way.
fn query_failure(error: &CommandError) -> Result<Vec<String>, FailureClass> {
    let class = classify(error.stdout(), error.stderr());
    if blocks_resolution(class) {
        Err(class)
    } else {
        Ok(Vec::new())
    }
}

/// The kernel parts of the versions `dnf list --showduplicates NAME` shows for `name`. dnf
/// prints `<name>.<arch>  <version>-<release>  <repo>` per package (seen from the real dnf
/// against a local repository); the version is the transformed kernel, which
/// [`lfleet_install::classify::kernel_series`] reads as it reads a release.
fn published_rpm_kernels(listing: &str, name: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let package = words.next()?;
            let (package_name, _arch) = package.rsplit_once('.')?;
            if package_name != name {
                return None;
            }
            let (version, _release) = words.next()?.rsplit_once('-')?;
            Some(version.to_owned())
        })
        .collect()
}

/// Module file names the kernel loads (`lustre.ko`, `lustre.ko.xz`, ...).
fn is_module_file(name: &str, module: &str) -> bool {
    let Some(rest) = name.strip_prefix(module) else {
        return false;
    };
    matches!(rest, ".ko" | ".ko.xz" | ".ko.zst" | ".ko.gz")
}

/// Finds an out-of-tree `<module>.ko` under `/lib/modules/<kernel>`, at most six directories
/// deep: in `updates/` (DKMS, Debian packages), `extra/` (kmod RPMs), `weak-updates/` (RHEL's
/// kABI links) and any other directory, but never the in-tree `kernel/` tree, which holds
/// thousands of files and has had no Lustre client since Linux 4.17 (a check runs this
/// every round: walking that tree would cost thousands of stats each time on a real node).
/// `build` and `source` (links to headers) are skipped too.
pub fn find_module(
    host: &HostRoot,
    kernel: &str,
    module: &str,
) -> Result<Option<String>, HostError> {
    let top = format!("lib/modules/{kernel}");
    if !host.exists(&top)? {
        return Ok(None);
    }
    let mut pending = vec![(top, 0usize)];
    while let Some((dir, depth)) = pending.pop() {
        let names = match host.list_dir(&dir) {
            Ok(names) => names,
            // A directory that vanished or is unreadable is not a module.
            Err(error) if error.is_not_found() => continue,
            Err(error) => return Err(error),
        };
        for name in names {
            let name = name.to_string_lossy();
            let path = format!("{dir}/{name}");
            if is_module_file(&name, module) {
                return Ok(Some(path));
            }
            let skipped = match depth {
                0 => ["build", "source", "kernel"].contains(&name.as_ref()),
                _ => false,
            };
            if depth < 6 && !skipped && host.is_dir(&path)? {
                pending.push((path, depth + 1));
            }
        }
    }
    Ok(None)
}

/// The running kernel release (`/proc/sys/kernel/osrelease`).
pub fn running_kernel(host: &HostRoot) -> Result<String, HostError> {
    Ok(host
        .read_to_string("proc/sys/kernel/osrelease")?
        .trim()
        .to_owned())
}

/// Every installed kernel: a `/boot/vmlinuz-<K>` with a `/lib/modules/<K>` directory, sorted.
/// A directory under /lib/modules with no kernel image (left behind by a removed kernel,
/// or holding only our modules) is not a kernel a reboot can pick.
pub fn installed_kernels(host: &HostRoot) -> Result<Vec<String>, HostError> {
    let mut kernels = Vec::new();
    let images = match host.list_dir("boot") {
        Ok(names) => names,
        Err(error) if error.is_not_found() => return Ok(kernels),
        Err(error) => return Err(error),
    };
    for name in images {
        let name = name.to_string_lossy();
        if let Some(kernel) = name.strip_prefix("vmlinuz-")
            && host.exists(format!("lib/modules/{kernel}"))?
        {
            kernels.push(kernel.to_owned());
        }
    }
    kernels.sort();
    Ok(kernels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lfleet_host::{FakeClock, FakeCommandRunner, FakeResponse};
    use std::sync::{Arc, Mutex};

    const L: &str = "2.15.7-33-g79ddf99";
    const K: &str = "5.15.0-1075-azure";

    fn jammy() -> Distro {
        Distro::Ubuntu {
            version: "22.04".into(),
            codename: "jammy".into(),
        }
    }

    fn node() -> (tempfile::TempDir, HostRoot) {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        host.create_dir_all(format!("lib/modules/{K}/kernel"), 0o755)
            .unwrap();
        host.create_dir_all("boot", 0o755).unwrap();
        host.write_atomic(format!("boot/vmlinuz-{K}"), b"", 0o644)
            .unwrap();
        (dir, host)
    }

    /// A fake apt-get that installs by creating the module file, after `fail_first` failures.
    fn fake_apt(host: &HostRoot, failures: Vec<FakeResponse>) -> FakeCommandRunner {
        let runner = FakeCommandRunner::new();
        let host = host.clone();
        let failures = Arc::new(Mutex::new(failures));
        runner.on("apt-get", move |args| {
            if args[0] == "update" {
                return FakeResponse::ok("");
            }
            if let Some(failure) = failures.lock().unwrap().pop() {
                return failure;
            }
            let kernel = args.last().unwrap().split('=').nth(1).unwrap().to_owned();
            let dir = format!("lib/modules/{kernel}/updates/fs/lustre");
            host.create_dir_all(&dir, 0o755).unwrap();
            host.write_atomic(format!("{dir}/lustre.ko"), b"", 0o644)
                .unwrap();
            FakeResponse::ok("")
        });
        runner
    }

    async fn ensure(
        host: &HostRoot,
        runner: &FakeCommandRunner,
        policy: &InstallPolicy,
    ) -> Result<Ensured, InstallError> {
        let clock = FakeClock::at_unix(1_700_000_000);
        let distro = jammy();
        Installer {
            host,
            runner,
            clock: &clock,
            distro: &distro,
            policy,
        }
        .ensure_client(K)
        .await
    }

    #[test]
    fn modules_are_found_out_of_tree_and_never_in_the_kernel_tree() {
        let (_dir, host) = node();
        let put = |path: &str| {
            let path = format!("lib/modules/{K}/{path}");
            host.create_dir_all(std::path::Path::new(&path).parent().unwrap(), 0o755)
                .unwrap();
            host.write_atomic(&path, b"", 0o644).unwrap();
        };
        // An in-tree copy (staging, before 4.17) is not the client.
        put("kernel/drivers/staging/lustre/lustre/llite/lustre.ko");
        assert_eq!(find_module(&host, K, "lustre").unwrap(), None);
        put("weak-updates/lustre-client/fs/lustre.ko.xz");
        assert_eq!(
            find_module(&host, K, "lustre").unwrap().as_deref(),
            Some(format!("lib/modules/{K}/weak-updates/lustre-client/fs/lustre.ko.xz").as_str())
        );
        put("updates/dkms/lustre.ko.zst");
        assert!(
            find_module(&host, K, "lustre")
                .unwrap()
                .is_some_and(|p| !p.contains("/kernel/")),
        );
    }

    #[tokio::test]
    async fn a_present_module_means_no_command_runs() {
        let (_dir, host) = node();
        host.create_dir_all(format!("lib/modules/{K}/extra/lustre-client/fs"), 0o755)
            .unwrap();
        host.write_atomic(
            format!("lib/modules/{K}/extra/lustre-client/fs/lustre.ko.xz"),
            b"",
            0o644,
        )
        .unwrap();
        let runner = fake_apt(&host, vec![]);
        let result = ensure(&host, &runner, &InstallPolicy::new(L))
            .await
            .unwrap();
        assert_eq!(result, Ensured::AlreadyPresent);
        assert!(runner.log().is_empty());
    }

    #[tokio::test]
    async fn a_missing_client_is_installed_with_the_kernel_matched_package() {
        let (_dir, host) = node();
        let runner = fake_apt(&host, vec![]);
        let result = ensure(&host, &runner, &InstallPolicy::new(L))
            .await
            .unwrap();
        assert_eq!(
            result,
            Ensured::Installed {
                package: format!("amlfs-lustre-client-{L}={K}")
            }
        );
        assert_eq!(
            runner.log_lines(),
            vec![format!(
                "apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=120 amlfs-lustre-client-{L}={K}"
            )]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_lock_is_retried_with_backoff_then_succeeds() {
        let (_dir, host) = node();
        let lock = FakeResponse::fail(
            100,
            "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)\n",
        );
        let runner = fake_apt(&host, vec![lock.clone(), lock]);
        let started = tokio::time::Instant::now();
        let policy = InstallPolicy {
            attempts: 3,
            ..InstallPolicy::new(L)
        };
        let result = ensure(&host, &runner, &policy).await.unwrap();
        assert!(matches!(result, Ensured::Installed { .. }));
        assert_eq!(runner.log().len(), 3);
        // Two backoffs: at least half of 4 s and of 8 s.
        assert!(
            started.elapsed() >= Duration::from_secs(6),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_held_past_every_attempt_is_reported_as_such() {
        let (_dir, host) = node();
        let lock = FakeResponse::fail(
            100,
            "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)\n",
        );
        let runner = fake_apt(&host, vec![lock.clone(), lock.clone(), lock]);
        let err = ensure(&host, &runner, &InstallPolicy::new(L))
            .await
            .unwrap_err();
        assert_eq!(err.class(), FailureClass::PackageLockHeld);
        assert!(
            err.to_string()
                .starts_with(&format!("kernel {K}: package-lock-held")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_missing_version_is_not_yet_published_when_the_series_is_served() {
        let (_dir, host) = node();
        let missing = FakeResponse::fail(
            100,
            format!("E: Version '{K}' for 'amlfs-lustre-client-{L}' was not found\n"),
        );
        let runner = fake_apt(&host, vec![missing.clone(), missing]);
        runner.respond("apt-cache", FakeResponse::ok(format!(
            " amlfs-lustre-client-{L} | 5.15.0-1074-azure | file:/repo ./ Packages\n amlfs-lustre-client-{L} | 5.15.0-1073-azure | file:/repo ./ Packages\n")));
        let err = ensure(&host, &runner, &InstallPolicy::new(L))
            .await
            .unwrap_err();
        assert_eq!(err.class(), FailureClass::NotYetPublished);
        // Install, update, install again, then the published list: no retry loop.
        let lines = runner.log_lines();
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(lines[1].starts_with("apt-get update"));
        assert_eq!(
            lines[3],
            format!("apt-cache madison amlfs-lustre-client-{L}")
        );
        // Nothing half-installed: no module directory appeared.
        assert_eq!(find_module(&host, K, "lustre").unwrap(), None);
    }

    #[tokio::test]
    async fn a_missing_version_of_an_unserved_series_is_unsupported() {
        let (_dir, host) = node();
        let missing = FakeResponse::fail(
            100,
            format!("E: Version '{K}' for 'amlfs-lustre-client-{L}' was not found\n"),
        );
        let runner = fake_apt(&host, vec![missing.clone(), missing]);
        runner.respond(
            "apt-cache",
            FakeResponse::ok(format!(
                " amlfs-lustre-client-{L} | 6.8.0-1026-azure | file:/repo ./ Packages\n"
            )),
        );
        let err = ensure(&host, &runner, &InstallPolicy::new(L))
            .await
            .unwrap_err();
        assert_eq!(err.class(), FailureClass::SeriesUnsupported);
    }

    #[test]
    fn dnf_listings_give_the_published_kernel_series() {
        // The layout real dnf 4.14 printed for a local repository.
        let listing = "Available Packages\namlfs-lustre-client-2.15.7_33_g79ddf99.x86_64   5.14.0.427.13.1.el9.4-1    local\namlfs-lustre-client-2.15.7_33_g79ddf99.x86_64   5.14.0.427.20.1.el9.4-1    local\namlfs-lustre-client-2.17.0_19_gbb5310f.x86_64   5.14.0.503.1.1.el9.5-1    local\n";
        assert_eq!(
            published_rpm_kernels(listing, "amlfs-lustre-client-2.15.7_33_g79ddf99"),
            vec!["5.14.0.427.13.1.el9.4", "5.14.0.427.20.1.el9.4"]
        );
        assert!(published_rpm_kernels("Error: No matching Packages to list\n", "x").is_empty());
    }

    #[test]
    fn installed_kernels_need_an_image_and_a_module_directory() {
        let (_dir, host) = node();
        host.create_dir_all("lib/modules/5.15.0-1080-azure", 0o755)
            .unwrap();
        host.write_atomic("boot/vmlinuz-5.15.0-1080-azure", b"", 0o644)
            .unwrap();
        host.create_dir_all("lib/modules/5.15.0-1001-azure", 0o755)
            .unwrap(); // leftover
        host.write_atomic("boot/vmlinuz-6.1.0-old", b"", 0o644)
            .unwrap(); // no modules
        assert_eq!(
            installed_kernels(&host).unwrap(),
            vec![K.to_string(), "5.15.0-1080-azure".to_string()]
        );
    }
}
