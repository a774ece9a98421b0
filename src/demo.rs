//! `dialler demo`: the whole dialler on one machine with nothing to set up.
//!
//! Creates a fresh SQLite store (the demo file, recreated each run), imports
//! a sample campaign's leads and its country's sample DND registry, starts
//! the built-in sandbox provider and a sandbox of agent phones on loopback,
//! runs the live service ([`crate::service`]) and N simulated agents that
//! use its HTTP API, prints a status line every few seconds, and ends with
//! the campaign report.
//!
//! Calling hours are never weakened. When the sample campaign's window is
//! closed at the real time of day (in its leads' zone), the service runs on
//! a virtual clock ([`crate::clock::Clock::starting_at`]) set to the next
//! time it opens (plus an hour), and the first line says so.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::DateTime;
use rand::SeedableRng;
use rand_distr::{Distribution, LogNormal};

use crate::auth::{self, Role};
use crate::campaign::{self, Campaign};
use crate::clock::Clock;
use crate::compliance::hours::{self, Hours};
use crate::leads::{self, ImportOptions};
use crate::registry::{self, DndImport, Target};
use crate::service::{self, ServiceConfig, client};
use crate::sim::Scenario;
use crate::sip::sandbox::{self, SandboxConfig, Weights};
use crate::sip::sipp::{ProviderRates, SippProvider};
use crate::store::Store;

/// Errors of the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A file or socket.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The campaign or scenario file.
    #[error("{0}")]
    Campaign(#[from] campaign::CampaignError),
    /// The store.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    /// Anything else, said plainly.
    #[error("{0}")]
    Other(String),
}

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// How long the service dials.
    pub minutes: f64,
    /// Simulated agents.
    pub agents: u32,
    /// Campaign name (a file in `campaigns_dir`, leads in
    /// `campaigns_dir/leads/NAME.csv`).
    pub campaign: String,
    /// Folder of campaign files.
    pub campaigns_dir: PathBuf,
    /// Scenario for agent handle times, conversions and the sandbox's
    /// outcome mix.
    pub scenario: PathBuf,
    /// The demo's SQLite file (deleted and recreated).
    pub db: PathBuf,
    /// Seconds between status lines.
    pub status_every: f64,
    /// Seed of the agents' and the sandbox's draws.
    pub seed: u64,
    /// Who answers the customer calls.
    pub provider: DemoProvider,
    /// Run the service's clock from this instant (real durations) instead
    /// of now; calling hours are checked against it. `None`: now, or the
    /// next opening of the campaign's window when it is closed.
    pub at: Option<DateTime<chrono::Utc>>,
    /// Where the service's HTTP API, dashboard and agent desktop listen
    /// (port 0: any free port; the first lines print the address).
    pub http: std::net::SocketAddr,
}

/// The provider the demo dials through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoProvider {
    /// The built-in sandbox provider.
    Sandbox,
    /// SIPp (`sipp` on the PATH) running `sipp/provider.xml`; its files
    /// and message log go to the folder `DB.sipp` beside the demo store.
    Sipp,
}

impl std::str::FromStr for DemoProvider {
    type Err = DemoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sandbox" => Ok(DemoProvider::Sandbox),
            "sipp" => Ok(DemoProvider::Sipp),
            other => Err(DemoError::Other(format!(
                "unknown provider {other:?}: sandbox or sipp"
            ))),
        }
    }
}

/// What the demo measured.
#[derive(Debug, Clone)]
pub struct DemoResult {
    /// The campaign report, as text.
    pub report_text: String,
    /// Answer-to-bridge latency: bridges, p50, p99, max (ms).
    pub bridge_latency_ms: (usize, f64, f64, f64),
    /// Final live figures.
    pub live: crate::live::CampaignLive,
    /// SIPp's message log, with `--provider sipp`.
    pub provider_log: Option<PathBuf>,
    /// The highest dial level a status line showed in the first minute.
    pub first_minute_dial_level: f64,
    /// The line that says where the pacer starts from.
    pub history_line: String,
    /// The first lines printed: the agent desktop's address with a token
    /// for agent `you`, and the dashboard's with a supervisor token.
    pub desktop_lines: [String; 2],
}

fn other(e: impl std::fmt::Display) -> DemoError {
    DemoError::Other(e.to_string())
}

fn lognormal(mean: f64, sd: f64) -> LogNormal<f64> {
    let mean = mean.max(0.1);
    let s2 = (1.0 + (sd * sd) / (mean * mean)).ln();
    LogNormal::new(mean.ln() - s2 / 2.0, s2.sqrt()).unwrap_or_else(|_| {
        LogNormal::new(mean.ln(), 0.1).unwrap_or_else(|_| unreachable_lognormal())
    })
}

fn unreachable_lognormal() -> LogNormal<f64> {
    // ln(1) with a small spread is always valid.
    match LogNormal::new(0.0, 0.1) {
        Ok(d) => d,
        Err(_) => unreachable!("LogNormal(0, 0.1) is valid"),
    }
}

/// When the demo's clock starts: `now` when the campaign's calling window
/// is open for `zone`, otherwise an hour after it next opens. The same
/// when the window is open but the day is one before a closed day (the
/// next opening a whole abandonment window or more after today's close: a
/// UK Saturday, Sunday closed): a window starting then holds only the rest
/// of the day, so the governor dials the last hours one call per ready
/// agent and the demo would show no predictive dialling. With the start,
/// why it is not `now` (the words of the demo's clock line).
fn virtual_start(
    c: &Campaign,
    zone: chrono_tz::Tz,
    now: DateTime<chrono::Utc>,
) -> (DateTime<chrono::Utc>, Option<&'static str>) {
    let h = Hours {
        plan: &c.hours,
        calendar: hours::calendar(c.profile),
        holidays: &[],
    };
    let zones = [zone];
    let window = chrono::Duration::from_std(c.abandon_window).unwrap_or(chrono::Duration::MAX);
    let (from, why) = match h.window_end(&zones, now) {
        None => (now, "are closed now"),
        Some(end) => match h.next_open(&zones, end) {
            Some(next) if next - end >= window => (
                end,
                "close today before a closed day (their last hours are dialled one call per ready agent)",
            ),
            _ => return (now, None),
        },
    };
    match h.next_open(&zones, from) {
        Some(t) => (t + chrono::Duration::hours(1), Some(why)),
        None => (now, None),
    }
}

/// Runs the demo and prints its status lines and report to stdout.
pub async fn run(opts: DemoOptions) -> Result<DemoResult, DemoError> {
    let mut camp = campaign::find(&opts.campaigns_dir, &opts.campaign)?;
    // The demo's providers on loopback ask for no credentials: the trunk's
    // are not looked up (nor warned about).
    camp.provider.username_env = None;
    camp.provider.password_env = None;
    let scenario = Scenario::load(&opts.scenario)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = opts.db.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    let store = Store::open(&format!("sqlite://{}", opts.db.display())).await?;
    let zone = crate::timezone::infer(
        &crate::phone::PhoneNumber::from_e164(camp.profile.rules().sample().number)
            .map_err(other)?,
    )
    .first()
    .copied()
    .unwrap_or(chrono_tz::UTC);
    let real_now = chrono::Utc::now();
    let (start, moved) = match opts.at {
        Some(at) => (at, None),
        None => virtual_start(&camp, zone, real_now),
    };
    let clock = Clock::starting_at(start);
    let start_ms = clock.now().ms();
    let clock_line = if let Some(at) = opts.at {
        Some(format!(
            "the demo runs on a virtual clock from {at} (real durations)"
        ))
    } else if let Some(why) = moved {
        Some(format!(
            "calling hours of {} {why} in {}: the demo runs on a virtual clock at {} (real durations)",
            camp.name,
            zone.name(),
            crate::compliance::local_time(
                zone,
                DateTime::from_timestamp_millis(start_ms).unwrap_or_default()
            )
        ))
    } else {
        None
    };
    // The first lines: where a person takes calls in the browser beside
    // the simulated agents, and where to watch.
    let listener = tokio::net::TcpListener::bind(opts.http).await?;
    let web = listener.local_addr()?;
    let you = auth::create_token(
        &store,
        Role::Agent,
        Some("you"),
        Some("demo desktop"),
        start_ms,
    )
    .await
    .map_err(other)?;
    let watcher = auth::create_token(
        &store,
        Role::Supervisor,
        None,
        Some("demo dashboard"),
        start_ms,
    )
    .await
    .map_err(other)?;
    let desktop_lines = [
        format!(
            "agent desktop: http://{web}/agent?token={} (agent \"you\": log in with this browser as the phone and take calls beside the {} simulated agents)",
            you.token, opts.agents
        ),
        format!(
            "live dashboard: http://{web}/?token={} (supervisor)",
            watcher.token
        ),
    ];
    for line in &desktop_lines {
        println!("{line}");
    }
    let dnd_dir = opts.db.with_extension("dnd");
    let (campaign_id, imported, registries) =
        load_sample(&store, &camp, &opts.campaigns_dir, &dnd_dir, start_ms).await?;
    // Then where the pacer starts from.
    let history = seed_history(
        &store,
        &camp,
        &scenario,
        opts.agents,
        opts.seed,
        campaign_id,
        start_ms,
    )
    .await?;
    println!("{history}");
    if let Some(line) = clock_line {
        println!("{line}");
    }
    println!(
        "demo: {} leads of {} imported into {}, {} agents, {} min, {} provider on loopback",
        imported,
        camp.name,
        opts.db.display(),
        opts.agents,
        opts.minutes,
        match opts.provider {
            DemoProvider::Sandbox => "sandbox",
            DemoProvider::Sipp => "SIPp",
        }
    );

    // The provider: outcomes and ring times from the scenario. SIPp reports
    // answering machines in an `X-AMD` header of its 200 OK (the campaign's
    // `[provider] amd_header` must name it); the sandbox cannot, and dials
    // the scenario's machine share as no answer. Agents end their calls at the
    // scenario's talk time; the customer hanging up first is rare.
    let o = &scenario.outcomes;
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(4);
    let ring_lo = (scenario.ring.mean - scenario.ring.sd).max(0.5);
    let ring_hi = (scenario.ring.mean + scenario.ring.sd).max(ring_lo + 0.1);
    let customer_talk = Duration::from_secs_f64(scenario.talk.mean * 20.0);
    let (provider_addr, provider) = match opts.provider {
        DemoProvider::Sandbox => {
            let pcfg = SandboxConfig {
                weights: Weights {
                    answer: o.human,
                    busy: o.busy,
                    no_answer: o.no_answer + o.machine,
                    reject: 0.0,
                    unavailable: o.failure,
                },
                ring: (
                    Duration::from_secs_f64(ring_lo),
                    Duration::from_secs_f64(ring_hi),
                ),
                talk_mean: customer_talk,
                seed: opts.seed,
                ..SandboxConfig::default()
            };
            let (addr, task) = sandbox::spawn_loopback(pcfg, stop_tx.subscribe()).await?;
            (addr, Provider::Sandbox(task))
        }
        DemoProvider::Sipp => {
            // SIPp draws from rates, not weights: normalise.
            let total = (o.human + o.busy + o.no_answer + o.machine + o.failure).max(f64::EPSILON);
            let ms = |s: f64| (s * 1000.0).round() as u32;
            let rates = ProviderRates {
                busy: o.busy / total,
                no_answer: o.no_answer / total,
                machine: o.machine / total,
                reject: 0.0,
                unavailable: o.failure / total,
                ring_ms: (ms(ring_lo), ms(ring_hi)),
                talk_mean_ms: ms(customer_talk.as_secs_f64()),
            };
            let sipp = SippProvider::start(rates, &opts.db.with_extension("sipp"))
                .await
                .map_err(other)?;
            (sipp.addr(), Provider::Sipp(Box::new(sipp)))
        }
    };
    // Agent phones: always answer, hold until the dialler's BYE.
    let (phones_addr, phones) = sandbox::spawn_loopback(
        SandboxConfig::agent_phones(opts.seed + 1),
        stop_tx.subscribe(),
    )
    .await?;

    let mut cfg = ServiceConfig::new(store.clone(), vec![camp.clone()], registries);
    cfg.dnd_dir = Some(dnd_dir.clone());
    cfg.clock = clock.clone();
    cfg.provider = Some(provider_addr);
    cfg.sip_bind = "127.0.0.1:0".parse().map_err(other)?;
    cfg.grace = Duration::from_secs(60);
    cfg.node = "demo".into();
    let (svc_stop_tx, svc_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = service::start(cfg, listener, async move {
        let _ = svc_stop_rx.await;
    })
    .await
    .map_err(other)?;
    let http = running.http;
    let shared = running.shared.clone();

    // Agents.
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(opts.minutes * 60.0);
    let conv_codes: Vec<String> = camp
        .dispositions
        .iter()
        .filter(|d| d.conversion)
        .map(|d| d.code.clone())
        .collect();
    let other_codes: Vec<String> = camp
        .dispositions
        .iter()
        .filter(|d| !d.conversion && !d.dnc && !d.callback)
        .map(|d| d.code.clone())
        .collect();
    // The simulated agents' phones are provisioned through the API, as a
    // supervisor would.
    let provisioner = auth::create_token(
        &store,
        Role::Supervisor,
        None,
        Some("demo phones"),
        start_ms,
    )
    .await
    .map_err(other)?
    .token;
    let mut agent_tasks = Vec::new();
    for i in 0..opts.agents {
        let id = format!("agent{:02}", i + 1);
        let tok = auth::create_token(&store, Role::Agent, Some(&id), Some("demo"), start_ms)
            .await
            .map_err(other)?;
        let a = SimAgent {
            http,
            id,
            token: tok.token,
            campaign: camp.name.clone(),
            phone: format!("sip:{}@{}", i + 1, phones_addr),
            provision_with: Some(provisioner.clone()),
            talk: lognormal(scenario.talk.mean, scenario.talk.sd),
            wrap: lognormal(scenario.wrap.mean, scenario.wrap.sd),
            conversion: scenario.conversion,
            conv_codes: conv_codes.clone(),
            other_codes: other_codes.clone(),
            seed: opts.seed.wrapping_mul(1000) + u64::from(i),
            deadline,
            breaks: None,
        };
        agent_tasks.push(tokio::spawn(a.run()));
    }

    // Status lines until the end.
    let every = Duration::from_secs_f64(opts.status_every.max(0.5));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let started = tokio::time::Instant::now();
    let mut first_minute_dial_level: f64 = 0.0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let board = shared.board.snapshot();
                if let Some(l) = board.get(&camp.name) {
                    if started.elapsed() <= Duration::from_secs(60) {
                        first_minute_dial_level = first_minute_dial_level.max(l.dial_level);
                    }
                    println!("{}", status_line(started.elapsed(), l));
                }
            }
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    // Stop dialling first; agents take the calls still in flight, record
    // their dispositions and log out.
    let _ = svc_stop_tx.send(());
    for t in agent_tasks {
        let _ = t.await;
    }
    let summary = running.wait().await.map_err(other)?;
    let _ = stop_tx.send(());
    let provider_log = match provider {
        Provider::Sandbox(task) => {
            let _ = task.await;
            None
        }
        Provider::Sipp(sipp) => {
            let log = sipp.message_log().to_path_buf();
            sipp.stop().await;
            Some(log)
        }
    };
    let _ = phones.await;
    let live = shared
        .board
        .snapshot()
        .get(&camp.name)
        .cloned()
        .unwrap_or_default();
    println!("{}", status_line(started.elapsed(), &live));
    let end_ms = clock.now().ms() + 1;
    let report = crate::report::report(&store, &camp, campaign_id, start_ms, end_ms, end_ms)
        .await
        .map_err(other)?;
    let text = report.to_text();
    println!();
    println!("{text}");
    let (n, p50, p99, max) = summary.bridge_latency_ms;
    println!(
        "answer-to-bridge latency over {n} bridges: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
    );
    store.close().await;
    Ok(DemoResult {
        report_text: text,
        bridge_latency_ms: summary.bridge_latency_ms,
        live,
        provider_log,
        first_minute_dial_level,
        history_line: history,
        desktop_lines,
    })
}

/// Calls of the simulated history kept in the demo store for the pacer's
/// estimators (they read the last [`crate::pacing::estimate::HISTORY`]).
const HISTORY_CALLS: usize = 2_000;

/// Starts the demo store with the team's day so far: the previous day and
/// today up to `start_ms`, simulated by the same engine (the campaign, its
/// strategy, the scenario's customers and the demo's team size). The
/// ledger gets every human answer and abandon still in its window, the
/// store the last [`HISTORY_CALLS`] calls with their dispositions, so the
/// live pacer starts as a campaign that has been dialling does: with room
/// in its window and its estimators warm. Returns the line that says so.
async fn seed_history(
    store: &Store,
    camp: &Campaign,
    scenario: &Scenario,
    agents: u32,
    seed: u64,
    campaign_id: i64,
    start_ms: i64,
) -> Result<String, DemoError> {
    use crate::clock::Millis;
    use crate::store::{LedgerKind, PastAttemptRow, PastDispositionRow};
    let home = camp.profile.home_zone();
    let today = DateTime::from_timestamp_millis(start_ms)
        .unwrap_or_default()
        .with_timezone(&home)
        .date_naive();
    let Some(yesterday) = today.pred_opt() else {
        return Err(other("no day before the demo's start"));
    };
    let mut sc = scenario.clone();
    sc.agents = agents.max(1);
    sc.days = 2;
    sc.start = Some(yesterday.format("%Y-%m-%d").to_string());
    let cfg = crate::sim::SimConfig {
        campaign: camp.clone(),
        scenario: sc,
        strategy: camp.strategy.clone(),
        seed,
    };
    let until = Millis(start_ms);
    let (report, history) = tokio::task::spawn_blocking(move || crate::sim::run_until(&cfg, until))
        .await
        .map_err(other)?;
    let pick = |conversion: bool| {
        camp.dispositions
            .iter()
            .find(|d| d.conversion == conversion && !d.dnc && !d.callback)
    };
    let rows: Vec<PastAttemptRow> = history
        .calls
        .iter()
        .rev()
        .take(HISTORY_CALLS)
        .rev()
        .map(|c| PastAttemptRow {
            started_at: c.started.ms(),
            answered_at: c.answered.map(Millis::ms),
            connected_at: c.connected.map(Millis::ms),
            ended_at: c.ended.ms(),
            outcome: c.outcome,
            disposition: match (c.wrapped, pick(c.converted)) {
                (Some(w), Some(d)) => Some(PastDispositionRow {
                    agent_id: "simulated".into(),
                    code: d.code.clone(),
                    conversion: d.conversion,
                    contact: d.contact,
                    created_at: w.ms(),
                    wrapup_ms: w.ms() - c.ended.ms(),
                }),
                _ => None,
            },
        })
        .collect();
    let from = until.minus(camp.abandon_window);
    let ledger: Vec<(i64, LedgerKind)> = history
        .ledger
        .iter()
        .filter(|(t, _)| *t > from && *t <= until)
        .map(|&(t, abandon)| {
            let kind = if abandon {
                LedgerKind::Abandon
            } else {
                LedgerKind::HumanAnswer
            };
            (t.ms(), kind)
        })
        .collect();
    store.insert_history(campaign_id, &rows, &ledger).await?;
    let abandons = ledger
        .iter()
        .filter(|(_, k)| *k == LedgerKind::Abandon)
        .count();
    let answers = ledger.len() - abandons;
    Ok(format!(
        "demo: the store starts with the team's day so far ({} agents, {} from {yesterday} to the demo's start) simulated by the same engine: {} attempts, {answers} human answers and {abandons} abandons in the {} window, the last {} calls for the pacer's estimators",
        report.agents,
        camp.strategy,
        report.attempts,
        humantime::format_duration(camp.abandon_window),
        rows.len(),
    ))
}

/// Loads a sample campaign into `store` at `now_ms`: the campaign row, its
/// leads (`campaigns_dir/leads/NAME.csv`) and its country's sample national
/// DND registry (`campaigns_dir/dnd/`, saved into `dnd_dir`). Returns the
/// campaign id, the leads imported and the loaded registries.
pub async fn load_sample(
    store: &Store,
    camp: &Campaign,
    campaigns_dir: &Path,
    dnd_dir: &Path,
    now_ms: i64,
) -> Result<(i64, u64, crate::compliance::Registries), DemoError> {
    let leads_file = campaigns_dir
        .join("leads")
        .join(format!("{}.csv", camp.name));
    let campaign_id = store.upsert_campaign(camp, now_ms).await?;
    let (imported, _) = leads::import_file(
        store,
        campaign_id,
        camp.country(),
        &leads_file,
        &ImportOptions {
            phone_column: None,
            rejects: None,
            progress: false,
            screening: None,
            delimiter: None,
            encoding: None,
            list: None,
        },
        now_ms,
    )
    .await
    .map_err(other)?;
    let _ = std::fs::create_dir_all(dnd_dir);
    let sample = camp.profile.rules().sample();
    let format = sample.registry_format;
    let reg_path = campaigns_dir.join("dnd").join(sample.registry_file);
    registry::import(
        store,
        dnd_dir,
        &DndImport {
            target: Target::National(camp.country()),
            file: &reg_path,
            format,
            country: camp.country(),
            delta: false,
            loaded_at: DateTime::from_timestamp_millis(now_ms).unwrap_or_default(),
            now: DateTime::from_timestamp_millis(now_ms).unwrap_or_default(),
            actor: "demo".into(),
            force: false,
            max_drop_percent: registry::DEFAULT_MAX_DROP_PERCENT,
        },
    )
    .await
    .map_err(other)?;
    let registries = registry::load(store, dnd_dir, &[camp])
        .await
        .map_err(other)?;
    Ok((campaign_id, imported.imported, registries))
}

/// The running provider.
enum Provider {
    Sandbox(tokio::task::JoinHandle<Result<sandbox::SandboxStats, crate::sip::SipError>>),
    Sipp(Box<SippProvider>),
}

/// One status line from a campaign's live figures.
pub fn status_line(elapsed: Duration, l: &crate::live::CampaignLive) -> String {
    format!(
        "[{:>4}s] agents ready {} on call {} wrap-up {} paused {} | ringing {} waiting {} | dial level {:.2} | attempts {} answers {} connects {} | abandoned {} = {:.2}% (limit {:.1}%) | conversions {}",
        elapsed.as_secs(),
        l.agents_ready,
        l.agents_on_call,
        l.agents_wrap_up,
        l.agents_paused,
        l.calls_ringing,
        l.calls_waiting,
        l.dial_level,
        l.attempts,
        l.human_answers,
        l.connects,
        l.window_abandons,
        l.window_rate_percent,
        l.limit_percent,
        l.conversions,
    )
}

/// A simulated agent: logs in through the API, takes calls, talks and
/// wraps up for times drawn from the scenario, records dispositions.
pub struct SimAgent {
    /// The API.
    pub http: SocketAddr,
    /// Agent id.
    pub id: String,
    /// Its token.
    pub token: String,
    /// Campaign.
    pub campaign: String,
    /// Its phone's SIP URI.
    pub phone: String,
    /// Talk time, s.
    pub talk: LogNormal<f64>,
    /// Wrap-up time, s.
    pub wrap: LogNormal<f64>,
    /// Probability a call converts.
    pub conversion: f64,
    /// Codes that are conversions.
    pub conv_codes: Vec<String>,
    /// Other contact codes.
    pub other_codes: Vec<String>,
    /// Seed.
    pub seed: u64,
    /// When to log out.
    pub deadline: tokio::time::Instant,
    /// A supervisor token to provision the phone with before logging in
    /// (logins take provisioned phones only); `None` when it already is.
    pub provision_with: Option<String>,
    /// Short breaks between calls; `None`: none.
    pub breaks: Option<SimBreaks>,
}

/// When a simulated agent pauses: after a call, with a chance, for a drawn
/// time, then ready again.
#[derive(Debug, Clone)]
pub struct SimBreaks {
    /// The chance of a break after each call.
    pub chance: f64,
    /// Its length, s.
    pub length: LogNormal<f64>,
    /// The pause code it gives.
    pub reason: String,
}

impl SimAgent {
    async fn post(&self, path: &str, body: &str) -> (u16, String) {
        client::request(self.http, "POST", path, Some(&self.token), Some(body))
            .await
            .unwrap_or((0, String::new()))
    }

    /// Logs in and takes calls as the event stream brings them: talks
    /// for the drawn time (or until the customer hangs up), wraps up for
    /// the drawn time and records a disposition. After the deadline it
    /// finishes what it has and stays until the service logs it out (the
    /// demo stops the service at the deadline), or a minute more at most.
    /// Returns the calls handled.
    pub async fn run(self) -> u32 {
        use rand::RngExt;
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(self.seed);
        let id = self.id.clone();
        // The stream first, so that no call is missed.
        let mut events = match client::events(self.http, "/api/events", Some(&self.token)).await {
            Ok((200, rx)) => rx,
            Ok((code, _)) => {
                eprintln!("{id}: event stream refused: {code}");
                return 0;
            }
            Err(e) => {
                eprintln!("{id}: event stream failed: {e}");
                return 0;
            }
        };
        if let Some(sup) = &self.provision_with {
            let body = serde_json::json!({ "sip_uri": self.phone }).to_string();
            let path = format!("/api/agents/{id}/phones");
            match client::request(self.http, "POST", &path, Some(sup), Some(&body)).await {
                Ok((200, _)) => {}
                Ok((code, text)) => {
                    eprintln!("{id}: provisioning the phone failed: {code} {text}");
                    return 0;
                }
                Err(e) => {
                    eprintln!("{id}: provisioning the phone failed: {e}");
                    return 0;
                }
            }
        }
        let body =
            serde_json::json!({ "campaign": self.campaign, "sip_uri": self.phone }).to_string();
        let (code, text) = self.post(&format!("/api/agents/{id}/login"), &body).await;
        if code != 200 {
            eprintln!("{id}: login failed: {code} {text}");
            return 0;
        }
        self.post(&format!("/api/agents/{id}/ready"), "").await;
        let mut handled = 0;
        let hard_stop = self.deadline + Duration::from_secs(60);
        // The end of a break under way (a call already launched for the
        // agent may still come in it, and is taken).
        let mut back_at: Option<tokio::time::Instant> = None;
        loop {
            let ev = tokio::select! {
                ev = events.recv() => ev,
                () = tokio::time::sleep_until(back_at.unwrap_or(hard_stop)), if back_at.is_some() => {
                    back_at = None;
                    // Past the deadline the agent stays paused (it only
                    // finishes what it has).
                    if tokio::time::Instant::now() < self.deadline {
                        self.post(&format!("/api/agents/{id}/ready"), "").await;
                    }
                    continue;
                }
                () = tokio::time::sleep_until(hard_stop) => None,
            };
            let Some(ev) = ev else { break };
            let v: serde_json::Value = serde_json::from_str(&ev.data).unwrap_or_default();
            match ev.event.as_str() {
                "state" if v["data"]["state"] == "logged_out" => break,
                "call" => {
                    let call_id = v["data"]["call_id"].as_i64().unwrap_or(0);
                    let talk = Duration::from_secs_f64(self.talk.sample(&mut rng));
                    let ended = |ev: &client::SseEvent| {
                        ev.event == "call_ended"
                            && serde_json::from_str::<serde_json::Value>(&ev.data)
                                .is_ok_and(|v| v["data"]["call_id"].as_i64() == Some(call_id))
                    };
                    // Talk until the drawn time, or until the customer
                    // hangs up first.
                    let mut over = false;
                    let until = tokio::time::Instant::now() + talk;
                    while !over {
                        tokio::select! {
                            ev = events.recv() => match ev {
                                Some(ev) => over = ended(&ev),
                                None => return handled,
                            },
                            () = tokio::time::sleep_until(until) => break,
                        }
                    }
                    if !over {
                        self.post(&format!("/api/agents/{id}/hangup"), "").await;
                        let wait = tokio::time::Instant::now() + Duration::from_secs(10);
                        while !over {
                            tokio::select! {
                                ev = events.recv() => match ev {
                                    Some(ev) => over = ended(&ev),
                                    None => return handled,
                                },
                                () = tokio::time::sleep_until(wait) => break,
                            }
                        }
                    }
                    let wrap = self.wrap.sample(&mut rng);
                    tokio::time::sleep(Duration::from_secs_f64(wrap)).await;
                    let converted =
                        rng.random::<f64>() < self.conversion && !self.conv_codes.is_empty();
                    let body = if converted {
                        serde_json::json!({ "code": self.conv_codes[0], "amount": 120.0 })
                    } else {
                        let i = rng.random_range(0..self.other_codes.len().max(1));
                        serde_json::json!({ "code": self.other_codes.get(i).cloned().unwrap_or_default() })
                    };
                    let (c, t) = self
                        .post(
                            &format!("/api/calls/{call_id}/disposition"),
                            &body.to_string(),
                        )
                        .await;
                    // Status 0: no answer at all, as when the demo's end
                    // closed the service during this wrap-up; not worth a
                    // warning then.
                    if c == 0 && tokio::time::Instant::now() >= self.deadline {
                        tracing::debug!(agent = %id, "the service closed before the disposition");
                    } else if c != 200 {
                        tracing::warn!(agent = %id, status = c, "disposition refused: {t}");
                    }
                    handled += 1;
                    if let Some(b) = &self.breaks
                        && back_at.is_none()
                        && tokio::time::Instant::now() < self.deadline
                        && rng.random::<f64>() < b.chance
                    {
                        let body = serde_json::json!({ "reason": b.reason }).to_string();
                        let (c, _) = self.post(&format!("/api/agents/{id}/pause"), &body).await;
                        if c == 200 {
                            let secs = b.length.sample(&mut rng);
                            back_at =
                                Some(tokio::time::Instant::now() + Duration::from_secs_f64(secs));
                        }
                    }
                }
                _ => {}
            }
        }
        // Logged out by the service, or it is gone; say so anyway.
        self.post(&format!("/api/agents/{id}/logout"), "").await;
        handled
    }
}

/// The default demo scenario file.
pub fn default_scenario(campaigns_dir: &Path) -> PathBuf {
    campaigns_dir.join("scenarios").join("demo.toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<chrono::Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.to_utc())
            .unwrap_or_default()
    }

    /// The UK sample campaign: weekdays 09:00-20:00, Saturday 10:00-16:00,
    /// Sunday closed (London is on UTC in December).
    #[test]
    fn the_demo_starts_now_unless_closed_or_on_the_day_before_a_closed_day() {
        let c = Campaign::parse(
            include_str!("../campaigns/uk-broadband.toml"),
            std::path::Path::new("uk"),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let london = chrono_tz::Europe::London;
        let start = |t: &str| virtual_start(&c, london, utc(t)).0;
        // Open on a weekday (Friday too: Saturday opens 14 hours after it
        // closes).
        for t in [
            "2026-12-03T11:00:00Z",
            "2026-12-04T09:30:00Z",
            "2026-12-04T19:00:00Z",
        ] {
            assert_eq!(start(t), utc(t));
        }
        // Closed: an hour after the next opening.
        assert_eq!(start("2026-12-03T21:00:00Z"), utc("2026-12-04T10:00:00Z"));
        // Saturday, open: Monday's opening and an hour.
        for t in ["2026-12-05T10:30:00Z", "2026-12-05T15:30:00Z"] {
            assert_eq!(start(t), utc("2026-12-07T10:00:00Z"));
        }
        // The clock line says why.
        let why = |t: &str| virtual_start(&c, london, utc(t)).1;
        assert_eq!(why("2026-12-03T11:00:00Z"), None);
        assert_eq!(why("2026-12-03T21:00:00Z"), Some("are closed now"));
        assert!(why("2026-12-05T15:30:00Z").is_some_and(|w| w.contains("before a closed day")));
    }
}
