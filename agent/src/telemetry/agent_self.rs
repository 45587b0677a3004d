//! The agent's own cost: resident memory, CPU use, how long its checks took, how many
//! samples it dropped. Read from the agent's own /proc entry (never under a node root).

use super::Sample;

pub const NAME: &str = "agent";

#[derive(Debug, Default)]
pub struct AgentSelf {
    last_cpu: Option<(f64, f64)>,
}

impl AgentSelf {
    /// `check_ms`: (check, milliseconds) of the last run; `dropped`: samples dropped so far.
    pub fn collect(
        &mut self,
        unix_ms: u64,
        monotonic_s: f64,
        check_ms: &[(String, f64)],
        dropped: u64,
    ) -> Sample {
        let mut sample = Sample::new(NAME, "lfleet-agent", unix_ms);
        match lfleet_host::own_usage() {
            Some(usage) => {
                sample
                    .values
                    .insert("rss_bytes".into(), usage.rss_bytes as f64);
                sample
                    .values
                    .insert("cpu_seconds".into(), usage.cpu_seconds);
                if let Some((at, cpu)) = self.last_cpu
                    && monotonic_s > at
                {
                    sample.values.insert(
                        "cpu_percent".into(),
                        (usage.cpu_seconds - cpu) / (monotonic_s - at) * 100.0,
                    );
                }
                self.last_cpu = Some((monotonic_s, usage.cpu_seconds));
            }
            None => sample.flags.push("own /proc entry unreadable".into()),
        }
        sample
            .values
            .insert("dropped_samples".into(), dropped as f64);
        for (check, ms) in check_ms {
            sample.values.insert(format!("check_ms.{check}"), *ms);
        }
        sample
    }
}
