// The agent desktop. Plain script, no build step: the service embeds it.
// It talks only to the documented API (/api/me, /api/campaigns,
// /api/agents/{id}/..., /api/calls/{id}/disposition, /api/callbacks) and
// the event stream /api/events; the softphone is an RTCPeerConnection
// whose offer goes to /api/agents/{id}/softphone.
(function () {
  'use strict';

  var KEY = 'dialler.agent.token';
  var lang = (new URLSearchParams(location.search).get('lang') || navigator.language || 'en').slice(0, 2);
  var table = STRINGS[lang] || STRINGS.en;

  function t(key, vars) {
    var s = table[key] || STRINGS.en[key] || key;
    if (vars) {
      Object.keys(vars).forEach(function (k) { s = s.split('{' + k + '}').join(String(vars[k])); });
    }
    return s;
  }

  function $(id) { return document.getElementById(id); }

  var token = null;
  var me = null;          // {role, agent, session}
  var campaigns = [];     // from /api/campaigns
  var campaign = null;    // the one logged in to
  var state = 'logged_out';
  var stateSince = Date.now();
  var call = null;        // the current CallView
  var callStart = null;
  var callEnded = null;
  var events = null;
  var pc = null;          // the softphone
  var mic = null;
  var resync = null;
  var eventSeq = 0;       // events seen: a resync older than one is stale
  var disposed = {};      // calls whose disposition this page recorded

  // ---- strings into the page -------------------------------------------
  document.documentElement.lang = STRINGS[lang] ? lang : 'en';
  Array.prototype.forEach.call(document.querySelectorAll('[data-t]'), function (el) {
    el.textContent = t(el.getAttribute('data-t'));
  });

  // ---- the API ----------------------------------------------------------
  function api(method, path, body) {
    var init = { method: method, headers: { 'Authorization': 'Bearer ' + token } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (r) {
      return r.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!r.ok) {
          var detail = data && data.error;
          var text = detail && detail.message ? detail.message + (detail.field ? ' (' + detail.field + ')' : '') : (r.status + ' ' + r.statusText);
          var err = new Error(text);
          err.status = r.status;
          throw err;
        }
        return data;
      });
    });
  }

  function agentPath(rest) { return '/api/agents/' + encodeURIComponent(me.agent) + rest; }

  function say(id, text) { $(id).textContent = text || ''; }

  // ---- sign in ----------------------------------------------------------
  function show(section) {
    ['signin', 'start', 'desk'].forEach(function (s) { $(s).hidden = s !== section; });
    $('signout').hidden = section === 'signin';
  }

  function askToken(message) {
    stopEvents();
    token = null;
    me = null;
    try { sessionStorage.removeItem(KEY); } catch (e) { /* private mode */ }
    say('signin-msg', message || t('sign_in_help'));
    show('signin');
    $('token').focus();
  }

  function signIn(candidate) {
    token = candidate;
    return api('GET', '/api/me').then(function (who) {
      if (who.role !== 'agent' || !who.agent) {
        askToken(t('not_agent', { role: who.role }));
        return;
      }
      try { sessionStorage.setItem(KEY, token); } catch (e) { /* private mode */ }
      learnClock(who);
      me = who;
      $('who').textContent = who.agent;
      return api('GET', '/api/campaigns').then(function (list) {
        campaigns = list || [];
        if (who.session && who.session.state !== 'logged_out') {
          enterDesk(who.session);
        } else {
          offerStart();
        }
      });
    }).catch(function (e) {
      askToken(e.status === 401 ? t('bad_token') : t('error', { message: e.message }));
    });
  }

  function offerStart(message) {
    var sel = $('campaign');
    sel.textContent = '';
    campaigns.forEach(function (c) {
      var o = document.createElement('option');
      o.value = c.name;
      o.textContent = c.name + (c.description ? ' — ' + c.description : '');
      sel.appendChild(o);
    });
    say('start-msg', message || (campaigns.length ? '' : t('no_campaigns')));
    $('login-btn').disabled = !campaigns.length;
    show('start');
    sel.focus();
  }

  // ---- the softphone ----------------------------------------------------
  function waitForCandidates(conn) {
    return new Promise(function (resolve) {
      if (conn.iceGatheringState === 'complete') { resolve(); return; }
      var done = function () { if (conn.iceGatheringState === 'complete') { resolve(); } };
      conn.addEventListener('icegatheringstatechange', done);
      // Host candidates come at once; do not wait on a slow STUN-less gather.
      setTimeout(resolve, 2000);
    });
  }

  function startSoftphone() {
    if (!window.RTCPeerConnection || !navigator.mediaDevices) {
      return Promise.reject(new Error(t('no_webrtc')));
    }
    return navigator.mediaDevices.getUserMedia({ audio: true, video: false }).catch(function (e) {
      // Refused by the agent or the browser's policy; anything else (a
      // microphone another program holds, none at all) is said as is.
      if (e && (e.name === 'NotAllowedError' || e.name === 'SecurityError')) { throw new Error(t('mic_denied')); }
      throw new Error(t('mic_failed', { why: (e && (e.name + ': ' + e.message)) || String(e) }));
    }).then(function (stream) {
      mic = stream;
      pc = new RTCPeerConnection({ iceServers: [] });
      stream.getAudioTracks().forEach(function (track) { pc.addTrack(track, stream); });
      pc.addEventListener('track', function (ev) {
        var audio = $('remote-audio');
        audio.srcObject = ev.streams[0] || new MediaStream([ev.track]);
        var p = audio.play();
        if (p && p.catch) { p.catch(function () { /* autoplay waits for a click */ }); }
      });
      pc.addEventListener('connectionstatechange', showPhone);
      showPhone();
      return pc.createOffer();
    }).then(function (offer) {
      return pc.setLocalDescription(offer);
    }).then(function () {
      return waitForCandidates(pc);
    }).then(function () {
      return api('POST', agentPath('/softphone'), { sdp: pc.localDescription.sdp });
    }).then(function (answer) {
      return pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    });
  }

  function stopSoftphone() {
    if (pc) { pc.close(); pc = null; }
    if (mic) { mic.getTracks().forEach(function (tr) { tr.stop(); }); mic = null; }
    showPhone();
  }

  function showPhone() {
    var el = $('phone-state');
    if (!pc) { el.textContent = me && me.session && me.session.state ? t('sip_phone') : ''; return; }
    var s = pc.connectionState;
    el.textContent = s === 'connected' ? t('phone_connected')
      : (s === 'failed' || s === 'closed' || s === 'disconnected') ? t('phone_lost')
      : t('phone_connecting');
  }

  // ---- log in and out ---------------------------------------------------
  function logIn(ev) {
    ev.preventDefault();
    var name = $('campaign').value;
    var browser = document.querySelector('input[name=phone]:checked').value === 'browser';
    var btn = $('login-btn');
    btn.disabled = true;
    say('start-msg', t('logging_in'));
    var body = { campaign: name };
    var ready = Promise.resolve();
    if (browser) {
      body.softphone = true;
      ready = startSoftphone();
    } else if ($('sip-uri').value.trim()) {
      body.sip_uri = $('sip-uri').value.trim();
    }
    ready.then(function () {
      return api('POST', agentPath('/login'), body);
    }).then(function (r) {
      btn.disabled = false;
      say('start-msg', '');
      enterDesk({ campaign: name, state: r.state, since: Date.now(), reason: 'logged_in' });
    }).catch(function (e) {
      btn.disabled = false;
      stopSoftphone();
      say('start-msg', t('error', { message: e.message }));
    });
  }

  function enterDesk(session) {
    campaign = campaigns.filter(function (c) { return c.name === session.campaign; })[0] || { name: session.campaign, dispositions: [], pause_codes: [] };
    fillPauseCodes();
    fillCodes();
    show('desk');
    setState(session.state, session.reason, session.pending);
    if (session.call) {
      showCall(session.call);
      if (session.call.ended_at) { callEnded = Date.now(); }
    } else {
      clearCall();
    }
    startEvents();
    loadCallbacks();
    clearInterval(resync);
    resync = setInterval(refresh, 10000);
    $('ready').focus();
  }

  function leaveDesk(message) {
    stopEvents();
    stopSoftphone();
    clearInterval(resync);
    clearCall();
    state = 'logged_out';
    offerStart(message);
  }

  // ---- state ------------------------------------------------------------
  function setState(s, reason, pending) {
    if (s !== state) { stateSince = Date.now(); }
    state = s;
    var pill = $('state');
    pill.className = 'pill ' + s;
    var label = t('state_' + s);
    if (s === 'paused' && reason) {
      var code = (campaign && campaign.pause_codes || []).filter(function (p) { return p.code === reason; })[0];
      label += ' · ' + (code ? code.label : reason === 'logged_in' ? t('reason_logged_in') : reason);
    }
    pill.textContent = label;
    say('pending', pending === 'pause' ? t('pending_pause') : pending === 'logout' ? t('pending_logout') : '');
    $('ready').disabled = !(s === 'paused');
    $('pause').disabled = !(s === 'ready' || s === 'on_call' || s === 'wrapup');
    $('hangup').disabled = s !== 'on_call';
    $('dtmf-send').disabled = s !== 'on_call';
    $('dispo').hidden = !(s === 'wrapup' && call);
    if (s === 'wrapup' && call) {
      if (!callEnded) { callEnded = Date.now(); }
      say('desk-msg', '');
      var first = document.querySelector('#codes input');
      if (first && !document.querySelector('#codes input:checked')) { first.focus(); }
    }
    if (s === 'logged_out') { leaveDesk(); }
  }

  function fillPauseCodes() {
    var sel = $('pause-code');
    sel.textContent = '';
    (campaign.pause_codes || []).forEach(function (p) {
      var o = document.createElement('option');
      o.value = p.code;
      o.textContent = p.label;
      sel.appendChild(o);
    });
  }

  function act(path, body) {
    say('desk-msg', '');
    return api('POST', agentPath(path), body).then(function (r) {
      // The event stream says the same; a pause or log-out after a call
      // shows as pending until then.
      if (r && r.state) { setState(r.state, body && body.reason, pendingOf(path, r.state)); }
    }).catch(function (e) { say('desk-msg', t('error', { message: e.message })); });
  }

  function pendingOf(path, s) {
    if ((s === 'on_call' || s === 'wrapup') && path === '/pause') { return 'pause'; }
    if ((s === 'on_call' || s === 'wrapup') && path === '/logout') { return 'logout'; }
    return null;
  }

  // ---- the call ---------------------------------------------------------
  function showCall(view) {
    if (disposed[view.call_id]) { return; }
    call = view;
    callStart = view.connected_at ? Date.now() - Math.max(0, serverNow() - view.connected_at) : Date.now();
    callEnded = null;
    $('no-call').hidden = true;
    $('call-body').hidden = false;
    $('call-phone').textContent = view.phone;
    $('dtmf-heard').textContent = view.dtmf || '';
    $('dtmf-digits').value = '';
    var body = $('lead').tBodies[0];
    body.textContent = '';
    var fields = view.lead && typeof view.lead === 'object' ? view.lead : {};
    Object.keys(fields).forEach(function (k) {
      var tr = document.createElement('tr');
      var th = document.createElement('th');
      th.scope = 'row';
      th.textContent = k.replace(/_/g, ' ');
      var td = document.createElement('td');
      var v = fields[k];
      td.textContent = v === null || v === undefined ? '' : String(v);
      tr.appendChild(th);
      tr.appendChild(td);
      body.appendChild(tr);
    });
    $('script').textContent = view.script || t('no_script');
    $('history').tBodies[0].textContent = '';
    $('notes').value = '';
    $('amount').value = '';
    $('callback-at').value = '';
    $('cb-anyone').checked = true;
    Array.prototype.forEach.call(document.querySelectorAll('#codes input'), function (i) { i.checked = false; });
    codeChanged();
    loadHistory();
  }

  function clearCall() {
    call = null;
    callStart = null;
    callEnded = null;
    $('no-call').hidden = false;
    $('call-body').hidden = true;
    $('dispo').hidden = true;
    $('call-timer').textContent = '';
    $('wrap-timer').textContent = '';
  }

  function shortTime(ms) {
    // Rounded to the minute: the service's and the browser's clocks
    // differ by the odd second.
    var d = new Date(Math.round(ms / 60000) * 60000);
    try { return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }); } catch (e) { return d.toLocaleString(); }
  }

  var skew = 0; // the service's time minus this browser's
  function serverNow() { return Date.now() + skew; }
  function learnClock(who) {
    if (typeof who.now === 'number') { skew = who.now - Date.now(); }
  }

  function loadHistory() {
    api('GET', agentPath('/call')).then(function (r) {
      if (!r || !call || r.call.call_id !== call.call_id) { return; }
      if (r.call.script) { $('script').textContent = r.call.script; }
      var body = $('history').tBodies[0];
      body.textContent = '';
      var earlier = (r.history || []).filter(function (h) { return h.call_id !== call.call_id; });
      if (!earlier.length) {
        var tr = document.createElement('tr');
        var td = document.createElement('td');
        td.colSpan = 5;
        td.className = 'muted';
        td.textContent = t('no_history');
        tr.appendChild(td);
        body.appendChild(tr);
      }
      earlier.forEach(function (h) {
        var tr = document.createElement('tr');
        [shortTime(h.started_at - skew), h.outcome || '', h.agent || '', h.disposition || '', h.notes || ''].forEach(function (v) {
          var td = document.createElement('td');
          td.textContent = v;
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
    }).catch(function () { /* the call ended meanwhile */ });
  }

  // ---- disposition ------------------------------------------------------
  function fillCodes() {
    var box = $('codes');
    Array.prototype.slice.call(box.querySelectorAll('label')).forEach(function (l) { l.remove(); });
    (campaign.dispositions || []).forEach(function (d, i) {
      var label = document.createElement('label');
      var input = document.createElement('input');
      input.type = 'radio';
      input.name = 'code';
      input.value = d.code;
      input.addEventListener('change', codeChanged);
      var key = document.createElement('span');
      key.className = 'key';
      key.textContent = i < 9 ? String(i + 1) : '';
      label.appendChild(input);
      label.appendChild(document.createTextNode(' '));
      label.appendChild(key);
      label.appendChild(document.createTextNode(d.label));
      box.appendChild(label);
    });
    var amount = document.querySelector('label[for=amount]');
    amount.textContent = campaign.currency ? t('amount_in', { currency: campaign.currency }) : t('amount');
  }

  function chosen() {
    var input = document.querySelector('#codes input:checked');
    if (!input) { return null; }
    return (campaign.dispositions || []).filter(function (d) { return d.code === input.value; })[0] || null;
  }

  function codeChanged() {
    var d = chosen();
    $('amount-row').hidden = !(d && d.conversion);
    $('callback-row').hidden = !(d && d.callback);
    $('cb-me-label').textContent = t('callback_me', { minutes: Math.round((campaign.callback_grace_s || 0) / 60) });
    if (d && d.callback && !$('callback-at').value) {
      var soon = new Date(Date.now() + 24 * 3600 * 1000);
      soon.setMinutes(0, 0, 0);
      $('callback-at').value = localInput(soon);
    }
  }

  function localInput(d) {
    function two(n) { return (n < 10 ? '0' : '') + n; }
    return d.getFullYear() + '-' + two(d.getMonth() + 1) + '-' + two(d.getDate()) + 'T' + two(d.getHours()) + ':' + two(d.getMinutes());
  }

  function saveDisposition(ev) {
    ev.preventDefault();
    if (!call) { return; }
    var d = chosen();
    if (!d) { say('dispo-msg', t('pick_a_code')); return; }
    var body = { code: d.code };
    var notes = $('notes').value.trim();
    if (notes) { body.notes = notes; }
    if (d.conversion && $('amount').value !== '') { body.amount = Number($('amount').value); }
    if (d.callback) {
      var at = $('callback-at').value;
      if (!at) { say('dispo-msg', t('callback_needed')); return; }
      // datetime-local is the agent's own time; the API takes ms since the epoch.
      body.callback_at = new Date(at).getTime() + skew;
      if ($('cb-me').checked) { body.personal = true; }
    }
    $('save').disabled = true;
    var id = call.call_id;
    api('POST', '/api/calls/' + id + '/disposition', body).then(function () {
      disposed[id] = true;
      $('save').disabled = false;
      say('dispo-msg', '');
      clearCall();
      say('desk-msg', '');
      say('pending', t('saved'));
      loadCallbacks();
      refresh();
    }).catch(function (e) {
      $('save').disabled = false;
      say('dispo-msg', t('error', { message: e.message }));
    });
  }

  // ---- callbacks --------------------------------------------------------
  function loadCallbacks() {
    if (!campaign) { return; }
    api('GET', '/api/callbacks?campaign=' + encodeURIComponent(campaign.name)).then(function (list) {
      var ul = $('cb-list');
      ul.textContent = '';
      (list || []).forEach(function (c) {
        var li = document.createElement('li');
        li.textContent = c.phone + ' — ' + t('due', { when: shortTime(c.due_at - skew) }) +
          (c.kept_for ? ' — ' + t('kept_for_you') : '');
        ul.appendChild(li);
      });
      $('no-callbacks').hidden = (list || []).length > 0;
    }).catch(function () { /* shown on the next refresh */ });
  }

  // ---- live updates -----------------------------------------------------
  function startEvents() {
    stopEvents();
    events = new EventSource('/api/events?token=' + encodeURIComponent(token));
    events.onopen = function () { $('link').textContent = t('live'); $('link').className = 'status'; };
    events.onerror = function () { $('link').textContent = t('reconnecting'); $('link').className = 'status bad'; };
    events.addEventListener('state', function (ev) {
      eventSeq++;
      var d = JSON.parse(ev.data);
      if (d.agent !== me.agent) { return; }
      setState(d.data.state, d.data.reason, null);
    });
    events.addEventListener('call', function (ev) {
      eventSeq++;
      var d = JSON.parse(ev.data);
      if (d.agent !== me.agent) { return; }
      showCall(d.data);
      setState('on_call', null, null);
    });
    events.addEventListener('dtmf', function (ev) {
      eventSeq++;
      var d = JSON.parse(ev.data);
      if (d.agent !== me.agent || !call || d.data.call_id !== call.call_id) { return; }
      $('dtmf-heard').textContent += d.data.digit;
    });
    events.addEventListener('call_ended', function (ev) {
      eventSeq++;
      var d = JSON.parse(ev.data);
      if (d.agent !== me.agent || !call || d.data.call_id !== call.call_id) { return; }
      callEnded = Date.now();
      say('desk-msg', t('call_ended'));
    });
  }

  function stopEvents() {
    if (events) { events.close(); events = null; }
  }

  // The stream is the fast path; this catches anything it missed.
  function refresh() {
    if (!me) { return; }
    var asked = eventSeq;
    api('GET', '/api/me').then(function (who) {
      if (!who) { return; }
      learnClock(who);
      // An event came while this was out: it is newer than this answer.
      if (eventSeq !== asked) { return; }
      me = who;
      var s = who.session;
      if (!s) { if (state !== 'logged_out') { setState('logged_out'); } return; }
      if (s.call && (!call || call.call_id !== s.call.call_id)) { showCall(s.call); }
      if (!s.call && call && state !== 'wrapup') { clearCall(); }
      setState(s.state, s.reason, s.pending);
    }).catch(function (e) {
      if (e.status === 401) { askToken(t('bad_token')); }
      // Otherwise offline: the stream reconnects too.
    });
  }

  // ---- timers -----------------------------------------------------------
  function clock(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var m = Math.floor(s / 60);
    s = s % 60;
    return m + ':' + (s < 10 ? '0' : '') + s;
  }

  setInterval(function () {
    if (state === 'logged_out') { return; }
    $('state-timer').textContent = clock(Date.now() - stateSince);
    if (call && callStart) { $('call-timer').textContent = clock((callEnded || Date.now()) - callStart); }
    if (call && callEnded && state === 'wrapup') { $('wrap-timer').textContent = clock(Date.now() - callEnded); }
  }, 500);

  // ---- keyboard ---------------------------------------------------------
  document.addEventListener('keydown', function (ev) {
    if (!ev.altKey || ev.ctrlKey || ev.metaKey || $('desk').hidden) { return; }
    var k = ev.key.toLowerCase();
    var click = function (id) { var b = $(id); if (!b.disabled && !b.hidden) { b.click(); } ev.preventDefault(); };
    if (k === 'r') { click('ready'); }
    else if (k === 'p') { click('pause'); }
    else if (k === 'h') { click('hangup'); }
    else if (k === 'l') { click('logout'); }
    else if (k === 's') { if (!$('dispo').hidden) { $('dispo').requestSubmit(); } ev.preventDefault(); }
    else if (/^[1-9]$/.test(k)) {
      var inputs = document.querySelectorAll('#codes input');
      var i = Number(k) - 1;
      if (inputs[i]) { inputs[i].checked = true; inputs[i].focus(); codeChanged(); }
      ev.preventDefault();
    }
  });

  // ---- wiring -----------------------------------------------------------
  $('signin').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var v = $('token').value.trim();
    $('token').value = '';
    if (v) { signIn(v); }
  });
  $('start').addEventListener('submit', logIn);
  Array.prototype.forEach.call(document.querySelectorAll('input[name=phone]'), function (r) {
    r.addEventListener('change', function () { $('sip-uri').disabled = r.value !== 'sip' || !r.checked; });
  });
  $('ready').addEventListener('click', function () { act('/ready'); });
  $('pause').addEventListener('click', function () { act('/pause', { reason: $('pause-code').value }); });
  $('hangup').addEventListener('click', function () { act('/hangup'); });
  $('keypad').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var digits = $('dtmf-digits').value.trim();
    if (!/^[0-9*#A-Da-d]{1,32}$/.test(digits)) { say('desk-msg', t('dtmf_bad')); return; }
    api('POST', agentPath('/dtmf'), { digits: digits }).then(function () {
      $('dtmf-digits').value = '';
      say('pending', t('dtmf_sent', { digits: digits }));
    }).catch(function (e) { say('desk-msg', t('error', { message: e.message })); });
  });
  $('logout').addEventListener('click', function () { act('/logout'); });
  $('dispo').addEventListener('submit', saveDisposition);
  $('signout').addEventListener('click', function () {
    if (state !== 'logged_out' && me) { act('/logout'); }
    askToken();
  });

  // For tests and support: what the page shows and what its audio does.
  window.desk = {
    state: function () { return state; },
    call: function () { return call; },
    audio: function () {
      if (!pc) { return Promise.resolve(null); }
      return pc.getStats().then(function (stats) {
        var out = { connection: pc.connectionState };
        stats.forEach(function (s) {
          if (s.type === 'inbound-rtp' && s.kind === 'audio') {
            out.packetsReceived = s.packetsReceived;
            out.audioLevel = s.audioLevel;
            out.totalAudioEnergy = s.totalAudioEnergy;
          }
          if (s.type === 'outbound-rtp' && s.kind === 'audio') { out.packetsSent = s.packetsSent; }
        });
        return out;
      });
    },
  };

  // ---- start ------------------------------------------------------------
  var params = new URLSearchParams(location.search);
  var given = params.get('token');
  if (given) {
    // Keep the token out of the address bar, bookmarks and history.
    params.delete('token');
    var rest = params.toString();
    history.replaceState(null, '', location.pathname + (rest ? '?' + rest : ''));
  }
  var kept = null;
  try { kept = sessionStorage.getItem(KEY); } catch (e) { kept = null; }
  if (given || kept) { signIn(given || kept); } else { askToken(); }
})();
