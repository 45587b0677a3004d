//! When a DKMS build of the client may be tried: the rule, stated once.
//!
//! A DKMS-built module is unsigned (AMLFS signs only its prebuilt modules, with the "Azure
//! Services Linux Kmod PCA" certificate). The kernel refuses an unsigned module when Secure
//! Boot makes it enforce signatures, and when kernel lockdown is in integrity or
//! confidentiality mode (kernel_lockdown(7): "unsigned modules may not be loaded"). So a
//! build is tried only when policy allows it, Secure Boot is known to be off, and lockdown is
//! not on.
//!
//! Azure Linux 3 boots with `lockdown=integrity` by default, so turning Secure Boot off alone
//! does not let a DKMS-built module load there (AMLFS "Use Secure Boot with Azure Managed
//! Lustre", DKMS section). On Azure Linux 3 a build is therefore tried only when the kernel
//! says lockdown is `[none]`; an unreadable lockdown state there counts as the default, on.
//! lfleet does not sign modules with a Machine Owner Key, so a node that enrolled one still
//! gets the prebuilt package or a refusal that says why.
//!
//! Entry points: [`dkms_decision`], [`SecureBoot::from_efivar`], [`SecureBoot::from_mokutil`],
//! [`Lockdown::parse`].

use std::fmt;

use crate::Distro;

/// Whether the kernel enforces module signatures through Secure Boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecureBoot {
    Enabled,
    Disabled,
    /// An EFI system whose state cannot be read: treated as on.
    Unknown,
}

impl SecureBoot {
    /// From the `SecureBoot` EFI variable as efivarfs shows it: four attribute bytes, then
    /// the value (1 = enforcing).
    pub fn from_efivar(bytes: &[u8]) -> SecureBoot {
        match bytes.get(4) {
            Some(1) => SecureBoot::Enabled,
            Some(_) => SecureBoot::Disabled,
            None => SecureBoot::Unknown,
        }
    }

    /// From `mokutil --sb-state` output (mokutil src/mokutil.c, sb_state_internal): "SecureBoot
    /// enabled", "SecureBoot disabled", and "SecureBoot validation is disabled in shim" after
    /// "enabled" when shim was told not to validate (then the kernel does not enforce either).
    pub fn from_mokutil(stdout: &str) -> SecureBoot {
        let line = |text: &str| stdout.lines().any(|l| l.trim() == text);
        if line("SecureBoot validation is disabled in shim") || line("SecureBoot disabled") {
            SecureBoot::Disabled
        } else if line("SecureBoot enabled") {
            SecureBoot::Enabled
        } else {
            SecureBoot::Unknown
        }
    }
}

impl fmt::Display for SecureBoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SecureBoot::Enabled => "on",
            SecureBoot::Disabled => "off",
            SecureBoot::Unknown => "in an unknown state",
        })
    }
}

/// The kernel lockdown mode (`/sys/kernel/security/lockdown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lockdown {
    None,
    Integrity,
    Confidentiality,
    /// The file is absent or unreadable: no lockdown LSM, or securityfs not mounted.
    Unknown,
}

impl Lockdown {
    /// Reads the file's one line, where the active mode is bracketed:
    /// `none [integrity] confidentiality`.
    pub fn parse(text: &str) -> Lockdown {
        let active = text
            .split_whitespace()
            .find_map(|word| word.strip_prefix('[')?.strip_suffix(']'));
        match active {
            Some("none") => Lockdown::None,
            Some("integrity") => Lockdown::Integrity,
            Some("confidentiality") => Lockdown::Confidentiality,
            _ => Lockdown::Unknown,
        }
    }
}

impl fmt::Display for Lockdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lockdown::None => "none",
            Lockdown::Integrity => "integrity",
            Lockdown::Confidentiality => "confidentiality",
            Lockdown::Unknown => "unknown",
        })
    }
}

/// Whether a DKMS build may be tried, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DkmsDecision {
    Build,
    Refused(String),
}

/// The rule in this module's header, as a function.
pub fn dkms_decision(
    distro: &Distro,
    policy_allows: bool,
    secure_boot: SecureBoot,
    lockdown: Lockdown,
) -> DkmsDecision {
    let refused = |reason: String| DkmsDecision::Refused(reason);
    if !policy_allows {
        return refused("client.dkms is \"forbidden\"".into());
    }
    match secure_boot {
        SecureBoot::Enabled => {
            return refused(
                "Secure Boot is on and would reject an unsigned DKMS-built module".into(),
            );
        }
        SecureBoot::Unknown => {
            return refused(
                "Secure Boot is in an unknown state and might reject an unsigned DKMS-built module"
                    .into(),
            );
        }
        SecureBoot::Disabled => {}
    }
    match lockdown {
        Lockdown::Integrity | Lockdown::Confidentiality => {
            return refused(format!(
                "kernel lockdown is {lockdown} and rejects unsigned modules even with Secure Boot off"
            ));
        }
        Lockdown::Unknown if *distro == Distro::AzureLinux3 => {
            return refused(
                "Azure Linux 3 boots with lockdown=integrity, which rejects unsigned modules even with Secure Boot off, and this kernel's lockdown state is unreadable"
                    .into(),
            );
        }
        Lockdown::None | Lockdown::Unknown => {}
    }
    DkmsDecision::Build
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jammy() -> Distro {
        Distro::Ubuntu {
            version: "22.04".into(),
            codename: "jammy".into(),
        }
    }

    #[test]
    fn secure_boot_state_from_the_efi_variable_and_mokutil() {
        for (bytes, state) in [
            (&[6u8, 0, 0, 0, 1][..], SecureBoot::Enabled),
            (&[6, 0, 0, 0, 0], SecureBoot::Disabled),
            (&[6, 0, 0], SecureBoot::Unknown),
        ] {
            assert_eq!(SecureBoot::from_efivar(bytes), state, "{bytes:?}");
        }
        for (text, state) in [
            ("SecureBoot enabled\n", SecureBoot::Enabled),
            (
                "SecureBoot disabled\nPlatform is in Setup Mode\n",
                SecureBoot::Disabled,
            ),
            (
                "SecureBoot enabled\nSecureBoot validation is disabled in shim\n",
                SecureBoot::Disabled,
            ),
            ("Cannot determine secure boot state.\n", SecureBoot::Unknown),
        ] {
            assert_eq!(SecureBoot::from_mokutil(text), state, "{text:?}");
        }
    }

    #[test]
    fn lockdown_mode_is_the_bracketed_word() {
        for (text, mode) in [
            ("none [integrity] confidentiality\n", Lockdown::Integrity),
            ("[none] integrity confidentiality\n", Lockdown::None),
            (
                "none integrity [confidentiality]",
                Lockdown::Confidentiality,
            ),
            ("", Lockdown::Unknown),
        ] {
            assert_eq!(Lockdown::parse(text), mode, "{text:?}");
        }
    }

    #[test]
    fn dkms_is_built_only_when_policy_secure_boot_lockdown_and_the_distribution_allow() {
        use DkmsDecision::Build;
        let off = SecureBoot::Disabled;
        assert_eq!(dkms_decision(&jammy(), true, off, Lockdown::None), Build);
        assert_eq!(dkms_decision(&jammy(), true, off, Lockdown::Unknown), Build);
        let refusals = [
            (
                jammy(),
                false,
                off,
                Lockdown::None,
                "client.dkms is \"forbidden\"",
            ),
            (
                jammy(),
                true,
                SecureBoot::Enabled,
                Lockdown::None,
                "Secure Boot is on",
            ),
            (
                jammy(),
                true,
                SecureBoot::Unknown,
                Lockdown::None,
                "unknown state",
            ),
            (
                jammy(),
                true,
                off,
                Lockdown::Integrity,
                "lockdown is integrity",
            ),
            // Azure Linux 3: Secure Boot off is not enough.
            (
                Distro::AzureLinux3,
                true,
                off,
                Lockdown::Integrity,
                "lockdown is integrity",
            ),
            (
                Distro::AzureLinux3,
                true,
                off,
                Lockdown::Unknown,
                "Azure Linux 3 boots with lockdown=integrity",
            ),
        ];
        for (distro, allowed, secure_boot, lockdown, reason) in refusals {
            match dkms_decision(&distro, allowed, secure_boot, lockdown) {
                DkmsDecision::Refused(why) => assert!(why.contains(reason), "{why}"),
                Build => panic!("{distro} {allowed} {secure_boot} {lockdown}: built"),
            }
        }
        // With lockdown lifted, Azure Linux 3 may build.
        assert_eq!(
            dkms_decision(&Distro::AzureLinux3, true, off, Lockdown::None),
            Build
        );
    }
}
