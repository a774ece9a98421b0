//! Progressive and fixed-ratio dialling.
use super::{Decision, Pacer, Snapshot, in_flight, room};

/// Progressive (ratio 1) and fixed-ratio dialling: R calls out per ready
/// agent.
#[derive(Debug, Clone)]
pub struct Ratio {
    ratio: f64,
    level: f64,
}

impl Ratio {
    /// `ratio` calls per ready agent (1: progressive).
    pub fn new(ratio: f64) -> Ratio {
        Ratio {
            ratio,
            level: ratio,
        }
    }
}

impl Pacer for Ratio {
    fn decide(&mut self, s: &Snapshot<'_>) -> Decision {
        let want = (self.ratio * f64::from(s.ready)).floor() as u32;
        Decision {
            launch: want.saturating_sub(in_flight(s)).min(room(s)),
            wake_at_ms: None,
        }
    }

    fn dial_level(&self) -> f64 {
        self.level
    }
}
