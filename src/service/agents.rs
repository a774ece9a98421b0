//! Agent sessions: log-in (the dialler calls the agent's phone and keeps
//! the leg up), ready, pause, log-out, hang-up and the end of wrap-up, and
//! what each state change writes down and shows.
//!
//! The runner owns agent state: a request here is checked against
//! [`crate::dialer::Runner::agent`] and becomes a runner event; the runner
//! answers with [`crate::dialer::Record::AgentState`] for every change,
//! which [`Driver::agent_state_changed`] writes to the store (the interval
//! in `agent_states`), shows in the session the API reads and announces on
//! the event stream. An HTTP reply that must wait for durability waits for
//! that write.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::driver::{AgentIo, Driver, Input, LegMedia, Phone, Reply};
use super::writer::Write;
use super::{AgentError, ServiceEvent, SessionView, Shared};
use crate::clock::Millis;
use crate::dialer::{AgentId, AgentStatus, Event};
use crate::sip::uac::{CallEvent, CallParams, RingTimeout};
use crate::store::{AgentState, LegKind, StoredLeg};

impl Driver {
    pub(super) fn login(&mut self, agent: String, phone: Phone, reply: Reply) {
        if self.holds.stopping {
            let _ = reply.send(Err(AgentError::ShuttingDown));
            return;
        }
        if self.agents.contains_key(&agent) {
            let _ = reply.send(Err(AgentError::AlreadyLoggedIn));
            return;
        }
        let sip_uri = match phone {
            Phone::Sip(uri) => uri,
            Phone::Browser(phone) => {
                tokio::spawn(softphone_leg(self.me.clone(), agent, *phone, reply));
                return;
            }
        };
        let target = match crate::sip::resolve::SipUri::parse(&sip_uri) {
            Ok(t) => t,
            Err(e) => {
                let _ = reply.send(Err(AgentError::BadPhone(e.to_string())));
                return;
            }
        };
        let shared = self.shared.clone();
        let me = self.me.clone();
        let ip = self.settings.media_ip;
        let campaign_id = self.campaign_id;
        tokio::spawn(agent_leg(shared, me, agent, campaign_id, target, ip, reply));
    }

    pub(super) fn leg_up(
        &mut self,
        agent: String,
        media: LegMedia,
        hangup: mpsc::UnboundedSender<()>,
        reply: Reply,
    ) {
        if self.holds.stopping {
            let _ = hangup.send(());
            let _ = reply.send(Err(AgentError::ShuttingDown));
            return;
        }
        let id = self.agent_id(&agent);
        self.agents.insert(
            agent,
            AgentIo {
                id,
                rtp: Some(media.rtp),
                peer: media.peer,
                codec: media.codec,
                events: media.events,
                stats: media.stats,
                leg_hangup: Some(hangup),
                pause_reason: None,
                reply: Some(reply),
            },
        );
        self.event(Event::AgentLogin(id));
    }

    /// The runner's id for `agent`, numbered on first sight (a login, or
    /// a callback it kept for itself).
    pub(super) fn agent_id(&mut self, agent: &str) -> AgentId {
        if let Some((id, _)) = self.by_id.iter().find(|(_, n)| n.as_str() == agent) {
            return *id;
        }
        let id = self.next_agent;
        self.next_agent += 1;
        self.by_id.insert(id, agent.to_string());
        id
    }

    pub(super) fn leg_failed(&mut self, agent: &str, why: String, reply: Reply) {
        self.shared.forget_session(agent);
        let _ = reply.send(Err(AgentError::PhoneDidNotAnswer(why)));
    }

    /// The phone hung up: the agent is logged out after any call.
    pub(super) fn leg_down(&mut self, agent: &str) {
        if let Some(a) = self.agents.get_mut(agent) {
            a.leg_hangup = None;
            a.rtp = None;
            a.stats = None;
        }
        self.logout(agent, None);
    }

    /// The agent's id and state, or why not.
    fn status(&self, agent: &str) -> Result<(AgentId, AgentStatus), AgentError> {
        let io = self.agents.get(agent).ok_or(AgentError::NotLoggedIn)?;
        Ok((io.id, self.runner.agent(io.id).status))
    }

    pub(super) fn ready(&mut self, agent: &str, reply: Reply) {
        let (id, status) = match self.status(agent) {
            Ok(s) => s,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        match status {
            AgentStatus::Ready => {
                // Ready again before a held pause took effect: called off.
                if self.runner.agent(id).pause_pending {
                    self.event(Event::AgentReady(id));
                    self.shared.with_session(agent, |s| s.pending = None);
                }
                let _ = reply.send(Ok(()));
            }
            AgentStatus::OnCall(_) | AgentStatus::WrapUp => {
                let _ = reply.send(Err(AgentError::Busy));
            }
            AgentStatus::LoggedIn | AgentStatus::Paused | AgentStatus::LoggedOut => {
                self.await_state_write(agent, reply);
                self.event(Event::AgentReady(id));
            }
        }
    }

    pub(super) fn pause(&mut self, agent: &str, reason: String, reply: Reply) {
        let (id, status) = match self.status(agent) {
            Ok(s) => s,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        if let Some(a) = self.agents.get_mut(agent) {
            a.pause_reason = Some(reason.clone());
        }
        match status {
            AgentStatus::OnCall(_) | AgentStatus::WrapUp => {
                self.event(Event::AgentPause(id));
                self.shared
                    .with_session(agent, |s| s.pending = Some("pause"));
                let _ = reply.send(Ok(()));
            }
            AgentStatus::Paused => {
                // Paused already: a new reason opens a new interval.
                let now = self.now();
                let ack = self.write_state(agent, AgentState::Paused, Some(reason), now);
                self.show_state(agent, "paused", now);
                reply_after(ack, reply);
            }
            AgentStatus::Ready | AgentStatus::LoggedIn | AgentStatus::LoggedOut => {
                self.await_state_write(agent, reply);
                self.event(Event::AgentPause(id));
                // Calls already out count on this agent: the runner holds
                // the pause until they no longer need them (or after the
                // call one of them brings), as for an agent on a call.
                let view = self.runner.agent(id);
                if view.status == AgentStatus::Ready && view.pause_pending {
                    if let Some(reply) = self.agents.get_mut(agent).and_then(|a| a.reply.take()) {
                        let _ = reply.send(Ok(()));
                    }
                    self.shared
                        .with_session(agent, |s| s.pending = Some("pause"));
                }
            }
        }
    }

    /// Logs `agent` out now, or after the call and its wrap-up.
    pub(super) fn logout(&mut self, agent: &str, reply: Option<Reply>) {
        let (id, status) = match self.status(agent) {
            Ok(s) => s,
            Err(e) => {
                if let Some(r) = reply {
                    let _ = r.send(Err(e));
                }
                return;
            }
        };
        match status {
            AgentStatus::OnCall(_) | AgentStatus::WrapUp => {
                self.event(Event::AgentLogout(id));
                self.shared
                    .with_session(agent, |s| s.pending = Some("logout"));
                if let Some(r) = reply {
                    let _ = r.send(Ok(()));
                }
            }
            _ => {
                if let Some(r) = reply {
                    self.await_state_write(agent, r);
                }
                self.event(Event::AgentLogout(id));
                // Logged out already as far as the runner knows (its state
                // did not change): finish here.
                if self.agents.contains_key(agent) && status == AgentStatus::LoggedOut {
                    self.finish_logout(agent, self.now());
                }
                // A callback it kept is ringing for it: the logout waits
                // for the call, as after a call.
                let view = self.runner.agent(id);
                if view.status == AgentStatus::Ready && view.logout_pending {
                    if let Some(reply) = self.agents.get_mut(agent).and_then(|a| a.reply.take()) {
                        let _ = reply.send(Ok(()));
                    }
                    self.shared
                        .with_session(agent, |s| s.pending = Some("logout"));
                }
            }
        }
    }

    pub(super) fn agent_hangup(&mut self, agent: &str, reply: Reply) {
        match self.status(agent) {
            Ok((_, AgentStatus::OnCall(call))) => {
                self.hang_up(call);
                let _ = reply.send(Ok(()));
            }
            Ok(_) => {
                let _ = reply.send(Err(AgentError::NoCall));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// A disposition was written: the wrap-up is over, and the runner makes
    /// the agent ready, paused or logged out as asked.
    pub(super) fn wrap_up_done(&mut self, agent: &str, contact: bool, conversion: bool) {
        self.counters.contacts += u64::from(contact);
        self.counters.conversions += u64::from(conversion);
        let Ok((id, AgentStatus::WrapUp)) = self.status(agent) else {
            return;
        };
        self.shared.with_session(agent, |s| {
            s.disposing = false;
            s.call = None;
            s.pending = None;
        });
        self.event(Event::WrapUpDone { agent: id });
    }

    /// The grace period is over: wrap-ups still open end (the agent is
    /// paused until logged out).
    pub(super) fn cut_wrap_ups(&mut self) {
        let cut: Vec<(String, AgentId)> = self
            .agents
            .iter()
            .filter(|(_, a)| self.runner.agent(a.id).status == AgentStatus::WrapUp)
            .map(|(n, a)| (n.clone(), a.id))
            .collect();
        for (name, id) in cut {
            if let Some(a) = self.agents.get_mut(&name) {
                a.pause_reason = Some("shutdown".into());
            }
            self.event(Event::AgentPause(id));
            self.event(Event::WrapUpDone { agent: id });
        }
    }

    /// Whether an agent is on a call or in wrap-up.
    pub(super) fn any_agent_busy(&self) -> bool {
        self.agents.values().any(|a| {
            matches!(
                self.runner.agent(a.id).status,
                AgentStatus::OnCall(_) | AgentStatus::WrapUp
            )
        })
    }

    /// Shutdown: every agent leaves.
    pub(super) fn log_everyone_out(&mut self) {
        let now = self.now();
        let names: Vec<String> = self.agents.keys().cloned().collect();
        for name in names {
            if let Some(id) = self.agents.get(&name).map(|a| a.id) {
                self.event(Event::AgentLogout(id));
            }
            // The runner may have reported it (drained here, so that its
            // write goes before the claims' release).
            self.drain();
            if self.agents.contains_key(&name) {
                self.finish_logout(&name, now);
            }
        }
    }

    /// The runner changed agent `id`'s state: write it down, show it and
    /// answer a request that waited for it.
    pub(super) fn agent_state_changed(&mut self, id: AgentId, status: AgentStatus, now: Millis) {
        let Some(name) = self.by_id.get(&id).cloned() else {
            return;
        };
        let (state, reason, shown) = match status {
            AgentStatus::LoggedOut => {
                self.finish_logout(&name, now);
                return;
            }
            AgentStatus::LoggedIn => (AgentState::Paused, Some("logged_in".to_string()), "paused"),
            AgentStatus::Paused => {
                let reason = self
                    .agents
                    .get_mut(&name)
                    .and_then(|a| a.pause_reason.take())
                    .unwrap_or_else(|| "paused".into());
                (AgentState::Paused, Some(reason), "paused")
            }
            AgentStatus::Ready => (AgentState::Ready, None, "ready"),
            AgentStatus::OnCall(_) => (AgentState::OnCall, None, "on_call"),
            AgentStatus::WrapUp => (AgentState::Wrapup, None, "wrapup"),
        };
        let ack = self.write_state(&name, state, reason.clone(), now);
        self.shared.with_session(&name, |s| {
            s.reason = reason;
            if status == AgentStatus::WrapUp
                && let Some(v) = s.call.as_mut()
            {
                v.ended_at = Some(now.ms());
            }
            if matches!(status, AgentStatus::Ready | AgentStatus::Paused) {
                s.pending = None;
            }
        });
        self.show_state(&name, shown, now);
        if status == AgentStatus::WrapUp {
            let call_id = self
                .shared
                .with_session(&name, |s| s.call.as_ref().map(|c| c.call_id))
                .flatten();
            self.shared.emit(ServiceEvent {
                id: 0,
                agent: Some(name.clone()),
                campaign: self.campaign.name.clone(),
                kind: "call_ended",
                data: serde_json::json!({ "call_id": call_id, "ended_at": now.ms() }),
            });
        }
        match self.agents.get_mut(&name).and_then(|a| a.reply.take()) {
            Some(reply) => reply_after(ack, reply),
            None => drop(ack),
        }
    }

    /// The agent is gone: its leg hung up, its interval closed, its session
    /// removed, and a request that waited answered once that is written.
    fn finish_logout(&mut self, agent: &str, now: Millis) {
        let Some(mut a) = self.agents.remove(agent) else {
            return;
        };
        if let Some(h) = a.leg_hangup.take() {
            let _ = h.send(());
        }
        let ack = self.write_acked(Write::AgentEnd {
            agent: agent.to_string(),
            at: now.ms(),
        });
        self.shared.forget_session(agent);
        {
            let shared = self.shared.clone();
            let agent = agent.to_string();
            tokio::spawn(async move {
                if let Err(e) = shared.store.session_release(&agent, &shared.node).await {
                    tracing::warn!(error = %e, "giving back an agent's session lease failed");
                }
            });
        }
        self.shared.emit(ServiceEvent {
            id: 0,
            agent: Some(agent.to_string()),
            campaign: self.campaign.name.clone(),
            kind: "state",
            data: serde_json::json!({ "state": "logged_out" }),
        });
        match a.reply.take() {
            Some(r) => reply_after(ack, r),
            None => drop(ack),
        }
    }

    /// The next state write for `agent` answers `reply`.
    fn await_state_write(&mut self, agent: &str, reply: Reply) {
        if let Some(a) = self.agents.get_mut(agent) {
            if let Some(old) = a.reply.replace(reply) {
                let _ = old.send(Ok(()));
            }
        } else {
            let _ = reply.send(Err(AgentError::NotLoggedIn));
        }
    }

    fn write_state(
        &mut self,
        agent: &str,
        state: AgentState,
        reason: Option<String>,
        now: Millis,
    ) -> oneshot::Receiver<bool> {
        self.write_acked(Write::AgentState {
            campaign_id: self.campaign_id,
            agent: agent.to_string(),
            state,
            reason,
            at: now.ms(),
        })
    }

    /// Shows `state` in the agent's session and on the event stream.
    fn show_state(&self, agent: &str, state: &'static str, now: Millis) {
        self.shared.with_session(agent, |s| {
            s.state = state;
            s.since = now.ms();
        });
        let reason = self
            .shared
            .with_session(agent, |s| s.reason.clone())
            .flatten();
        self.shared.emit(ServiceEvent {
            id: 0,
            agent: Some(agent.to_string()),
            campaign: self.campaign.name.clone(),
            kind: "state",
            data: serde_json::json!({ "state": state, "reason": reason, "since": now.ms() }),
        });
    }
}

/// Answers `reply` once `ack` says the write is stored.
pub(super) fn reply_after(ack: oneshot::Receiver<bool>, reply: Reply) {
    tokio::spawn(async move {
        let ok = ack.await.unwrap_or(false);
        let _ = reply.send(if ok { Ok(()) } else { Err(AgentError::Store) });
    });
}

/// An agent's standing leg: call the phone, report it up, hold until told
/// to hang up or the phone hangs up.
async fn agent_leg(
    shared: Arc<Shared>,
    me: mpsc::UnboundedSender<Input>,
    agent: String,
    campaign_id: i64,
    target: crate::sip::resolve::SipUri,
    ip: IpAddr,
    reply: Reply,
) {
    let fail = |why: String, reply: Reply| {
        let _ = me.send(Input::LegFailed {
            agent: agent.clone(),
            why,
            reply,
        });
    };
    let place = match shared.locate_phone(&target).await {
        Ok(p) => p,
        Err(e) => return fail(e.to_string(), reply),
    };
    let ua = match shared
        .agent_ua(&place.addrs, place.transport, &place.server_name)
        .await
    {
        Ok(ua) => ua,
        Err(e) => return fail(e.to_string(), reply),
    };
    // RTP on an even port, RTCP on the one above (RFC 3550 11), as the
    // customer's leg.
    let (sock, rtcp) = match shared
        .rtp_pair(ip)
        .and_then(|(a, b)| Ok((UdpSocket::from_std(a)?, UdpSocket::from_std(b)?)))
    {
        Ok((s, r)) => (Arc::new(s), Arc::new(r)),
        Err(e) => return fail(e.to_string(), reply),
    };
    let stats = Arc::new(std::sync::Mutex::new(
        crate::media::rtcp::LegStats::default(),
    ));
    // Dropped when this task ends: the RTCP session says BYE then.
    let mut rtcp_stop: Option<oneshot::Sender<()>> = None;
    let local_media = match sock.local_addr() {
        Ok(a) => a,
        Err(e) => return fail(e.to_string(), reply),
    };
    let mut params = CallParams {
        ids: None,
        target: target.uri.clone(),
        from_user: "dialler".into(),
        ring_timeout: RingTimeout::default(),
        credentials: None,
        media_addr: local_media,
        max_talk: None,
        display_name: None,
        extra_headers: Vec::new(),
        // Every address DNS gave, in order: the next on timeout or 503.
        destinations: place.addrs,
    };
    // Stored before the INVITE: a restart after a crash ends the leg.
    let mut leg = ua.prepare(&mut params);
    let stored = StoredLeg {
        campaign_id,
        kind: LegKind::Agent,
        attempt_id: None,
        agent_id: Some(agent.clone()),
        record: leg.clone(),
    };
    if let Err(e) = shared
        .store
        .leg_open(&shared.node, &stored, shared.clock.now().ms())
        .await
    {
        return fail(format!("storing the phone leg failed: {e}"), reply);
    }
    let mut handle = match ua.call(params).await {
        Ok(h) => h,
        Err(e) => {
            super::calls::close_leg(&shared.store, &leg.call_id).await;
            return fail(e.to_string(), reply);
        }
    };
    let (hang_tx, mut hang_rx) = mpsc::unbounded_channel();
    let mut reply = Some(reply);
    // Why the login fails when the leg ends before it is up.
    let mut why = "the phone did not answer";
    loop {
        tokio::select! {
            ev = handle.next_event() => match ev {
                Some(CallEvent::Answered { media, dialog, .. }) => {
                    leg.dialog = Some(dialog);
                    // A phone that answers in no codec we send (or refuses
                    // the stream) would leave the agent deaf and mute on
                    // every call: hung up, and the login refused with why.
                    if reply.is_some() && !media.as_ref().is_some_and(crate::sip::sdp::Media::carries_audio) {
                        tracing::warn!(%agent, "the agent's phone answered with no audio we can use (no PCMU or PCMA, or the stream refused): hung up");
                        why = "the phone answered with no audio the dialler can use (it takes neither PCMU nor PCMA, or refused the stream)";
                        if let Err(e) = shared.store.leg_update(&leg).await {
                            tracing::warn!("storing the phone leg's dialog failed: {e}");
                        }
                        handle.hangup();
                        continue;
                    }
                    // The leg's RTCP session, from the answer to the end.
                    if let Some(m) = &media
                        && rtcp_stop.is_none()
                    {
                        let (stop_tx, stop_rx) = oneshot::channel::<()>();
                        rtcp_stop = Some(stop_tx);
                        tokio::spawn(crate::media::rtcp::session(
                            rtcp.clone(),
                            m.rtcp_addr(),
                            stats.clone(),
                            shared.clock.clone(),
                            format!("dialler@{}", shared.node),
                            "agent",
                            async move {
                                let _ = stop_rx.await;
                            },
                        ));
                    }
                    if let Err(e) = shared.store.leg_update(&leg).await {
                        tracing::warn!("storing the phone leg's dialog failed: {e}");
                    }
                    if let Some(r) = reply.take() {
                        let _ = me.send(Input::LegUp {
                            agent: agent.clone(),
                            media: LegMedia {
                                rtp: sock.clone(),
                                peer: media.as_ref().map(|m| m.addr),
                                codec: media.as_ref().and_then(crate::sip::sdp::Media::codec),
                                events: media.as_ref().and_then(|m| m.telephone_event),
                                stats: Some(stats.clone()),
                            },
                            hangup: hang_tx.clone(),
                            reply: r,
                        });
                    }
                }
                Some(CallEvent::Progress { .. }) => {}
                // The relay latches to where RTP comes from: a changed
                // address needs nothing more here.
                Some(CallEvent::MediaChanged { media }) => {
                    tracing::debug!(direction = ?media.direction, "the phone changed the session");
                }
                Some(CallEvent::Ended(_)) | None => {
                    // Ended: forgotten. The UA stopped (shutdown): kept,
                    // for the next start to end if it is still up.
                    if ev.is_some() {
                        super::calls::close_leg(&shared.store, &leg.call_id).await;
                    }
                    match reply.take() {
                        Some(r) => fail(why.into(), r),
                        None => { let _ = me.send(Input::LegDown { agent: agent.clone() }); }
                    }
                    return;
                }
            },
            Some(()) = hang_rx.recv() => handle.hangup(),
        }
    }
}

/// An agent's browser leg: wait for the browser to connect, report it up,
/// hold until told to hang up or the browser goes away.
async fn softphone_leg(
    me: mpsc::UnboundedSender<Input>,
    agent: String,
    mut phone: crate::media::webrtc::Softphone,
    reply: Reply,
) {
    if let Err(why) = phone.connected(crate::media::webrtc::CONNECT_TIMEOUT).await {
        let _ = me.send(Input::LegFailed {
            agent,
            why: format!("the browser softphone: {why}"),
            reply,
        });
        return;
    }
    let (hang_tx, mut hang_rx) = mpsc::unbounded_channel();
    let _ = me.send(Input::LegUp {
        agent: agent.clone(),
        media: LegMedia {
            rtp: phone.leg.clone(),
            peer: Some(phone.peer),
            codec: None,
            events: None,
            stats: None,
        },
        hangup: hang_tx,
        reply,
    });
    let mut state = phone.state.clone();
    loop {
        tokio::select! {
            r = state.wait_for(|s| matches!(s, crate::media::webrtc::PhoneState::Ended(_))) => {
                if let Ok(s) = r {
                    tracing::info!(agent = %agent, state = ?*s, "the browser softphone ended");
                }
                break;
            }
            Some(()) = hang_rx.recv() => phone.hang_up(),
        }
    }
    let _ = me.send(Input::LegDown { agent });
}

impl Shared {
    /// Drops an agent's session (logged out, or its login failed).
    pub(super) fn forget_session(&self, agent: &str) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(agent);
        }
    }
}

/// A session as the login request opens it, before the phone answers.
pub fn logging_in(agent: &str, campaign: &str, now: Millis) -> SessionView {
    SessionView {
        agent: agent.to_string(),
        campaign: campaign.to_string(),
        state: "logging_in",
        since: now.ms(),
        reason: None,
        call: None,
        pending: None,
        disposing: false,
    }
}
