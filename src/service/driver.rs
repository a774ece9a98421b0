//! One campaign's task: owns the [`Runner`] (and through it the ledger and
//! every agent's state), turns API requests, SIP events and claimed leads
//! into runner events on the service's clock, and carries out the runner's
//! commands. Never awaits the store or a socket in its loop: calls, agent
//! phone legs, relays and the safe-harbour player are tasks of their own
//! ([`super::calls`], [`super::agents`]) that report back on the
//! campaign's channel, and writes go through the ordered writer
//! ([`super::writer`]).
//!
//! The concerns live in rooms of their own, each an `impl Driver` block:
//! agent sessions in [`super::agents`], customer calls in
//! [`super::calls`], what is written down in [`super::records`], and
//! start-up recovery in [`super::recovery`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::records::Counters;
use super::writer::{Backlog, Job, Write};
use super::{AgentError, Shared};
use crate::campaign::Campaign;
use crate::clock::Millis;
use crate::dialer::{
    AgentId, CallId, Command, Event, LeadOwner, Runner, RunnerConfig, TrunkLimits,
};
use crate::policy;
use crate::sip::auth::Credentials;
use crate::sip::ua::Ua;
use crate::sip::uac::Summary;
use crate::store::ClaimedLead;

/// How an agent request is answered, for the HTTP layer.
pub type Reply = oneshot::Sender<Result<(), AgentError>>;

/// The phone an agent works on.
#[derive(Debug)]
pub enum Phone {
    /// A provisioned SIP phone the dialler calls.
    Sip(String),
    /// The agent's browser, its WebRTC leg already answered.
    Browser(Box<crate::media::webrtc::Softphone>),
}

/// An agent phone leg's media.
#[derive(Debug)]
pub struct LegMedia {
    /// Our RTP socket for the leg.
    pub rtp: Arc<UdpSocket>,
    /// The phone's media address.
    pub peer: Option<SocketAddr>,
    /// The G.711 law its answer chose (`None` for the browser, whose
    /// softphone speaks the customer's law itself).
    pub codec: Option<u8>,
    /// The payload type its answer maps to telephone-event, if any.
    pub events: Option<u8>,
    /// What the relay counts on the leg, for its RTCP reports (`None`:
    /// the browser, whose WebRTC stack reports itself).
    pub stats: Option<Arc<std::sync::Mutex<crate::media::rtcp::LegStats>>>,
}

/// What a campaign task is told.
#[derive(Debug)]
pub enum Input {
    /// What the campaign's other nodes did since the last sync: their
    /// ledger rows (runner ms, event), and how many nodes dial the
    /// campaign now (this one included).
    Cluster {
        /// Other nodes' human answers and abandons.
        rows: Vec<(u64, crate::compliance::ledger::Event)>,
        /// Nodes dialling the campaign.
        nodes: u32,
    },
    /// An agent logs in; the dialler calls the phone (or takes the
    /// browser's softphone) and keeps the leg up.
    Login {
        /// Agent id.
        agent: String,
        /// The agent's phone.
        phone: Phone,
        /// Answered once the phone answered (or failed).
        reply: Reply,
    },
    /// The agent's phone answered.
    LegUp {
        /// Agent id.
        agent: String,
        /// The leg's media.
        media: LegMedia,
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
    /// The agent sends DTMF digits to the customer (checked).
    SendDtmf {
        /// Agent id.
        agent: String,
        /// The digits.
        digits: String,
        /// Answer.
        reply: Reply,
    },
    /// The customer pressed a key (an RFC 4733 event on the call's RTP).
    DtmfHeard {
        /// The call.
        call: CallId,
        /// The digit.
        digit: char,
    },
    /// The called party of an abandoned call pressed a key during the
    /// message: an opt-out (which key is not kept).
    OptOutKey {
        /// The call's attempt.
        attempt_id: i64,
        /// Its number, masked for the log.
        phone: String,
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
    /// A call could not be started (its attempt row was not written).
    StartFailed {
        /// Runner call.
        call: CallId,
    },
    /// The callee's phone rings (a 180 or 183 came).
    Ringing {
        /// Runner call.
        call: CallId,
    },
    /// The callee answered.
    Answered {
        /// Runner call.
        call: CallId,
        /// Their media (address and the codec their answer chose).
        media: Option<crate::sip::sdp::Media>,
        /// When the 200 arrived (real time, for the bridge latency).
        at: Instant,
        /// The 200 OK's headers (the provider's answering-machine verdict).
        headers: crate::sip::message::Headers,
    },
    /// The callee's side offered a new session (hold, resume, new address).
    MediaChanged {
        /// Runner call.
        call: CallId,
        /// Its media as offered.
        media: crate::sip::sdp::Media,
    },
    /// The call is over on the SIP side.
    Ended {
        /// Runner call.
        call: CallId,
        /// How.
        summary: Summary,
    },
    /// A supervisor changed the campaign's controls (here or on another
    /// node); applied unless this version was already.
    Controls(crate::controls::Controls),
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
    /// The address SDP advertises for RTP behind NAT (`--external-address`).
    pub external_ip: Option<IpAddr>,
}

/// What the driver holds of a logged-in agent: its name, the runner's id
/// for it, its phone leg, and the pause reason that applies when a pause
/// asked for during a call takes effect. Its state is the runner's.
pub(super) struct AgentIo {
    pub(super) id: AgentId,
    pub(super) rtp: Option<Arc<UdpSocket>>,
    pub(super) peer: Option<SocketAddr>,
    /// The law the phone's SDP chose (see [`Input::LegUp`]).
    pub(super) codec: Option<u8>,
    /// Its telephone-event payload type, if any.
    pub(super) events: Option<u8>,
    /// What the relays count on the leg (its RTCP session reports it).
    pub(super) stats: Option<Arc<std::sync::Mutex<crate::media::rtcp::LegStats>>>,
    pub(super) leg_hangup: Option<mpsc::UnboundedSender<()>>,
    pub(super) pause_reason: Option<String>,
    /// A request waiting for the agent's next state write.
    pub(super) reply: Option<Reply>,
}

/// Reasons the runner is told to stop launching calls; it dials while
/// none holds.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Holds {
    /// Shutting down.
    pub(super) stopping: bool,
    /// The store is behind (see [`Backlog`]).
    pub(super) backlog: bool,
    /// A supervisor paused or stopped the campaign.
    pub(super) controlled: bool,
}

/// The campaign task's state.
pub struct Driver {
    pub(super) campaign: Arc<Campaign>,
    pub(super) campaign_id: i64,
    pub(super) shared: Arc<Shared>,
    pub(super) ua: Arc<Ua>,
    pub(super) writes: Backlog,
    pub(super) me: mpsc::UnboundedSender<Input>,
    pub(super) settings: Settings,
    pub(super) runner: Runner,
    pub(super) agents: HashMap<String, AgentIo>,
    pub(super) by_id: HashMap<AgentId, String>,
    pub(super) next_agent: AgentId,
    pub(super) hopper: HashMap<i64, ClaimedLead>,
    pub(super) calls: HashMap<CallId, super::calls::CallCtx>,
    pub(super) counters: Counters,
    pub(super) holds: Holds,
    /// When the grace period ends (then, when the forced hang-ups have
    /// had their chance).
    pub(super) stop_at: Option<tokio::time::Instant>,
    pub(super) hung_up_at_shutdown: u64,
    pub(super) prompt: Arc<Vec<i16>>,
    /// When each answered call's 200 arrived, until it is bridged.
    pub(super) answer_instants: HashMap<CallId, Instant>,
    /// The durability of the last abandon, for the safe-harbour player.
    pub(super) pending_abandon_ack: Option<oneshot::Receiver<bool>>,
    /// Host part of Request-URIs: the provider's address.
    /// The provider, for each call's Request-URI.
    pub(super) provider: crate::sip::resolve::SipUri,
    /// The trunk's digest credentials, from the environment.
    pub(super) credentials: Option<Credentials>,
    /// The supervisors' controls in force.
    pub(super) controls: crate::controls::Controls,
}

impl Driver {
    /// A driver for a campaign, its runner starting from the ledger and
    /// the history [`super::recovery::recover`] read from the store.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        campaign: Arc<Campaign>,
        campaign_id: i64,
        shared: Arc<Shared>,
        ua: Arc<Ua>,
        writer: mpsc::Sender<Job>,
        me: mpsc::UnboundedSender<Input>,
        settings: Settings,
        recovered: super::recovery::Recovered,
        provider: crate::sip::resolve::SipUri,
        prompt: Option<Vec<i16>>,
        credentials: Option<Credentials>,
    ) -> Driver {
        let mut config = RunnerConfig::from_campaign(&campaign);
        config.trunk = Some(TrunkLimits {
            cps: campaign.provider.cps,
            channels: campaign.provider.max_channels,
        });
        config.agent_records = true;
        let controls = recovered.controls;
        let effective = controls.effective(&campaign);
        config.max_dial_level = effective.max_dial_level;
        config.target_percent = effective.target_percent;
        let mut runner = Runner::new(config, &campaign.strategy);
        runner.restore_ledger(recovered.ledger);
        runner.learn(&recovered.history.attempts, &recovered.history.handles);
        let prompt = Arc::new(prompt.unwrap_or_else(|| {
            crate::media::wav::generated_prompt(policy::safe_harbour(&campaign).as_secs_f64())
        }));
        Driver {
            campaign,
            campaign_id,
            shared,
            ua,
            writes: Backlog::new(writer),
            me,
            settings,
            runner,
            agents: HashMap::new(),
            by_id: HashMap::new(),
            next_agent: 0,
            hopper: HashMap::new(),
            calls: HashMap::new(),
            counters: Counters::default(),
            holds: Holds {
                controlled: !effective.dialling,
                ..Holds::default()
            },
            stop_at: None,
            hung_up_at_shutdown: 0,
            prompt,
            answer_instants: HashMap::new(),
            pending_abandon_ack: None,
            provider,
            credentials,
            controls,
        }
    }

    /// Now, on the service's clock.
    pub(super) fn now(&self) -> Millis {
        self.shared.clock.now()
    }

    /// Feeds the runner an event that happens now.
    pub(super) fn event(&mut self, e: Event) {
        let now = self.now().runner_ms();
        self.runner.handle_event(now, e);
    }

    /// Queues a write.
    pub(super) fn write(&mut self, w: Write) {
        self.writes.push((w, None));
    }

    /// Queues a write and returns its acknowledgement.
    pub(super) fn write_acked(&mut self, w: Write) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        self.writes.push((w, Some(tx)));
        rx
    }

    /// Tells the runner whether it may launch calls, from the holds.
    pub(super) fn apply_holds(&mut self) {
        let dial = !self.holds.stopping && !self.holds.backlog && !self.holds.controlled;
        self.event(Event::Dialling(dial));
    }

    /// Runs until shutdown has finished; returns how many calls were hung
    /// up when the grace period ran out.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Input>) -> u64 {
        let mut publish = tokio::time::interval(Duration::from_secs(1));
        publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Nobody is logged in at start: the runner asks for leads at its
        // first decision. A campaign a supervisor left paused or stopped
        // starts held.
        self.apply_holds();
        loop {
            let wake = self
                .runner
                .poll_timeout()
                .map(|ms| self.shared.clock.instant_of(Millis::from_runner_ms(ms)));
            let stop_at = self.stop_at;
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
                    let now = self.now().runner_ms();
                    self.runner.handle_timeout(now);
                }
                () = self.writes.flush() => {}
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
            // A store that falls behind holds dialling until it catches up.
            if self.writes.is_high() && !self.holds.backlog {
                tracing::warn!(
                    campaign = %self.campaign.name,
                    waiting = self.writes.len(),
                    "the store is behind: dialling held"
                );
                self.holds.backlog = true;
                self.apply_holds();
                self.drain();
            } else if self.holds.backlog && self.writes.is_low() {
                self.holds.backlog = false;
                self.apply_holds();
                self.drain();
            }
            // Agents finishing a call or its wrap-up keep the campaign up
            // (within the grace period) so their dispositions are recorded.
            if self.holds.stopping && self.calls.is_empty() && !self.any_agent_busy() {
                break;
            }
        }
        self.wind_down().await;
        self.hung_up_at_shutdown
    }

    /// Carries out the runner's commands.
    pub(super) fn drain(&mut self) {
        while let Some(cmd) = self.runner.poll_command() {
            let now = self.now();
            match cmd {
                Command::Dial { call, lead } => self.dial(call, lead as i64, now),
                Command::Cancel { call } | Command::Hangup { call } => self.hang_up(call),
                Command::Bridge { call, agent } => self.bridge(call, agent, now),
                Command::PlaySafeHarbour { call } => self.play_safe_harbour(call),
                Command::NeedLeads(n) => self.claim_leads(n),
                Command::Record(r) => self.record(r, now),
            }
        }
    }

    fn input(&mut self, input: Input) {
        match input {
            Input::Cluster { rows, nodes } => {
                for (at, event) in rows {
                    self.runner.record_remote(at, event);
                }
                self.runner.set_nodes(nodes);
            }
            Input::Login {
                agent,
                phone,
                reply,
            } => self.login(agent, phone, reply),
            Input::LegUp {
                agent,
                media,
                hangup,
                reply,
            } => self.leg_up(agent, media, hangup, reply),
            Input::LegFailed { agent, why, reply } => self.leg_failed(&agent, why, reply),
            Input::LegDown { agent } => self.leg_down(&agent),
            Input::Ready { agent, reply } => self.ready(&agent, reply),
            Input::Pause {
                agent,
                reason,
                reply,
            } => self.pause(&agent, reason, reply),
            Input::Logout { agent, reply } => self.logout(&agent, Some(reply)),
            Input::Hangup { agent, reply } => self.agent_hangup(&agent, reply),
            Input::SendDtmf {
                agent,
                digits,
                reply,
            } => self.send_dtmf(&agent, digits, reply),
            Input::DtmfHeard { call, digit } => self.dtmf_heard(call, digit),
            Input::OptOutKey { attempt_id, phone } => self.opt_out_key(attempt_id, &phone),
            Input::WrapUpDone {
                agent,
                contact,
                conversion,
            } => self.wrap_up_done(&agent, contact, conversion),
            Input::Leads(leads) => self.leads(leads),
            Input::Started { call, attempt_id } => self.started(call, attempt_id),
            Input::StartFailed { call } => self.start_failed(call),
            Input::Ringing { call } => {
                self.event(Event::CallRinging { call });
                self.drain();
            }
            Input::Answered {
                call,
                media,
                at,
                headers,
            } => self.answered(call, media, at, headers),
            Input::MediaChanged { call, media } => self.media_changed(call, media),
            Input::Ended { call, summary } => self.ended(call, summary),
            Input::Controls(c) => self.apply_controls(c),
            Input::Shutdown => {
                if !self.holds.stopping {
                    self.holds.stopping = true;
                    self.apply_holds();
                    self.stop_at = Some(tokio::time::Instant::now() + self.settings.grace);
                }
            }
        }
    }

    /// The grace period is over: wrap-ups still open are cut, calls still
    /// up are hung up, and what has not come back a few seconds later is
    /// closed without SIP.
    fn force_end(&mut self) {
        self.cut_wrap_ups();
        self.stop_at = Some(tokio::time::Instant::now() + Duration::from_secs(5));
        self.hung_up_at_shutdown += self.interrupt_calls();
    }

    /// Logs everyone out, gives back unused claims and flushes the writes.
    async fn wind_down(&mut self) {
        self.log_everyone_out();
        let rx = self.write_acked(Write::Release {
            campaign_id: self.campaign_id,
            node: self.settings.node.clone(),
        });
        self.writes.drain().await;
        let _ = rx.await;
        self.publish();
        // Let the agent legs' BYEs go out.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    /// Applies a supervisor's change of the campaign's controls (a newer
    /// version than the one in force): the run state becomes a hold, the
    /// cap and target go to the runner, and a stop gives the hopper's
    /// leads back to the store for other nodes (or a later start).
    fn apply_controls(&mut self, c: crate::controls::Controls) {
        if c.version <= self.controls.version {
            return;
        }
        let was_stopped = self.controls.state == crate::controls::RunState::Stopped;
        let lists_changed = self.controls.lists != c.lists;
        let e = c.effective(&self.campaign);
        tracing::info!(
            campaign = %self.campaign.name,
            state = c.state.as_str(),
            max_dial_level = e.max_dial_level,
            target_percent = e.target_percent,
            by = %c.updated_by,
            "campaign controls applied"
        );
        if let Some(h) = self.shared.campaigns.get(&self.campaign.name)
            && let Ok(mut held) = h.controls.lock()
            && held.version < c.version
        {
            *held = c.clone();
        }
        self.controls = c;
        self.holds.controlled = !e.dialling;
        self.apply_holds();
        self.event(Event::Settings {
            max_dial_level: e.max_dial_level,
            target_percent: e.target_percent,
        });
        // Stopped, or dialling other lists: the hopper's leads go back
        // (the next claims come from the lists now chosen).
        let stopped = self.controls.state == crate::controls::RunState::Stopped;
        if (stopped && !was_stopped) || (lists_changed && !stopped) {
            self.give_back_hopper();
        }
        self.publish();
    }

    /// Empties the hopper (the runner's and ours) and gives those leads'
    /// claims back in the store. Only the hopper's: a lead already handed
    /// to a call task may be having its attempt written, and stays ours.
    fn give_back_hopper(&mut self) {
        self.event(Event::ReleaseLeads);
        let ids: Vec<i64> = self.hopper.drain().map(|(id, _)| id).collect();
        for lead_id in ids {
            self.release_lead(lead_id);
        }
    }

    /// Asks the store for up to `n` leads; they come back as
    /// [`Input::Leads`]. A stopped campaign claims none (it answers
    /// with none, a while later).
    fn claim_leads(&mut self, n: u32) {
        if self.controls.state == crate::controls::RunState::Stopped {
            let me = self.me.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let _ = me.send(Input::Leads(Vec::new()));
            });
            return;
        }
        let store = self.shared.store.clone();
        let me = self.me.clone();
        let id = self.campaign_id;
        let node = self.settings.node.clone();
        let lease = crate::clock::duration_ms(self.settings.lease);
        let grace = crate::clock::duration_ms(self.campaign.callback_grace);
        let clock = self.shared.clock.clone();
        tokio::spawn(async move {
            let leads = match store
                .claim_leads(id, &node, n, clock.now().ms(), lease, grace)
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

    fn leads(&mut self, mut leads: Vec<ClaimedLead>) {
        // Claimed before a stop: given back, not held.
        if self.controls.state == crate::controls::RunState::Stopped {
            for l in leads.drain(..) {
                self.release_lead(l.lead.id);
            }
        }
        let infos = leads
            .iter()
            .map(|l| crate::dialer::LeadInfo {
                id: l.lead.id as u64,
                foresight: None,
                owner: l.kept_for.as_ref().map(|(agent, until)| LeadOwner {
                    agent: self.agent_id(agent),
                    until_ms: *until as u64,
                }),
            })
            .collect();
        for l in leads {
            self.hopper.insert(l.lead.id, l);
        }
        self.event(Event::Leads(infos));
    }
}
