//! Per mount and target, from the osc and mdc `import` files: the import state (a label),
//! whether it is healthy (FULL or IDLE: 1, else 0), the current server, and the reconnect
//! counters as gauges (the checks turn their rises into events).

use lfleet_parse::import::parse_import;

use super::params::ParamFiles;
use super::{CycleInput, Readings, Sample};

pub const NAME: &str = "import";

#[derive(Debug, Default)]
pub struct Imports;

impl Imports {
    /// The samples; each import read (or why not) also goes into `readings`.
    pub fn collect(
        &mut self,
        input: &CycleInput<'_>,
        files: &mut ParamFiles,
        readings: &mut Readings,
    ) -> Vec<Sample> {
        let mut samples = Vec::new();
        for kind in ["mdc", "osc"] {
            for (device, read) in files.read_clients(input.host, kind, "import", parse_import) {
                let subject = &device.subject;
                readings.imports.insert(device.name.clone(), read.clone());
                let import = match read {
                    Ok(import) => import,
                    Err(why) => {
                        samples.push(Sample::unavailable(NAME, subject, input.unix_ms, why));
                        continue;
                    }
                };
                let mut sample = Sample::new(NAME, subject, input.unix_ms);
                sample.values.insert(
                    "healthy".into(),
                    if import.is_healthy() { 1.0 } else { 0.0 },
                );
                for (name, value) in [
                    ("connection_attempts", import.connection_attempts),
                    ("generation", import.generation),
                    ("rpc_timeouts", import.rpc_timeouts),
                ] {
                    if let Some(value) = value {
                        sample.values.insert(name.into(), value as f64);
                    }
                }
                sample.labels.insert("state".into(), import.state.clone());
                if let Some(connection) = &import.current_connection {
                    sample
                        .labels
                        .insert("current_connection".into(), connection.clone());
                }
                samples.push(sample);
            }
        }
        samples
    }
}
