//! `Clock`: where the agent takes time from.
//!
//! Wall time (for timestamps sent to the coordinator) and monotonic time (for deadlines and
//! windows) both come through this trait. The monotonic side is `tokio::time::Instant`, so
//! tests with a paused runtime control it; [`FakeClock`] also lets tests set wall time.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall and monotonic time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Wall-clock time, for timestamps others read.
    fn wall(&self) -> SystemTime;
    /// Monotonic time, for deadlines and windows.
    fn monotonic(&self) -> tokio::time::Instant;

    /// Wall-clock time in milliseconds since the Unix epoch (0 before the epoch).
    fn wall_unix_ms(&self) -> u64 {
        self.wall()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }

    fn monotonic(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }
}

/// A clock tests move by hand. Monotonic time starts at the moment of creation and only
/// moves when [`FakeClock::advance`] is called; wall time moves with it.
#[derive(Debug)]
pub struct FakeClock {
    state: Mutex<FakeClockState>,
}

#[derive(Debug)]
struct FakeClockState {
    wall: SystemTime,
    monotonic: tokio::time::Instant,
}

// === impl FakeClock ===

impl FakeClock {
    /// A clock whose wall time starts at `unix_seconds`.
    pub fn at_unix(unix_seconds: u64) -> Self {
        FakeClock {
            state: Mutex::new(FakeClockState {
                wall: UNIX_EPOCH + Duration::from_secs(unix_seconds),
                monotonic: tokio::time::Instant::now(),
            }),
        }
    }

    /// Moves both wall and monotonic time forward.
    pub fn advance(&self, by: Duration) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.wall += by;
        state.monotonic += by;
    }

    /// Sets wall time only, as an NTP step would.
    pub fn set_wall(&self, wall: SystemTime) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).wall = wall;
    }
}

impl Clock for FakeClock {
    fn wall(&self) -> SystemTime {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).wall
    }

    fn monotonic(&self) -> tokio::time::Instant {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .monotonic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_moves_only_when_told() {
        let clock = FakeClock::at_unix(1_700_000_000);
        let (wall0, mono0) = (clock.wall(), clock.monotonic());
        assert_eq!(clock.wall_unix_ms(), 1_700_000_000_000);
        assert_eq!(clock.monotonic(), mono0);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(
            clock.wall().duration_since(wall0).unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(clock.monotonic() - mono0, Duration::from_millis(1500));
        clock.set_wall(UNIX_EPOCH);
        assert_eq!(clock.wall_unix_ms(), 0);
        assert_eq!(clock.monotonic() - mono0, Duration::from_millis(1500));
    }
}
