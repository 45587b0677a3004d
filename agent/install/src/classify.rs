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
    // dnf: a second dnf waits on the RPM transaction lock.
    (
        "Waiting for process with pid",
        FailureClass::PackageLockHeld,
    ),
    // The kernel's answers to a module it will not load (EKEYREJECTED, ENOKEY).
    (
        "Key was rejected by service",
        FailureClass::SecureBootRejected,
    ),
    (
        "Required key not available",
        FailureClass::SecureBootRejected,
    ),
    // dkms: a failed build (dkms's own message), whatever the package manager said after.
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
    // dnf/tdnf: the same.
    ("nothing provides", FailureClass::DependencyNotPublished),
    // apt: network and mirror failures, including the transient hash mismatch.
    ("Failed to fetch", FailureClass::RepositoryUnreachable),
    (
        "Temporary failure resolving",
        FailureClass::RepositoryUnreachable,
    ),
    ("Could not resolve", FailureClass::RepositoryUnreachable),
    ("Unable to connect to", FailureClass::RepositoryUnreachable),
    ("Hash Sum mismatch", FailureClass::RepositoryUnreachable),
    // dnf/tdnf: metadata downloads.
    (
        "Cannot download repomd.xml",
        FailureClass::RepositoryUnreachable,
    ),
    (
        "Failed to download metadata for repo",
        FailureClass::RepositoryUnreachable,
    ),
    ("Curl error", FailureClass::RepositoryUnreachable),
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
        // tdnf.
        "No package",
    ];
    [stdout, stderr]
        .iter()
        .any(|text| MISSING.iter().any(|fragment| text.contains(fragment)))
}

/// The series a kernel release belongs to: the upstream version and the distribution's
/// flavour or minor-release branch. `5.15.0-1075-azure` is in `5.15.0/azure`;
/// `5.14.0-611.5.1.el9_7.x86_64` is in `5.14.0-611`; `6.6.57.1-6.azl3` is in `6.6/azl3`.
pub fn kernel_series(kernel_release: &str) -> String {
    let (upstream, rest) = kernel_release
        .split_once('-')
        .unwrap_or((kernel_release, ""));
    if let Some(flavour) = rest
        .rsplit('-')
        .next()
        .filter(|f| rest.contains('-') && f.chars().all(|c| c.is_ascii_alphabetic()))
    {
        // Ubuntu: 5.15.0-1075-azure.
        return format!("{upstream}/{flavour}");
    }
    if let Some(tag) = rest.rsplit('.').next().filter(|t| t.starts_with("azl")) {
        // Azure Linux: the upstream major.minor and the release tag.
        let major_minor: Vec<&str> = upstream.split('.').take(2).collect();
        return format!("{}/{tag}", major_minor.join("."));
    }
    // RHEL-compatible: the first component of the release names the minor release.
    let branch = rest.split('.').next().unwrap_or("");
    format!("{upstream}-{branch}")
}

/// Decides between "not yet published" and "series unsupported" for a missing package,
/// given the kernel releases the repository publishes this Lustre version for.
pub fn missing_package_class<'a>(
    kernel_release: &str,
    published_kernels: impl IntoIterator<Item = &'a str>,
) -> FailureClass {
    let series = kernel_series(kernel_release);
    if published_kernels
        .into_iter()
        .any(|published| kernel_series(published) == series)
    {
        FailureClass::NotYetPublished
    } else {
        FailureClass::SeriesUnsupported
    }
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
