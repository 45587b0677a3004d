//! A bounded queue of samples that numbers them and counts what it drops.
//!
//! When full, the oldest sample goes (the newest state matters most after an outage) and the
//! drop is counted; sequence numbers keep counting, so a reader sees the gap.

use std::collections::VecDeque;

use super::Sample;

#[derive(Debug)]
pub struct SampleBuffer {
    capacity: usize,
    queue: VecDeque<Sample>,
    next_seq: u64,
    dropped: u64,
    /// `dropped` at the last [`SampleBuffer::take_new_drops`].
    reported_drops: u64,
}

impl SampleBuffer {
    pub fn new(capacity: usize) -> SampleBuffer {
        SampleBuffer {
            capacity: capacity.max(1),
            queue: VecDeque::new(),
            next_seq: 1,
            dropped: 0,
            reported_drops: 0,
        }
    }

    /// Numbers the sample and queues it, dropping the oldest when full.
    pub fn push(&mut self, mut sample: Sample) -> u64 {
        sample.seq = self.next_seq;
        self.next_seq += 1;
        if self.queue.len() == self.capacity {
            self.queue.pop_front();
            self.dropped += 1;
        }
        self.queue.push_back(sample);
        self.next_seq - 1
    }

    /// Takes up to `max` samples, oldest first.
    pub fn take(&mut self, max: usize) -> Vec<Sample> {
        let n = max.min(self.queue.len());
        self.queue.drain(..n).collect()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Samples dropped since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Samples dropped since the previous call: what one telemetry batch reports.
    pub fn take_new_drops(&mut self) -> u64 {
        let new = self.dropped - self.reported_drops;
        self.reported_drops = self.dropped;
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_buffers_drop_the_oldest_and_count_it() {
        let mut buffer = SampleBuffer::new(3);
        for i in 0..5 {
            buffer.push(Sample::new("t", format!("s{i}"), 0));
        }
        assert_eq!(buffer.dropped(), 2);
        let taken = buffer.take(10);
        assert_eq!(
            taken.iter().map(|s| s.seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(taken[0].subject, "s2");
        assert!(buffer.is_empty());
        assert_eq!(buffer.push(Sample::new("t", "x", 0)), 6);
    }

    #[test]
    fn each_batch_reports_the_drops_since_the_previous_one() {
        let mut buffer = SampleBuffer::new(1);
        for i in 0..4 {
            buffer.push(Sample::new("t", format!("s{i}"), 0));
        }
        assert_eq!(buffer.take_new_drops(), 3);
        assert_eq!(buffer.take_new_drops(), 0);
        buffer.push(Sample::new("t", "s4", 0));
        assert_eq!(buffer.take_new_drops(), 1);
        assert_eq!(
            buffer.dropped(),
            4,
            "the running total stays for the endpoint"
        );
    }
}
