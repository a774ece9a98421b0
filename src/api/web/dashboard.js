// The live dashboard: reads /api/live once, then follows
// /api/live/stream. Hand-written, no libraries; every value from the
// server goes into the page as text, never as HTML.
(function () {
  'use strict';

  var KEY = 'dialler.token';
  var HISTORY_MS = 15 * 60 * 1000;
  var HISTORY_MAX = 1800;
  var SVG = 'http://www.w3.org/2000/svg';
  var STATES = [
    ['agents_ready', 'ready', 'var(--ready)'],
    ['agents_on_call', 'on call', 'var(--on-call)'],
    ['agents_wrap_up', 'wrap-up', 'var(--wrap-up)'],
    ['agents_paused', 'paused', 'var(--paused)']
  ];

  var $ = function (id) { return document.getElementById(id); };
  var cards = {};
  var history = {};
  var source = null;
  var token = null;
  // ?poll=SECONDS polls /api/live instead of following the event stream:
  // for proxies that buffer event streams, and for headless browsers whose
  // virtual time stands still while a stream is open.
  var pollMs = (function () {
    var p = parseFloat(new URLSearchParams(location.search).get('poll'));
    return isFinite(p) && p > 0 ? Math.min(Math.max(p, 0.2), 60) * 1000 : 0;
  })();
  var pollTimer = null;

  function takeToken() {
    var params = new URLSearchParams(location.search);
    var t = params.get('token');
    if (t) {
      try { localStorage.setItem(KEY, t); } catch (e) { /* private mode: keep it in memory */ }
      // Keep the token out of the address bar, bookmarks and history.
      params.delete('token');
      var q = params.toString();
      history_replace(location.pathname + (q ? '?' + q : ''));
      return t;
    }
    try { return localStorage.getItem(KEY); } catch (e) { return null; }
  }

  function history_replace(url) {
    try { window.history.replaceState(null, '', url); } catch (e) { /* ignore */ }
  }

  function setStatus(text, bad) {
    var s = $('status');
    s.textContent = text;
    s.className = bad ? 'status bad' : 'status';
  }

  function askToken(message) {
    if (source) { source.close(); source = null; }
    if (pollTimer) { clearTimeout(pollTimer); pollTimer = null; }
    token = null;
    try { localStorage.removeItem(KEY); } catch (e) { /* ignore */ }
    if (message) { $('login-msg').textContent = message; }
    $('login').hidden = false;
    $('signout').hidden = true;
    setStatus('signed out', true);
  }

  function start() {
    $('login').hidden = true;
    $('signout').hidden = false;
    setStatus('connecting…');
    fetch('/api/live', { headers: { 'Authorization': 'Bearer ' + token } })
      .then(function (r) {
        if (r.status === 401) { askToken('That token is unknown or revoked. Paste a supervisor token.'); return null; }
        if (r.status === 403) { askToken('That token may not watch campaigns: use a supervisor or admin token.'); return null; }
        if (!r.ok) { throw new Error('HTTP ' + r.status); }
        return r.json();
      })
      .then(function (view) {
        if (!view) { return; }
        render(view);
        follow();
        followWallboard();
      })
      .catch(function (e) {
        setStatus('cannot reach the dialler (' + e.message + '); retrying', true);
        setTimeout(start, 3000);
      });
  }

  function poll() {
    pollTimer = setTimeout(function () {
      pollTimer = null;
      fetch('/api/live', { headers: { 'Authorization': 'Bearer ' + token } })
        .then(function (r) {
          if (r.status === 401 || r.status === 403) { start(); return null; }
          if (!r.ok) { throw new Error('HTTP ' + r.status); }
          return r.json();
        })
        .then(function (view) { if (view) { render(view); poll(); } })
        .catch(function (e) { setStatus('cannot reach the dialler (' + e.message + '); retrying', true); poll(); });
    }, pollMs);
  }

  // The wallboard's rows (agents, callbacks, hours): polled, every 5 s
  // (or the page's poll interval); absent where the service has none.
  var wallboardTimer = null;
  function followWallboard() {
    if (wallboardTimer) { return; }
    var every = pollMs ? Math.max(pollMs, 250) : 5000;
    var tick = function () {
      fetch('/api/wallboard', { headers: { 'Authorization': 'Bearer ' + token } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (b) { if (b) { renderWallboard(b); } })
        .catch(function () { /* the live board says when the service is away */ })
        .then(function () { wallboardTimer = setTimeout(tick, every); });
    };
    wallboardTimer = setTimeout(tick, 0);
  }

  function secs(s) {
    if (s === null || s === undefined) { return '–'; }
    var m = Math.floor(s / 60), r = Math.floor(s % 60);
    return m + ':' + (r < 10 ? '0' : '') + r;
  }

  function fillTable(tbody, rows) {
    while (tbody.firstChild) { tbody.removeChild(tbody.firstChild); }
    rows.forEach(function (cells) {
      var tr = el('tr');
      cells.forEach(function (c) { tr.appendChild(el('td', c[1] || '', c[0])); });
      tbody.appendChild(tr);
    });
  }

  function renderWallboard(b) {
    (b.campaigns || []).forEach(function (w) {
      var card = cards[w.name];
      if (!card) { return; }
      card.wb.hidden = false;
      fillTable(card.agentRows, w.agents.map(function (a) {
        return [[a.agent], [a.state.replace('_', ' '), 'st ' + a.state], [secs(a.in_state_s)], [secs(a.call_s)],
          [String(a.calls)], [secs(a.aht_s)], [String(a.conversions)], [a.reason || '']];
      }));
      card.noAgents.hidden = w.agents.length > 0;
      fillTable(card.cbRows, w.callbacks.map(function (c) {
        return [[new Date(c.due_at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })], [c.phone], [c.agent_id || 'anyone']];
      }));
      card.noCallbacks.hidden = w.callbacks.length > 0;
      fillTable(card.hourRows, w.hourly.slice(-6).map(function (h) {
        return [[new Date(h.hour).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })], [String(h.attempts)],
          [String(h.answers)], [String(h.abandons)], [String(h.conversions)]];
      }));
    });
  }

  function table(parent, caption, heads) {
    var t = el('table', 'rows');
    var cap = el('caption', '', caption);
    t.appendChild(cap);
    var thead = el('thead');
    var tr = el('tr');
    heads.forEach(function (h) { var th = el('th', '', h); th.scope = 'col'; tr.appendChild(th); });
    thead.appendChild(tr);
    t.appendChild(thead);
    var tbody = el('tbody');
    t.appendChild(tbody);
    parent.appendChild(t);
    return tbody;
  }

  function follow() {
    if (pollMs) { if (!pollTimer) { poll(); } return; }
    if (source) { source.close(); }
    source = new EventSource('/api/live/stream?token=' + encodeURIComponent(token));
    source.addEventListener('board', function (e) {
      try { render(JSON.parse(e.data)); } catch (err) { setStatus('bad update: ' + err.message, true); }
    });
    source.onerror = function () {
      if (source && source.readyState === EventSource.CLOSED) {
        // Refused (token revoked?) or the service went away: start over,
        // which asks for a token again on 401.
        source = null;
        setStatus('disconnected; retrying', true);
        setTimeout(start, 3000);
      } else {
        setStatus('reconnecting…', true);
      }
    };
  }

  function pct(x, digits) { return (x * 100).toFixed(digits === undefined ? 1 : digits) + '%'; }
  function num(x) { return String(x); }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function tile(parent, label, field) {
    var t = el('div', 'tile');
    t.appendChild(el('div', 'k', label));
    var v = el('div', 'v', '–');
    v.setAttribute('data-field', field);
    t.appendChild(v);
    parent.appendChild(t);
    return v;
  }

  function makeCard(name) {
    var c = el('section', 'card');
    c.setAttribute('data-campaign', name);
    var head = el('div', 'card-head');
    head.appendChild(el('h2', 'name', name));
    var age = el('span', 'age');
    head.appendChild(age);
    var badge = el('span', 'badge', 'OK');
    head.appendChild(badge);
    c.appendChild(head);

    var ab = el('div', 'abandon');
    var big = el('span', 'big', '–');
    big.setAttribute('data-field', 'abandon_rate');
    ab.appendChild(big);
    var of = el('span', 'of', '');
    ab.appendChild(document.createTextNode(' '));
    ab.appendChild(of);
    var meter = el('div', 'meter');
    var fill = el('div', 'fill');
    var target = el('div', 'mark target');
    var limit = el('div', 'mark');
    meter.appendChild(fill); meter.appendChild(target); meter.appendChild(limit);
    ab.appendChild(meter);
    var counts = el('div', 'age');
    ab.appendChild(counts);
    c.appendChild(ab);

    var tiles = el('div', 'tiles');
    var agentsTile = el('div', 'tile agents');
    agentsTile.style.gridColumn = 'span 2';
    agentsTile.appendChild(el('div', 'k', 'Agents'));
    var agentsV = el('div', 'v');
    var agentSpans = {};
    STATES.forEach(function (s) {
      var sp = el('span');
      var dot = el('i', 'dot');
      dot.style.background = s[2];
      sp.appendChild(dot);
      var n = el('b', '', '0');
      n.setAttribute('data-field', s[0]);
      sp.appendChild(n);
      sp.appendChild(document.createTextNode(' ' + s[1]));
      agentsV.appendChild(sp);
      agentSpans[s[0]] = n;
    });
    agentsTile.appendChild(agentsV);
    var stack = el('div', 'stack');
    var stackParts = {};
    STATES.forEach(function (s) {
      var p = el('div');
      p.style.background = s[2];
      stack.appendChild(p);
      stackParts[s[0]] = p;
    });
    agentsTile.appendChild(stack);
    tiles.appendChild(agentsTile);
    var fields = {
      in_flight: tile(tiles, 'Calls in flight', 'in_flight'),
      dial_level: tile(tiles, 'Dial level', 'dial_level'),
      contact_rate: tile(tiles, 'Contact rate', 'contact_rate'),
      conversion_rate: tile(tiles, 'Conversion rate', 'conversion_rate'),
      attempts: tile(tiles, 'Attempts', 'attempts'),
      cps: tile(tiles, 'Calls / s', 'calls_per_second')
    };
    var inFlightSub = el('div', 'note');
    fields.in_flight.parentNode.appendChild(inFlightSub);
    c.appendChild(tiles);

    // Campaign controls: run state, the actions it allows, the cap and
    // the target (supervisor and admin tokens; the API checks).
    var ctl = el('div', 'controls');
    var runState = el('span', 'run-state', '');
    runState.setAttribute('data-field', 'run_state');
    ctl.appendChild(runState);
    var buttons = {};
    [['pause', 'Pause'], ['resume', 'Resume'], ['stop', 'Stop'], ['start', 'Start']].forEach(function (a) {
      var b = el('button', 'act', a[1]);
      b.type = 'button';
      b.setAttribute('data-action', a[0]);
      b.addEventListener('click', function () {
        if (a[0] === 'stop' && !window.confirm('Stop ' + name + '? Its claimed leads go back and agents cannot log in until it is started.')) { return; }
        control(name, 'POST', '/api/campaigns/' + encodeURIComponent(name) + '/' + a[0], null, msg);
      });
      ctl.appendChild(b);
      buttons[a[0]] = b;
    });
    var form = el('form', 'settings');
    var capL = el('label', '', 'Dial-level cap ');
    var cap = el('input');
    cap.type = 'number'; cap.min = '1'; cap.max = '10'; cap.step = '0.1'; cap.required = true;
    cap.setAttribute('data-field', 'max_dial_level');
    capL.appendChild(cap);
    var tgtL = el('label', '', 'Target % ');
    var tgt = el('input');
    tgt.type = 'number'; tgt.min = '0.1'; tgt.step = '0.1'; tgt.required = true;
    tgt.setAttribute('data-field', 'target_input');
    tgtL.appendChild(tgt);
    var save = el('button', '', 'Set');
    save.type = 'submit';
    form.appendChild(capL); form.appendChild(tgtL); form.appendChild(save);
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var body = JSON.stringify({ max_dial_level: Number(cap.value), target_percent: Number(tgt.value) });
      control(name, 'PATCH', '/api/campaigns/' + encodeURIComponent(name) + '/controls', body, msg);
    });
    ctl.appendChild(form);
    var msg = el('span', 'msg', '');
    msg.setAttribute('role', 'status');
    ctl.appendChild(msg);
    c.appendChild(ctl);

    // The wallboard: agents, callbacks due, the last hours.
    var wb = el('div', 'wallboard');
    wb.hidden = true;
    var agentRows = table(wb, 'Agents', ['Agent', 'State', 'In state', 'Call', 'Calls', 'AHT', 'Conv.', 'Reason']);
    var noAgents = el('p', 'note', 'No agent is logged in.');
    wb.appendChild(noAgents);
    var side = el('div', 'wb-side');
    var cbRows = table(side, 'Callbacks due', ['Due', 'Number', 'For']);
    var noCallbacks = el('p', 'note', 'None.');
    side.appendChild(noCallbacks);
    var hourRows = table(side, 'By hour (UTC hours)', ['Hour', 'Attempts', 'Answers', 'Abandons', 'Conv.']);
    wb.appendChild(side);
    c.appendChild(wb);

    var charts = el('div', 'charts');
    var ch1 = el('div', 'chart');
    ch1.appendChild(el('h3', '', 'Abandonment in the window vs limit'));
    var svg1 = document.createElementNS(SVG, 'svg');
    svg1.setAttribute('viewBox', '0 0 300 130');
    svg1.setAttribute('preserveAspectRatio', 'none');
    ch1.appendChild(svg1);
    var lg1 = el('div', 'legend');
    lg1.innerHTML = '<span style="color:#1d2330">━ rate</span><span style="color:#b3140b">┅ limit</span><span>┅ target</span>';
    ch1.appendChild(lg1);
    var ch2 = el('div', 'chart');
    ch2.appendChild(el('h3', '', 'Agents by state'));
    var svg2 = document.createElementNS(SVG, 'svg');
    svg2.setAttribute('viewBox', '0 0 300 130');
    svg2.setAttribute('preserveAspectRatio', 'none');
    ch2.appendChild(svg2);
    var lg2 = el('div', 'legend');
    STATES.forEach(function (s) {
      var sp = el('span', '', '■ ' + s[1]);
      sp.style.color = s[2];
      lg2.appendChild(sp);
    });
    ch2.appendChild(lg2);
    charts.appendChild(ch1); charts.appendChild(ch2);
    c.appendChild(charts);

    $('campaigns').appendChild(c);
    return {
      root: c, age: age, badge: badge, big: big, of: of, fill: fill, target: target,
      limit: limit, counts: counts, agents: agentSpans, stack: stackParts, fields: fields,
      inFlightSub: inFlightSub, wb: wb, agentRows: agentRows, noAgents: noAgents, cbRows: cbRows,
      noCallbacks: noCallbacks, hourRows: hourRows, runState: runState, buttons: buttons, cap: cap, tgt: tgt,
      svg1: svg1, svg2: svg2
    };
  }

  // A control request; what went wrong is shown on the card.
  function control(name, method, path, body, msg) {
    msg.textContent = '…';
    var headers = { 'Authorization': 'Bearer ' + token };
    if (body) { headers['Content-Type'] = 'application/json'; }
    fetch(path, { method: method, headers: headers, body: body })
      .then(function (r) {
        return r.json().then(function (v) { return { ok: r.ok, v: v }; }, function () { return { ok: r.ok, v: null }; });
      })
      .then(function (res) {
        msg.textContent = res.ok ? 'done' : ((res.v && res.v.error && res.v.error.message) || 'refused');
        msg.className = res.ok ? 'msg' : 'msg bad';
      })
      .catch(function () { msg.textContent = 'not sent: the service did not answer'; msg.className = 'msg bad'; });
  }

  function render(view) {
    var names = Object.keys(view.campaigns || {});
    $('empty').hidden = names.length > 0;
    setStatus('live · ' + new Date(view.now_ms).toLocaleTimeString());
    names.forEach(function (name) {
      var c = view.campaigns[name];
      var card = cards[name] || (cards[name] = makeCard(name));
      var h = history[name] || (history[name] = []);
      var t = c.at_ms || view.now_ms;
      if (!h.length || h[h.length - 1].t !== t) {
        h.push({
          t: t, rate: c.window_rate_percent, limit: c.limit_percent, target: c.target_percent,
          agents_ready: c.agents_ready, agents_on_call: c.agents_on_call,
          agents_wrap_up: c.agents_wrap_up, agents_paused: c.agents_paused
        });
        while (h.length > HISTORY_MAX || (h.length > 1 && t - h[0].t > HISTORY_MS)) { h.shift(); }
      }
      update(card, c, view.now_ms);
      chartAbandon(card.svg1, h);
      chartAgents(card.svg2, h);
    });
    Object.keys(cards).forEach(function (name) {
      if (names.indexOf(name) < 0) {
        cards[name].root.remove();
        delete cards[name];
        delete history[name];
      }
    });
  }

  function level(c) {
    if (c.limit_percent > 0 && c.window_rate_percent > c.limit_percent) { return 'over'; }
    var near = Math.min(c.limit_percent * 0.8, c.target_percent > 0 ? c.target_percent : c.limit_percent * 0.8);
    if (c.limit_percent > 0 && c.window_rate_percent >= near) { return 'near'; }
    return 'ok';
  }

  function update(card, c, now) {
    var lv = level(c);
    card.root.className = 'card ' + lv;
    card.badge.textContent = lv === 'over' ? 'OVER LIMIT' : lv === 'near' ? 'NEAR LIMIT' : 'OK';
    var ageS = c.at_ms ? Math.max(0, Math.round((now - c.at_ms) / 1000)) : null;
    card.age.textContent = ageS === null ? '' : (ageS < 2 ? 'now' : ageS + ' s ago');
    card.big.textContent = c.window_rate_percent.toFixed(2) + '%';
    card.of.textContent = 'abandoned in the window · limit ' + c.limit_percent.toFixed(2) +
      '% · target ' + c.target_percent.toFixed(2) + '%';
    var scale = Math.max(c.limit_percent * 1.5, c.window_rate_percent * 1.1, 0.01);
    card.fill.style.width = Math.min(100, 100 * c.window_rate_percent / scale) + '%';
    card.limit.style.left = (100 * c.limit_percent / scale) + '%';
    card.target.style.left = (100 * c.target_percent / scale) + '%';
    card.counts.textContent = c.window_abandons + ' abandons / ' + c.window_human_answers +
      ' human answers in the window';
    var total = 0;
    STATES.forEach(function (s) { total += c[s[0]]; });
    STATES.forEach(function (s) {
      card.agents[s[0]].textContent = num(c[s[0]]);
      card.stack[s[0]].style.width = (total ? 100 * c[s[0]] / total : 0) + '%';
    });
    card.fields.in_flight.textContent = num(c.calls_ringing + c.calls_waiting + c.agents_on_call);
    card.inFlightSub.textContent = c.calls_ringing + ' ringing · ' + c.calls_waiting + ' waiting · ' +
      c.agents_on_call + ' connected';
    var st = c.run_state || 'running';
    card.runState.textContent = st;
    card.runState.className = 'run-state ' + st;
    var allowed = { running: ['pause', 'stop'], paused: ['resume', 'stop'], stopped: ['start'] }[st] || [];
    Object.keys(card.buttons).forEach(function (a) { card.buttons[a].hidden = allowed.indexOf(a) < 0; });
    // Not while someone is typing in them.
    if (document.activeElement !== card.cap && c.max_dial_level) { card.cap.value = c.max_dial_level; }
    if (document.activeElement !== card.tgt) { card.tgt.value = c.target_percent; card.tgt.max = c.limit_percent; }
    card.fields.dial_level.textContent = c.dial_level.toFixed(2);
    card.fields.contact_rate.textContent = pct(c.contact_rate);
    card.fields.conversion_rate.textContent = pct(c.conversion_rate);
    card.fields.attempts.textContent = num(c.attempts);
    card.fields.cps.textContent = c.calls_per_second.toFixed(1);
  }

  function clear(svg) { while (svg.firstChild) { svg.removeChild(svg.firstChild); } }

  function add(svg, tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    svg.appendChild(e);
    return e;
  }

  var W = 300, H = 130, PAD = 4;

  function xs(h) {
    var t0 = h[0].t, t1 = h[h.length - 1].t;
    var span = Math.max(t1 - t0, 1);
    return function (t) { return h.length === 1 ? W - PAD : PAD + (W - 2 * PAD) * (t - t0) / span; };
  }

  function chartAbandon(svg, h) {
    clear(svg);
    var top = 0.01;
    h.forEach(function (p) { top = Math.max(top, p.rate * 1.15, p.limit * 1.3); });
    var x = xs(h);
    var y = function (v) { return H - PAD - (H - 2 * PAD) * v / top; };
    var last = h[h.length - 1];
    add(svg, 'line', { x1: 0, x2: W, y1: y(last.limit), y2: y(last.limit), stroke: '#b3140b', 'stroke-width': 1.5, 'stroke-dasharray': '5 3', 'vector-effect': 'non-scaling-stroke' });
    add(svg, 'line', { x1: 0, x2: W, y1: y(last.target), y2: y(last.target), stroke: '#9aa1ab', 'stroke-width': 1, 'stroke-dasharray': '3 3', 'vector-effect': 'non-scaling-stroke' });
    var pts = h.map(function (p) { return x(p.t).toFixed(1) + ',' + y(p.rate).toFixed(1); });
    if (h.length > 1) {
      add(svg, 'polygon', { points: x(h[0].t).toFixed(1) + ',' + (H - PAD) + ' ' + pts.join(' ') + ' ' + x(last.t).toFixed(1) + ',' + (H - PAD), fill: 'rgba(47,111,214,0.12)' });
      add(svg, 'polyline', { points: pts.join(' '), fill: 'none', stroke: '#1d2330', 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke' });
    }
    var over = last.rate > last.limit;
    add(svg, 'circle', { cx: x(last.t), cy: y(last.rate), r: 3, fill: over ? '#b3140b' : '#1d2330' });
    var label = add(svg, 'text', { x: PAD + 2, y: 12, 'font-size': 10, fill: '#6b7280' });
    label.textContent = top.toFixed(1) + '%';
  }

  function chartAgents(svg, h) {
    clear(svg);
    var top = 1;
    h.forEach(function (p) {
      var s = 0;
      STATES.forEach(function (st) { s += p[st[0]]; });
      top = Math.max(top, s);
    });
    var x = xs(h);
    var y = function (v) { return H - PAD - (H - 2 * PAD) * v / (top * 1.1); };
    var pts = h.length === 1 ? [h[0], h[0]] : h;
    var xAt = function (i) { return h.length === 1 ? (i === 0 ? PAD : W - PAD) : x(pts[i].t); };
    var base = pts.map(function () { return 0; });
    STATES.forEach(function (st) {
      var lower = base.slice();
      var upper = pts.map(function (p, i) { return base[i] + p[st[0]]; });
      var up = upper.map(function (v, i) { return xAt(i).toFixed(1) + ',' + y(v).toFixed(1); });
      var down = lower.map(function (v, i) { return xAt(i).toFixed(1) + ',' + y(v).toFixed(1); }).reverse();
      add(svg, 'polygon', { points: up.concat(down).join(' '), style: 'fill:' + st[2] + ';opacity:0.85' });
      base = upper;
    });
    var label = add(svg, 'text', { x: PAD + 2, y: 12, 'font-size': 10, fill: '#6b7280' });
    label.textContent = String(top);
  }

  $('login').addEventListener('submit', function (e) {
    e.preventDefault();
    var t = $('token').value.trim();
    if (!t) { return; }
    try { localStorage.setItem(KEY, t); } catch (err) { /* ignore */ }
    token = t;
    $('token').value = '';
    start();
  });
  $('signout').addEventListener('click', function () { askToken('Token forgotten. Paste a supervisor token.'); });

  token = takeToken();
  if (token) { start(); } else { askToken(); }
})();
