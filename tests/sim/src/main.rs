//! The `lfleet-sim` command: `node create|reboot|show`, `fault`, `heal`, `load`, and `shim`
//! (what a node's `bin/` scripts run). A thin layer over the library.
#![allow(
    clippy::disallowed_methods,
    reason = "the simulator stands in for the host: it writes the node root and runs no agent code"
)]

use std::path::PathBuf;
use std::process::ExitCode;

use lfleet_sim::node::run_shim;
use lfleet_sim::{Fault, LoadShape, LoadSpec, LustreVersion, NodeSpec, SimError, SimNode};

const USAGE: &str = "usage:
  lfleet-sim node create DIR --distro D --kernel KVER --lustre 2.10|2.12|2.15|2.16|2.17
                 [--ib N] [--ib-rate 25|100|200|400] [--accelnet] [--vf-driver mlx4_core|mlx5_core|mana]
                 [--osts N] [--mdts N] [--hostname NAME] [--real-packages]
                 [--real-mounts]   (mount.lustre also mounts a tmpfs at the real mount point)
                 [--secure-boot on|off]   (absent: a node booted without EFI)
                 [--confidential-vm]      (Secure Boot on; the firmware lacks AMLFS's kmod certificate)
                 [--lockdown on|off]      (default: on for azurelinux-3 and with Secure Boot on)
                 [--repo-kernels K1,K2]   (kernels the repository publishes besides the node's)
                 [--repo-versions 2.16,2.17] (client versions it publishes besides the node's)
      distros: ubuntu-20.04 ubuntu-22.04 ubuntu-24.04 alma-8 alma-9 rocky-9 azurelinux-3
  lfleet-sim node reboot DIR [--kernel KVER]
  lfleet-sim node show DIR
  lfleet-sim fault DIR import --target OST0001|MDT0000 --state DISCONN|EVICTED|CONNECTING [--mount DIR]
  lfleet-sim fault DIR mount-lost [--mount DIR]
  lfleet-sim fault DIR lbug
  lfleet-sim fault DIR not-healthy --target OST0001|MDT0000 [--mount DIR]
  lfleet-sim fault DIR lnet-health --value N [--recover-after SECONDS]
  lfleet-sim fault DIR ib-port-down --hca mlx5_0
  lfleet-sim fault DIR ib-degraded --hca mlx5_0 --width N
  lfleet-sim fault DIR ib-errors --hca mlx5_0 [--counter symbol_error] [--by N]
  lfleet-sim fault DIR ib-saturate --hca mlx5_0 [--counter symbol_error]
  lfleet-sim fault DIR vf-removed|vf-down|vf-idle|mgs-via-vf
  lfleet-sim fault DIR kernel-upgrade --kernel KVER
  lfleet-sim fault DIR repo-missing|repo-dependency-missing --kernel KVER
  lfleet-sim fault DIR repo-unreachable|package-lock-held|dkms-build-fails
  lfleet-sim fault DIR dkms-slow [--seconds 20]   (each DKMS build of the client takes that long)
  lfleet-sim fault DIR slow --factor F [--target OST0003|MDT0000] [--mount DIR]
      the node's RPCs to the target (default: every target) wait F times longer; the same
      fault on every node is the target's own slowness
  lfleet-sim fault DIR repo-missing-version --version 2.16   (heal publishes it)
  lfleet-sim fault DIR mount-busy [--mount DIR]   (umount: target is busy; a reboot ends it)
  lfleet-sim fault DIR heal [KIND]      (also: lfleet-sim heal DIR [KIND])
  lfleet-sim load DIR --read-mbps R --write-mbps W --seconds S [--instant] [--mount DIR]
                 [--noise N] [--md-ops R]
      MB is 10^6 bytes; --instant advances the node's clock by S at once; --noise 0.3 scales
      the node's RPC waits by a factor drawn from [0.7, 1.3] per load (per second without
      --instant); --md-ops: metadata operations per second.
";

fn option(args: &[String], name: &str) -> Option<String> {
    args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone())
}

fn required(args: &[String], name: &str) -> Result<String, SimError> {
    option(args, name).ok_or_else(|| SimError::Usage(format!("{name} is required\n{USAGE}")))
}

/// An `on|off` option; absent is None.
fn on_off(args: &[String], name: &str) -> Result<Option<bool>, SimError> {
    match option(args, name).as_deref() {
        None => Ok(None),
        Some("on") => Ok(Some(true)),
        Some("off") => Ok(Some(false)),
        Some(other) => Err(SimError::Usage(format!("{name} {other:?}: use on or off"))),
    }
}

fn number<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T, SimError> {
    match option(args, name) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| SimError::Usage(format!("{name} {text:?} is not a number"))),
    }
}

fn run(args: &[String]) -> Result<String, SimError> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["node", "create", dir, ..] => {
            let mut spec = NodeSpec::new(
                &required(args, "--distro")?,
                &required(args, "--kernel")?,
                LustreVersion::parse(&required(args, "--lustre")?)?,
            );
            spec.ib_hcas = number(args, "--ib", 0)?;
            spec.accelnet = words.contains(&"--accelnet");
            spec.real_packages = words.contains(&"--real-packages");
            spec.real_mounts = words.contains(&"--real-mounts");
            spec.secure_boot = on_off(args, "--secure-boot")?;
            spec.confidential_vm = words.contains(&"--confidential-vm");
            spec.lockdown = on_off(args, "--lockdown")?;
            spec.repo_kernels = option(args, "--repo-kernels")
                .map(|list| list.split(',').map(str::to_owned).collect())
                .unwrap_or_default();
            spec.repo_versions = option(args, "--repo-versions")
                .map(|list| list.split(',').map(LustreVersion::parse).collect())
                .transpose()?
                .unwrap_or_default();
            if let Some(driver) = option(args, "--vf-driver") {
                spec.vf_driver = driver;
            }
            spec.ib_rate_gbps = number(args, "--ib-rate", 25)?;
            spec.osts = number(args, "--osts", 4)?;
            spec.mdts = number(args, "--mdts", 1)?;
            if let Some(hostname) = option(args, "--hostname") {
                spec.hostname = hostname;
            }
            let node = SimNode::create(&PathBuf::from(dir), &spec)?;
            Ok(format!(
                "created {} node {} (kernel {}, Lustre {})",
                spec.distro,
                node.root().display(),
                spec.kernel,
                spec.lustre.as_str()
            ))
        }
        ["node", "reboot", dir, ..] => {
            SimNode::open(&PathBuf::from(dir))?.reboot(option(args, "--kernel").as_deref())
        }
        ["node", "show", dir] => {
            let state = SimNode::open(&PathBuf::from(dir))?.state()?;
            Ok(serde_json::to_string_pretty(&state).expect("serializes"))
        }
        ["heal", dir, rest @ ..] | ["fault", dir, "heal", rest @ ..] => {
            SimNode::open(&PathBuf::from(dir))?.heal(rest.first().copied())
        }
        ["fault", dir, kind, ..] => {
            let hca = || option(args, "--hca").unwrap_or_else(|| "mlx5_0".into());
            let counter = || option(args, "--counter").unwrap_or_else(|| "symbol_error".into());
            let fault = match *kind {
                "import" => Fault::Import {
                    mount: option(args, "--mount"),
                    target: required(args, "--target")?,
                    state: required(args, "--state")?,
                },
                "mount-lost" => Fault::MountLost {
                    mount: option(args, "--mount"),
                },
                "lbug" => Fault::Lbug,
                "not-healthy" => Fault::NotHealthy {
                    mount: option(args, "--mount"),
                    target: required(args, "--target")?,
                },
                "lnet-health" => Fault::LnetHealth {
                    value: number(args, "--value", 100)?,
                    recover_after: option(args, "--recover-after")
                        .map(|_| number(args, "--recover-after", 0))
                        .transpose()?,
                },
                "ib-degraded" => Fault::IbDegraded {
                    hca: hca(),
                    width: number(args, "--width", 2)?,
                },
                "vf-down" => Fault::VfDown,
                "vf-idle" => Fault::VfIdle,
                "mgs-via-vf" => Fault::MgsViaVf,
                "mgs-unreachable" => Fault::MgsUnreachable,
                "repo-unreachable" => Fault::RepoUnreachable,
                "repo-dependency-missing" => Fault::RepoDependencyMissing {
                    kernel: required(args, "--kernel")?,
                },
                "package-lock-held" => Fault::PackageLockHeld,
                "dkms-build-fails" => Fault::DkmsBuildFails,
                "dkms-slow" => Fault::DkmsSlow {
                    seconds: number(args, "--seconds", 20)?,
                },
                "ib-port-down" => Fault::IbPortDown { hca: hca() },
                "ib-errors" => Fault::IbErrors {
                    hca: hca(),
                    counter: counter(),
                    by: number(args, "--by", 10)?,
                },
                "ib-saturate" => Fault::IbSaturate {
                    hca: hca(),
                    counter: counter(),
                },
                "vf-removed" => Fault::VfRemoved,
                "kernel-upgrade" => Fault::KernelUpgrade {
                    kernel: required(args, "--kernel")?,
                },
                "repo-missing" => Fault::RepoMissing {
                    kernel: required(args, "--kernel")?,
                },
                "slow" => {
                    let factor: f64 = number(args, "--factor", 0.0)?;
                    if !(1.0..=1000.0).contains(&factor) {
                        return Err(SimError::Usage(format!(
                            "--factor {factor}: give how many times longer RPCs wait, from 1 to 1000\n{USAGE}"
                        )));
                    }
                    Fault::Slow {
                        mount: option(args, "--mount"),
                        target: option(args, "--target"),
                        factor_percent: (factor * 100.0).round() as u32,
                    }
                }
                "repo-missing-version" => Fault::RepoMissingVersion {
                    version: LustreVersion::parse(&required(args, "--version")?)?,
                },
                "mount-busy" => Fault::MountBusy {
                    mount: option(args, "--mount"),
                },
                other => return Err(SimError::Usage(format!("unknown fault {other:?}\n{USAGE}"))),
            };
            SimNode::open(&PathBuf::from(dir))?.fault(&fault)
        }
        ["load", dir, ..] => {
            let spec = LoadSpec {
                read_mbps: number(args, "--read-mbps", 0.0)?,
                write_mbps: number(args, "--write-mbps", 0.0)?,
                seconds: number(args, "--seconds", 10.0)?,
                instant: words.contains(&"--instant"),
                mount: option(args, "--mount"),
            };
            if !(spec.read_mbps >= 0.0
                && spec.write_mbps >= 0.0
                && spec.seconds > 0.0
                && spec.seconds <= 86_400.0)
            {
                return Err(SimError::Usage(
                    "rates must be >= 0 and --seconds in (0, 86400]".into(),
                ));
            }
            let shape = LoadShape {
                noise: number(args, "--noise", 0.0)?,
                md_ops_per_s: number(args, "--md-ops", 0.0)?,
            };
            SimNode::open(&PathBuf::from(dir))?.load_shaped(&spec, &shape)
        }
        _ => Err(SimError::Usage(USAGE.into())),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("shim") {
        // lfleet-sim shim --root ROOT NAME ARGS...
        let (Some(root), Some(name)) = (option(&args, "--root"), args.get(3)) else {
            eprintln!("lfleet-sim shim: usage: lfleet-sim shim --root ROOT NAME [ARGS...]");
            return ExitCode::from(2);
        };
        let output = run_shim(&PathBuf::from(root), name, &args[4..]);
        print!("{}", output.stdout);
        eprint!("{}", output.stderr);
        return ExitCode::from(u8::try_from(output.code.clamp(0, 255)).unwrap_or(1));
    }
    match run(&args) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            let mut message = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("lfleet-sim: {message}");
            ExitCode::from(2)
        }
    }
}
