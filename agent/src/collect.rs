//! The telemetry driver: finds the Lustre mounts and their instances, runs the fast cycle of
//! collectors on a bounded worker under a deadline (never on the async runtime), runs the
//! capacity reads on their own slow thread with their own time box, adds the agent's own
//! sample, and numbers everything into a bounded buffer.
//!
//! Forks are avoided: a mount's instance comes from its llite directory when its fsname is
//! mounted once, and from `lfs getname` only when the same filesystem is mounted twice (and
//! only when the set of mounts changed). The LNet interfaces come from `lnetctl net show`,
//! refreshed once a minute and when the mounts change.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lfleet_host::{
    Bounded, BoundedWorker, Clock, CommandRunner, CommandSpec, HostRoot, ResolvedPath,
};

use crate::telemetry::agent_self::AgentSelf;
use crate::telemetry::params::{find_devices, lustre_mounts, sole_instance};
use crate::telemetry::{
    CycleInput, MountInstance, Readings, Sample, SampleBuffer, Telemetry, capacity,
};

/// How the driver runs.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// The most one fast cycle may take.
    pub cycle_deadline: Duration,
    /// How often capacity (statfs RPCs) is read.
    pub capacity_interval: Duration,
    /// The most a capacity read may take before it is reported stuck.
    pub capacity_deadline: Duration,
    /// The most samples kept while nobody takes them.
    pub buffer: usize,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            cycle_deadline: Duration::from_secs(5),
            capacity_interval: Duration::from_secs(60),
            capacity_deadline: Duration::from_secs(10),
            buffer: 100_000,
        }
    }
}

/// A capacity read in flight on its own thread.
#[derive(Debug, Default)]
struct CapacityTask {
    started_s: Option<f64>,
    last_s: Option<f64>,
    done: Arc<Mutex<Option<Vec<Sample>>>>,
}

#[derive(Debug)]
pub struct Collector {
    host: HostRoot,
    options: CollectOptions,
    telemetry: Arc<Mutex<Telemetry>>,
    worker: BoundedWorker,
    agent: AgentSelf,
    pub buffer: SampleBuffer,
    mounts: Vec<MountInstance>,
    /// mountinfo as last read, and the llite devices then: while mountinfo stays the same
    /// (and, for a mount whose instance was not found, the llite devices too), the mounts and
    /// their instances are not worked out again.
    mountinfo: Vec<u8>,
    llite_devices: Vec<String>,
    /// Every Lustre mount in `mountinfo` has its instance.
    instances_known: bool,
    /// Bumped whenever they change; the cycle's device index searches again then.
    mount_table: u64,
    mountinfo_path: Option<ResolvedPath>,
    read_buffer: Vec<u8>,
    lnet_interfaces: Vec<String>,
    lnet_checked_s: Option<f64>,
    /// The mount table's version at that refresh.
    lnet_mount_table: u64,
    capacity: CapacityTask,
    origin: tokio::time::Instant,
    /// What the last finished cycle read for the checks, and when (monotonic).
    readings: Option<(tokio::time::Instant, Arc<Readings>)>,
}

impl Collector {
    pub fn new(host: HostRoot, options: CollectOptions, clock: &dyn Clock) -> Collector {
        Collector {
            host,
            buffer: SampleBuffer::new(options.buffer),
            options,
            telemetry: Arc::default(),
            worker: BoundedWorker::keeping_threads(),
            agent: AgentSelf::default(),
            mounts: Vec::new(),
            mountinfo: Vec::new(),
            llite_devices: Vec::new(),
            instances_known: false,
            mount_table: 0,
            mountinfo_path: None,
            read_buffer: Vec::new(),
            lnet_interfaces: Vec::new(),
            lnet_checked_s: None,
            lnet_mount_table: 0,
            capacity: CapacityTask::default(),
            origin: clock.monotonic(),
            readings: None,
        }
    }

    /// One cycle: every source read once; returns how many samples were queued.
    pub async fn cycle(
        &mut self,
        runner: &dyn CommandRunner,
        clock: &dyn Clock,
        check_ms: &[(String, f64)],
    ) -> usize {
        let unix_ms = clock.wall_unix_ms();
        let monotonic_s = clock.monotonic().duration_since(self.origin).as_secs_f64();
        let mut samples = Vec::new();
        if let Err(why) = self.refresh_mounts(runner).await {
            samples.push(Sample::unavailable("mounts", "mountinfo", unix_ms, why));
        }
        self.refresh_lnet(runner, monotonic_s).await;

        let telemetry = self.telemetry.clone();
        let host = self.host.clone();
        let mounts = self.mounts.clone();
        let interfaces = self.lnet_interfaces.clone();
        let mount_table = self.mount_table;
        let fast = self
            .worker
            .run("telemetry", self.options.cycle_deadline, move || {
                let input = CycleInput {
                    host: &host,
                    mounts: &mounts,
                    lnet_interfaces: &interfaces,
                    unix_ms,
                    monotonic_s,
                };
                let mut telemetry = telemetry.lock().unwrap_or_else(|e| e.into_inner());
                telemetry.mount_table(mount_table);
                let samples = telemetry.cycle(&input);
                (samples, telemetry.take_readings())
            })
            .await;
        // Only a finished cycle's readings are fresh.
        self.readings = None;
        match fast {
            Bounded::Done((found, readings)) => {
                samples.extend(found);
                self.readings = Some((clock.monotonic(), Arc::new(readings)));
            }
            Bounded::TimedOut { after } => samples.push(Sample::unavailable(
                "telemetry",
                "cycle",
                unix_ms,
                format!("the collection cycle did not finish within {after:?}"),
            )),
            Bounded::StillStuck { since } => samples.push(Sample::unavailable(
                "telemetry",
                "cycle",
                unix_ms,
                format!("the previous collection cycle is still stuck after {since:?}"),
            )),
        }
        samples.extend(self.capacity(unix_ms, monotonic_s));
        samples.push(
            self.agent
                .collect(unix_ms, monotonic_s, check_ms, self.buffer.dropped()),
        );
        let count = samples.len();
        for sample in samples {
            self.buffer.push(sample);
        }
        count
    }

    /// What the last finished cycle read for the checks, if it finished within `max_age`.
    pub fn readings(&self, now: tokio::time::Instant, max_age: Duration) -> Option<Arc<Readings>> {
        self.readings
            .as_ref()
            .filter(|(at, _)| now.saturating_duration_since(*at) <= max_age)
            .map(|(_, readings)| readings.clone())
    }

    /// The Lustre mounts as the last cycle found them.
    pub fn mounts(&self) -> &[MountInstance] {
        &self.mounts
    }

    /// How many times the cycle's device index has searched lctl's roots, when the cycle is
    /// not running (tests and the benchmark watch it; never waits for a stuck cycle).
    pub fn device_searches(&self) -> Option<u64> {
        self.telemetry
            .try_lock()
            .ok()
            .map(|telemetry| telemetry.devices().builds())
    }

    /// Starts a capacity read when due and none is in flight; returns finished samples, or
    /// `unavailable` ones while a read is stuck past its deadline.
    fn capacity(&mut self, unix_ms: u64, now_s: f64) -> Vec<Sample> {
        let task = &mut self.capacity;
        if let Some(samples) = task.done.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.started_s = None;
            return samples;
        }
        if let Some(started) = task.started_s {
            let stuck = now_s - started;
            if stuck > self.options.capacity_deadline.as_secs_f64() {
                return self
                    .mounts
                    .iter()
                    .map(|m| {
                        Sample::unavailable(
                            capacity::NAME,
                            &m.mount_point,
                            unix_ms,
                            format!("capacity read (statfs RPC) stuck for {stuck:.0} s"),
                        )
                    })
                    .collect();
            }
            return Vec::new();
        }
        let due = task
            .last_s
            .is_none_or(|last| now_s - last >= self.options.capacity_interval.as_secs_f64());
        if !due || self.mounts.is_empty() {
            return Vec::new();
        }
        task.started_s = Some(now_s);
        task.last_s = Some(now_s);
        let done = task.done.clone();
        let host = self.host.clone();
        let mounts = self.mounts.clone();
        let spawned = std::thread::Builder::new()
            .name("lfleet-capacity".into())
            .spawn(move || {
                let input = CycleInput {
                    host: &host,
                    mounts: &mounts,
                    lnet_interfaces: &[],
                    unix_ms,
                    monotonic_s: now_s,
                };
                let samples = capacity::collect(&input);
                *done.lock().unwrap_or_else(|e| e.into_inner()) = Some(samples);
            });
        if let Err(error) = spawned {
            task.started_s = None;
            tracing::warn!(error = %lfleet_types::ErrorChain(&error), "cannot start the capacity reader");
        }
        Vec::new()
    }

    /// Re-reads mountinfo; maps each Lustre mount to its instance when mountinfo or the llite
    /// devices changed.
    async fn refresh_mounts(&mut self, runner: &dyn CommandRunner) -> Result<(), String> {
        if self.mountinfo_path.is_none() {
            self.mountinfo_path = Some(
                self.host
                    .resolve_path("proc/self/mountinfo")
                    .map_err(|e| lfleet_types::error_chain(&e))?,
            );
        }
        let Some(path) = &self.mountinfo_path else {
            return Ok(());
        };
        let text = self
            .host
            .read_text(path, &mut self.read_buffer)
            .map_err(|e| lfleet_types::error_chain(&e))?;
        // A remount gets a new mount ID, so while mountinfo stays the same and every mount's
        // instance is known, nothing is listed; a mount without one yet is worked out again
        // when the llite devices change.
        let same_table = self.mount_table > 0 && text.as_bytes() == self.mountinfo;
        if same_table && self.instances_known {
            return Ok(());
        }
        let llite: Vec<String> = find_devices(&self.host, "llite", "stats")
            .into_keys()
            .collect();
        if same_table && llite == self.llite_devices {
            return Ok(());
        }
        let text = text.into_owned();
        let lustre = lustre_mounts(&text)?;
        let mut by_fs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (point, fsname) in &lustre {
            by_fs.entry(fsname).or_default().push(point);
        }
        let mut mounts = Vec::new();
        for (point, fsname) in &lustre {
            let sole = sole_instance(&llite, fsname).filter(|_| by_fs[fsname.as_str()].len() == 1);
            let instance = if let Some(instance) = sole {
                Some(instance.to_owned())
            } else {
                let spec = CommandSpec::new("lfs", Duration::from_secs(5)).args(["getname", point]);
                runner.run(&spec).await.ok().and_then(|out| {
                    out.stdout
                        .split_whitespace()
                        .next()
                        .and_then(|n| n.rsplit_once('-'))
                        .map(|(_, i)| i.to_owned())
                })
            };
            if let Some(instance) = instance {
                mounts.push(MountInstance {
                    mount_point: point.clone(),
                    fsname: fsname.clone(),
                    instance,
                });
            }
        }
        self.instances_known = mounts.len() == lustre.len();
        self.mountinfo = text.into_bytes();
        self.mounts = mounts;
        self.llite_devices = llite;
        self.mount_table += 1;
        Ok(())
    }

    /// The interfaces of LNet's NIs, refreshed once a minute, and at once when the mounts
    /// changed (LNet is up by the time a Lustre mount appears: the first mount after boot
    /// shows its NICs from that cycle on, not a minute later).
    async fn refresh_lnet(&mut self, runner: &dyn CommandRunner, now_s: f64) {
        let recent = self.lnet_checked_s.is_some_and(|at| now_s - at < 60.0);
        if recent && self.lnet_mount_table == self.mount_table {
            return;
        }
        self.lnet_checked_s = Some(now_s);
        self.lnet_mount_table = self.mount_table;
        let spec = CommandSpec::new("lnetctl", Duration::from_secs(5)).args(["net", "show"]);
        if let Ok(output) = runner.run(&spec).await {
            let mut interfaces: Vec<String> = lfleet_lnet::parse_net_show(&output.stdout)
                .into_iter()
                .filter(|ni| ni.net_type != "lo")
                .flat_map(|ni| ni.interfaces)
                .collect();
            interfaces.sort();
            interfaces.dedup();
            self.lnet_interfaces = interfaces;
        }
    }
}
