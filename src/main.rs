//! The `dialler` command line. Parsing only: every command calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use dialler::auth::{self, Role};
use dialler::campaign::{self, Campaign, CampaignError};
use dialler::compliance::dnd::Format;
use dialler::leads::{self, ImportOptions};
use dialler::pacing::Strategy;
use dialler::phone::Country;
use dialler::registry::{self, DndImport, Target};
use dialler::report;
use dialler::sim::{self, Scenario, SimConfig};
use dialler::store::{self, Store};

#[derive(Parser)]
#[command(name = "dialler", version, about = "Predictive outbound dialler")]
struct Cli {
    /// Database URL: sqlite://PATH (default: dialler.db here) or postgres://...
    #[arg(long, global = true, env = "DIALLER_DATABASE_URL", default_value = store::DEFAULT_URL)]
    db: String,
    /// Folder of campaign files.
    #[arg(
        long,
        global = true,
        env = "DIALLER_CAMPAIGNS",
        default_value = "campaigns"
    )]
    campaigns: PathBuf,
    /// Folder of saved national DND registries.
    #[arg(long, global = true, env = "DIALLER_DND_DIR", default_value = "dnd")]
    dnd_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Campaign files.
    #[command(subcommand)]
    Campaign(CampaignCmd),
    /// Lead lists.
    #[command(subcommand)]
    Leads(LeadsCmd),
    /// Do-not-call registries.
    #[command(subcommand)]
    Dnd(DndCmd),
    /// May this number be dialled now? Prints the compliance verdict.
    Check(CheckArgs),
    /// Simulate a campaign offline: same pacing code, virtual time, seeded customers.
    Simulate(SimulateArgs),
    /// SIP debugging: place one call, or drive a load run.
    #[command(subcommand)]
    Sip(SipCmd),
    /// Run the built-in sandbox SIP provider (UDP) until Ctrl-C.
    Sandbox(SandboxArgs),
    /// API tokens for agents, supervisors and admins.
    #[command(subcommand)]
    Token(TokenCmd),
    /// A campaign's figures over a time range.
    Report(ReportArgs),
    /// Run the live service: campaigns' runners, SIP, RTP, store and the
    /// HTTP API, until SIGINT or SIGTERM.
    Run(RunArgs),
    /// The whole dialler on this machine with no setup: sandbox provider,
    /// simulated agents over the API, a status line, then the report.
    Demo(DemoArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Campaigns to run (default: every campaign file).
    #[arg(long = "campaign", id = "campaign")]
    campaign_names: Vec<String>,
    /// HTTP API address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Local SIP address.
    #[arg(long, default_value = "0.0.0.0:5070")]
    sip_bind: std::net::SocketAddr,
    /// Send every call to this provider (IP:port) instead of the
    /// campaigns' provider URIs (for the sandbox or SIPp).
    #[arg(long)]
    provider: Option<std::net::SocketAddr>,
    /// This node's name; a restart under the same name recovers its calls.
    #[arg(long, env = "DIALLER_NODE", default_value = "local")]
    node: String,
    /// Seconds connected calls may go on after a shutdown signal.
    #[arg(long, default_value_t = 30.0)]
    grace: f64,
    /// Rehearsals and tests only: run the service's clock from this
    /// instant (RFC 3339) at real speed. Calling hours, retry times and the
    /// ledger all use it. Never set it on a live campaign.
    #[arg(long)]
    clock_start: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Args)]
struct DemoArgs {
    /// Minutes of dialling.
    #[arg(long, default_value_t = 2.0)]
    minutes: f64,
    /// Simulated agents.
    #[arg(long, default_value_t = 10)]
    agents: u32,
    /// Sample campaign (its leads: campaigns/leads/NAME.csv).
    #[arg(long, default_value = "uk-broadband")]
    campaign: String,
    /// sandbox (built in) or sipp (SIPp on the PATH, Debian sip-tester).
    #[arg(long, default_value = "sandbox")]
    provider: dialler::demo::DemoProvider,
    /// Start the service's clock at this instant (RFC 3339) instead of
    /// now; calling hours are checked against it.
    #[arg(long)]
    at: Option<chrono::DateTime<chrono::Utc>>,
    /// Scenario for agent times, conversions and the provider's outcomes.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// The demo's SQLite file, recreated each run.
    #[arg(long, default_value = "demo.db")]
    demo_db: PathBuf,
    /// Seconds between status lines.
    #[arg(long, default_value_t = 5.0)]
    status_every: f64,
    /// Seed of the draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Create a token and print it once (only its SHA-256 is stored).
    Create {
        /// agent, supervisor or admin.
        #[arg(long)]
        role: String,
        /// The agent an agent token belongs to (agent tokens only).
        #[arg(long)]
        agent: Option<String>,
        /// Whose or what the token is, for the token list.
        #[arg(long)]
        label: Option<String>,
        /// One JSON object with the token and its id.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id.
    Revoke {
        /// Token id, as printed by create or list.
        id: i64,
    },
    /// List tokens (never the secrets).
    List {
        /// One JSON document.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct ReportArgs {
    /// Campaign name.
    #[arg(long)]
    campaign: String,
    /// Start of the range (RFC 3339); default: all time.
    #[arg(long)]
    from: Option<String>,
    /// End of the range, excluded (RFC 3339); default: now.
    #[arg(long)]
    to: Option<String>,
    /// One JSON document.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// The summary, agent and hour tables as CSV, separated by blank lines.
    #[arg(long)]
    csv: bool,
}

#[derive(Args)]
struct SandboxArgs {
    /// Address to listen on for SIP.
    #[arg(long, default_value = "127.0.0.1:5060")]
    bind: std::net::SocketAddr,
    /// Weight of answered calls.
    #[arg(long, default_value_t = 0.6)]
    answer: f64,
    /// Weight of 486 Busy Here.
    #[arg(long, default_value_t = 0.15)]
    busy: f64,
    /// Weight of calls that ring until cancelled.
    #[arg(long, default_value_t = 0.15)]
    no_answer: f64,
    /// Weight of 603 Decline.
    #[arg(long, default_value_t = 0.05)]
    reject: f64,
    /// Weight of 503 Service Unavailable.
    #[arg(long, default_value_t = 0.05)]
    unavailable: f64,
    /// Shortest ring time, seconds.
    #[arg(long, default_value_t = 2.0)]
    ring_min: f64,
    /// Longest ring time, seconds.
    #[arg(long, default_value_t = 8.0)]
    ring_max: f64,
    /// Mean talk time in seconds before the callee hangs up; 0 holds until
    /// the caller's BYE (an agent phone).
    #[arg(long, default_value_t = 30.0)]
    talk_mean: f64,
    /// Seed of the outcome draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// RTP echo port (0: any free port).
    #[arg(long, default_value_t = 0)]
    rtp_port: u16,
}

#[derive(Subcommand)]
enum SipCmd {
    /// Place one call and print its outcome, timings and response codes.
    Call(SipCallArgs),
    /// Place many calls at a set rate and report outcomes and latencies.
    Load(SipLoadArgs),
}

#[derive(Args)]
struct SipCommon {
    /// sip:USER@IP[:PORT][;transport=tcp] (the provider; no DNS).
    uri: String,
    /// Ring timeout in seconds (at least 15).
    #[arg(long, default_value_t = 25.0)]
    ring_timeout: f64,
    /// Hang up answered calls after this many seconds.
    #[arg(long)]
    max_talk: Option<f64>,
    /// Digest username.
    #[arg(long)]
    user: Option<String>,
    /// Environment variable holding the digest password.
    #[arg(long, default_value = "DIALLER_SIP_PASSWORD")]
    password_env: String,
    /// Caller user part (caller ID).
    #[arg(long, default_value = "dialler")]
    from: String,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SipCallArgs {
    #[command(flatten)]
    common: SipCommon,
    /// Play the generated safe-harbour prompt (seconds) when answered, then hang up.
    #[arg(long)]
    play: Option<f64>,
}

#[derive(Args)]
struct SipLoadArgs {
    #[command(flatten)]
    common: SipCommon,
    /// Calls per second.
    #[arg(long)]
    cps: u32,
    /// Calls in all.
    #[arg(long)]
    calls: u64,
    /// Most calls in flight.
    #[arg(long, default_value_t = 5000)]
    max_channels: usize,
}

#[derive(Args)]
struct SimulateArgs {
    /// Campaign file (or the name of one in the campaigns folder).
    #[arg(long)]
    campaign: String,
    /// Scenario file (default: the built-in campaigns/scenarios/default.toml).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// predictive, progressive, ratio:R, feedback, threshold[:P], oracle, or all.
    #[arg(long, default_value = "predictive")]
    strategy: String,
    /// Agents (overrides the scenario).
    #[arg(long)]
    agents: Option<u32>,
    /// Days (overrides the scenario).
    #[arg(long)]
    days: Option<u32>,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run this many seeds (seed, seed+1, ...) and sum up per strategy.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
    /// Also write the rows as CSV.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Sweep one parameter: target=FROM..TO[:STEPS] (abandonment target,
    /// percent), ratio=FROM..TO[:STEPS] (R of `ratio` in --strategy), or
    /// agents=FROM..TO[:STEPS]. Runs every strategy at every point.
    #[arg(long)]
    sweep: Option<String>,
    /// SVG: with --sweep, the frontier of talk share against abandonment;
    /// without, the time series of the first run.
    #[arg(long)]
    plot: Option<PathBuf>,
}

#[derive(Subcommand)]
enum DndCmd {
    /// Import a registry file (full, or a delta with --delta).
    Import(DndImportArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RegistryArg {
    National,
    Internal,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Plain,
    Ncpr,
}

#[derive(Args)]
struct DndImportArgs {
    /// The registry file.
    file: PathBuf,
    /// national (a country's registry), internal (every campaign). With
    /// --campaign and no --registry: the campaign's own list.
    #[arg(long, value_enum)]
    registry: Option<RegistryArg>,
    /// Campaign: its own list, or the country of its national registry.
    #[arg(long)]
    campaign: Option<String>,
    /// Country for numbers in national form (IN, US, CA, GB, AU); defaults
    /// to the campaign's.
    #[arg(long)]
    country: Option<String>,
    /// plain: one number a line; ncpr: number,preference[,days][,band][,A|D].
    #[arg(long, value_enum, default_value = "plain")]
    format: FormatArg,
    /// The file is a delta: adds, changes and removals (plain: a leading -).
    #[arg(long)]
    delta: bool,
    /// When the data was downloaded from the regulator (RFC 3339); default now.
    #[arg(long)]
    loaded_at: Option<String>,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct CheckArgs {
    /// The number, in any common format.
    phone: String,
    /// Campaign name.
    #[arg(long)]
    campaign: String,
    /// Check at this time (RFC 3339) instead of now.
    #[arg(long)]
    at: Option<String>,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum CampaignCmd {
    /// Check campaign files and report every error with file, line and field.
    Validate {
        /// Campaign files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the campaigns in the campaigns folder and their leads.
    List {
        /// One JSON document.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum LeadsCmd {
    /// Import a CSV lead list into a campaign.
    Import(ImportArgs),
    /// Count a campaign's leads by status.
    Stats {
        /// Campaign name.
        #[arg(long)]
        campaign: String,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Erase a person by phone number from every campaign (their number
    /// stays on the internal do-not-call list only).
    Erase {
        /// The number: E.164 (+...), or national format with --country.
        phone: String,
        /// Country of a national-format number (IN, US, CA, GB, AU).
        #[arg(long)]
        country: Option<String>,
        /// One JSON object with the counts.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct ImportArgs {
    /// Campaign name.
    #[arg(long)]
    campaign: String,
    /// The CSV file (header row first).
    file: PathBuf,
    /// Name of the phone column (found by name when absent).
    #[arg(long)]
    phone_column: Option<String>,
    /// Write refused rows, with line and reason, to this CSV.
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DIALLER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Campaign(CampaignCmd::Validate { files }) => {
            let mut failed = false;
            for f in &files {
                match Campaign::load(f) {
                    Ok(c) => println!(
                        "{}: ok ({}, profile {}, {})",
                        f.display(),
                        c.name,
                        c.profile,
                        c.strategy
                    ),
                    Err(CampaignError::Invalid { errors, .. }) => {
                        failed = true;
                        for e in errors {
                            println!("{e}");
                        }
                    }
                    Err(e) => {
                        failed = true;
                        println!("{e}");
                    }
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Campaign(CampaignCmd::List { json }) => {
            let campaign::Loaded {
                campaigns: ok,
                invalid: bad,
            } = campaign::load_dir(&cli.campaigns)?;
            let store = Store::open(&cli.db).await?;
            let mut rows = Vec::new();
            for (path, c) in &ok {
                let leads = match store.campaign_id(&c.name).await? {
                    Some(id) => store
                        .lead_status_counts(id)
                        .await?
                        .iter()
                        .map(|(_, n)| n)
                        .sum(),
                    None => 0,
                };
                rows.push(serde_json::json!({
                    "name": c.name,
                    "profile": c.profile,
                    "strategy": c.strategy.to_string(),
                    "file": path.display().to_string(),
                    "leads": leads,
                }));
            }
            if json {
                let invalid: Vec<String> = bad.iter().map(ToString::to_string).collect();
                println!(
                    "{}",
                    serde_json::json!({ "campaigns": rows, "invalid": invalid })
                );
            } else {
                println!(
                    "{:<28} {:<7} {:<14} {:>9}  FILE",
                    "NAME", "PROFILE", "STRATEGY", "LEADS"
                );
                for r in &rows {
                    println!(
                        "{:<28} {:<7} {:<14} {:>9}  {}",
                        r["name"].as_str().unwrap_or_default(),
                        r["profile"].as_str().unwrap_or_default(),
                        r["strategy"].as_str().unwrap_or_default(),
                        r["leads"].as_i64().unwrap_or_default(),
                        r["file"].as_str().unwrap_or_default()
                    );
                }
                for e in &bad {
                    eprintln!("skipped: {e}");
                }
            }
            store.close().await;
            Ok(if bad.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Leads(LeadsCmd::Import(a)) => {
            let c = campaign::find(&cli.campaigns, &a.campaign)?;
            let store = Store::open(&cli.db).await?;
            let now = store::millis(chrono::Utc::now());
            let id = store.upsert_campaign(&c, now).await?;
            let opts = ImportOptions {
                phone_column: a.phone_column,
                rejects: a.rejects.clone(),
                progress: !a.json,
            };
            let (report, rejects) =
                leads::import_file(&store, id, c.country(), &a.file, &opts, now)
                    .await
                    .with_context(|| format!("importing {}", a.file.display()))?;
            store.close().await;
            if a.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "{}: {} rows, {} imported, {} duplicates, {} rejected, {} with unknown time zone (not dialled until fixed)",
                    a.file.display(),
                    report.rows,
                    report.imported,
                    report.duplicates,
                    report.rejected,
                    report.tz_unknown
                );
                for r in rejects.iter().take(10) {
                    eprintln!("{}:{}: {}: {}", a.file.display(), r.line, r.field, r.reason);
                }
                if report.rejected > 10 {
                    match &a.rejects {
                        Some(p) => {
                            eprintln!("... all {} rejects are in {}", report.rejected, p.display())
                        }
                        None => eprintln!(
                            "... {} more; write them all with --rejects PATH",
                            report.rejected - 10
                        ),
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Dnd(DndCmd::Import(a)) => {
            let campaign = match &a.campaign {
                Some(name) => Some(campaign::find(&cli.campaigns, name)?),
                None => None,
            };
            let country = match (&a.country, &campaign) {
                (Some(cc), _) => Country::from_iso(&cc.to_ascii_uppercase())
                    .with_context(|| format!("--country {cc}: use IN, US, CA, GB or AU"))?,
                (None, Some(c)) => c.country(),
                (None, None) => anyhow::bail!(
                    "give --country or --campaign: numbers in national form need a country"
                ),
            };
            let target = match (a.registry, &campaign) {
                (Some(RegistryArg::National), _) => Target::National(country),
                (Some(RegistryArg::Internal), _) => Target::Internal,
                (None, Some(c)) => Target::Campaign(c.name.clone()),
                (None, None) => Target::National(country),
            };
            let loaded_at = parse_time(a.loaded_at.as_deref())?;
            let format = match a.format {
                FormatArg::Plain => Format::Plain,
                FormatArg::Ncpr => Format::Ncpr,
            };
            let store = Store::open(&cli.db).await?;
            let req = DndImport {
                target: target.clone(),
                file: &a.file,
                format,
                country,
                delta: a.delta,
                loaded_at,
            };
            let (report, bad) = registry::import(&store, &cli.dnd_dir, &req).await?;
            store.close().await;
            for b in bad.iter().take(20) {
                eprintln!("{}:{}: {}", a.file.display(), b.line, b.reason);
            }
            if bad.len() > 20 {
                eprintln!("... {} more refused lines", bad.len() - 20);
            }
            if a.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "{} -> {target}: {} entries, {} added, {} removed, {} refused; {} numbers listed",
                    a.file.display(),
                    report.entries,
                    report.added,
                    report.removed,
                    report.rejected,
                    report.total
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(a) => {
            let c = campaign::find(&cli.campaigns, &a.campaign)?;
            let now = parse_time(a.at.as_deref())?;
            let store = Store::open(&cli.db).await?;
            let report = registry::check_number(&store, &cli.dnd_dir, &c, &a.phone, now).await?;
            store.close().await;
            if a.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "{}: {}",
                    dialler::phone::mask(&a.phone),
                    if report.allowed { "allowed" } else { "refused" }
                );
                for r in &report.reasons {
                    println!("  {}: {}", r.code(), r.explain());
                }
                println!(
                    "  time zone: {}",
                    if report.timezone.is_empty() {
                        "unknown".into()
                    } else {
                        report.timezone.join(", ")
                    }
                );
                if let Some(t) = &report.local_time {
                    println!("  local time: {t}");
                }
                match report.next_allowed_at {
                    Some(t) if !report.allowed => println!("  next allowed: {}", t.to_rfc3339()),
                    None => println!("  next allowed: never, until the data is fixed"),
                    _ => {}
                }
            }
            Ok(if report.allowed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            })
        }
        Command::Simulate(a) => {
            let path = PathBuf::from(&a.campaign);
            let campaign = if path.exists() {
                Campaign::load(&path)?
            } else {
                campaign::find(&cli.campaigns, &a.campaign)?
            };
            let mut scenario = match &a.scenario {
                Some(p) => Scenario::load(p)?,
                None => Scenario::default(),
            };
            if let Some(n) = a.agents {
                scenario.agents = n;
            }
            if let Some(d) = a.days {
                scenario.days = d;
            }
            if let Err((field, message)) = scenario.check() {
                anyhow::bail!("scenario {field}: {message}");
            }
            let names: Vec<&str> = if a.strategy == "all" {
                sim::ALL_STRATEGIES.to_vec()
            } else {
                a.strategy.split(',').collect()
            };
            let seeds = a.seed..a.seed + a.seeds.max(1);
            if let Some(spec) = &a.sweep {
                let sweep: sim::sweep::Sweep = spec.parse()?;
                let base = SimConfig {
                    campaign: campaign.clone(),
                    scenario: scenario.clone(),
                    strategy: Strategy::Predictive,
                    seed: a.seed,
                };
                let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
                let points = sweep
                    .points(&base, &names, seeds)
                    .map_err(|e| anyhow::anyhow!(e))?;
                let configs: Vec<SimConfig> = points.iter().map(|p| p.config.clone()).collect();
                let bar = progress_bar(configs.len() as u64, "runs");
                let reports = sim::run_all_with(&configs, &|| bar.inc(1));
                bar.finish_and_clear();
                let rows = sim::sweep::rows(&points, &reports);
                if let Some(p) = &a.csv {
                    sim::write_csv(p, &reports)
                        .with_context(|| format!("writing {}", p.display()))?;
                }
                if let Some(p) = &a.plot {
                    let title = format!(
                        "{} on {}: {} agents, {} days, {} seed(s)",
                        campaign.name,
                        scenario.name,
                        scenario.agents,
                        scenario.days,
                        a.seeds.max(1)
                    );
                    sim::plot::frontier(p, &title, &rows, campaign.abandon_limit_percent)?;
                }
                let best = sim::sweep::best_ratio(&rows);
                if a.json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({
                            "campaign": campaign.name,
                            "scenario": scenario.name,
                            "agents": scenario.agents,
                            "days": scenario.days,
                            "sweep": sweep,
                            "rows": rows,
                            "best_ratio": best,
                        }))?
                    );
                } else {
                    print!("{}", sim::sweep::table(sweep.param, &rows));
                    if let Some(b) = best {
                        println!(
                            "best fixed ratio within the limit: {} (talk {:.3}, worst window {:.2}%)",
                            b.summary.strategy,
                            b.summary.talk_share_mean,
                            b.summary.worst_window_max_percent
                        );
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            let mut configs = Vec::new();
            for name in names {
                let strategy =
                    Strategy::parse(name).map_err(|e| anyhow::anyhow!("--strategy {name}: {e}"))?;
                for seed in seeds.clone() {
                    configs.push(SimConfig {
                        campaign: campaign.clone(),
                        scenario: scenario.clone(),
                        strategy: strategy.clone(),
                        seed,
                    });
                }
            }
            let bar = progress_bar(configs.len() as u64, "runs");
            let reports = sim::run_all_with(&configs, &|| bar.inc(1));
            bar.finish_and_clear();
            if let (Some(p), Some(first)) = (&a.plot, configs.first()) {
                // Traced again on its own: sampling once a minute.
                let (_, samples) = sim::run_traced(first, 60_000);
                let title = format!(
                    "{} on {}: {}, {} agents, seed {}",
                    campaign.name, scenario.name, first.strategy, scenario.agents, first.seed
                );
                sim::plot::time_series(p, &title, &samples, campaign.abandon_limit_percent)?;
            }
            let summary = (a.seeds > 1).then(|| sim::summarise(&reports));
            if let Some(p) = &a.csv {
                sim::write_csv(p, &reports).with_context(|| format!("writing {}", p.display()))?;
            }
            if a.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "campaign": campaign.name,
                        "scenario": scenario.name,
                        "agents": scenario.agents,
                        "days": scenario.days,
                        "seed": a.seed,
                        "seeds": a.seeds.max(1),
                        "runs": reports,
                        "summary": summary,
                    }))?
                );
            } else {
                println!(
                    "{} on scenario {} ({} agents, {} days, seed {}); abandonment limit {}% per {}",
                    campaign.name,
                    scenario.name,
                    scenario.agents,
                    scenario.days,
                    a.seed,
                    campaign.abandon_limit_percent,
                    humantime::format_duration(campaign.abandon_window)
                );
                match &summary {
                    Some(rows) => print!("{}", sim::summary_table(rows)),
                    None => print!("{}", sim::table(&reports)),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sip(SipCmd::Call(a)) => {
            let (target, ring_timeout, credentials, max_talk) = sip_common(&a.common)?;
            let report = dialler::sip::ua::call_once(
                &target,
                dialler::sip::uac::CallParams {
                    target: target.uri.clone(),
                    from_user: a.common.from.clone(),
                    ring_timeout,
                    credentials,
                    media_addr: "0.0.0.0:0".parse()?,
                    max_talk,
                },
                a.play,
            )
            .await?;
            if a.common.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                let s = &report.summary;
                println!(
                    "{}: {}",
                    dialler::sip::masked_uri(&target.uri),
                    s.outcome.name()
                );
                println!(
                    "  codes: {}",
                    s.codes
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                let ms = |d: Option<std::time::Duration>| {
                    d.map_or("-".to_string(), |d| {
                        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
                    })
                };
                println!("  first response after {}", ms(s.first_response_after));
                println!("  ringing after {}", ms(s.progress_after));
                println!("  answered after {}", ms(s.answer_after));
                println!("  200 OK to ACK {}", ms(report.ack_latency));
                println!("  talk {}", ms(s.talk));
                if let Some(p) = report.prompt_packets {
                    println!("  prompt: {p} RTP packets sent");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sip(SipCmd::Load(a)) => {
            let (target, ring_timeout, credentials, max_talk) = sip_common(&a.common)?;
            let report = dialler::sip::load::run(dialler::sip::load::LoadConfig {
                target,
                cps: a.cps,
                calls: a.calls,
                max_channels: a.max_channels,
                ring_timeout,
                max_talk,
                credentials,
                from_user: a.common.from.clone(),
            })
            .await?;
            if a.common.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "{} calls in {:.1} s: {:.1} calls/s (asked {}), peak {} in flight, {:.2} s CPU",
                    report.calls,
                    report.elapsed_s,
                    report.achieved_cps,
                    report.target_cps,
                    report.peak_in_flight,
                    report.cpu_s
                );
                for (o, n) in &report.outcomes {
                    println!("  {:<12} {n:>8}", o.name());
                }
                for (name, p) in [
                    ("setup (INVITE to first response)", report.setup_ms),
                    ("answer (INVITE to 200)", report.answer_ms),
                    ("200 OK to ACK", report.ack_ms),
                ] {
                    println!(
                        "  {name}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (n={})",
                        p.p50, p.p90, p.p99, p.max, p.n
                    );
                }
                if report.backoffs > 0 {
                    println!(
                        "  backed off {} times, {:.1} s in all",
                        report.backoffs, report.backoff_s
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(a) => {
            let clock = match a.clock_start {
                Some(at) => {
                    eprintln!("virtual clock: the service's time starts at {at}");
                    dialler::clock::Clock::starting_at(at)
                }
                None => dialler::clock::Clock::system(),
            };
            let store = Store::open(&cli.db).await?;
            let loaded = campaign::load_dir(&cli.campaigns)?;
            let mut chosen = Vec::new();
            for (_, c) in loaded.campaigns {
                if a.campaign_names.is_empty() || a.campaign_names.contains(&c.name) {
                    chosen.push(c);
                }
            }
            for name in &a.campaign_names {
                if !chosen.iter().any(|c| &c.name == name) {
                    anyhow::bail!("no valid campaign {name} in {}", cli.campaigns.display());
                }
            }
            if chosen.is_empty() {
                anyhow::bail!("no campaigns to run in {}", cli.campaigns.display());
            }
            let refs: Vec<&Campaign> = chosen.iter().collect();
            let registries = registry::load(&store, &cli.dnd_dir, &refs).await?;
            let mut cfg = dialler::service::ServiceConfig::new(store.clone(), chosen, registries);
            cfg.clock = clock;
            cfg.provider = a.provider;
            cfg.sip_bind = a.sip_bind;
            cfg.node = a.node;
            cfg.grace = std::time::Duration::from_secs_f64(a.grace.max(0.0));
            let listener = tokio::net::TcpListener::bind(a.listen)
                .await
                .with_context(|| format!("binding {}", a.listen))?;
            let running = dialler::service::start(cfg, listener, async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = async {
                        match term.as_mut() {
                            Some(t) => { t.recv().await; }
                            None => std::future::pending::<()>().await,
                        }
                    } => {}
                }
            })
            .await?;
            println!("dialler listening on http://{}", running.http);
            let summary = running.wait().await?;
            store.close().await;
            println!("{}", serde_json::to_string(&summary)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(a) => {
            let opts = dialler::demo::DemoOptions {
                minutes: a.minutes,
                agents: a.agents,
                campaign: a.campaign,
                scenario: a
                    .scenario
                    .unwrap_or_else(|| dialler::demo::default_scenario(&cli.campaigns)),
                campaigns_dir: cli.campaigns.clone(),
                db: a.demo_db,
                status_every: a.status_every,
                seed: a.seed,
                provider: a.provider,
                at: a.at,
            };
            dialler::demo::run(opts).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sandbox(a) => {
            let secs = |s: f64| std::time::Duration::from_secs_f64(s.max(0.0));
            let weights = [a.answer, a.busy, a.no_answer, a.reject, a.unavailable];
            if weights.iter().any(|w| !w.is_finite() || *w < 0.0)
                || weights.iter().sum::<f64>() <= 0.0
            {
                anyhow::bail!("outcome weights must be non-negative and not all zero");
            }
            let cfg = dialler::sip::sandbox::SandboxConfig {
                weights: dialler::sip::sandbox::Weights {
                    answer: a.answer,
                    busy: a.busy,
                    no_answer: a.no_answer,
                    reject: a.reject,
                    unavailable: a.unavailable,
                },
                ring: (secs(a.ring_min), secs(a.ring_max.max(a.ring_min))),
                talk_mean: secs(a.talk_mean),
                seed: a.seed,
                ..Default::default()
            };
            let sip = tokio::net::UdpSocket::bind(a.bind)
                .await
                .with_context(|| format!("binding {}", a.bind))?;
            let rtp = tokio::net::UdpSocket::bind((a.bind.ip(), a.rtp_port)).await?;
            println!(
                "sandbox listening on sip:{} (RTP echo on port {})",
                sip.local_addr()?,
                rtp.local_addr()?.port()
            );
            let stats = dialler::sip::sandbox::serve(sip, rtp, cfg, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
            println!("{}", serde_json::to_string(&stats)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Leads(LeadsCmd::Erase {
            phone,
            country,
            json,
        }) => {
            let country = match &country {
                Some(cc) => Some(
                    Country::from_iso(&cc.to_ascii_uppercase())
                        .with_context(|| format!("--country {cc}: use IN, US, CA, GB or AU"))?,
                ),
                None => None,
            };
            let e164 = dialler::erasure::parse_number(&phone, country)?;
            let store = Store::open(&cli.db).await?;
            let now = store::millis(chrono::Utc::now());
            let counts = dialler::erasure::erase(&store, &e164, now).await?;
            store.close().await;
            if json {
                println!("{}", serde_json::to_string(&counts)?);
            } else {
                println!(
                    "erased: {} leads deleted, {} call attempts de-identified (kept for counts), {} dispositions kept; the number is on the internal do-not-call list",
                    counts.leads, counts.attempts, counts.dispositions
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Token(cmd) => {
            let store = Store::open(&cli.db).await?;
            let now = store::millis(chrono::Utc::now());
            let code = match cmd {
                TokenCmd::Create {
                    role,
                    agent,
                    label,
                    json,
                } => {
                    let role: Role = role.parse()?;
                    let t =
                        auth::create_token(&store, role, agent.as_deref(), label.as_deref(), now)
                            .await?;
                    if json {
                        println!("{}", serde_json::to_string(&t)?);
                    } else {
                        // The token alone on stdout, so scripts can take it;
                        // the rest on stderr.
                        eprintln!(
                            "token {} ({}{}): shown once, store it now",
                            t.id,
                            t.role,
                            t.agent_id
                                .as_deref()
                                .map(|a| format!(" for agent {a}"))
                                .unwrap_or_default()
                        );
                        println!("{}", t.token);
                    }
                    ExitCode::SUCCESS
                }
                TokenCmd::Revoke { id } => {
                    if auth::revoke(&store, id, now).await? {
                        println!("token {id} revoked");
                        ExitCode::SUCCESS
                    } else {
                        eprintln!("no valid token {id}: unknown or already revoked");
                        ExitCode::FAILURE
                    }
                }
                TokenCmd::List { json } => {
                    let rows = store.token_list().await?;
                    if json {
                        println!("{}", serde_json::json!({ "tokens": rows }));
                    } else {
                        println!(
                            "{:>5} {:<10} {:<16} {:<20} {:<20} LABEL",
                            "ID", "ROLE", "AGENT", "CREATED", "REVOKED"
                        );
                        let t = |ms: Option<i64>| {
                            ms.and_then(chrono::DateTime::from_timestamp_millis)
                                .map_or_else(
                                    || "-".to_string(),
                                    |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                                )
                        };
                        for r in &rows {
                            println!(
                                "{:>5} {:<10} {:<16} {:<20} {:<20} {}",
                                r.id,
                                r.role,
                                r.agent_id.as_deref().unwrap_or("-"),
                                t(Some(r.created_at)),
                                t(r.revoked_at),
                                r.label.as_deref().unwrap_or("")
                            );
                        }
                    }
                    ExitCode::SUCCESS
                }
            };
            store.close().await;
            Ok(code)
        }
        Command::Report(a) => {
            let c = campaign::find(&cli.campaigns, &a.campaign)?;
            let from = match &a.from {
                Some(t) => store::millis(parse_time(Some(t))?),
                None => 0,
            };
            let to = store::millis(parse_time(a.to.as_deref())?);
            let store = Store::open(&cli.db).await?;
            let id = store.campaign_id(&c.name).await?.with_context(|| {
                format!(
                    "campaign {:?} is not in {}; import leads first",
                    c.name, cli.db
                )
            })?;
            let r = report::report(&store, &c, id, from, to).await?;
            store.close().await;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else if a.csv {
                r.write_csv(std::io::stdout().lock())?;
            } else {
                print!("{}", r.to_text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Leads(LeadsCmd::Stats { campaign, json }) => {
            let store = Store::open(&cli.db).await?;
            let id = store.campaign_id(&campaign).await?.with_context(|| {
                format!(
                    "campaign {campaign:?} has no leads in {}; import some first",
                    cli.db
                )
            })?;
            let counts = store.lead_status_counts(id).await?;
            store.close().await;
            let total: i64 = counts.iter().map(|(_, n)| n).sum();
            if json {
                let by: serde_json::Map<String, serde_json::Value> = counts
                    .iter()
                    .map(|(s, n)| (s.clone(), (*n).into()))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({ "campaign": campaign, "total": total, "by_status": by })
                );
            } else {
                println!("{campaign}: {total} leads");
                for (s, n) in &counts {
                    println!("  {s:<12} {n:>9}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn sip_common(
    c: &SipCommon,
) -> anyhow::Result<(
    dialler::sip::Target,
    dialler::sip::uac::RingTimeout,
    Option<dialler::sip::auth::Credentials>,
    Option<std::time::Duration>,
)> {
    let target = dialler::sip::Target::parse(&c.uri)?;
    let ring = dialler::sip::uac::RingTimeout::new(std::time::Duration::from_secs_f64(
        c.ring_timeout.max(0.0),
    ))?;
    let creds = match &c.user {
        Some(u) => Some(dialler::sip::auth::Credentials {
            username: u.clone(),
            password: std::env::var(&c.password_env)
                .with_context(|| format!("--user needs the password in ${}", c.password_env))?,
        }),
        None => None,
    };
    let talk = c
        .max_talk
        .map(|t| std::time::Duration::from_secs_f64(t.max(0.0)));
    Ok((target, ring, creds, talk))
}

fn parse_time(text: Option<&str>) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    match text {
        None => Ok(chrono::Utc::now()),
        Some(t) => Ok(chrono::DateTime::parse_from_rfc3339(t)
            .with_context(|| {
                format!("{t:?} is not an RFC 3339 time such as 2026-12-01T10:00:00+05:30")
            })?
            .with_timezone(&chrono::Utc)),
    }
}

/// A progress bar on stderr for `len` simulation runs; hidden when stderr
/// is not a terminal or the job is small.
fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if len < 4 || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} [{{bar:40}}] {{pos}}/{{len}} {what} ({{eta}})"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    /// An argument id shared by a global flag and a subcommand's flag
    /// passes debug_assert but panics at parse time.
    #[test]
    fn run_and_demo_command_lines_parse() {
        use clap::Parser;
        for line in [
            "dialler run --campaign uk-broadband --campaign us-home-solar --listen 127.0.0.1:0",
            "dialler --campaigns c run --clock-start 2026-12-01T12:00:00Z",
            "dialler demo --provider sipp --at 2026-12-01T14:30:00Z --agents 3",
        ] {
            let parsed = super::Cli::try_parse_from(line.split(' '));
            assert!(parsed.is_ok(), "{line}: {:?}", parsed.err());
        }
    }
}
