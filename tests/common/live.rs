//! A whole live service in the test's process, for tests on paused time:
//! a SQLite store with a sample campaign, its leads and registry, the
//! built-in sandbox provider and agent phones on loopback, and the service
//! on a clock that starts at a chosen instant. Under
//! `#[tokio::test(start_paused = true)]` hours of campaign take seconds.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dialler::auth::{self, Role};
use dialler::campaign::Campaign;
use dialler::clock::Clock;
use dialler::service::{self, RunSummary, Running, ServiceConfig, client};
use dialler::sip::sandbox::{self, SandboxConfig, SandboxStats};
use dialler::store::Store;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

/// The sample campaigns' folder.
pub fn campaigns_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("campaigns")
}

/// Tuesday 1 December 2026, 14:30 UTC: inside every sample campaign's
/// calling hours (09:30 in New York, 14:30 in London).
pub fn tuesday() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T14:30:00Z")
        .unwrap()
        .to_utc()
}

/// A provider that answers every call after a short ring; the customer
/// stays on for `talk` on average.
pub fn answering(talk: Duration, seed: u64) -> SandboxConfig {
    SandboxConfig {
        weights: sandbox::Weights {
            answer: 1.0,
            busy: 0.0,
            no_answer: 0.0,
            reject: 0.0,
            unavailable: 0.0,
        },
        ring: (Duration::from_millis(500), Duration::from_millis(1500)),
        talk_mean: talk,
        seed,
        ..SandboxConfig::default()
    }
}

/// The sandboxes a service dials: the provider and the agents' phones.
pub struct Sandboxes {
    /// The provider's SIP address.
    pub provider: SocketAddr,
    /// The agents' phones' SIP address.
    pub phones: SocketAddr,
    stop: broadcast::Sender<()>,
    provider_task: JoinHandle<Result<SandboxStats, dialler::sip::SipError>>,
    phones_task: JoinHandle<Result<SandboxStats, dialler::sip::SipError>>,
}

impl Sandboxes {
    /// Starts both on loopback.
    pub async fn start(provider: SandboxConfig) -> Sandboxes {
        let (stop, _) = broadcast::channel(2);
        let (p, provider_task) = sandbox::spawn_loopback(provider, stop.subscribe())
            .await
            .unwrap();
        let (phones, phones_task) =
            sandbox::spawn_loopback(SandboxConfig::agent_phones(99), stop.subscribe())
                .await
                .unwrap();
        Sandboxes {
            provider: p,
            phones,
            stop,
            provider_task,
            phones_task,
        }
    }

    /// Stops both; the provider's figures.
    pub async fn stop(self) -> SandboxStats {
        self.stop_both().await.0
    }

    /// Stops both; the provider's figures and the phones'.
    pub async fn stop_both(self) -> (SandboxStats, SandboxStats) {
        let _ = self.stop.send(());
        let phones = self.phones_task.await.unwrap().unwrap();
        (self.provider_task.await.unwrap().unwrap(), phones)
    }
}

/// A store with a sample campaign loaded at `at`.
pub struct Loaded {
    /// The store.
    pub store: Store,
    /// The campaign.
    pub campaign: Campaign,
    /// Its id.
    pub campaign_id: i64,
    /// Its registries.
    pub registries: dialler::compliance::Registries,
    /// Agent ids and tokens.
    pub agents: Vec<(String, String)>,
    /// A supervisor token.
    pub supervisor: String,
    /// The SQLite file.
    pub db: PathBuf,
    /// Keeps the files.
    pub dir: tempfile::TempDir,
}

/// Loads sample campaign `name` (leads and registry) into a fresh SQLite
/// store at `at`, with `agents` agent tokens and a supervisor token.
pub async fn load(name: &str, at: DateTime<Utc>, agents: u32) -> Loaded {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let store = Store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let campaign = dialler::campaign::find(&campaigns_dir(), name).unwrap();
    let now = at.timestamp_millis();
    let (campaign_id, _, registries) = dialler::demo::load_sample(
        &store,
        &campaign,
        &campaigns_dir(),
        &dir.path().join("dnd"),
        now,
    )
    .await
    .unwrap();
    let mut tokens = Vec::new();
    for i in 0..agents {
        let id = format!("agent{:02}", i + 1);
        let t = auth::create_token(&store, Role::Agent, Some(&id), None, now)
            .await
            .unwrap();
        tokens.push((id, t.token));
    }
    let supervisor = auth::create_token(&store, Role::Supervisor, None, None, now)
        .await
        .unwrap()
        .token;
    Loaded {
        store,
        campaign,
        campaign_id,
        registries,
        agents: tokens,
        supervisor,
        db,
        dir,
    }
}

/// A running service.
pub struct Live {
    /// The running service.
    pub running: Running,
    /// Its HTTP address.
    pub http: SocketAddr,
    /// Its clock.
    pub clock: Clock,
    stop: oneshot::Sender<()>,
}

/// Starts the service for `l`'s campaign dialling `provider` at `at`, node
/// `node`, with `grace`.
pub async fn start(
    l: &Loaded,
    provider: SocketAddr,
    at: DateTime<Utc>,
    node: &str,
    grace: Duration,
) -> Live {
    start_with(
        &l.store,
        &l.campaign,
        &l.dir.path().join("dnd"),
        provider,
        at,
        node,
        grace,
    )
    .await
}

/// [`start`] on a store and DND folder of the caller's.
pub async fn start_with(
    store: &Store,
    campaign: &Campaign,
    dnd: &std::path::Path,
    provider: SocketAddr,
    at: DateTime<Utc>,
    node: &str,
    grace: Duration,
) -> Live {
    start_configured(store, campaign, dnd, at, |cfg| {
        cfg.provider = Some(provider);
        cfg.node = node.into();
        cfg.grace = grace;
    })
    .await
}

/// [`start_with`] where `edit` sets the service's configuration (the
/// provider, its DNS, the node) before it starts.
pub async fn start_configured(
    store: &Store,
    campaign: &Campaign,
    dnd: &std::path::Path,
    at: DateTime<Utc>,
    edit: impl FnOnce(&mut ServiceConfig),
) -> Live {
    let clock = Clock::starting_at(at);
    let registries = dialler::registry::load(store, dnd, &[campaign])
        .await
        .unwrap();
    let mut cfg = ServiceConfig::new(store.clone(), vec![campaign.clone()], registries);
    cfg.clock = clock.clone();
    cfg.sip_bind = "127.0.0.1:0".parse().unwrap();
    edit(&mut cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let running = service::start(cfg, listener, async move {
        let _ = rx.await;
    })
    .await
    .unwrap();
    Live {
        http: running.http,
        running,
        clock,
        stop,
    }
}

impl Live {
    /// One request.
    pub async fn req(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let (code, text) = client::request(self.http, method, path, Some(token), body)
            .await
            .unwrap();
        (
            code,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Provisions `phone` for `agent` with a supervisor token, as logins
    /// take provisioned phones only.
    pub async fn provision(&self, supervisor: &str, agent: &str, phone: &str) {
        let body = serde_json::json!({ "sip_uri": phone }).to_string();
        let (code, v) = self
            .req(
                "POST",
                &format!("/api/agents/{agent}/phones"),
                supervisor,
                Some(&body),
            )
            .await;
        assert_eq!(code, 200, "provisioning {phone} for {agent}: {v}");
    }

    /// Makes logged-in `agent` ready and waits, at most `limit` on the
    /// test's clock, until a call is put through to it: whether one was.
    pub async fn ready_until_call(&self, agent: &str, token: &str, limit: Duration) -> bool {
        let (code, v) = self
            .req("POST", &format!("/api/agents/{agent}/ready"), token, None)
            .await;
        assert_eq!(code, 200, "{agent} ready: {v}");
        let call = format!("/api/agents/{agent}/call");
        until(limit, || async {
            self.req("GET", &call, token, None).await.0 == 200
        })
        .await
    }

    /// Provisions a phone at `phones` for each of `l`'s agents, logs each
    /// in to uk-broadband there and makes it ready.
    pub async fn staff(&self, l: &Loaded, phones: std::net::SocketAddr) {
        for (id, tok) in &l.agents {
            let phone = format!("sip:{id}@{phones}");
            self.provision(&l.supervisor, id, &phone).await;
            let (code, v) = self.login(id, tok, &phone).await;
            assert_eq!(code, 200, "{id} login: {v}");
            let (code, v) = self
                .req("POST", &format!("/api/agents/{id}/ready"), tok, None)
                .await;
            assert_eq!(code, 200, "{id} ready: {v}");
        }
    }

    /// Logs `agent` in to uk-broadband at `phone` with its token.
    pub async fn login(&self, agent: &str, token: &str, phone: &str) -> (u16, serde_json::Value) {
        let body = serde_json::json!({ "campaign": "uk-broadband", "sip_uri": phone }).to_string();
        self.req(
            "POST",
            &format!("/api/agents/{agent}/login"),
            token,
            Some(&body),
        )
        .await
    }

    /// Shuts down and waits for the end.
    pub async fn stop(self) -> RunSummary {
        let _ = self.stop.send(());
        self.running.wait().await.unwrap()
    }
}

/// Waits (on the test's clock) until `f` holds, checking every 100 ms, at
/// most `limit`.
pub async fn until<F: std::future::Future<Output = bool>>(
    limit: Duration,
    mut f: impl FnMut() -> F,
) -> bool {
    let end = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < end {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    f().await
}
