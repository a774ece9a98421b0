//! `dialler run` as real processes for tests and benches: the sample UK
//! campaign in a store, the sandbox provider and agent phones on loopback,
//! nodes started, killed with SIGKILL or stopped with SIGTERM, simulated
//! agents on a node's HTTP API, and the figures they are checked by.
//! Self-contained (benches include it by path).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dialler::auth::{self, Role};
use dialler::sip::sandbox::{self, SandboxConfig, SandboxStats, Weights};
use dialler::store::Store;
use rand_distr::LogNormal;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub const CAMPAIGN: &str = "uk-broadband";

pub fn campaigns_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("campaigns")
}

/// The processes' virtual start, inside the UK campaign's calling hours:
/// Tuesday 1 December 2026, 12:00 in London. Fixed, so no test reads
/// today's date; the registry is loaded at the same virtual time.
pub fn clock_start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
        .expect("a time")
        .to_utc()
}

/// The campaign, its leads and the UK sample registry in a store, and
/// agent tokens `agent01..`. Returns the DND folder, the tokens and a
/// supervisor token (the agents' phones are provisioned with it through the
/// API, as logins take provisioned phones only).
pub async fn prepare(
    store: &Store,
    dir: &Path,
    agents: u32,
) -> (PathBuf, Vec<(String, String)>, String) {
    let camp = dialler::campaign::find(&campaigns_dir(), CAMPAIGN).unwrap();
    let now = clock_start().timestamp_millis();
    let dnd = dir.join("dnd");
    dialler::demo::load_sample(store, &camp, &campaigns_dir(), &dnd, now)
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for i in 0..agents {
        let id = format!("agent{:02}", i + 1);
        let t = auth::create_token(store, Role::Agent, Some(&id), None, now)
            .await
            .unwrap();
        tokens.push((id, t.token));
    }
    let sup = auth::create_token(store, Role::Supervisor, None, None, now)
        .await
        .unwrap();
    (dnd, tokens, sup.token)
}

/// A fresh SQLite store file in `dir` with the campaign loaded (see
/// [`prepare`]), closed for the processes to open.
pub struct Fresh {
    /// Its URL.
    pub db: String,
    /// The DND folder.
    pub dnd: PathBuf,
    /// Agent ids and tokens.
    pub tokens: Vec<(String, String)>,
    /// The supervisor token the agents' phones are provisioned with.
    pub sup: String,
    /// Another supervisor token, for the test's own requests.
    pub supervisor: String,
}

/// [`Fresh`] with `agents` agents.
pub async fn fresh(dir: &Path, agents: u32) -> Fresh {
    let db = format!("sqlite://{}", dir.join("crash.db").display());
    let store = Store::open(&db).await.unwrap();
    let (dnd, tokens, sup) = prepare(&store, dir, agents).await;
    let supervisor = auth::create_token(&store, Role::Supervisor, None, None, 0)
        .await
        .unwrap()
        .token;
    store.close().await;
    Fresh {
        db,
        dnd,
        tokens,
        sup,
        supervisor,
    }
}

/// The sandbox provider (answers half the calls after a short ring; the
/// customer stays on for minutes) and the agents' phones, in this process.
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
    pub async fn start() -> Sandboxes {
        Sandboxes::start_seeded(3).await
    }

    /// As [`Sandboxes::start`], the provider's draws from `seed`.
    pub async fn start_seeded(seed: u64) -> Sandboxes {
        let (stop, _) = broadcast::channel::<()>(2);
        let spawn = |cfg: SandboxConfig| {
            let rx = stop.subscribe();
            async move { sandbox::spawn_loopback(cfg, rx).await.unwrap() }
        };
        let (provider, provider_task) = spawn(SandboxConfig {
            weights: Weights {
                answer: 0.5,
                busy: 0.1,
                no_answer: 0.3,
                reject: 0.0,
                unavailable: 0.1,
            },
            ring: (Duration::from_millis(500), Duration::from_millis(2500)),
            talk_mean: Duration::from_secs(600),
            seed,
            ..SandboxConfig::default()
        })
        .await;
        let (phones, phones_task) = spawn(SandboxConfig::agent_phones(4)).await;
        Sandboxes {
            provider,
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

/// A `dialler run` process.
pub struct Node {
    child: Child,
    /// Its HTTP address.
    pub http: SocketAddr,
}

impl Node {
    pub async fn start(
        db: &str,
        dnd: &Path,
        node: &str,
        provider: SocketAddr,
        at: DateTime<Utc>,
    ) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dialler"))
            .arg("--db")
            .arg(db)
            .arg("--campaigns")
            .arg(campaigns_dir())
            .arg("--dnd-dir")
            .arg(dnd)
            .args(["run", "--campaign", CAMPAIGN, "--listen", "127.0.0.1:0"])
            .args(["--sip-bind", "127.0.0.1:0", "--grace", "3", "--node", node])
            .arg("--provider")
            .arg(provider.to_string())
            .arg("--clock-start")
            .arg(at.to_rfc3339())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn dialler run");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let http = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = line.strip_prefix("dialler listening on http://") {
                    return addr.parse::<SocketAddr>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("dialler run --node {node} did not start"));
        // Keep draining stdout so the process never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Node { child, http }
    }

    /// SIGKILL: no shutdown code runs.
    pub async fn kill_9(mut self) {
        self.child.start_kill().expect("kill -9");
        let status = self.child.wait().await.unwrap();
        assert!(!status.success(), "killed: {status}");
    }

    /// SIGTERM, then wait for the clean exit.
    pub async fn terminate(mut self) {
        let pid = self.child.id().expect("running").to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(ok.success());
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("clean exit within 60 s")
            .unwrap();
        assert!(status.success(), "dialler run exited with {status}");
    }
}

/// Simulated agents logged in to `node` until `secs` from now: long calls,
/// so some are connected at any moment.
pub fn agents(
    node: &Node,
    tokens: &[(String, String)],
    supervisor: &str,
    phones: SocketAddr,
    secs: u64,
    seed: u64,
) -> Vec<JoinHandle<u32>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    tokens
        .iter()
        .enumerate()
        .map(|(i, (id, token))| {
            let a = dialler::demo::SimAgent {
                http: node.http,
                id: id.clone(),
                token: token.clone(),
                campaign: CAMPAIGN.into(),
                phone: format!("sip:{}@{phones}", i + 1),
                talk: LogNormal::new(20f64.ln(), 0.3).unwrap(),
                wrap: LogNormal::new(2f64.ln(), 0.3).unwrap(),
                conversion: 0.2,
                conv_codes: vec!["UPGRADED".into()],
                other_codes: vec!["NOT_INTERESTED".into()],
                seed: seed * 100 + i as u64,
                deadline,
                provision_with: Some(supervisor.to_string()),
                breaks: None,
            };
            tokio::spawn(a.run())
        })
        .collect()
}

pub async fn scalar(pool: &sqlx::SqlitePool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub async fn pg_scalar(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The live board's window figures of the campaign, from a node's API.
pub async fn window(node: &Node, supervisor: &str) -> (u64, u64) {
    for _ in 0..100 {
        let (code, body) = dialler::service::client::request(
            node.http,
            "GET",
            "/api/live",
            Some(supervisor),
            None,
        )
        .await
        .unwrap();
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let c = &v["campaigns"][CAMPAIGN];
        if let (Some(h), Some(a)) = (
            c["window_human_answers"].as_u64(),
            c["window_abandons"].as_u64(),
        ) {
            return (h, a);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no live figures for {CAMPAIGN}");
}
