//! The tokio driver of [`Endpoint`]: one task owns the socket (UDP, or one
//! TCP connection to the provider) and the endpoint, turns arrivals and
//! timers into `handle_*` calls, and sends what `poll_transmit` gives.
//!
//! Callers talk to the task through [`Ua`] and [`CallHandle`]; each call's
//! events arrive on its own channel. Nothing here decides anything about a
//! call: that is `uac`'s job.

use std::collections::HashMap;
use std::future::pending;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::message::{self, Message};
use super::uac::{
    CallEvent, CallId, CallParams, Endpoint, EndpointConfig, EndpointStats, Summary, Timers,
};
use super::{SipError, Transport};

/// Where and how the UA talks to its provider.
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// The provider (all requests go there: it is our outbound proxy).
    pub provider: SocketAddr,
    /// UDP or TCP.
    pub transport: Transport,
    /// Local address to bind (port 0 for any).
    pub bind: SocketAddr,
    /// RFC 3261 timers.
    pub timers: Timers,
}

impl UaConfig {
    /// Defaults for a provider: bind the unspecified address, default timers.
    pub fn new(provider: SocketAddr, transport: Transport) -> UaConfig {
        let bind = if provider.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        UaConfig {
            provider,
            transport,
            bind,
            timers: Timers::default(),
        }
    }
}

enum Cmd {
    Call(
        Box<CallParams>,
        mpsc::UnboundedSender<CallEvent>,
        oneshot::Sender<CallId>,
    ),
    Hangup(CallId),
    Shutdown,
}

/// A running SIP user agent.
pub struct Ua {
    cmds: mpsc::UnboundedSender<Cmd>,
    local: SocketAddr,
    task: Option<JoinHandle<EndpointStats>>,
}

/// One call placed through a [`Ua`].
pub struct CallHandle {
    id: CallId,
    events: mpsc::UnboundedReceiver<CallEvent>,
    cmds: mpsc::UnboundedSender<Cmd>,
}

impl CallHandle {
    /// The call's id.
    pub fn id(&self) -> CallId {
        self.id
    }

    /// The next event; `None` once the UA has stopped.
    pub async fn next_event(&mut self) -> Option<CallEvent> {
        self.events.recv().await
    }

    /// CANCEL before an answer, BYE after.
    pub fn hangup(&self) {
        let _ = self.cmds.send(Cmd::Hangup(self.id));
    }

    /// Waits for the end of the call, skipping other events.
    pub async fn ended(mut self) -> Result<Summary, SipError> {
        while let Some(e) = self.events.recv().await {
            if let CallEvent::Ended(s) = e {
                return Ok(s);
            }
        }
        Err(SipError::Stopped)
    }
}

enum Io {
    Udp(UdpSocket),
    Tcp {
        write: OwnedWriteHalf,
        read: mpsc::UnboundedReceiver<Option<Message>>,
    },
}

enum Arrival {
    Bytes(usize),
    Msg(Message),
    Refused,
    Closed,
    Error(std::io::Error),
}

impl Ua {
    /// Binds (UDP) or connects (TCP) and starts the UA task. A TCP provider
    /// that refuses the connection gives [`SipError::Refused`].
    pub async fn start(cfg: UaConfig) -> Result<Ua, SipError> {
        let (io, local) = match cfg.transport {
            Transport::Udp => {
                let sock = UdpSocket::bind(cfg.bind).await?;
                // Connected: the kernel reports ICMP port-unreachable to us
                // (ECONNREFUSED) and drops datagrams from anyone else.
                sock.connect(cfg.provider).await?;
                let local = sock.local_addr()?;
                (Io::Udp(sock), local)
            }
            Transport::Tcp => {
                let stream =
                    tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(cfg.provider))
                        .await
                        .map_err(|_| SipError::Refused(cfg.provider))?
                        .map_err(|_| SipError::Refused(cfg.provider))?;
                stream.set_nodelay(true)?;
                let local = stream.local_addr()?;
                let (mut read_half, write) = stream.into_split();
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(async move {
                    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
                    let mut chunk = vec![0u8; 16 * 1024];
                    loop {
                        match read_half.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        loop {
                            match message::parse(&buf, true) {
                                Ok((m, used)) => {
                                    buf.drain(..used);
                                    if tx.send(Some(m)).is_err() {
                                        return;
                                    }
                                }
                                Err(SipError::Incomplete) => break,
                                Err(e) => {
                                    // A stream cannot resynchronise after a
                                    // bad frame: drop the connection.
                                    tracing::warn!("bad SIP over TCP, closing: {e}");
                                    let _ = tx.send(None);
                                    return;
                                }
                            }
                        }
                    }
                    let _ = tx.send(None);
                });
                (Io::Tcp { write, read: rx }, local)
            }
        };
        let endpoint = Endpoint::new(EndpointConfig {
            local,
            transport: cfg.transport,
            timers: cfg.timers,
            seed: rand::random(),
        });
        let (cmds, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(drive(endpoint, io, rx));
        Ok(Ua {
            cmds,
            local,
            task: Some(task),
        })
    }

    /// Our address as the provider sees it.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Places a call.
    pub async fn call(&self, params: CallParams) -> Result<CallHandle, SipError> {
        let (etx, events) = mpsc::unbounded_channel();
        let (itx, irx) = oneshot::channel();
        self.cmds
            .send(Cmd::Call(Box::new(params), etx, itx))
            .map_err(|_| SipError::Stopped)?;
        let id = irx.await.map_err(|_| SipError::Stopped)?;
        Ok(CallHandle {
            id,
            events,
            cmds: self.cmds.clone(),
        })
    }

    /// Stops the task (live calls are dropped without BYE) and returns the
    /// endpoint's counters.
    pub async fn shutdown(mut self) -> EndpointStats {
        let _ = self.cmds.send(Cmd::Shutdown);
        match self.task.take() {
            Some(t) => t.await.unwrap_or_default(),
            None => EndpointStats::default(),
        }
    }
}

impl Drop for Ua {
    fn drop(&mut self) {
        let _ = self.cmds.send(Cmd::Shutdown);
    }
}

async fn arrival(io: &mut Io, buf: &mut [u8]) -> Arrival {
    match io {
        Io::Udp(s) => match s.recv(buf).await {
            Ok(n) => Arrival::Bytes(n),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Arrival::Refused,
            Err(e) => Arrival::Error(e),
        },
        Io::Tcp { read, .. } => match read.recv().await {
            Some(Some(m)) => Arrival::Msg(m),
            Some(None) | None => Arrival::Closed,
        },
    }
}

async fn send(io: &mut Io, bytes: &[u8]) -> std::io::Result<()> {
    match io {
        Io::Udp(s) => s.send(bytes).await.map(|_| ()),
        Io::Tcp { write, .. } => write.write_all(bytes).await,
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

async fn drive(
    mut ep: Endpoint,
    mut io: Io,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
) -> EndpointStats {
    let mut listeners: HashMap<CallId, mpsc::UnboundedSender<CallEvent>> = HashMap::new();
    let mut buf = vec![0u8; message::MAX_MESSAGE];
    let mut closed = false;
    loop {
        let deadline = ep.poll_timeout().map(tokio::time::Instant::from_std);
        let mut received_at = None;
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                None | Some(Cmd::Shutdown) => break,
                Some(Cmd::Call(params, events, reply)) => {
                    let id = ep.start_call(now(), *params);
                    listeners.insert(id, events);
                    let _ = reply.send(id);
                    if closed {
                        ep.handle_unreachable(now());
                    }
                }
                Some(Cmd::Hangup(id)) => ep.hangup(now(), id),
            },
            a = arrival(&mut io, &mut buf), if !closed => {
                let at = now();
                received_at = Some(Instant::now());
                match a {
                    Arrival::Bytes(n) => {
                        if let Err(e) = ep.handle_bytes(at, &buf[..n]) {
                            tracing::debug!("dropped a bad datagram: {e}");
                        }
                    }
                    Arrival::Msg(m) => ep.handle_message(at, m),
                    Arrival::Refused => ep.handle_unreachable(at),
                    Arrival::Closed => {
                        tracing::warn!("provider closed the TCP connection");
                        closed = true;
                        ep.handle_unreachable(at);
                    }
                    Arrival::Error(e) => tracing::warn!("SIP socket: {e}"),
                }
            },
            () = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => pending().await,
                }
            } => ep.handle_timeout(now()),
        }
        while let Some(bytes) = ep.poll_transmit() {
            if let Err(e) = send(&mut io, &bytes).await {
                if e.kind() == std::io::ErrorKind::ConnectionRefused {
                    ep.handle_unreachable(now());
                } else {
                    tracing::warn!("SIP send: {e}");
                }
            }
        }
        let sent_at = Instant::now();
        while let Some((id, mut ev)) = ep.poll_event() {
            if let CallEvent::Answered { ack_latency, .. } = &mut ev {
                *ack_latency =
                    received_at.map_or(Duration::ZERO, |r| sent_at.saturating_duration_since(r));
            }
            let end = matches!(ev, CallEvent::Ended(_));
            if let Some(l) = listeners.get(&id) {
                let _ = l.send(ev);
            }
            if end {
                listeners.remove(&id);
            }
        }
    }
    ep.stats()
}

/// The result of [`call_once`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct CallReport {
    /// How the call went.
    #[serde(flatten)]
    pub summary: Summary,
    /// 200 OK arrival to ACK sent.
    #[serde(with = "opt_ms")]
    pub ack_latency: Option<Duration>,
    /// RTP packets of the prompt sent, when one was played.
    pub prompt_packets: Option<u32>,
}

mod opt_ms {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_secs_f64() * 1000.0)),
            None => s.serialize_none(),
        }
    }
}

/// Places one call (`dialler sip call`). An RTP socket is bound for the SDP
/// offer; with `play` (seconds), the generated safe-harbour prompt is
/// played once answered and the call is then hung up.
pub async fn call_once(
    target: &super::Target,
    mut params: CallParams,
    play: Option<f64>,
) -> Result<CallReport, SipError> {
    let ua = Ua::start(UaConfig::new(target.addr, target.transport)).await?;
    let rtp = UdpSocket::bind(SocketAddr::new(ua.local_addr().ip(), 0)).await?;
    params.media_addr = rtp.local_addr()?;
    let mut call = ua.call(params).await?;
    let mut ack_latency = None;
    let mut prompt_packets = None;
    let summary = loop {
        match call.next_event().await {
            Some(CallEvent::Answered {
                media,
                ack_latency: a,
                ..
            }) => {
                ack_latency = Some(a);
                if let (Some(secs), Some(m)) = (play, media) {
                    let codec = m.codec().unwrap_or(crate::sip::sdp::PT_PCMU);
                    let prompt = crate::media::wav::generated_prompt(secs);
                    match crate::media::player::play(&rtp, m.addr, &prompt, codec).await {
                        Ok(p) => prompt_packets = Some(p.packets),
                        Err(e) => tracing::warn!("prompt: {e}"),
                    }
                    call.hangup();
                }
            }
            Some(CallEvent::Ended(s)) => break s,
            Some(CallEvent::Progress { .. } | CallEvent::MediaChanged { .. }) => {}
            None => return Err(SipError::Stopped),
        }
    };
    ua.shutdown().await;
    Ok(CallReport {
        summary,
        ack_latency,
        prompt_packets,
    })
}
