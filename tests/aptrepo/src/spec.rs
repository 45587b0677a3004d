//! Package specifications: what one generated `.deb` contains, and the AMLFS-shaped set of
//! packages for one Lustre version and one kernel release.
//!
//! Names follow the AMLFS client install documentation (Ubuntu): the metapackage
//! `amlfs-lustre-client-<L>` has the kernel release as its VERSION and depends on
//! `lustre-client-<L>`, `linux-image-<kver>` and `kmod-lustre-client-<kver>-<L>`. Details the
//! research does not give are marked "constructed" below; they only need to be plausible and
//! stable, because tests compare against this module, not against Microsoft's repository.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Where the generated kmod package puts the Lustre modules, relative to the root, with
/// `{kver}` standing for the kernel release (`uname -r`).
///
/// Constructed: the real packages may split modules between `fs/lustre` and `net/lustre`
/// (and use `updates/kernel/...`); this crate puts all of them in one directory so other
/// crates (the simulator, the agent's checks) can align on a single place.
pub const MODULE_DIR_TEMPLATE: &str = "lib/modules/{kver}/updates/fs/lustre";

/// The module files the generated kmod package carries (placeholder contents, see
/// [`amlfs_client_packages`]). Constructed from the Lustre 2.15 client module list.
pub const LUSTRE_CLIENT_MODULES: &[&str] = &[
    "libcfs.ko",
    "lnet.ko",
    "ksocklnd.ko",
    "ko2iblnd.ko",
    "obdclass.ko",
    "ptlrpc.ko",
    "fld.ko",
    "fid.ko",
    "lov.ko",
    "osc.ko",
    "mdc.ko",
    "lmv.ko",
    "mgc.ko",
    "lustre.ko",
];

/// [`MODULE_DIR_TEMPLATE`] for one kernel release, relative to the root.
pub fn module_dir(kernel_release: &str) -> PathBuf {
    PathBuf::from(MODULE_DIR_TEMPLATE.replace("{kver}", kernel_release))
}

/// `amlfs-lustre-client-<L>`: the metapackage a node installs, at version `<kver>`.
pub fn metapackage_name(lustre_version: &str) -> String {
    format!("amlfs-lustre-client-{lustre_version}")
}

/// `lustre-client-<L>`: the userspace tools package.
pub fn lustre_client_package_name(lustre_version: &str) -> String {
    format!("lustre-client-{lustre_version}")
}

/// `kmod-lustre-client-<kver>-<L>`: the prebuilt modules for one kernel.
pub fn kmod_package_name(kernel_release: &str, lustre_version: &str) -> String {
    format!("kmod-lustre-client-{kernel_release}-{lustre_version}")
}

/// `linux-image-<kver>`: the kernel package the metapackage depends on.
pub fn linux_image_package_name(kernel_release: &str) -> String {
    format!("linux-image-{kernel_release}")
}

/// Version given to `lustre-client-<L>`, `kmod-lustre-client-<kver>-<L>` and the
/// `linux-image-<kver>` stub. Constructed: a 2.15.1-era `lustre-client-<L>` package was
/// published at version `1`; the research does not say what the kmod's version is today.
pub const COMPONENT_VERSION: &str = "1";

/// One generated binary package.
///
/// Every file is written with mode 0644 and every directory with 0755, owned by root
/// (`dpkg-deb --root-owner-group`). There are no maintainer scripts, so dpkg installs the
/// package into a root that has no shell (and `depmod` is never run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSpec {
    /// Debian package name (`[a-z0-9][a-z0-9+.-]+`).
    pub name: String,
    /// Debian version, without an epoch.
    pub version: String,
    /// Debian architecture, normally `amd64`.
    pub architecture: String,
    /// One relation per entry, e.g. `lustre-client-2.15.7-33-g79ddf99` or `foo (>= 1)`;
    /// written comma-separated into `Depends:`.
    pub depends: Vec<String>,
    /// Files, relative to the root (`lib/modules/...`), with their contents.
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// One-line synopsis for `Description:`.
    pub description: String,
}

impl PackageSpec {
    /// An `amd64` package with no dependencies and no files.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        let name = name.into();
        PackageSpec {
            description: format!("generated test package {name}"),
            name,
            version: version.into(),
            architecture: "amd64".to_owned(),
            depends: Vec::new(),
            files: Vec::new(),
        }
    }

    /// Adds one `Depends:` relation.
    #[must_use]
    pub fn depends_on(mut self, relation: impl Into<String>) -> Self {
        self.depends.push(relation.into());
        self
    }

    /// Adds one file.
    #[must_use]
    pub fn with_file(mut self, path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push((path.into(), contents.into()));
        self
    }

    /// Sets the synopsis.
    #[must_use]
    pub fn described(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// The file name the repository stores this package under.
    pub fn deb_file_name(&self) -> String {
        format!("{}_{}_{}.deb", self.name, self.version, self.architecture)
    }

    /// Checks what dpkg-deb would otherwise reject with a less clear message, and what would
    /// break the control file or escape the staging tree.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Error::InvalidSpec {
            name: self.name.clone(),
            reason,
        };
        let name_ok = self.name.len() >= 2
            && self
                .name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && self.name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
            });
        if !name_ok {
            return Err(bad("name must match [a-z0-9][a-z0-9+.-]+".to_owned()));
        }
        let version_ok = self
            .version
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit())
            && self
                .version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'~' | b'-'));
        if !version_ok {
            return Err(bad(format!(
                "version {:?} must start with a digit and use [A-Za-z0-9.+~-] (no epoch)",
                self.version
            )));
        }
        if self.architecture.is_empty()
            || !self
                .architecture
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad(format!("architecture {:?}", self.architecture)));
        }
        for dep in &self.depends {
            if dep.trim().is_empty() || dep.contains([',', '\n', '\r']) {
                return Err(bad(format!(
                    "depends entry {dep:?} must be one relation on one line"
                )));
            }
        }
        if self.description.trim().is_empty() || self.description.contains(['\n', '\r']) {
            return Err(bad("description must be one non-empty line".to_owned()));
        }
        for (path, _) in &self.files {
            check_relative(path)
                .map_err(|reason| bad(format!("file {}: {reason}", path.display())))?;
        }
        Ok(())
    }

    /// The `DEBIAN/control` file.
    pub(crate) fn control(&self) -> String {
        let mut c = format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: lfleet-aptrepo <tests@lfleet.invalid>\n",
            self.name, self.version, self.architecture
        );
        if !self.depends.is_empty() {
            c.push_str("Depends: ");
            c.push_str(&self.depends.join(", "));
            c.push('\n');
        }
        c.push_str("Section: misc\nPriority: optional\n");
        c.push_str(&format!(
            "Description: {}\n Generated by lfleet-aptrepo for tests; its files are placeholders.\n",
            self.description
        ));
        c
    }
}

/// A file path inside a package: relative, plain components only, not the control area.
fn check_relative(path: &Path) -> Result<(), &'static str> {
    let mut components = path.components().peekable();
    if components.peek().is_none() {
        return Err("empty path");
    }
    for (i, c) in components.enumerate() {
        match c {
            Component::Normal(part) => {
                if i == 0 && part == "DEBIAN" {
                    return Err("DEBIAN/ is the control area");
                }
            }
            _ => return Err("must be relative, without `.` or `..`"),
        }
    }
    Ok(())
}

fn placeholder(what: &str) -> Vec<u8> {
    format!("lfleet-aptrepo placeholder for {what}; not a real file of that kind\n").into_bytes()
}

/// The AMLFS-shaped package set for Lustre version `lustre_version` (e.g.
/// `2.15.7-33-g79ddf99`) and kernel release `kernel_release` (e.g. `5.15.0-1075-azure`):
///
/// - `amlfs-lustre-client-<L>` at version `<kver>`, depending on `lustre-client-<L>`,
///   `linux-image-<kver>` and `kmod-lustre-client-<kver>-<L>` (unversioned relations:
///   constructed; a 2.15.1-era metapackage pinned the components with `(= <L>)`), carrying
///   only a doc file;
/// - `kmod-lustre-client-<kver>-<L>` at [`COMPONENT_VERSION`], carrying
///   [`LUSTRE_CLIENT_MODULES`] under [`module_dir`]`(<kver>)`; the `.ko` files are
///   placeholders (text, not ELF), so nothing can load them;
/// - `lustre-client-<L>` at [`COMPONENT_VERSION`], carrying placeholder `sbin/mount.lustre`,
///   `usr/sbin/lctl` and `usr/bin/lfs` (mode 0644, not executable, so they can shadow no real
///   tool) and a doc file;
/// - `linux-image-<kver>` at [`COMPONENT_VERSION`]: a stub (constructed) that carries only a
///   doc file and exists so the metapackage's dependency can be met in an empty scratch root.
///   It carries no `/boot` or `/lib/modules` files.
///
/// Calling this for two kernels with one Lustre version yields the same `lustre-client-<L>`
/// spec twice; [`crate::AptRepo`] keeps one copy of identical specs.
pub fn amlfs_client_packages(lustre_version: &str, kernel_release: &str) -> Vec<PackageSpec> {
    let meta = metapackage_name(lustre_version);
    let userspace = lustre_client_package_name(lustre_version);
    let kmod = kmod_package_name(kernel_release, lustre_version);
    let image = linux_image_package_name(kernel_release);
    let doc = |pkg: &str| PathBuf::from(format!("usr/share/doc/{pkg}/README.lfleet-aptrepo"));

    let metapackage = PackageSpec::new(&meta, kernel_release)
        .depends_on(&userspace)
        .depends_on(&image)
        .depends_on(&kmod)
        .described(format!(
            "Azure Managed Lustre client {lustre_version} for kernel {kernel_release} (generated)"
        ))
        .with_file(doc(&meta), placeholder("the metapackage documentation"));

    let mut kmod_spec = PackageSpec::new(&kmod, COMPONENT_VERSION).described(format!(
        "Lustre client modules {lustre_version} for {kernel_release} (generated placeholders)"
    ));
    let dir = module_dir(kernel_release);
    for module in LUSTRE_CLIENT_MODULES {
        kmod_spec = kmod_spec.with_file(dir.join(module), placeholder(&format!("module {module}")));
    }
    kmod_spec = kmod_spec.with_file(doc(&kmod), placeholder("the kmod documentation"));

    let userspace_spec = PackageSpec::new(&userspace, COMPONENT_VERSION)
        .described(format!(
            "Lustre client utilities {lustre_version} (generated placeholders)"
        ))
        .with_file("sbin/mount.lustre", placeholder("mount.lustre"))
        .with_file("usr/sbin/lctl", placeholder("lctl"))
        .with_file("usr/bin/lfs", placeholder("lfs"))
        .with_file(
            doc(&userspace),
            placeholder("the lustre-client documentation"),
        );

    let image_spec = PackageSpec::new(&image, COMPONENT_VERSION)
        .described(format!(
            "stub kernel package for {kernel_release} (generated)"
        ))
        .with_file(doc(&image), placeholder("the kernel package documentation"));

    vec![metapackage, kmod_spec, userspace_spec, image_spec]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amlfs_set_is_named_as_in_the_research() {
        let set = amlfs_client_packages("2.15.7-33-g79ddf99", "5.15.0-1075-azure");
        let meta = &set[0];
        assert_eq!(meta.name, "amlfs-lustre-client-2.15.7-33-g79ddf99");
        assert_eq!(meta.version, "5.15.0-1075-azure");
        assert_eq!(
            meta.depends,
            [
                "lustre-client-2.15.7-33-g79ddf99",
                "linux-image-5.15.0-1075-azure",
                "kmod-lustre-client-5.15.0-1075-azure-2.15.7-33-g79ddf99",
            ]
        );
        assert!(
            set[1].files.iter().any(|(p, _)| p
                == Path::new("lib/modules/5.15.0-1075-azure/updates/fs/lustre/lustre.ko"))
        );
        for spec in &set {
            spec.validate().unwrap();
        }
    }

    #[test]
    fn validation_refuses_escaping_paths_and_bad_fields() {
        let ok = PackageSpec::new("good-name", "1.0");
        assert!(ok.validate().is_ok());
        assert!(
            ok.clone()
                .with_file("../etc/passwd", "x")
                .validate()
                .is_err()
        );
        assert!(ok.clone().with_file("/etc/passwd", "x").validate().is_err());
        assert!(
            ok.clone()
                .with_file("DEBIAN/postinst", "x")
                .validate()
                .is_err()
        );
        assert!(ok.clone().depends_on("a, b").validate().is_err());
        assert!(PackageSpec::new("Bad", "1").validate().is_err());
        assert!(PackageSpec::new("good", "1:2").validate().is_err());
        assert!(PackageSpec::new("good", "x1").validate().is_err());
    }

    #[test]
    fn control_lists_depends_comma_separated() {
        let c = PackageSpec::new("a1", "2")
            .depends_on("b1")
            .depends_on("c1 (= 3)")
            .control();
        assert!(c.contains("\nDepends: b1, c1 (= 3)\n"), "{c}");
        assert!(
            c.starts_with("Package: a1\nVersion: 2\nArchitecture: amd64\n"),
            "{c}"
        );
    }
}
