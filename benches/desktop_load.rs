//! Browser agents on one node (issue 18): AGENTS agent desktops (50) in
//! headless Chromium with fake media (a browser per 16 pages: one opens at
//! most 16 audio inputs), each page in a browser context of its own, each logged in with the browser
//! softphone, work the uk-broadband campaign on one `dialler run` process
//! for MINUTES (10) against the sandbox provider (in this process: half the
//! calls answered after 0.5-2.5 s of ringing; it echoes the agent's audio).
//! Each page runs a small script as its agent: ready, talk TALK_S seconds
//! (8, ±50%), hang up, record a disposition, ready again; it counts the
//! calls put through to it and those whose audio reached the page (WebRTC
//! stats). At the end the agents finish their calls (talked out, not cut
//! short), record them and log out.
//!
//! Prints the node's CPU (user+system seconds per minute, from
//! /proc/PID/stat) and memory (RSS now and peak), Chromium's CPU beside it,
//! and the call accounting: calls connected (store) = calls the pages saw
//! = calls with audio at the page = dispositions recorded, and abandons.
//! Run with `cargo bench --bench desktop_load` (it needs chromium);
//! AGENTS, SECONDS, TALK_S, PAGES_PER_BROWSER and APM (0: the pages'
//! audio processing off, see [`NO_APM`]) change it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/cdp.rs"]
mod cdp;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use dialler::auth::{self, Role};
use dialler::sip::sandbox::{self, SandboxConfig, Weights};
use dialler::store::Store;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Under CI a missing browser fails (cdp.rs asks).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const CAMPAIGN: &str = "uk-broadband";

/// CPU seconds (user + system, children excluded) and RSS/peak RSS (MiB)
/// of process `pid`.
fn usage(pid: u32) -> (f64, f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis: utime is the 14th
    // field of the line, stime the 15th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let hz = 100.0;
    let cpu = (ticks(11) + ticks(12)) / hz;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (cpu, kb("VmRSS:"), kb("VmHWM:"))
}

/// CPU seconds of `pid` and all its descendants still running.
fn tree_cpu(pid: u32) -> f64 {
    let mut total = 0.0;
    let mut stack = vec![pid];
    let all: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let rest = stat.rsplit(')').next()?;
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some((p, ppid))
        })
        .collect();
    while let Some(p) = stack.pop() {
        total += usage(p).0;
        stack.extend(all.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
    }
    total
}

/// With `APM=0`: turns off the page's audio processing (echo
/// cancellation, noise suppression, gain control) for the microphone it is
/// about to open. Each agent's browser would run on a machine of its own;
/// here they share two cores with the node, and the processing is a fifth
/// of what Chromium spends per page (16 pages: 129% of a core with it, 105%
/// without). The node sees the same RTP either way.
const NO_APM: &str = r#"(function () {
  var md = navigator.mediaDevices, gum = md.getUserMedia.bind(md);
  md.getUserMedia = function (c) {
    if (c && c.audio) { c.audio = { echoCancellation: false, noiseSuppression: false, autoGainControl: false }; }
    return gum(c);
  };
  return true;
})()"#;

/// The script each page runs as its agent.
fn auto_agent(talk_ms: u64) -> String {
    format!(
        r#"(function () {{
  var a = window.auto = {{ calls: 0, audio: 0, saves: 0, errors: 0, silent: [], stop: false, done: false }};
  var cur = null, startPk = null, hangAt = 0, saving = false, checked = {{}}, saved = {{}};
  function el(id) {{ return document.getElementById(id); }}
  setInterval(function () {{
    var s = window.desk.state();
    if (s === 'paused') {{
      if (a.stop) {{ if (!a.done) {{ a.done = true; el('logout').click(); }} }}
      else if (!el('ready').disabled) {{ el('ready').click(); }}
    }} else if (s === 'ready' && a.stop) {{
      el('pause').click();
    }} else if (s === 'on_call') {{
      var c = window.desk.call();
      if (c && (!cur || cur.call_id !== c.call_id)) {{
        cur = c; a.calls++; startPk = null;
        hangAt = Date.now() + {talk_ms} * (0.5 + Math.random());
        window.desk.audio().then(function (x) {{ startPk = x ? (x.packetsReceived || 0) : 0; }});
      }}
      if (Date.now() >= hangAt && !el('hangup').disabled) {{ hangAt = Infinity; el('hangup').click(); }}
    }} else if (s === 'wrapup' && cur && !el('dispo').hidden && !saving && !saved[cur.call_id]) {{
      if (!checked[cur.call_id]) {{
        checked[cur.call_id] = true;
        var id = cur.call_id, from = startPk;
        window.desk.audio().then(function (x) {{
          var got = x ? (x.packetsReceived || 0) - (from || 0) : -1;
          if (got > 10) {{ a.audio++; }} else {{ a.silent.push({{ call: id, packets: got, start: from }}); }}
        }});
      }}
      saved[cur.call_id] = true;
      var input = document.querySelector('#codes input[value=NOT_INTERESTED]') || document.querySelector('#codes input');
      input.checked = true;
      input.dispatchEvent(new Event('change'));
      saving = true;
      el('save').click();
      a.saves++;
      var saving_id = cur.call_id;
      // Refused (the message says why): count it and try again, as an
      // agent would.
      setTimeout(function () {{ saving = false; if (el('dispo-msg').textContent) {{ a.errors++; saved[saving_id] = false; }} }}, 3000);
    }}
  }}, 200);
  return true;
}})()"#
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let agents = env("AGENTS", if benching { 50 } else { 2 }) as usize;
    let secs = env("SECONDS", if benching { 600 } else { 20 });
    let talk_ms = env("TALK_S", 8) * 1000;
    let apm = env("APM", 1) != 0;
    let Some(chromium) = cdp::chromium("the desktop load bench") else {
        return;
    };

    // The store: the campaign, its leads and registry, agent tokens.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("load.db");
    let url = format!("sqlite://{}", db.display());
    let store = Store::open(&url).await.unwrap();
    let campaigns = Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns");
    let camp = dialler::campaign::find(&campaigns, CAMPAIGN).unwrap();
    let at = chrono::DateTime::parse_from_rfc3339("2026-12-01T11:00:00Z")
        .unwrap()
        .to_utc();
    let now = at.timestamp_millis();
    let dnd = dir.path().join("dnd");
    dialler::demo::load_sample(&store, &camp, &campaigns, &dnd, now)
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for i in 0..agents {
        let id = format!("web{:02}", i + 1);
        let t = auth::create_token(&store, Role::Agent, Some(&id), None, now)
            .await
            .unwrap();
        tokens.push((id, t.token));
    }

    // The provider, in this process.
    let (stop, _) = tokio::sync::broadcast::channel::<()>(2);
    let (provider, provider_task) = sandbox::spawn_loopback(
        SandboxConfig {
            weights: Weights {
                answer: 0.5,
                busy: 0.1,
                no_answer: 0.3,
                reject: 0.0,
                unavailable: 0.1,
            },
            ring: (Duration::from_millis(500), Duration::from_millis(2500)),
            talk_mean: Duration::from_secs(300),
            seed: 5,
            ..SandboxConfig::default()
        },
        stop.subscribe(),
    )
    .await
    .unwrap();

    // The node.
    let mut node = Command::new(env!("CARGO_BIN_EXE_dialler"))
        .arg("--db")
        .arg(&url)
        .arg("--campaigns")
        .arg(&campaigns)
        .arg("--dnd-dir")
        .arg(&dnd)
        .args(["run", "--campaign", CAMPAIGN, "--listen", "127.0.0.1:0"])
        .args([
            "--sip-bind",
            "127.0.0.1:0",
            "--grace",
            "30",
            "--node",
            "load",
        ])
        .arg("--provider")
        .arg(provider.to_string())
        .arg("--clock-start")
        .arg(at.to_rfc3339())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("dialler run");
    let pid = node.id().expect("pid");
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let http: SocketAddr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(a) = line.strip_prefix("dialler listening on http://") {
                return a.parse().ok();
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .expect("the node started");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    // The browser and the agents.
    // One Chromium opens at most 16 audio inputs at once (its audio
    // manager's limit): a browser per 16 agents.
    let per_browser = env("PAGES_PER_BROWSER", 16).max(1) as usize;
    let mut browsers = Vec::new();
    let mut pages = Vec::new();
    for (i, (_, token)) in tokens.iter().enumerate() {
        if i % per_browser == 0 {
            browsers.push(cdp::Browser::launch(&chromium).await);
        }
        let b = browsers.len() - 1;
        let page = browsers[b]
            .open(&format!("http://{http}/agent?token={token}"))
            .await;
        pages.push((b, page));
    }
    // Agents log in one after another, as a shift starts.
    for (i, (bi, page)) in pages.iter().enumerate() {
        let b = &mut browsers[*bi];
        assert!(
            b.until(
                page,
                "!document.getElementById('start').hidden",
                Duration::from_secs(60)
            )
            .await
        );
        if !apm {
            b.eval(page, NO_APM).await;
        }
        b.eval(page, "document.getElementById('login-btn').click(); true")
            .await;
        assert!(
            b.until(
                page,
                "window.desk.state() !== 'logged_out'",
                Duration::from_secs(90)
            )
            .await,
            "login {} of {agents} failed: {}",
            i + 1,
            b.eval(page, "document.getElementById('start-msg').textContent")
                .await
        );
        b.eval(page, &auto_agent(talk_ms)).await;
    }
    let browser_pids: Vec<u32> = browsers.iter().filter_map(|b| b.pid).collect();
    let chrome_cpu = || browser_pids.iter().map(|p| tree_cpu(*p)).sum::<f64>();
    println!(
        "desktop load: {agents} browser agents logged in with the softphone; running {secs} s"
    );

    let (cpu0, _, _) = usage(pid);
    let chrome0 = chrome_cpu();
    let started = tokio::time::Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(if benching { 60 } else { 5 }).min(
            Duration::from_secs(secs).saturating_sub(started.elapsed()) + Duration::from_millis(1),
        ))
        .await;
        let (cpu, rss, _) = usage(pid);
        samples.push((started.elapsed().as_secs(), cpu - cpu0, rss));
        println!(
            "  [{:>4} s] node CPU {:.1} s so far, RSS {:.0} MiB",
            started.elapsed().as_secs(),
            cpu - cpu0,
            rss
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu1, rss, peak) = usage(pid);
    let chrome1 = chrome_cpu();

    // Wind down: finish the calls, record them, log out.
    for (bi, page) in &pages {
        browsers[*bi]
            .eval(page, "window.auto.stop = true; true")
            .await;
    }
    // At most two minutes for every agent to finish and log out.
    let wind_down = tokio::time::Instant::now() + Duration::from_secs(120);
    for (bi, page) in &pages {
        let left = wind_down.saturating_duration_since(tokio::time::Instant::now());
        browsers[*bi]
            .until(page, "window.desk.state() === 'logged_out'", left)
            .await;
    }
    let (mut seen, mut audio, mut errors, mut still) = (0u64, 0u64, 0u64, 0u64);
    let mut silent = Vec::new();
    for (bi, page) in &pages {
        let b = &mut browsers[*bi];
        let a = b.eval(page, "window.auto").await;
        seen += a["calls"].as_u64().unwrap_or(0);
        audio += a["audio"].as_u64().unwrap_or(0);
        errors += a["errors"].as_u64().unwrap_or(0);
        silent.extend(a["silent"].as_array().cloned().unwrap_or_default());
        if b.eval(page, "window.desk.state()").await != serde_json::json!("logged_out") {
            still += 1;
        }
    }
    for b in browsers {
        b.close().await;
    }
    let pid_s = pid.to_string();
    let _ = Command::new("kill").args(["-TERM", &pid_s]).status().await;
    let _ = tokio::time::timeout(Duration::from_secs(60), node.wait()).await;
    let _ = stop.send(());
    let _ = provider_task.await;

    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let q = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let attempts = q("SELECT COUNT(*) FROM call_attempts WHERE node = 'load'").await;
    let connected =
        q("SELECT COUNT(*) FROM call_attempts WHERE node = 'load' AND connected_at IS NOT NULL")
            .await;
    let abandoned =
        q("SELECT COUNT(*) FROM call_attempts WHERE node = 'load' AND outcome = 'abandoned'").await;
    let dispositions = q("SELECT COUNT(*) FROM dispositions d JOIN call_attempts a ON a.id = d.attempt_id WHERE a.node = 'load'").await;
    let open =
        q("SELECT COUNT(*) FROM call_attempts WHERE node = 'load' AND outcome IS NULL").await;

    let minutes = elapsed / 60.0;
    println!(
        "desktop load: {agents} browser agents (softphone, fake media) on one node for {:.1} min",
        minutes
    );
    println!(
        "  node: CPU {:.1} s user+system = {:.2} s per minute ({:.1}% of one core); RSS {:.0} MiB at the end, peak {:.0} MiB",
        cpu1 - cpu0,
        (cpu1 - cpu0) / minutes,
        (cpu1 - cpu0) / elapsed * 100.0,
        rss,
        peak
    );
    println!(
        "  beside it, Chromium ({agents} pages in {} browsers, fake media, WebRTC, audio processing {}): CPU {:.1} s ({:.1}% of one core)",
        agents.div_ceil(per_browser),
        if apm {
            "on (APM=0 turns it off)"
        } else {
            "off"
        },
        chrome1 - chrome0,
        (chrome1 - chrome0) / elapsed * 100.0
    );
    println!(
        "  calls: {attempts} dialled, {connected} put through to an agent, {abandoned} abandoned; pages saw {seen}, with audio at the page {audio}; dispositions recorded {dispositions}; refused saves {errors}; attempts left open {open}; agents not logged out {still}"
    );
    if !silent.is_empty() {
        println!("  calls with under 10 packets at the page: {silent:?}");
    }
    let lost = connected - dispositions;
    println!("  lost calls (put through, no disposition): {lost}");
    assert!(connected > 0, "no call reached an agent");
    assert_eq!(lost, 0, "calls put through without a disposition");
    assert_eq!(open, 0, "attempts left open");
    assert_eq!(seen as i64, connected, "calls the pages saw vs connected");
}
