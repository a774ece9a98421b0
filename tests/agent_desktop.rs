//! The agent desktop in a real browser: headless Chromium with fake media
//! devices opens `/agent` on a whole live service (SQLite, the sandbox
//! provider on loopback, real time), logs in with the browser as the
//! phone, takes a call from the sandbox, hears it (WebRTC stats of the
//! received audio) while the sandbox hears the agent (its echo counts
//! voiced G.711 packets), hangs up, records a callback with notes, and
//! logs out. A screenshot of each state is written to
//! `target/tmp/agent-desktop/` (and to `docs/` with
//! DIALLER_UPDATE_SCREENSHOTS=1, where README shows them).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::cdp::{Browser, chromium};
use common::live;

/// Width and height of a PNG, from its IHDR chunk.
fn png_size(path: &std::path::Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert!(b.len() > 24 && b.starts_with(b"\x89PNG\r\n\x1a\n"));
    let w = u32::from_be_bytes([b[16], b[17], b[18], b[19]]);
    let h = u32::from_be_bytes([b[20], b[21], b[22], b[23]]);
    (w, h)
}

struct Shots {
    dir: PathBuf,
    update_docs: bool,
}

impl Shots {
    fn new() -> Shots {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("agent-desktop");
        std::fs::create_dir_all(&dir).unwrap();
        Shots {
            dir,
            update_docs: std::env::var_os("DIALLER_UPDATE_SCREENSHOTS").is_some(),
        }
    }

    async fn take(&self, b: &mut Browser, page: &str, name: &str, size: (u32, u32)) {
        // Let timers and the layout settle.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let path = self.dir.join(format!("{name}.png"));
        b.screenshot(page, &path).await;
        assert_eq!(png_size(&path), size, "{name}");
        eprintln!("screenshot: {}", path.display());
        if self.update_docs {
            let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs");
            std::fs::copy(&path, docs.join(format!("{name}.png"))).unwrap();
        }
    }
}

fn js_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// What the page shows that an accessibility check refuses: a visible
/// control without a label (or a button without a name), a positive
/// tabindex (the focus order is the page's order), and text whose
/// contrast with its background is under 4.5:1 (WCAG 2.1 AA; disabled
/// controls are exempt).
const A11Y: &str = r#"(function () {
  var problems = [];
  function visible(el) { return el.offsetParent !== null || getComputedStyle(el).position === 'fixed'; }
  document.querySelectorAll('input, select, textarea, button').forEach(function (el) {
    if (!visible(el) || el.type === 'hidden') { return; }
    var named = el.tagName === 'BUTTON' ? el.textContent.trim() : '';
    var labelled = (el.labels && el.labels.length) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || named;
    if (!labelled) { problems.push('no label: ' + (el.id || el.name || el.tagName)); }
  });
  document.querySelectorAll('[tabindex]').forEach(function (el) {
    if (Number(el.getAttribute('tabindex')) > 0) { problems.push('tabindex > 0: ' + el.id); }
  });
  function lum(c) {
    var m = c.match(/[\d.]+/g).map(Number);
    var f = function (x) { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(m[0]) + 0.7152 * f(m[1]) + 0.0722 * f(m[2]);
  }
  function bg(el) {
    while (el) {
      var c = getComputedStyle(el).backgroundColor;
      var m = c.match(/[\d.]+/g);
      if (m && (m.length < 4 || Number(m[3]) > 0)) { return c; }
      el = el.parentElement;
    }
    return 'rgb(255, 255, 255)';
  }
  document.querySelectorAll('body *').forEach(function (el) {
    if (!visible(el)) { return; }
    var own = Array.prototype.some.call(el.childNodes, function (n) { return n.nodeType === 3 && n.textContent.trim(); });
    if (!own || el.disabled || el.closest('button:disabled')) { return; }
    var a = lum(getComputedStyle(el).color), b = lum(bg(el));
    var ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) { problems.push('contrast ' + ratio.toFixed(2) + ': ' + el.tagName + ' ' + el.textContent.trim().slice(0, 30)); }
  });
  return problems;
})()"#;

async fn accessible(b: &mut Browser, page: &str, when: &str) {
    let problems = b.eval(page, A11Y).await;
    assert_eq!(problems, serde_json::json!([]), "{when}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_takes_a_call_in_the_browser_softphone() {
    let Some(bin) = chromium("the agent desktop test") else {
        return;
    };
    let shots = Shots::new();
    let at = live::tuesday();
    let l = live::load("uk-broadband", at, 1).await;
    // Every call answered; the customer would stay on a minute: the agent
    // hangs up first.
    let sb = live::Sandboxes::start(live::answering(Duration::from_secs(60), 7)).await;
    let svc = live::start(&l, sb.provider, at, "desk", Duration::from_secs(60)).await;
    let (agent, token) = l.agents[0].clone();
    let mut b = Browser::launch(&bin).await;
    let page = b
        .open(&format!("http://{}/agent?token={token}", svc.http))
        .await;
    b.viewport(&page, 1280, 720).await;

    // Signed in with the token from the address (which the page drops
    // from it): the start form offers the running campaign.
    assert!(
        b.until(
            &page,
            "!document.getElementById('start').hidden && document.getElementById('campaign').options.length === 1",
            Duration::from_secs(20)
        )
        .await,
        "the start form did not show"
    );
    assert_eq!(
        b.eval(&page, "location.search").await,
        serde_json::json!(""),
        "the token stayed in the address bar"
    );
    assert_eq!(
        b.eval(&page, "document.getElementById('who').textContent")
            .await,
        serde_json::json!(agent)
    );
    shots
        .take(&mut b, &page, "agent-desktop-login", (1280, 720))
        .await;

    // Log in with the browser as the phone.
    b.eval(&page, "document.getElementById('login-btn').click(); true")
        .await;
    assert!(
        b.until(
            &page,
            "window.desk.state() === 'paused'",
            Duration::from_secs(40)
        )
        .await,
        "not logged in: {}",
        b.eval(&page, "document.getElementById('start-msg').textContent")
            .await
    );
    assert!(
        b.until(
            &page,
            "window.desk.audio().then(a => a && a.connection === 'connected')",
            Duration::from_secs(10)
        )
        .await
    );
    let (code, agents) = svc.req("GET", "/api/agents", &l.supervisor, None).await;
    assert_eq!(code, 200);
    assert_eq!(agents[0]["agent"], serde_json::json!(agent), "{agents}");
    // The campaign's pause codes are offered.
    assert_eq!(
        b.eval(
            &page,
            "Array.from(document.querySelectorAll('#pause-code option')).map(o => o.value).join(',')"
        )
        .await,
        serde_json::json!("BREAK,LUNCH,COACHING,TECHNICAL")
    );
    accessible(&mut b, &page, "paused").await;
    shots
        .take(&mut b, &page, "agent-desktop-paused", (1280, 720))
        .await;

    // Ready (Alt+R): a call comes, with the screen pop.
    b.eval(
        &page,
        "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'r', altKey: true})); true",
    )
    .await;
    assert!(
        b.until(
            &page,
            "window.desk.state() === 'on_call' && !!window.desk.call()",
            Duration::from_secs(60)
        )
        .await,
        "no call reached the agent"
    );
    let call = b.eval(&page, "window.desk.call()").await;
    let customer = call["lead"]["customer"].as_str().unwrap().to_string();
    let script = b
        .eval(&page, "document.getElementById('script').textContent")
        .await;
    assert!(
        script.as_str().unwrap().contains(&customer),
        "the script does not name {customer}: {script}"
    );
    assert_eq!(
        b.eval(&page, "document.getElementById('call-phone').textContent")
            .await,
        call["phone"]
    );
    // Audio both ways: the sandbox echoes what the browser sends, so the
    // page receives RTP from the sandbox with sound in it.
    assert!(
        b.until(
            &page,
            "window.desk.audio().then(a => a && a.packetsReceived > 100 && a.totalAudioEnergy > 0 && a.packetsSent > 100)",
            Duration::from_secs(20)
        )
        .await,
        "no audio: {}",
        b.eval(&page, "window.desk.audio()").await
    );
    // Keypad tones to the customer (RFC 4733 events); the sandbox echoes
    // its RTP, so they come back as the customer's keys, shown once each.
    b.eval(
        &page,
        "document.getElementById('dtmf-digits').value = '12#'; document.getElementById('dtmf-send').click(); true",
    )
    .await;
    assert!(
        b.until(
            &page,
            "document.getElementById('dtmf-heard').textContent === '12#'",
            Duration::from_secs(10)
        )
        .await,
        "keys: {} / {}",
        b.eval(&page, "document.getElementById('dtmf-heard').textContent")
            .await,
        b.eval(&page, "document.getElementById('desk-msg').textContent")
            .await
    );
    shots
        .take(&mut b, &page, "agent-desktop-on-call", (1280, 720))
        .await;

    // Hang up: wrap-up, the disposition form.
    b.eval(&page, "document.getElementById('hangup').click(); true")
        .await;
    assert!(
        b.until(
            &page,
            "window.desk.state() === 'wrapup' && !document.getElementById('dispo').hidden",
            Duration::from_secs(15)
        )
        .await
    );
    // A callback for tomorrow at 10:00 the agent's time, with notes.
    let codes = b
        .eval(
            &page,
            "Array.from(document.querySelectorAll('#codes input')).map(i => i.value).join(',')",
        )
        .await;
    let index = codes
        .as_str()
        .unwrap()
        .split(',')
        .position(|c| c == "CALLBACK")
        .expect("CALLBACK offered");
    b.eval(
        &page,
        &format!(
            "document.dispatchEvent(new KeyboardEvent('keydown', {{key: '{}', altKey: true}})); true",
            index + 1
        ),
    )
    .await;
    assert_eq!(
        b.eval(
            &page,
            "document.getElementById('callback-row').hidden || document.getElementById('amount-row').hidden === false"
        )
        .await,
        serde_json::json!(false),
        "the callback picker did not show (or the amount did)"
    );
    let notes = "Wants a call after the school run; ask for \"Sam\" <not spam>";
    b.eval(
        &page,
        &format!(
            "document.getElementById('notes').value = {}; \
             var d = new Date(Date.now() + 86400000); d.setHours(10, 0, 0, 0); \
             var two = n => (n < 10 ? '0' : '') + n; \
             document.getElementById('callback-at').value = d.getFullYear() + '-' + two(d.getMonth() + 1) + '-' + two(d.getDate()) + 'T10:00'; \
             document.getElementById('cb-me').click(); true",
            js_str(notes)
        ),
    )
    .await;
    accessible(&mut b, &page, "wrap-up").await;
    shots
        .take(&mut b, &page, "agent-desktop-wrap-up", (1280, 720))
        .await;
    b.eval(
        &page,
        "document.getElementById('pause-code').value = 'LUNCH'; document.getElementById('pause').click(); true",
    )
    .await;
    b.eval(&page, "document.getElementById('save').click(); true")
        .await;
    assert!(
        b.until(
            &page,
            "window.desk.state() === 'paused' && !window.desk.call()",
            Duration::from_secs(15)
        )
        .await,
        "{}",
        b.eval(&page, "document.getElementById('dispo-msg').textContent")
            .await
    );
    // Recorded with the notes, and listed among the agent's callbacks.
    let history = l
        .store
        .lead_history(call["lead_id"].as_i64().unwrap(), 5)
        .await
        .unwrap();
    let recorded = history
        .iter()
        .find(|h| h.call_id == call["call_id"].as_i64().unwrap())
        .expect("the call's attempt");
    assert_eq!(recorded.disposition.as_deref(), Some("CALLBACK"));
    assert_eq!(recorded.notes.as_deref(), Some(notes));
    let due = recorded.callback_at.expect("callback time");
    let now = svc.clock.now().ms();
    assert!(
        (now + 3_600_000..now + 2 * 86_400_000).contains(&due),
        "callback at {due}, now {now}"
    );
    assert!(
        b.until(
            &page,
            "document.querySelectorAll('#cb-list li').length === 1",
            Duration::from_secs(10)
        )
        .await
    );
    // Kept for the agent ("Me"), and shown so.
    let kept = l
        .store
        .callbacks(l.campaign_id, None, 900_000)
        .await
        .unwrap();
    assert_eq!(
        kept[0].kept_for.as_deref(),
        Some(agent.as_str()),
        "{kept:?}"
    );
    let item = b
        .eval(&page, "document.querySelector('#cb-list li').textContent")
        .await;
    assert!(item.as_str().unwrap().contains("kept for you"), "{item}");
    let pill = b
        .eval(&page, "document.getElementById('state').textContent")
        .await;
    assert!(pill.as_str().unwrap().contains("Lunch"), "{pill}");
    shots
        .take(&mut b, &page, "agent-desktop-callback", (1280, 720))
        .await;

    // A tablet's width: one column, nothing cut.
    b.viewport(&page, 800, 1280).await;
    let overflow = b
        .eval(
            &page,
            "document.documentElement.scrollWidth <= window.innerWidth",
        )
        .await;
    assert_eq!(
        overflow,
        serde_json::json!(true),
        "the page is wider than a tablet"
    );
    shots
        .take(&mut b, &page, "agent-desktop-tablet", (800, 1280))
        .await;
    b.viewport(&page, 1280, 720).await;

    // Log out (Alt+L): the leg is hung up, the start form is back.
    b.eval(
        &page,
        "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'l', altKey: true})); true",
    )
    .await;
    assert!(
        b.until(
            &page,
            "!document.getElementById('start').hidden",
            Duration::from_secs(15)
        )
        .await
    );
    assert!(
        b.until(
            &page,
            "window.desk.audio().then(a => a === null)",
            Duration::from_secs(5)
        )
        .await
    );
    b.close().await;
    svc.stop().await;
    let stats = sb.stop().await;
    assert!(stats.rtp_echoed > 100, "{stats:?}");
    assert!(
        stats.rtp_voiced > 0,
        "the sandbox never heard the agent's voice: {stats:?}"
    );
}
