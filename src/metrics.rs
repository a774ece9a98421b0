//! Prometheus metrics: the live board's figures, and the latency
//! histograms that the service's code records as it goes.
//!
//! Owns the metric names and the text exposition; reads the
//! [`LiveBoard`](crate::live::LiveBoard) snapshot it is given and never
//! writes it. Board figures are rebuilt from the snapshot on every scrape,
//! so a campaign that stops publishing drops out instead of lingering; the
//! two histograms are process-wide and only ever grow.
//!
//! Why `prometheus-client`: it is the Prometheus project's own Rust client,
//! pulls in only `dtoa`, `itoa` and `parking_lot` beyond what we have, and
//! encodes into a `String` with no global recorder to install. The
//! `metrics` facade with its Prometheus exporter needs a process-wide
//! recorder (awkward for per-scrape gauges and for tests that start
//! several servers) and brings `metrics-util` with it.

use std::sync::LazyLock;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::live::{Board, CampaignLive};

/// The `Content-Type` of [`render`]'s output: OpenMetrics text, which
/// Prometheus reads natively.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Errors from rendering the exposition.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Formatting into the output failed.
    #[error("encoding metrics: {0}")]
    Encode(#[from] std::fmt::Error),
}

/// Label pairs of one series.
type Labels = Vec<(&'static str, String)>;
/// Label pairs of a store histogram series.
type OpLabels = Vec<(&'static str, &'static str)>;

/// Buckets for SIP responses (INVITE to first response): 1 ms to ~16 s.
fn sip_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 16.0,
    ])
}

/// Buckets for store operations: 100 µs to 5 s.
fn store_histogram() -> Histogram {
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
    ])
}

static SIP_RESPONSE: LazyLock<Histogram> = LazyLock::new(sip_histogram);

/// What the far ends report of the audio we send them (RTCP), by leg:
/// `customer` (the carrier's side) or `agent` (the agent's SIP phone).
type RtcpFamily = Family<OpLabels, Histogram, fn() -> Histogram>;

fn rtcp_loss_histogram() -> Histogram {
    Histogram::new([0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0])
}
fn rtcp_jitter_histogram() -> Histogram {
    Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32])
}
fn rtcp_rtt_histogram() -> Histogram {
    Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6])
}

static RTCP_LOSS: LazyLock<RtcpFamily> =
    LazyLock::new(|| Family::new_with_constructor(rtcp_loss_histogram as fn() -> Histogram));
static RTCP_JITTER: LazyLock<RtcpFamily> =
    LazyLock::new(|| Family::new_with_constructor(rtcp_jitter_histogram as fn() -> Histogram));
static RTCP_RTT: LazyLock<RtcpFamily> =
    LazyLock::new(|| Family::new_with_constructor(rtcp_rtt_histogram as fn() -> Histogram));

/// Records a far end's RTCP report on our audio on a `leg` (`customer`
/// or `agent`): the share lost since its last report, the jitter and the
/// round trip, seconds.
pub fn record_rtcp(leg: &'static str, loss: f64, jitter_s: f64, rtt_s: Option<f64>) {
    let labels = vec![("leg", leg)];
    if loss.is_finite() && (0.0..=1.0).contains(&loss) {
        RTCP_LOSS.get_or_create(&labels).observe(loss);
    }
    if jitter_s.is_finite() && jitter_s >= 0.0 {
        RTCP_JITTER.get_or_create(&labels).observe(jitter_s);
    }
    if let Some(r) = rtt_s.filter(|r| r.is_finite() && *r >= 0.0) {
        RTCP_RTT.get_or_create(&labels).observe(r);
    }
}

/// Store histograms by operation.
type StoreFamily = Family<OpLabels, Histogram, fn() -> Histogram>;

static STORE: LazyLock<StoreFamily> =
    LazyLock::new(|| Family::new_with_constructor(store_histogram as fn() -> Histogram));

/// Records how long a SIP request waited for its first response, seconds
/// (`dialler_sip_response_seconds`). Call it from the SIP layer whenever a
/// first response arrives; it takes no lock a caller could contend on
/// beyond an atomic add.
pub fn record_sip_response(seconds: f64) {
    if seconds.is_finite() && seconds >= 0.0 {
        SIP_RESPONSE.observe(seconds);
    }
}

/// Records how long a store operation `op` took, seconds
/// (`dialler_store_seconds{op="..."}`). `op` is a fixed name such as
/// `"start_attempt"`: a `&'static str` so that no caller can put lead data
/// into a label.
pub fn record_store(op: &'static str, seconds: f64) {
    if seconds.is_finite() && seconds >= 0.0 {
        STORE.get_or_create(&vec![("op", op)]).observe(seconds);
    }
}

static STORE_FAILURES: LazyLock<Family<OpLabels, Counter>> = LazyLock::new(Family::default);

static SIP_REGISTERED: LazyLock<Family<Labels, Gauge>> = LazyLock::new(Family::default);
static SIP_REGISTER_FAILURES: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);

/// Records a registration's new state for `registrar` (its address):
/// `dialler_sip_registered{registrar}` is 1 while registered, and
/// `dialler_sip_registration_failures_total{registrar}` counts failures.
pub fn record_registration(registrar: &str, state: &crate::sip::register::RegState) {
    use crate::sip::register::RegState;
    let labels = vec![("registrar", registrar.to_string())];
    let up = matches!(state, RegState::Registered { .. });
    SIP_REGISTERED.get_or_create(&labels).set(i64::from(up));
    if matches!(state, RegState::Failed { .. }) {
        SIP_REGISTER_FAILURES.get_or_create(&labels).inc();
    }
}

/// The registration moved from registrar `old` to `new` (DNS re-resolution):
/// the old label goes to 0, the new one takes `state`.
pub fn move_registration(old: &str, new: &str, state: &crate::sip::register::RegState) {
    SIP_REGISTERED
        .get_or_create(&vec![("registrar", old.to_string())])
        .set(0);
    let up = matches!(state, crate::sip::register::RegState::Registered { .. });
    SIP_REGISTERED
        .get_or_create(&vec![("registrar", new.to_string())])
        .set(i64::from(up));
}

static DND_RELOADS: LazyLock<Family<OpLabels, Counter>> = LazyLock::new(Family::default);

/// Counts a reload of the do-not-call data while the service runs
/// (`dialler_dnd_reloads_total{result="loaded"|"failed"}`): a failed one
/// keeps the data loaded before and is tried again.
pub fn record_dnd_reload(ok: bool) {
    let result = if ok { "loaded" } else { "failed" };
    DND_RELOADS.get_or_create(&vec![("result", result)]).inc();
}

/// Counts a failed try of store write `op`
/// (`dialler_store_write_failures_total{op="..."}`); the writer retries it.
pub fn record_store_failure(op: &'static str) {
    STORE_FAILURES.get_or_create(&vec![("op", op)]).inc();
}

/// The standard process metrics (`process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
/// `process_open_fds`, `process_start_time_seconds`), read from
/// `/proc/self` (Linux); left out where it cannot be read.
fn process_metrics(r: &mut Registry) {
    let ticks = 100.0; // USER_HZ: 100 on every Linux the dialler targets.
    let page = 4096.0;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    if let (Some(u), Some(s)) = (field(11), field(12)) {
        let cpu = Family::<
            Vec<(&'static str, &'static str)>,
            Counter<f64, std::sync::atomic::AtomicU64>,
        >::default();
        cpu.get_or_create(&vec![]).inc_by((u + s) / ticks);
        r.register(
            "process_cpu_seconds",
            "User and system CPU time spent, seconds",
            cpu,
        );
    }
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines().find_map(|l| {
            l.strip_prefix("btime ")
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
    });
    if let (Some(start), Some(boot)) = (field(19), boot) {
        let g = Family::<Vec<(&'static str, &'static str)>, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        g.get_or_create(&vec![]).set(boot + start / ticks);
        r.register(
            "process_start_time_seconds",
            "When the process started, Unix time",
            g,
        );
    }
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let mut m = statm.split_whitespace().map(|v| v.parse::<f64>().ok());
    if let (Some(Some(virt)), Some(Some(res))) = (m.next(), m.next()) {
        let rss = Family::<
            Vec<(&'static str, &'static str)>,
            Gauge<f64, std::sync::atomic::AtomicU64>,
        >::default();
        rss.get_or_create(&vec![]).set(res * page);
        r.register(
            "process_resident_memory_bytes",
            "Resident memory size, bytes",
            rss,
        );
        let vm = Family::<
            Vec<(&'static str, &'static str)>,
            Gauge<f64, std::sync::atomic::AtomicU64>,
        >::default();
        vm.get_or_create(&vec![]).set(virt * page);
        r.register(
            "process_virtual_memory_bytes",
            "Virtual memory size, bytes",
            vm,
        );
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let fds = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
        fds.get_or_create(&vec![])
            .set(i64::try_from(dir.count()).unwrap_or(i64::MAX));
        r.register("process_open_fds", "Open file descriptors", fds);
    }
}

fn campaign(c: &CampaignLive) -> Labels {
    vec![("campaign", c.name.clone())]
}

fn with(c: &CampaignLive, key: &'static str, value: &str) -> Labels {
    vec![("campaign", c.name.clone()), (key, value.to_string())]
}

fn gauge_f64() -> Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>> {
    Family::default()
}

/// The OpenMetrics text exposition of `board` and the histograms.
///
/// Series, each labelled `campaign`: `dialler_calls_total{outcome}`,
/// `dialler_attempts_total`, `dialler_human_answers_total`,
/// `dialler_connects_total`, `dialler_abandons_total`,
/// `dialler_contacts_total`, `dialler_conversions_total`,
/// `dialler_opt_outs_total` (keys pressed during the abandoned-call
/// message),
/// `dialler_window_human_answers`, `dialler_window_abandons`,
/// `dialler_abandon_rate_percent` (in the compliance window),
/// `dialler_abandon_limit_percent`, `dialler_abandon_target_percent`,
/// `dialler_agents{state}`, `dialler_calls_in_flight{state}`,
/// `dialler_dial_level`, `dialler_calls_per_second`,
/// `dialler_live_updated_seconds` (when the figures were taken, Unix time)
/// and, for profiles with a holiday calendar,
/// `dialler_holiday_calendar_days_left`.
pub fn render(board: &Board) -> Result<String, MetricsError> {
    let mut r = Registry::default();

    let calls = Family::<Labels, Counter>::default();
    let attempts = Family::<Labels, Counter>::default();
    let human = Family::<Labels, Counter>::default();
    let connects = Family::<Labels, Counter>::default();
    let abandons = Family::<Labels, Counter>::default();
    let contacts = Family::<Labels, Counter>::default();
    let conversions = Family::<Labels, Counter>::default();
    let opt_outs = Family::<Labels, Counter>::default();
    let w_human = Family::<Labels, Gauge>::default();
    let w_abandons = Family::<Labels, Gauge>::default();
    let rate = gauge_f64();
    let limit = gauge_f64();
    let target = gauge_f64();
    let agents = Family::<Labels, Gauge>::default();
    let in_flight = Family::<Labels, Gauge>::default();
    let dial_level = gauge_f64();
    let cps = gauge_f64();
    let updated = gauge_f64();
    let calendar_left = Family::<Labels, Gauge>::default();
    let registry_left = gauge_f64();
    let run_state = Family::<Labels, Gauge>::default();
    let cap = gauge_f64();

    let sat = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for c in board.values() {
        let l = campaign(c);
        for (outcome, n) in &c.outcomes {
            calls.get_or_create(&with(c, "outcome", outcome)).inc_by(*n);
        }
        attempts.get_or_create(&l).inc_by(c.attempts);
        human.get_or_create(&l).inc_by(c.human_answers);
        connects.get_or_create(&l).inc_by(c.connects);
        abandons.get_or_create(&l).inc_by(c.abandons);
        contacts.get_or_create(&l).inc_by(c.contacts);
        conversions.get_or_create(&l).inc_by(c.conversions);
        opt_outs.get_or_create(&l).inc_by(c.opt_outs);
        w_human.get_or_create(&l).set(sat(c.window_human_answers));
        w_abandons.get_or_create(&l).set(sat(c.window_abandons));
        // Ratios 0-1, as Prometheus users expect (the API says percent).
        rate.get_or_create(&l).set(c.window_rate_percent / 100.0);
        limit.get_or_create(&l).set(c.limit_percent / 100.0);
        target.get_or_create(&l).set(c.target_percent / 100.0);
        for (state, n) in [
            ("ready", c.agents_ready),
            ("on_call", c.agents_on_call),
            // The API's names for the states.
            ("wrapup", c.agents_wrap_up),
            ("paused", c.agents_paused),
        ] {
            agents
                .get_or_create(&with(c, "state", state))
                .set(i64::from(n));
        }
        for (state, n) in [
            ("ringing", c.calls_ringing),
            ("waiting", c.calls_waiting),
            ("connected", c.agents_on_call),
        ] {
            in_flight
                .get_or_create(&with(c, "state", state))
                .set(i64::from(n));
        }
        dial_level.get_or_create(&l).set(c.dial_level);
        cap.get_or_create(&l).set(c.max_dial_level);
        for state in [
            crate::controls::RunState::Running,
            crate::controls::RunState::Paused,
            crate::controls::RunState::Stopped,
        ] {
            run_state
                .get_or_create(&with(c, "state", state.as_str()))
                .set(i64::from(c.run_state == state));
        }
        cps.get_or_create(&l).set(c.calls_per_second);
        updated.get_or_create(&l).set(c.at_ms as f64 / 1000.0);
        if let Some(days) = c.holiday_calendar_days_left {
            calendar_left.get_or_create(&l).set(days);
        }
        if let Some(days) = c.dnd_registry_days_left {
            registry_left.get_or_create(&l).set(days);
        }
    }
    r.register(
        "dialler_holiday_calendar_days_left",
        "Days until the profile's holiday calendar ends; after it every call is refused (alert at 180 or fewer)",
        calendar_left,
    );
    r.register(
        "dialler_dnd_registry_days_left",
        "Days until the campaign's national do-not-call registry is too old to dial against (its profile's maximum age); at 0 every call is refused: import a fresh one (0 too when none is loaded, or this node's copy is not the one last imported into the store)",
        registry_left,
    );

    r.register(
        "dialler_calls",
        "Ended dial attempts by outcome since the service started",
        calls,
    );
    r.register(
        "dialler_attempts",
        "Dial attempts since the service started",
        attempts,
    );
    r.register(
        "dialler_human_answers",
        "Calls answered by a person since the service started",
        human,
    );
    r.register(
        "dialler_connects",
        "Answered calls bridged to an agent since the service started",
        connects,
    );
    r.register(
        "dialler_abandons",
        "Answered calls with no agent to take them since the service started",
        abandons,
    );
    r.register(
        "dialler_contacts",
        "Dispositions counted as contacts since the service started",
        contacts,
    );
    r.register(
        "dialler_conversions",
        "Dispositions counted as conversions since the service started",
        conversions,
    );
    r.register(
        "dialler_opt_outs",
        "Called parties who pressed a key to opt out during the abandoned-call message since the service started",
        opt_outs,
    );
    r.register(
        "dialler_window_human_answers",
        "Human answers in the compliance window",
        w_human,
    );
    r.register(
        "dialler_window_abandons",
        "Abandons in the compliance window",
        w_abandons,
    );
    r.register(
        "dialler_abandon_rate_ratio",
        "Abandons per human answer in the compliance window, 0-1",
        rate,
    );
    r.register(
        "dialler_abandon_limit_ratio",
        "The campaign's abandonment limit, 0-1",
        limit,
    );
    r.register(
        "dialler_abandon_target_ratio",
        "The abandonment rate pacing aims at, 0-1",
        target,
    );
    r.register("dialler_agents", "Logged-in agents by state", agents);
    r.register(
        "dialler_calls_in_flight",
        "Customer calls up by state: ringing, answered and waiting for an agent, or connected to one",
        in_flight,
    );
    r.register(
        "dialler_dial_level",
        "Calls the pacer places per ready agent",
        dial_level,
    );
    r.register(
        "dialler_campaign_state",
        "1 for the campaign's run state (running, paused, stopped), 0 for the others",
        run_state,
    );
    r.register(
        "dialler_max_dial_level",
        "The dial-level cap in force: calls in flight per active agent",
        cap,
    );
    r.register(
        "dialler_calls_per_second",
        "Dial attempts per second over the last few seconds",
        cps,
    );
    r.register(
        "dialler_live_updated_timestamp_seconds",
        "When the campaign's live figures were taken, Unix time",
        updated,
    );
    let build = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
    build
        .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION"))])
        .set(1);
    r.register(
        "dialler_build_info",
        "The running build: 1, with its version as a label",
        build,
    );
    process_metrics(&mut r);
    r.register(
        "dialler_sip_response_seconds",
        "Time from sending a SIP request to its first response",
        SIP_RESPONSE.clone(),
    );
    r.register(
        "dialler_rtcp_fraction_lost",
        "Share of our audio lost, as the far end reports it in RTCP, by leg (customer, agent)",
        RTCP_LOSS.clone(),
    );
    r.register(
        "dialler_rtcp_jitter_seconds",
        "Interarrival jitter of our audio, as the far end reports it in RTCP, by leg",
        RTCP_JITTER.clone(),
    );
    r.register(
        "dialler_rtcp_rtt_seconds",
        "Round trip to the far end, from its RTCP reports on ours, by leg",
        RTCP_RTT.clone(),
    );
    r.register(
        "dialler_store_seconds",
        "Time a store operation took, by operation",
        STORE.clone(),
    );
    r.register(
        "dialler_store_write_failures",
        "Failed tries of store writes, by operation (each is retried)",
        STORE_FAILURES.clone(),
    );
    r.register(
        "dialler_dnd_reloads",
        "Reloads of the do-not-call data while running, by result (a failed one keeps the data loaded before)",
        DND_RELOADS.clone(),
    );
    r.register(
        "dialler_sip_registered",
        "1 while the trunk registration is current, by registrar",
        SIP_REGISTERED.clone(),
    );
    r.register(
        "dialler_sip_registration_failures",
        "Failed registrations (each is retried after a back-off), by registrar",
        SIP_REGISTER_FAILURES.clone(),
    );

    let mut out = String::new();
    encode(&mut out, &r)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_figures_and_histograms_are_exposed() {
        let mut board = Board::new();
        board.insert(
            "uk".into(),
            CampaignLive {
                name: "uk".into(),
                agents_ready: 3,
                window_rate_percent: 2.5,
                holiday_calendar_days_left: Some(120),
                dnd_registry_days_left: Some(12.5),
                outcomes: [("busy".to_string(), 7)].into(),
                ..CampaignLive::default()
            },
        );
        record_sip_response(0.02);
        record_store("unit_test_op", 0.003);
        let text = render(&board).expect("render");
        assert!(text.contains("dialler_agents{campaign=\"uk\",state=\"ready\"} 3\n"));
        assert!(text.contains("dialler_calls_total{campaign=\"uk\",outcome=\"busy\"} 7\n"));
        assert!(text.contains("dialler_abandon_rate_ratio{campaign=\"uk\"} 0.025\n"));
        assert!(text.contains("dialler_holiday_calendar_days_left{campaign=\"uk\"} 120\n"));
        assert!(text.contains("dialler_dnd_registry_days_left{campaign=\"uk\"} 12.5\n"));
        record_dnd_reload(false);
        let text = render(&board).expect("render");
        assert!(text.contains("dialler_dnd_reloads_total{result=\"failed\"}"));
        assert!(text.contains("# TYPE dialler_sip_response_seconds histogram"));
        assert!(text.contains("dialler_store_seconds_count{op=\"unit_test_op\"} 1\n"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut board = Board::new();
        let name = "a\"b\\c\nd".to_string();
        board.insert(
            name.clone(),
            CampaignLive {
                name,
                ..CampaignLive::default()
            },
        );
        let text = render(&board).expect("render");
        assert!(text.contains(r#"dialler_dial_level{campaign="a\"b\\c\nd"} 0"#));
    }
}
