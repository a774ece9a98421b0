//! One campaign's task: owns the [`Runner`], turns API requests, SIP
//! events and claimed leads into runner events on the real clock, and
//! carries out the runner's commands by spawning call, relay and player
//! tasks. Never awaits the store or a socket in its loop.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::writer::{Job, Write};
use super::{CallView, ServiceEvent, SessionView, Shared};
use crate::campaign::Campaign;
use crate::clock::Millis;
use crate::compliance::ledger::Ledger;
use crate::compliance::{self, Registries};
use crate::dialer::{
    self, AgentId, CallId, Command, Event, Outcome, Record, Runner, RunnerConfig, TrunkLimits,
};
use crate::live::CampaignLive;
use crate::outcome::LeadStatus;
use crate::phone;
use crate::policy::{self, NextAttempt, PastAttempt};
use crate::sip::auth::Credentials;
use crate::sip::sdp;
use crate::sip::ua::Ua;
use crate::sip::uac::{self, CallEvent, CallParams, RingTimeout, Summary};
use crate::store::{
    AgentState, AttemptEnd, ClaimedLead, LedgerKind, NewAttempt, Store, StoreError,
};

/// Result of an agent request, for the HTTP layer.
pub type Reply = oneshot::Sender<Result<(), (u16, String)>>;

/// What a campaign task is told.
#[derive(Debug)]
pub enum Input {
    /// An agent logs in; the dialler calls `sip_uri` and keeps the leg up.
    Login {
        /// Agent id.
        agent: String,
        /// The agent's phone.
        sip_uri: String,
        /// Answered once the phone answered (or failed).
        reply: Reply,
    },
    /// The agent's phone answered.
    LegUp {
        /// Agent id.
        agent: String,
        /// Our RTP socket for the leg.
        rtp: Arc<UdpSocket>,
        /// The phone's media address.
        peer: Option<SocketAddr>,
        /// Hangs up the leg.
        hangup: mpsc::UnboundedSender<()>,
        /// For the login request.
        reply: Reply,
    },
    /// The agent's phone did not answer.
    LegFailed {
        /// Agent id.
        agent: String,
        /// Why.
        why: String,
        /// For the login request.
        reply: Reply,
    },
    /// The agent's phone hung up.
    LegDown {
        /// Agent id.
        agent: String,
    },
    /// Ready for calls.
    Ready {
        /// Agent id.
        agent: String,
        /// Answer.
        reply: Reply,
    },
    /// Pause (after the call and wrap-up, if any).
    Pause {
        /// Agent id.
        agent: String,
        /// Why.
        reason: String,
        /// Answer.
        reply: Reply,
    },
    /// Log out (after the call and wrap-up, if any).
    Logout {
        /// Agent id.
        agent: String,
        /// Answer.
        reply: Reply,
    },
    /// The agent hangs up its call.
    Hangup {
        /// Agent id.
        agent: String,
        /// Answer.
        reply: Reply,
    },
    /// A disposition was written: wrap-up is over.
    WrapUpDone {
        /// Agent id.
        agent: String,
        /// Flags of the disposition.
        contact: bool,
        /// Flags of the disposition.
        conversion: bool,
    },
    /// Claimed leads.
    Leads(Vec<ClaimedLead>),
    /// A call's attempt row is written; the INVITE goes out.
    Started {
        /// Runner call.
        call: CallId,
        /// Attempt id.
        attempt_id: i64,
    },
    /// A call could not be started.
    StartFailed {
        /// Runner call.
        call: CallId,
    },
    /// The callee answered.
    Answered {
        /// Runner call.
        call: CallId,
        /// Their media.
        media: Option<SocketAddr>,
        /// When the 200 arrived.
        at: Instant,
        /// The 200 OK's headers (the provider's answering-machine verdict).
        headers: crate::sip::message::Headers,
    },
    /// The call is over on the SIP side.
    Ended {
        /// Runner call.
        call: CallId,
        /// How.
        summary: Summary,
    },
    /// Stop dialling and wind down.
    Shutdown,
}

/// Per-node settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Node name.
    pub node: String,
    /// Shutdown grace.
    pub grace: Duration,
    /// Claim lease.
    pub lease: Duration,
    /// Where RTP binds.
    pub media_ip: IpAddr,
}

/// What start-up recovery found.
#[derive(Debug)]
pub struct Recovered {
    /// Attempts closed as interrupted.
    pub interrupted: u64,
    /// Agent intervals closed.
    pub agents_closed: u64,
    /// The ledger rebuilt from stored rows.
    pub ledger: Ledger,
}

/// Start-up recovery of a campaign for `node`: attempts in flight at a
/// crash become `interrupted` (their leads wait the failure retry delay),
/// open agent intervals are closed, unused claims are released and the
/// ledger is rebuilt from the stored rows.
pub async fn recover(
    store: &Store,
    campaign_id: i64,
    c: &Campaign,
    node: &str,
    now: i64,
) -> Result<Recovered, StoreError> {
    let now = Millis(now);
    let retry_at = now.plus(policy::retry_delay(c, Outcome::Interrupted));
    let interrupted = store
        .recover_node(campaign_id, node, now.ms(), retry_at.ms())
        .await?;
    let mut agents_closed = 0;
    for a in store.agents_with_open_state(campaign_id).await? {
        agents_closed += store.agent_state_end_all(&a, now.ms()).await?;
    }
    let ledger = store.ledger(campaign_id, c.abandon_window, now).await?;
    Ok(Recovered {
        interrupted,
        agents_closed,
        ledger,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AState {
    Paused,
    Ready,
    OnCall(CallId),
    WrapUp,
}

struct Agent {
    id: AgentId,
    state: AState,
    pause_after: Option<String>,
    logout_after: bool,
    rtp: Option<Arc<UdpSocket>>,
    peer: Option<SocketAddr>,
    leg_hangup: Option<mpsc::UnboundedSender<()>>,
    logged_in: bool,
}

struct CallCtx {
    lead: ClaimedLead,
    /// When it was dialled, ms.
    started_at: i64,
    attempt_id: Option<i64>,
    ctrl: mpsc::UnboundedSender<Ctrl>,
    rtp: Arc<UdpSocket>,
    media: Option<SocketAddr>,
    answered_at: Option<i64>,
    connected_at: Option<i64>,
    agent: Option<String>,
    /// The runner's outcome, once it ended the attempt.
    outcome: Option<Outcome>,
    /// The SIP side's summary, once the call ended there.
    summary: Option<Summary>,
    relay_stop: Option<oneshot::Sender<()>>,
    interrupted: bool,
}

#[derive(Debug)]
enum Ctrl {
    Hangup,
}

#[derive(Default)]
struct Counters {
    attempts: u64,
    human_answers: u64,
    connects: u64,
    abandons: u64,
    contacts: u64,
    conversions: u64,
    refused: u64,
    outcomes: std::collections::BTreeMap<String, u64>,
    recent_dials: std::collections::VecDeque<i64>,
}

/// The campaign task's state.
pub struct Driver {
    campaign: Arc<Campaign>,
    campaign_id: i64,
    shared: Arc<Shared>,
    registries: Arc<Registries>,
    ua: Arc<Ua>,
    writer: mpsc::UnboundedSender<Job>,
    me: mpsc::UnboundedSender<Input>,
    settings: Settings,
    runner: Runner,
    agents: HashMap<String, Agent>,
    by_id: HashMap<AgentId, String>,
    next_agent: AgentId,
    hopper: HashMap<i64, ClaimedLead>,
    calls: HashMap<CallId, CallCtx>,
    counters: Counters,
    stopping: Option<tokio::time::Instant>,
    hung_up_at_shutdown: u64,
    prompt: Arc<Vec<i16>>,
    /// When each answered call's 200 arrived, until it is bridged.
    answer_instants: HashMap<CallId, Instant>,
    /// The durability of the last abandon, for the safe-harbour player.
    pending_abandon_ack: Option<oneshot::Receiver<bool>>,
    /// Host part of Request-URIs: the provider's address.
    ua_host: String,
    /// The trunk's digest credentials, from the environment.
    credentials: Option<Credentials>,
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
fn trunk_credentials(
    campaign: &Campaign,
    env: impl Fn(&str) -> Option<String>,
) -> Option<Credentials> {
    let p = &campaign.provider;
    let (user_var, pass_var) = match (&p.username_env, &p.password_env) {
        (Some(u), Some(w)) => (u, w),
        (None, None) => return None,
        (u, w) => {
            tracing::warn!(
                campaign = %campaign.name,
                "[provider] names only one of username_env ({u:?}) and password_env ({w:?}): no trunk credentials"
            );
            return None;
        }
    };
    match (env(user_var), env(pass_var)) {
        (Some(username), Some(password)) => Some(Credentials { username, password }),
        _ => {
            tracing::warn!(
                campaign = %campaign.name,
                "{user_var} or {pass_var} is not set: calls go without trunk credentials"
            );
            None
        }
    }
}

impl Driver {
    /// A driver for a campaign.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        campaign: Arc<Campaign>,
        campaign_id: i64,
        shared: Arc<Shared>,
        registries: Arc<Registries>,
        ua: Arc<Ua>,
        writer: mpsc::UnboundedSender<Job>,
        me: mpsc::UnboundedSender<Input>,
        settings: Settings,
        ledger: Ledger,
        provider: SocketAddr,
    ) -> Driver {
        let mut config = RunnerConfig::from_campaign(&campaign);
        config.trunk = Some(TrunkLimits {
            cps: campaign.provider.cps,
            channels: campaign.provider.max_channels,
        });
        let credentials = trunk_credentials(&campaign, |name| std::env::var(name).ok());
        let mut runner = Runner::new(config, &campaign.strategy);
        runner.restore_ledger(ledger);
        let prompt = Arc::new(crate::media::wav::generated_prompt(
            policy::safe_harbour(&campaign).as_secs_f64(),
        ));
        Driver {
            campaign,
            campaign_id,
            shared,
            registries,
            ua,
            writer,
            me,
            settings,
            runner,
            agents: HashMap::new(),
            by_id: HashMap::new(),
            next_agent: 0,
            hopper: HashMap::new(),
            calls: HashMap::new(),
            counters: Counters::default(),
            stopping: None,
            hung_up_at_shutdown: 0,
            prompt,
            answer_instants: HashMap::new(),
            pending_abandon_ack: None,
            ua_host: provider.to_string(),
            credentials,
        }
    }

    /// Now, on the service's clock.
    fn now_ms(&self) -> i64 {
        self.shared.clock.now().ms()
    }

    /// Now, on the runner's timeline.
    fn now_u64(&self) -> u64 {
        self.shared.clock.now().runner_ms()
    }

    fn write(&self, w: Write) {
        let _ = self.writer.send((w, None));
    }

    fn write_acked(&self, w: Write) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        let _ = self.writer.send((w, Some(tx)));
        rx
    }

    fn agent_state(
        &self,
        agent: &str,
        state: AgentState,
        reason: Option<String>,
        now: i64,
    ) -> oneshot::Receiver<bool> {
        self.write_acked(Write::AgentState {
            campaign_id: self.campaign_id,
            agent: agent.to_string(),
            state,
            reason,
            at: now,
        })
    }

    /// Runs until shutdown has finished; returns how many calls were hung
    /// up when the grace period ran out.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Input>) -> u64 {
        let mut publish = tokio::time::interval(Duration::from_secs(1));
        publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Nobody is logged in at start: the runner asks for leads at its
        // first decision.
        loop {
            let wake = self
                .runner
                .poll_timeout()
                .map(|ms| self.shared.clock.instant_of(Millis::from_runner_ms(ms)));
            let stop_at = self.stopping;
            tokio::select! {
                biased;
                input = rx.recv() => match input {
                    Some(i) => self.input(i),
                    None => break,
                },
                () = async {
                    match wake {
                        Some(w) => tokio::time::sleep_until(w).await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.runner.handle_timeout(self.now_u64());
                }
                _ = publish.tick() => self.publish(),
                () = async {
                    match stop_at {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.force_end();
                }
            }
            self.drain();
            // Agents finishing a call or its wrap-up keep the campaign up
            // (within the grace period) so their dispositions are recorded.
            if self.stopping.is_some()
                && self.calls.is_empty()
                && !self
                    .agents
                    .values()
                    .any(|a| matches!(a.state, AState::OnCall(_) | AState::WrapUp))
            {
                break;
            }
        }
        self.wind_down().await;
        self.hung_up_at_shutdown
    }

    fn force_end(&mut self) {
        for a in self.agents.values_mut() {
            // Wrap-ups cut short by the end of the grace period.
            if a.state == AState::WrapUp {
                a.state = AState::Paused;
            }
        }
        // Grace is over: hang up what is left; their SIP ends arrive soon.
        self.stopping = Some(tokio::time::Instant::now() + Duration::from_secs(5));
        let mut n = 0;
        for c in self.calls.values_mut() {
            if !c.interrupted {
                c.interrupted = true;
                n += 1;
                let _ = c.ctrl.send(Ctrl::Hangup);
            } else {
                // Nothing came back: close it as interrupted without SIP.
                c.summary.get_or_insert(Summary {
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
                });
                c.outcome.get_or_insert(Outcome::Failure);
            }
        }
        self.hung_up_at_shutdown += n;
        let done: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| c.summary.is_some() && c.outcome.is_some())
            .map(|(k, _)| *k)
            .collect();
        for call in done {
            self.try_finish(call);
        }
    }

    async fn wind_down(&mut self) {
        let now = self.now_ms();
        for (name, a) in self.agents.drain() {
            if let Some(h) = &a.leg_hangup {
                let _ = h.send(());
            }
            let _ = self.writer.send((
                Write::AgentEnd {
                    agent: name.clone(),
                    at: now,
                },
                None,
            ));
            if let Ok(mut s) = self.shared.sessions.lock() {
                s.remove(&name);
            }
            self.shared.emit(ServiceEvent {
                agent: Some(name),
                campaign: self.campaign.name.clone(),
                kind: "state",
                data: serde_json::json!({ "state": "logged_out" }),
            });
        }
        let rx = self.write_acked(Write::Release {
            campaign_id: self.campaign_id,
            node: self.settings.node.clone(),
        });
        let _ = rx.await;
        self.publish();
        // Let the agent legs' BYEs go out.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    fn session_update(&self, agent: &str, f: impl FnOnce(&mut SessionView)) {
        self.shared.with_session(agent, f);
    }

    fn set_session_state(&self, agent: &str, state: &'static str, reason: Option<String>) {
        let now = self.now_ms();
        self.session_update(agent, |s| {
            s.state = state;
            s.since = now;
            s.reason = reason;
        });
        self.shared.emit(ServiceEvent {
            agent: Some(agent.to_string()),
            campaign: self.campaign.name.clone(),
            kind: "state",
            data: serde_json::json!({ "state": state }),
        });
    }

    fn input(&mut self, input: Input) {
        let now = self.now_ms();
        let now_u = self.now_u64();
        match input {
            Input::Login {
                agent,
                sip_uri,
                reply,
            } => {
                if self.stopping.is_some() {
                    let _ = reply.send(Err((503, "the service is shutting down".into())));
                    return;
                }
                if self.agents.get(&agent).is_some_and(|a| a.logged_in) {
                    let _ = reply.send(Err((409, "already logged in".into())));
                    return;
                }
                let target = match crate::sip::Target::parse(&sip_uri) {
                    Ok(t) => t,
                    Err(e) => {
                        let _ = reply.send(Err((400, e.to_string())));
                        return;
                    }
                };
                let shared = self.shared.clone();
                let me = self.me.clone();
                let ip = self.settings.media_ip;
                tokio::spawn(agent_leg(shared, me, agent, target, ip, reply));
            }
            Input::LegUp {
                agent,
                rtp,
                peer,
                hangup,
                reply,
            } => {
                if self.stopping.is_some() {
                    let _ = hangup.send(());
                    let _ = reply.send(Err((503, "the service is shutting down".into())));
                    return;
                }
                let id = match self.agents.get(&agent) {
                    Some(a) => a.id,
                    None => {
                        let id = self.next_agent;
                        self.next_agent += 1;
                        self.by_id.insert(id, agent.clone());
                        id
                    }
                };
                self.agents.insert(
                    agent.clone(),
                    Agent {
                        id,
                        state: AState::Paused,
                        pause_after: None,
                        logout_after: false,
                        rtp: Some(rtp),
                        peer,
                        leg_hangup: Some(hangup),
                        logged_in: true,
                    },
                );
                let ack =
                    self.agent_state(&agent, AgentState::Paused, Some("logged_in".into()), now);
                self.runner.handle_event(now_u, Event::AgentLogin(id));
                tokio::spawn(async move {
                    let ok = ack.await.unwrap_or(false);
                    let _ = reply.send(if ok {
                        Ok(())
                    } else {
                        Err((500, "internal error".into()))
                    });
                });
            }
            Input::LegFailed { agent, why, reply } => {
                if let Ok(mut s) = self.shared.sessions.lock() {
                    s.remove(&agent);
                }
                let _ = reply.send(Err((
                    502,
                    format!("the agent's phone did not answer: {why}"),
                )));
            }
            Input::LegDown { agent } => {
                // The phone hung up: the agent is logged out after any call.
                if let Some(a) = self.agents.get_mut(&agent) {
                    a.leg_hangup = None;
                    a.rtp = None;
                }
                self.logout(&agent, now, None);
            }
            Input::Ready { agent, reply } => {
                let Some(a) = self.agents.get_mut(&agent) else {
                    let _ = reply.send(Err((409, "not logged in".into())));
                    return;
                };
                match a.state {
                    AState::Ready => {
                        let _ = reply.send(Ok(()));
                    }
                    AState::OnCall(_) | AState::WrapUp => {
                        let _ = reply.send(Err((
                            409,
                            "on a call or in wrap-up: record the disposition to become ready"
                                .into(),
                        )));
                    }
                    AState::Paused => {
                        a.state = AState::Ready;
                        let id = a.id;
                        let ack = self.agent_state(&agent, AgentState::Ready, None, now);
                        self.set_session_state(&agent, "ready", None);
                        // Written before the runner may bridge a call to it.
                        let me = self.me.clone();
                        let _ = me;
                        self.runner.handle_event(now_u, Event::AgentReady(id));
                        reply_after(ack, reply);
                    }
                }
            }
            Input::Pause {
                agent,
                reason,
                reply,
            } => {
                let Some(a) = self.agents.get_mut(&agent) else {
                    let _ = reply.send(Err((409, "not logged in".into())));
                    return;
                };
                let id = a.id;
                match a.state {
                    AState::OnCall(_) | AState::WrapUp => {
                        a.pause_after = Some(reason);
                        self.session_update(&agent, |s| s.pending = Some("pause"));
                        self.runner.handle_event(now_u, Event::AgentPause(id));
                        let _ = reply.send(Ok(()));
                    }
                    AState::Ready | AState::Paused => {
                        a.state = AState::Paused;
                        let ack =
                            self.agent_state(&agent, AgentState::Paused, Some(reason.clone()), now);
                        self.runner.handle_event(now_u, Event::AgentPause(id));
                        self.set_session_state(&agent, "paused", Some(reason));
                        reply_after(ack, reply);
                    }
                }
            }
            Input::Logout { agent, reply } => {
                if !self.agents.contains_key(&agent) {
                    let _ = reply.send(Err((409, "not logged in".into())));
                    return;
                }
                self.logout(&agent, now, Some(reply));
            }
            Input::Hangup { agent, reply } => {
                let call = match self.agents.get(&agent).map(|a| a.state) {
                    Some(AState::OnCall(c)) => c,
                    _ => {
                        let _ = reply.send(Err((409, "no call connected".into())));
                        return;
                    }
                };
                if let Some(c) = self.calls.get(&call) {
                    let _ = c.ctrl.send(Ctrl::Hangup);
                }
                let _ = reply.send(Ok(()));
            }
            Input::WrapUpDone {
                agent,
                contact,
                conversion,
            } => {
                self.counters.contacts += u64::from(contact);
                self.counters.conversions += u64::from(conversion);
                let Some(a) = self.agents.get(&agent) else {
                    return;
                };
                if a.state != AState::WrapUp {
                    return;
                }
                let (id, logout_after) = (a.id, a.logout_after);
                self.session_update(&agent, |s| {
                    s.disposing = false;
                    s.call = None;
                    s.pending = None;
                });
                if logout_after {
                    self.runner
                        .handle_event(now_u, Event::WrapUpDone { agent: id });
                    if let Some(a) = self.agents.get_mut(&agent) {
                        a.state = AState::Paused;
                    }
                    self.logout(&agent, now, None);
                    return;
                }
                let pause = self
                    .agents
                    .get_mut(&agent)
                    .and_then(|a| a.pause_after.take());
                let (state, store_state, reason) = match pause {
                    Some(r) => (AState::Paused, AgentState::Paused, Some(r)),
                    None => (AState::Ready, AgentState::Ready, None),
                };
                if let Some(a) = self.agents.get_mut(&agent) {
                    a.state = state;
                }
                drop(self.agent_state(&agent, store_state, reason.clone(), now));
                self.set_session_state(
                    &agent,
                    if state == AState::Ready {
                        "ready"
                    } else {
                        "paused"
                    },
                    reason,
                );
                self.runner
                    .handle_event(now_u, Event::WrapUpDone { agent: id });
            }
            Input::Leads(leads) => {
                let infos = leads
                    .iter()
                    .map(|l| dialer::LeadInfo {
                        id: l.lead.id as u64,
                        foresight: None,
                    })
                    .collect();
                for l in leads {
                    self.hopper.insert(l.lead.id, l);
                }
                self.runner.handle_event(now_u, Event::Leads(infos));
            }
            Input::Started { call, attempt_id } => {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.attempt_id = Some(attempt_id);
                }
                self.try_finish(call);
            }
            Input::StartFailed { call } => {
                if let Some(c) = self.calls.remove(&call) {
                    // The lead stays claimed until the lease runs out or
                    // this node releases its claims.
                    let _ = c;
                }
                self.runner.handle_event(now_u, Event::DialSkipped { call });
            }
            Input::Answered {
                call,
                media,
                at,
                headers,
            } => {
                let mut attempt = None;
                if let Some(c) = self.calls.get_mut(&call) {
                    c.media = media;
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
                // A provider that runs answering-machine detection says so
                // in a header of the 200 OK; without it, a person answered.
                let machine = machine_answer(&self.campaign.provider, &headers);
                self.runner.handle_event(
                    now_u,
                    Event::CallAnswered {
                        call,
                        human: !machine,
                    },
                );
            }
            Input::Ended { call, summary } => {
                self.answer_instants.remove(&call);
                let Some(c) = self.calls.get_mut(&call) else {
                    return;
                };
                if let Some(stop) = c.relay_stop.take() {
                    let _ = stop.send(());
                }
                let answered = summary.outcome == uac::Outcome::Answered;
                c.summary = Some(summary.clone());
                if c.outcome.is_none() {
                    if answered {
                        self.runner.handle_event(now_u, Event::CallEnded { call });
                    } else {
                        let outcome = match summary.outcome {
                            uac::Outcome::Busy => Outcome::Busy,
                            uac::Outcome::Rejected => Outcome::Rejected,
                            uac::Outcome::NoAnswer | uac::Outcome::Cancelled => Outcome::NoAnswer,
                            _ => Outcome::Failure,
                        };
                        self.runner
                            .handle_event(now_u, Event::CallFailed { call, outcome });
                    }
                }
                self.drain();
                if self.calls.get(&call).is_some_and(|c| c.outcome.is_none()) {
                    // The runner had already forgotten it (shutdown).
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.outcome = Some(Outcome::Failure);
                    }
                }
                self.try_finish(call);
            }
            Input::Shutdown => {
                if self.stopping.is_none() {
                    self.runner.handle_event(now_u, Event::Dialling(false));
                    self.stopping = Some(tokio::time::Instant::now() + self.settings.grace);
                }
            }
        }
    }

    fn logout(&mut self, agent: &str, now: i64, reply: Option<Reply>) {
        let Some(a) = self.agents.get_mut(agent) else {
            if let Some(r) = reply {
                let _ = r.send(Err((409, "not logged in".into())));
            }
            return;
        };
        let id = a.id;
        match a.state {
            AState::OnCall(_) | AState::WrapUp if a.logged_in => {
                a.logout_after = true;
                self.session_update(agent, |s| s.pending = Some("logout"));
                self.runner
                    .handle_event(self.now_u64(), Event::AgentLogout(id));
                if let Some(r) = reply {
                    let _ = r.send(Ok(()));
                }
            }
            _ => {
                a.logged_in = false;
                if let Some(h) = a.leg_hangup.take() {
                    let _ = h.send(());
                }
                a.rtp = None;
                let pending_wrap = a.state == AState::WrapUp;
                self.runner
                    .handle_event(self.now_u64(), Event::AgentLogout(id));
                let _ = pending_wrap;
                self.agents.remove(agent);
                let ack = self.write_acked(Write::AgentEnd {
                    agent: agent.to_string(),
                    at: now,
                });
                if let Ok(mut s) = self.shared.sessions.lock() {
                    s.remove(agent);
                }
                self.shared.emit(ServiceEvent {
                    agent: Some(agent.to_string()),
                    campaign: self.campaign.name.clone(),
                    kind: "state",
                    data: serde_json::json!({ "state": "logged_out" }),
                });
                match reply {
                    Some(r) => reply_after(ack, r),
                    None => drop(ack),
                }
            }
        }
    }

    fn drain(&mut self) {
        while let Some(cmd) = self.runner.poll_command() {
            self.command(cmd);
        }
    }

    fn command(&mut self, cmd: Command) {
        let now = self.now_ms();
        match cmd {
            Command::Dial { call, lead } => self.dial(call, lead as i64, now),
            Command::Cancel { call } | Command::Hangup { call } => {
                if let Some(c) = self.calls.get(&call) {
                    let _ = c.ctrl.send(Ctrl::Hangup);
                }
            }
            Command::Bridge { call, agent } => self.bridge(call, agent, now),
            Command::PlaySafeHarbour { call } => {
                let Some(c) = self.calls.get(&call) else {
                    return;
                };
                let rtp = c.rtp.clone();
                let media = c.media;
                let ctrl = c.ctrl.clone();
                let prompt = self.prompt.clone();
                // The abandon was queued just before this command: the
                // message plays once it is durable.
                let ack = self.pending_abandon_ack.take();
                tokio::spawn(async move {
                    if let Some(ack) = ack {
                        let _ = ack.await;
                    }
                    if let Some(to) = media {
                        let _ = crate::media::player::play(&rtp, to, &prompt, 0).await;
                    }
                    let _ = ctrl.send(Ctrl::Hangup);
                });
            }
            Command::NeedLeads(n) => {
                let store = self.shared.store.clone();
                let me = self.me.clone();
                let id = self.campaign_id;
                let node = self.settings.node.clone();
                let lease = i64::try_from(self.settings.lease.as_millis()).unwrap_or(i64::MAX / 4);
                let clock = self.shared.clock.clone();
                tokio::spawn(async move {
                    let leads = match store
                        .claim_leads(id, &node, n, clock.now().ms(), lease)
                        .await
                    {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!("claiming leads failed: {e}");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            Vec::new()
                        }
                    };
                    if leads.is_empty() {
                        // Nothing due: look again in a while, not at once.
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                    let _ = me.send(Input::Leads(leads));
                });
            }
            Command::Record(r) => self.record(r, now),
        }
    }

    fn dial(&mut self, call: CallId, lead_id: i64, now: i64) {
        let Some(lead) = self.hopper.remove(&lead_id) else {
            self.runner
                .handle_event(self.now_u64(), Event::DialSkipped { call });
            return;
        };
        let verdict = self.check(&lead, now);
        if let Err((next, reasons)) = verdict {
            self.counters.refused += 1;
            tracing::info!(
                lead = lead.lead.id,
                phone = %phone::mask(&lead.lead.phone),
                %reasons,
                "refused just before dialling"
            );
            self.write(Write::Refuse {
                lead_id,
                next_at: next,
                reasons,
            });
            self.runner
                .handle_event(self.now_u64(), Event::DialSkipped { call });
            return;
        }
        let sock = match std::net::UdpSocket::bind(SocketAddr::new(self.settings.media_ip, 0))
            .and_then(|s| {
                s.set_nonblocking(true)?;
                Ok(s)
            })
            .and_then(UdpSocket::from_std)
        {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::error!("no RTP port: {e}");
                self.runner
                    .handle_event(self.now_u64(), Event::DialSkipped { call });
                self.hopper.insert(lead_id, lead);
                return;
            }
        };
        let media_addr = match sock.local_addr() {
            Ok(a) => a,
            Err(_) => return,
        };
        let (ctrl_tx, ctrl_rx) = mpsc::unbounded_channel();
        let provider_host = self.ua_target_host();
        let params = CallParams {
            target: format!("sip:{}@{}", lead.lead.phone, provider_host),
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
        };
        let attempt = NewAttempt {
            campaign_id: self.campaign_id,
            lead_id,
            phone: lead.lead.phone.clone(),
            started_at: now,
        };
        self.counters.attempts += 1;
        self.counters.recent_dials.push_back(now);
        self.calls.insert(
            call,
            CallCtx {
                lead,
                started_at: now,
                attempt_id: None,
                ctrl: ctrl_tx,
                rtp: sock,
                media: None,
                answered_at: None,
                connected_at: None,
                agent: None,
                outcome: None,
                summary: None,
                relay_stop: None,
                interrupted: false,
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
        ));
    }

    fn ua_target_host(&self) -> String {
        // The UA sends every request to its provider; the Request-URI's
        // host names it too.
        self.ua_host.clone()
    }

    /// Compliance just before the dial: `Err((next_at, reasons))` refuses.
    fn check(&mut self, l: &ClaimedLead, now: i64) -> Result<(), (Option<i64>, String)> {
        let now = Millis(now);
        let Ok(record) = l.record(now) else {
            return Err((None, compliance::Reason::InvalidNumber.code().into()));
        };
        let dial = self.runner.dial_view(now.runner_ms());
        let v = policy::screen(&record, &self.campaign, &self.registries, &dial, now.utc());
        if v.allowed {
            Ok(())
        } else {
            let reasons: Vec<&str> = v.reasons.iter().map(|r| r.code()).collect();
            Err((
                v.next_allowed_at.map(|t| t.timestamp_millis()),
                reasons.join(","),
            ))
        }
    }

    fn bridge(&mut self, call: CallId, agent: AgentId, now: i64) {
        let Some(name) = self.by_id.get(&agent).cloned() else {
            return;
        };
        let Some(a) = self.agents.get_mut(&name) else {
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        a.state = AState::OnCall(call);
        c.connected_at = Some(now);
        c.agent = Some(name.clone());
        let progress = c.attempt_id.map(|attempt_id| Write::Progress {
            attempt_id,
            answered_at: None,
            connected_at: Some(now),
            agent: Some(name.clone()),
        });
        if let Some(agent_rtp) = a.rtp.clone() {
            let (stop_tx, stop_rx) = oneshot::channel();
            c.relay_stop = Some(stop_tx);
            tokio::spawn(relay(c.rtp.clone(), c.media, agent_rtp, a.peer, stop_rx));
        }
        let fields: serde_json::Value =
            serde_json::from_str(&c.lead.lead.fields).unwrap_or(serde_json::Value::Null);
        let view = CallView {
            call_id: c.attempt_id.unwrap_or(0),
            campaign: self.campaign.name.clone(),
            phone: c.lead.lead.phone.clone(),
            lead: fields,
            connected_at: now,
            ended_at: None,
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
        drop(self.agent_state(&name, AgentState::OnCall, None, now));
        self.session_update(&name, |s| {
            s.state = "on_call";
            s.since = now;
            s.call = Some(view.clone());
        });
        self.shared.emit(ServiceEvent {
            agent: Some(name),
            campaign: self.campaign.name.clone(),
            kind: "call",
            data: serde_json::to_value(&view).unwrap_or_default(),
        });
    }

    fn record(&mut self, r: Record, now: i64) {
        match r {
            Record::HumanAnswer { call, .. } => {
                self.counters.human_answers += 1;
                let attempt_id = self.calls.get(&call).and_then(|c| c.attempt_id);
                self.write(Write::Ledger {
                    campaign_id: self.campaign_id,
                    attempt_id,
                    kind: LedgerKind::HumanAnswer,
                    at: now,
                });
            }
            Record::Connected { .. } => {}
            Record::Abandoned { call, .. } => {
                self.counters.abandons += 1;
                let attempt_id = self.calls.get(&call).and_then(|c| c.attempt_id);
                let ack = self.write_acked(Write::Ledger {
                    campaign_id: self.campaign_id,
                    attempt_id,
                    kind: LedgerKind::Abandon,
                    at: now,
                });
                self.pending_abandon_ack = Some(ack);
            }
            Record::AttemptEnded { call, outcome, .. } => {
                *self
                    .counters
                    .outcomes
                    .entry(outcome.code().to_string())
                    .or_default() += 1;
                let Some(c) = self.calls.get_mut(&call) else {
                    return;
                };
                c.outcome = Some(outcome);
                if outcome == Outcome::Connected
                    && let Some(agent) = c.agent.clone()
                {
                    if let Some(a) = self.agents.get_mut(&agent)
                        && a.state == AState::OnCall(call)
                    {
                        a.state = AState::WrapUp;
                    }
                    drop(self.agent_state(&agent, AgentState::Wrapup, None, now));
                    let mut ended_view = None;
                    self.session_update(&agent, |s| {
                        s.state = "wrapup";
                        s.since = now;
                        if let Some(v) = s.call.as_mut() {
                            v.ended_at = Some(now);
                            ended_view = Some(v.call_id);
                        }
                    });
                    self.shared.emit(ServiceEvent {
                        agent: Some(agent),
                        campaign: self.campaign.name.clone(),
                        kind: "call_ended",
                        data: serde_json::json!({ "call_id": ended_view, "ended_at": now }),
                    });
                }
                self.try_finish(call);
            }
        }
    }

    /// Writes the attempt's end once the runner's outcome, the SIP summary
    /// and the attempt id are all known.
    fn try_finish(&mut self, call: CallId) {
        let ready = self
            .calls
            .get(&call)
            .is_some_and(|c| c.outcome.is_some() && c.summary.is_some() && c.attempt_id.is_some());
        if !ready {
            return;
        }
        let Some(c) = self.calls.remove(&call) else {
            return;
        };
        let (Some(outcome), Some(summary), Some(attempt_id)) = (c.outcome, c.summary, c.attempt_id)
        else {
            return;
        };
        let now = self.now_ms();
        let outcome = if c.interrupted && outcome != Outcome::Connected {
            Outcome::Interrupted
        } else {
            outcome
        };
        // The lead with this attempt in its history.
        let this = PastAttempt {
            started_at: Millis(c.started_at),
            ended_at: Some(Millis(now)),
            outcome: Some(outcome),
        };
        let next = c
            .lead
            .lead
            .record(c.lead.history.iter().copied().chain([this]), Millis(now))
            .map(|mut r| {
                r.attempts = r.attempts.saturating_add(1);
                policy::after_attempt(&self.campaign, &r, outcome, Millis(now))
            })
            // A number that no longer reads as valid: nothing more to do.
            .unwrap_or(NextAttempt::Done);
        let (status, next) = match next {
            NextAttempt::Done => (LeadStatus::Done, None),
            NextAttempt::At(t) => (LeadStatus::Retry, Some(t.ms())),
        };
        self.write(Write::FinishAttempt(
            attempt_id,
            AttemptEnd {
                answered_at: c.answered_at,
                connected_at: c.connected_at,
                ended_at: now,
                outcome: outcome.code().to_string(),
                sip_code: summary.final_code.map(i64::from),
                sip_codes: (!summary.codes.is_empty()).then(|| {
                    let codes: Vec<String> = summary.codes.iter().map(u16::to_string).collect();
                    codes.join(",")
                }),
                agent_id: c.agent,
                lead_status: status.code().to_string(),
                next_attempt_at: next,
            },
        ));
    }

    fn publish(&mut self) {
        let now = self.now_ms();
        while self
            .counters
            .recent_dials
            .front()
            .is_some_and(|&t| t < now - 5000)
        {
            self.counters.recent_dials.pop_front();
        }
        let s = self.runner.status();
        let rate = if s.window_human_answers == 0 {
            0.0
        } else {
            100.0 * s.window_abandons as f64 / s.window_human_answers as f64
        };
        self.shared.board.publish(CampaignLive {
            name: self.campaign.name.clone(),
            at_ms: now,
            agents_ready: s.ready,
            agents_on_call: s.on_call,
            agents_wrap_up: s.wrap_up,
            agents_paused: s.not_ready,
            calls_ringing: s.ringing,
            calls_waiting: s.waiting,
            dial_level: s.dial_level,
            window_human_answers: s.window_human_answers,
            window_abandons: s.window_abandons,
            window_rate_percent: rate,
            limit_percent: self.campaign.abandon_limit_percent,
            target_percent: self.campaign.abandon_target_percent,
            attempts: self.counters.attempts,
            human_answers: self.counters.human_answers,
            connects: self.counters.connects,
            abandons: self.counters.abandons,
            contacts: self.counters.contacts,
            conversions: self.counters.conversions,
            outcomes: self.counters.outcomes.clone(),
            calls_per_second: self.counters.recent_dials.len() as f64 / 5.0,
        });
    }
}

fn reply_after(ack: oneshot::Receiver<bool>, reply: Reply) {
    tokio::spawn(async move {
        let ok = ack.await.unwrap_or(false);
        let _ = reply.send(if ok {
            Ok(())
        } else {
            Err((500, "internal error".into()))
        });
    });
}

fn media_addr(m: Option<sdp::Media>) -> Option<SocketAddr> {
    m.map(|m| m.addr)
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
    params: CallParams,
    mut ctrl: mpsc::UnboundedReceiver<Ctrl>,
) {
    let attempt_id = match store.start_attempt_on(&attempt, &node).await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!("writing the attempt failed, not dialling: {e}");
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
            return;
        }
    };
    let mut hung_up = false;
    loop {
        tokio::select! {
            ev = handle.next_event() => match ev {
                Some(CallEvent::Answered { media, headers, .. }) => {
                    let _ = me.send(Input::Answered { call, media: media_addr(media), at: Instant::now(), headers });
                }
                Some(CallEvent::Progress { .. }) => {}
                Some(CallEvent::Ended(summary)) => {
                    // SIP response latency: INVITE to the first response.
                    if let Some(after) = summary.first_response_after {
                        crate::metrics::record_sip_response(after.as_secs_f64());
                    }
                    let _ = me.send(Input::Ended { call, summary });
                    return;
                }
                None => {
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

fn failed_summary() -> Summary {
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
    }
}

/// An agent's standing leg: call the phone, report it up, hold until told
/// to hang up or the phone hangs up.
async fn agent_leg(
    shared: Arc<Shared>,
    me: mpsc::UnboundedSender<Input>,
    agent: String,
    target: crate::sip::Target,
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
    let ua = match shared.agent_ua(target.addr).await {
        Ok(ua) => ua,
        Err(e) => return fail(e.to_string(), reply),
    };
    let sock = match UdpSocket::bind(SocketAddr::new(ip, 0)).await {
        Ok(s) => Arc::new(s),
        Err(e) => return fail(e.to_string(), reply),
    };
    let local_media = match sock.local_addr() {
        Ok(a) => a,
        Err(e) => return fail(e.to_string(), reply),
    };
    let params = CallParams {
        target: target.uri.clone(),
        from_user: "dialler".into(),
        ring_timeout: RingTimeout::default(),
        credentials: None,
        media_addr: local_media,
        max_talk: None,
    };
    let mut handle = match ua.call(params).await {
        Ok(h) => h,
        Err(e) => return fail(e.to_string(), reply),
    };
    let (hang_tx, mut hang_rx) = mpsc::unbounded_channel();
    let mut reply = Some(reply);
    loop {
        tokio::select! {
            ev = handle.next_event() => match ev {
                Some(CallEvent::Answered { media, .. }) => {
                    if let Some(r) = reply.take() {
                        let _ = me.send(Input::LegUp {
                            agent: agent.clone(),
                            rtp: sock.clone(),
                            peer: media_addr(media),
                            hangup: hang_tx.clone(),
                            reply: r,
                        });
                    }
                }
                Some(CallEvent::Progress { .. }) => {}
                Some(CallEvent::Ended(_)) | None => {
                    match reply.take() {
                        Some(r) => fail("the phone did not answer".into(), r),
                        None => { let _ = me.send(Input::LegDown { agent: agent.clone() }); }
                    }
                    return;
                }
            },
            Some(()) = hang_rx.recv() => handle.hangup(),
        }
    }
}

/// Relays RTP between a customer leg and an agent's standing leg until
/// stopped. The sockets are shared (the agent's outlives the call), so this
/// is [`crate::media::relay::relay`] over `Arc`s; peers latch to the source
/// of their first packet (symmetric RTP).
async fn relay(
    customer: Arc<UdpSocket>,
    mut customer_peer: Option<SocketAddr>,
    agent: Arc<UdpSocket>,
    mut agent_peer: Option<SocketAddr>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut buf_a = vec![0u8; 2048];
    let mut buf_b = vec![0u8; 2048];
    loop {
        tokio::select! {
            _ = &mut stop => return,
            r = customer.recv_from(&mut buf_a) => {
                let Ok((n, from)) = r else { return };
                customer_peer = Some(from);
                if crate::media::rtp::Packet::parse(&buf_a[..n]).is_ok()
                    && let Some(to) = agent_peer
                {
                    let _ = agent.send_to(&buf_a[..n], to).await;
                }
            }
            r = agent.recv_from(&mut buf_b) => {
                let Ok((n, from)) = r else { return };
                agent_peer = Some(from);
                if crate::media::rtp::Packet::parse(&buf_b[..n]).is_ok()
                    && let Some(to) = customer_peer
                {
                    let _ = customer.send_to(&buf_b[..n], to).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign() -> Campaign {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns");
        crate::campaign::find(&dir, "uk-broadband").expect("sample campaign")
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
            Some(Credentials {
                username: "alice".into(),
                password: "s3cret".into()
            })
        );
    }

    #[test]
    fn a_missing_trunk_variable_means_no_credentials() {
        let c = campaign();
        let only_user = |name: &str| (name == "UK_TRUNK_USER").then(|| "alice".to_string());
        assert_eq!(trunk_credentials(&c, only_user), None);
        let mut open = c.clone();
        open.provider.username_env = None;
        open.provider.password_env = None;
        assert_eq!(trunk_credentials(&open, |_| Some("x".into())), None);
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
}
