//! The `dialler` command line. Parsing only: every command calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use dialler::campaign::{self, Campaign};
use dialler::clock::Millis;
use dialler::commands;
use dialler::compliance::dnd::Format;
use dialler::leads::ImportOptions;
use dialler::registry::{DndImport, Target};
use dialler::sim::{self, Scenario};
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
    /// The phones each agent may log in at (logins take only these).
    #[command(subcommand)]
    Phone(PhoneCmd),
    /// Nodes of a cluster: recover one that will not come back.
    #[command(subcommand)]
    Node(NodeCmd),
    /// A campaign's figures over a time range.
    Report(ReportArgs),
    /// The audit log: every state-changing act (API and command line),
    /// oldest first, filtered.
    Audit(AuditArgs),
    /// Webhooks to a CRM: subscriptions, the delivery log, replays.
    #[command(subcommand)]
    Webhook(WebhookCmd),
    /// Run the live service: campaigns' runners, SIP, RTP, store and the
    /// HTTP API, until SIGINT or SIGTERM.
    Run(RunArgs),
    /// The whole dialler on this machine with no setup: sandbox provider,
    /// simulated agents over the API, a status line, then the report.
    Demo(DemoArgs),
}

/// How SIP peers are found and reached.
#[derive(Args, Clone)]
struct SipNetArgs {
    /// Ask this DNS server (IP:PORT) for the provider's NAPTR, SRV and
    /// A/AAAA records instead of /etc/resolv.conf's (/etc/hosts is still
    /// read first).
    #[arg(long, env = "DIALLER_DNS_SERVER")]
    dns_server: Option<std::net::SocketAddr>,
    /// A PEM file of CA certificates to trust for TLS providers, besides
    /// the system's.
    #[arg(long, env = "DIALLER_TLS_CA")]
    tls_ca: Option<std::path::PathBuf>,
    /// For a TLS provider: a PEM certificate (chain) to listen with on our
    /// SIP port, so the provider can open a connection to our Contact
    /// (without it the provider can only reuse ours). Needs --tls-key.
    #[arg(long, env = "DIALLER_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "DIALLER_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// The public address the provider sees us at, behind NAT: Via,
    /// Contact and SDP carry it.
    #[arg(long)]
    external_address: Option<std::net::IpAddr>,
}

impl SipNetArgs {
    fn net(&self) -> commands::SipNet {
        commands::SipNet {
            dns_server: self.dns_server,
            tls_ca: self.tls_ca.clone(),
            tls_listen: self.tls_cert.clone().zip(self.tls_key.clone()),
            external: self.external_address,
            ..commands::SipNet::default()
        }
    }
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
    #[arg(long, visible_alias = "bind", default_value = "0.0.0.0:5070")]
    sip_bind: std::net::SocketAddr,
    /// Send every call to this provider (IP:port) instead of the
    /// campaigns' provider URIs (for the sandbox or SIPp).
    #[arg(long)]
    provider: Option<std::net::SocketAddr>,
    #[command(flatten)]
    net: SipNetArgs,
    /// RTP ports to use, FIRST-LAST (even ports; the range a firewall
    /// opens for media). Default: any free port.
    #[arg(long)]
    rtp_ports: Option<String>,
    /// This node's name; a restart under the same name recovers its calls.
    #[arg(long, env = "DIALLER_NODE", default_value = "local")]
    node: String,
    /// Seconds connected calls may go on after a shutdown signal.
    #[arg(long, default_value_t = 30.0, value_parser = seconds_arg)]
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
    #[arg(long, default_value_t = 2.0, value_parser = minutes_arg)]
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
    #[arg(long, default_value_t = 5.0, value_parser = interval_arg)]
    status_every: f64,
    /// Seed of the draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where the API, the dashboard and the agent desktop listen (port 0:
    /// any free port; the first lines print the address).
    #[arg(long, default_value = "127.0.0.1:0")]
    http: std::net::SocketAddr,
}

#[derive(Subcommand)]
enum NodeCmd {
    /// Do for a node that died and will not restart what its restart
    /// would: its calls in flight end as interrupted at its last heartbeat
    /// (an unbridged answer counts as an abandon), their leads wait the
    /// retry delay, its claims and agent sessions are given back. Refused
    /// while the node beat in the last 10 minutes unless --force (audited).
    Recover {
        /// The node's name (`dialler run --node`).
        node: String,
        /// Only this campaign (default: every campaign in the folder).
        #[arg(long)]
        campaign: Option<String>,
        /// Recover even though the node beat recently: only when it is
        /// known to be gone (a node cut off from the store may still be on
        /// its calls).
        #[arg(long)]
        force: bool,
        /// Who does it (default: the login name).
        #[arg(long)]
        by: Option<String>,
        /// One JSON document.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PhoneCmd {
    /// Bind a SIP URI to an agent (audited).
    Add {
        /// Agent id.
        agent: String,
        /// The phone's SIP URI, for example sip:2001@10.0.0.5:5060.
        sip_uri: String,
        /// Who does it (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
    /// Unbind a SIP URI from an agent (audited); exit 1 when it was not bound.
    Remove {
        /// Agent id.
        agent: String,
        /// The phone's SIP URI.
        sip_uri: String,
        /// Who does it (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
    /// The provisioned phones.
    List {
        /// Only this agent's.
        #[arg(long)]
        agent: Option<String>,
        /// One JSON document.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum WebhookCmd {
    /// Subscribe a URL to a campaign's events; prints the signing secret
    /// once (audited).
    Add {
        /// Campaign name.
        #[arg(long)]
        campaign: String,
        /// Where to POST (http:// or https://).
        #[arg(long)]
        url: String,
        /// Comma-separated: call.answered, call.ended, disposition.recorded,
        /// conversion, lead.opted_out; or all.
        #[arg(long, default_value = "all")]
        events: String,
        /// Who does it (default: the login name).
        #[arg(long)]
        by: Option<String>,
        /// One JSON object (with the secret).
        #[arg(long)]
        json: bool,
    },
    /// The subscriptions (never their secrets).
    List {
        /// One JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Remove a subscription: nothing more is sent to it (audited).
    Remove {
        /// Subscription id.
        id: i64,
        /// Who does it (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
    /// The delivery log, newest first.
    Log {
        /// Only this subscription's events.
        #[arg(long)]
        subscription: Option<i64>,
        /// Only pending, delivered or failed ones.
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// One JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Send events again, with the same ids (audited): one event, or a
    /// subscription's since a time.
    Replay {
        /// One event (its id, as the log shows).
        #[arg(long, conflicts_with_all = ["subscription", "since"])]
        event: Option<i64>,
        /// A subscription's events...
        #[arg(long, requires = "since")]
        subscription: Option<i64>,
        /// ...created at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Who does it (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Args)]
struct AuditArgs {
    /// From this time (RFC 3339, e.g. 2026-12-01T09:00:00Z).
    #[arg(long)]
    since: Option<String>,
    /// Before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// Only acts whose actor contains this (any case): a name, `token 12`,
    /// `agent a1`.
    #[arg(long)]
    actor: Option<String>,
    /// Only this action (`agent.login`), or a family with a trailing dot
    /// (`agent.`).
    #[arg(long)]
    action: Option<String>,
    /// Only acts whose subject contains this: `agent a1`, `call 42`.
    #[arg(long)]
    subject: Option<String>,
    /// Only refused or failed API requests (status 400 and above).
    #[arg(long)]
    failed: bool,
    /// Entries after this id (to page on).
    #[arg(long)]
    after_id: Option<i64>,
    /// At most this many entries.
    #[arg(long, default_value_t = 1000)]
    limit: i64,
    /// One JSON document.
    #[arg(long)]
    json: bool,
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
        /// Who creates it, for the audit log (default: the login name).
        #[arg(long)]
        by: Option<String>,
        /// One JSON object with the token and its id.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (audited).
    Revoke {
        /// Token id, as printed by create or list.
        id: i64,
        /// Who revokes it, for the audit log (default: the login name).
        #[arg(long)]
        by: Option<String>,
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
    /// Post-dial delay, seconds: the 100 goes at once, the 180 after this
    /// (the ring time counts from the 180).
    #[arg(long, default_value_t = 0.0, value_parser = seconds_arg)]
    setup: f64,
    /// Shortest ring time, seconds.
    #[arg(long, default_value_t = 2.0, value_parser = seconds_arg)]
    ring_min: f64,
    /// Longest ring time, seconds.
    #[arg(long, default_value_t = 8.0, value_parser = seconds_arg)]
    ring_max: f64,
    /// Mean talk time in seconds before the callee hangs up; 0 holds until
    /// the caller's BYE (an agent phone).
    #[arg(long, default_value_t = 30.0, value_parser = seconds_arg)]
    talk_mean: f64,
    /// Seed of the outcome draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// RTP echo port (0: any free port).
    #[arg(long, default_value_t = 0)]
    rtp_port: u16,
    /// The called party presses this key (0-9, *, #, A-D; an RFC 4733
    /// event) half a second into what it hears, as a person opting out
    /// during the abandoned-call message.
    #[arg(long, value_parser = key_arg)]
    press_key: Option<char>,
    /// Sound `--press-key` as its two tones in the audio, and answer with
    /// no telephone-event (a line without RFC 4733).
    #[arg(long)]
    keys_as_tones: bool,
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
    /// The provider: sip:USER@HOST[:PORT][;transport=udp|tcp|tls] or
    /// sips:USER@HOST[:PORT]; a host name is located by DNS (RFC 3263).
    uri: String,
    /// Ring timeout in seconds (at least 15).
    #[arg(long, default_value_t = 25.0, value_parser = seconds_arg)]
    ring_timeout: f64,
    /// Hang up answered calls after this many seconds.
    #[arg(long, value_parser = seconds_arg)]
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
    /// Local SIP address to bind (IP:PORT; default: any address, a free
    /// port). Media binds on the same IP.
    #[arg(long)]
    bind: Option<std::net::SocketAddr>,
    #[command(flatten)]
    net: SipNetArgs,
}

#[derive(Args)]
struct SipCallArgs {
    #[command(flatten)]
    common: SipCommon,
    /// Play the generated safe-harbour prompt (seconds, up to 600) when
    /// answered, then hang up.
    #[arg(long, value_parser = prompt_arg)]
    play: Option<f64>,
}

#[derive(Args)]
struct SipLoadArgs {
    #[command(flatten)]
    common: SipCommon,
    /// Calls per second (1 to 100,000).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
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
    /// predictive, progressive, ratio:R, feedback, threshold[:P], oracle,
    /// several joined by commas, or all (default: the campaign file's).
    #[arg(long)]
    strategy: Option<String>,
    /// Agents (overrides the scenario).
    #[arg(long)]
    agents: Option<u32>,
    /// Days (overrides the scenario).
    #[arg(long)]
    days: Option<u32>,
    /// Random seed (up to 2^62).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(..=(1 << 62)))]
    seed: u64,
    /// Run this many seeds (seed, seed+1, ...; 1 to 10,000) and sum up per
    /// strategy.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
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
    /// Import a registry file (full, or a delta with --delta). Exits 4
    /// when lines were refused (more than --accept-rejects).
    Import(DndImportArgs),
    /// Every recorded registry import: when, who, the file's SHA-256, counts.
    History {
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Take a number off the internal list (and the suppression list an
    /// erasure left) or a campaign's list, whatever put it there; audited.
    Remove {
        /// The number: E.164 (+...), or national format with --country.
        phone: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
        /// A campaign's own list instead of the internal one.
        #[arg(long)]
        campaign: Option<String>,
        /// Country of a national-format number (IN, US, CA, GB, AU).
        #[arg(long)]
        country: Option<String>,
        /// Who does it (default: the login name).
        #[arg(long)]
        by: Option<String>,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
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
    /// When the data was downloaded from the regulator (RFC 3339); default
    /// now. A time in the future is refused.
    #[arg(long)]
    loaded_at: Option<String>,
    /// Write every refused line (line, reason, text) to this CSV.
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Exit 0 even with up to this many refused lines.
    #[arg(long, default_value_t = 0)]
    accept_rejects: u64,
    /// Import a full file the safety checks refuse: empty or mostly bad,
    /// numbers of another country, dropping more than --max-drop-percent
    /// of the registry, or older than the registry it replaces.
    #[arg(long)]
    force: bool,
    /// The share of a national registry a full import may drop, percent
    /// (0-100). A drop above the default that this lets through is
    /// recorded as forced.
    #[arg(long, default_value_t = dialler::registry::DEFAULT_MAX_DROP_PERCENT,
          value_parser = drop_percent_arg)]
    max_drop_percent: f64,
    /// Who runs the import, for its record (default: the login name).
    #[arg(long)]
    by: Option<String>,
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
    /// Erase a person by phone number from every campaign; only a keyed
    /// hash of the number stays, refusing it in every campaign.
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
    /// Field delimiter: a single character, or `tab`; found from the header
    /// row when absent (comma, semicolon, tab or pipe).
    #[arg(long)]
    delimiter: Option<String>,
    /// Text encoding: utf-8 (default), latin-1, windows-1252, or another WHATWG label (utf-16le, shift_jis, ...).
    #[arg(long)]
    encoding: Option<String>,
    /// The campaign's lead list the rows go into (default: `default`);
    /// supervisors choose which lists a campaign dials.
    #[arg(long)]
    list: Option<String>,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// A finite number read from `text`, from `lo` (excluded when `above`)
/// to `hi`, or why not: "TEXT is not WHAT".
fn number_in(text: &str, lo: f64, above: bool, hi: f64, what: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= lo && (!above || x > lo) && x <= hi => Ok(x),
        _ => Err(format!("{text:?} is not {what}")),
    }
}

/// Seconds: a finite number from 0 to a week.
fn seconds_arg(text: &str) -> Result<f64, String> {
    number_in(
        text,
        0.0,
        false,
        604_800.0,
        "a number of seconds from 0 to 604800 (a week)",
    )
}

/// One DTMF key.
fn key_arg(text: &str) -> Result<char, String> {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if dialler::media::dtmf::event_of(c).is_some() => {
            Ok(c.to_ascii_uppercase())
        }
        _ => Err(format!("{text:?} is not one key: use 0-9, *, # or A-D")),
    }
}

/// Seconds between two things: above 0, at most an hour.
fn interval_arg(text: &str) -> Result<f64, String> {
    number_in(
        text,
        0.0,
        true,
        3_600.0,
        "a number of seconds above 0, at most 3600",
    )
}

/// Minutes of a run: above 0, at most a week.
fn minutes_arg(text: &str) -> Result<f64, String> {
    number_in(
        text,
        0.0,
        true,
        10_080.0,
        "a number of minutes above 0, at most 10080 (a week)",
    )
}

/// A prompt's length: above 0, at most 10 minutes (it is generated in
/// memory).
fn prompt_arg(text: &str) -> Result<f64, String> {
    number_in(
        text,
        0.0,
        true,
        600.0,
        "a number of seconds above 0, at most 600",
    )
}

/// `--max-drop-percent`: a finite share, 0 to 100.
fn drop_percent_arg(text: &str) -> Result<f64, String> {
    number_in(text, 0.0, false, 100.0, "a share of 0 to 100 percent")
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
            // The chain, each cause once: many errors name their cause in
            // their own message already.
            let mut message = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !message.contains(&c) {
                    message.push_str(": ");
                    message.push_str(&c);
                }
            }
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Prints `report` for people, or as one JSON document.
fn emit<T: std::fmt::Display + serde::Serialize>(report: &T, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

fn code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let now = chrono::Utc::now();
    let now_ms = Millis::from_utc(now);
    match cli.command {
        Command::Campaign(CampaignCmd::Validate { files }) => {
            let report = commands::campaign_validate(&files, now.date_naive());
            print!("{report}");
            Ok(code(!report.failed()))
        }
        Command::Campaign(CampaignCmd::List { json }) => {
            let store = Store::open(&cli.db).await?;
            let list = commands::campaign_list(&store, &cli.campaigns).await;
            store.close().await;
            let list = list?;
            emit(&list, json)?;
            if !json {
                for e in &list.invalid {
                    eprintln!("skipped: {e}");
                }
            }
            Ok(code(list.invalid.is_empty()))
        }
        Command::Leads(LeadsCmd::Import(a)) => {
            let c = campaign::find(&cli.campaigns, &a.campaign)?;
            let store = Store::open(&cli.db).await?;
            let opts = ImportOptions {
                phone_column: a.phone_column,
                rejects: a.rejects.clone(),
                progress: !a.json,
                screening: None,
                delimiter: match a.delimiter.as_deref() {
                    None => None,
                    Some("tab" | "\\t") => Some(b'\t'),
                    Some(d) if d.len() == 1 && d.is_ascii() => d.bytes().next(),
                    Some(d) => anyhow::bail!("--delimiter {d:?}: give one character, or tab"),
                },
                encoding: match a.encoding.as_deref() {
                    None => None,
                    Some(e) => Some(dialler::leads::encoding_arg(e).ok_or_else(|| {
                        anyhow::anyhow!(
                            "--encoding {e:?}: not an encoding that can be read; use utf-8, latin-1, windows-1252 or another WHATWG label such as utf-16le"
                        )
                    })?),
                },
                list: a.list.clone(),
            };
            let r = commands::leads_import(&store, &cli.dnd_dir, &c, &a.file, &opts, now_ms).await;
            store.close().await;
            let r = r?;
            emit(&r, a.json)?;
            if !a.json {
                for x in r.rejects.iter().take(10) {
                    eprintln!("{}:{}: {}: {}", a.file.display(), x.line, x.field, x.reason);
                }
                if r.report.rejected > 10 {
                    match &a.rejects {
                        Some(p) => eprintln!(
                            "... all {} rejects are in {}",
                            r.report.rejected,
                            p.display()
                        ),
                        None => eprintln!(
                            "... {} more; write them all with --rejects PATH",
                            r.report.rejected - 10
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
                (Some(cc), _) => commands::country_arg(cc)?,
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
            let loaded_at = commands::time_arg(a.loaded_at.as_deref(), now)?;
            let format = match a.format {
                FormatArg::Plain => Format::Plain,
                FormatArg::Ncpr => Format::Ncpr,
            };
            let store = Store::open(&cli.db).await?;
            let req = DndImport {
                target,
                file: &a.file,
                format,
                country,
                delta: a.delta,
                loaded_at,
                now,
                actor: commands::actor(a.by.as_deref()),
                force: a.force,
                max_drop_percent: a.max_drop_percent,
            };
            let r = commands::dnd_import(&store, &cli.dnd_dir, &req).await;
            store.close().await;
            let r = match r {
                Ok(r) => r,
                Err(commands::CommandError::Registry(
                    e @ dialler::registry::RegistryError::Refused { .. },
                )) => {
                    // Refused whole: the lines refused on the way are
                    // listed all the same.
                    if let dialler::registry::RegistryError::Refused { bad, .. } = &e {
                        commands::report_dnd_rejects(&a.file, a.rejects.as_deref(), bad)?;
                    }
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            };
            commands::report_dnd_rejects(&a.file, a.rejects.as_deref(), &r.bad)?;
            emit(&r, a.json)?;
            Ok(if r.report.rejected > a.accept_rejects {
                eprintln!(
                    "{} lines refused (accepted: {}): exit status 4",
                    r.report.rejected, a.accept_rejects
                );
                ExitCode::from(4)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Dnd(DndCmd::History { json }) => {
            let store = Store::open(&cli.db).await?;
            let r = commands::dnd_history(&store).await;
            store.close().await;
            emit(&r?, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Dnd(DndCmd::Remove {
            phone,
            reason,
            campaign,
            country,
            by,
            json,
        }) => {
            let country = country.as_deref().map(commands::country_arg).transpose()?;
            let store = Store::open(&cli.db).await?;
            let r = commands::dnd_remove(
                &store,
                &phone,
                country,
                campaign.as_deref(),
                &commands::actor(by.as_deref()),
                &reason,
                now_ms,
            )
            .await;
            store.close().await;
            let r = r?;
            emit(&r, json)?;
            Ok(code(r.removed))
        }
        Command::Check(a) => {
            let checked = async {
                let c = campaign::find(&cli.campaigns, &a.campaign)?;
                let at = commands::time_arg(a.at.as_deref(), now)?;
                let store = Store::open(&cli.db).await?;
                let r = commands::check(&store, &cli.dnd_dir, &c, &a.phone, at).await;
                store.close().await;
                anyhow::Ok(r?)
            }
            .await;
            let r = match checked {
                Ok(r) => r,
                Err(e) => {
                    // A check that could not be made is still a verdict:
                    // do not dial, and why.
                    if a.json {
                        let verdict = serde_json::json!({
                            "allowed": false,
                            "reasons": [],
                            "error": format!("{e:#}"),
                        });
                        println!("{verdict}");
                    }
                    return Err(e);
                }
            };
            emit(&r, a.json)?;
            Ok(if r.report.allowed {
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
            // The campaign file's own strategy unless another is asked for:
            // a campaign is tuned as it will run.
            let strategies = a
                .strategy
                .clone()
                .unwrap_or_else(|| campaign.strategy.to_string());
            let opts = commands::SimulateOptions {
                campaign,
                scenario,
                strategies,
                seed: a.seed,
                seeds: a.seeds,
                sweep: a.sweep.clone(),
            };
            if let Some(spec) = &a.sweep {
                let bar = progress_bar(commands::sweep_runs(&opts, spec)? as u64, "runs");
                let swept = commands::simulate_sweep(&opts, spec, &|| bar.inc(1))?;
                bar.finish_and_clear();
                if let Some(p) = &a.csv {
                    sim::write_csv(p, &swept.reports)
                        .with_context(|| format!("writing {}", p.display()))?;
                }
                if let Some(p) = &a.plot {
                    let title = format!(
                        "{} on {}: {} agents, {} days, {} seed(s)",
                        swept.campaign,
                        swept.scenario,
                        swept.agents,
                        swept.days,
                        a.seeds.max(1)
                    );
                    sim::plot::frontier(
                        p,
                        &title,
                        &swept.rows,
                        opts.campaign.abandon_limit_percent,
                    )?;
                }
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&swept)?);
                } else {
                    print!("{swept}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            let runs = commands::simulate_configs(&opts)?.len() as u64;
            let bar = progress_bar(runs, "runs");
            let done = commands::simulate(&opts, &|| bar.inc(1))?;
            bar.finish_and_clear();
            if let Some(p) = &a.plot
                && let Some(first) = commands::simulate_configs(&opts)?.first()
            {
                // Traced again on its own: sampling once a minute.
                let (_, samples) = sim::run_traced(first, 60_000);
                let title = format!(
                    "{} on {}: {}, {} agents, seed {}",
                    done.campaign, done.scenario, first.strategy, done.agents, first.seed
                );
                sim::plot::time_series(p, &title, &samples, opts.campaign.abandon_limit_percent)?;
            }
            if let Some(p) = &a.csv {
                sim::write_csv(p, &done.runs)
                    .with_context(|| format!("writing {}", p.display()))?;
            }
            if a.json {
                println!("{}", serde_json::to_string_pretty(&done)?);
            } else {
                print!("{done}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sip(SipCmd::Call(a)) => {
            let r = commands::sip_call(&sip_options(&a.common), a.play).await?;
            emit(&r, a.common.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sip(SipCmd::Load(a)) => {
            let r =
                commands::sip_load(&sip_options(&a.common), a.cps, a.calls, a.max_channels).await?;
            emit(&r, a.common.json)?;
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
            let listener = tokio::net::TcpListener::bind(a.listen)
                .await
                .with_context(|| format!("binding {}", a.listen))?;
            let opts = commands::RunOptions {
                campaigns: a.campaign_names,
                campaigns_dir: cli.campaigns.clone(),
                dnd_dir: cli.dnd_dir.clone(),
                provider: a.provider,
                net: a.net.net(),
                rtp_ports: a.rtp_ports,
                sip_bind: a.sip_bind,
                node: a.node,
                grace: a.grace,
                clock,
            };
            let running =
                commands::start_service(&store, opts, listener, shutdown_signal()).await?;
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
                http: a.http,
            };
            dialler::demo::run(opts).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sandbox(a) => {
            let secs = |s: f64| std::time::Duration::from_secs_f64(s.max(0.0));
            let weights = commands::sandbox_weights(dialler::sip::sandbox::Weights {
                answer: a.answer,
                busy: a.busy,
                no_answer: a.no_answer,
                reject: a.reject,
                unavailable: a.unavailable,
            })?;
            let cfg = dialler::sip::sandbox::SandboxConfig {
                weights,
                setup: secs(a.setup),
                ring: (secs(a.ring_min), secs(a.ring_max.max(a.ring_min))),
                talk_mean: secs(a.talk_mean),
                seed: a.seed,
                press_key: a.press_key,
                keys_as_tones: a.keys_as_tones,
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
            let country = country.as_deref().map(commands::country_arg).transpose()?;
            let store = Store::open(&cli.db).await?;
            let r = commands::leads_erase(&store, &phone, country, now_ms).await;
            store.close().await;
            emit(&r?, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Node(NodeCmd::Recover {
            node,
            campaign,
            force,
            by,
            json,
        }) => {
            let store = Store::open(&cli.db).await?;
            let r = commands::node_recover(
                &store,
                &cli.campaigns,
                &node,
                campaign.as_deref(),
                force,
                &commands::actor(by.as_deref()),
                now_ms,
            )
            .await;
            store.close().await;
            emit(&r?, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Phone(cmd) => {
            let store = Store::open(&cli.db).await?;
            let r = match cmd {
                PhoneCmd::Add { agent, sip_uri, by } => commands::phone_add(
                    &store,
                    &agent,
                    &sip_uri,
                    &commands::actor(by.as_deref()),
                    now_ms,
                )
                .await
                .map(|r| (r.to_string(), true)),
                PhoneCmd::Remove { agent, sip_uri, by } => {
                    commands::phone_remove(
                        &store,
                        &agent,
                        &sip_uri,
                        &commands::actor(by.as_deref()),
                        now_ms,
                    )
                    .await
                }
                PhoneCmd::List { agent, json } => commands::phone_list(&store, agent.as_deref())
                    .await
                    .and_then(|l| {
                        if json {
                            serde_json::to_string(&l)
                                .map(|t| (format!("{t}\n"), true))
                                .map_err(|e| commands::CommandError::Usage(e.to_string()))
                        } else {
                            Ok((l.to_string(), true))
                        }
                    }),
            };
            store.close().await;
            let (text, ok) = r?;
            print!("{text}");
            Ok(code(ok))
        }
        Command::Audit(a) => {
            let store = Store::open(&cli.db).await?;
            let filter = commands::audit_filter(
                a.since.as_deref(),
                a.until.as_deref(),
                a.actor,
                a.action,
                a.subject,
                a.failed,
                a.after_id,
                a.limit,
            )?;
            let list = commands::audit_list(&store, &filter).await?;
            emit(&list, a.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Webhook(cmd) => {
            let store = Store::open(&cli.db).await?;
            let r = match cmd {
                WebhookCmd::Add {
                    campaign,
                    url,
                    events,
                    by,
                    json,
                } => {
                    let c = campaign::find(&cli.campaigns, &campaign)?;
                    let added = commands::webhook_add(
                        &store,
                        &c,
                        &url,
                        &events,
                        &commands::actor(by.as_deref()),
                        now_ms,
                    )
                    .await?;
                    emit(&added, json)?;
                    ExitCode::SUCCESS
                }
                WebhookCmd::List { json } => {
                    let l = commands::WebhookList(store.webhooks().await?);
                    emit(&l, json)?;
                    ExitCode::SUCCESS
                }
                WebhookCmd::Remove { id, by } => {
                    let by = dialler::store::AuditEntry::command(
                        now_ms.ms(),
                        &commands::actor(by.as_deref()),
                        "",
                        String::new(),
                        String::new(),
                    );
                    if store.webhook_remove(id, &by).await? {
                        println!("webhook {id} removed");
                        ExitCode::SUCCESS
                    } else {
                        eprintln!("no live webhook {id}");
                        ExitCode::FAILURE
                    }
                }
                WebhookCmd::Log {
                    subscription,
                    state,
                    limit,
                    json,
                } => {
                    let l = commands::webhook_log(&store, subscription, state.as_deref(), limit)
                        .await?;
                    emit(&l, json)?;
                    ExitCode::SUCCESS
                }
                WebhookCmd::Replay {
                    event,
                    subscription,
                    since,
                    by,
                } => {
                    let n = commands::webhook_replay(
                        &store,
                        event,
                        subscription,
                        since.as_deref(),
                        &commands::actor(by.as_deref()),
                        now_ms,
                    )
                    .await?;
                    println!("{n} events to send again");
                    code(n > 0)
                }
            };
            store.close().await;
            Ok(r)
        }
        Command::Token(cmd) => {
            let store = Store::open(&cli.db).await?;
            let result = match cmd {
                TokenCmd::Create {
                    role,
                    agent,
                    label,
                    by,
                    json,
                } => commands::token_create(
                    &store,
                    &role,
                    agent.as_deref(),
                    label.as_deref(),
                    &commands::actor(by.as_deref()),
                    now_ms,
                )
                .await
                .and_then(|t| {
                    if !json {
                        // The token alone on stdout, so scripts can
                        // take it; the rest on stderr.
                        eprintln!("{}", t.note());
                    }
                    emit(&t, json).map_err(|e| commands::CommandError::Usage(e.to_string()))?;
                    Ok(ExitCode::SUCCESS)
                }),
                TokenCmd::Revoke { id, by } => match commands::token_revoke(
                    &store,
                    id,
                    &commands::actor(by.as_deref()),
                    now_ms,
                )
                .await
                {
                    Ok(true) => {
                        println!("token {id} revoked");
                        Ok(ExitCode::SUCCESS)
                    }
                    Ok(false) => {
                        eprintln!("no valid token {id}: unknown or already revoked");
                        Ok(ExitCode::FAILURE)
                    }
                    Err(e) => Err(e),
                },
                TokenCmd::List { json } => commands::token_list(&store).await.and_then(|l| {
                    emit(&l, json).map_err(|e| commands::CommandError::Usage(e.to_string()))?;
                    Ok(ExitCode::SUCCESS)
                }),
            };
            store.close().await;
            Ok(result?)
        }
        Command::Report(a) => {
            let c = campaign::find(&cli.campaigns, &a.campaign)?;
            let from = match &a.from {
                Some(t) => Millis::from_utc(commands::time_arg(Some(t), now)?),
                None => Millis::EPOCH,
            };
            let to = Millis::from_utc(commands::time_arg(a.to.as_deref(), now)?);
            let store = Store::open(&cli.db).await?;
            let r = commands::report(&store, &c, from, to, now_ms).await;
            store.close().await;
            let r = r?;
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
            let r = commands::leads_stats(&store, &campaign).await;
            store.close().await;
            emit(&r?, json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn sip_options(c: &SipCommon) -> commands::SipOptions {
    commands::SipOptions {
        uri: c.uri.clone(),
        ring_timeout: c.ring_timeout,
        max_talk: c.max_talk,
        user: c.user.clone(),
        password_env: c.password_env.clone(),
        from: c.from.clone(),
        net: commands::SipNet {
            bind: c.bind,
            ..c.net.net()
        },
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
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
