//! The offline simulator: the campaign runner and its pacing, driven in
//! virtual time against seeded customers.
//!
//! Discrete-event: a heap of timed events, the runner's own timers among
//! them. Every attempt's outcome, ring, talk, wrap-up and patience times are
//! drawn from a stream keyed by (seed, lead, attempt), so every strategy
//! meets the same customers (common random numbers) and the same inputs
//! give the same output, bit for bit. Leads are an endless list; retries
//! follow the campaign's delays and attempt limits ([`crate::policy`]);
//! the team works its shift inside the campaign's hours in the leads'
//! home zone, on the calendar from the scenario's first day. Every dial
//! passes the same compliance check as a live one
//! ([`crate::policy::screen`]): leads in other zones (the scenario's
//! `[leads] zones`), numbers on the national registry (`dnd_share`), the
//! per-day attempt limit and the abandonment budget refuse dials offline
//! as they would live, and refused dials reach pacing.

pub mod plot;
pub mod scenario;
pub mod sweep;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::dialer::FastMap as HashMap;

use chrono::Timelike;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, LogNormal, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

use crate::campaign::Campaign;
use crate::clock::Millis;
use crate::compliance::Registries;
use crate::compliance::dnd::NationalRegistry;
use crate::dialer::{
    AgentId, CallId, Command, Event, LeadId, LeadInfo, Outcome, Record, Runner, RunnerConfig,
};
use crate::pacing::Foresight;
use crate::pacing::Strategy;
use crate::phone::{Country, PhoneNumber};
use crate::policy::{self, LeadRecord, NextAttempt, PastAttempt};
use crate::profile::DayWindow;
pub use scenario::Scenario;

const HOUR_MS: u64 = 3_600_000;
/// Busy and failure signals arrive this soon after dialling.
const BUSY_MS: u64 = 4_000;
const FAILURE_MS: u64 = 1_500;

/// One simulation run's inputs.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The campaign (hours, limits, retries, ring timeout).
    pub campaign: Campaign,
    /// The customers and the team.
    pub scenario: Scenario,
    /// Pacing strategy.
    pub strategy: Strategy,
    /// Random seed.
    pub seed: u64,
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    /// Strategy.
    pub strategy: String,
    /// Agents.
    pub agents: u32,
    /// Days.
    pub days: u32,
    /// Seed.
    pub seed: u64,
    /// Calls placed.
    pub attempts: u64,
    /// Answered by a person.
    pub human_answers: u64,
    /// Handed to an agent.
    pub connects: u64,
    /// Not handed to an agent in time.
    pub abandons: u64,
    /// Abandons per human answer over the run, percent.
    pub abandon_rate_percent: f64,
    /// Worst rate of any rolling compliance window ending in the run (see
    /// [`worst_window`]), percent.
    pub worst_window_percent: f64,
    /// The campaign's limit, percent.
    pub limit_percent: f64,
    /// Talk time over logged-in time.
    pub talk_share: f64,
    /// Talk and wrap-up over logged-in time.
    pub occupancy: f64,
    /// Idle seconds per agent-hour.
    pub idle_s_per_agent_hour: f64,
    /// Conversions.
    pub conversions: u64,
    /// Connects per agent-hour.
    pub connects_per_agent_hour: f64,
    /// Dials compliance refused just before they went out.
    pub refused: u64,
    /// Talk share of the first hour of the first day's shift: a fresh
    /// campaign (empty ledger, estimators on the campaign's priors).
    pub first_hour_talk_share: f64,
    /// Talk share of the first hour of the shift on the days that follow
    /// a day of dialling (mean): the same hour, warm.
    pub warm_first_hour_talk_share: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Human,
    Machine,
    Busy,
    NoAnswer,
    Failure,
}

/// One attempt's fate, drawn when the lead enters the hopper.
#[derive(Debug, Clone, Copy)]
struct Draw {
    kind: Kind,
    ring_ms: u64,
    talk_ms: u64,
    wrap_ms: u64,
    patience_ms: u64,
    convert: bool,
    /// How long the provider's answering-machine detection listens after
    /// the answer (0 without detection).
    amd_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    ShiftStart,
    StopDialling,
    ShiftEnd,
    Login(AgentId),
    BreakStart(AgentId),
    BreakEnd(AgentId),
    Answer(CallId),
    /// The provider's answering-machine verdict reaches the dialler.
    Detected(CallId),
    Fail(CallId, Kind),
    End(CallId),
    Patience(CallId),
    WrapDone(AgentId),
    Timeout,
}

#[derive(Debug, Clone, Copy)]
struct SimCall {
    draw: Draw,
    bridged: bool,
    ended: bool,
    /// The person hung up while detection still listened.
    gone: bool,
    /// The agent it was bridged to.
    agent: Option<AgentId>,
}

/// A lead handed out and not finished: its zone and past attempts.
#[derive(Debug, Clone)]
struct SimLead {
    zone: chrono_tz::Tz,
    past: Vec<PastAttempt>,
}

impl SimLead {
    /// Makes `rec` this lead (`id`) as compliance reads it at `at`.
    fn fill(&self, rec: &mut LeadRecord, country: Country, id: LeadId, at: Millis) {
        rec.number = sim_number(country, id);
        rec.zones.clear();
        rec.zones.push(self.zone);
        rec.attempts = self.past.len() as u32;
        rec.fill_history(self.past.iter().copied(), at);
    }
}

/// The simulated calendar: virtual time is milliseconds since `origin`,
/// the first day's midnight in the leads' home zone, so it runs in step
/// with UTC (delays, windows, the ledger) while shifts and hourly profiles
/// follow the home zone's clock, daylight saving included.
#[derive(Debug, Clone)]
struct SimCalendar {
    origin: Millis,
    home: chrono_tz::Tz,
    start: chrono::NaiveDate,
}

impl SimCalendar {
    fn new(sc: &Scenario, campaign: &Campaign) -> SimCalendar {
        let home = campaign.profile.home_zone();
        // Checked scenarios always have a valid start.
        let start = sc.start_date().unwrap_or(chrono::NaiveDate::MIN);
        let origin =
            crate::compliance::hours::local_to_utc(home, start.and_time(chrono::NaiveTime::MIN))
                .map_or(Millis::EPOCH, Millis::from_utc);
        SimCalendar {
            origin,
            home,
            start,
        }
    }

    /// The instant of virtual time `t`.
    fn utc(&self, t: u64) -> Millis {
        Millis(
            self.origin
                .ms()
                .saturating_add(i64::try_from(t).unwrap_or(i64::MAX)),
        )
    }

    /// The virtual time of instant `m` (0 before the start).
    fn at(&self, m: Millis) -> u64 {
        u64::try_from(m.ms().saturating_sub(self.origin.ms())).unwrap_or(0)
    }

    /// The local date in the home zone at virtual time `t`.
    fn local_date(&self, t: u64) -> chrono::NaiveDate {
        use chrono::TimeZone;
        self.home
            .from_utc_datetime(&self.utc(t).utc().naive_utc())
            .date_naive()
    }

    /// The virtual time of local time `at` on `date` in the home zone.
    fn local_time(&self, date: chrono::NaiveDate, at: chrono::NaiveTime) -> Option<u64> {
        crate::compliance::hours::local_to_utc(self.home, date.and_time(at))
            .map(|u| self.at(Millis::from_utc(u)))
    }

    /// The hour of day in the home zone at virtual time `t`.
    fn local_hour(&self, t: u64) -> usize {
        use chrono::TimeZone;
        self.home
            .from_utc_datetime(&self.utc(t).utc().naive_utc())
            .hour() as usize
    }

    /// The team's working window of day `day`: the shift within the
    /// campaign's hours that day in the home zone, if the day is open
    /// (not a holiday of the profile's calendar).
    fn window(&self, campaign: &Campaign, shift: DayWindow, day: u32) -> Option<(u64, u64)> {
        use chrono::Datelike;
        let date = self
            .start
            .checked_add_days(chrono::Days::new(u64::from(day)))?;
        let w = campaign.hours[crate::profile::day_index(date.weekday())]?;
        if crate::compliance::hours::calendar(campaign.profile)
            .is_some_and(|c| c.status(date).is_err())
        {
            return None;
        }
        let start = w.start.max(shift.start);
        let end = w.end.min(shift.end);
        if start >= end {
            return None;
        }
        let at = |t: chrono::NaiveTime| {
            crate::compliance::hours::local_to_utc(self.home, date.and_time(t))
                .map(|u| self.at(Millis::from_utc(u)))
        };
        Some((at(start)?, at(end)?))
    }
}

/// The number of lead `lead`: a made-up number of the campaign's country
/// (a mobile range; NANP numbers in an exchange of the home area code),
/// so registry look-ups and number checks run as they do live.
fn sim_number(country: Country, lead: LeadId) -> PhoneNumber {
    let digits = match country {
        Country::UnitedKingdom => 447_000_000_000 + lead % 1_000_000_000,
        Country::India => 919_000_000_000 + lead % 1_000_000_000,
        Country::UnitedStates => 12_122_000_000 + lead % 8_000_000,
        Country::Canada => 14_162_000_000 + lead % 8_000_000,
        Country::Australia => 61_400_000_000 + lead % 100_000_000,
    };
    PhoneNumber { digits, country }
}

/// A uniform draw in [0, 1) keyed by (seed, what, key): the lead mix
/// (zone, registry listing) depends on the lead alone, never on the
/// strategy.
fn keyed_unit(seed: u64, what: u64, key: u64) -> f64 {
    let mut z =
        seed ^ what.wrapping_mul(0xA076_1D64_78BD_642F) ^ key.wrapping_mul(0xE703_7ED1_A0B4_28DB);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Debug, Clone, Copy, Default)]
struct AgentClock {
    login_ms: u64,
    logged_in: bool,
    busy: bool,
    logout_pending: bool,
    /// On a break since then.
    paused_since: Option<u64>,
    /// A break starts once the call and wrap-up are over.
    pause_pending: bool,
    /// The break ended while it was still pending.
    break_over: bool,
}

/// Keys the random stream of one attempt.
fn attempt_rng(seed: u64, lead: LeadId, attempt: u32) -> Xoshiro256PlusPlus {
    // SplitMix-style mixing so neighbouring keys give unrelated streams.
    let mut z = seed
        ^ lead.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(attempt).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Xoshiro256PlusPlus::seed_from_u64(z ^ (z >> 31))
}

struct Dists {
    ring: LogNormal<f64>,
    talk: LogNormal<f64>,
    wrap: LogNormal<f64>,
    patience: LogNormal<f64>,
    amd: Option<LogNormal<f64>>,
}

fn lognormal(d: scenario::Dist) -> LogNormal<f64> {
    let (mu, sigma) = d.lognormal_params();
    // Parameters come from a checked scenario: finite, sigma >= 0.
    LogNormal::new(mu, sigma)
        .unwrap_or_else(|_| LogNormal::new(0.0, 0.0).unwrap_or_else(|_| unreachable!()))
}

fn draw(sc: &Scenario, dists: &Dists, seed: u64, lead: LeadId, attempt: u32, hour: usize) -> Draw {
    let mut rng = attempt_rng(seed, lead, attempt);
    let ms = |x: f64| (x * 1000.0).max(0.0) as u64;
    if !sc.records.is_empty() {
        // Replay: one recorded call, drawn by this attempt's stream.
        let r = sc.records[rng.random_range(0..sc.records.len())];
        let patience = r
            .patience_s
            .unwrap_or_else(|| dists.patience.sample(&mut rng));
        use scenario::RecordOutcome as R;
        return Draw {
            kind: match r.outcome {
                R::Human => Kind::Human,
                R::Machine => Kind::Machine,
                R::Busy => Kind::Busy,
                R::NoAnswer => Kind::NoAnswer,
                R::Failure => Kind::Failure,
            },
            ring_ms: ms(r.ring_s),
            talk_ms: ms(r.talk_s).max(5_000),
            wrap_ms: ms(r.wrap_s),
            patience_ms: ms(patience),
            convert: r.converted,
            amd_ms: dists.amd.map_or(0, |d| ms(d.sample(&mut rng))),
        };
    }
    let o = sc.outcomes_at(hour);
    let u: f64 = rng.random();
    let kind = if u < o.human {
        Kind::Human
    } else if u < o.human + o.machine {
        Kind::Machine
    } else if u < o.human + o.machine + o.busy {
        Kind::Busy
    } else if u < o.human + o.machine + o.busy + o.no_answer {
        Kind::NoAnswer
    } else {
        Kind::Failure
    };
    let factor = sc.handle_factor_at(hour);
    // Every attempt takes the same draws from its stream, but only a
    // person's answer needs the talk, wrap-up and patience times, and only
    // an answer the ring time: the exponentials of the rest (most of a
    // draw's cost) are skipped. Unused times are 0.
    let mut z = || -> f64 { rng.sample(StandardNormal) };
    let (ring, talk, wrap, patience) = (z(), z(), z(), z());
    let answered = matches!(kind, Kind::Human | Kind::Machine);
    let human = kind == Kind::Human;
    let lognormal_ms = |d: &LogNormal<f64>, z: f64, scale: f64, used: bool| {
        if used {
            ms(d.from_zscore(z) * scale)
        } else {
            0
        }
    };
    let convert = rng.random::<f64>() < sc.conversion;
    // Drawn last, and only with detection, so that scenarios without it
    // keep their streams.
    let amd_ms = match &dists.amd {
        Some(d) if answered => ms(d.sample(&mut rng)),
        _ => 0,
    };
    Draw {
        kind,
        ring_ms: lognormal_ms(&dists.ring, ring, 1.0, answered),
        talk_ms: lognormal_ms(&dists.talk, talk, factor, human).max(5_000),
        wrap_ms: lognormal_ms(&dists.wrap, wrap, factor, human),
        patience_ms: lognormal_ms(&dists.patience, patience, 1.0, human),
        convert,
        amd_ms,
    }
}

/// Runs one simulation.
pub fn run(cfg: &SimConfig) -> SimReport {
    Sim::new(cfg).run()
}

/// The runner's state at one moment of a traced run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// Virtual time, ms from the start of day 0.
    pub t_ms: u64,
    /// Calls out per active agent, as the pacer last set it.
    pub dial_level: f64,
    /// Agents ready.
    pub ready: u32,
    /// Agents talking.
    pub on_call: u32,
    /// Agents in wrap-up.
    pub wrap_up: u32,
    /// Calls ringing.
    pub ringing: u32,
    /// Answered calls waiting for an agent.
    pub waiting: u32,
    /// Abandonment rate over the compliance window, percent.
    pub window_rate_percent: f64,
}

/// Runs one simulation and samples the runner every `every_ms` while the
/// team is logged in (for the time-series plot). Sampling reads state
/// only: the report is the same as [`run`]'s.
pub fn run_traced(cfg: &SimConfig, every_ms: u64) -> (SimReport, Vec<Sample>) {
    let mut sim = Sim::new(cfg);
    sim.trace = Some(Trace {
        every_ms: every_ms.max(1),
        next_ms: 0,
        samples: Vec::new(),
    });
    let report = sim.run_loop();
    let samples = sim.trace.map(|t| t.samples).unwrap_or_default();
    (report, samples)
}

/// One finished call of a simulated run, in wall-clock time: what a live
/// service would have stored for it.
#[derive(Debug, Clone, PartialEq)]
pub struct PastCall {
    /// Dialled.
    pub started: Millis,
    /// A person answered.
    pub answered: Option<Millis>,
    /// Bridged to an agent.
    pub connected: Option<Millis>,
    /// The call ended.
    pub ended: Millis,
    /// How it ended.
    pub outcome: Outcome,
    /// Connected calls: when the agent finished wrap-up (the disposition).
    pub wrapped: Option<Millis>,
    /// Connected calls: whether it converted.
    pub converted: bool,
}

/// What a simulated run leaves behind: its finished calls and its
/// abandonment ledger (human answers and abandons), oldest first.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Finished calls, in the order they ended.
    pub calls: Vec<PastCall>,
    /// Ledger events: when, and whether an abandon (else a human answer).
    pub ledger: Vec<(Millis, bool)>,
}

/// Runs one simulation up to the wall-clock time `until` (events after it
/// are not played; calls still in flight then are left out) and returns
/// what it left: the history a store would hold. The demo starts from one.
pub fn run_until(cfg: &SimConfig, until: Millis) -> (SimReport, History) {
    let mut sim = Sim::new(cfg);
    sim.until = Some(sim.calendar.at(until));
    sim.history = Some(HistoryBuf::default());
    let report = sim.run_loop();
    let mut h = History::default();
    if let Some(buf) = sim.history.take() {
        h.calls = buf.calls;
    }
    // A wrap-up still going at `until` has no disposition yet.
    for c in &mut h.calls {
        if c.wrapped.is_some_and(|w| w > until) {
            c.wrapped = None;
        }
    }
    h.ledger = sim
        .ledger_events
        .iter()
        .map(|&(t, abandon)| (sim.calendar.utc(t), abandon))
        .collect();
    (report, h)
}

/// The calls of a run with [`run_until`]: those in flight, by call, and
/// those finished.
#[derive(Default)]
struct HistoryBuf {
    open: HashMap<CallId, PastCall>,
    calls: Vec<PastCall>,
}

struct Trace {
    every_ms: u64,
    next_ms: u64,
    samples: Vec<Sample>,
}

struct Sim<'a> {
    cfg: &'a SimConfig,
    dists: Dists,
    runner: Runner,
    heap: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    seq: u64,
    timeout_at: Option<u64>,
    calls: HashMap<CallId, SimCall>,
    handed_out: HashMap<LeadId, (u32, Draw)>,
    /// Leads handed out and not finished.
    leads: HashMap<LeadId, SimLead>,
    calendar: SimCalendar,
    /// The national registry (the scenario's listed numbers, inserted as
    /// their leads are handed out), reloaded every morning.
    registries: Registries,
    /// The leads' zones and their cumulative shares; empty: the home zone.
    zones: Vec<(chrono_tz::Tz, f64)>,
    /// The lead a dial's verdict reads, reused from dial to dial.
    record_buf: LeadRecord,
    retries: BinaryHeap<Reverse<(u64, LeadId)>>,
    next_lead: LeadId,
    agents: Vec<AgentClock>,
    oracle: bool,
    // Figures.
    attempts: u64,
    human_answers: u64,
    connects: u64,
    abandons: u64,
    conversions: u64,
    talk_ms: u64,
    wrap_ms: u64,
    logged_in_ms: u64,
    paused_ms: u64,
    ledger_events: Vec<(u64, bool)>,
    refused: u64,
    trace: Option<Trace>,
    /// Stop before the first event after this (virtual ms).
    until: Option<u64>,
    /// Per day: the first hour of the shift (virtual ms), if the team dials
    /// that day, and the talk time inside it.
    first_hours: Vec<Option<(u64, u64)>>,
    first_hour_talk: Vec<u64>,
    history: Option<HistoryBuf>,
}

impl<'a> Sim<'a> {
    fn new(cfg: &'a SimConfig) -> Sim<'a> {
        let sc = &cfg.scenario;
        // The same priors as a live campaign: the scenario's true figures
        // are for the customers, not for the pacer.
        let mut rc = RunnerConfig::from_campaign(&cfg.campaign);
        // Breaks follow the runner's word on when an agent pauses.
        rc.agent_records = !sc.breaks.is_empty();
        let calendar = SimCalendar::new(sc, &cfg.campaign);
        // The governor looks ahead to when the team next dials: the
        // campaign's hours within the shift, on the simulated calendar.
        if let (Some(w), Ok(shift)) = (rc.windows.as_mut(), sc.shift_window()) {
            for day in w.plan.iter_mut() {
                *day = day.and_then(|d| {
                    let start = d.start.max(shift.start);
                    let end = d.end.min(shift.end);
                    (start < end).then_some(DayWindow { start, end })
                });
            }
            w.zone = calendar.home;
            w.epoch_ms = calendar.origin.ms();
        }
        let country = cfg.campaign.country();
        let mut registries = Registries::default();
        registries.national.insert(
            country,
            std::sync::Arc::new(NationalRegistry::new(country, calendar.utc(0).utc())),
        );
        // Checked scenarios have valid zones.
        let mut zones = sc.lead_zones().unwrap_or_default();
        let mut acc = 0.0;
        for (_, w) in &mut zones {
            acc += *w;
            *w = acc;
        }
        let home = calendar.home;
        Sim {
            cfg,
            dists: Dists {
                ring: lognormal(sc.ring),
                talk: lognormal(sc.talk),
                wrap: lognormal(sc.wrap),
                patience: lognormal(sc.patience),
                amd: sc.amd.map(lognormal),
            },
            runner: Runner::new(rc, &cfg.strategy),
            heap: BinaryHeap::new(),
            seq: 0,
            timeout_at: None,
            calls: HashMap::default(),
            handed_out: HashMap::default(),
            leads: HashMap::default(),
            calendar,
            registries,
            zones,
            record_buf: LeadRecord::new(sim_number(country, 0), vec![home]),
            retries: BinaryHeap::new(),
            next_lead: 1,
            agents: vec![AgentClock::default(); sc.agents as usize],
            oracle: matches!(cfg.strategy, Strategy::Oracle),
            attempts: 0,
            human_answers: 0,
            connects: 0,
            abandons: 0,
            conversions: 0,
            talk_ms: 0,
            wrap_ms: 0,
            logged_in_ms: 0,
            paused_ms: 0,
            ledger_events: Vec::new(),
            refused: 0,
            trace: None,
            until: None,
            first_hours: Vec::new(),
            first_hour_talk: Vec::new(),
            history: None,
        }
    }

    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse((t, self.seq, ev)));
    }

    fn run(mut self) -> SimReport {
        self.run_loop()
    }

    fn sample(&mut self, now: u64) {
        let Some(trace) = &mut self.trace else {
            return;
        };
        while trace.next_ms <= now {
            let st = self.runner.status();
            let t = trace.next_ms;
            trace.next_ms += trace.every_ms;
            if st.ready + st.on_call + st.wrap_up + st.ringing + st.waiting == 0 {
                // Off shift: skip ahead to the next event.
                trace.next_ms = trace.next_ms.max(now - now % trace.every_ms);
                continue;
            }
            let rate = if st.window_human_answers == 0 {
                0.0
            } else {
                100.0 * st.window_abandons as f64 / st.window_human_answers as f64
            };
            trace.samples.push(Sample {
                t_ms: t,
                dial_level: st.dial_level,
                ready: st.ready,
                on_call: st.on_call,
                wrap_up: st.wrap_up,
                ringing: st.ringing,
                waiting: st.waiting,
                window_rate_percent: rate,
            });
        }
    }

    fn run_loop(&mut self) -> SimReport {
        let sc = &self.cfg.scenario;
        // Checked scenarios always have a valid shift.
        let shift = sc
            .shift_window()
            .unwrap_or(crate::profile::DayWindow::hm((9, 0), (17, 0)));
        let stop_early = self.cfg.campaign.ring_timeout.as_millis() as u64 + 2_000;
        for day in 0..sc.days {
            let window = self.calendar.window(&self.cfg.campaign, shift, day);
            self.first_hours
                .push(window.map(|(start, end)| (start, end.min(start + HOUR_MS))));
            self.first_hour_talk.push(0);
            if let Some((start, end)) = window {
                self.at(start, Ev::ShiftStart);
                self.at(end.saturating_sub(stop_early).max(start), Ev::StopDialling);
                self.at(end, Ev::ShiftEnd);
            }
        }
        while let Some(Reverse((now, _, ev))) = self.heap.pop() {
            if self.until.is_some_and(|u| now > u) {
                break;
            }
            self.sample(now);
            self.step(now, ev);
            self.drain(now);
        }
        self.report()
    }

    fn send(&mut self, now: u64, event: Event) {
        self.runner.handle_event(now, event);
    }

    fn step(&mut self, now: u64, ev: Ev) {
        match ev {
            Ev::ShiftStart => {
                // A fresh copy of the registry every morning, as a live
                // operator would load.
                let at = self.calendar.utc(now).utc();
                if let Some(r) = self
                    .registries
                    .national
                    .get_mut(&self.cfg.campaign.country())
                {
                    // The simulator's own registry: never shared, so not
                    // copied.
                    let r = std::sync::Arc::make_mut(r);
                    r.loaded_at = at;
                    r.blocked.compact_if_needed();
                }
                let n = self.agents.len() as u64;
                // Checked scenarios have a valid stagger.
                let stagger = self.cfg.scenario.stagger().unwrap_or_default().as_millis() as u64;
                for a in 0..self.agents.len() {
                    self.agents[a] = AgentClock::default();
                    let at = now + stagger * a as u64 / n.max(1);
                    if at == now {
                        self.step(now, Ev::Login(a as AgentId));
                    } else {
                        self.at(at, Ev::Login(a as AgentId));
                    }
                }
                self.schedule_breaks(now);
                self.send(now, Event::Dialling(true));
            }
            Ev::Login(a) => {
                let clock = &mut self.agents[a as usize];
                clock.login_ms = now;
                clock.logged_in = true;
                self.send(now, Event::AgentReady(a));
            }
            Ev::BreakStart(a) => {
                let clock = &mut self.agents[a as usize];
                if clock.logged_in && clock.paused_since.is_none() {
                    // The break starts when the runner pauses the agent
                    // (its state record): at once, after the call in hand,
                    // or once the calls out no longer count on the agent.
                    clock.pause_pending = true;
                    clock.break_over = false;
                    self.send(now, Event::AgentPause(a));
                }
            }
            Ev::BreakEnd(a) => {
                let clock = &mut self.agents[a as usize];
                if let Some(since) = clock.paused_since.take() {
                    self.paused_ms += now - since;
                    if clock.logged_in {
                        self.send(now, Event::AgentReady(a));
                    }
                } else if clock.pause_pending {
                    if clock.busy {
                        clock.break_over = true;
                    } else {
                        // Still waiting on the calls out: called off.
                        clock.pause_pending = false;
                        self.send(now, Event::AgentReady(a));
                    }
                }
            }
            Ev::StopDialling => self.send(now, Event::Dialling(false)),
            Ev::ShiftEnd => {
                for a in 0..self.agents.len() {
                    let clock = &mut self.agents[a];
                    if !clock.logged_in {
                        continue;
                    }
                    if let Some(since) = clock.paused_since.take() {
                        self.paused_ms += now - since;
                    }
                    clock.pause_pending = false;
                    if clock.busy {
                        clock.logout_pending = true;
                    } else {
                        clock.logged_in = false;
                        self.logged_in_ms += now - clock.login_ms;
                    }
                    self.send(now, Event::AgentLogout(a as AgentId));
                }
            }
            Ev::Answer(call) => {
                let Some(c) = self.calls.get_mut(&call) else {
                    return;
                };
                if c.ended {
                    return;
                }
                let human = c.draw.kind == Kind::Human;
                let patience = c.draw.patience_ms;
                let amd = c.draw.amd_ms;
                if human {
                    self.at(now + patience, Ev::Patience(call));
                }
                if amd == 0 {
                    self.send(now, Event::CallAnswered { call, human });
                } else {
                    // The provider listens before it reports the answer.
                    self.at(now + amd, Ev::Detected(call));
                }
            }
            Ev::Detected(call) => {
                let Some(c) = self.calls.get(&call) else {
                    return;
                };
                if c.ended {
                    return;
                }
                let human = c.draw.kind == Kind::Human;
                let gone = c.gone;
                self.send(now, Event::CallAnswered { call, human });
                // A person who hung up during detection answered and heard
                // no one: an abandon.
                if gone && let Some(c) = self.calls.get_mut(&call) {
                    c.ended = true;
                    self.send(now, Event::CallEnded { call });
                }
            }
            Ev::Fail(call, kind) => {
                if self.calls.get(&call).is_some_and(|c| !c.ended) {
                    let outcome = if kind == Kind::Busy {
                        Outcome::Busy
                    } else {
                        Outcome::Failure
                    };
                    self.send(now, Event::CallFailed { call, outcome });
                }
            }
            Ev::End(call) => {
                if let Some(c) = self.calls.get_mut(&call)
                    && !c.ended
                {
                    c.ended = true;
                    self.send(now, Event::CallEnded { call });
                }
            }
            Ev::Patience(call) => {
                if let Some(c) = self.calls.get_mut(&call)
                    && !c.ended
                    && !c.bridged
                {
                    if c.draw.amd_ms > c.draw.patience_ms {
                        // Still being listened to: the verdict comes first.
                        c.gone = true;
                    } else {
                        c.ended = true;
                        self.send(now, Event::CallEnded { call });
                    }
                }
            }
            Ev::WrapDone(agent) => {
                let clock = &mut self.agents[agent as usize];
                clock.busy = false;
                if clock.logout_pending {
                    clock.logout_pending = false;
                    clock.logged_in = false;
                    self.logged_in_ms += now - clock.login_ms;
                }
                let (pause, over) = (clock.pause_pending, clock.break_over);
                clock.pause_pending = false;
                if pause && !over {
                    clock.paused_since = Some(now);
                }
                self.send(now, Event::WrapUpDone { agent });
                if pause && over {
                    // The break was over before it could start.
                    self.send(now, Event::AgentReady(agent));
                }
            }
            Ev::Timeout => {
                if self.timeout_at == Some(now) {
                    self.timeout_at = None;
                }
                self.runner.handle_timeout(now);
            }
        }
    }

    /// Schedules the day's breaks from the shift's start at `now`:
    /// successive breaks take successive agents.
    fn schedule_breaks(&mut self, now: u64) {
        let n = self.agents.len();
        if n == 0 || self.cfg.scenario.breaks.is_empty() {
            return;
        }
        let date = self.calendar.local_date(now);
        let mut next_agent = 0usize;
        for b in &self.cfg.scenario.breaks {
            // Checked scenarios have valid breaks.
            let Ok((at, length)) = b.parsed() else {
                continue;
            };
            let Some(start) = self.calendar.local_time(date, at) else {
                continue;
            };
            if start < now {
                continue;
            }
            let end = start + length.as_millis() as u64;
            let takers = ((b.share * n as f64).ceil() as usize).min(n);
            for k in 0..takers {
                let a = ((next_agent + k) % n) as AgentId;
                self.at(start, Ev::BreakStart(a));
                self.at(end, Ev::BreakEnd(a));
            }
            next_agent = (next_agent + takers) % n;
        }
    }

    /// Carries out the runner's commands and keeps its timer scheduled.
    fn drain(&mut self, now: u64) {
        while let Some(cmd) = self.runner.poll_command() {
            match cmd {
                Command::Dial { call, lead } => self.dial(now, call, lead),
                Command::Cancel { call } | Command::Hangup { call } => {
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.ended = true;
                    }
                }
                Command::Bridge { call, agent } => {
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.bridged = true;
                        let d = c.draw;
                        c.agent = Some(agent);
                        self.agents[agent as usize].busy = true;
                        self.talk_ms += d.talk_ms;
                        self.wrap_ms += d.wrap_ms;
                        self.count_first_hour_talk(now, now + d.talk_ms);
                        if d.convert {
                            self.conversions += 1;
                        }
                        self.at(now + d.talk_ms, Ev::End(call));
                    }
                }
                Command::PlaySafeHarbour { call } => {
                    let message = policy::safe_harbour(&self.cfg.campaign).as_millis() as u64;
                    self.at(now + message, Ev::End(call))
                }
                Command::NeedLeads(n) => {
                    let leads = self.hand_out(now, n);
                    self.runner.handle_event(now, Event::Leads(leads));
                }
                Command::Record(r) => self.record(now, r),
            }
        }
        if let Some(t) = self.runner.poll_timeout()
            && self.timeout_at.is_none_or(|s| t < s)
        {
            let t = t.max(now);
            self.timeout_at = Some(t);
            self.at(t, Ev::Timeout);
        }
    }

    fn hand_out(&mut self, now: u64, n: u32) -> Vec<LeadInfo> {
        let hour = self.calendar.local_hour(now);
        let mut out = Vec::with_capacity(n as usize);
        while out.len() < n as usize {
            let lead = match self.retries.peek() {
                Some(&Reverse((due, lead))) if due <= now => {
                    self.retries.pop();
                    lead
                }
                _ => {
                    self.next_lead += 1;
                    let lead = self.next_lead - 1;
                    self.new_lead(lead);
                    lead
                }
            };
            let attempt = self.leads.get(&lead).map_or(0, |l| l.past.len() as u32) + 1;
            let d = draw(
                &self.cfg.scenario,
                &self.dists,
                self.cfg.seed,
                lead,
                attempt,
                hour,
            );
            self.handed_out.insert(lead, (attempt, d));
            let foresight = self.oracle.then_some(Foresight {
                human: d.kind == Kind::Human,
                ring_ms: d.ring_ms,
                handle_ms: d.talk_ms + d.wrap_ms,
            });
            out.push(LeadInfo {
                id: lead,
                foresight,
                owner: None,
            });
        }
        out
    }

    /// A lead enters the list: its zone, and its number on the registry
    /// when the scenario's draw lists it.
    fn new_lead(&mut self, lead: LeadId) {
        const ZONE: u64 = 1;
        const LISTED: u64 = 2;
        let seed = self.cfg.seed;
        let zone = if self.zones.is_empty() {
            self.calendar.home
        } else {
            let u = keyed_unit(seed, ZONE, lead);
            self.zones
                .iter()
                .find(|(_, upto)| u < *upto)
                .or(self.zones.last())
                .map_or(self.calendar.home, |(z, _)| *z)
        };
        let share = self.cfg.scenario.leads.dnd_share;
        if share > 0.0 {
            let country = self.cfg.campaign.country();
            let number = sim_number(country, lead);
            if keyed_unit(seed, LISTED, number.digits) < share
                && let Some(r) = self.registries.national.get_mut(&country)
            {
                std::sync::Arc::make_mut(r).blocked.insert(number.digits);
            }
        }
        self.leads.insert(
            lead,
            SimLead {
                zone,
                past: Vec::new(),
            },
        );
    }

    fn dial(&mut self, now: u64, call: CallId, lead: LeadId) {
        let Some((_, d)) = self.handed_out.remove(&lead) else {
            return;
        };
        let at = self.calendar.utc(now);
        let Some(l) = self.leads.get_mut(&lead) else {
            return;
        };
        // Just before the INVITE, the same verdict as live.
        let rec = &mut self.record_buf;
        l.fill(rec, self.cfg.campaign.country(), lead, at);
        let view = self.runner.dial_view(now);
        let verdict = policy::screen(rec, &self.cfg.campaign, &self.registries, &view, at.utc());
        if !verdict.allowed {
            self.refused += 1;
            self.runner.handle_event(now, Event::DialSkipped { call });
            match verdict.next_allowed_at {
                Some(t) => {
                    let due = self.calendar.at(Millis::from_utc(t)).max(now + 1);
                    self.retries.push(Reverse((due, lead)));
                }
                // Nothing time can clear: the lead is finished.
                None => {
                    self.leads.remove(&lead);
                }
            }
            return;
        }
        l.past.push(PastAttempt {
            started_at: at,
            ended_at: None,
            outcome: None,
        });
        self.attempts += 1;
        if let Some(h) = self.history.as_mut() {
            h.open.insert(
                call,
                PastCall {
                    started: at,
                    answered: None,
                    connected: None,
                    ended: at,
                    outcome: Outcome::Interrupted,
                    wrapped: None,
                    converted: false,
                },
            );
        }
        self.calls.insert(
            call,
            SimCall {
                draw: d,
                bridged: false,
                ended: false,
                gone: false,
                agent: None,
            },
        );
        match d.kind {
            // A late answer past the ring timeout never happens: the runner
            // has cancelled by then.
            Kind::Human | Kind::Machine => self.at(now + d.ring_ms, Ev::Answer(call)),
            Kind::Busy => self.at(now + BUSY_MS, Ev::Fail(call, Kind::Busy)),
            Kind::Failure => self.at(now + FAILURE_MS, Ev::Fail(call, Kind::Failure)),
            Kind::NoAnswer => {}
        }
    }

    fn record(&mut self, now: u64, r: Record) {
        match r {
            Record::HumanAnswer { call, .. } => {
                self.human_answers += 1;
                self.ledger_events.push((now, false));
                let at = self.calendar.utc(now);
                if let Some(c) = self.history.as_mut().and_then(|h| h.open.get_mut(&call)) {
                    c.answered = Some(at);
                }
            }
            Record::Connected { call, .. } => {
                self.connects += 1;
                let at = self.calendar.utc(now);
                if let Some(c) = self.history.as_mut().and_then(|h| h.open.get_mut(&call)) {
                    c.connected = Some(at);
                }
            }
            Record::AgentState { agent, status } => {
                // Breaks: the time paused is what the runner says it is.
                let Some(clock) = self.agents.get_mut(agent as usize) else {
                    return;
                };
                if status == crate::dialer::AgentStatus::Paused {
                    if clock.logged_in && clock.paused_since.is_none() {
                        clock.paused_since = Some(now);
                        clock.pause_pending = false;
                    }
                } else if let Some(since) = clock.paused_since.take() {
                    self.paused_ms += now - since;
                }
            }
            Record::Abandoned { .. } => {
                self.abandons += 1;
                self.ledger_events.push((now, true));
            }
            Record::AttemptEnded {
                call,
                lead,
                outcome,
            } => {
                let Some(c) = self.calls.remove(&call) else {
                    return;
                };
                if outcome == Outcome::Connected
                    && let Some(agent) = c.agent
                {
                    self.at(now + c.draw.wrap_ms, Ev::WrapDone(agent));
                }
                let at = self.calendar.utc(now);
                if let Some(h) = self.history.as_mut()
                    && let Some(mut past) = h.open.remove(&call)
                {
                    past.ended = at;
                    past.outcome = outcome;
                    if outcome == Outcome::Connected {
                        past.wrapped = Some(self.calendar.utc(now + c.draw.wrap_ms));
                        past.converted = c.draw.convert;
                    }
                    h.calls.push(past);
                }
                let Some(l) = self.leads.get_mut(&lead) else {
                    return;
                };
                if let Some(last) = l.past.last_mut() {
                    last.ended_at = Some(at);
                    last.outcome = Some(outcome);
                }
                let rec = &mut self.record_buf;
                l.fill(rec, self.cfg.campaign.country(), lead, at);
                match policy::after_attempt(&self.cfg.campaign, rec, outcome, at) {
                    NextAttempt::At(t) => {
                        let due = self.calendar.at(t);
                        self.retries.push(Reverse((due, lead)));
                    }
                    NextAttempt::Done => {
                        self.leads.remove(&lead);
                    }
                }
            }
        }
    }

    /// Adds the part of a talk from `from` to `to` that falls in a day's
    /// first hour of shift.
    fn count_first_hour_talk(&mut self, from: u64, to: u64) {
        for (w, talk) in self.first_hours.iter().zip(self.first_hour_talk.iter_mut()) {
            if let Some((start, end)) = *w
                && from < end
                && to > start
            {
                *talk += to.min(end) - from.max(start);
            }
        }
    }

    /// (fresh, warm) first-hour talk shares (see [`SimReport`]).
    fn first_hour_shares(&self) -> (f64, f64) {
        let agents = f64::from(self.cfg.scenario.agents.max(1));
        let share = |d: usize| {
            let (start, end) = self.first_hours[d]?;
            let len = end.saturating_sub(start).max(1) as f64;
            Some(self.first_hour_talk[d] as f64 / (agents * len))
        };
        let first = (0..self.first_hours.len()).find(|&d| self.first_hours[d].is_some());
        let fresh = first.and_then(share).unwrap_or(0.0);
        let warm: Vec<f64> = (1..self.first_hours.len())
            .filter(|&d| self.first_hours[d - 1].is_some())
            .filter_map(share)
            .collect();
        let warm = if warm.is_empty() {
            0.0
        } else {
            warm.iter().sum::<f64>() / warm.len() as f64
        };
        (fresh, warm)
    }

    /// The end of the run's virtual time: the midnight after its last day
    /// in the home zone (or where [`run_until`] stopped it). A window
    /// reaching past it was not seen whole.
    fn observed_until(&self) -> u64 {
        let end = self
            .calendar
            .start
            .checked_add_days(chrono::Days::new(u64::from(self.cfg.scenario.days)))
            .and_then(|d| self.calendar.local_time(d, chrono::NaiveTime::MIN))
            .unwrap_or(u64::MAX);
        self.until.map_or(end, |u| u.min(end))
    }

    fn report(&self) -> SimReport {
        let rate = |a: u64, h: u64| {
            if h == 0 {
                0.0
            } else {
                100.0 * a as f64 / h as f64
            }
        };
        // Logged in and not on a break.
        let logged = self.logged_in_ms.saturating_sub(self.paused_ms).max(1) as f64;
        let agent_hours = logged / HOUR_MS as f64;
        SimReport {
            strategy: self.cfg.strategy.to_string(),
            agents: self.cfg.scenario.agents,
            days: self.cfg.scenario.days,
            seed: self.cfg.seed,
            attempts: self.attempts,
            human_answers: self.human_answers,
            connects: self.connects,
            abandons: self.abandons,
            abandon_rate_percent: rate(self.abandons, self.human_answers),
            worst_window_percent: worst_window(
                &self.ledger_events,
                self.cfg.campaign.abandon_window.as_millis() as u64,
                self.observed_until(),
            ),
            limit_percent: self.cfg.campaign.abandon_limit_percent,
            talk_share: self.talk_ms as f64 / logged,
            occupancy: (self.talk_ms + self.wrap_ms) as f64 / logged,
            idle_s_per_agent_hour: (logged - (self.talk_ms + self.wrap_ms) as f64).max(0.0)
                / 1000.0
                / agent_hours,
            conversions: self.conversions,
            connects_per_agent_hour: self.connects as f64 / agent_hours,
            refused: self.refused,
            first_hour_talk_share: self.first_hour_shares().0,
            warm_first_hour_talk_share: self.first_hour_shares().1,
        }
    }
}

/// The worst abandonment rate (percent) of any window of `window_ms` that
/// ends by `until_ms` (the end of what was observed): every rolling window
/// a regulator could pick, the campaign silent before its first call, so
/// the windows of its first day (or first 30 days) count with what they
/// hold.
///
/// The events a window `[x, x + window_ms)` holds change only as its end
/// passes an event (the window ending at that event, all it reaches back
/// to) or its start passes one (the window starting just after it, all it
/// reaches forward to): the worst of those two kinds is the worst of all.
/// The second kind is the one a closed day shows: the window starting
/// after Saturday's last-but-few calls holds only those few, a closed
/// Sunday after them.
pub fn worst_window(events: &[(u64, bool)], window_ms: u64, until_ms: u64) -> f64 {
    let rate = |h: u64, a: u64| {
        if h == 0 {
            0.0
        } else {
            100.0 * a as f64 / h as f64
        }
    };
    let count = |(h, a): &mut (u64, u64), abandon: bool, add: bool| {
        let n = if abandon { a } else { h };
        if add {
            *n += 1;
        } else {
            *n -= 1;
        }
    };
    let mut worst: f64 = 0.0;
    // Windows ending at each instant with an event.
    let mut held = (0u64, 0u64);
    let mut lo = 0;
    for (i, &(t, abandon)) in events.iter().enumerate() {
        count(&mut held, abandon, true);
        while events[lo].0 + window_ms <= t {
            count(&mut held, events[lo].1, false);
            lo += 1;
        }
        let next_same = events.get(i + 1).is_some_and(|e| e.0 == t);
        if !next_same {
            worst = worst.max(rate(held.0, held.1));
        }
    }
    // Windows starting just after each instant with an event.
    let mut held = (0u64, 0u64);
    let (mut lo, mut hi) = (0, 0);
    for (i, &(t, _)) in events.iter().enumerate() {
        if events.get(i + 1).is_some_and(|e| e.0 == t) {
            continue;
        }
        let start = t + 1;
        if start.saturating_add(window_ms) > until_ms {
            break;
        }
        while hi < events.len() && events[hi].0 < start + window_ms {
            count(&mut held, events[hi].1, true);
            hi += 1;
        }
        while lo < hi && events[lo].0 < start {
            count(&mut held, events[lo].1, false);
            lo += 1;
        }
        worst = worst.max(rate(held.0, held.1));
    }
    worst
}

#[cfg(test)]
mod tests;

/// The strategies `--strategy all` compares, side by side.
pub const ALL_STRATEGIES: [&str; 7] = [
    "predictive",
    "progressive",
    "ratio:1.5",
    "ratio:2",
    "feedback",
    "threshold",
    "oracle",
];

/// Runs several simulations on all cores; reports come back in input order.
pub fn run_all(configs: &[SimConfig]) -> Vec<SimReport> {
    run_all_with(configs, &|| {})
}

/// [`run_all`], calling `done` as each run finishes (for a progress bar).
pub fn run_all_with(configs: &[SimConfig], done: &(dyn Fn() + Sync)) -> Vec<SimReport> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(configs.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<SimReport>>> =
        std::sync::Mutex::new(vec![None; configs.len()]);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(cfg) = configs.get(i) else {
                        break;
                    };
                    let report = run(cfg);
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(report);
                    }
                    done();
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

/// A fixed-width table of reports, one row per run.
pub fn table(reports: &[SimReport]) -> String {
    let mut out = format!(
        "{:<14} {:>9} {:>8} {:>8} {:>7} {:>7} {:>8} {:>6} {:>6} {:>8} {:>7} {:>8}\n",
        "strategy",
        "attempts",
        "humans",
        "connects",
        "aband",
        "rate%",
        "worst%",
        "talk",
        "occ",
        "idle/h",
        "conv",
        "conn/ah"
    );
    for r in reports {
        out.push_str(&format!(
            "{:<14} {:>9} {:>8} {:>8} {:>7} {:>7.2} {:>8.2} {:>6.3} {:>6.3} {:>8.0} {:>7} {:>8.2}\n",
            r.strategy,
            r.attempts,
            r.human_answers,
            r.connects,
            r.abandons,
            r.abandon_rate_percent,
            r.worst_window_percent,
            r.talk_share,
            r.occupancy,
            r.idle_s_per_agent_hour,
            r.conversions,
            r.connects_per_agent_hour
        ));
    }
    out
}

/// Writes reports as CSV.
pub fn write_csv(path: &std::path::Path, reports: &[SimReport]) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_path(path)?;
    for r in reports {
        w.serialize(r)?;
    }
    w.flush()?;
    Ok(())
}

/// Several seeds of one strategy, summed up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedSummary {
    /// Strategy.
    pub strategy: String,
    /// Runs (seeds).
    pub runs: usize,
    /// Worst compliance window over every run, percent.
    pub worst_window_max_percent: f64,
    /// Mean abandonment rate, percent.
    pub abandon_rate_mean_percent: f64,
    /// Mean talk share.
    pub talk_share_mean: f64,
    /// Lowest talk share of any run.
    pub talk_share_min: f64,
    /// Mean occupancy.
    pub occupancy_mean: f64,
    /// Mean connects per agent-hour.
    pub connects_per_agent_hour_mean: f64,
    /// The campaign's limit, percent.
    pub limit_percent: f64,
}

/// Sums up runs by strategy, in first-seen order.
pub fn summarise(reports: &[SimReport]) -> Vec<SeedSummary> {
    let mut order: Vec<&str> = Vec::new();
    for r in reports {
        if !order.contains(&r.strategy.as_str()) {
            order.push(&r.strategy);
        }
    }
    order
        .into_iter()
        .map(|name| {
            let runs: Vec<&SimReport> = reports.iter().filter(|r| r.strategy == name).collect();
            let n = runs.len() as f64;
            let mean = |f: fn(&SimReport) -> f64| runs.iter().map(|r| f(r)).sum::<f64>() / n;
            SeedSummary {
                strategy: name.to_string(),
                runs: runs.len(),
                worst_window_max_percent: runs
                    .iter()
                    .map(|r| r.worst_window_percent)
                    .fold(0.0, f64::max),
                abandon_rate_mean_percent: mean(|r| r.abandon_rate_percent),
                talk_share_mean: mean(|r| r.talk_share),
                talk_share_min: runs
                    .iter()
                    .map(|r| r.talk_share)
                    .fold(f64::INFINITY, f64::min),
                occupancy_mean: mean(|r| r.occupancy),
                connects_per_agent_hour_mean: mean(|r| r.connects_per_agent_hour),
                limit_percent: runs.first().map_or(0.0, |r| r.limit_percent),
            }
        })
        .collect()
}

/// A fixed-width table of seed summaries.
pub fn summary_table(rows: &[SeedSummary]) -> String {
    let mut out = format!(
        "{:<14} {:>5} {:>10} {:>10} {:>10} {:>9} {:>8} {:>9}\n",
        "strategy", "runs", "worst%max", "rate%mean", "talk mean", "talk min", "occ", "conn/ah"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<14} {:>5} {:>10.2} {:>10.2} {:>10.3} {:>9.3} {:>8.3} {:>9.2}\n",
            r.strategy,
            r.runs,
            r.worst_window_max_percent,
            r.abandon_rate_mean_percent,
            r.talk_share_mean,
            r.talk_share_min,
            r.occupancy_mean,
            r.connects_per_agent_hour_mean
        ));
    }
    out
}
