//! The clairvoyant bound (simulator only).
use super::{Decision, Pacer, Snapshot, in_flight};

/// The clairvoyant bound: knowing every outcome and handle time, it dials
/// a call that will reach a person exactly when an agent will be free to
/// take it, and every other call at once. No strategy can keep agents
/// busier without abandons. Needs [`Snapshot::oracle`].
#[derive(Debug, Clone)]
pub struct Oracle {
    level: f64,
}

impl Oracle {
    /// The oracle at level 1.
    pub fn new() -> Oracle {
        Oracle { level: 1.0 }
    }
}

impl Default for Oracle {
    fn default() -> Oracle {
        Oracle::new()
    }
}

impl Pacer for Oracle {
    fn decide(&mut self, s: &Snapshot<'_>) -> Decision {
        let Some(o) = s.oracle else {
            return Decision::default();
        };
        // When each agent is next free, after the calls already promised.
        let mut free: Vec<u64> = std::iter::repeat_n(s.now_ms, s.ready as usize)
            .chain(o.busy_free_at_ms.iter().copied())
            .collect();
        if free.is_empty() {
            return Decision::default();
        }
        let take = |free: &mut Vec<u64>, at: u64, handle: u64| {
            // The earliest free agent takes the call.
            if let Some((i, _)) = free.iter().enumerate().min_by_key(|(_, t)| **t) {
                free[i] = free[i].max(at) + handle;
            }
        };
        for &h in o.waiting_handle_ms {
            take(&mut free, s.now_ms, h);
        }
        let mut coming: Vec<(u64, u64)> = o.human_in_flight.to_vec();
        coming.sort_unstable();
        for &(at, h) in &coming {
            take(&mut free, at, h);
        }
        let mut launch = 0;
        let mut wake = None;
        for lead in o.next_leads {
            if !lead.human {
                launch += 1;
                continue;
            }
            let earliest = free.iter().copied().min().unwrap_or(u64::MAX);
            let answer_at = s.now_ms + lead.ring_ms;
            if answer_at >= earliest {
                take(&mut free, answer_at, lead.handle_ms);
                launch += 1;
            } else {
                wake = Some(earliest - lead.ring_ms);
                break;
            }
        }
        if s.active_agents > 0 {
            self.level = f64::from(in_flight(s) + launch) / f64::from(s.active_agents);
        }
        Decision {
            launch,
            wake_at_ms: wake,
        }
    }

    fn dial_level(&self) -> f64 {
        self.level
    }
}
