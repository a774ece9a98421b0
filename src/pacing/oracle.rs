//! The clairvoyant bound (simulator only).
use super::{Decision, Governor, Pacer, Snapshot, in_flight};

/// The clairvoyant bound: knowing every outcome and handle time, it keeps
/// every agent's next free moment filled with a person who answers just
/// then, choosing among the hopper's leads out of order the one whose ring
/// time fits best, and dials the calls that will not reach a person at
/// once (they never take an agent). It plans every agent's calls from the
/// free times the runner will see (the longest-free agent takes the next
/// caller), so it abandons no one and idles an agent only when no lead in
/// the hopper can fill the gap. No strategy can keep agents busier: it
/// shows how close the others come to the physical limit, talk over talk
/// and wrap-up. Needs [`Snapshot::oracle`]; simulator only, exempt from
/// the governor (it abandons no one).
#[derive(Debug, Clone)]
pub struct Oracle {
    level: f64,
}

impl Oracle {
    /// The oracle at level 1.
    pub fn new() -> Oracle {
        Oracle { level: 1.0 }
    }

    /// How early before an agent is free a person may answer (the runner
    /// would hold the caller until then): none, since a person's patience
    /// can be shorter than the wait, and the bound abandons no one.
    const EARLY_MS: u64 = 0;

    /// An answer this soon after the agent is free is as good as any.
    const CLOSE_MS: u64 = 250;

    /// The hopper's front where calls that will not reach a person are
    /// dialled at once, to keep it moving.
    const CLEAR_FRONT: usize = 64;
}

impl Default for Oracle {
    fn default() -> Oracle {
        Oracle::new()
    }
}

impl Pacer for Oracle {
    fn decide(&mut self, s: &Snapshot<'_>, _gov: &mut Governor<'_>) -> Decision {
        let Some(o) = s.oracle else {
            return Decision::default();
        };
        let now = s.now_ms;
        // When each agent is next free, after the calls already promised.
        let mut free: Vec<u64> = std::iter::repeat_n(now, s.ready as usize)
            .chain(o.busy_free_at_ms.iter().copied())
            .collect();
        if free.is_empty() {
            return Decision::default();
        }
        // The earliest free agent takes each caller, as the runner does.
        let take = |free: &mut Vec<u64>, at: u64, handle: u64| {
            if let Some((i, _)) = free.iter().enumerate().min_by_key(|(_, t)| **t) {
                free[i] = free[i].max(at) + handle;
            }
        };
        for &h in o.waiting_handle_ms {
            take(&mut free, now, h);
        }
        let mut coming: Vec<(u64, u64)> = o.human_in_flight.to_vec();
        coming.sort_unstable();
        for &(at, h) in &coming {
            take(&mut free, at, h);
        }
        let mut picks: Vec<usize> = Vec::new();
        // Calls that will not reach a person take no agent: out at once.
        for (i, lead) in o.next_leads.iter().enumerate().take(Self::CLEAR_FRONT) {
            if !lead.human {
                picks.push(i);
            }
        }
        // The people, out of order: fill each agent's next free moment.
        let mut used = vec![false; o.next_leads.len()];
        let mut wake = None;
        // Each round fills the earliest free moment; it ends when a later
        // dial fits better (a wake-up) or no lead can fill it.
        for _ in 0..=o.next_leads.len() {
            let earliest = free.iter().copied().min().unwrap_or(u64::MAX);
            let gap = earliest.saturating_sub(now);
            // The lead answering soonest at or after the agent is free
            // (allowing an answer held briefly by the connect limit).
            let mut best: Option<(usize, u64)> = None;
            let mut longest_short: u64 = 0;
            for (i, lead) in o.next_leads.iter().enumerate() {
                if !lead.human || used[i] {
                    continue;
                }
                let answer = now + lead.ring_ms;
                if answer + Self::EARLY_MS >= earliest {
                    if best.is_none_or(|(_, a)| answer < a) {
                        best = Some((i, answer));
                    }
                } else {
                    longest_short = longest_short.max(lead.ring_ms);
                }
            }
            match best {
                // Close enough, or the agent is free already: dial it now.
                Some((i, answer)) if gap == 0 || answer <= earliest + Self::CLOSE_MS => {
                    used[i] = true;
                    picks.push(i);
                    take(&mut free, answer, o.next_leads[i].handle_ms);
                }
                // A better fit comes by waiting: dial when the longest ring
                // of the ones too short now would answer on time.
                _ if longest_short > 0 => {
                    wake = Some((earliest - Self::EARLY_MS).saturating_sub(longest_short));
                    break;
                }
                Some((i, answer)) => {
                    used[i] = true;
                    picks.push(i);
                    take(&mut free, answer, o.next_leads[i].handle_ms);
                }
                None => break,
            }
        }
        picks.sort_unstable();
        picks.dedup();
        let launch = picks.len() as u32;
        if s.active_agents > 0 {
            self.level = f64::from(in_flight(s) + launch) / f64::from(s.active_agents);
        }
        Decision {
            launch,
            wake_at_ms: wake.filter(|&w| w > now),
            picks,
        }
    }

    fn dial_level(&self) -> f64 {
        self.level
    }
}
