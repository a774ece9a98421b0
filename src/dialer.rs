//! The campaign runner: agents, calls and the lead hopper as state
//! machines, with pacing deciding when to dial.
//!
//! Sans-IO, in the manner of quinn-proto: the driver (the live service or
//! the simulator) feeds events with the current time through
//! [`Runner::handle_event`] and [`Runner::handle_timeout`], and pulls what
//! to do with [`Runner::poll_command`] and when to wake it with
//! [`Runner::poll_timeout`]. No clock, socket or database in here: time is
//! milliseconds since an epoch the driver chooses.
//!
//! Call path: a human answer goes to the longest-ready agent at once; if
//! none is free it waits up to the connect limit (2 s) for one, then hears
//! the safe-harbour message and counts as abandoned in the ledger.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use chrono::DateTime;

use crate::campaign::Campaign;
use crate::compliance::ledger::{Event as LedgerEvent, LeastBudget, Ledger};
use crate::pacing::Strategy;
use crate::pacing::estimate::{Estimators, Priors};
use crate::pacing::{self, Foresight, Governor, LedgerView, OracleView, Pacer, Snapshot};
use crate::policy::DialView;

/// A hash map keyed by small integers (call, lead and agent ids) with a
/// fixed-seed fast hash: SipHash showed up in simulator profiles, and a
/// fixed seed keeps runs identical.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// An agent, numbered densely from 0 by the driver.
pub type AgentId = u32;
/// A call, numbered by the runner.
pub type CallId = u64;
/// A lead, numbered by the driver.
pub type LeadId = u64;

pub use crate::outcome::Outcome;

/// A lead handed to the hopper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeadInfo {
    /// The lead.
    pub id: LeadId,
    /// What the oracle knows of its next attempt (simulator only).
    pub foresight: Option<Foresight>,
    /// A callback kept for the agent who booked it: dialled only when
    /// that agent is ready, for that agent, until the campaign's grace
    /// after its time runs out; then it is anyone's.
    pub owner: Option<LeadOwner>,
}

/// The agent a kept callback waits for, and until when (runner ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeadOwner {
    /// The agent who booked the callback.
    pub agent: AgentId,
    /// From then on any agent may take it.
    pub until_ms: u64,
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An agent logged in (and is not yet ready).
    AgentLogin(AgentId),
    /// An agent is ready for calls.
    AgentReady(AgentId),
    /// An agent pauses (after the current call and wrap-up, if any).
    AgentPause(AgentId),
    /// An agent logs out (after the current call and wrap-up, if any).
    AgentLogout(AgentId),
    /// Leads for the hopper, in dialling order (answer to
    /// [`Command::NeedLeads`]).
    Leads(Vec<LeadInfo>),
    /// The callee answered: a person or a machine.
    CallAnswered {
        /// The call.
        call: CallId,
        /// A person (true) or an answering machine.
        human: bool,
    },
    /// The callee answered, but the call cannot carry audio (the answer
    /// had no SDP, no codec we send, or refused the stream): a person who
    /// picked up would hear nothing and could not be heard. It is hung up
    /// at once and counted as a person's answer abandoned, never bridged
    /// to an agent: the safe side of the abandonment rules, which count
    /// silent calls.
    CallAnsweredWithoutAudio {
        /// The call.
        call: CallId,
    },
    /// The callee's phone rings from now: the call's first 180 or 183
    /// (again when a failover or redirect moved the call on, as the SIP
    /// layer says). The ring timeout counts from the last of these, not
    /// from the dial, so that a slow network's call set-up never cuts the
    /// ringing short of the campaign's ring time (US TSR 310.4(b)(4)(i)
    /// and FCC 64.1200(a)(7): at least 15 s or four rings; Ofcom's 15 s).
    /// Without one the clock runs from the dial, the most that is known.
    /// Pacing judges a ringing call by the same clock.
    CallRinging {
        /// The call.
        call: CallId,
    },
    /// The call failed before an answer.
    CallFailed {
        /// The call.
        call: CallId,
        /// Busy, rejected, failure or no answer.
        outcome: Outcome,
    },
    /// The far end hung up.
    CallEnded {
        /// The call.
        call: CallId,
    },
    /// The agent finished wrap-up (disposition recorded) and is ready again
    /// unless a pause or logout is pending.
    WrapUpDone {
        /// The agent.
        agent: AgentId,
    },
    /// The driver did not place this dialled call (compliance refused the
    /// lead just before the INVITE, or its attempt could not be written):
    /// the call is forgotten, counting neither as an attempt nor in the
    /// estimators. Pacing decides again once the round's other dials are
    /// carried out (the runner asks for a timeout at once); once a
    /// hopper's worth of dials in a row was refused, launches are held
    /// back, from 1 s doubling to a minute while refusals go on.
    DialSkipped {
        /// The call.
        call: CallId,
    },
    /// Start (true) or stop (false) launching new calls, for example ahead
    /// of the end of a shift or of the calling window. Calls in flight go
    /// on.
    Dialling(bool),
    /// Forget every lead in the hopper (the campaign stopped and the
    /// driver gives their claims back); more are asked for when dialling
    /// starts again.
    ReleaseLeads,
    /// A supervisor changed the campaign's dial-level cap (calls in flight
    /// per active agent) or abandonment target (percent; taken only up to
    /// the campaign's limit). The next decision uses them.
    Settings {
        /// Calls in flight per active agent, at most (1 or more).
        max_dial_level: f64,
        /// Abandonment target, percent.
        target_percent: f64,
    },
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Place a call to the lead.
    Dial {
        /// The new call's id.
        call: CallId,
        /// The lead.
        lead: LeadId,
    },
    /// Stop ringing (ring timeout).
    Cancel {
        /// The call.
        call: CallId,
    },
    /// Connect the answered call to the agent.
    Bridge {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// Play the safe-harbour message, then hang up (the call is abandoned).
    PlaySafeHarbour {
        /// The call.
        call: CallId,
    },
    /// Hang up (a machine answered).
    Hangup {
        /// The call.
        call: CallId,
    },
    /// The hopper runs low: send up to this many leads.
    NeedLeads(u32),
    /// Write this down (store, metrics) before acting on what follows.
    Record(Record),
}

/// Facts for the store and the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An agent's state changed (only with
    /// [`RunnerConfig::agent_records`]).
    AgentState {
        /// The agent.
        agent: AgentId,
        /// The new state.
        status: AgentStatus,
    },
    /// A person answered.
    HumanAnswer {
        /// The call.
        call: CallId,
        /// The lead.
        lead: LeadId,
        /// Ring time, ms.
        ring_ms: u64,
    },
    /// A person answered and was connected.
    Connected {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
        /// From answer to bridge, ms.
        wait_ms: u64,
    },
    /// A person answered and no agent came within the limit.
    Abandoned {
        /// The call.
        call: CallId,
        /// The lead.
        lead: LeadId,
    },
    /// The attempt is over.
    AttemptEnded {
        /// The call.
        call: CallId,
        /// The lead.
        lead: LeadId,
        /// How it ended.
        outcome: Outcome,
    },
}

/// The runner's settings, from the campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerConfig {
    /// Give up ringing after this long, ms.
    pub ring_timeout_ms: u64,
    /// A human answer must reach an agent within this long, ms.
    pub connect_limit_ms: u64,
    /// Abandonment target, percent.
    pub target_percent: f64,
    /// Abandonment limit, percent.
    pub limit_percent: f64,
    /// The ledger's rolling window.
    pub abandon_window: std::time::Duration,
    /// Highest calls in flight per active agent.
    pub max_dial_level: f64,
    /// Ask for more leads when the hopper holds fewer than this.
    pub hopper_low_water: usize,
    /// Priors for the estimators.
    pub priors: Priors,
    /// The trunk's limits on new calls per second and customer calls up
    /// at once. `None` (the simulator's default): the trunk is sized for
    /// the team; the live service sets them from the campaign's provider.
    pub trunk: Option<TrunkLimits>,
    /// Report every agent state change as [`Record::AgentState`] (the live
    /// service writes them down; the simulator needs none).
    pub agent_records: bool,
    /// When the campaign dials, for the governor's look-ahead to the next
    /// opening; `None`: no look-ahead past the next hour.
    pub windows: Option<DialWindows>,
}

/// The calling hours the runner dials in: a week plan in one zone (the
/// campaign's home zone live; the team's shift in the simulator) with its
/// holidays, and the instant of the runner's time 0.
#[derive(Debug, Clone, PartialEq)]
pub struct DialWindows {
    /// Windows per weekday, Monday first.
    pub plan: crate::profile::WeekPlan,
    /// The zone the plan is in.
    pub zone: chrono_tz::Tz,
    /// Days with no calls.
    pub calendar: Option<&'static crate::compliance::hours::Calendar>,
    /// UTC ms of the runner's time 0 (0 when the runner counts Unix ms).
    pub epoch_ms: i64,
}

impl DialWindows {
    /// The campaign's own hours in its country's home zone, for a runner
    /// counting Unix ms.
    pub fn of_campaign(campaign: &Campaign) -> DialWindows {
        DialWindows {
            plan: campaign.hours,
            zone: campaign.profile.home_zone(),
            calendar: crate::compliance::hours::calendar(campaign.profile),
            epoch_ms: 0,
        }
    }

    /// The end of the window open at runner time `now_ms`, and the next
    /// opening after it; `None` when closed now (the end then says when to
    /// look again).
    fn around(&self, now_ms: u64) -> (u64, Option<u64>) {
        let hours = crate::compliance::hours::Hours {
            plan: &self.plan,
            calendar: self.calendar,
            holidays: &[],
        };
        let to_utc = |ms: u64| crate::clock::Millis(self.epoch_ms.saturating_add(ms as i64)).utc();
        let to_ms = |t: chrono::DateTime<chrono::Utc>| {
            u64::try_from(t.timestamp_millis().saturating_sub(self.epoch_ms)).unwrap_or(0)
        };
        let zones = [self.zone];
        match hours.window_end(&zones, to_utc(now_ms)) {
            Some(end) => (to_ms(end), hours.next_open(&zones, end).map(to_ms)),
            // Closed: look again in a minute.
            None => (now_ms + 60_000, None),
        }
    }
}

/// A SIP trunk's limits: the runner never launches past them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrunkLimits {
    /// New calls in any one-second window.
    pub cps: u32,
    /// Customer calls in flight (ringing, waiting or connected).
    pub channels: u32,
}

impl RunnerConfig {
    /// Settings for `campaign`.
    pub fn from_campaign(campaign: &Campaign) -> RunnerConfig {
        RunnerConfig {
            ring_timeout_ms: campaign.ring_timeout.as_millis() as u64,
            connect_limit_ms: 2000,
            target_percent: campaign.abandon_target_percent,
            limit_percent: campaign.abandon_limit_percent,
            abandon_window: campaign.abandon_window,
            max_dial_level: campaign.max_dial_level,
            hopper_low_water: 64,
            priors: crate::policy::priors(campaign),
            trunk: None,
            agent_records: false,
            windows: Some(DialWindows::of_campaign(campaign)),
        }
    }
}

/// An agent's state; the runner is its only owner (the live service asks
/// [`Runner::agent`] and follows [`Record::AgentState`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStatus {
    /// Not logged in.
    LoggedOut,
    /// Logged in and not yet ready.
    LoggedIn,
    /// Ready for a call.
    Ready,
    /// Talking on a call.
    OnCall(CallId),
    /// The call ended; recording its disposition.
    WrapUp,
    /// Paused.
    Paused,
}

/// An agent as [`Runner::agent`] shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentView {
    /// The state now.
    pub status: AgentStatus,
    /// A pause asked for during a call takes effect after its wrap-up.
    pub pause_pending: bool,
    /// A logout asked for during a call takes effect after its wrap-up.
    pub logout_pending: bool,
}

use AgentStatus as AgentState;

#[derive(Debug, Clone, Copy)]
struct Agent {
    state: AgentState,
    /// When the current call was bridged (on call and wrap-up).
    handle_start_ms: u64,
    /// When the current handle will end (oracle only).
    free_at_ms: u64,
    pause_after: bool,
    logout_after: bool,
    /// A kept callback dialled for this agent, still ringing: the agent
    /// stays ready (its status) but out of the ready queue, and takes
    /// that call and no other if a person answers.
    reserved: Option<CallId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    Ringing,
    Waiting { answered_ms: u64 },
    Connected,
    SafeHarbour,
}

#[derive(Debug, Clone, Copy)]
struct Call {
    lead: LeadId,
    dialled_ms: u64,
    /// When its ring clock started: the dial, or its last ringing
    /// indication ([`Event::CallRinging`]).
    ring_from_ms: u64,
    state: CallState,
    agent: Option<AgentId>,
    foresight: Option<Foresight>,
    /// The agent reserved for this call (a kept callback).
    for_agent: Option<AgentId>,
}

/// Agents by state, calls in flight and pacing figures, for status lines.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Status {
    /// Agents ready with no call.
    pub ready: u32,
    /// Agents talking.
    pub on_call: u32,
    /// Agents in wrap-up.
    pub wrap_up: u32,
    /// Agents paused or logged in but not ready.
    pub not_ready: u32,
    /// Calls ringing.
    pub ringing: u32,
    /// Answered calls waiting for an agent.
    pub waiting: u32,
    /// The pacer's dial level ([`crate::pacing::Pacer::dial_level`]).
    pub dial_level: f64,
    /// Human answers in the compliance window.
    pub window_human_answers: u64,
    /// Abandons in the compliance window.
    pub window_abandons: u64,
}

/// The campaign runner.
pub struct Runner {
    config: RunnerConfig,
    pacer: Box<dyn Pacer>,
    oracle: bool,
    est: Estimators,
    ledger: Ledger,
    /// The share of the campaign's abandonment allowance this runner may
    /// spend: 1 alone, 1/N when N nodes dial the campaign together.
    budget_share: f64,
    agents: Vec<Agent>,
    /// Ready agents, longest ready first.
    ready: VecDeque<AgentId>,
    /// Kept callbacks waiting for their agent, in the order they came.
    kept: Vec<(LeadInfo, LeadOwner)>,
    active_agents: u32,
    calls: FastMap<CallId, Call>,
    /// Agents on a call or in wrap-up, by agent id (the order pacing
    /// reads them in), so a decision does not walk the whole team; and
    /// beside them when each call was bridged, the slice pacing reads.
    busy: Vec<AgentId>,
    busy_since: Vec<u64>,
    /// Beside them: when each one's call ended (wrap-up began), or
    /// `u64::MAX` while still talking.
    wrap_since: Vec<u64>,
    /// Calls ringing, by call id, and beside them when each one's ring
    /// clock started (the dial, or [`Event::CallRinging`]):
    /// ids grow with time, so new calls go at the end and a finished one
    /// is found by binary search (a few dozen at most: a Vec beats a map).
    /// Pacing judges each by its ring clock, whose timeout is exact.
    ringing: Vec<CallId>,
    ringing_since: Vec<u64>,
    /// The ring clocks of the calls ringing (plain and kept), in the order
    /// they run out (every call has the same timeout): a call's entry goes
    /// in at its dial and again at each ringing indication, all at
    /// the time of the event, so the queue stays in time order. Entries of
    /// calls no longer ringing, or whose clock started again, are dropped
    /// when they reach the front (`trim_ring_clock`), so the front is
    /// always the next ring timeout: no timer per call, and none left
    /// behind to fire for calls already over.
    ring_clock: VecDeque<(u64, CallId)>,
    /// Kept callbacks ringing, each with its agent waiting (when dialled,
    /// the call): out of `ringing`, as pacing must not count on a ready
    /// agent for them.
    kept_ringing: Vec<(u64, CallId)>,
    /// Launch times in the last second, when the trunk limits them. A
    /// sliding window by hand rather than `governor` (which `sip load`
    /// uses): the runner is driven by the caller's `now`, with no clock of
    /// its own, and must name the instant the next launch is allowed so it
    /// can ask for a wake-up then.
    launches: VecDeque<u64>,
    waiting: VecDeque<CallId>,
    hopper: VecDeque<LeadInfo>,
    leads_requested: bool,
    /// The last decision wanted more calls than the hopper held.
    starved: bool,
    dialling: bool,
    next_call: CallId,
    /// Connect deadlines of answered calls waiting for an agent: when, and
    /// the call (ring timeouts and the pacer's wake-up need no timer).
    timers: BinaryHeap<Reverse<(u64, CallId)>>,
    /// When the latest decision asked to be woken: each decision replaces
    /// the last one's request, so a decision made for another reason
    /// pushes the wake-up back instead of adding one (and, kept out of
    /// `timers`, leaves nothing behind to fire for nothing).
    pacer_wake: Option<u64>,
    /// Refused dials: decide again at this time, once every dial of the
    /// round has been carried out or skipped (see [`Event::DialSkipped`]).
    replan_at: Option<u64>,
    /// Dials launched and dials skipped since the last replan.
    round_dials: u32,
    round_skips: u32,
    /// Dials skipped in a row, across rounds, since one went out.
    skips_in_a_row: u32,
    /// Once a whole hopper's worth of dials in a row was refused, no
    /// launch before this time; the wait doubles from 1 s to a minute
    /// while refusals go on.
    skip_backoff_ms: u64,
    backoff_until: u64,
    /// The calling window's end and the next opening, as last worked out,
    /// valid until the end.
    window_cache: Option<(u64, Option<u64>)>,
    /// Ready agents whose pause waits on the calls out (see
    /// [`Runner::release_pauses`]).
    pending_pause: usize,
    /// The ledger's least budget over the next hour, carried from
    /// decision to decision.
    least_ahead: LeastBudget,
    /// The same over the windows ending while the campaign is closed
    /// (see [`Runner::pace`]).
    least_closed: LeastBudget,
    commands: VecDeque<Command>,
    // Scratch buffers reused by every decision (the oracle's).
    free_at_buf: Vec<u64>,
    human_flight_buf: Vec<(u64, u64)>,
    waiting_handle_buf: Vec<u64>,
    next_leads_buf: Vec<Foresight>,
}

impl Runner {
    /// A runner for a campaign's settings and strategy.
    pub fn new(config: RunnerConfig, strategy: &Strategy) -> Runner {
        Runner {
            est: Estimators::new(config.priors),
            ledger: Ledger::new(config.abandon_window),
            budget_share: 1.0,
            pacer: pacing::pacer(strategy),
            oracle: matches!(strategy, Strategy::Oracle),
            config,
            agents: Vec::new(),
            ready: VecDeque::new(),
            kept: Vec::new(),
            active_agents: 0,
            calls: FastMap::default(),
            busy: Vec::new(),
            busy_since: Vec::new(),
            wrap_since: Vec::new(),
            ringing: Vec::new(),
            ringing_since: Vec::new(),
            ring_clock: VecDeque::new(),
            kept_ringing: Vec::new(),
            launches: VecDeque::new(),
            waiting: VecDeque::new(),
            hopper: VecDeque::new(),
            leads_requested: false,
            starved: false,
            dialling: true,
            next_call: 1,
            timers: BinaryHeap::new(),
            pacer_wake: None,
            replan_at: None,
            round_dials: 0,
            round_skips: 0,
            skips_in_a_row: 0,
            skip_backoff_ms: 0,
            backoff_until: 0,
            window_cache: None,
            pending_pause: 0,
            least_ahead: LeastBudget::default(),
            least_closed: LeastBudget::default(),
            commands: VecDeque::new(),
            free_at_buf: Vec::new(),
            human_flight_buf: Vec::new(),
            waiting_handle_buf: Vec::new(),
            next_leads_buf: Vec::new(),
        }
    }

    /// Feeds an event that happened at `now_ms`. Call it for every event, in
    /// time order, then drain [`Runner::poll_command`].
    pub fn handle_event(&mut self, now_ms: u64, event: Event) {
        let overdue = self.abandon_overdue(now_ms);
        // Events that change neither capacity nor demand need no decision:
        // a decision costs a pass over every agent and call.
        let decide = overdue
            | match event {
                Event::AgentLogin(a) => {
                    if self.agent_mut(a).state == AgentState::LoggedOut {
                        self.set_state(a, AgentState::LoggedIn);
                    }
                    false
                }
                Event::AgentReady(a) => {
                    self.make_ready(now_ms, a);
                    true
                }
                Event::AgentPause(a) => {
                    self.leave(a, false);
                    true
                }
                Event::AgentLogout(a) => {
                    self.leave(a, true);
                    true
                }
                Event::Leads(leads) => {
                    self.leads_requested = false;
                    for l in leads {
                        match l.owner {
                            Some(o) if o.until_ms > now_ms => self.kept.push((l, o)),
                            _ => self.hopper.push_back(LeadInfo { owner: None, ..l }),
                        }
                    }
                    // Leads come only when the hopper ran low: the last
                    // decision may have wanted more than it held.
                    self.starved = false;
                    true
                }
                Event::CallAnswered { call, human } => {
                    self.answered(now_ms, call, human);
                    true
                }
                Event::CallAnsweredWithoutAudio { call } => {
                    self.answered_without_audio(now_ms, call)
                }
                Event::CallRinging { call } => {
                    self.ringing_heard(now_ms, call);
                    false
                }
                Event::CallFailed { call, outcome } => {
                    if let Some(c) = self.calls.get(&call)
                        && c.state == CallState::Ringing
                    {
                        self.est.record_attempt(
                            false,
                            now_ms.saturating_sub(c.dialled_ms) as f64 / 1000.0,
                        );
                        self.end_call(now_ms, call, outcome);
                    }
                    true
                }
                // A connected call ending moves its agent from talk to wrap-up:
                // still busy, same handle clock.
                Event::CallEnded { call } => self.far_end_hung_up(now_ms, call),
                // Not at once: the round's other dials are still being carried
                // out. The replan sees them all (see `handle_timeout`).
                Event::DialSkipped { call } => {
                    if self
                        .calls
                        .get(&call)
                        .is_some_and(|c| c.state == CallState::Ringing)
                    {
                        self.remove_ringing(call);
                        if let Some(c) = self.calls.remove(&call) {
                            self.unreserve(now_ms, call, c.for_agent);
                        }
                        self.round_skips += 1;
                        self.replan_at.get_or_insert(now_ms);
                    }
                    false
                }
                Event::Dialling(on) => {
                    self.dialling = on;
                    on
                }
                Event::ReleaseLeads => {
                    self.hopper.clear();
                    self.kept.clear();
                    false
                }
                Event::Settings {
                    max_dial_level,
                    target_percent,
                } => {
                    if max_dial_level.is_finite() && max_dial_level >= 1.0 {
                        self.config.max_dial_level = max_dial_level;
                    }
                    if target_percent.is_finite() && target_percent > 0.0 {
                        self.config.target_percent = target_percent.min(self.config.limit_percent);
                    }
                    true
                }
                Event::WrapUpDone { agent } => {
                    if let Some(a) = self.agents.get(agent as usize)
                        && a.state == AgentState::WrapUp
                    {
                        let handle_s = now_ms.saturating_sub(a.handle_start_ms) as f64 / 1000.0;
                        self.est.record_handle(handle_s);
                        if let Ok(i) = self.busy.binary_search(&agent)
                            && let Some(&since) = self.wrap_since.get(i)
                            && since != u64::MAX
                        {
                            self.est
                                .record_wrap(now_ms.saturating_sub(since) as f64 / 1000.0);
                        }
                        self.make_ready(now_ms, agent);
                    }
                    true
                }
            };
        if decide {
            self.pace(now_ms);
        }
    }

    /// `call`'s 2 s to be put through to an agent ran out: if it is still
    /// waiting, it is abandoned (the safe-harbour message, the ledger).
    /// Whether it was.
    fn connect_deadline_passed(&mut self, now_ms: u64, call: CallId) -> bool {
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        if !matches!(c.state, CallState::Waiting { .. }) {
            return false;
        }
        c.state = CallState::SafeHarbour;
        let lead = c.lead;
        self.waiting.retain(|&w| w != call);
        self.abandon(now_ms, call, lead);
        self.commands.push_back(Command::PlaySafeHarbour { call });
        true
    }

    /// Abandons the waiting calls whose connect deadline is already past
    /// when an event comes at `now_ms` before the driver fired their timer
    /// (a busy driver, or an agent's Ready queued first): an answered call
    /// is never put through after its 2 s. Whether any was.
    fn abandon_overdue(&mut self, now_ms: u64) -> bool {
        let mut any = false;
        while let Some(&Reverse((at, call))) = self.timers.peek()
            && at < now_ms
        {
            self.timers.pop();
            any |= self.connect_deadline_passed(now_ms, call);
        }
        any
    }

    /// Fires the timers due at `now_ms`. Call it when the time from
    /// [`Runner::poll_timeout`] arrives, then drain the commands.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let mut decide = false;
        loop {
            // Ring timeouts first at equal times, as when they were timers.
            let ring = self.next_ring_timeout();
            let timer = self.timers.peek().map(|&Reverse(t)| t);
            // Connect deadlines are kept in a heap, ring timeouts come from
            // the ringing list: take whichever is due first.
            if let Some((at, call)) = ring
                && at <= now_ms
                && timer.is_none_or(|(t, _)| at <= t)
            {
                decide = true;
                // From the dial, as answers are: the estimators' clock.
                let dialled = self.calls.get(&call).map_or(at, |c| c.dialled_ms);
                self.est
                    .record_attempt(false, at.saturating_sub(dialled) as f64 / 1000.0);
                self.commands.push_back(Command::Cancel { call });
                self.end_call(now_ms, call, Outcome::NoAnswer);
                continue;
            }
            let Some((_, call)) = timer.filter(|&(at, _)| at <= now_ms) else {
                break;
            };
            self.timers.pop();
            decide |= self.connect_deadline_passed(now_ms, call);
        }
        if self.pacer_wake.is_some_and(|w| w <= now_ms) {
            self.pacer_wake = None;
            decide = true;
        }
        // A kept callback whose grace ran out is anyone's now.
        if self.expire_kept(now_ms) {
            decide = true;
        }
        if self.replan_at.is_some_and(|w| w <= now_ms) {
            self.replan_at = None;
            if self.round_dials > self.round_skips {
                self.skips_in_a_row = 0;
                self.skip_backoff_ms = 0;
            } else {
                self.skips_in_a_row += self.round_skips;
            }
            self.round_dials = 0;
            self.round_skips = 0;
            if self.skips_in_a_row as usize >= self.config.hopper_low_water * 4 {
                // A whole hopper's worth refused in a row (the leads'
                // hours are closed, say): wait before trying more, longer
                // each time, so that a closed list is not run through at
                // once.
                self.skips_in_a_row = 0;
                self.skip_backoff_ms = (self.skip_backoff_ms * 2).clamp(1000, 60_000);
                self.backoff_until = now_ms + self.skip_backoff_ms;
                self.replan_at = Some(self.backoff_until);
            } else {
                decide = true;
            }
        }
        if decide {
            self.pace(now_ms);
        }
    }

    /// The next command, if any. Drain after every `handle_*` call.
    #[must_use]
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// When [`Runner::handle_timeout`] must next be called, ms.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        let timer = self.timers.peek().map_or(u64::MAX, |Reverse((at, _))| *at);
        let ring = self.next_ring_timeout().map_or(u64::MAX, |(at, _)| at);
        let next = timer
            .min(ring)
            .min(self.pacer_wake.unwrap_or(u64::MAX))
            .min(self.replan_at.unwrap_or(u64::MAX))
            .min(
                self.kept
                    .iter()
                    .map(|(_, o)| o.until_ms)
                    .min()
                    .unwrap_or(u64::MAX),
            );
        (next != u64::MAX).then_some(next)
    }

    /// When the next ring timeout falls, and its call: the front of the
    /// ring clocks, live by `trim_ring_clock`.
    fn next_ring_timeout(&self) -> Option<(u64, CallId)> {
        self.ring_clock
            .front()
            .map(|&(from, call)| (from + self.config.ring_timeout_ms, call))
    }

    /// Whether a ring clock entry is still its call's clock: the call
    /// rings, and its clock started then.
    fn ring_clock_live(&self, (from, call): (u64, CallId)) -> bool {
        self.calls
            .get(&call)
            .is_some_and(|c| c.ring_from_ms == from)
            && (self.ringing.binary_search(&call).is_ok()
                || self.kept_ringing.iter().any(|&(_, k)| k == call))
    }

    /// Drops the ring clock entries at the front that are no longer live.
    fn trim_ring_clock(&mut self) {
        while let Some(&front) = self.ring_clock.front()
            && !self.ring_clock_live(front)
        {
            self.ring_clock.pop_front();
        }
    }

    /// [`Event::CallRinging`]: a ringing call's ring clock starts again,
    /// now.
    fn ringing_heard(&mut self, now_ms: u64, call: CallId) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let was = (c.ring_from_ms, call);
        if c.state != CallState::Ringing || now_ms <= c.ring_from_ms || !self.ring_clock_live(was) {
            return;
        }
        if let Some(c) = self.calls.get_mut(&call) {
            c.ring_from_ms = now_ms;
        }
        if let Ok(i) = self.ringing.binary_search(&call)
            && let Some(since) = self.ringing_since.get_mut(i)
        {
            *since = now_ms;
        }
        self.ring_clock.push_back((now_ms, call));
        self.trim_ring_clock();
    }

    /// Agents by state, calls in flight and the ledger, as of the last
    /// event.
    pub fn status(&self) -> Status {
        let mut s = Status {
            ringing: (self.ringing.len() + self.kept_ringing.len()) as u32,
            waiting: self.waiting.len() as u32,
            dial_level: self.pacer.dial_level(),
            ..Status::default()
        };
        for a in &self.agents {
            match a.state {
                AgentState::Ready => s.ready += 1,
                AgentState::OnCall(_) => s.on_call += 1,
                AgentState::WrapUp => s.wrap_up += 1,
                AgentState::Paused | AgentState::LoggedIn => s.not_ready += 1,
                AgentState::LoggedOut => {}
            }
        }
        let (h, a) = self.ledger.counts();
        s.window_human_answers = h;
        s.window_abandons = a;
        s
    }

    /// What a dial's compliance verdict needs from the runner at `now_ms`
    /// (see [`crate::policy::screen`]): the ledger's figures, when they
    /// next improve, and whether a ready agent is free for every call
    /// ringing. Call it while carrying out a [`Command::Dial`]: the new
    /// call already counts as ringing.
    pub fn dial_view(&mut self, now_ms: u64) -> DialView {
        DialView {
            ledger: self.ledger.status(
                ms_time(now_ms),
                self.config.target_percent,
                self.config.limit_percent,
            ),
            ledger_retry_at: self.ledger.next_expiry(),
            agent_reserved: self.ready.len() >= self.ringing.len(),
        }
    }

    /// The abandonment ledger (the runner is its only owner).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Replaces the abandonment ledger, for a driver that rebuilt it from
    /// stored events after a restart. Call it before the first event.
    pub fn restore_ledger(&mut self, ledger: Ledger) {
        self.ledger = ledger;
        self.least_ahead = LeastBudget::default();
        self.least_closed = LeastBudget::default();
    }

    /// Records a human answer or an abandon another node of the campaign
    /// had at `at_ms` (runner ms), so that this runner's ledger is the
    /// campaign's: the compliance window counts every node's calls.
    pub fn record_remote(&mut self, at_ms: u64, event: LedgerEvent) {
        self.ledger.record(ms_time(at_ms), event);
    }

    /// How many nodes dial the campaign together (this one included): each
    /// spends at most its share of the allowance the ledger leaves, so the
    /// combined rate holds whatever the others do meanwhile.
    pub fn set_nodes(&mut self, nodes: u32) {
        self.budget_share = 1.0 / f64::from(nodes.max(1));
    }

    /// Feeds the estimators a campaign's recent history, oldest first (see
    /// [`crate::pacing::estimate::HISTORY`] for how much they hold): per
    /// attempt whether a person answered and how long after dialling it
    /// resolved, seconds; and handle times, seconds. A runner that starts
    /// with the floor's own figures paces on them from the first decision
    /// instead of the campaign's priors.
    pub fn learn(&mut self, attempts: &[(bool, f64)], handles: &[f64]) {
        for &(human, after_s) in attempts {
            self.est.record_attempt(human, after_s);
        }
        for &h in handles {
            self.est.record_handle(h);
        }
    }

    /// Calls not yet over (ringing, waiting, connected, hearing the message).
    pub fn calls_in_progress(&self) -> usize {
        self.calls.len()
    }

    /// The estimators, for reports.
    pub fn estimators(&self) -> &Estimators {
        &self.est
    }

    /// Agent `a` as the runner holds it.
    pub fn agent(&self, a: AgentId) -> AgentView {
        match self.agents.get(a as usize) {
            Some(x) => AgentView {
                status: x.state,
                pause_pending: x.pause_after,
                logout_pending: x.logout_after,
            },
            None => AgentView {
                status: AgentState::LoggedOut,
                pause_pending: false,
                logout_pending: false,
            },
        }
    }

    /// The close of the calling window open at `now_ms` and the next
    /// opening after it (worked out once per window); `None` outside the
    /// hours or without them.
    fn window_ahead(&mut self, now_ms: u64) -> Option<(u64, u64)> {
        let windows = self.config.windows.as_ref()?;
        let (until, next) = match self.window_cache {
            Some((until, next)) if now_ms < until => (until, next),
            _ => {
                let (until, next) = windows.around(now_ms);
                let until = until.max(now_ms + 1);
                self.window_cache = Some((until, next));
                (until, next)
            }
        };
        next.map(|n| (until, n))
    }

    /// Moves agent `a` to `state`, reporting it when asked to.
    fn set_state(&mut self, a: AgentId, state: AgentState) {
        let Some(agent) = self.agents.get_mut(a as usize) else {
            return;
        };
        if agent.state == state {
            return;
        }
        agent.state = state;
        if self.config.agent_records {
            self.commands.push_back(Command::Record(Record::AgentState {
                agent: a,
                status: state,
            }));
        }
    }

    fn agent_mut(&mut self, a: AgentId) -> &mut Agent {
        let i = a as usize;
        if i >= self.agents.len() {
            self.agents.resize(
                i + 1,
                Agent {
                    state: AgentState::LoggedOut,
                    handle_start_ms: 0,
                    free_at_ms: 0,
                    pause_after: false,
                    logout_after: false,
                    reserved: None,
                },
            );
        }
        &mut self.agents[i]
    }

    fn make_ready(&mut self, now_ms: u64, a: AgentId) {
        let agent = self.agent_mut(a);
        if agent.reserved.is_some() {
            // Ready again while its callback rings: a pause or logout
            // asked for meanwhile is called off.
            agent.pause_after = false;
            agent.logout_after = false;
            return;
        }
        let was_active = !matches!(
            agent.state,
            AgentState::LoggedOut | AgentState::LoggedIn | AgentState::Paused
        );
        if agent.state == AgentState::Ready && agent.pause_after {
            // Back before the pause took effect: it is called off.
            agent.pause_after = false;
            self.pending_pause -= 1;
            return;
        }
        if matches!(agent.state, AgentState::OnCall(_) | AgentState::Ready) {
            return;
        }
        if agent.state == AgentState::WrapUp
            && let Ok(i) = self.busy.binary_search(&a)
        {
            self.busy.remove(i);
            self.busy_since.remove(i);
            self.wrap_since.remove(i);
        }
        let agent = &mut self.agents[a as usize];
        if agent.state == AgentState::WrapUp && (agent.pause_after || agent.logout_after) {
            let next = if agent.logout_after {
                AgentState::LoggedOut
            } else {
                AgentState::Paused
            };
            agent.pause_after = false;
            agent.logout_after = false;
            self.active_agents -= 1;
            self.set_state(a, next);
            return;
        }
        self.set_state(a, AgentState::Ready);
        if !was_active {
            self.active_agents += 1;
        }
        self.ready.push_back(a);
        // A waiting caller takes this agent at once.
        if let Some(call) = self.waiting.pop_front() {
            self.bridge(now_ms, call);
        }
    }

    fn leave(&mut self, a: AgentId, logout: bool) {
        // Calls already out count on every ready agent when there are as
        // many of them (ringing and waiting) as ready agents whose pause
        // is not already waiting.
        let needed =
            self.ringing.len() + self.waiting.len() + self.pending_pause >= self.ready.len();
        let pending = self.pending_pause;
        let agent = self.agent_mut(a);
        if agent.reserved.is_some() {
            // The callback dialled for this agent is ringing: the agent
            // stays for it, and leaves once it resolves (after the call
            // and its wrap-up if a person answers).
            if logout {
                agent.logout_after = true;
            } else {
                agent.pause_after = true;
            }
            return;
        }
        match agent.state {
            AgentState::OnCall(_) | AgentState::WrapUp => {
                if logout {
                    agent.logout_after = true;
                } else {
                    agent.pause_after = true;
                }
            }
            // A ready agent the calls out count on: the pause waits for
            // them (see `release_pauses`), as it would after a call, or a
            // person would answer to silence.
            // (Asked again while held: still held.)
            AgentState::Ready if !logout && (agent.pause_after || needed) => {
                if !agent.pause_after {
                    agent.pause_after = true;
                    self.pending_pause = pending + 1;
                }
            }
            AgentState::Ready => {
                if agent.pause_after {
                    agent.pause_after = false;
                    self.pending_pause = pending.saturating_sub(1);
                }
                self.active_agents -= 1;
                self.ready.retain(|&r| r != a);
                self.set_state(
                    a,
                    if logout {
                        AgentState::LoggedOut
                    } else {
                        AgentState::Paused
                    },
                );
            }
            AgentState::LoggedIn | AgentState::Paused | AgentState::LoggedOut => {
                self.set_state(
                    a,
                    if logout {
                        AgentState::LoggedOut
                    } else {
                        AgentState::Paused
                    },
                );
            }
        }
    }

    /// A ringing call's answer, counted once: the estimators learn it and
    /// a person's answer goes in the ledger. The lead, or `None` when the
    /// call is not ringing (news of it came already).
    fn count_answer(&mut self, now_ms: u64, call: CallId, human: bool) -> Option<LeadId> {
        let c = self.calls.get_mut(&call)?;
        if c.state != CallState::Ringing {
            return None;
        }
        let ring_ms = now_ms.saturating_sub(c.dialled_ms);
        let lead = c.lead;
        if human {
            c.state = CallState::Waiting {
                answered_ms: now_ms,
            };
        }
        self.remove_ringing(call);
        self.est.record_attempt(human, ring_ms as f64 / 1000.0);
        if human {
            self.ledger
                .record(ms_time(now_ms), LedgerEvent::HumanAnswer);
            self.commands
                .push_back(Command::Record(Record::HumanAnswer {
                    call,
                    lead,
                    ring_ms,
                }));
        }
        Some(lead)
    }

    fn answered(&mut self, now_ms: u64, call: CallId, human: bool) {
        if self.count_answer(now_ms, call, human).is_none() {
            return;
        }
        if !human {
            self.commands.push_back(Command::Hangup { call });
            self.end_call(now_ms, call, Outcome::Machine);
            return;
        }
        // A kept callback: its agent waits for it.
        let reserved = self
            .calls
            .get(&call)
            .and_then(|c| c.for_agent)
            .filter(|&a| self.agents.get(a as usize).and_then(|x| x.reserved) == Some(call));
        if let Some(agent) = reserved {
            self.agents[agent as usize].reserved = None;
            self.connect(now_ms, call, agent);
        } else if self.ready.is_empty() {
            self.waiting.push_back(call);
            self.timers
                .push(Reverse((now_ms + self.config.connect_limit_ms, call)));
        } else {
            self.bridge(now_ms, call);
        }
    }

    /// [`Event::CallAnsweredWithoutAudio`]: a person's answer, abandoned
    /// and hung up at once. Returns whether pacing should decide again.
    fn answered_without_audio(&mut self, now_ms: u64, call: CallId) -> bool {
        let Some(lead) = self.count_answer(now_ms, call, true) else {
            return false;
        };
        self.abandon(now_ms, call, lead);
        self.commands.push_back(Command::Hangup { call });
        self.end_call(now_ms, call, Outcome::Abandoned);
        true
    }

    /// Connects a waiting call to the longest-ready agent.
    fn bridge(&mut self, now_ms: u64, call: CallId) {
        if !self
            .calls
            .get(&call)
            .is_some_and(|c| matches!(c.state, CallState::Waiting { .. }))
        {
            return;
        }
        // The longest ready first; an agent whose pause waits on the calls
        // out only when no other is ready.
        let agents = &self.agents;
        let pick = self
            .ready
            .iter()
            .position(|&r| !agents[r as usize].pause_after)
            .unwrap_or(0);
        let Some(agent) = self.ready.remove(pick) else {
            return;
        };
        if self.agents[agent as usize].pause_after {
            // It takes this call and pauses after it, as a busy agent does.
            self.pending_pause -= 1;
        }
        self.connect(now_ms, call, agent);
    }

    /// Connects waiting `call` to `agent`, who is out of the ready queue.
    fn connect(&mut self, now_ms: u64, call: CallId, agent: AgentId) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let CallState::Waiting { answered_ms } = c.state else {
            return;
        };
        c.state = CallState::Connected;
        c.agent = Some(agent);
        let handle_ms = c.foresight.map_or(0, |f| f.handle_ms);
        let a = &mut self.agents[agent as usize];
        a.handle_start_ms = now_ms;
        a.free_at_ms = now_ms + handle_ms;
        self.set_state(agent, AgentState::OnCall(call));
        match self.busy.binary_search(&agent) {
            Ok(i) => {
                self.busy_since[i] = now_ms;
                self.wrap_since[i] = u64::MAX;
            }
            Err(i) => {
                self.busy.insert(i, agent);
                self.busy_since.insert(i, now_ms);
                self.wrap_since.insert(i, u64::MAX);
            }
        }
        self.pacer.observe(now_ms, false);
        self.commands.push_back(Command::Record(Record::Connected {
            call,
            agent,
            wait_ms: now_ms - answered_ms,
        }));
        self.commands.push_back(Command::Bridge { call, agent });
    }

    fn abandon(&mut self, now_ms: u64, call: CallId, lead: LeadId) {
        self.ledger.record(ms_time(now_ms), LedgerEvent::Abandon);
        self.pacer.observe(now_ms, true);
        self.commands
            .push_back(Command::Record(Record::Abandoned { call, lead }));
    }

    /// Returns whether pacing should decide again.
    fn far_end_hung_up(&mut self, now_ms: u64, call: CallId) -> bool {
        let Some(c) = self.calls.get(&call).copied() else {
            return false;
        };
        match c.state {
            CallState::Ringing => {
                // Hung up before any answer we saw: a failure.
                self.est
                    .record_attempt(false, now_ms.saturating_sub(c.dialled_ms) as f64 / 1000.0);
                self.end_call(now_ms, call, Outcome::Failure);
                true
            }
            CallState::Waiting { .. } => {
                // The person gave up before an agent came: still abandoned.
                self.waiting.retain(|&w| w != call);
                self.abandon(now_ms, call, c.lead);
                self.end_call(now_ms, call, Outcome::Abandoned);
                true
            }
            CallState::SafeHarbour => {
                self.end_call(now_ms, call, Outcome::Abandoned);
                false
            }
            CallState::Connected => {
                if let Some(a) = c.agent
                    && self.agents.get(a as usize).map(|x| x.state)
                        == Some(AgentState::OnCall(call))
                {
                    self.set_state(a, AgentState::WrapUp);
                    if let Ok(i) = self.busy.binary_search(&a) {
                        self.wrap_since[i] = now_ms;
                    }
                }
                self.end_call(now_ms, call, Outcome::Connected);
                false
            }
        }
    }

    fn remove_ringing(&mut self, call: CallId) {
        if let Ok(i) = self.ringing.binary_search(&call) {
            self.ringing.remove(i);
            self.ringing_since.remove(i);
        } else {
            self.kept_ringing.retain(|&(_, c)| c != call);
        }
        self.trim_ring_clock();
    }

    fn end_call(&mut self, now_ms: u64, call: CallId, outcome: Outcome) {
        self.remove_ringing(call);
        if let Some(c) = self.calls.remove(&call) {
            self.commands
                .push_back(Command::Record(Record::AttemptEnded {
                    call,
                    lead: c.lead,
                    outcome,
                }));
            self.unreserve(now_ms, call, c.for_agent);
        }
    }

    /// A kept callback ended unanswered (or was not placed): its agent,
    /// held for it, is ready again at the head of the queue, or leaves
    /// if it asked to meanwhile.
    fn unreserve(&mut self, now_ms: u64, call: CallId, agent: Option<AgentId>) {
        let Some(a) = agent else {
            return;
        };
        let Some(x) = self.agents.get_mut(a as usize) else {
            return;
        };
        if x.reserved != Some(call) {
            return;
        }
        x.reserved = None;
        if x.pause_after || x.logout_after {
            let next = if x.logout_after {
                AgentState::LoggedOut
            } else {
                AgentState::Paused
            };
            x.pause_after = false;
            x.logout_after = false;
            self.active_agents -= 1;
            self.set_state(a, next);
            return;
        }
        self.ready.push_front(a);
        if let Some(call) = self.waiting.pop_front() {
            self.bridge(now_ms, call);
        }
    }

    /// Hands the kept callbacks whose grace ran out to the hopper's head,
    /// in their order: anyone's now. Returns whether there were any.
    fn expire_kept(&mut self, now_ms: u64) -> bool {
        if !self.kept.iter().any(|(_, o)| o.until_ms <= now_ms) {
            return false;
        }
        let mut expired = Vec::new();
        self.kept.retain(|&(l, o)| {
            let keep = o.until_ms > now_ms;
            if !keep {
                expired.push(LeadInfo { owner: None, ..l });
            }
            keep
        });
        for l in expired.into_iter().rev() {
            self.hopper.push_front(l);
        }
        true
    }

    /// Dials the kept callbacks whose agent is ready, each for its agent
    /// (who waits for it, so no one answering can be abandoned). Returns
    /// the trunk's wake-up if it held one back.
    fn dial_kept(&mut self, now_ms: u64) -> Option<u64> {
        let mut i = 0;
        while i < self.kept.len() {
            let (lead, owner) = self.kept[i];
            let agents = &self.agents;
            let Some(pos) = self
                .ready
                .iter()
                .position(|&r| r == owner.agent && !agents[r as usize].pause_after)
            else {
                i += 1;
                continue;
            };
            if let Err(wake) = self.trunk_room(now_ms) {
                return wake;
            }
            self.kept.remove(i);
            self.ready.remove(pos);
            let call = self.launch(now_ms, lead, Some(owner.agent));
            self.agents[owner.agent as usize].reserved = Some(call);
        }
        None
    }

    /// Whether the trunk takes another call now; when it does not, the
    /// time a channel or a second's launch frees (`None`: when a call
    /// ends).
    fn trunk_room(&mut self, now_ms: u64) -> Result<(), Option<u64>> {
        let Some(t) = self.config.trunk else {
            return Ok(());
        };
        // A call ending frees a channel and re-decides; a full second of
        // launches waits for its oldest to age out.
        if self.calls.len() >= t.channels as usize {
            return Err(None);
        }
        while self.launches.front().is_some_and(|&at| at + 1000 <= now_ms) {
            self.launches.pop_front();
        }
        if self.launches.len() >= t.cps as usize {
            return Err(self.launches.front().map(|&at| at + 1000));
        }
        Ok(())
    }

    /// Places a call to `lead` now (for `for_agent`, held for it): it
    /// rings until answered, failed or timed out.
    fn launch(&mut self, now_ms: u64, lead: LeadInfo, for_agent: Option<AgentId>) -> CallId {
        if self.config.trunk.is_some() {
            self.launches.push_back(now_ms);
        }
        let call = self.next_call;
        self.next_call += 1;
        self.calls.insert(
            call,
            Call {
                lead: lead.id,
                dialled_ms: now_ms,
                ring_from_ms: now_ms,
                state: CallState::Ringing,
                agent: None,
                foresight: lead.foresight,
                for_agent,
            },
        );
        if for_agent.is_some() {
            self.kept_ringing.push((now_ms, call));
        } else {
            self.ringing.push(call);
            self.ringing_since.push(now_ms);
        }
        self.ring_clock.push_back((now_ms, call));
        self.round_dials += 1;
        self.commands.push_back(Command::Dial {
            call,
            lead: lead.id,
        });
        call
    }

    /// Pauses the ready agents whose pause waited on the calls out, as far
    /// as the other ready agents now cover those calls.
    fn release_pauses(&mut self) {
        while self.pending_pause > 0
            && self.ringing.len() + self.waiting.len() + self.pending_pause < self.ready.len() + 1
        {
            let agents = &self.agents;
            let Some(i) = self
                .ready
                .iter()
                .rposition(|&r| agents[r as usize].pause_after)
            else {
                self.pending_pause = 0;
                break;
            };
            let Some(a) = self.ready.remove(i) else {
                break;
            };
            self.pending_pause -= 1;
            self.agents[a as usize].pause_after = false;
            self.active_agents -= 1;
            self.set_state(a, AgentState::Paused);
        }
    }

    /// Asks the pacer and dials what it decides.
    fn pace(&mut self, now_ms: u64) {
        self.release_pauses();
        if !self.dialling || self.active_agents == 0 || now_ms < self.backoff_until {
            return;
        }
        // Kept callbacks first: their agents wait for them, so they need
        // none of the abandonment budget, and the pacer then sees those
        // agents as taken.
        let kept_wake = self.dial_kept(now_ms);
        self.ledger.advance_ms(now_ms as i64);
        self.est.refresh();
        let (human_answers, abandons) = self.ledger.counts();
        let limit = self.config.limit_percent / 100.0;
        let mut ledger = LedgerView::new(
            (human_answers, abandons),
            self.ledger.counts_ahead_ms((now_ms + 3_600_000) as i64),
            limit,
        );
        // Not only an hour from now: the least the budget will be at any
        // moment up to then, as old answers roll out ahead of the abandons
        // among them.
        let least = self.ledger.least_budget_ms(
            &mut self.least_ahead,
            now_ms as i64,
            (now_ms + 3_600_000) as i64,
            limit,
        );
        ledger.budget = ledger.budget.min(least);
        // Overnight, the morning's answers roll out of the window while the
        // afternoon's abandons stay: the window at the next opening (and an
        // hour after) counts too, for the calls that will still be in it.
        // It will also hold the rest of today's answers, which the pacer
        // keeps at its target, below the limit: half the last hour's pace
        // until the close is taken as slack.
        let window_ms = self.config.abandon_window.as_millis() as u64;
        if let Some((close, open)) = self.window_ahead(now_ms) {
            let target = self.config.target_percent / 100.0;
            let last_hour = self
                .ledger
                .counts_since_ms(now_ms.saturating_sub(3_600_000) as i64)
                .0 as f64;
            let hours_left = close.saturating_sub(now_ms) as f64 / 3_600_000.0;
            let slack = (limit - target).max(0.0) * 0.5 * last_hour * hours_left;
            // At the opening and an hour after (the window's two ends for
            // the calls that will still be in it): the least over that hour
            // would count the minutes the team's first calls roll out, which
            // fresh answers fill at once.
            for t in [open, open + 3_600_000] {
                if t < now_ms + window_ms {
                    let at = self.ledger.counts_at_ms(t as i64);
                    ledger.budget = ledger.budget.min(pacing::budget_at(at, limit) + slack);
                }
            }
            // The windows ending while the campaign is closed hold the
            // calls still in them and the rest of today's. Before a closed
            // day (Saturday's close, Sunday closed; a holiday's eve) that
            // is the whole of them for a window starting now: it ends
            // before the next opening, so an abandon now has only the
            // answers still to come today beside it, and one among the
            // last few calls would put such a window far over the limit.
            // Their least budget over what is recorded, with the rest of
            // today's answers counted at half the last hour's pace, or at
            // half the window's answers spread over all its hours if more
            // (at the opening the last hour holds none; yesterday's
            // answers over 24 hours are well under its pace).
            let (from, to) = (close.max(now_ms), open.min(now_ms + window_ms));
            if to > from {
                let least = self.ledger.least_budget_ms(
                    &mut self.least_closed,
                    from as i64,
                    to as i64,
                    limit,
                );
                let spread = human_answers as f64 * 3_600_000.0 / window_ms.max(1) as f64;
                let rest = limit * 0.5 * last_hour.max(spread) * hours_left;
                ledger.budget = ledger.budget.min(least + rest);
            }
        }
        if ledger.budget > 0.0 {
            // Shared with the campaign's other nodes (a debt is not).
            ledger.budget *= self.budget_share;
        }
        self.free_at_buf.clear();
        if self.oracle {
            let agents = &self.agents;
            self.free_at_buf.extend(
                self.busy
                    .iter()
                    .map(|&a| agents[a as usize].free_at_ms.max(now_ms)),
            );
        }
        let oracle = if self.oracle {
            self.human_flight_buf.clear();
            // The simulator's foresight counts from the dial (it sends no
            // CallRinging: the ring clocks are the dial times).
            for call in &self.ringing {
                if let Some(c) = self.calls.get(call)
                    && let Some(f) = c.foresight
                    && f.human
                    && f.ring_ms < self.config.ring_timeout_ms
                {
                    self.human_flight_buf
                        .push((c.dialled_ms + f.ring_ms, f.handle_ms));
                }
            }
            self.waiting_handle_buf.clear();
            for call in &self.waiting {
                if let Some(f) = self.calls.get(call).and_then(|c| c.foresight) {
                    self.waiting_handle_buf.push(f.handle_ms);
                }
            }
            self.next_leads_buf.clear();
            // A human answered after the ring timeout is no answer.
            let timeout = self.config.ring_timeout_ms;
            self.next_leads_buf
                .extend(self.hopper.iter().take(256).filter_map(|l| {
                    l.foresight.map(|f| Foresight {
                        human: f.human && f.ring_ms < timeout,
                        ..f
                    })
                }));
            Some(OracleView {
                busy_free_at_ms: &self.free_at_buf,
                human_in_flight: &self.human_flight_buf,
                waiting_handle_ms: &self.waiting_handle_buf,
                next_leads: &self.next_leads_buf,
            })
        } else {
            None
        };
        let snapshot = Snapshot {
            now_ms,
            active_agents: self.active_agents,
            // Agents whose pause waits on the calls out take no new ones.
            ready: (self.ready.len() - self.pending_pause) as u32,
            busy_since_ms: &self.busy_since,
            wrap_since_ms: &self.wrap_since,
            ringing_since_ms: &self.ringing_since,
            waiting: self.waiting.len() as u32,
            ring_timeout_s: self.config.ring_timeout_ms as f64 / 1000.0,
            ledger,
            limit_percent: self.config.limit_percent,
            target_percent: self.config.target_percent,
            max_dial_level: self.config.max_dial_level,
            est: &self.est,
            oracle,
        };
        // The governor below every strategy: whatever it proposes, only
        // the calls the abandonment budget can absorb go out. The oracle,
        // which knows every outcome and abandons no one, is the bound and
        // is left alone.
        let mut gov = Governor::new(&snapshot);
        let mut decision = self.pacer.decide(&snapshot, &mut gov);
        if !self.oracle {
            decision.launch = gov.admit(decision.launch);
        }
        // The oracle names the leads it dials; the others take the
        // hopper's first ones.
        let mut picked: VecDeque<LeadInfo> = VecDeque::new();
        if !decision.picks.is_empty() {
            for &i in decision.picks.iter().rev() {
                if let Some(l) = self.hopper.remove(i) {
                    picked.push_front(l);
                }
            }
            decision.launch = picked.len() as u32;
        }
        let mut trunk_wake = kept_wake;
        for _ in 0..decision.launch {
            if let Err(wake) = self.trunk_room(now_ms) {
                trunk_wake = trunk_wake.or(wake);
                break;
            }
            let next = if decision.picks.is_empty() {
                self.hopper.pop_front()
            } else {
                picked.pop_front()
            };
            let Some(lead) = next else {
                self.starved = true;
                break;
            };
            self.launch(now_ms, lead, None);
        }
        // Picked leads the trunk held back go back to the front.
        while let Some(l) = picked.pop_back() {
            self.hopper.push_front(l);
        }
        if self.hopper.len() < self.config.hopper_low_water && !self.leads_requested {
            self.leads_requested = true;
            self.commands.push_back(Command::NeedLeads(
                (self.config.hopper_low_water * 4) as u32,
            ));
        }
        self.pacer_wake = match (decision.wake_at_ms, trunk_wake) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .filter(|&w| w > now_ms);
    }
}

fn ms_time(ms: u64) -> DateTime<chrono::Utc> {
    DateTime::from_timestamp_millis(ms as i64).unwrap_or_default()
}

#[cfg(test)]
mod tests;
