//! What a campaign writes down and shows: the runner's records become
//! store writes (the ledger, attempt ends with the lead's next attempt
//! from [`crate::policy::after_attempt`]) and counters, and the counters
//! and the runner's status become the live board every second.

use std::collections::{BTreeMap, VecDeque};

use super::driver::Driver;
use super::writer::Write;
use crate::clock::Millis;
use crate::dialer::{CallId, Outcome, Record};
use crate::live::CampaignLive;
use crate::outcome::LeadStatus;
use crate::policy::{self, NextAttempt, PastAttempt};
use crate::store::{AttemptEnd, LedgerKind};

/// Figures since the service started, for the live board.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) attempts: u64,
    pub(super) human_answers: u64,
    pub(super) connects: u64,
    pub(super) abandons: u64,
    pub(super) contacts: u64,
    pub(super) conversions: u64,
    pub(super) refused: u64,
    pub(super) opt_outs: u64,
    pub(super) outcomes: BTreeMap<String, u64>,
    pub(super) recent_dials: VecDeque<i64>,
}

impl Driver {
    /// Writes down a record of the runner's.
    pub(super) fn record(&mut self, r: Record, now: Millis) {
        match r {
            Record::AgentState { agent, status } => self.agent_state_changed(agent, status, now),
            Record::HumanAnswer { call, .. } => {
                self.counters.human_answers += 1;
                let attempt_id = self.calls.get(&call).and_then(|c| c.attempt_id);
                self.write(Write::Ledger {
                    campaign_id: self.campaign_id,
                    attempt_id,
                    kind: LedgerKind::HumanAnswer,
                    at: now.ms(),
                });
            }
            Record::Connected { .. } => {}
            Record::Abandoned { call, .. } => {
                self.counters.abandons += 1;
                let attempt_id = self.calls.get(&call).and_then(|c| c.attempt_id);
                let ack = self.write_acked(Write::Ledger {
                    campaign_id: self.campaign_id,
                    attempt_id,
                    kind: LedgerKind::Abandon,
                    at: now.ms(),
                });
                self.pending_abandon_ack = Some(ack);
            }
            Record::AttemptEnded { call, outcome, .. } => {
                *self
                    .counters
                    .outcomes
                    .entry(outcome.code().to_string())
                    .or_default() += 1;
                if let Some(c) = self.calls.get_mut(&call) {
                    c.outcome = Some(outcome);
                    self.try_finish(call);
                }
            }
        }
    }

    /// Writes the attempt's end once the runner's outcome, the SIP summary
    /// and the attempt id are all known.
    pub(super) fn try_finish(&mut self, call: CallId) {
        let ready = self
            .calls
            .get(&call)
            .is_some_and(|c| c.outcome.is_some() && c.summary.is_some() && c.attempt_id.is_some());
        if !ready {
            return;
        }
        let Some(c) = self.calls.remove(&call) else {
            return;
        };
        let (Some(outcome), Some(summary), Some(attempt_id)) = (c.outcome, c.summary, c.attempt_id)
        else {
            return;
        };
        let now = self.now();
        let outcome = if c.interrupted && outcome != Outcome::Connected {
            Outcome::Interrupted
        } else {
            outcome
        };
        // The lead with this attempt in its history.
        let this = PastAttempt {
            started_at: c.started_at,
            ended_at: Some(now),
            outcome: Some(outcome),
        };
        let next = c
            .lead
            .lead
            .record(c.lead.history.iter().copied().chain([this]), now)
            .map(|mut r| {
                r.attempts = r.attempts.saturating_add(1);
                policy::after_attempt(&self.campaign, &r, outcome, now)
            })
            // A number that no longer reads as valid: nothing more to do.
            .unwrap_or(NextAttempt::Done);
        let (status, next) = match next {
            NextAttempt::Done => (LeadStatus::Done, None),
            NextAttempt::At(t) => (LeadStatus::Retry, Some(t.ms())),
        };
        self.write(Write::FinishAttempt(
            attempt_id,
            AttemptEnd {
                answered_at: c.answered_at,
                connected_at: c.connected_at,
                ended_at: now.ms(),
                outcome: outcome.code().to_string(),
                sip_code: summary.final_code.map(i64::from),
                sip_codes: (!summary.codes.is_empty()).then(|| {
                    let codes: Vec<String> = summary.codes.iter().map(u16::to_string).collect();
                    codes.join(",")
                }),
                agent_id: c.agent,
                lead_status: status.code().to_string(),
                next_attempt_at: next,
            },
        ));
    }

    /// Publishes the campaign's live figures.
    pub(super) fn publish(&mut self) {
        let now = self.now().ms();
        while self
            .counters
            .recent_dials
            .front()
            .is_some_and(|&t| t < now - 5000)
        {
            self.counters.recent_dials.pop_front();
        }
        let s = self.runner.status();
        let effective = self.controls.effective(&self.campaign);
        let rate = if s.window_human_answers == 0 {
            0.0
        } else {
            100.0 * s.window_abandons as f64 / s.window_human_answers as f64
        };
        self.shared.board.publish(CampaignLive {
            name: self.campaign.name.clone(),
            at_ms: now,
            agents_ready: s.ready,
            agents_on_call: s.on_call,
            agents_wrap_up: s.wrap_up,
            agents_paused: s.not_ready,
            calls_ringing: s.ringing,
            calls_waiting: s.waiting,
            dial_level: s.dial_level,
            window_human_answers: s.window_human_answers,
            window_abandons: s.window_abandons,
            window_rate_percent: rate,
            limit_percent: self.campaign.abandon_limit_percent,
            target_percent: effective.target_percent,
            run_state: self.controls.state,
            max_dial_level: effective.max_dial_level,
            attempts: self.counters.attempts,
            human_answers: self.counters.human_answers,
            connects: self.counters.connects,
            abandons: self.counters.abandons,
            contacts: self.counters.contacts,
            conversions: self.counters.conversions,
            opt_outs: self.counters.opt_outs,
            outcomes: self.counters.outcomes.clone(),
            calls_per_second: self.counters.recent_dials.len() as f64 / 5.0,
            holiday_calendar_days_left: crate::compliance::hours::calendar_days_left(
                self.campaign.profile,
                Millis(now).utc().date_naive(),
            ),
            dnd_registry_days_left: match self
                .shared
                .registries()
                .national
                .get(&self.campaign.country())
            {
                Some(r) => {
                    let max = crate::compliance::max_registry_age(self.campaign.profile);
                    let left = max - Millis(now).utc().signed_duration_since(r.loaded_at);
                    Some(left.num_seconds() as f64 / 86_400.0)
                }
                // None loaded where one is needed: every call is refused,
                // as with one too old.
                None => self
                    .campaign
                    .profile
                    .rules()
                    .screens_national_registry(self.campaign.call_type)
                    .then_some(0.0),
            },
        });
    }
}
