//! Headless Chromium driven over the DevTools protocol (a WebSocket to the
//! browser, one session per page): open a page, evaluate script in it
//! (awaiting promises), set the viewport, take screenshots. With fake
//! media devices and the permission prompt auto-accepted, a page's
//! getUserMedia gets a test tone, so WebRTC runs as an agent's would.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Chromium (`DIALLER_CHROMIUM`, else Debian's), or `None` (skip) outside
/// CI; under CI its absence fails.
pub fn chromium(what: &str) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("DIALLER_CHROMIUM") {
        Some(p) => vec![PathBuf::from(p)],
        None => ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .map(PathBuf::from)
            .collect(),
    };
    if let Some(c) = candidates.into_iter().find(|c| c.is_file()) {
        return Some(c);
    }
    if super::in_ci() {
        panic!(
            "Chromium is required under CI=true for {what}: install the Debian package \
             chromium (scripts/test.sh does) or set DIALLER_CHROMIUM"
        );
    }
    eprintln!("skipping {what}: no chromium (apt-get install chromium)");
    None
}

/// The flags every headless Chromium of the tests starts with.
pub const HEADLESS: [&str; 6] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--hide-scrollbars",
];

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A running browser.
pub struct Browser {
    /// The browser's process id (for its CPU and memory).
    pub pid: Option<u32>,
    child: tokio::process::Child,
    ws: Ws,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts `bin` headless with fake media devices and connects to it.
    /// A first start on a fresh machine can be slow (font and profile
    /// caches) or die early; each try waits up to 60 s, a try that fails
    /// is retried (three in all), and the last failure says what Chromium
    /// printed.
    pub async fn launch(bin: &Path) -> Browser {
        let mut failures = Vec::new();
        for attempt in 1..=3 {
            match Self::try_launch(bin).await {
                Ok(b) => return b,
                Err(e) => {
                    eprintln!("chromium start {attempt} of 3 failed: {e}");
                    failures.push(e);
                }
            }
        }
        panic!(
            "chromium did not start in 3 tries:\n{}",
            failures.join("\n---\n")
        );
    }

    async fn try_launch(bin: &Path) -> Result<Browser, String> {
        let profile = tempfile::tempdir().map_err(|e| format!("profile dir: {e}"))?;
        let log_dir = tempfile::tempdir().map_err(|e| format!("log dir: {e}"))?;
        let log_path = log_dir.path().join("chromium.stderr");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("log file: {e}"))?;
        let mut child = tokio::process::Command::new(bin)
            .args(HEADLESS)
            .args([
                "--no-default-browser-check",
                "--mute-audio",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                "--allow-loopback-in-peer-connection",
                "--autoplay-policy=no-user-gesture-required",
                // Many pages at once, none in front: none throttled.
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let printed = || {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        };
        // Chromium writes its port and the browser's path once listening.
        let file = profile.path().join("DevToolsActivePort");
        let mut text = None;
        for _ in 0..600 {
            if let Ok(t) = std::fs::read_to_string(&file)
                && t.lines().count() >= 2
            {
                text = Some(t);
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("chromium exited ({status}):\n{}", printed()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let Some(text) = text else {
            let _ = child.kill().await;
            return Err(format!("no DevToolsActivePort within 60 s:\n{}", printed()));
        };
        let mut lines = text.lines();
        let port = lines.next().unwrap_or_default();
        let path = lines.next().unwrap_or_default();
        let url = format!("ws://127.0.0.1:{port}{path}");
        let (ws, _) = match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok(c) => c,
            Err(e) => {
                let _ = child.kill().await;
                return Err(format!("DevTools WebSocket {url}: {e}\n{}", printed()));
            }
        };
        Ok(Browser {
            pid: child.id(),
            child,
            ws,
            next_id: 1,
            _profile: profile,
        })
    }

    /// One DevTools command (in `session`, or to the browser); its result.
    pub async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .await
            .expect("send to DevTools");
        let wait = async {
            while let Some(m) = self.ws.next().await {
                let Ok(Message::Text(text)) = m else { continue };
                let v: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                if v["id"].as_u64() == Some(id) {
                    return v;
                }
            }
            panic!("DevTools closed");
        };
        let v = tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .unwrap_or_else(|_| panic!("{method}: no answer in 60 s"));
        assert!(v.get("error").is_none(), "{method}: {}", v["error"]);
        v["result"].clone()
    }

    /// Opens `url` in a new page, in a browser context of its own (its own
    /// storage and connections, as another person's browser would have:
    /// one context's event streams do not use up another's six
    /// connections to the host); its session id.
    pub async fn open(&mut self, url: &str) -> String {
        let context = self
            .call(None, "Target.createBrowserContext", json!({}))
            .await;
        let context_id = context["browserContextId"]
            .as_str()
            .expect("browser context id")
            .to_string();
        let target = self
            .call(
                None,
                "Target.createTarget",
                json!({ "url": "about:blank", "browserContextId": context_id }),
            )
            .await;
        let target_id = target["targetId"].as_str().expect("target id").to_string();
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await;
        let session = attached["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        self.call(Some(&session), "Page.enable", json!({})).await;
        self.call(Some(&session), "Runtime.enable", json!({})).await;
        self.call(Some(&session), "Page.navigate", json!({ "url": url }))
            .await;
        session
    }

    /// Sets the page's viewport.
    pub async fn viewport(&mut self, session: &str, width: u32, height: u32) {
        self.call(
            Some(session),
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;
    }

    /// Evaluates `expr` in the page (awaiting a promise); its value. A
    /// thrown exception fails the test with its text.
    pub async fn eval(&mut self, session: &str, expr: &str) -> Value {
        let r = self
            .call(
                Some(session),
                "Runtime.evaluate",
                json!({ "expression": expr, "awaitPromise": true, "returnByValue": true }),
            )
            .await;
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expr}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Polls `expr` every 100 ms until it is true, at most `limit`; an
    /// exception (the page still loading) counts as not yet.
    pub async fn until(&mut self, session: &str, expr: &str, limit: Duration) -> bool {
        let end = tokio::time::Instant::now() + limit;
        let guarded = format!(
            "Promise.resolve().then(function () {{ return ({expr}); }}).catch(function () {{ return false; }})"
        );
        loop {
            if self.eval(session, &guarded).await == Value::Bool(true) {
                return true;
            }
            if tokio::time::Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the page's viewport, written to `path`.
    pub async fn screenshot(&mut self, session: &str, path: &Path) {
        use base64::Engine;
        let r = self
            .call(
                Some(session),
                "Page.captureScreenshot",
                json!({ "format": "png" }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("screenshot data"))
            .expect("base64");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(path, png).expect("screenshot written");
    }

    /// Closes the browser.
    pub async fn close(mut self) {
        let msg = json!({ "id": 0, "method": "Browser.close", "params": {} });
        let _ = self.ws.send(Message::text(msg.to_string())).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}
