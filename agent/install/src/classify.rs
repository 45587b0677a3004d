//! Sorting failed package-manager and module-load runs into the classes an operator acts on.
//!
//! The messages matched are the tools' own (apt's `E:` lines, dnf's and tdnf's errors,
//! modprobe's, dkms's), read in the C locale, which the command runner sets. A message no
//! rule knows is [`FailureClass::Unknown`], never guessed into a class.

pub use lfleet_types::FailureClass;

/// Rules in order: the first whose fragment appears in the output decides.
const RULES: &[(&str, FailureClass)] = &[
    // apt: another apt or dpkg holds the lock (apt-pkg/contrib/fileutl.cc, GetLock).
    ("Could not get lock", FailureClass::PackageLockHeld),
    (
        "Unable to acquire the dpkg frontend lock",
        FailureClass::PackageLockHeld,
    ),
    // dnf: a second dnf waits on dnf's own lock (dnf/lock.py), until our deadline kills it.
    (
        "Waiting for process with pid",
        FailureClass::PackageLockHeld,
    ),
    // tdnf: waits on its instance lock (common/lock.c, tdnflockAcquire), the same way.
    (
        "waiting for tdnf_instance lock",
        FailureClass::PackageLockHeld,
    ),
    // The kernel's answers to a module it will not load (EKEYREJECTED, ENOKEY), as kmod's
    // modprobe prints them (tools/modprobe.c: "could not insert '%s': %s" with strerror).
    (
        "Key was rejected by service",
        FailureClass::SecureBootRejected,
    ),
    (
        "Required key not available",
        FailureClass::SecureBootRejected,
    ),
    // dkms: a failed build (dkms.in, report_build_problem 10), whatever the package manager
    // said after it; and dpkg's report of the DKMS package's postinst exiting with DKMS's 10.
    (
        "Bad return status for module build",
        FailureClass::DkmsBuildFailed,
    ),
    ("dkms autoinstall on", FailureClass::DkmsBuildFailed),
    // apt: a dependency of the metapackage is not installable.
    ("unmet dependencies", FailureClass::DependencyNotPublished),
    (
        "but it is not installable",
        FailureClass::DependencyNotPublished,
    ),
    // dnf and tdnf: libsolv's problem text (src/problems.c, SOLVER_RULE_PKG_REQUIRES).
    ("nothing provides", FailureClass::DependencyNotPublished),
    // apt: network and mirror failures, including the transient hash mismatch.
    ("Failed to fetch", FailureClass::RepositoryUnreachable),
    (
        "Temporary failure resolving",
        FailureClass::RepositoryUnreachable,
    ),
    ("Could not resolve", FailureClass::RepositoryUnreachable),
    ("Could not connect to", FailureClass::RepositoryUnreachable),
    ("Unable to connect to", FailureClass::RepositoryUnreachable),
    ("Hash Sum mismatch", FailureClass::RepositoryUnreachable),
    // dnf: metadata downloads (librepo's and dnf's words).
    (
        "Cannot download repomd.xml",
        FailureClass::RepositoryUnreachable,
    ),
    (
        "Failed to download metadata for repo",
        FailureClass::RepositoryUnreachable,
    ),
    ("Curl error", FailureClass::RepositoryUnreachable),
    // tdnf: a repository whose metadata could not be fetched (client/repo.c,
    // TDNFInitRepo), and curl_easy_strerror's words in its `Error(12xx)` line.
    (
        "Failed to synchronize cache for repo",
        FailureClass::RepositoryUnreachable,
    ),
    (
        "Couldn't connect to server",
        FailureClass::RepositoryUnreachable,
    ),
    (
        "Couldn't resolve host name",
        FailureClass::RepositoryUnreachable,
    ),
    // modprobe: no module for the running kernel.
    (
        "not found in directory /lib/modules",
        FailureClass::ModuleMissing,
    ),
];

/// Classifies a failed run from its stdout and stderr.
///
/// A missing package ("version not found", "unable to locate", "no match") is not decided
/// here: whether it is [`FailureClass::NotYetPublished`] or
/// [`FailureClass::SeriesUnsupported`] depends on which kernels the repository does
/// publish for, which [`missing_package_class`] decides.
pub fn classify(stdout: &str, stderr: &str) -> FailureClass {
    for text in [stderr, stdout] {
        for (fragment, class) in RULES {
            if text.contains(fragment) {
                return *class;
            }
        }
    }
    FailureClass::Unknown
}

/// True when the output says the requested package or version does not exist.
pub fn says_package_missing(stdout: &str, stderr: &str) -> bool {
    const MISSING: [&str; 4] = [
        // apt-get (apt-private/private-cacheset.cc).
        "was not found",
        "Unable to locate package",
        // dnf.
        "No match for argument",
        // tdnf (client/resolve.c, TDNFPrepareSinglePkg), before its `Error(1011) : No
        // matching packages`.
        "package not found or not installed",
    ];
    [stdout, stderr]
        .iter()
        .any(|text| MISSING.iter().any(|fragment| text.contains(fragment)))
}

/// The series a kernel belongs to: the group AMLFS publishes a client version for, and within
/// which a kernel not published yet will be.
///
/// Takes a kernel release (`uname -r`) or the kernel part of an RPM package name (the same
/// release transformed: `-` and `_` as `.`, no arch), so a node's kernel and a repository's
/// package compare alike. This is the one place the rule lives:
///
/// - Ubuntu: the upstream version and the flavour. `5.15.0-1075-azure` is in `5.15.0/azure`
///   (AMLFS: "5.15.0-*-azure" for 22.04).
/// - RHEL-compatible: the upstream version and the first number of the release, which names
///   the minor release. `5.14.0-611.5.1.el9_7.x86_64` and `5.14.0.611.5.1.el9.7` are in
///   `5.14.0-611` (AMLFS: "9.7: 5.14.0-611.*").
/// - Azure Linux: the upstream major.minor and the release tag. `6.6.57.1-6.azl3`,
///   `6.6.119.3-1.azl3` and `6.6.119.3.1.azl3` are in `6.6/azl3`: Azure Linux 3 ships one
///   rolling 6.6 series with four-part upstream versions, and AMLFS publishes for every
///   kernel from a floor on (support matrix: ">= 6.6.119.3"). A later major.minor is
///   another series.
pub fn kernel_series(kernel: &str) -> String {
    if let Some((upstream, rest)) = kernel.split_once('-')
        && let Some(flavour) = rest
            .rsplit('-')
            .next()
            .filter(|f| rest.contains('-') && f.chars().all(|c| c.is_ascii_alphabetic()))
    {
        // Ubuntu: 5.15.0-1075-azure.
        return format!("{upstream}/{flavour}");
    }
    let package_form = crate::package::rpm_kernel_part(kernel);
    let parts: Vec<&str> = package_form.split('.').collect();
    if let Some(tag) = parts.iter().rev().find(|p| p.starts_with("azl")) {
        // Azure Linux: 6.6.57.1.6.azl3.
        return format!("{}/{tag}", parts[..parts.len().min(2)].join("."));
    }
    if parts.len() >= 4
        && parts[..4]
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_digit()))
    {
        // RHEL-compatible: 5.14.0.611.5.1.el9.7.
        return format!("{}-{}", parts[..3].join("."), parts[3]);
    }
    package_form
}

/// Orders kernels of one series: the numbers in the release, in order (`el9` and `azl3`
/// count as 9 and 3). Works on releases and on RPM name parts alike.
pub fn kernel_order(kernel: &str) -> Vec<u64> {
    kernel
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().unwrap_or(u64::MAX))
        .collect()
}

/// Why a kernel's client package does not exist, from what the repository does publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingPackage {
    /// [`FailureClass::NotYetPublished`] or [`FailureClass::SeriesUnsupported`].
    pub class: FailureClass,
    /// The evidence, in a sentence.
    pub detail: String,
}

/// Decides between "not yet published" and "series unsupported" for a missing package,
/// given the kernels (releases or RPM name parts) the repository publishes this Lustre
/// version for.
///
/// Not yet published: the repository serves the kernel's series and a kernel of it no newer
/// than this one, so this one is due (AMLFS publishes a new maintenance kernel of a served
/// series within about a business day). Unsupported: the series is not served at all, or
/// only from a newer kernel on (AMLFS builds forward from a floor and never back).
pub fn missing_package<'a>(
    kernel: &str,
    published: impl IntoIterator<Item = &'a str>,
) -> MissingPackage {
    let series = kernel_series(kernel);
    let order = kernel_order(kernel);
    let mut in_series: Vec<&str> = published
        .into_iter()
        .filter(|published| kernel_series(published) == series)
        .collect();
    in_series.sort_by_key(|published| kernel_order(published));
    match in_series.first() {
        None => MissingPackage {
            class: FailureClass::SeriesUnsupported,
            detail: format!(
                "the repository publishes this client for no kernel of series {series}"
            ),
        },
        Some(oldest) if kernel_order(oldest) > order => MissingPackage {
            class: FailureClass::SeriesUnsupported,
            detail: format!(
                "the repository publishes series {series} only from {oldest} on; {kernel} is older and will not be published"
            ),
        },
        Some(_) => MissingPackage {
            class: FailureClass::NotYetPublished,
            detail: format!(
                "the repository publishes series {series} up to {}; {kernel} is not published yet",
                in_series.last().copied().unwrap_or_default()
            ),
        },
    }
}

/// The class [`missing_package`] decides.
pub fn missing_package_class<'a>(
    kernel: &str,
    published: impl IntoIterator<Item = &'a str>,
) -> FailureClass {
    missing_package(kernel, published).class
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_tools_own_messages() {
        let cases = [
            (
                "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)",
                FailureClass::PackageLockHeld,
            ),
            (
                "modprobe: ERROR: could not insert 'lustre': Key was rejected by service",
                FailureClass::SecureBootRejected,
            ),
            (
                "Error! Bad return status for module build on kernel: 6.8.0-1030-azure (x86_64)\nConsult /var/lib/dkms/lustre-client/2.15.7/build/make.log for more information.",
                FailureClass::DkmsBuildFailed,
            ),
            (
                "The following packages have unmet dependencies:\n amlfs-lustre-client-2.15.7-33-g79ddf99 : Depends: kmod-lustre-client-5.15.0-1075-azure-2.15.7 but it is not installable\nE: Unable to correct problems, you have held broken packages.",
                FailureClass::DependencyNotPublished,
            ),
            (
                "Error: \n Problem: cannot install the best candidate for the job\n  - nothing provides kmod-lustre-client = 2.15.7 needed by amlfs-lustre-client-2.15.7_33_g79ddf99-5.14.0.611.5.1.el9.7-1.x86_64",
                FailureClass::DependencyNotPublished,
            ),
            (
                "E: Failed to fetch https://repo.invalid/dists/jammy/InRelease  Temporary failure resolving 'repo.invalid'",
                FailureClass::RepositoryUnreachable,
            ),
            (
                "Error: Failed to download metadata for repo 'amlfs': Cannot download repomd.xml",
                FailureClass::RepositoryUnreachable,
            ),
            (
                "modprobe: FATAL: Module lustre not found in directory /lib/modules/6.8.0-1030-azure",
                FailureClass::ModuleMissing,
            ),
            // tdnf: its instance lock (stdout, then killed at our deadline), a repository it
            // cannot reach (curl error 7 as Error(1201 + 7)), a missing dependency (libsolv).
            (
                "waiting for tdnf_instance lock on /var/run/.tdnf-instance-lockfile",
                FailureClass::PackageLockHeld,
            ),
            (
                "Error(1208) : Couldn't connect to server\nError: Failed to synchronize cache for repo 'amlfs'\nError(1208) : Couldn't connect to server",
                FailureClass::RepositoryUnreachable,
            ),
            (
                "1. nothing provides kmod-lustre-client-6.6.121.1.1.azl3 needed by amlfs-lustre-client-2.16.1_22_g584eedc-6.6.121.1.1.azl3-1.x86_64\nFound 1 problem(s) while resolving\nError(1301) : Solv general runtime error",
                FailureClass::DependencyNotPublished,
            ),
            (
                "E: Failed to fetch http://127.0.0.1:9/pool/main/a/x.deb  Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection refused)",
                FailureClass::RepositoryUnreachable,
            ),
            ("E: Something nobody has seen", FailureClass::Unknown),
        ];
        for (stderr, expected) in cases {
            assert_eq!(classify("", stderr), expected, "{stderr}");
        }
    }

    #[test]
    fn transient_classes_are_the_ones_a_retry_can_fix() {
        assert!(FailureClass::NotYetPublished.is_transient());
        assert!(FailureClass::PackageLockHeld.is_transient());
        assert!(!FailureClass::SeriesUnsupported.is_transient());
        assert!(!FailureClass::SecureBootRejected.is_transient());
        assert_eq!(
            FailureClass::NotYetPublished.to_string(),
            "not-yet-published"
        );
    }

    #[test]
    fn recognises_missing_packages() {
        assert!(says_package_missing(
            "",
            "E: Version '6.8.0-1030-azure' for 'amlfs-lustre-client-2.15.7-33-g79ddf99' was not found\n"
        ));
        assert!(says_package_missing(
            "",
            "E: Unable to locate package amlfs-lustre-client-9.9\n"
        ));
        assert!(says_package_missing(
            "No match for argument: amlfs-lustre-client-x\n",
            "Error: Unable to find a match: amlfs-lustre-client-x\n"
        ));
        assert!(says_package_missing(
            "",
            "amlfs-lustre-client-x package not found or not installed\nError(1011) : No matching packages\n"
        ));
        assert!(!says_package_missing(
            "",
            "E: Could not get lock /var/lib/dpkg/lock"
        ));
    }

    #[test]
    fn kernel_series_groups_releases_of_one_branch() {
        assert_eq!(kernel_series("5.15.0-1075-azure"), "5.15.0/azure");
        assert_eq!(kernel_series("6.8.0-1026-azure"), "6.8.0/azure");
        assert_eq!(kernel_series("5.14.0-611.5.1.el9_7.x86_64"), "5.14.0-611");
        assert_eq!(kernel_series("5.14.0-611.9.1.el9_7.x86_64"), "5.14.0-611");
        assert_eq!(kernel_series("5.14.0-687.1.1.el9_8.x86_64"), "5.14.0-687");
        assert_eq!(kernel_series("6.6.57.1-6.azl3"), "6.6/azl3");
        // The RPM name parts AMLFS publishes fall in the same series as the releases.
        assert_eq!(kernel_series("5.14.0.611.5.1.el9.7"), "5.14.0-611");
        assert_eq!(kernel_series("6.6.119.3.1.azl3"), "6.6/azl3");
        assert_eq!(kernel_series("6.6.121.1-1.azl3"), "6.6/azl3");
        assert_eq!(kernel_series("6.12.20.1-1.azl3"), "6.12/azl3");
    }

    #[test]
    fn azure_linux_kernels_with_different_third_and_fourth_parts_are_one_series() {
        // Four version parts would split 6.6.119.3 from 6.6.121.1: the AMLFS al3 repository
        // publishes both under one series, from a floor on.
        let published = ["6.6.119.3.1.azl3", "6.6.121.1.1.azl3"];
        assert_eq!(
            missing_package_class("6.6.126.1-1.azl3", published),
            FailureClass::NotYetPublished
        );
        let older = missing_package("6.6.57.1-6.azl3", published);
        assert_eq!(older.class, FailureClass::SeriesUnsupported);
        assert!(
            older.detail.contains("only from 6.6.119.3.1.azl3 on"),
            "{}",
            older.detail
        );
        assert_eq!(
            missing_package_class("6.12.20.1-1.azl3", published),
            FailureClass::SeriesUnsupported
        );
    }

    #[test]
    fn a_missing_package_is_not_yet_published_only_when_its_series_is_served() {
        let published = ["5.15.0-1073-azure", "5.15.0-1074-azure"];
        assert_eq!(
            missing_package_class("5.15.0-1075-azure", published),
            FailureClass::NotYetPublished
        );
        assert_eq!(
            missing_package_class("6.5.0-1025-azure", published),
            FailureClass::SeriesUnsupported
        );
        assert_eq!(
            missing_package_class("5.15.0-1075-azure", []),
            FailureClass::SeriesUnsupported
        );
    }
}
