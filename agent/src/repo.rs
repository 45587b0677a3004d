//! The AMLFS package repository: its file and signing key, written only when they differ.
//!
//! - apt: `/etc/apt/sources.list.d/lfleet-amlfs.list` with a `signed-by=` keyring under
//!   `/etc/apt/keyrings/` (an ASCII-armored key keeps its `.asc` name, which apt reads).
//! - dnf and tdnf: `/etc/yum.repos.d/lfleet-amlfs.repo` with `gpgcheck=1` and the key under
//!   `/etc/pki/rpm-gpg/`.
//!
//! The repository URL and the key come from configuration (`[repository]`): the agent names no
//! repository host of its own. `{codename}` and `{major}` in the URL are filled from the
//! distribution. Files are named `lfleet-amlfs*` so a purge removes exactly what the agent
//! created.
//!
//! Entry point: [`desired_files`].

use lfleet_install::Distro;
use serde::{Deserialize, Serialize};

/// `[repository]` in agent.toml.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    /// The repository URL; `{codename}` (Ubuntu) and `{major}` (RHEL family) are filled in.
    pub url: String,
    /// The signing key the repository's packages are checked with: an absolute path on the
    /// node (placed by the image, the package or cluster-init).
    pub key_file: String,
}

impl RepositoryConfig {
    /// Checks what will be written into repository files: no whitespace or newlines that
    /// could add lines or options, only http(s) or file URLs, an absolute key path.
    pub fn validate(&self) -> Result<(), String> {
        let url_ok = ["https://", "http://", "file:/"]
            .iter()
            .any(|scheme| self.url.starts_with(scheme))
            && self
                .url
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ":/._~%{}-+@".contains(c));
        if !url_ok {
            return Err(format!(
                "repository.url: {:?} must be an http(s) or file URL without spaces or special characters",
                self.url
            ));
        }
        let key_ok = self.key_file.starts_with('/')
            && !self.key_file.split('/').any(|c| c == "..")
            && self
                .key_file
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c));
        if !key_ok {
            return Err(format!(
                "repository.key_file: {:?} must be an absolute path",
                self.key_file
            ));
        }
        Ok(())
    }
}

/// One file the repository setup wants on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFile {
    /// Node path, relative to the root.
    pub path: String,
    pub contents: Vec<u8>,
}

/// The repository file and key file for `distro`, given the key's bytes.
pub fn desired_files(config: &RepositoryConfig, distro: &Distro, key: &[u8]) -> Vec<RepoFile> {
    let armored = key.starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----");
    let extension = if armored { "asc" } else { "gpg" };
    match distro {
        Distro::Ubuntu { codename, .. } => {
            let keyring = format!("etc/apt/keyrings/lfleet-amlfs.{extension}");
            let url = config.url.replace("{codename}", codename);
            vec![
                RepoFile { path: keyring.clone(), contents: key.to_vec() },
                RepoFile {
                    path: "etc/apt/sources.list.d/lfleet-amlfs.list".into(),
                    contents: format!(
                        "# Written by lfleet-agent from /etc/lfleet/agent.toml [repository]; edits are replaced.\n\
                         deb [arch=amd64 signed-by=/{keyring}] {url} {codename} main\n"
                    )
                    .into_bytes(),
                },
            ]
        }
        Distro::Rhel { major, .. } => rpm_files(
            config,
            &config.url.replace("{major}", &major.to_string()),
            key,
            extension,
        ),
        Distro::AzureLinux3 => {
            rpm_files(config, &config.url.replace("{major}", "3"), key, extension)
        }
    }
}

fn rpm_files(_config: &RepositoryConfig, url: &str, key: &[u8], extension: &str) -> Vec<RepoFile> {
    let key_path = format!("etc/pki/rpm-gpg/lfleet-amlfs.{extension}");
    vec![
        RepoFile { path: key_path.clone(), contents: key.to_vec() },
        RepoFile {
            path: "etc/yum.repos.d/lfleet-amlfs.repo".into(),
            contents: format!(
                "# Written by lfleet-agent from /etc/lfleet/agent.toml [repository]; edits are replaced.\n\
                 [lfleet-amlfs]\n\
                 name=Azure Managed Lustre client packages\n\
                 baseurl={url}\n\
                 enabled=1\n\
                 gpgcheck=1\n\
                 repo_gpgcheck=0\n\
                 gpgkey=file:///{key_path}\n"
            )
            .into_bytes(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RepositoryConfig {
        RepositoryConfig {
            url: "https://mirror.example.invalid/repos/amlfs-{codename}/".into(),
            key_file: "/etc/lfleet/amlfs.asc".into(),
        }
    }

    const KEY: &[u8] = b"-----BEGIN PGP PUBLIC KEY BLOCK-----\nconstructed test key, not a real one\n-----END PGP PUBLIC KEY BLOCK-----\n";

    #[test]
    fn apt_gets_a_signed_by_source() {
        let distro = Distro::Ubuntu {
            version: "22.04".into(),
            codename: "jammy".into(),
        };
        let files = desired_files(&config(), &distro, KEY);
        assert_eq!(files[0].path, "etc/apt/keyrings/lfleet-amlfs.asc");
        assert_eq!(
            String::from_utf8(files[1].contents.clone())
                .unwrap()
                .lines()
                .last(),
            Some(
                "deb [arch=amd64 signed-by=/etc/apt/keyrings/lfleet-amlfs.asc] https://mirror.example.invalid/repos/amlfs-jammy/ jammy main"
            )
        );
    }

    #[test]
    fn rpm_families_get_gpgcheck() {
        let mut cfg = config();
        cfg.url = "https://mirror.example.invalid/yumrepos/amlfs-el{major}".into();
        let files = desired_files(
            &cfg,
            &Distro::Rhel {
                id: "almalinux".into(),
                major: 9,
            },
            b"\x99\x01binary",
        );
        assert_eq!(files[0].path, "etc/pki/rpm-gpg/lfleet-amlfs.gpg");
        let repo = String::from_utf8(files[1].contents.clone()).unwrap();
        assert!(repo.contains("baseurl=https://mirror.example.invalid/yumrepos/amlfs-el9\n"));
        assert!(
            repo.contains("gpgcheck=1\n")
                && repo.contains("gpgkey=file:///etc/pki/rpm-gpg/lfleet-amlfs.gpg\n")
        );
    }

    #[test]
    fn urls_and_key_paths_that_could_inject_are_refused() {
        for url in [
            "https://x/ jammy main\ndeb http://evil/",
            "ftp://x/",
            "https://x/ [trusted=yes]",
            "",
        ] {
            let cfg = RepositoryConfig {
                url: url.into(),
                key_file: "/k".into(),
            };
            assert!(cfg.validate().is_err(), "{url:?}");
        }
        for key in ["relative.asc", "/etc/../root/k", "/k k"] {
            let cfg = RepositoryConfig {
                url: "https://x/".into(),
                key_file: key.into(),
            };
            assert!(cfg.validate().is_err(), "{key:?}");
        }
        assert!(config().validate().is_ok());
    }
}
