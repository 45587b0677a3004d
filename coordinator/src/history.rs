//! Bounded throughput history for the dashboard: one mount's read and write rates over the
//! last hour, one slot per [`STEP_MS`] (the telemetry interval agents are asked for), the
//! slots aligned to the wall clock (`slot = at_ms / STEP_MS`) so that every node's series add
//! up slot by slot into a filesystem's total.
//!
//! - A slot no sample reached is unknown (`None`), never zero: a silent node leaves a gap.
//! - Several samples in one slot (an agent collecting faster than the step) are averaged.
//! - The memory is fixed per mount: [`SLOTS`] slots of two `f32` means and two `u8` counts
//!   ([`BYTES_PER_MOUNT`]), allocated on the mount's first sample; a node keeps at most
//!   `fleet::MAX_MOUNTS_PER_NODE` series and gives them back when it is removed.
//!
//! [`ThroughputSeries`] is the domain view the dashboard draws (`app::throughput`).

use lfleet_types::fleet::ThroughputSeries;

/// One slot per telemetry interval (`app::agents::TELEMETRY_INTERVAL_SECONDS`).
pub const STEP_MS: i64 = 10_000;

/// How far back the history reaches.
pub const WINDOW_MS: i64 = 3_600_000;

/// Slots per series.
pub const SLOTS: usize = (WINDOW_MS / STEP_MS) as usize;

/// What one mount's series holds (the slots, without the allocation's own header).
pub const BYTES_PER_MOUNT: usize = SLOTS * (2 * size_of::<f32>() + 2 * size_of::<u8>());

/// How far ahead of the coordinator's clock a sample's own time may be before the receive
/// time stands in for it (clock skew between a node and the coordinator).
const FUTURE_SKEW_MS: i64 = 5_000;

/// Which rate a sample is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Read = 0,
    Write = 1,
}

/// One mount's rates over the last hour.
#[derive(Debug, Clone)]
pub struct Series {
    /// The slot of the newest sample; slots after `newest - SLOTS` are held.
    newest: i64,
    /// Mean read and write bytes per second per slot, at `slot % SLOTS`.
    means: Box<[[f32; 2]]>,
    /// Samples averaged into each slot and direction (0: none, unknown).
    counts: Box<[[u8; 2]]>,
}

impl Series {
    fn new(slot: i64) -> Series {
        Series {
            newest: slot,
            means: vec![[0.0; 2]; SLOTS].into_boxed_slice(),
            counts: vec![[0; 2]; SLOTS].into_boxed_slice(),
        }
    }

    fn index(slot: i64) -> usize {
        slot.rem_euclid(SLOTS as i64) as usize
    }

    /// The time a sample counts for: its own time, unless it lies in the future of the
    /// coordinator's clock or before the window (then the receive time).
    pub fn sample_time(sample_ms: i64, received_ms: i64) -> i64 {
        if sample_ms > received_ms + FUTURE_SKEW_MS || sample_ms <= received_ms - WINDOW_MS {
            received_ms
        } else {
            sample_ms.min(received_ms)
        }
    }

    /// Adds a rate measured at `at_ms` to its slot. A sample older than the window is
    /// dropped; a newer slot clears the slots skipped since the last sample (unknown).
    pub fn record(&mut self, at_ms: i64, direction: Direction, bytes_per_second: f64) {
        let slot = at_ms.div_euclid(STEP_MS);
        if slot <= self.newest - SLOTS as i64 {
            return;
        }
        if slot > self.newest {
            let cleared = (slot - self.newest).min(SLOTS as i64);
            for skipped in (slot - cleared + 1)..=slot {
                self.counts[Series::index(skipped)] = [0; 2];
            }
            self.newest = slot;
        }
        let index = Series::index(slot);
        let count = &mut self.counts[index][direction as usize];
        let mean = &mut self.means[index][direction as usize];
        let value = bytes_per_second.max(0.0) as f32;
        if *count == 0 {
            *mean = value;
        } else {
            *mean += (value - *mean) / f32::from(count.saturating_add(1));
        }
        *count = count.saturating_add(1);
    }

    /// The rate of `direction` in `slot`, if a sample reached it.
    pub fn at(&self, slot: i64, direction: Direction) -> Option<f64> {
        if slot > self.newest || slot <= self.newest - SLOTS as i64 {
            return None;
        }
        let index = Series::index(slot);
        (self.counts[index][direction as usize] > 0)
            .then(|| f64::from(self.means[index][direction as usize]))
    }
}

/// Every mount's series of one node.
#[derive(Debug, Clone, Default)]
pub struct MountHistory {
    pub series: std::collections::BTreeMap<String, Series>,
}

impl MountHistory {
    /// Records a rate of `mount` (which the caller has admitted under its cap).
    pub fn record(&mut self, mount: &str, at_ms: i64, direction: Direction, value: f64) {
        let slot = at_ms.div_euclid(STEP_MS);
        match self.series.get_mut(mount) {
            Some(series) => series.record(at_ms, direction, value),
            None => {
                let mut series = Series::new(slot);
                series.record(at_ms, direction, value);
                self.series.insert(mount.to_owned(), series);
            }
        }
    }
}

/// The first slot of the window that ends at `now_ms`.
pub fn first_slot(now_ms: i64) -> i64 {
    now_ms.div_euclid(STEP_MS) - SLOTS as i64 + 1
}

/// An empty view of the window ending at `now_ms`, every slot unknown.
pub fn empty_view(now_ms: i64) -> ThroughputSeries {
    ThroughputSeries {
        step_ms: STEP_MS,
        start_unix_ms: first_slot(now_ms) * STEP_MS,
        read_bytes_per_second: vec![None; SLOTS],
        write_bytes_per_second: vec![None; SLOTS],
        reporting: vec![0; SLOTS],
    }
}

/// Adds `series` to `view` (a window from [`empty_view`]) slot by slot; unknown slots add
/// nothing and are not counted as reporting.
pub fn add_into(view: &mut ThroughputSeries, series: &Series) {
    let first = view.start_unix_ms.div_euclid(STEP_MS);
    for offset in 0..SLOTS {
        let slot = first + offset as i64;
        let read = series.at(slot, Direction::Read);
        let write = series.at(slot, Direction::Write);
        if read.is_none() && write.is_none() {
            continue;
        }
        view.reporting[offset] += 1;
        if let Some(read) = read {
            *view.read_bytes_per_second[offset].get_or_insert(0.0) += read;
        }
        if let Some(write) = write {
            *view.write_bytes_per_second[offset].get_or_insert(0.0) += write;
        }
    }
}

/// One series as a view of the window ending at `now_ms`.
pub fn view(series: &Series, now_ms: i64) -> ThroughputSeries {
    let mut view = empty_view(now_ms);
    add_into(&mut view, series);
    view
}

/// The mean of read plus write over the slots of the window ending at `now_ms` that a
/// sample reached; `None` when none did.
pub fn mean_total(series: &Series, now_ms: i64) -> Option<f64> {
    let first = first_slot(now_ms);
    let (mut sum, mut known) = (0.0, 0u32);
    for slot in first..first + SLOTS as i64 {
        let read = series.at(slot, Direction::Read);
        let write = series.at(slot, Direction::Write);
        if read.is_some() || write.is_some() {
            sum += read.unwrap_or(0.0) + write.unwrap_or(0.0);
            known += 1;
        }
    }
    (known > 0).then(|| sum / f64::from(known))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_align_to_the_clock_average_within_a_slot_and_leave_gaps_unknown() {
        let mut history = MountHistory::default();
        let base = 1_700_000_000_000 - 1_700_000_000_000 % STEP_MS;
        history.record("/lustre", base + 1_000, Direction::Write, 100.0);
        history.record("/lustre", base + 2_000, Direction::Write, 300.0);
        history.record("/lustre", base + 2_000, Direction::Read, 50.0);
        // Nothing for three steps (a silent node), then a sample again.
        history.record("/lustre", base + 4 * STEP_MS, Direction::Write, 7.0);
        let series = &history.series["/lustre"];
        let slot = base / STEP_MS;
        assert_eq!(series.at(slot, Direction::Write), Some(200.0));
        assert_eq!(series.at(slot, Direction::Read), Some(50.0));
        for gap in 1..4 {
            assert_eq!(series.at(slot + gap, Direction::Write), None, "gap {gap}");
        }
        assert_eq!(series.at(slot + 4, Direction::Write), Some(7.0));
        assert_eq!(series.at(slot + 5, Direction::Write), None, "the future");

        let mut view = empty_view(base + 4 * STEP_MS);
        add_into(&mut view, series);
        add_into(&mut view, series);
        assert_eq!(view.write_bytes_per_second[SLOTS - 1], Some(14.0));
        assert_eq!(view.reporting[SLOTS - 1], 2);
        assert_eq!(view.write_bytes_per_second[SLOTS - 2], None);
        assert_eq!(view.reporting[SLOTS - 2], 0);
        assert_eq!(view.read_bytes_per_second[SLOTS - 5], Some(100.0));
        // (50 + 200) in the first slot, 7 in the last.
        assert_eq!(mean_total(series, base + 4 * STEP_MS), Some(128.5));
        assert_eq!(mean_total(series, base + 2 * WINDOW_MS), None);
    }

    #[test]
    fn an_hour_later_the_old_slots_are_gone_and_memory_stays_fixed() {
        let mut history = MountHistory::default();
        let base = 10 * WINDOW_MS;
        history.record("/lustre", base, Direction::Read, 1.0);
        // Three hours of samples, one per step.
        for step in 1..(3 * SLOTS as i64) {
            history.record(
                "/lustre",
                base + step * STEP_MS,
                Direction::Read,
                step as f64,
            );
        }
        let series = &history.series["/lustre"];
        assert_eq!(series.means.len(), SLOTS);
        let newest = (base + (3 * SLOTS as i64 - 1) * STEP_MS) / STEP_MS;
        assert_eq!(
            series.at(newest, Direction::Read),
            Some((3 * SLOTS - 1) as f64)
        );
        assert_eq!(series.at(newest - SLOTS as i64, Direction::Read), None);
        assert_eq!(base / STEP_MS, newest - 3 * SLOTS as i64 + 1);
        // A sample older than the window changes nothing.
        let mut again = series.clone();
        again.record(base, Direction::Read, 1e9);
        assert_eq!(again.at(base / STEP_MS, Direction::Read), None);
        // A jump of days clears everything before it.
        again.record(base + 100 * WINDOW_MS, Direction::Read, 3.0);
        let jumped = (base + 100 * WINDOW_MS) / STEP_MS;
        assert_eq!(again.at(jumped, Direction::Read), Some(3.0));
        assert!((1..SLOTS as i64).all(|back| again.at(jumped - back, Direction::Read).is_none()));
        assert_eq!(BYTES_PER_MOUNT, 3600);
    }

    #[test]
    fn a_sample_time_from_the_future_or_before_the_window_is_the_receive_time() {
        let now = 5 * WINDOW_MS;
        assert_eq!(Series::sample_time(now - 3_000, now), now - 3_000);
        assert_eq!(Series::sample_time(now + 2_000, now), now);
        assert_eq!(Series::sample_time(now + 60_000, now), now);
        assert_eq!(Series::sample_time(0, now), now);
    }
}
