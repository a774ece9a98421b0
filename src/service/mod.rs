//! The live service behind `dialler run`: the campaigns' runners on the
//! service's clock, the SIP UA, RTP, the store and the HTTP API (mounted
//! from [`crate::api`]) in one process.
//!
//! Owns the tokio side of the dialler. Each campaign has one task
//! ([`driver`]) that owns its sans-IO [`crate::dialer::Runner`] and never
//! awaits the store or the network: calls ([`calls`]), agent phone legs
//! ([`agents`]), relays and the safe-harbour player are tasks of their own
//! that report back on the campaign's channel, and store writes go
//! through one ordered, bounded writer task ([`writer`]). What must be
//! durable before acting is awaited by the task that acts: the attempt
//! row before the INVITE (the call task), the abandon before the
//! safe-harbour message (the player task), a disposition before the agent
//! is made ready (the HTTP handler).
//!
//! It decides nothing about pacing, compliance or retries: the runner,
//! [`crate::policy`] and [`crate::compliance`] do. Its errors are domain
//! errors ([`AgentError`]); HTTP status codes are the API's business.

pub mod agents;
pub mod calls;
pub mod client;
pub mod driver;
pub mod records;
pub mod recovery;
pub mod registries;
pub mod writer;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

use crate::campaign::Campaign;
use crate::clock::{Clock, Millis};
use crate::compliance::Registries;
use crate::live::LiveBoard;
use crate::media::webrtc::PhoneState;
use crate::sip::SipError;
use crate::sip::ua::{Ua, UaConfig};
use crate::store::{Store, StoreError};

/// Why an agent's request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// The agent has no session.
    #[error("not logged in")]
    NotLoggedIn,
    /// The agent has a session already.
    #[error("already logged in")]
    AlreadyLoggedIn,
    /// On a call or in wrap-up.
    #[error("on a call or in wrap-up: record the disposition to become ready")]
    Busy,
    /// No call is connected to hang up.
    #[error("no call connected")]
    NoCall,
    /// The service is shutting down.
    #[error("the service is shutting down")]
    ShuttingDown,
    /// The phone's URI is not one the dialler can call.
    #[error("bad phone URI: {0}")]
    BadPhone(String),
    /// The agent's phone did not answer.
    #[error("the agent's phone did not answer: {0}")]
    PhoneDidNotAnswer(String),
    /// A write the reply waited for failed.
    #[error("internal error")]
    Store,
    /// The customer's side took no telephone-events (RFC 4733) in its
    /// answer: no DTMF can be sent on this call.
    #[error("the customer's side takes no DTMF (no telephone-event in its SDP answer)")]
    NoDtmf,
}

/// Errors that stop the service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The store failed at start-up or shutdown.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The SIP UA could not start.
    #[error("SIP: {0}")]
    Sip(#[from] SipError),
    /// A socket error (the HTTP listener).
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A campaign's provider URI is not dialable and no provider was given.
    #[error("campaign {0}: {1}")]
    Provider(String, String),
    /// Another process is running under this node's name: starting would
    /// take its calls for a crash's leftovers (ending them), and the two
    /// would count as one node of the cluster, each spending the whole
    /// allowance.
    #[error(
        "node {node:?} is already running (it beat in the store {ago_ms} ms ago and again while this one waited): give this process another --node"
    )]
    NodeInUse {
        /// The node name.
        node: String,
        /// How long before this start it had beaten.
        ago_ms: i64,
    },
}

/// Logs out here the agents whose session lease another node took (this
/// node's heartbeats lapsed, cut off from the store, and the agent logged
/// in there): an agent works on one node, and this one would otherwise go
/// on putting calls through to them. `held` is what this node's heartbeat
/// refreshed; an agent missing from it counts as lost only when another
/// node holds its lease (a login here that committed after the heartbeat
/// is not).
async fn drop_lost_sessions(shared: &Arc<Shared>, held: &[String]) {
    let serving: Vec<(String, String)> = match shared.sessions.lock() {
        Ok(s) => s
            .values()
            .filter(|v| !held.contains(&v.agent))
            .map(|v| (v.agent.clone(), v.campaign.clone()))
            .collect(),
        Err(_) => return,
    };
    for (agent, campaign) in serving {
        let holder = match shared.store.session_holder(&agent).await {
            Ok(Some((holder, _))) if holder != shared.node => holder,
            _ => continue,
        };
        tracing::warn!(
            agent = %agent,
            holder = %holder,
            "the agent's session lease was taken by another node: logged out here"
        );
        if let Some(h) = shared.campaigns.get(&campaign) {
            let (reply, _) = tokio::sync::oneshot::channel();
            let _ = h.tx.send(driver::Input::Logout { agent, reply });
        }
    }
}

/// How long a start watches a recent heartbeat under its own node name
/// for a second one: over twice [`CLUSTER_SYNC`], so a live process beats
/// within it, while a crashed one's last beat stays where it was.
pub const NAMESAKE_WATCH: Duration = Duration::from_millis(2_500);

/// Refuses to start a node whose name another live process uses. A node's
/// recovery takes every open call, claim and agent lease under its name
/// for a crash's leftovers, and nodes are told apart in the cluster (its
/// ledger, its share of the allowance) by name alone: two processes under
/// one name would end each other's calls and each spend the whole
/// allowance. A beat under this name within [`CLUSTER_LAPSE`] may be this
/// node's own before a crash, so the start waits [`NAMESAKE_WATCH`] and
/// looks again: a beat that moved meanwhile is another process.
async fn refuse_a_live_namesake(
    store: &Store,
    node: &str,
    clock: &crate::clock::Clock,
) -> Result<(), ServiceError> {
    let Some(beat) = store.node_last_beat(node).await? else {
        return Ok(());
    };
    let lapse = i64::try_from(CLUSTER_LAPSE.as_millis()).unwrap_or(i64::MAX);
    let ago_ms = clock.now().ms().saturating_sub(beat);
    if ago_ms > lapse {
        return Ok(());
    }
    tokio::time::sleep(NAMESAKE_WATCH).await;
    match store.node_last_beat(node).await? {
        Some(again) if again > beat => Err(ServiceError::NodeInUse {
            node: node.to_owned(),
            ago_ms,
        }),
        _ => Ok(()),
    }
}

/// How many recent events are kept for streams that resume.
pub const RECENT_EVENTS: usize = 2048;

/// The service's events: numbered in order, broadcast to the open
/// streams, and the last [`RECENT_EVENTS`] kept for a stream that resumes
/// with `Last-Event-ID`.
pub struct EventLog {
    tx: broadcast::Sender<ServiceEvent>,
    recent: Mutex<std::collections::VecDeque<ServiceEvent>>,
    /// The first id this log gives.
    first: u64,
}

/// Where a resuming stream stands (see [`EventLog::since`]).
pub struct Resumed {
    /// Live events from now on.
    pub rx: broadcast::Receiver<ServiceEvent>,
    /// The kept events it missed, oldest first.
    pub replay: Vec<ServiceEvent>,
    /// Live events with an id at most this were replayed or seen before.
    pub seen: u64,
    /// Events lost beyond those replayed: `Some(Some(n))` n of them,
    /// `Some(None)` an unknown number (its last id is from before this
    /// service started, or was never given).
    pub lost: Option<Option<u64>>,
}

/// The first event id of a service started at `now`: its start in
/// microseconds, so that ids keep rising across restarts (a stream that
/// resumes with an id from before a restart is not taken as ahead of the
/// new ids, which would leave it silent) and stay below 2^53.
pub fn first_event_id(now: crate::clock::Millis) -> u64 {
    u64::try_from(now.ms())
        .unwrap_or(0)
        .saturating_mul(1_000)
        .max(1)
}

impl EventLog {
    /// A log whose subscribers may fall `capacity` events behind, its ids
    /// from 1.
    pub fn new(capacity: usize) -> EventLog {
        EventLog::starting_at(capacity, 1)
    }

    /// A log whose ids start at `first` (see [`first_event_id`]).
    pub fn starting_at(capacity: usize, first: u64) -> EventLog {
        EventLog {
            tx: broadcast::channel(capacity).0,
            recent: Mutex::new(std::collections::VecDeque::with_capacity(RECENT_EVENTS)),
            first: first.max(1),
        }
    }

    /// Numbers `e`, keeps it and sends it (no subscriber is fine).
    pub fn emit(&self, mut e: ServiceEvent) {
        // Numbered and kept under one lock, so the kept events are in id
        // order and a subscriber that reads them after subscribing misses
        // none (see [`EventLog::since`]).
        let Ok(mut recent) = self.recent.lock() else {
            let _ = self.tx.send(e);
            return;
        };
        e.id = recent.back().map_or(self.first, |last| last.id + 1);
        if recent.len() == RECENT_EVENTS {
            recent.pop_front();
        }
        recent.push_back(e.clone());
        let _ = self.tx.send(e);
    }

    /// Subscribes, and returns the kept events after `last_id` (a
    /// reconnecting stream's `Last-Event-ID`), oldest first, and how many
    /// were lost beyond them. An id from before this log began (a restart)
    /// gets every kept event; one this log never gave (ahead of its last)
    /// gets none, and live events from now on; both are told as an
    /// unknown loss.
    pub fn since(&self, last_id: Option<u64>) -> Resumed {
        let rx = self.tx.subscribe();
        let Ok(recent) = self.recent.lock() else {
            return Resumed {
                rx,
                replay: Vec::new(),
                seen: u64::MAX,
                lost: last_id.map(|_| None),
            };
        };
        let newest = recent.back().map_or(self.first - 1, |e| e.id);
        let Some(last) = last_id else {
            return Resumed {
                rx,
                replay: Vec::new(),
                seen: newest,
                lost: None,
            };
        };
        if last > newest {
            return Resumed {
                rx,
                replay: Vec::new(),
                seen: newest,
                lost: Some(None),
            };
        }
        let replay: Vec<ServiceEvent> = recent.iter().filter(|e| e.id > last).cloned().collect();
        let lost = if last + 1 < self.first {
            Some(None)
        } else {
            match replay.first() {
                Some(f) if f.id > last + 1 => Some(Some(f.id - last - 1)),
                _ => None,
            }
        };
        Resumed {
            rx,
            replay,
            seen: newest,
            lost,
        }
    }
}

/// What the service needs to run.
pub struct ServiceConfig {
    /// The store.
    pub store: Store,
    /// Campaigns to run.
    pub campaigns: Vec<Campaign>,
    /// Do-not-call data for those campaigns (see [`crate::registry::load`]).
    pub registries: Registries,
    /// The folder the national registries were loaded from: a registry
    /// imported there while the service runs is loaded (see
    /// [`registries::watch`]). `None`: the national registries given stay
    /// (the store's lists are still followed).
    pub dnd_dir: Option<std::path::PathBuf>,
    /// The SIP provider every campaign dials through; `None`: each
    /// campaign's `provider.uri`, located by DNS (RFC 3263) with
    /// [`ServiceConfig::net`].
    pub provider: Option<SocketAddr>,
    /// How campaigns' providers are found and reached (DNS server, TLS
    /// CA, NAT address).
    pub net: crate::sip::SipNet,
    /// Local SIP address (port 0 for any).
    pub sip_bind: SocketAddr,
    /// RTP ports to use (`None`: any free port): the range a firewall
    /// opens for media.
    pub rtp_ports: Option<Arc<crate::media::ports::PortRange>>,
    /// This node's name: lead claims and attempts are tagged with it, and a
    /// restart under the same name recovers what it left.
    pub node: String,
    /// How long connected calls may go on after shutdown starts.
    pub grace: Duration,
    /// A lead claim older than this may be taken by another node.
    pub lease: Duration,
    /// Where the live figures go, about every second.
    pub board: LiveBoard,
    /// The service's one clock: every "now" and every timer of the
    /// service reads it ([`Clock::system`] by default; a chosen start for
    /// rehearsals and the demo; a paused runtime's for tests).
    pub clock: Clock,
    /// Whose abandonment ledger the pacer reads: the campaign's (every
    /// node's rows, the allowance shared) unless measuring what that
    /// prevents. No command-line flag sets it.
    pub ledger_scope: LedgerScope,
}

/// Whose ledger rows a node's pacer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LedgerScope {
    /// The campaign's: every node's rows, and the allowance split between
    /// the nodes running it (see [`cluster_sync`]). The only safe choice
    /// with more than one node.
    #[default]
    Campaign,
    /// This node's: the stored window at start, then only its own calls,
    /// the whole allowance to itself, as a single-node dialler keeps it.
    /// Exists so `benches/cluster.rs` can show, in the same run, the
    /// combined rate it lets pass the limit; never for a deployment.
    Node,
}

impl ServiceConfig {
    /// Defaults for a store and campaigns: SIP on any port, node `local`,
    /// 30 s grace, 5 min lease, the system clock. Call it inside the
    /// runtime that will run the service.
    pub fn new(store: Store, campaigns: Vec<Campaign>, registries: Registries) -> ServiceConfig {
        ServiceConfig {
            store,
            campaigns,
            registries,
            dnd_dir: None,
            provider: None,
            net: crate::sip::SipNet::default(),
            sip_bind: SocketAddr::from(([0, 0, 0, 0], 0)),
            rtp_ports: None,
            node: "local".into(),
            grace: Duration::from_secs(30),
            lease: Duration::from_secs(300),
            board: LiveBoard::new(),
            clock: Clock::system(),
            ledger_scope: LedgerScope::Campaign,
        }
    }
}

/// Something an agent's screen or a supervisor should know, on
/// `GET /api/events`.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceEvent {
    /// Its number in the service's sequence (the SSE `id`, for
    /// `Last-Event-ID`); set by [`EventLog::emit`].
    #[serde(skip)]
    pub id: u64,
    /// The agent it concerns (agent tokens see only their own).
    pub agent: Option<String>,
    /// The campaign.
    pub campaign: String,
    /// `call` (a call was put through to the agent), `call_ended`,
    /// `state`, `dtmf` (a key the agent's caller pressed), `opt_out` (the
    /// called party of an abandoned call pressed a key during its message;
    /// for supervisors).
    pub kind: &'static str,
    /// Details (the call view for `call`, the state for `state`).
    pub data: serde_json::Value,
}

/// What an agent's screen shows of its current call.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct CallView {
    /// The call id (the attempt's id), for the disposition.
    pub call_id: i64,
    /// The campaign.
    pub campaign: String,
    /// The number dialled, E.164 (the agent is speaking to this person).
    pub phone: String,
    /// The lead's id.
    pub lead_id: i64,
    /// The lead's other fields.
    #[schema(value_type = Object)]
    pub lead: serde_json::Value,
    /// The campaign's script with the lead's fields filled in, if the
    /// campaign has one.
    pub script: Option<String>,
    /// When the call was put through, ms since the Unix epoch.
    pub connected_at: i64,
    /// When it ended, if it has.
    pub ended_at: Option<i64>,
    /// The keys the customer pressed on the call so far (RFC 4733
    /// telephone-events), in order.
    pub dtmf: String,
}

/// An agent's session as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(as = Agent)]
pub struct SessionView {
    /// Agent id.
    pub agent: String,
    /// Campaign logged in to.
    pub campaign: String,
    /// `logging_in`, `paused`, `ready`, `on_call`, `wrapup`.
    #[schema(value_type = String)]
    pub state: &'static str,
    /// Since when, ms.
    pub since: i64,
    /// Pause reason.
    pub reason: Option<String>,
    /// The current (or last, in wrap-up) call.
    pub call: Option<CallView>,
    /// A pause or logout waits for the end of the call and wrap-up.
    #[schema(value_type = Option<String>)]
    pub pending: Option<&'static str>,
    /// A disposition is being written.
    #[serde(skip)]
    pub disposing: bool,
}

/// A running campaign, as the API sees it.
#[derive(Debug, Clone)]
pub struct CampaignHandle {
    /// Store id.
    pub id: i64,
    /// The campaign.
    pub campaign: Arc<Campaign>,
    /// Its task's inbox.
    pub tx: mpsc::UnboundedSender<driver::Input>,
    /// Its controls as this node applies them (the store's, once the
    /// driver has them).
    pub controls: Arc<Mutex<crate::controls::Controls>>,
}

/// Answer-to-bridge latencies, microseconds (the SIP 200 arriving in the
/// call task to the relay being started).
#[derive(Debug, Default)]
pub struct Latencies {
    samples: Mutex<Vec<u32>>,
}

impl Latencies {
    pub(crate) fn push(&self, d: Duration) {
        if let Ok(mut s) = self.samples.lock() {
            s.push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
        }
    }

    /// (count, p50, p99, max) in milliseconds.
    pub fn summary(&self) -> (usize, f64, f64, f64) {
        let mut s = self.samples.lock().map(|s| s.clone()).unwrap_or_default();
        if s.is_empty() {
            return (0, 0.0, 0.0, 0.0);
        }
        s.sort_unstable();
        let q = |p: f64| f64::from(s[((s.len() - 1) as f64 * p).round() as usize]) / 1000.0;
        (s.len(), q(0.5), q(0.99), f64::from(s[s.len() - 1]) / 1000.0)
    }
}

/// How often a node syncs each campaign with its other nodes: its
/// heartbeat, their ledger rows, how many dial it.
pub const CLUSTER_SYNC: Duration = Duration::from_secs(1);

/// A node that has not beaten for a campaign for this long no longer
/// shares its allowance.
pub const CLUSTER_LAPSE: Duration = Duration::from_secs(10);

/// Keeps campaign `campaign_id`'s runner in step with the campaign's other
/// nodes, every [`CLUSTER_SYNC`]: beats for this node, enters in the
/// ledger the unbridged answers of nodes silent for [`CLUSTER_LAPSE`]
/// ([`crate::store::Store::ledger_take_over_lapsed`]), reads the ledger
/// rows other nodes wrote after those its ledger was rebuilt from (each
/// once, in whatever order they commit, one uncommitted at the rebuild
/// too: `feed`, a [`crate::store::LedgerFeed`]) into the runner (so its
/// ledger is the campaign's), tells it how many nodes share the
/// allowance, and hands it the campaign's controls when a supervisor
/// changed them (on any node) since `controls_version`. On SQLite (one node by design) a second node is warned of.
async fn cluster_sync(
    shared: Arc<Shared>,
    campaign_id: i64,
    campaign: String,
    mut feed: crate::store::LedgerFeed,
    mut controls_version: i64,
    scope: LedgerScope,
    tx: mpsc::UnboundedSender<driver::Input>,
) {
    let lapse = i64::try_from(CLUSTER_LAPSE.as_millis()).unwrap_or(i64::MAX);
    let mut warned = false;
    let mut nodes_seen = 1u32;
    loop {
        let now = shared.clock.now().ms();
        let step = async {
            shared
                .store
                .campaign_heartbeat(campaign_id, &shared.node, now)
                .await?;
            // A node gone silent may never run its own recovery: the
            // people its calls left unbridged are abandons now, for every
            // node's ledger (read back just below).
            let taken = shared
                .store
                .ledger_take_over_lapsed(campaign_id, &shared.node, now.saturating_sub(lapse))
                .await?;
            if taken > 0 {
                tracing::warn!(
                    campaign = %campaign,
                    abandons = taken,
                    "counted as abandoned the unbridged answers of a node that stopped beating"
                );
            }
            let rows = shared
                .store
                .ledger_rows_after(campaign_id, feed.floor(), &shared.node)
                .await?;
            let nodes = shared
                .store
                .campaign_nodes_active(campaign_id, now.saturating_sub(lapse))
                .await?;
            let controls = shared.store.campaign_controls(campaign_id).await?;
            Ok::<_, StoreError>((rows, nodes, controls))
        };
        match step.await {
            Ok((rows, nodes, controls)) => {
                // A supervisor's change made on any node.
                if controls.version > controls_version {
                    controls_version = controls.version;
                    if tx.send(driver::Input::Controls(controls)).is_err() {
                        return;
                    }
                }
                let rows = feed.take(rows, now);
                nodes_seen = nodes.max(1);
                if nodes > 1 && shared.store.kind() == "sqlite" && !warned {
                    warned = true;
                    tracing::warn!(
                        campaign = %campaign,
                        nodes,
                        "several nodes run this campaign on one SQLite file: SQLite is for one node; use PostgreSQL for a cluster"
                    );
                }
                let rows = rows
                    .into_iter()
                    .filter(|r| !r.own)
                    .map(|r| {
                        let event = match r.kind {
                            crate::store::LedgerKind::HumanAnswer => {
                                crate::compliance::ledger::Event::HumanAnswer
                            }
                            crate::store::LedgerKind::Abandon => {
                                crate::compliance::ledger::Event::Abandon
                            }
                        };
                        (Millis(r.at).runner_ms(), event)
                    })
                    .collect();
                let (rows, nodes) = match scope {
                    LedgerScope::Campaign => (rows, nodes),
                    LedgerScope::Node => (Vec::new(), 1),
                };
                if tx.send(driver::Input::Cluster { rows, nodes }).is_err() {
                    return;
                }
            }
            // Fail closed: a node that cannot see the others assumes one
            // more shares the allowance than it last saw.
            Err(e) => {
                tracing::warn!(campaign = %campaign, error = %e, "cluster sync failed");
                let rows = Vec::new();
                let nodes = match scope {
                    LedgerScope::Campaign => nodes_seen.saturating_add(1),
                    LedgerScope::Node => 1,
                };
                if tx.send(driver::Input::Cluster { rows, nodes }).is_err() {
                    return;
                }
            }
        }
        tokio::time::sleep(CLUSTER_SYNC).await;
    }
}

/// How often a node refreshes its agents' session leases and its lead
/// claims.
pub const SESSION_HEARTBEAT: Duration = Duration::from_secs(15);

/// A session lease not refreshed for this long is free: its node died.
pub const SESSION_LAPSE: Duration = Duration::from_secs(60);

/// The most browser softphones answered and not yet taken by a login (each
/// holds sockets until its browser connects or gives up).
pub const SOFTPHONES_PENDING: usize = 1_000;

/// State shared by the campaign tasks and the HTTP handlers.
pub struct Shared {
    /// The store.
    pub store: Store,
    /// This node's name (agent session leases carry it).
    pub node: String,
    /// The service's clock.
    pub clock: Clock,
    /// Campaigns by name.
    pub campaigns: BTreeMap<String, CampaignHandle>,
    /// Logged-in agents by id.
    pub sessions: Mutex<HashMap<String, SessionView>>,
    /// Events for `GET /api/events`.
    pub events: EventLog,
    /// The live board.
    pub board: LiveBoard,
    /// Answer-to-bridge latencies.
    pub latency: Latencies,
    /// The do-not-call data every dial and every lead posted to the API
    /// is screened against: loaded at start, replaced when the store's
    /// lists or a saved national registry change ([`registries::watch`]);
    /// read it with [`Shared::registries`].
    pub registries: std::sync::RwLock<Arc<crate::compliance::Registries>>,
    /// UAs for agent phones, by address, transport and the name a TLS
    /// certificate must carry (the UA talks to one peer).
    agent_uas: tokio::sync::Mutex<AgentUas>,
    /// A CA to trust besides the system's roots, for agent phones over
    /// TLS (`--tls-ca`).
    tls_ca: Option<std::path::PathBuf>,
    /// The certificate agent phones' TLS UAs listen with (`--tls-cert`),
    /// as the provider's do: a phone can reach our Contact after its
    /// connection closed.
    tls_server: Option<Arc<rustls::ServerConfig>>,
    /// The DNS server agent phones named by host are looked up at
    /// (`--dns-server`; `None`: the system's).
    dns_server: Option<SocketAddr>,
    /// The resolver for agent phones, made on first use (its cache is
    /// kept).
    resolver: std::sync::OnceLock<crate::sip::resolve::Resolver>,
    /// Browser softphones answered but not yet taken by a login, by agent.
    softphones: Mutex<HashMap<String, crate::media::webrtc::Softphone>>,
    /// Where RTP sockets bind.
    media_ip: IpAddr,
    /// The address peers reach this host at, behind NAT (`--external-address`).
    external_ip: Option<IpAddr>,
    /// The RTP port range (`None`: any free port).
    rtp_ports: Option<Arc<crate::media::ports::PortRange>>,
}

impl Shared {
    /// The do-not-call data to screen against now.
    pub fn registries(&self) -> Arc<crate::compliance::Registries> {
        match self.registries.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A non-blocking RTP socket on `ip`, from the configured range when
    /// there is one.
    /// A socket for a call's RTP with one for its RTCP on the port above.
    pub(crate) fn rtp_pair(
        &self,
        ip: IpAddr,
    ) -> std::io::Result<(std::net::UdpSocket, std::net::UdpSocket)> {
        match &self.rtp_ports {
            Some(r) => r
                .bind_pair_std(ip)
                .map_err(|e| std::io::Error::other(e.to_string())),
            None => crate::media::ports::ephemeral_pair(ip),
        }
    }

    pub(crate) fn rtp_socket(&self, ip: IpAddr) -> std::io::Result<std::net::UdpSocket> {
        match &self.rtp_ports {
            Some(r) => r
                .bind_std(ip)
                .map_err(|e| std::io::Error::other(e.to_string())),
            None => {
                let s = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
                s.set_nonblocking(true)?;
                Ok(s)
            }
        }
    }

    /// Answers a browser's SDP offer for agent `agent`'s softphone: the
    /// leg waits (up to [`crate::media::webrtc::CONNECT_TIMEOUT`]) for the
    /// agent's login to take it. A second offer replaces the first.
    pub fn softphone_offer(
        &self,
        agent: &str,
        offer: &str,
    ) -> Result<String, crate::media::webrtc::SoftphoneError> {
        {
            let mut m = self
                .softphones
                .lock()
                .map_err(|_| std::io::Error::other("softphones lock poisoned"))?;
            // Those whose browser never connected (or went) are dropped.
            m.retain(|_, p| !matches!(*p.state.borrow(), PhoneState::Ended(_)));
            if m.len() >= SOFTPHONES_PENDING && !m.contains_key(agent) {
                return Err(std::io::Error::other(format!(
                    "{SOFTPHONES_PENDING} softphones are waiting for their logins"
                ))
                .into());
            }
        }
        let ext = self.rtp_socket(self.media_ip)?;
        let phone = crate::media::webrtc::Softphone::accept(offer, ext, self.external_ip)?;
        let answer = phone.answer.clone();
        if let Ok(mut m) = self.softphones.lock() {
            // Dropping the one replaced hangs it up.
            m.insert(agent.to_string(), phone);
        }
        Ok(answer)
    }

    /// Takes agent `agent`'s answered softphone, if it is still waiting.
    pub fn take_softphone(&self, agent: &str) -> Option<crate::media::webrtc::Softphone> {
        self.softphones
            .lock()
            .ok()?
            .remove(agent)
            .filter(|p| !matches!(*p.state.borrow(), PhoneState::Ended(_)))
    }

    /// The UA for an agent phone at `addr` over `transport` (its URI's:
    /// `;transport=tcp`, `sips:` for TLS, the certificate checked against
    /// `server_name`: the URI's host), started on first use.
    async fn agent_ua(
        &self,
        addrs: &[SocketAddr],
        transport: crate::sip::Transport,
        server_name: &str,
    ) -> Result<Arc<Ua>, SipError> {
        let Some(&first) = addrs.first() else {
            return Err(SipError::Resolve(format!("{server_name}: no address")));
        };
        // One UA per phone host: its addresses as a set (SRV weights
        // draw their order anew at each lookup).
        let mut set = addrs.to_vec();
        set.sort();
        set.dedup();
        let mut uas = self.agent_uas.lock().await;
        let key = (set, transport, server_name.to_string());
        if let Some(ua) = uas.get(&key) {
            return Ok(ua.clone());
        }
        let mut cfg = UaConfig::new(first, transport);
        // A stream transport connects to the first address that accepts.
        cfg.destinations = addrs.to_vec();
        cfg.bind = SocketAddr::new(self.media_ip, 0);
        if transport == crate::sip::Transport::Tls {
            cfg.tls = Some(crate::sip::tls::TlsClient::new(
                server_name,
                self.tls_ca.as_deref(),
            )?);
            cfg.tls_server = self.tls_server.clone();
        }
        let ua = Arc::new(Ua::start(cfg).await?);
        uas.insert(key, ua.clone());
        Ok(ua)
    }

    /// Where an agent phone is: an IP address as written, a host name
    /// through DNS as a provider's is (RFC 3263: NAPTR, SRV, A/AAAA, every
    /// address in the order to try).
    pub(crate) async fn locate_phone(
        &self,
        uri: &crate::sip::resolve::SipUri,
    ) -> Result<crate::sip::resolve::Resolved, SipError> {
        if let Some(r) = crate::sip::resolve::numeric(uri) {
            return Ok(r);
        }
        let resolver = match self.resolver.get() {
            Some(r) => r.clone(),
            None => {
                let r = crate::sip::resolve::Resolver::new(self.dns_server)?;
                self.resolver.get_or_init(|| r).clone()
            }
        };
        resolver.resolve(uri).await
    }

    /// Publishes an event (no subscriber is fine).
    pub(crate) fn emit(&self, e: ServiceEvent) {
        self.events.emit(e);
    }

    /// See [`EventLog::since`].
    pub(crate) fn events_since(&self, last_id: Option<u64>) -> Resumed {
        self.events.since(last_id)
    }

    /// Runs `f` on agent `agent`'s session, if it has one.
    pub(crate) fn with_session<R>(
        &self,
        agent: &str,
        f: impl FnOnce(&mut SessionView) -> R,
    ) -> Option<R> {
        let mut s = self.sessions.lock().ok()?;
        s.get_mut(agent).map(f)
    }
}

/// Agent-phone UAs by the phone's addresses, transport and TLS server name.
type AgentUas = HashMap<(Vec<SocketAddr>, crate::sip::Transport, String), Arc<Ua>>;

/// What a run did, for the caller.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    /// Calls forced to end at shutdown after the grace period.
    pub hung_up_at_shutdown: u64,
    /// Answer-to-bridge latency: bridges, p50, p99, max (ms).
    pub bridge_latency_ms: (usize, f64, f64, f64),
}

/// A started service: the HTTP address and the shared state.
pub struct Running {
    /// Where the HTTP API listens.
    pub http: SocketAddr,
    /// Shared state (sessions, board, latencies).
    pub shared: Arc<Shared>,
    task: tokio::task::JoinHandle<Result<RunSummary, ServiceError>>,
}

impl Running {
    /// Waits for the service to finish (after its shutdown future fired).
    pub async fn wait(self) -> Result<RunSummary, ServiceError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(ServiceError::Io(std::io::Error::other(e.to_string()))),
        }
    }
}

/// Starts the service on `listener` and returns once it is accepting
/// requests and dialling; it stops when `shutdown` completes (stop
/// dialling, let calls finish within the grace period, hang up the rest,
/// close agent states, release unused lead claims, flush the store).
pub async fn start(
    cfg: ServiceConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, ServiceError> {
    let clock = cfg.clock.clone();
    let store = if clock.is_paused() {
        cfg.store.holding_paused_time()
    } else {
        cfg.store.clone()
    };
    refuse_a_live_namesake(&store, &cfg.node, &clock).await?;
    let now = clock.now().ms();
    let http_addr = listener.local_addr()?;
    let media_ip = match cfg.sip_bind.ip() {
        ip if ip.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        ip => ip,
    };
    let (write_tx, writer_task) = writer::spawn(store.clone());
    let events = EventLog::starting_at(1024, first_event_id(crate::clock::Millis(now)));
    let mut campaigns = BTreeMap::new();
    let mut inboxes = Vec::new();
    let registries = Arc::new(cfg.registries);
    let dnd_campaigns = cfg.campaigns.clone();
    // One UA per provider (transport and addresses), shared by the
    // campaigns dialling it.
    let mut uas: HashMap<(crate::sip::Transport, Vec<SocketAddr>), Arc<Ua>> = HashMap::new();
    let mut setups = Vec::new();
    for c in cfg.campaigns {
        let provider_err =
            |e: crate::sip::SipError| ServiceError::Provider(c.name.clone(), e.to_string());
        // `located`: the DNS answer a named provider came from.
        let (mut ucfg, provider, located) = match cfg.provider {
            // The sandbox or SIPp, over UDP, whatever the campaign says.
            Some(p) => (
                UaConfig::new(p, crate::sip::Transport::Udp),
                crate::sip::resolve::SipUri::parse(&format!("sip:{p}")).map_err(provider_err)?,
                None,
            ),
            None => {
                let uri =
                    crate::sip::resolve::SipUri::parse(&c.provider.uri).map_err(provider_err)?;
                let (ucfg, resolved) = cfg.net.locate(&uri).await.map_err(provider_err)?;
                (ucfg, uri, Some(resolved))
            }
        };
        // Read once here, and said once: the driver and the recovery of
        // left legs take the same answer.
        let credentials = match calls::trunk_credentials(&c, |name| std::env::var(name).ok()) {
            Ok(creds) => creds,
            Err(why) => {
                tracing::warn!(campaign = %c.name, "{why}");
                None
            }
        };
        if c.provider.register && cfg.provider.is_none() {
            match credentials.clone() {
                Some(creds) => {
                    let user = creds.username.clone();
                    ucfg.register = Some(
                        crate::sip::register::for_provider(
                            &provider,
                            &user,
                            ucfg.bind,
                            ucfg.transport,
                            c.provider.register_expires,
                            Some(creds),
                        )
                        .map_err(provider_err)?,
                    );
                }
                None => {
                    return Err(ServiceError::Provider(
                        c.name.clone(),
                        "register = true but the trunk credentials are not in the environment"
                            .into(),
                    ));
                }
            }
        }
        let key = (
            ucfg.transport,
            if ucfg.destinations.is_empty() {
                vec![ucfg.provider]
            } else {
                ucfg.destinations.clone()
            },
        );
        let ua = match uas.get(&key) {
            Some(ua) => ua.clone(),
            None => {
                ucfg.bind = if uas.is_empty() {
                    cfg.sip_bind
                } else {
                    SocketAddr::new(cfg.sip_bind.ip(), 0)
                };
                ucfg.external = cfg.net.external;
                let transport = ucfg.transport;
                let ua = Arc::new(Ua::start(ucfg).await.map_err(provider_err)?);
                uas.insert(key, ua.clone());
                // A named provider is looked up again as its TTL runs out.
                if let Some(ttl) = located.and_then(|r| r.ttl) {
                    let resolver = crate::sip::resolve::Resolver::new(cfg.net.dns_server)
                        .map_err(provider_err)?;
                    tokio::spawn(crate::sip::ua::keep_resolved(
                        Arc::downgrade(&ua),
                        resolver,
                        provider.clone(),
                        transport,
                        ttl,
                        cfg.net.relookup_floor,
                    ));
                }
                ua
            }
        };

        let id = store.upsert_campaign(&c, now).await?;
        let recovered = recovery::recover(&store, id, &c, &cfg.node, Millis(now)).await?;
        if recovered.interrupted > 0 || recovered.agents_closed > 0 {
            tracing::warn!(
                campaign = %c.name,
                interrupted = recovered.interrupted,
                agent_states_closed = recovered.agents_closed,
                "recovered from an unclean stop"
            );
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let c = Arc::new(c);
        campaigns.insert(
            c.name.clone(),
            CampaignHandle {
                id,
                campaign: c.clone(),
                tx: tx.clone(),
                controls: Arc::new(Mutex::new(recovered.controls.clone())),
            },
        );
        inboxes.push(tx.clone());
        // The recorded message is a legal requirement where it is set: a
        // file gone since validation stops the start, not the message.
        let prompt = match &c.message_file {
            Some(path) => Some(crate::media::wav::read_file(path).map_err(|e| {
                ServiceError::Provider(c.name.clone(), format!("{}: {e}", path.display()))
            })?),
            None => None,
        };
        setups.push((c, id, rx, tx, ua, recovered, provider, prompt, credentials));
    }
    // Sessions do not survive a restart: give back this node's agent
    // leases (only this node's) before serving.
    let released = store.session_release_node(&cfg.node).await?;
    if released > 0 {
        tracing::warn!(
            released,
            "agent session leases left by an unclean stop given back"
        );
    }
    // Read once, for agent phones over TLS (the provider's UA reads its
    // own through `SipNet::locate`).
    let tls_server = match &cfg.net.tls_listen {
        Some((cert, key)) => Some(crate::sip::tls::server_config(cert, key)?),
        None => None,
    };
    let shared = Arc::new(Shared {
        store: store.clone(),
        node: cfg.node.clone(),
        clock: clock.clone(),
        campaigns,
        sessions: Mutex::new(HashMap::new()),
        events,
        board: cfg.board,
        latency: Latencies::default(),
        registries: std::sync::RwLock::new(registries),
        agent_uas: tokio::sync::Mutex::new(HashMap::new()),
        softphones: Mutex::new(HashMap::new()),
        media_ip,
        external_ip: cfg.net.external,
        rtp_ports: cfg.rtp_ports.clone(),
        tls_ca: cfg.net.tls_ca.clone(),
        tls_server,
        dns_server: cfg.net.dns_server,
        resolver: std::sync::OnceLock::new(),
    });
    // The SIP legs a crash of this node left up are ended before new
    // calls go out (in the background: serving does not wait).
    let left_uas: HashMap<i64, (Arc<Ua>, Option<crate::sip::auth::Credentials>)> = setups
        .iter()
        .map(|(_, id, _, _, ua, _, _, _, credentials)| (*id, (ua.clone(), credentials.clone())))
        .collect();
    let left = recovery::end_left_legs(&shared, &left_uas).await?;
    if left > 0 {
        tracing::warn!(legs = left, "ending the SIP legs an unclean stop left up");
    }
    let mut tasks = Vec::new();
    let mut syncs = Vec::new();
    for (c, id, rx, tx, ua, recovered, provider, prompt, credentials) in setups {
        syncs.push(tokio::spawn(cluster_sync(
            shared.clone(),
            id,
            c.name.clone(),
            crate::store::LedgerFeed::resuming(
                recovered.ledger_last_id,
                recovered.ledger_recent_ids.clone(),
                shared.clock.now().ms(),
            ),
            recovered.controls.version,
            cfg.ledger_scope,
            tx.clone(),
        )));
        let driver = driver::Driver::new(
            c,
            id,
            shared.clone(),
            ua,
            write_tx.clone(),
            tx,
            driver::Settings {
                node: cfg.node.clone(),
                grace: cfg.grace,
                lease: cfg.lease,
                media_ip,
                external_ip: cfg.net.external,
            },
            recovered,
            provider,
            prompt,
            credentials,
        );
        tasks.push(tokio::spawn(driver.run(rx)));
    }
    syncs.push(tokio::spawn(registries::watch(
        shared.clone(),
        dnd_campaigns,
        cfg.dnd_dir.clone(),
    )));
    let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    let app = crate::api::router(shared.clone(), closing_rx);
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = http_stop_rx.await;
        })
        .await
    });
    let heartbeat = {
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SESSION_HEARTBEAT).await;
                let now = shared.clock.now().ms();
                match shared.store.session_heartbeat(&shared.node, now).await {
                    Ok(held) => drop_lost_sessions(&shared, &held).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "refreshing agent session leases failed");
                    }
                }
                let running: Vec<i64> = shared.campaigns.values().map(|h| h.id).collect();
                if let Err(e) = shared
                    .store
                    .claims_heartbeat(&shared.node, &running, now)
                    .await
                {
                    tracing::warn!(error = %e, "refreshing lead claims failed");
                }
            }
        })
    };
    // Webhooks: this node delivers the outbox with the others (claims).
    let (webhooks_stop, webhooks_stop_rx) = tokio::sync::watch::channel(false);
    let webhooks = match crate::webhooks::Deliverer::new(
        store.clone(),
        clock.clone(),
        crate::webhooks::DeliverySettings::for_node(&cfg.node),
        cfg.net.tls_ca.as_deref(),
    ) {
        Ok(d) => Some(tokio::spawn(d.run(webhooks_stop_rx))),
        Err(e) => {
            // Events stay in the outbox for a node that can deliver them.
            tracing::error!(error = %e, "webhooks cannot be delivered from this node");
            None
        }
    };
    let shared2 = shared.clone();
    let task = tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: dialling stops, calls in progress may finish");
        for tx in &inboxes {
            let _ = tx.send(driver::Input::Shutdown);
        }
        let mut summary = RunSummary::default();
        for t in tasks {
            if let Ok(n) = t.await {
                summary.hung_up_at_shutdown += n;
            }
        }
        let _ = closing_tx.send(true);
        let _ = http_stop_tx.send(());
        // SSE streams hold the server open: do not wait for them forever.
        let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        drop(write_tx);
        let _ = writer_task.await;
        for (_, ua) in uas {
            if let Ok(ua) = Arc::try_unwrap(ua) {
                ua.shutdown().await;
            }
        }
        heartbeat.abort();
        let _ = webhooks_stop.send(true);
        if let Some(w) = webhooks {
            // A try in progress ends within its timeout; its claim lapses
            // if it does not.
            let _ = tokio::time::timeout(Duration::from_secs(2), w).await;
        }
        for s in &syncs {
            s.abort();
        }
        for h in shared2.campaigns.values() {
            if let Err(e) = shared2.store.campaign_leave(h.id, &shared2.node).await {
                tracing::warn!(error = %e, "leaving the campaign's nodes failed");
            }
        }
        if let Err(e) = shared2.store.session_release_node(&shared2.node).await {
            tracing::warn!(error = %e, "giving back agent session leases failed");
        }
        summary.bridge_latency_ms = shared2.latency.summary();
        Ok(summary)
    });
    Ok(Running {
        http: http_addr,
        shared,
        task,
    })
}

#[cfg(test)]
mod event_log_tests {
    use super::*;

    fn event(kind: &'static str) -> ServiceEvent {
        ServiceEvent {
            id: 0,
            agent: Some("a1".into()),
            campaign: "c".into(),
            kind,
            data: serde_json::Value::Null,
        }
    }

    #[test]
    fn a_resuming_stream_gets_what_it_missed_once_and_in_order() {
        let log = EventLog::new(16);
        for _ in 0..5 {
            log.emit(event("state"));
        }
        // A stream that saw up to id 2 reconnects.
        let Resumed {
            mut rx,
            replay,
            seen,
            lost,
        } = log.since(Some(2));
        let ids: Vec<u64> = replay.iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![3, 4, 5]);
        assert_eq!((seen, lost), (5, None));
        // What comes after is live, numbered on.
        log.emit(event("call"));
        let next = rx.try_recv().expect("live event");
        assert_eq!((next.id, next.kind), (6, "call"));
        // A fresh stream replays nothing; one that saw everything neither.
        assert!(log.since(None).replay.is_empty());
        let r = log.since(Some(6));
        assert!(r.replay.is_empty());
        assert_eq!((r.seen, r.lost), (6, None));
    }

    /// After a restart the ids go on above the last run's: a stream that
    /// resumes with an id from before gets every kept event and is told
    /// its loss is unknown; one with an id never given is not left
    /// waiting for ids above it.
    #[test]
    fn a_stream_resuming_across_a_restart_is_not_left_silent() {
        let t0 = crate::clock::Millis(1_764_000_000_000);
        let before = EventLog::starting_at(16, first_event_id(t0));
        for _ in 0..45 {
            before.emit(event("state"));
        }
        let last_before = before.since(None).seen;
        let after = EventLog::starting_at(16, first_event_id(crate::clock::Millis(t0.0 + 5_000)));
        for _ in 0..4 {
            after.emit(event("state"));
        }
        let r = after.since(Some(last_before));
        assert_eq!(r.replay.len(), 4);
        assert!(r.replay[0].id > last_before);
        assert_eq!(r.lost, Some(None));
        // An id this log never gave (ahead of its newest), and a small one
        // from a log that began at 1: never silent.
        let ahead = after.since(Some(u64::MAX - 1));
        assert!(ahead.replay.is_empty());
        assert_eq!(
            (ahead.seen, ahead.lost),
            (after.since(None).seen, Some(None))
        );
        let r = after.since(Some(45));
        assert_eq!((r.replay.len(), r.lost), (4, Some(None)));
        assert!(first_event_id(crate::clock::Millis(4_102_444_800_000)) < 1 << 53);
    }

    #[test]
    fn only_the_last_events_are_kept() {
        let log = EventLog::new(16);
        for _ in 0..RECENT_EVENTS + 10 {
            log.emit(event("state"));
        }
        let Resumed { replay, lost, .. } = log.since(Some(0));
        assert_eq!(lost, Some(Some(10)));
        assert_eq!(replay.len(), RECENT_EVENTS);
        assert_eq!(replay[0].id, 11);
        assert_eq!(
            replay.last().map(|e| e.id),
            Some((RECENT_EVENTS + 10) as u64)
        );
    }
}
