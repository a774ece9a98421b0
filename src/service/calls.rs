//! Customer calls: the compliance check just before each INVITE, the call
//! task (attempt row, then INVITE, then SIP events back to the campaign),
//! the bridge to an agent's leg (an RTP relay), the safe-harbour message,
//! and hang-ups at the runner's word or at shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::driver::{Driver, Input};
use super::writer::Write;
use super::{CallView, ServiceEvent};
use crate::campaign::Campaign;
use crate::clock::Millis;
use crate::compliance;
use crate::dialer::{AgentId, CallId, Event, Outcome};
use crate::media::relay::{Dtmf, Leg, relay_with_dtmf};
use crate::phone;
use crate::policy;
use crate::sip::auth::Credentials;
use crate::sip::sdp;
use crate::sip::ua::Ua;
use crate::sip::uac::{self, CallEvent, CallParams, RingTimeout, Summary};
use crate::store::{ClaimedLead, NewAttempt, Store};

/// What the driver holds of a customer call.
pub(super) struct CallCtx {
    pub(super) lead: ClaimedLead,
    /// When it was dialled.
    pub(super) started_at: Millis,
    pub(super) attempt_id: Option<i64>,
    ctrl: mpsc::UnboundedSender<Ctrl>,
    rtp: Arc<UdpSocket>,
    media: Option<SocketAddr>,
    /// The G.711 payload type the callee's answer chose (PCMU or PCMA).
    codec: u8,
    /// The payload type the callee's answer maps to telephone-event
    /// (RFC 4733), if any.
    dtmf_pt: Option<u8>,
    /// Digits for the relay to send to the customer, while bridged.
    dtmf_tx: Option<mpsc::UnboundedSender<String>>,
    pub(super) answered_at: Option<i64>,
    pub(super) connected_at: Option<i64>,
    pub(super) agent: Option<String>,
    /// The runner's outcome, once it ended the attempt.
    pub(super) outcome: Option<Outcome>,
    /// The SIP side's summary, once the call ended there.
    pub(super) summary: Option<Summary>,
    relay_stop: Option<oneshot::Sender<()>>,
    /// Our RTCP socket for the leg (the RTP port plus one).
    rtcp: Arc<UdpSocket>,
    /// What the relay counts on the leg, for RTCP.
    leg_stats: Arc<std::sync::Mutex<crate::media::rtcp::LegStats>>,
    /// Ends the leg's RTCP session (with an RTCP BYE).
    rtcp_stop: Option<oneshot::Sender<()>>,
    /// Hung up by a shutdown whose grace ran out.
    pub(super) interrupted: bool,
    /// Set while the customer's side has the call on hold (its offer
    /// `sendonly` or `inactive`): the relay sends it nothing.
    hold: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Debug)]
enum Ctrl {
    Hangup,
}

/// True when the 200 OK's headers carry the provider's answering-machine
/// verdict (the header the campaign's `[provider] amd_header` names) and it
/// says machine or fax.
fn machine_answer(p: &crate::campaign::Provider, headers: &crate::sip::message::Headers) -> bool {
    p.amd_header
        .as_deref()
        .and_then(|name| headers.get(name))
        .is_some_and(|v| {
            let v = v.trim().to_ascii_lowercase();
            v.starts_with("machine") || v.starts_with("fax")
        })
}

/// The trunk's digest credentials: the values of the environment
/// variables the campaign's `[provider]` names (`env` looks one up). A
/// variable named but unset is logged (by name, never a value) and the
/// calls go without credentials; the provider's 401/407 then ends them as
/// failures, which the attempt records show.
pub(super) fn trunk_credentials(
    campaign: &Campaign,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Credentials>, String> {
    let p = &campaign.provider;
    let (user_var, pass_var) = match (&p.username_env, &p.password_env) {
        (Some(u), Some(w)) => (u, w),
        (None, None) => return Ok(None),
        (u, w) => {
            return Err(format!(
                "[provider] names only one of username_env ({u:?}) and password_env ({w:?}): no trunk credentials"
            ));
        }
    };
    match (env(user_var), env(pass_var)) {
        (Some(username), Some(password)) => Ok(Some(Credentials { username, password })),
        _ => Err(format!(
            "{user_var} or {pass_var} is not set: calls go without trunk credentials"
        )),
    }
}

impl Driver {
    /// Carries out the runner's dial of `lead_id`: compliance once more,
    /// then the call task (which writes the attempt before the INVITE).
    pub(super) fn dial(&mut self, call: CallId, lead_id: i64, now: Millis) {
        let Some(lead) = self.hopper.remove(&lead_id) else {
            self.event(Event::DialSkipped { call });
            return;
        };
        if let Err((next, reasons)) = self.check(&lead, now) {
            self.counters.refused += 1;
            tracing::info!(
                lead = lead.lead.id,
                phone = %phone::mask(&lead.lead.phone),
                %reasons,
                "refused just before dialling"
            );
            self.write(Write::Refuse {
                lead_id,
                node: self.settings.node.clone(),
                next_at: next,
                reasons,
            });
            self.event(Event::DialSkipped { call });
            return;
        }
        // RTP on an even port, RTCP on the one above (RFC 3550 11).
        let (sock, rtcp) = match self
            .shared
            .rtp_pair(self.settings.media_ip)
            .and_then(|(a, b)| Ok((UdpSocket::from_std(a)?, UdpSocket::from_std(b)?)))
        {
            Ok((s, r)) => (Arc::new(s), Arc::new(r)),
            Err(e) => {
                tracing::error!("no RTP port: {e}");
                // The runner forgets a skipped dial: the claim goes back
                // (held, the node's heartbeat would keep it from everyone).
                self.event(Event::DialSkipped { call });
                self.release_lead(lead_id);
                return;
            }
        };
        let Ok(mut media_addr) = sock.local_addr() else {
            self.event(Event::DialSkipped { call });
            self.release_lead(lead_id);
            return;
        };
        if let Some(ip) = self.settings.external_ip {
            // Behind NAT the SDP names the public address (the router
            // forwards the port range to us).
            media_addr.set_ip(ip);
        }
        let (ctrl_tx, ctrl_rx) = mpsc::unbounded_channel();
        let params = CallParams {
            ids: None,
            // The UA sends every request to its provider; the Request-URI's
            // host names it too.
            target: self.provider.request_uri(&lead.lead.phone),
            from_user: self
                .campaign
                .caller_id
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '+')
                .collect(),
            ring_timeout: RingTimeout::new(self.campaign.ring_timeout.max(Duration::from_secs(15)))
                .unwrap_or_default(),
            credentials: self.credentials.clone(),
            media_addr,
            max_talk: None,
            display_name: self.campaign.provider.caller_name.clone(),
            extra_headers: self
                .campaign
                .provider
                .asserted_identity
                .iter()
                .map(|uri| ("P-Asserted-Identity".to_string(), format!("<{uri}>")))
                .collect(),
            destinations: Vec::new(),
        };
        let attempt = NewAttempt {
            campaign_id: self.campaign_id,
            lead_id,
            phone: lead.lead.phone.clone(),
            started_at: now.ms(),
        };
        // The recall rule read the account's abandons when the lead was
        // claimed, which can be an hour ago: the call task reads them again
        // just before the attempt.
        let recall = compliance::recall_after_abandon(self.campaign.profile).map(|period| Recall {
            since: now.ms() - period.num_milliseconds(),
            known: lead.last_abandon.map(|m| m.ms()),
        });
        self.counters.attempts += 1;
        self.counters.recent_dials.push_back(now.ms());
        self.calls.insert(
            call,
            CallCtx {
                lead,
                started_at: now,
                attempt_id: None,
                ctrl: ctrl_tx,
                rtp: sock,
                media: None,
                codec: sdp::PT_PCMU,
                dtmf_pt: None,
                dtmf_tx: None,
                answered_at: None,
                connected_at: None,
                agent: None,
                outcome: None,
                summary: None,
                relay_stop: None,
                rtcp,
                leg_stats: Arc::default(),
                rtcp_stop: None,
                interrupted: false,
                hold: Arc::default(),
            },
        );
        tokio::spawn(call_task(
            self.shared.store.clone(),
            self.ua.clone(),
            self.me.clone(),
            call,
            attempt,
            self.settings.node.clone(),
            params,
            ctrl_rx,
            recall,
        ));
    }

    /// Compliance just before the dial: `Err((next_at, reasons))` refuses.
    fn check(&mut self, l: &ClaimedLead, now: Millis) -> Result<(), (Option<i64>, String)> {
        let Ok(record) = l.record(now) else {
            return Err((None, compliance::Reason::InvalidNumber.code().into()));
        };
        let dial = self.runner.dial_view(now.runner_ms());
        let registries = self.shared.registries();
        let v = policy::screen(&record, &self.campaign, &registries, &dial, now.utc());
        if v.allowed {
            return Ok(());
        }
        let reasons: Vec<&str> = v.reasons.iter().map(|r| r.code()).collect();
        Err((
            v.next_allowed_at.map(|t| t.timestamp_millis()),
            reasons.join(","),
        ))
    }

    /// Hangs up (or cancels) a call.
    pub(super) fn hang_up(&mut self, call: CallId) {
        if let Some(c) = self.calls.get(&call) {
            let _ = c.ctrl.send(Ctrl::Hangup);
        }
    }

    pub(super) fn started(&mut self, call: CallId, attempt_id: i64) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.attempt_id = Some(attempt_id);
        }
        self.try_finish(call);
    }

    /// The attempt row could not be written, so no INVITE went out: the
    /// lead goes back at once rather than waiting for its claim's lease.
    /// Gives back this node's claim on a lead it will not dial now.
    pub(super) fn release_lead(&mut self, lead_id: i64) {
        self.write(Write::ReleaseLead {
            lead_id,
            node: self.settings.node.clone(),
        });
    }

    pub(super) fn start_failed(&mut self, call: CallId) {
        if let Some(c) = self.calls.remove(&call) {
            self.release_lead(c.lead.lead.id);
        }
        self.event(Event::DialSkipped { call });
    }

    pub(super) fn answered(
        &mut self,
        call: CallId,
        media: Option<sdp::Media>,
        at: Instant,
        headers: crate::sip::message::Headers,
    ) {
        let now = self.now().ms();
        let mut attempt = None;
        // Media goes out only in a codec the answer took (RFC 3264 7), to
        // a stream it did not refuse (port 0, RFC 3264 6): an answer with
        // neither has no audio, and its call is not bridged (below).
        let media = match media {
            Some(m) if !m.carries_audio() => {
                tracing::debug!(payloads = ?m.payloads, port = m.addr.port(), "no usable audio in the answer");
                None
            }
            m => m,
        };
        let audio = media.is_some();
        if let Some(c) = self.calls.get_mut(&call) {
            c.codec = media
                .as_ref()
                .and_then(sdp::Media::codec)
                .unwrap_or(sdp::PT_PCMU);
            c.dtmf_pt = media.as_ref().and_then(|m| m.telephone_event);
            // What came before the answer (early media, a ringback) is
            // stale and would fill the socket's buffer: dropped, so what
            // the person sends from now on (a key pressed while waiting
            // for an agent) has room, and an agent is not played old audio.
            drain(&c.rtp);
            // The leg's RTCP session, from the answer to the end.
            if let Some(m) = &media
                && c.rtcp_stop.is_none()
            {
                let (stop_tx, stop_rx) = oneshot::channel::<()>();
                c.rtcp_stop = Some(stop_tx);
                tokio::spawn(crate::media::rtcp::session(
                    c.rtcp.clone(),
                    m.rtcp_addr(),
                    c.leg_stats.clone(),
                    self.shared.clock.clone(),
                    format!("dialler@{}", self.settings.node),
                    "customer",
                    async move {
                        let _ = stop_rx.await;
                    },
                ));
            }
            c.media = media.map(|m| m.addr);
            c.answered_at = Some(now);
            attempt = c.attempt_id;
        }
        if let Some(attempt_id) = attempt {
            self.write(Write::Progress {
                attempt_id,
                answered_at: Some(now),
                connected_at: None,
                agent: None,
            });
        }
        self.answer_instants.insert(call, at);
        // A provider that runs answering-machine detection says so in a
        // header of the 200 OK; without it, a person answered. A person
        // on a call that cannot carry audio is never bridged to an agent.
        let machine = machine_answer(&self.campaign.provider, &headers);
        if !machine && !audio {
            tracing::warn!(
                "the answer carries no audio we can send or hear (no SDP, no PCMU or PCMA, or the stream refused): hung up and counted as abandoned"
            );
            self.event(Event::CallAnsweredWithoutAudio { call });
            return;
        }
        self.event(Event::CallAnswered {
            call,
            human: !machine,
        });
    }

    /// The customer's side offered a new session (a re-INVITE or UPDATE):
    /// on hold (`sendonly` or `inactive`, answered `recvonly` or
    /// `inactive`) nothing is sent to it until it resumes (RFC 3264 6.1).
    pub(super) fn media_changed(&mut self, call: CallId, media: sdp::Media) {
        let held = !media.direction.answer().sends();
        if let Some(c) = self.calls.get(&call) {
            c.hold.store(held, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub(super) fn ended(&mut self, call: CallId, summary: Summary) {
        self.answer_instants.remove(&call);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some(stop) = c.relay_stop.take() {
            let _ = stop.send(());
        }
        if let Some(stop) = c.rtcp_stop.take() {
            let _ = stop.send(());
        }
        let answered = summary.outcome == uac::Outcome::Answered;
        let runner_knows = c.outcome.is_none();
        c.summary = Some(summary.clone());
        if runner_knows {
            if answered {
                self.event(Event::CallEnded { call });
            } else {
                let outcome = match summary.outcome {
                    uac::Outcome::Busy => Outcome::Busy,
                    uac::Outcome::Rejected => Outcome::Rejected,
                    uac::Outcome::NoAnswer | uac::Outcome::Cancelled => Outcome::NoAnswer,
                    _ => Outcome::Failure,
                };
                self.event(Event::CallFailed { call, outcome });
            }
        }
        self.drain();
        if let Some(c) = self.calls.get_mut(&call)
            && c.outcome.is_none()
        {
            // The runner had already forgotten it (shutdown).
            c.outcome = Some(Outcome::Failure);
        }
        self.try_finish(call);
    }

    /// Puts an answered call through to the agent the runner chose.
    pub(super) fn bridge(&mut self, call: CallId, agent: AgentId, now: Millis) {
        let Some(name) = self.by_id.get(&agent).cloned() else {
            return;
        };
        let Some(a) = self.agents.get(&name) else {
            return;
        };
        let agent_media = a
            .rtp
            .clone()
            .map(|rtp| (rtp, a.peer, a.codec, a.events, a.stats.clone()));
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.connected_at = Some(now.ms());
        c.agent = Some(name.clone());
        let progress = c.attempt_id.map(|attempt_id| Write::Progress {
            attempt_id,
            answered_at: None,
            connected_at: Some(now.ms()),
            agent: Some(name.clone()),
        });
        if let Some((agent_rtp, agent_peer, agent_codec, agent_events, agent_stats)) = agent_media {
            let (stop_tx, stop_rx) = oneshot::channel();
            c.relay_stop = Some(stop_tx);
            let customer = Leg {
                socket: c.rtp.clone(),
                peer: c.media,
                codec: c.media.map(|_| c.codec),
                stats: Some(c.leg_stats.clone()),
                events: c.dtmf_pt,
                hold: Some(c.hold.clone()),
            };
            // DTMF both ways while bridged (RFC 4733), when the customer's
            // side takes telephone-events.
            let (dtmf_tx, dtmf_rx) = mpsc::unbounded_channel();
            c.dtmf_tx = c.dtmf_pt.map(|_| dtmf_tx);
            let me = self.me.clone();
            let dtmf = Dtmf {
                send: dtmf_rx,
                heard: Box::new(move |digit| {
                    let _ = me.send(Input::DtmfHeard { call, digit });
                }),
            };
            tokio::spawn(async move {
                let agent = Leg {
                    socket: agent_rtp,
                    peer: agent_peer,
                    codec: agent_codec,
                    stats: agent_stats,
                    events: agent_events,
                    hold: None,
                };
                if let Err(e) = relay_with_dtmf(customer, agent, Some(dtmf), async {
                    let _ = stop_rx.await;
                })
                .await
                {
                    tracing::debug!(error = %e, "the relay stopped");
                }
            });
        }
        let fields: serde_json::Value =
            serde_json::from_str(&c.lead.lead.fields).unwrap_or(serde_json::Value::Null);
        let view = CallView {
            call_id: c.attempt_id.unwrap_or(0),
            campaign: self.campaign.name.clone(),
            phone: c.lead.lead.phone.clone(),
            lead_id: c.lead.lead.id,
            script: self.campaign.desktop.render_script(&fields),
            lead: fields,
            connected_at: now.ms(),
            ended_at: None,
            dtmf: String::new(),
        };
        if let Some(at) = self.answer_instants.remove(&call) {
            self.shared.latency.push(at.elapsed());
        }
        // Queued in order with the answer and the ledger, not awaited: a
        // store round trip must not delay the customer's bridge.
        if let Some(w) = progress {
            self.write(w);
        }
        self.counters.connects += 1;
        self.shared.with_session(&name, |s| {
            s.call = Some(view.clone());
        });
        self.shared.emit(ServiceEvent {
            id: 0,
            agent: Some(name),
            campaign: self.campaign.name.clone(),
            kind: "call",
            data: serde_json::to_value(&view).unwrap_or_default(),
        });
    }

    /// The agent's digits go to the customer as telephone-events (see
    /// [`crate::media::relay::Dtmf`]). Not logged: a customer's card
    /// number may be keyed on a call.
    pub(super) fn send_dtmf(&mut self, agent: &str, digits: String, reply: super::driver::Reply) {
        let Some(call) = self
            .agents
            .get(agent)
            .map(|a| self.runner.agent(a.id).status)
            .and_then(|s| match s {
                crate::dialer::AgentStatus::OnCall(call) => Some(call),
                _ => None,
            })
        else {
            let _ = reply.send(Err(super::AgentError::NoCall));
            return;
        };
        let r = match self.calls.get(&call) {
            None => Err(super::AgentError::NoCall),
            Some(c) => match (&c.dtmf_tx, c.dtmf_pt) {
                (Some(tx), Some(_)) => tx.send(digits).map_err(|_| super::AgentError::NoCall),
                (None, Some(_)) => Err(super::AgentError::NoCall),
                (_, None) => Err(super::AgentError::NoDtmf),
            },
        };
        let _ = reply.send(r);
    }

    /// The customer pressed a key: the agent sees it (the `dtmf` event,
    /// and the call view's `dtmf`). Not logged, as above.
    pub(super) fn dtmf_heard(&mut self, call: CallId, digit: char) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let (Some(agent), Some(call_id)) = (c.agent.clone(), c.attempt_id) else {
            return;
        };
        self.shared.with_session(&agent, |s| {
            if let Some(v) = s.call.as_mut().filter(|v| v.call_id == call_id)
                && v.dtmf.chars().count() < 256
            {
                v.dtmf.push(digit);
            }
        });
        self.shared.emit(ServiceEvent {
            id: 0,
            agent: Some(agent),
            campaign: self.campaign.name.clone(),
            kind: "dtmf",
            data: serde_json::json!({ "call_id": call_id, "digit": digit.to_string() }),
        });
    }

    /// The called party of abandoned call `attempt_id` (number masked as
    /// `phone`) pressed a key during the message: the number goes on the
    /// internal do-not-call list (see
    /// [`crate::store::Store::opt_out_by_key`]); the player hangs up. Taken
    /// whether or not the call is still here (its far end may have hung up
    /// as it pressed).
    pub(super) fn opt_out_key(&mut self, attempt_id: i64, phone: &str) {
        tracing::info!(
            campaign = %self.campaign.name,
            phone,
            call_id = attempt_id,
            "the called party pressed a key to opt out during the abandoned-call message"
        );
        self.counters.opt_outs += 1;
        self.write(Write::OptOut {
            attempt_id,
            at: self.now().ms(),
            node: self.settings.node.clone(),
        });
        self.shared.emit(ServiceEvent {
            id: 0,
            agent: None,
            campaign: self.campaign.name.clone(),
            kind: "opt_out",
            data: serde_json::json!({ "call_id": attempt_id, "source": crate::store::SOURCE_KEY_PRESS }),
        });
    }

    /// Plays the safe-harbour message to an abandoned call at once, then
    /// hangs up. The US rule wants it within 2 s of the greeting and the
    /// 2 s to find an agent are already spent: it does not wait for the
    /// abandon's ledger row, which goes through the shared write queue (a
    /// busy queue or a store failing over would leave the person in
    /// silence). A crash before that row is stored is counted by recovery
    /// (an answer never bridged is an abandon).
    pub(super) fn play_safe_harbour(&mut self, call: CallId) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let rtp = c.rtp.clone();
        let media = c.media;
        let codec = c.codec;
        let ctrl = c.ctrl.clone();
        let prompt = self.prompt.clone();
        // Counted for the leg's RTCP: its reports are sender reports while
        // the message plays.
        let stats = c.leg_stats.clone();
        // Any key pressed from the answer to the message's end asks for no
        // more calls (47 CFR 64.1200(a)(7)(i)(B)'s automated opt-out); it
        // can only add protection, so every campaign listens. Keys come as
        // RFC 4733 telephone-events in the payload type our offer gave
        // them (the far end sends with the receiver's numbers, RFC 3264
        // 6.1), or in the answer's own where a far end numbers them so; a
        // far end without telephone-event (or a gateway that passes the
        // tones through despite it) sends its keys as tones in the audio,
        // so those are listened for on every call: a key heard either way
        // only adds protection.
        let events: Vec<u8> = [Some(sdp::PT_TELEPHONE_EVENT), c.dtmf_pt]
            .into_iter()
            .flatten()
            .collect();
        let opt_out = c.attempt_id.map(|id| (id, phone::mask(&c.lead.lead.phone)));
        let me = self.me.clone();
        // The abandon was queued just before this command; its row is
        // awaited only after the hang-up, to say if it failed.
        let ack = self.pending_abandon_ack.take();
        tokio::spawn(async move {
            if let Some(to) = media {
                let played = crate::media::player::play_listening(
                    &rtp,
                    to,
                    &prompt,
                    codec,
                    &events,
                    true,
                    Some(&stats),
                )
                .await;
                // The digit itself is never logged or kept: any key opts out.
                if let (Ok((_, Some(_))), Some((attempt_id, phone))) = (played, opt_out) {
                    let _ = me.send(Input::OptOutKey { attempt_id, phone });
                }
            }
            let _ = ctrl.send(Ctrl::Hangup);
            if let Some(ack) = ack
                && !ack.await.unwrap_or(false)
            {
                tracing::warn!("an abandon's ledger row is not stored yet as its message ended");
            }
        });
    }

    /// The grace period is over: every call still up is hung up and marked
    /// interrupted; one already hung up that never came back is closed
    /// without SIP. Returns how many were hung up now.
    pub(super) fn interrupt_calls(&mut self) -> u64 {
        let mut n = 0;
        for c in self.calls.values_mut() {
            if !c.interrupted {
                c.interrupted = true;
                n += 1;
                let _ = c.ctrl.send(Ctrl::Hangup);
            } else {
                c.summary.get_or_insert_with(failed_summary);
                c.outcome.get_or_insert(Outcome::Failure);
            }
        }
        let done: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| c.summary.is_some() && c.outcome.is_some())
            .map(|(k, _)| *k)
            .collect();
        for call in done {
            self.try_finish(call);
        }
        n
    }
}

/// Drops what is queued on `socket` now (at most a few thousand
/// datagrams, so a flood cannot hold the caller).
fn drain(socket: &UdpSocket) {
    let mut buf = [0u8; 2048];
    for _ in 0..4096 {
        if socket.try_recv_from(&mut buf).is_err() {
            break;
        }
    }
}

/// The recall rule's second look, just before the attempt: abandons of
/// the number (any campaign) since `since`, against the newest one the
/// claim saw.
struct Recall {
    since: i64,
    known: Option<i64>,
}

impl Recall {
    /// Whether the number was abandoned (in any campaign) after the claim
    /// read it, within the recall period: then the lead goes back and the
    /// next claim's check, with the fresh abandon, decides. A store that
    /// cannot say is a no (fail closed).
    async fn newer_abandon(&self, store: &Store, phone: &str) -> bool {
        match store.last_abandon_of(phone, self.since).await {
            Ok(Some(at)) => self.known.is_none_or(|k| at > k),
            Ok(None) => false,
            Err(e) => {
                tracing::error!("reading the number's abandons failed, not dialling: {e}");
                true
            }
        }
    }
}

/// One customer call: the attempt row, then the INVITE, then events back
/// to the campaign until the call ends.
#[allow(clippy::too_many_arguments)]
async fn call_task(
    store: Store,
    ua: Arc<Ua>,
    me: mpsc::UnboundedSender<Input>,
    call: CallId,
    attempt: NewAttempt,
    node: String,
    mut params: CallParams,
    mut ctrl: mpsc::UnboundedReceiver<Ctrl>,
    recall: Option<Recall>,
) {
    if let Some(r) = &recall
        && r.newer_abandon(&store, &attempt.phone).await
    {
        tracing::info!(
            lead = attempt.lead_id,
            phone = %phone::mask(&attempt.phone),
            "the number was abandoned since its claim: not dialling (recall rule)"
        );
        let _ = me.send(Input::StartFailed { call });
        return;
    }
    // The leg's identity goes into the store with the attempt, before
    // the INVITE: a restart after a crash ends it (recovery).
    let mut leg = ua.prepare(&mut params);
    let attempt_id = match store.start_attempt_on(&attempt, &node, Some(&leg)).await {
        Ok(id) => id,
        Err(e) => {
            // A lead another node took is theirs to dial: no fault here.
            if matches!(e, crate::store::StoreError::ClaimLost { .. }) {
                tracing::warn!("{e}");
            } else {
                tracing::error!("writing the attempt failed, not dialling: {e}");
            }
            let _ = me.send(Input::StartFailed { call });
            return;
        }
    };
    let _ = me.send(Input::Started { call, attempt_id });
    let mut handle = match ua.call(params).await {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("placing a call failed: {e}");
            let _ = me.send(Input::Ended {
                call,
                summary: failed_summary(),
            });
            close_leg(&store, &leg.call_id).await;
            return;
        }
    };
    let mut hung_up = false;
    loop {
        tokio::select! {
            ev = handle.next_event() => match ev {
                Some(CallEvent::Answered { media, headers, dialog, .. }) => {
                    let _ = me.send(Input::Answered { call, media, at: Instant::now(), headers });
                    // After the campaign heard of it: the bridge does not
                    // wait for this write.
                    leg.dialog = Some(dialog);
                    if let Err(e) = store.leg_update(&leg).await {
                        tracing::warn!("storing the leg's dialog failed: {e}");
                    }
                }
                // The phone rings: the campaign's ring time counts from
                // here, for the runner as for the UA.
                Some(CallEvent::Progress { rings, .. }) => {
                    if rings {
                        let _ = me.send(Input::Ringing { call });
                    }
                }
                // The relay latches to where RTP comes from (a new address
                // needs nothing more); a hold stops what we send.
                Some(CallEvent::MediaChanged { media }) => {
                    tracing::debug!(direction = ?media.direction, "the customer's side changed the session");
                    let _ = me.send(Input::MediaChanged { call, media });
                }
                Some(CallEvent::Ended(summary)) => {
                    // SIP response latency: INVITE to the first response.
                    if let Some(after) = summary.first_response_after {
                        crate::metrics::record_sip_response(after.as_secs_f64());
                    }
                    let _ = me.send(Input::Ended { call, summary });
                    close_leg(&store, &leg.call_id).await;
                    return;
                }
                None => {
                    // The UA stopped (shutdown): the leg stays stored, and
                    // the next start ends it if it is still up.
                    let _ = me.send(Input::Ended { call, summary: failed_summary() });
                    return;
                }
            },
            c = ctrl.recv(), if !hung_up => match c {
                Some(Ctrl::Hangup) => {
                    hung_up = true;
                    handle.hangup();
                }
                None => hung_up = true,
            },
        }
    }
}

/// Forgets a leg that ended (a failure only delays the restart's BYE or
/// CANCEL, which the peer answers with 481).
pub(super) async fn close_leg(store: &Store, call_id: &str) {
    if let Err(e) = store.leg_closed(call_id).await {
        tracing::warn!("forgetting an ended SIP leg failed: {e}");
    }
}

/// The summary of a call that never got going.
pub(super) fn failed_summary() -> Summary {
    Summary {
        outcome: uac::Outcome::Failure,
        codes: Vec::new(),
        final_code: None,
        first_response_after: None,
        progress_after: None,
        answer_after: None,
        talk: None,
        hangup: None,
        crossed_cancel: false,
        retry_after: None,
        extra_answers: 0,
        hangup_unconfirmed: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign() -> Campaign {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns");
        crate::campaign::find(&dir, "uk-broadband").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn trunk_credentials_come_from_the_named_environment_variables() {
        let c = campaign();
        let env = |name: &str| match name {
            "UK_TRUNK_USER" => Some("alice".to_string()),
            "UK_TRUNK_PASSWORD" => Some("s3cret".to_string()),
            _ => None,
        };
        assert_eq!(
            trunk_credentials(&c, env),
            Ok(Some(Credentials {
                username: "alice".into(),
                password: "s3cret".into()
            }))
        );
    }

    #[test]
    fn a_missing_trunk_variable_means_no_credentials() {
        let c = campaign();
        let only_user = |name: &str| (name == "UK_TRUNK_USER").then(|| "alice".to_string());
        let missing = trunk_credentials(&c, only_user).unwrap_err();
        assert!(missing.contains("UK_TRUNK_PASSWORD"), "{missing}");
        let mut half = c.clone();
        half.provider.password_env = None;
        assert!(trunk_credentials(&half, |_| Some("x".into())).is_err());
        let mut open = c.clone();
        open.provider.username_env = None;
        open.provider.password_env = None;
        assert_eq!(trunk_credentials(&open, |_| Some("x".into())), Ok(None));
    }

    #[test]
    fn the_named_amd_header_decides_machine_answers() {
        let mut c = campaign();
        let mut h = crate::sip::message::Headers::default();
        h.push("X-AMD", "MACHINE");
        assert!(
            !machine_answer(&c.provider, &h),
            "no header named: a person"
        );
        c.provider.amd_header = Some("x-amd".into());
        assert!(machine_answer(&c.provider, &h));
        let mut human = crate::sip::message::Headers::default();
        human.push("X-AMD", "human");
        assert!(!machine_answer(&c.provider, &human));
        assert!(!machine_answer(
            &c.provider,
            &crate::sip::message::Headers::default()
        ));
    }

    /// The recall rule's second look: an abandon of the number in another
    /// campaign after the lead was claimed stops the dial; one the claim
    /// already saw, or none, does not.
    #[tokio::test]
    async fn an_abandon_after_the_claim_stops_the_dial() {
        use crate::store::{LedgerKind, NewLead};
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&format!("sqlite://{}", dir.path().join("d.db").display()))
            .await
            .expect("store");
        let other = store
            .upsert_campaign(&campaign(), 0)
            .await
            .expect("campaign");
        let phone = "+447700900123";
        store
            .insert_leads(
                other,
                &[NewLead {
                    phone: phone.into(),
                    country: "GB",
                    timezones: Some("Europe/London".into()),
                    fields: "{}".into(),
                    source_line: 2,
                }],
                0,
            )
            .await
            .expect("lead");
        let lead = store
            .lead_by_phone(other, phone)
            .await
            .expect("q")
            .expect("lead");
        let attempt = store
            .start_attempt(&NewAttempt {
                campaign_id: other,
                lead_id: lead.id,
                phone: phone.into(),
                started_at: 1_000_000,
            })
            .await
            .expect("attempt");
        let claimed_knowing = |known| Recall {
            since: 1_000_000 - 72 * 3_600_000,
            known,
        };
        assert!(!claimed_knowing(None).newer_abandon(&store, phone).await);
        store
            .ledger_append(other, Some(attempt), LedgerKind::Abandon, 1_005_000)
            .await
            .expect("abandon");
        assert!(claimed_knowing(None).newer_abandon(&store, phone).await);
        assert!(
            claimed_knowing(Some(1_000_000))
                .newer_abandon(&store, phone)
                .await
        );
        assert!(
            !claimed_knowing(Some(1_005_000))
                .newer_abandon(&store, phone)
                .await
        );
        assert!(
            !claimed_knowing(None)
                .newer_abandon(&store, "+447700900999")
                .await
        );
    }
}
