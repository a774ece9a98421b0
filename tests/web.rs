//! The supervisor's web surface, served standalone on 127.0.0.1:0 with a
//! real SQLite store and a live board the test publishes on: role access,
//! the live board as JSON and as an event stream, reports, `/metrics`,
//! the OpenAPI document, and the dashboard rendered in headless Chromium.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dialler::api::web::{self, Campaigns, WebState};
use dialler::auth::{Role, create_token};
use dialler::campaign::Campaign;
use dialler::clock::Clock;
use dialler::live::{CampaignLive, LiveBoard};
use dialler::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn campaign(name: &str) -> Campaign {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("campaigns")
        .join(format!("{name}.toml"));
    Campaign::load(&path).expect("sample campaign is valid")
}

struct Server {
    addr: SocketAddr,
    board: LiveBoard,
    store: Store,
    supervisor: String,
    admin: String,
    agent: String,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    start_with(None).await
}

/// A server whose event streams end when `closing` turns true, if given.
async fn start_with(closing: Option<tokio::sync::watch::Receiver<bool>>) -> Server {
    let (store, dir) = common::sqlite_store().await;
    let token = |role, agent| {
        let store = store.clone();
        async move {
            create_token(&store, role, agent, Some("web test"), 0)
                .await
                .expect("token")
                .token
        }
    };
    let supervisor = token(Role::Supervisor, None).await;
    let admin = token(Role::Admin, None).await;
    let agent = token(Role::Agent, Some("alice")).await;
    let uk = campaign("uk-broadband");
    store.upsert_campaign(&uk, 0).await.expect("campaign");
    // us-home-solar is loaded but has nothing in the store.
    let campaigns = Campaigns::new(vec![uk, campaign("us-home-solar")]);
    let board = LiveBoard::new();
    let routes = match closing {
        Some(c) => web::routes_until(c),
        None => web::routes(),
    };
    let app = routes
        .with_state(WebState {
            store: store.clone(),
            board: board.clone(),
            campaigns,
            clock: clock(),
        })
        // The wallboard's rows come from the agents' side of the API
        // (tested with the whole service in tests/live.rs); here, its
        // shape, for the page to render.
        .route(
            "/api/wallboard",
            axum::routing::get(|| async { axum::Json(wallboard_fixture()) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    Server {
        addr,
        board,
        store,
        supervisor,
        admin,
        agent,
        _dir: dir,
    }
}

/// What `GET /api/wallboard` answers, for the page's rows.
fn wallboard_fixture() -> serde_json::Value {
    let hour = now_ms() - now_ms().rem_euclid(3_600_000);
    let agents: Vec<serde_json::Value> = (1..=6)
        .map(|i| {
            let (state, call) = match i % 3 {
                0 => ("paused", serde_json::Value::Null),
                1 => ("on_call", serde_json::json!(40.0 + f64::from(i) * 13.0)),
                _ => ("ready", serde_json::Value::Null),
            };
            serde_json::json!({
                "agent": format!("agent{i:02}"), "state": state, "in_state_s": 20.0 * f64::from(i),
                "reason": if state == "paused" { serde_json::json!("break") } else { serde_json::Value::Null },
                "call_s": call, "calls": 10 + i, "aht_s": 180.5 + f64::from(i), "conversions": i % 4,
            })
        })
        .collect();
    let board = |name: &str| {
        serde_json::json!({
            "name": name, "run_state": "running", "agents": agents,
            "callbacks": [{"lead_id": 1, "phone": "+44******0123", "due_at": now_ms() + 600_000, "agent_id": "agent02"}],
            "hourly": [
                {"hour": hour - 3_600_000, "attempts": 410, "answers": 150, "abandons": 3, "conversions": 12},
                {"hour": hour, "attempts": 220, "answers": 80, "abandons": 1, "conversions": 7}
            ],
        })
    };
    serde_json::json!({
        "now_ms": now_ms(),
        "campaigns": [board("uk-broadband"), board("us-home-solar")],
    })
}

/// The tests' clock: a fixed start (no test reads today's date), at the
/// real pace (the browser's timers are real).
fn clock() -> Clock {
    static CLOCK: std::sync::OnceLock<Clock> = std::sync::OnceLock::new();
    CLOCK
        .get_or_init(|| {
            let start = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
                .expect("time")
                .to_utc();
            Clock::starting_at(start)
        })
        .clone()
}

fn now_ms() -> i64 {
    clock().now().ms()
}

fn figures(name: &str) -> CampaignLive {
    CampaignLive {
        name: name.into(),
        at_ms: now_ms(),
        agents_ready: 4,
        agents_on_call: 7,
        agents_wrap_up: 2,
        agents_paused: 1,
        calls_ringing: 9,
        calls_waiting: 1,
        dial_level: 1.85,
        window_human_answers: 400,
        window_abandons: 11,
        window_rate_percent: 2.75,
        limit_percent: 3.0,
        target_percent: 2.5,
        run_state: dialler::controls::RunState::Running,
        max_dial_level: 3.0,
        attempts: 1200,
        human_answers: 520,
        connects: 509,
        abandons: 11,
        contacts: 480,
        conversions: 60,
        opt_outs: 2,
        outcomes: [
            ("connected".to_string(), 509),
            ("no_answer".to_string(), 410),
            ("busy".to_string(), 120),
        ]
        .into(),
        calls_per_second: 3.4,
        holiday_calendar_days_left: None,
        dnd_registry_days_left: None,
    }
}

// ---- a small HTTP/1.1 client (no client crate for a few requests) ---------

type Headers = Vec<(String, String)>;

struct Reply {
    status: u16,
    headers: Headers,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

fn request(path: &str, token: Option<&str>) -> String {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n{auth}Connection: close\r\n\r\n")
}

/// Splits a response head from its body; `None` until the head is complete.
fn head(raw: &[u8]) -> Option<(u16, Headers, usize)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = std::str::from_utf8(&raw[..end]).expect("head is text");
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some((status, headers, end + 4))
}

/// The complete chunks of a chunked body.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&body[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .expect("chunk size");
        if size == 0 || body.len() < eol + 2 + size + 2 {
            break;
        }
        out.extend_from_slice(&body[eol + 2..eol + 2 + size]);
        body = &body[eol + 2 + size + 2..];
    }
    out
}

async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Reply {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request(path, token).as_bytes())
        .await
        .expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("reply in time")
        .expect("read");
    let (status, headers, at) = head(&raw).expect("a complete head");
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(&raw[at..])
    } else {
        raw[at..].to_vec()
    };
    Reply {
        status,
        headers,
        body: String::from_utf8(body).expect("body is text"),
    }
}

/// An open event stream: the reply head, and the body as it arrives.
struct Stream {
    socket: TcpStream,
    raw: Vec<u8>,
    body_at: usize,
}

impl Stream {
    async fn open(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, Stream) {
        let mut socket = TcpStream::connect(addr).await.expect("connect");
        socket
            .write_all(request(path, token).as_bytes())
            .await
            .expect("write");
        let mut s = Stream {
            socket,
            raw: Vec::new(),
            body_at: 0,
        };
        loop {
            if let Some((status, _, at)) = head(&s.raw) {
                s.body_at = at;
                return (status, s);
            }
            s.read_some(Duration::from_secs(5)).await;
        }
    }

    async fn read_some(&mut self, within: Duration) -> bool {
        let mut buf = [0u8; 8192];
        match tokio::time::timeout(within, self.socket.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                self.raw.extend_from_slice(&buf[..n]);
                true
            }
            Ok(Ok(_)) => panic!("the stream ended"),
            Ok(Err(e)) => panic!("reading the stream: {e}"),
            Err(_) => false,
        }
    }

    /// True once the server ends the response within `within`.
    async fn ends_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        let mut buf = [0u8; 8192];
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.socket.read(&mut buf)).await {
                Ok(Ok(0)) => return true,
                Ok(Ok(n)) => {
                    self.raw.extend_from_slice(&buf[..n]);
                    if self.raw.ends_with(b"\r\n0\r\n\r\n") {
                        return true;
                    }
                }
                Ok(Err(_)) => return true,
                Err(_) => return false,
            }
        }
    }

    /// The `data:` of every complete `board` event so far.
    fn events(&self) -> Vec<serde_json::Value> {
        let body = dechunk(&self.raw[self.body_at..]);
        let text = String::from_utf8_lossy(&body);
        text.split("\n\n")
            .filter(|e| e.lines().any(|l| l == "event: board"))
            .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(|d| serde_json::from_str(d).expect("event data is JSON"))
            .collect()
    }

    /// Reads until `pred` holds for some event, or panics after `within`.
    async fn until(
        &mut self,
        within: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
                return e;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero(),
                "no such event within {within:?}; got {:?}",
                self.events()
            );
            self.read_some(left).await;
        }
    }
}

// ---- access -----------------------------------------------------------------

#[tokio::test]
async fn supervisor_routes_need_a_supervisor_token() {
    let s = start().await;
    let report = "/api/reports/uk-broadband?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z";
    for path in ["/api/live", report] {
        let r = get(s.addr, path, None).await;
        assert_eq!(r.status, 401, "{path} without a token");
        assert_eq!(r.json()["status"], 401);
        assert!(r.json()["error"]["message"].is_string());
        assert_eq!(r.json()["error"]["code"], "unauthorized");
        let r = get(s.addr, path, Some("dlr_not_a_token")).await;
        assert_eq!(r.status, 401, "{path} with an unknown token");
        let r = get(s.addr, path, Some(&s.agent)).await;
        assert_eq!(r.status, 403, "{path} with an agent token");
        assert_eq!(r.json()["status"], 403);
        for t in [&s.supervisor, &s.admin] {
            let r = get(s.addr, path, Some(t)).await;
            assert_eq!(r.status, 200, "{path}: {}", r.body);
        }
    }
    // The event stream: refused before it starts.
    let (status, _) = Stream::open(s.addr, "/api/live/stream", None).await;
    assert_eq!(status, 401);
    let (status, _) = Stream::open(s.addr, "/api/live/stream", Some(&s.agent)).await;
    assert_eq!(status, 403);
    // The token in the query string, as EventSource sends it: on the
    // event streams only.
    let (status, _) = Stream::open(
        s.addr,
        &format!("/api/live/stream?token={}", s.supervisor),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) =
        Stream::open(s.addr, &format!("/api/live/stream?token={}", s.agent), None).await;
    assert_eq!(status, 403);
    let r = get(s.addr, &format!("/api/live?token={}", s.supervisor), None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("only by the event streams"), "{}", r.body);
    // API answers are not stored nor sniffed.
    let r = get(s.addr, "/api/live", Some(&s.supervisor)).await;
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    // Each answer has a request id, the same as the log lines of it.
    let id = r.header("x-request-id").unwrap_or_default().to_string();
    assert_eq!(id.len(), 16, "{id:?}");
    let again = get(s.addr, "/api/live", Some(&s.supervisor)).await;
    assert_ne!(again.header("x-request-id"), Some(id.as_str()));
    // Open routes.
    for path in ["/", "/metrics", "/api/openapi.json"] {
        assert_eq!(get(s.addr, path, None).await.status, 200, "{path}");
    }
}

// ---- live board ---------------------------------------------------------------

#[tokio::test]
async fn the_live_board_shows_what_was_published() {
    let s = start().await;
    let r = get(s.addr, "/api/live", Some(&s.supervisor)).await;
    assert_eq!(r.json()["campaigns"], serde_json::json!({}));
    s.board.publish(figures("uk-broadband"));
    let v = get(s.addr, "/api/live", Some(&s.supervisor)).await.json();
    let c = &v["campaigns"]["uk-broadband"];
    assert_eq!(c["agents_ready"], 4);
    assert_eq!(c["agents_on_call"], 7);
    assert_eq!(c["window_rate_percent"], 2.75);
    assert_eq!(c["outcomes"]["busy"], 120);
    assert_eq!(c["contact_rate"], 0.4);
    assert_eq!(c["conversion_rate"], 0.125);
    assert!(v["now_ms"].as_i64().is_some_and(|t| t > 0));
}

#[tokio::test]
async fn the_stream_sends_the_board_then_each_change_at_most_twice_a_second() {
    let s = start().await;
    s.board.publish(figures("uk-broadband"));
    let (status, mut stream) = Stream::open(s.addr, "/api/live/stream", Some(&s.supervisor)).await;
    assert_eq!(status, 200);
    let first = stream
        .until(Duration::from_secs(5), |e| {
            e["campaigns"]["uk-broadband"]["attempts"] == 1200
        })
        .await;
    assert_eq!(first["campaigns"]["uk-broadband"]["agents_ready"], 4);

    let mut f = figures("uk-broadband");
    f.attempts = 1242;
    f.agents_ready = 5;
    s.board.publish(f.clone());
    let e = stream
        .until(Duration::from_secs(5), |e| {
            e["campaigns"]["uk-broadband"]["attempts"] == 1242
        })
        .await;
    assert_eq!(e["campaigns"]["uk-broadband"]["agents_ready"], 5);

    // A burst of changes folds into few events, ending on the last.
    let before = stream.events().len();
    let started = std::time::Instant::now();
    for i in 0..40 {
        f.attempts = 2000 + i;
        s.board.publish(f.clone());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    stream
        .until(Duration::from_secs(5), |e| {
            e["campaigns"]["uk-broadband"]["attempts"] == 2039
        })
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let sent = stream.events().len() - before;
    assert!(
        (sent as f64) <= elapsed * 2.0 + 2.0,
        "{sent} events in {elapsed:.2} s"
    );
    assert!(sent < 40, "{sent} events for 40 changes");
}

#[tokio::test]
async fn streams_end_when_the_server_closes_them() {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let s = start_with(Some(rx)).await;
    s.board.publish(figures("uk-broadband"));
    let (status, mut stream) = Stream::open(s.addr, "/api/live/stream", Some(&s.supervisor)).await;
    assert_eq!(status, 200);
    stream
        .until(Duration::from_secs(5), |e| {
            e["campaigns"]["uk-broadband"].is_object()
        })
        .await;
    assert!(!stream.ends_within(Duration::from_millis(700)).await);
    tx.send_replace(true);
    assert!(
        stream.ends_within(Duration::from_secs(5)).await,
        "the stream outlived closing"
    );
    // A stream opened after closing ends at once.
    let (status, mut late) = Stream::open(s.addr, "/api/live/stream", Some(&s.supervisor)).await;
    assert_eq!(status, 200);
    assert!(late.ends_within(Duration::from_secs(5)).await);
}

/// A revoked token's open stream ends within 5 s.
#[tokio::test]
async fn revoking_a_token_ends_its_open_streams() {
    let s = start().await;
    s.board.publish(figures("uk-broadband"));
    let sup = create_token(&s.store, Role::Supervisor, None, Some("revoked"), 0)
        .await
        .expect("token");
    let (status, mut stream) = Stream::open(s.addr, "/api/live/stream", Some(&sup.token)).await;
    assert_eq!(status, 200);
    stream
        .until(Duration::from_secs(5), |e| {
            e["campaigns"]["uk-broadband"].is_object()
        })
        .await;
    let (_, mut other) = Stream::open(s.addr, "/api/live/stream", Some(&s.supervisor)).await;
    assert!(s.store.token_revoke(sup.id, 1).await.expect("revoke"));
    assert!(
        stream.ends_within(Duration::from_secs(5)).await,
        "the revoked token's stream is still open"
    );
    // Another token's stream goes on.
    assert!(!other.ends_within(Duration::from_millis(2_500)).await);
}

// ---- reports ------------------------------------------------------------------

#[tokio::test]
async fn reports_come_for_known_campaigns_and_good_times() {
    let s = start().await;
    let t = Some(s.supervisor.as_str());
    let r = get(
        s.addr,
        "/api/reports/uk-broadband?from=2026-01-01T00:00:00Z&to=2026-01-02T05:30:00%2B05:30",
        t,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["campaign"], "uk-broadband");
    assert_eq!(v["attempts"], 0);
    assert_eq!(v["from"], "2026-01-01T00:00:00Z");
    assert_eq!(v["to"], "2026-01-02T00:00:00Z");
    assert_eq!(v["abandon_limit"], 0.03);
    // No range: everything up to now.
    assert_eq!(
        get(s.addr, "/api/reports/uk-broadband", t).await.status,
        200
    );

    let r = get(s.addr, "/api/reports/nope?from=2026-01-01T00:00:00Z", t).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["status"], 404);
    // Loaded but never imported: also 404, saying why.
    let r = get(s.addr, "/api/reports/us-home-solar", t).await;
    assert_eq!(r.status, 404);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .is_some_and(|e| e.contains("import"))
    );
    // Errors from outside the handlers read the same: an unknown route, a
    // bad path parameter.
    let r = get(s.addr, "/api/nowhere", t).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "not_found");

    for bad in [
        "?from=yesterday",
        "?to=2026-13-01T00:00:00Z",
        "?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        "?from=%ZZ",
    ] {
        let r = get(s.addr, &format!("/api/reports/uk-broadband{bad}"), t).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(r.json()["status"], 400, "{bad}");
    }
}

// ---- metrics ------------------------------------------------------------------

/// `name{labels} value` lines, by name and sorted labels.
fn samples(text: &str) -> BTreeMap<(String, Vec<(String, String)>), f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let inner = rest.strip_suffix('}').expect("closing brace");
                let mut labels: Vec<(String, String)> = inner
                    .split("\",")
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once("=\"").expect("label");
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                labels.sort();
                (n.to_string(), labels)
            }
            None => (series.to_string(), Vec::new()),
        };
        out.insert((name, labels), value);
    }
    out
}

fn key(name: &str, labels: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    (name.to_string(), l)
}

#[tokio::test]
async fn metrics_expose_the_board_and_the_histograms() {
    let s = start().await;
    s.board.publish(figures("uk-broadband"));
    let mut other = figures("us-home-solar");
    other.agents_ready = 0;
    other.window_rate_percent = 3.5;
    s.board.publish(other);
    dialler::metrics::record_sip_response(0.042);
    dialler::metrics::record_store("web_test_op", 0.0015);
    dialler::metrics::record_store("web_test_op", 0.2);

    let r = get(s.addr, "/metrics", None).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{:?}",
        r.header("content-type")
    );
    assert!(r.body.ends_with("# EOF\n"));
    let m = samples(&r.body);
    let uk = ("campaign", "uk-broadband");
    let us = ("campaign", "us-home-solar");
    for (name, labels, want) in [
        (
            "dialler_calls_total",
            vec![uk, ("outcome", "connected")],
            509.0,
        ),
        (
            "dialler_calls_total",
            vec![uk, ("outcome", "no_answer")],
            410.0,
        ),
        ("dialler_calls_total", vec![uk, ("outcome", "busy")], 120.0),
        ("dialler_attempts_total", vec![uk], 1200.0),
        ("dialler_human_answers_total", vec![uk], 520.0),
        ("dialler_abandons_total", vec![uk], 11.0),
        ("dialler_window_abandons", vec![uk], 11.0),
        ("dialler_window_human_answers", vec![uk], 400.0),
        ("dialler_abandon_rate_ratio", vec![uk], 0.0275),
        ("dialler_abandon_rate_ratio", vec![us], 0.035),
        ("dialler_abandon_limit_ratio", vec![uk], 0.03),
        ("dialler_agents", vec![uk, ("state", "ready")], 4.0),
        ("dialler_agents", vec![uk, ("state", "on_call")], 7.0),
        ("dialler_agents", vec![uk, ("state", "wrapup")], 2.0),
        ("dialler_agents", vec![uk, ("state", "paused")], 1.0),
        ("dialler_agents", vec![us, ("state", "ready")], 0.0),
        (
            "dialler_calls_in_flight",
            vec![uk, ("state", "ringing")],
            9.0,
        ),
        (
            "dialler_calls_in_flight",
            vec![uk, ("state", "connected")],
            7.0,
        ),
        (
            "dialler_campaign_state",
            vec![uk, ("state", "running")],
            1.0,
        ),
        ("dialler_campaign_state", vec![uk, ("state", "paused")], 0.0),
        ("dialler_max_dial_level", vec![uk], 3.0),
        ("dialler_dial_level", vec![uk], 1.85),
        ("dialler_calls_per_second", vec![uk], 3.4),
    ] {
        assert_eq!(
            m.get(&key(name, &labels)).copied(),
            Some(want),
            "{name} {labels:?}"
        );
    }
    // The histograms are process-wide: other tests may have added to them.
    let count = |k| m.get(&k).copied().unwrap_or(0.0);
    assert!(count(key("dialler_sip_response_seconds_count", &[])) >= 1.0);
    assert!(
        count(key(
            "dialler_sip_response_seconds_bucket",
            &[("le", "0.05")]
        )) >= 1.0
    );
    assert_eq!(
        count(key("dialler_store_seconds_count", &[("op", "web_test_op")])),
        2.0
    );
    assert_eq!(
        count(key(
            "dialler_store_seconds_bucket",
            &[("op", "web_test_op"), ("le", "0.0025")]
        )),
        1.0
    );
    for family in [
        "# TYPE dialler_calls counter",
        "# TYPE dialler_agents gauge",
        "# TYPE dialler_sip_response_seconds histogram",
        "# TYPE dialler_store_seconds histogram",
        "# TYPE process_cpu_seconds counter",
        "# TYPE process_resident_memory_bytes gauge",
    ] {
        assert!(r.body.contains(family), "{family}");
    }
    assert_eq!(
        count(key(
            "dialler_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        )),
        1.0
    );
    assert!(count(key("process_resident_memory_bytes", &[])) > 1e6);
    assert!(count(key("process_open_fds", &[])) >= 3.0);
    assert!(count(key("process_start_time_seconds", &[])) > 1.7e9);
    assert!(!r.body.contains("_percent"), "ratios are 0-1");
    assert!(
        r.body.contains("dialler_live_updated_timestamp_seconds"),
        "times are _timestamp_seconds"
    );
}

// ---- OpenAPI ------------------------------------------------------------------

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let s = start().await;
    let r = get(s.addr, "/api/openapi.json", None).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let v = r.json();
    assert!(v["openapi"].as_str().is_some_and(|s| s.starts_with("3.")));
    assert_eq!(
        v["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    let err = &v["components"]["schemas"]["Error"];
    assert_eq!(err["properties"]["status"]["type"], "integer");
    let detail = &v["components"]["schemas"]["ErrorDetail"];
    assert_eq!(detail["properties"]["code"]["type"], "string");
    assert_eq!(detail["properties"]["message"]["type"], "string");
    let paths = v["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/", "get"),
        ("/api/live", "get"),
        ("/api/live/stream", "get"),
        ("/api/reports/{campaign}", "get"),
        ("/metrics", "get"),
        ("/api/openapi.json", "get"),
        ("/api/campaigns", "get"),
        ("/api/agents", "get"),
        ("/api/agents/{id}/login", "post"),
        ("/api/agents/{id}/phones", "get"),
        ("/api/agents/{id}/phones", "post"),
        ("/api/agents/{id}/phones", "delete"),
        ("/api/callbacks", "get"),
        ("/api/agents/{id}/ready", "post"),
        ("/api/agents/{id}/pause", "post"),
        ("/api/agents/{id}/logout", "post"),
        ("/api/agents/{id}/hangup", "post"),
        ("/api/agents/{id}/dtmf", "post"),
        ("/api/agents/{id}/call", "get"),
        ("/api/calls/{id}/disposition", "post"),
        ("/api/agents/{id}/pending", "get"),
        ("/api/events", "get"),
        ("/api/audit", "get"),
        ("/api/campaigns/{name}/controls", "get"),
        ("/api/campaigns/{name}/controls", "patch"),
        ("/api/campaigns/{name}/{action}", "post"),
        ("/api/campaigns/{name}/leads", "post"),
        ("/api/campaigns/{name}/leads", "get"),
        ("/api/campaigns/{name}/leads/{id}", "get"),
        ("/api/campaigns/{name}/leads/{id}", "patch"),
        ("/api/wallboard", "get"),
        ("/api/campaigns/{name}/webhooks", "get"),
        ("/api/campaigns/{name}/webhooks", "post"),
        ("/api/campaigns/{name}/webhooks/{id}", "delete"),
        ("/api/agents/{id}/softphone", "post"),
        ("/api/me", "get"),
        ("/agent", "get"),
    ] {
        let op = &paths.get(path).unwrap_or_else(|| panic!("{path} missing"))[method];
        assert!(op.is_object(), "{method} {path} missing");
        assert!(op["responses"]["200"].is_object(), "{method} {path}: 200");
    }
    assert_eq!(paths.len(), 31, "{:?}", paths.keys().collect::<Vec<_>>());
    // Every $ref points at something.
    let text = r.body.as_str();
    for part in text.split("\"$ref\": \"#/").skip(1) {
        let target = part.split('"').next().expect("ref");
        let mut node = &v;
        for seg in target.split('/') {
            node = &node[seg];
        }
        assert!(!node.is_null(), "dangling $ref #/{target}");
    }
    let login = &paths["/api/agents/{id}/login"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["$ref"];
    assert_eq!(login, "#/components/schemas/LoginRequest");
    let body = &v["components"]["schemas"]["DispositionRequest"];
    assert_eq!(body["required"], serde_json::json!(["code"]));
    assert!(body["properties"]["amount"].is_object());
}

// ---- the dashboard in a browser -------------------------------------------

fn chromium() -> Option<PathBuf> {
    common::cdp::chromium("the dashboard browser test")
}

/// Runs headless Chromium on `url` with `args`; its stdout. A first start
/// on a fresh machine can be slow: a run that does not finish in 60 s is
/// tried once more.
async fn run_chromium(bin: &Path, profile: &Path, args: &[String], url: &str) -> String {
    for attempt in 1..=2 {
        let run = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new(bin)
                .args(common::cdp::HEADLESS)
                .arg("--virtual-time-budget=5000")
                .arg(format!("--user-data-dir={}", profile.display()))
                .args(args)
                .arg(url)
                .kill_on_drop(true)
                .output(),
        )
        .await;
        let Ok(out) = run else {
            eprintln!("chromium run {attempt} of 2 did not finish within 60 s");
            continue;
        };
        let out = out.expect("chromium ran");
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return String::from_utf8_lossy(&out.stdout).into_owned();
    }
    panic!("chromium did not finish within 60 s in 2 tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_renders_the_published_figures() {
    let Some(bin) = chromium() else { return };
    let s = start().await;
    s.board.publish(figures("uk-broadband"));
    let mut solar = figures("us-home-solar");
    solar.agents_ready = 1;
    solar.agents_on_call = 12;
    solar.agents_wrap_up = 3;
    solar.agents_paused = 0;
    solar.window_rate_percent = 3.4;
    solar.window_abandons = 17;
    solar.window_human_answers = 500;
    solar.dial_level = 2.4;
    s.board.publish(solar.clone());
    // Keep publishing while the page is open so that the charts have a
    // history: the rates drift, the staffing changes.
    let board = s.board.clone();
    let feeder = tokio::spawn(async move {
        let mut uk = figures("uk-broadband");
        for i in 0u32..400 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let w = f64::from(i % 40) / 40.0;
            uk.at_ms = now_ms();
            uk.window_rate_percent = 1.6 + 1.15 * w;
            uk.agents_ready = 2 + i % 5;
            uk.agents_on_call = 7 + (i / 3) % 4;
            uk.attempts += 3;
            solar.at_ms = now_ms();
            solar.window_rate_percent = 3.1 + 0.3 * w; // always over the limit
            solar.agents_on_call = 10 + (i / 4) % 5;
            board.publish(uk.clone());
            board.publish(solar.clone());
        }
    });
    // Let the history build before the browser looks.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let profile = tempfile::tempdir().expect("profile dir");
    // Headless Chromium's virtual time stands still while a request is
    // open, and the event stream never closes: the page polls instead
    // (`/api/live/stream` itself is tested above).
    let url = format!("http://{}/?poll=0.25&token={}", s.addr, s.supervisor);
    let dom = run_chromium(&bin, profile.path(), &["--dump-dom".to_string()], &url).await;
    let field = |campaign: &str, f: &str| -> Option<String> {
        let card = dom.split(&format!("data-campaign=\"{campaign}\"")).nth(1)?;
        let card = card.split("data-campaign=").next()?;
        let v = card.split(&format!("data-field=\"{f}\"")).nth(1)?;
        let v = v.split_once('>')?.1;
        Some(v.split('<').next()?.to_string())
    };
    assert!(
        dom.contains("uk-broadband"),
        "campaign name missing:\n{dom}"
    );
    assert!(field("us-home-solar", "agents_on_call").is_some(), "{dom}");
    // us-home-solar's staffing is fixed but for agents on call.
    assert_eq!(field("us-home-solar", "agents_ready").as_deref(), Some("1"));
    assert_eq!(
        field("us-home-solar", "agents_wrap_up").as_deref(),
        Some("3")
    );
    assert_eq!(
        field("us-home-solar", "agents_paused").as_deref(),
        Some("0")
    );
    assert_eq!(
        field("us-home-solar", "dial_level").as_deref(),
        Some("2.40")
    );
    assert_eq!(
        field("us-home-solar", "contact_rate").as_deref(),
        Some("40.0%")
    );
    assert_eq!(
        field("us-home-solar", "conversion_rate").as_deref(),
        Some("12.5%")
    );
    let rate = field("us-home-solar", "abandon_rate").expect("abandonment rate shown");
    let pct: f64 = rate
        .strip_suffix('%')
        .and_then(|r| r.parse().ok())
        .expect("a percentage");
    assert!((3.0..=3.41).contains(&pct), "{rate}");
    // Over the limit: the card says so.
    assert!(dom.contains("OVER LIMIT"), "{dom}");
    // Calls in flight count connected calls too; the controls show the
    // run state and offer what it allows.
    assert_eq!(
        field("us-home-solar", "run_state").as_deref(),
        Some("running")
    );
    let card = dom
        .split("data-campaign=\"us-home-solar\"")
        .nth(1)
        .expect("card");
    // The wallboard's rows: every agent, the callback due, the hours.
    assert!(card.contains("<td>agent06</td>"), "{card}");
    assert!(card.contains("class=\"st on_call\">on call</td>"), "{card}");
    assert!(card.contains("+44******0123"), "{card}");
    assert!(card.contains("<td>410</td>"), "{card}");
    assert!(card.contains("data-action=\"pause\">Pause"), "{card}");
    assert!(card.contains("data-action=\"start\" hidden"), "{card}");
    assert!(dom.contains("class=\"card over\""), "{dom}");

    // A picture for people: target/dashboard.png.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().expect("profile dir");
    run_chromium(
        &bin,
        profile.path(),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1400,1100".to_string(),
        ],
        &url,
    )
    .await;
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    eprintln!("dashboard screenshot: {}", shot.display());

    // No token: the page asks for one. An agent's token: refused, and it
    // says why.
    let profile = tempfile::tempdir().expect("profile dir");
    let page = format!("http://{}/?poll=0.25", s.addr);
    let dom = run_chromium(&bin, profile.path(), &["--dump-dom".to_string()], &page).await;
    assert!(dom.contains("<form id=\"login\">"), "{dom}");
    assert!(!dom.contains("data-campaign="), "{dom}");
    let profile = tempfile::tempdir().expect("profile dir");
    run_chromium(
        &bin,
        profile.path(),
        &[
            format!(
                "--screenshot={}",
                shot.with_file_name("dashboard-login.png").display()
            ),
            "--window-size=900,400".to_string(),
        ],
        &page,
    )
    .await;
    let profile = tempfile::tempdir().expect("profile dir");
    let page = format!("http://{}/?poll=0.25&token={}", s.addr, s.agent);
    let dom = run_chromium(&bin, profile.path(), &["--dump-dom".to_string()], &page).await;
    assert!(dom.contains("<form id=\"login\">"), "{dom}");
    assert!(dom.contains("use a supervisor or admin token"), "{dom}");
    assert!(!dom.contains("data-campaign="), "{dom}");
    feeder.abort();
    s.store.close().await;
}
