//! The tokio driver of [`Endpoint`]: one task owns the transport and the
//! endpoint, turns arrivals and timers into `handle_*` calls, and sends
//! what `poll_transmit_to` gives, to the destination it names.
//!
//! UDP is one unconnected socket, so in-dialog requests from any address
//! of the trunk arrive; port-unreachable errors come back through the
//! socket's error queue (IP_RECVERR) with the address that refused. TCP and
//! TLS keep one connection per destination, opened on first use, kept alive
//! with CRLF pings (RFC 5626 3.5.1) and opened again after a loss; TCP, and
//! TLS given a certificate, also listen on the advertised port for
//! requests the peer opens a connection for (at most
//! [`UaConfig::max_accepted`] such connections at once). Callers talk to
//! the task through [`Ua`] and [`CallHandle`]; each call's events arrive
//! on its own channel. Nothing here decides anything about a call: that is
//! `uac`'s job.

use std::collections::HashMap;
use std::future::pending;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::auth::Credentials;
use super::message::{self, Message};
use super::register::{RegState, RegisterConfig, Registration};
use super::resolve::{Resolved, Resolver, SipUri, Weighted};
use super::tls::TlsClient;
use super::uac::{
    CallEvent, CallId, CallParams, Endpoint, EndpointConfig, EndpointStats, LegIds, LegRecord,
    Summary, Timers, leg_record,
};
use super::{SipError, Transport};

/// Where and how the UA talks to its provider.
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// The provider's first address (the default peer: our outbound proxy).
    pub provider: SocketAddr,
    /// Every address to try, in order (RFC 3263); empty: `provider` only.
    pub destinations: Vec<SocketAddr>,
    /// The SRV targets behind `destinations`, with priority and weight:
    /// each call draws its own order from them (RFC 2782). Empty:
    /// `destinations` in their order.
    pub choices: Vec<Weighted>,
    /// UDP, TCP or TLS.
    pub transport: Transport,
    /// Local address to bind (port 0 for any).
    pub bind: SocketAddr,
    /// The address the provider sees us at, behind NAT: Via, Contact and
    /// SDP carry it instead of the local one.
    pub external: Option<IpAddr>,
    /// RFC 3261 timers.
    pub timers: Timers,
    /// TLS settings (required for [`Transport::Tls`]).
    pub tls: Option<TlsClient>,
    /// Register with the provider (its `local` and `transport` are set by
    /// [`Ua::start`]).
    pub register: Option<RegisterConfig>,
    /// Over TLS, the certificate our listening port presents
    /// ([`super::tls::server_config`]): with it the Contact names a port
    /// that accepts TLS connections, so a peer can reach us after our
    /// connection to it closed; without it the Contact names our
    /// connection's own port and the peer can only reuse that connection
    /// (RFC 5923 alias).
    pub tls_server: Option<Arc<rustls::ServerConfig>>,
    /// At most this many connections accepted on the listening port at
    /// once (TCP, TLS): a host that opens more gets them closed, and the
    /// trunk's own keep a place ([`MAX_ACCEPTED`] by default).
    pub max_accepted: usize,
    /// Of those, at most this many from one host address
    /// ([`MAX_ACCEPTED_PER_HOST`] by default), so no single host can take
    /// every place.
    pub max_accepted_per_host: usize,
    /// An accepted connection that has brought no SIP message for this
    /// long is closed ([`ACCEPTED_IDLE`] by default; keep-alive pings do
    /// not count). The peer opens a new one for its next request, as it
    /// would after any close: a connection held open and silent only
    /// keeps a place from others.
    pub accepted_idle: Duration,
}

/// How many connections the listening port keeps at once by default.
pub const MAX_ACCEPTED: usize = 256;
/// How many of them one host address may hold by default (a carrier's
/// edge needs a few: one per proxy process, say).
pub const MAX_ACCEPTED_PER_HOST: usize = 32;
/// How long an accepted connection may stay without a SIP message by
/// default (Kamailio closes idle connections after 120 s by default; a
/// little longer here, as peers that keep a flow ping within 120 s).
pub const ACCEPTED_IDLE: Duration = Duration::from_secs(300);

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
            destinations: Vec::new(),
            choices: Vec::new(),
            transport,
            bind,
            external: None,
            timers: Timers::default(),
            tls: None,
            register: None,
            tls_server: None,
            max_accepted: MAX_ACCEPTED,
            max_accepted_per_host: MAX_ACCEPTED_PER_HOST,
            accepted_idle: ACCEPTED_IDLE,
        }
    }

    /// The settings for a resolved provider: its transport, every address
    /// in order, and TLS checked against its name (with `tls_ca` trusted
    /// besides the system's roots).
    pub fn resolved(r: &Resolved, tls_ca: Option<&std::path::Path>) -> Result<UaConfig, SipError> {
        let first = *r
            .addrs
            .first()
            .ok_or_else(|| SipError::Resolve("no address to try".into()))?;
        let mut cfg = UaConfig::new(first, r.transport);
        cfg.destinations = r.addrs.clone();
        cfg.choices = r.choices.clone();
        if r.transport == Transport::Tls {
            cfg.tls = Some(TlsClient::new(&r.server_name, tls_ca)?);
        }
        Ok(cfg)
    }
}

/// Resolves a provider URI (RFC 3263) and starts a UA for it.
pub async fn start_for(
    uri: &str,
    dns: Option<SocketAddr>,
    tls_ca: Option<&std::path::Path>,
) -> Result<(Ua, Resolved), SipError> {
    let u = SipUri::parse(uri)?;
    let resolved = super::resolve::locate(dns, &u).await?;
    let cfg = UaConfig::resolved(&resolved, tls_ca)?;
    Ok((Ua::start(cfg).await?, resolved))
}

/// The least time between two lookups of a provider: a TTL of 0 (common
/// for local records) does not make the dialler ask DNS on every call.
pub const RELOOKUP_FLOOR: Duration = Duration::from_secs(30);
/// The most time between two lookups, whatever the TTL.
pub const RELOOKUP_CEILING: Duration = Duration::from_secs(3600);

/// When to look a provider up again after an answer that holds for `ttl`.
pub fn relookup_after(ttl: Duration, floor: Duration) -> Duration {
    ttl.clamp(floor, RELOOKUP_CEILING.max(floor))
}

/// Keeps `ua`'s destinations as DNS says: an RFC 3263 answer holds only
/// for its TTL, so `uri` is looked up again when the last answer runs out
/// (see [`relookup_after`]) and the UA's new calls go to the fresh
/// addresses. A failed lookup keeps the addresses there are and tries
/// again after `floor`; an answer naming another transport is not taken
/// (the UA's connections are of one transport: a restart takes it).
/// Returns when the UA stops.
pub async fn keep_resolved(
    ua: std::sync::Weak<Ua>,
    resolver: Resolver,
    uri: SipUri,
    transport: Transport,
    ttl: Duration,
    floor: Duration,
) {
    // The UA is not held while waiting or looking up: its stop ends this.
    let Some(stopped) = ua.upgrade().map(|u| u.stopped()) else {
        return;
    };
    tokio::pin!(stopped);
    let mut wait = relookup_after(ttl, floor);
    loop {
        tokio::select! {
            () = &mut stopped => return,
            () = tokio::time::sleep(wait) => {}
        }
        let answer = tokio::select! {
            () = &mut stopped => return,
            a = resolver.resolve(&uri) => a,
        };
        let Some(ua) = ua.upgrade().filter(|u| !u.is_stopped()) else {
            return;
        };
        wait = match answer {
            Ok(r) if r.transport != transport => {
                tracing::warn!(
                    host = %uri.host,
                    was = transport.via_name(),
                    now = r.transport.via_name(),
                    "the provider's DNS names another transport: kept the old one until a restart"
                );
                relookup_after(r.ttl.unwrap_or(RELOOKUP_CEILING), floor)
            }
            Ok(r) => {
                let old = ua.choices();
                // The same targets in another order (SRV draws it anew
                // each time) change nothing: the registrar stays where it
                // is.
                // A server rotating a name's A records changes nothing
                // either.
                let key = |c: &[Weighted]| {
                    let mut k: Vec<_> = c
                        .iter()
                        .map(|w| {
                            let mut addrs = w.addrs.clone();
                            addrs.sort();
                            (w.priority, w.weight, addrs)
                        })
                        .collect();
                    k.sort();
                    k
                };
                if key(&old) != key(&r.choices) {
                    tracing::info!(host = %uri.host, was = ?Weighted::draw(&old, &mut rand::rng()), now = ?r.addrs, "provider moved");
                    ua.set_destinations(r.choices);
                }
                relookup_after(r.ttl.unwrap_or(RELOOKUP_CEILING), floor)
            }
            Err(e) => {
                tracing::warn!(host = %uri.host, "looking the provider up again failed, kept its addresses: {e}");
                floor
            }
        };
    }
}

enum Cmd {
    Call(
        Box<CallParams>,
        mpsc::UnboundedSender<CallEvent>,
        oneshot::Sender<CallId>,
    ),
    Resume(
        Box<LegRecord>,
        Option<Credentials>,
        mpsc::UnboundedSender<CallEvent>,
        oneshot::Sender<CallId>,
    ),
    /// A call whose events go, tagged with its id, to a channel many calls
    /// share ([`Ua::place`]).
    Place(Box<CallParams>, mpsc::UnboundedSender<(CallId, CallEvent)>),
    Hangup(CallId),
    /// The registrar moved (DNS re-resolution).
    Registrar(Vec<SocketAddr>),
    Shutdown,
}

/// A running SIP user agent.
pub struct Ua {
    cmds: mpsc::UnboundedSender<Cmd>,
    local: SocketAddr,
    /// The endpoint's settings, for [`Ua::prepare`].
    endpoint: EndpointConfig,
    registration: Option<tokio::sync::watch::Receiver<RegState>>,
    /// Where new calls go, by priority and weight; DNS re-resolution
    /// replaces them ([`Ua::set_destinations`]).
    destinations: std::sync::RwLock<Vec<Weighted>>,
    task: Option<JoinHandle<EndpointStats>>,
    /// This host's address toward the provider (see [`Ua::host_ip`]).
    host_ip: std::net::IpAddr,
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

/// How often an idle stream connection is pinged with CRLFCRLF.
const KEEPALIVE: Duration = Duration::from_secs(30);
/// How long a TCP connect plus TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a stream connection reports to the UA task.
enum StreamEvent {
    Msg(SocketAddr, Message),
    /// A connection accepted on the TLS listening port finished its
    /// handshake (with its place among the accepted ones).
    Secured(SocketAddr, Box<dyn SipStream>, Place),
    /// The connection `id` to `addr` ended; `refused` when it never came up.
    Closed {
        addr: SocketAddr,
        id: u64,
        refused: bool,
    },
}

struct Streams {
    transport: Transport,
    tls: Option<TlsClient>,
    next_id: u64,
    conns: HashMap<SocketAddr, (u64, mpsc::UnboundedSender<Vec<u8>>)>,
    events_tx: mpsc::UnboundedSender<StreamEvent>,
    events: mpsc::UnboundedReceiver<StreamEvent>,
    listener: Option<TcpListener>,
    /// Over TLS with a listening port: the handshake accepted connections
    /// go through before they carry SIP.
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    /// Places for accepted connections (`UaConfig::max_accepted`): each
    /// holds one until it ends.
    places: Arc<Semaphore>,
    /// The same for each host address (`UaConfig::max_accepted_per_host`).
    host_places: HashMap<IpAddr, Arc<Semaphore>>,
    per_host: usize,
    /// `UaConfig::accepted_idle`.
    idle: Duration,
}

/// An accepted connection's place: one of the port's and one of its
/// host's, given back together when the connection ends.
struct Place {
    _port: OwnedSemaphorePermit,
    _host: OwnedSemaphorePermit,
}

impl Streams {
    /// Takes a connection accepted on the listening port: at once over
    /// TCP; over TLS after its handshake, done on a task of its own (a
    /// peer that stalls it holds up nothing else) and given up after
    /// [`CONNECT_TIMEOUT`].
    fn accepted(&mut self, peer: SocketAddr, stream: TcpStream) {
        let Ok(port) = self.places.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "SIP connection refused: the accepted connections are at their limit");
            return;
        };
        // Hosts holding nothing are forgotten (each connection's end gives
        // its place back, so the map stays as large as the hosts connected).
        let per_host = self.per_host;
        self.host_places
            .retain(|_, s| s.available_permits() < per_host);
        let host = self
            .host_places
            .entry(peer.ip())
            .or_insert_with(|| Arc::new(Semaphore::new(per_host)))
            .clone();
        let Ok(host) = host.try_acquire_owned() else {
            tracing::warn!(%peer, "SIP connection refused: this host holds its most accepted connections");
            return;
        };
        let place = Place {
            _port: port,
            _host: host,
        };
        let _ = stream.set_nodelay(true);
        let Some(acceptor) = self.acceptor.clone() else {
            self.adopt(peer, Box::new(stream), Some(place));
            return;
        };
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = events.send(StreamEvent::Secured(peer, Box::new(tls), place));
                }
                Ok(Err(e)) => {
                    tracing::warn!(%peer, "TLS handshake of an accepted connection failed: {e}")
                }
                Err(_) => {
                    tracing::warn!(%peer, "TLS handshake of an accepted connection timed out")
                }
            }
        });
    }

    /// Queues `bytes` on the connection to `to`, opening one if needed.
    fn send(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        let bytes = match self.conns.get(&to) {
            Some((_, tx)) => match tx.send(bytes) {
                Ok(()) => return,
                // The connection's task is gone: open a new one.
                Err(mpsc::error::SendError(bytes)) => bytes,
            },
            None => bytes,
        };
        self.next_id += 1;
        let id = self.next_id;
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(bytes);
        self.conns.insert(to, (id, tx));
        tokio::spawn(outbound(
            to,
            id,
            self.tls
                .clone()
                .filter(|_| self.transport == Transport::Tls),
            rx,
            self.events_tx.clone(),
        ));
    }

    /// Runs an established connection to (or from) `peer`.
    /// Runs an established connection to (or from) `peer`; one accepted
    /// on the listening port comes with its place and is closed when idle.
    fn adopt(&mut self, peer: SocketAddr, stream: Box<dyn SipStream>, place: Option<Place>) {
        self.next_id += 1;
        let id = self.next_id;
        let (tx, rx) = mpsc::unbounded_channel();
        self.conns.insert(peer, (id, tx));
        let events = self.events_tx.clone();
        let idle = place.as_ref().map(|_| self.idle);
        tokio::spawn(async move {
            run_stream(peer, id, stream, rx, events, idle).await;
            drop(place);
        });
    }
}

/// A byte stream a SIP connection runs over: TCP, or TLS over TCP.
trait SipStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> SipStream for T {}

/// Connects to `addr` (and completes the TLS handshake when `tls`).
async fn open(addr: SocketAddr, tls: Option<&TlsClient>) -> Result<Box<dyn SipStream>, String> {
    open_from(addr, tls).await.map(|(s, _)| s)
}

/// [`open`], also giving the connection's local address.
async fn open_from(
    addr: SocketAddr,
    tls: Option<&TlsClient>,
) -> Result<(Box<dyn SipStream>, SocketAddr), String> {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("connection refused: {e}")),
        Err(_) => return Err("connection timed out".into()),
    };
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().map_err(|e| e.to_string())?;
    let Some(t) = tls else {
        return Ok((Box::new(stream), local));
    };
    let connector = tokio_rustls::TlsConnector::from(t.config.clone());
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        connector.connect(t.server_name.clone(), stream),
    )
    .await
    {
        Ok(Ok(s)) => Ok((Box::new(s), local)),
        Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
        Err(_) => Err("TLS handshake timed out".into()),
    }
}

async fn outbound(
    addr: SocketAddr,
    id: u64,
    tls: Option<TlsClient>,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    events: mpsc::UnboundedSender<StreamEvent>,
) {
    match open(addr, tls.as_ref()).await {
        Ok(stream) => run_stream(addr, id, stream, rx, events, None).await,
        Err(e) => {
            tracing::warn!(%addr, "SIP connection: {e}");
            let _ = events.send(StreamEvent::Closed {
                addr,
                id,
                refused: true,
            });
        }
    }
}

/// Reads framed messages and writes queued ones on one connection until
/// either side ends it, a frame is bad (a stream cannot resynchronise) or,
/// given `idle`, no SIP message has come for that long.
async fn run_stream<S: AsyncRead + AsyncWrite + Unpin>(
    addr: SocketAddr,
    id: u64,
    stream: S,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    events: mpsc::UnboundedSender<StreamEvent>,
    idle: Option<Duration>,
) {
    let (mut read, mut write) = tokio::io::split(stream);
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    let idle_for = idle.unwrap_or(Duration::MAX);
    let quiet = tokio::time::sleep(idle_for.min(Duration::from_secs(86_400 * 365)));
    tokio::pin!(quiet);
    'conn: loop {
        tokio::select! {
            () = &mut quiet, if idle.is_some() => {
                tracing::debug!(%addr, "accepted SIP connection idle, closed");
                break;
            }
            out = rx.recv() => match out {
                Some(bytes) => {
                    // TLS buffers records until flushed.
                    let sent = async {
                        write.write_all(&bytes).await?;
                        write.flush().await
                    };
                    if let Err(e) = sent.await {
                        tracing::warn!(%addr, "SIP stream write: {e}");
                        break;
                    }
                    ping.reset();
                }
                None => break,
            },
            _ = ping.tick() => {
                let sent = async {
                    write.write_all(b"\r\n\r\n").await?;
                    write.flush().await
                };
                if sent.await.is_err() {
                    break;
                }
            }
            n = read.read(&mut chunk) => {
                match n {
                    Ok(0) => break,
                    Err(e) => {
                        tracing::warn!(%addr, "SIP stream read: {e}");
                        break;
                    }
                    Ok(n) => {
                        tracing::trace!(%addr, n, "SIP stream read");
                        buf.extend_from_slice(&chunk[..n]);
                    }
                }
                loop {
                    match message::parse_framed(&buf, true) {
                        Ok((Ok(m), used)) => {
                            tracing::trace!(%addr, used, "SIP message framed");
                            buf.drain(..used);
                            if idle.is_some() {
                                quiet.as_mut().reset(tokio::time::Instant::now() + idle_for);
                            }
                            if events.send(StreamEvent::Msg(addr, m)).is_err() {
                                break 'conn;
                            }
                        }
                        Ok((Err(e), used)) => {
                            // Framed but not a message we can act on: it
                            // goes, the connection and its calls stay.
                            tracing::warn!(%addr, "bad SIP message on a stream, dropped: {e}");
                            // A broken request gets its 400 (or 505) back
                            // on the connection (RFC 3261 8.2, 18.2.2).
                            if let Some(reply) = message::bad_request(&buf[..used]) {
                                let sent = async {
                                    write.write_all(&reply).await?;
                                    write.flush().await
                                };
                                if let Err(e) = sent.await {
                                    tracing::warn!(%addr, "SIP stream write: {e}");
                                    break 'conn;
                                }
                            }
                            buf.drain(..used);
                        }
                        Err(SipError::Incomplete) => {
                            tracing::trace!(%addr, len = buf.len(), "SIP frame incomplete");
                            // Keep-alive CRLFs alone are consumed here: a
                            // double CRLF is a ping, answered with a single
                            // CRLF pong (RFC 5626 3.5.1); a lone CRLF (a
                            // pong, or half a ping) waits for the rest.
                            if buf.iter().all(|b| *b == b'\r' || *b == b'\n') {
                                let pings = buf.len() / 4;
                                buf.drain(..pings * 4);
                                for _ in 0..pings {
                                    let pong = async {
                                        write.write_all(b"\r\n").await?;
                                        write.flush().await
                                    };
                                    if pong.await.is_err() {
                                        break 'conn;
                                    }
                                }
                            }
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(%addr, "bad SIP frame, closing the connection: {e}");
                            break 'conn;
                        }
                    }
                }
            }
        }
    }
    let _ = events.send(StreamEvent::Closed {
        addr,
        id,
        refused: false,
    });
}

enum Io {
    Udp(UdpSocket),
    Stream(Box<Streams>),
}

/// The local address to advertise when bound to the unspecified address:
/// the source address the routing table picks toward `peer`.
fn advertised_ip(bound: SocketAddr, peer: SocketAddr) -> IpAddr {
    if !bound.ip().is_unspecified() {
        return bound.ip();
    }
    let probe_bind = if peer.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    std::net::UdpSocket::bind(probe_bind)
        .and_then(|s| {
            s.connect(peer)?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(bound.ip())
}

/// Turns on IP_RECVERR so ICMP errors reach an unconnected UDP socket,
/// with the address of the datagram that caused them.
fn enable_recv_err(sock: &UdpSocket, v4: bool) -> Result<(), SipError> {
    use nix::sys::socket::{setsockopt, sockopt};
    let r = if v4 {
        setsockopt(sock, sockopt::Ipv4RecvErr, &true)
    } else {
        setsockopt(sock, sockopt::Ipv6RecvErr, &true)
    };
    r.map_err(|e| SipError::Io(format!("IP_RECVERR: {e}")))
}

/// Reads the socket's error queue: the destinations that refused.
fn refused_destinations(sock: &UdpSocket) -> Vec<SocketAddr> {
    use nix::sys::socket::{MsgFlags, SockaddrStorage, recvmsg};
    use std::os::fd::AsRawFd;
    let mut out = Vec::new();
    for _ in 0..64 {
        let mut data = [0u8; 512];
        let mut iov = [std::io::IoSliceMut::new(&mut data)];
        // Room for the IP_RECVERR message: a sock_extended_err (16
        // bytes) and the offender's address (at most a sockaddr_in6).
        let mut cmsg = nix::cmsg_space!([u8; 16], [u8; 28]);
        let r = recvmsg::<SockaddrStorage>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
        );
        let Ok(msg) = r else { break };
        let addr = msg.address.and_then(|a| {
            if let Some(v4) = a.as_sockaddr_in() {
                Some(SocketAddr::from(std::net::SocketAddrV4::from(*v4)))
            } else {
                a.as_sockaddr_in6()
                    .map(|v6| SocketAddr::from(std::net::SocketAddrV6::from(*v6)))
            }
        });
        if let Some(a) = addr {
            out.push(a);
        }
    }
    out
}

impl Ua {
    /// Binds (UDP) or listens and connects to the first destination that
    /// accepts (TCP, TLS), and starts the UA task. When no stream
    /// destination accepts, [`SipError::Refused`] names the first.
    pub async fn start(cfg: UaConfig) -> Result<Ua, SipError> {
        let destinations = if cfg.destinations.is_empty() {
            vec![cfg.provider]
        } else {
            cfg.destinations.clone()
        };
        // The address of this host the provider reaches; `--external-address`
        // (NAT) replaces it in what we advertise, never in what we bind.
        let host_ip = advertised_ip(cfg.bind, cfg.provider);
        let ip = cfg.external.unwrap_or(host_ip);
        let (io, local) = match cfg.transport {
            Transport::Udp => {
                let sock = UdpSocket::bind(cfg.bind).await?;
                enable_recv_err(&sock, cfg.bind.is_ipv4())?;
                let port = sock.local_addr()?.port();
                (Io::Udp(sock), SocketAddr::new(ip, port))
            }
            Transport::Tcp | Transport::Tls => {
                let tls = match (cfg.transport, &cfg.tls) {
                    (Transport::Tls, None) => {
                        return Err(SipError::Tls("a TLS transport without TLS settings".into()));
                    }
                    (_, t) => t.clone(),
                };
                // TCP listens where the Contact points, and so does TLS
                // given a certificate; without one the peer reuses our
                // connection (Via alias, RFC 5923).
                let acceptor = match (cfg.transport, &cfg.tls_server) {
                    (Transport::Tls, Some(server)) => {
                        Some(tokio_rustls::TlsAcceptor::from(server.clone()))
                    }
                    _ => None,
                };
                let listener = if cfg.transport == Transport::Tcp || acceptor.is_some() {
                    Some(TcpListener::bind(cfg.bind).await?)
                } else {
                    None
                };
                let mut port = match &listener {
                    Some(l) => l.local_addr()?.port(),
                    None => 0,
                };
                let (events_tx, events) = mpsc::unbounded_channel();
                let mut streams = Streams {
                    transport: cfg.transport,
                    tls,
                    next_id: 0,
                    conns: HashMap::new(),
                    events_tx,
                    events,
                    listener,
                    acceptor,
                    places: Arc::new(Semaphore::new(cfg.max_accepted)),
                    host_places: HashMap::new(),
                    per_host: cfg.max_accepted_per_host,
                    idle: cfg.accepted_idle,
                };
                // The first destination that accepts proves the provider is
                // there; a provider that refuses everywhere is an error now.
                let mut connected = false;
                for d in &destinations {
                    match open_from(*d, streams.tls.as_ref()).await {
                        Ok((stream, from)) => {
                            // Over TLS nothing listens: the connection's own
                            // port is the one to name (the peer reuses it).
                            if port == 0 {
                                port = from.port();
                            }
                            streams.adopt(*d, stream, None);
                            connected = true;
                            break;
                        }
                        Err(e) => tracing::warn!(addr = %d, "SIP connection: {e}"),
                    }
                }
                if !connected {
                    return Err(SipError::Refused(destinations[0]));
                }
                (Io::Stream(Box::new(streams)), SocketAddr::new(ip, port))
            }
        };
        let endpoint_cfg = EndpointConfig {
            local,
            transport: cfg.transport,
            timers: cfg.timers,
            seed: rand::random(),
        };
        let endpoint = Endpoint::new(endpoint_cfg.clone());
        let (reg, registration) = match cfg.register {
            Some(mut r) => {
                r.local = local;
                r.transport = cfg.transport;
                let reg = Registration::new(now(), r);
                let (tx, rx) = tokio::sync::watch::channel(reg.state());
                (Some((reg, tx)), Some(rx))
            }
            None => (None, None),
        };
        let (cmds, rx) = mpsc::unbounded_channel();
        let registrars = if destinations.is_empty() {
            vec![cfg.provider]
        } else {
            destinations.clone()
        };
        let task = tokio::spawn(drive(endpoint, reg, io, cfg.provider, registrars, rx));
        Ok(Ua {
            cmds,
            local,
            endpoint: endpoint_cfg,
            registration,
            destinations: std::sync::RwLock::new(if cfg.choices.is_empty() {
                Weighted::fixed(destinations)
            } else {
                cfg.choices
            }),
            task: Some(task),
            host_ip,
        })
    }

    /// The address of this host to bind media sockets on: the one toward
    /// the provider, not an external (NAT) address, which only goes in
    /// the SDP.
    pub fn host_ip(&self) -> std::net::IpAddr {
        self.host_ip
    }

    /// Our address as the provider sees it (Via, Contact).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Where a new call goes, first to try first: an order drawn for it
    /// by the SRV targets' priority and weight (RFC 2782: per request, so
    /// calls spread over equal-priority targets by weight).
    pub fn destinations(&self) -> Vec<SocketAddr> {
        let draw = |c: &Vec<Weighted>| Weighted::draw(c, &mut rand::rng());
        match self.destinations.read() {
            Ok(d) => draw(&d),
            Err(poisoned) => draw(&poisoned.into_inner()),
        }
    }

    /// The SRV targets new calls choose from.
    pub fn choices(&self) -> Vec<Weighted> {
        match self.destinations.read() {
            Ok(d) => d.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces where new calls (and the registration's next REGISTER)
    /// go, as a fresh DNS answer says; calls under way keep theirs. No
    /// address at all is ignored.
    pub fn set_destinations(&self, choices: Vec<Weighted>) {
        let registrars = Weighted::draw(&choices, &mut rand::rng());
        if registrars.is_empty() {
            return;
        }
        let _ = self.cmds.send(Cmd::Registrar(registrars));
        match self.destinations.write() {
            Ok(mut d) => *d = choices,
            Err(poisoned) => *poisoned.into_inner() = choices,
        }
    }

    /// Whether the UA's task has stopped (shut down, or dropped).
    pub fn is_stopped(&self) -> bool {
        self.cmds.is_closed()
    }

    /// Resolves once the UA's task has stopped (shut down, or dropped).
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let cmds = self.cmds.clone();
        async move { cmds.closed().await }
    }

    /// The registration's state, when the UA registers.
    pub fn registration(&self) -> Option<RegState> {
        self.registration.as_ref().map(|r| *r.borrow())
    }

    /// The registration's state as it changes, readable after
    /// [`Ua::shutdown`] (which unregisters).
    pub fn registration_watch(&self) -> Option<tokio::sync::watch::Receiver<RegState>> {
        self.registration.clone()
    }

    /// Waits until the registration's state satisfies `f` (or the UA stops).
    pub async fn registration_until(&self, f: impl Fn(&RegState) -> bool) -> Option<RegState> {
        let mut rx = self.registration.clone()?;
        rx.wait_for(|s| f(s)).await.ok().map(|s| *s)
    }

    /// Chooses the identifiers of a call about to be placed with `params`
    /// (sets `params.ids`, and its destinations if it names none) and
    /// returns its record, for a caller that stores it before
    /// [`Ua::call`] sends the INVITE (see [`LegRecord`]).
    pub fn prepare(&self, params: &mut CallParams) -> LegRecord {
        if params.destinations.is_empty() {
            params.destinations = self.destinations();
        }
        let ids = params.ids.get_or_insert_with(LegIds::random).clone();
        leg_record(&self.endpoint, params, &ids)
    }

    /// Takes back a leg a crash left, to end it (see
    /// [`Endpoint::resume_call`]); the handle's events end with `Ended`.
    pub async fn resume(
        &self,
        rec: LegRecord,
        credentials: Option<Credentials>,
    ) -> Result<CallHandle, SipError> {
        let (etx, events) = mpsc::unbounded_channel();
        let (itx, irx) = oneshot::channel();
        self.cmds
            .send(Cmd::Resume(Box::new(rec), credentials, etx, itx))
            .map_err(|_| SipError::Stopped)?;
        let id = irx.await.map_err(|_| SipError::Stopped)?;
        Ok(CallHandle {
            id,
            events,
            cmds: self.cmds.clone(),
        })
    }

    /// Places a call (to the UA's destinations unless `params` names some).
    pub async fn call(&self, mut params: CallParams) -> Result<CallHandle, SipError> {
        if params.destinations.is_empty() {
            params.destinations = self.destinations();
        }
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

    /// Places a call whose events are sent, with its id, to `events`: a
    /// channel many calls share, so that a caller placing thousands of
    /// calls reads them in one loop (no task nor channel per call). The
    /// id comes with the call's first event; its last is `Ended`.
    pub fn place(
        &self,
        mut params: CallParams,
        events: &mpsc::UnboundedSender<(CallId, CallEvent)>,
    ) -> Result<(), SipError> {
        if params.destinations.is_empty() {
            params.destinations = self.destinations();
        }
        self.cmds
            .send(Cmd::Place(Box::new(params), events.clone()))
            .map_err(|_| SipError::Stopped)
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

enum Arrival {
    Datagram(usize, SocketAddr),
    Msg(SocketAddr, Message),
    Refused(Option<SocketAddr>),
    Lost(SocketAddr),
    Accepted(TcpStream, SocketAddr),
    Secured(Box<dyn SipStream>, SocketAddr, Place),
    Error(std::io::Error),
}

async fn accept(listener: &Option<TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => pending().await,
    }
}

async fn arrival(io: &mut Io, buf: &mut [u8]) -> Arrival {
    match io {
        Io::Udp(s) => match s.recv_from(buf).await {
            Ok((n, from)) => Arrival::Datagram(n, from),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Arrival::Refused(None),
            Err(e) => Arrival::Error(e),
        },
        Io::Stream(st) => {
            let Streams {
                events, listener, ..
            } = &mut **st;
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(StreamEvent::Msg(from, m)) => Arrival::Msg(from, m),
                    Some(StreamEvent::Secured(peer, stream, place)) => Arrival::Secured(stream, peer, place),
                    Some(StreamEvent::Closed { addr, id, refused }) => {
                        if st.conns.get(&addr).is_some_and(|(cid, _)| *cid == id) {
                            st.conns.remove(&addr);
                        }
                        if refused { Arrival::Refused(Some(addr)) } else { Arrival::Lost(addr) }
                    }
                    None => pending().await,
                },
                a = accept(listener) => match a {
                    Ok((s, peer)) => Arrival::Accepted(s, peer),
                    Err(e) => Arrival::Error(e),
                },
            }
        }
    }
}

async fn send(io: &mut Io, to: SocketAddr, bytes: Vec<u8>) -> std::io::Result<()> {
    if tracing::enabled!(tracing::Level::TRACE) {
        // The method, or the status code: the Request-URI holds a number.
        let mut words = bytes.split(|b| *b == b' ');
        let first = words.next().unwrap_or_default();
        let what = if first == b"SIP/2.0" {
            words.next().unwrap_or_default()
        } else {
            first
        };
        tracing::trace!(%to, what = %String::from_utf8_lossy(what), "SIP message out");
    }
    match io {
        Io::Udp(s) => s.send_to(&bytes, to).await.map(|_| ()),
        Io::Stream(st) => {
            st.send(to, bytes);
            Ok(())
        }
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// True for a response to a REGISTER (the registration's, not a call's).
fn is_register_response(m: &Message) -> bool {
    matches!(m, Message::Response(r) if matches!(message::cseq(&r.headers), Ok((_, super::message::Method::Register))))
}

type Reg = Option<(Registration, tokio::sync::watch::Sender<RegState>)>;

/// Where a call's events go.
enum Listener {
    /// A channel of its own ([`Ua::call`]).
    Own(mpsc::UnboundedSender<CallEvent>),
    /// A channel shared with other calls, events tagged ([`Ua::place`]).
    Shared(mpsc::UnboundedSender<(CallId, CallEvent)>),
}

impl Listener {
    fn send(&self, id: CallId, ev: CallEvent) {
        let _ = match self {
            Listener::Own(tx) => tx.send(ev).map_err(|_| ()),
            Listener::Shared(tx) => tx.send((id, ev)).map_err(|_| ()),
        };
    }
}

/// How long shutdown waits for the unregister's answer (a challenge to it
/// answered, a lost datagram resent once or twice).
const UNREGISTER_WAIT: Duration = Duration::from_secs(3);

/// Datagrams read in one go after the one that woke the task, before the
/// responses go out: under load, one wake-up serves many messages.
const BATCH: usize = 64;

/// Feeds a message to the registration or the endpoint.
fn deliver(ep: &mut Endpoint, reg: &mut Reg, at: Instant, from: SocketAddr, m: Message) {
    if is_register_response(&m) {
        if let (Some((r, _)), Message::Response(resp)) = (reg.as_mut(), &m) {
            r.handle_response(at, resp);
        }
        return;
    }
    ep.handle_message_from(at, Some(from), m);
}

/// Feeds one datagram to the registration or the endpoint.
fn take_datagram(ep: &mut Endpoint, reg: &mut Reg, at: Instant, from: SocketAddr, bytes: &[u8]) {
    match message::parse(bytes, false) {
        Ok((m, _)) => deliver(ep, reg, at, from, m),
        Err(e) => {
            // Counted by the endpoint as malformed.
            let _ = ep.handle_bytes_from(at, Some(from), bytes);
            tracing::debug!(%from, "dropped a bad datagram: {e}");
        }
    }
}

/// A destination refused (ICMP port unreachable on UDP, `addr` unknown:
/// the socket's error queue names it; a stream refused at `addr`).
fn take_refused(ep: &mut Endpoint, io: &Io, at: Instant, addr: Option<SocketAddr>) {
    let refused = match (io, addr) {
        (Io::Udp(s), None) => refused_destinations(s),
        (_, Some(a)) => vec![a],
        _ => Vec::new(),
    };
    if refused.is_empty() {
        ep.handle_unreachable_at(at, None);
    }
    for a in refused {
        tracing::warn!(addr = %a, "SIP destination refused");
        ep.handle_unreachable_at(at, Some(a));
    }
}

async fn drive(
    mut ep: Endpoint,
    mut reg: Reg,
    mut io: Io,
    mut provider: SocketAddr,
    mut registrars: Vec<SocketAddr>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
) -> EndpointStats {
    let mut listeners: HashMap<CallId, Listener> = HashMap::new();
    let mut buf = vec![0u8; message::MAX_MESSAGE];
    if registrars.is_empty() {
        registrars.push(provider);
    }
    if let Some((r, _)) = reg.as_mut() {
        r.set_destinations(registrars.len());
    }
    // The registrar's address in use (the metrics' label).
    let mut registrar = registrars[0].to_string();
    // One timer for the task's life, moved only when the next deadline
    // changes (a new timer per turn of the loop costs more than the rest
    // of a turn under load).
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<tokio::time::Instant> = None;
    // Shutting down: the unregister's transaction runs (a challenge to it
    // answered) until it ends or this time.
    let mut closing_until: Option<tokio::time::Instant> = None;
    loop {
        // The registration's output first: its first REGISTER is queued
        // before the loop starts.
        if let Some((r, watch)) = reg.as_mut() {
            // Each REGISTER to the registrar's address in use; one that
            // cannot be sent moves it on (RFC 3263 4.3).
            let mut unsent = 0;
            while let Some(bytes) = r.poll_transmit() {
                let to = registrars[r.destination().min(registrars.len() - 1)];
                let moved = to.to_string();
                if moved != registrar {
                    crate::metrics::move_registration(&registrar, &moved, &r.state());
                    registrar = moved;
                }
                if let Err(e) = send(&mut io, to, bytes).await {
                    tracing::warn!(%to, "REGISTER send: {e}");
                    unsent += 1;
                    if unsent <= registrars.len() {
                        r.handle_unreachable(now());
                    }
                }
            }
            let state = r.state();
            if *watch.borrow() != state {
                crate::metrics::record_registration(&registrar, &state);
                let _ = watch.send(state);
            }
        }
        if let Some(until) = closing_until
            && (reg.as_ref().is_none_or(|(r, _)| r.is_closed())
                || tokio::time::Instant::now() >= until)
        {
            break;
        }
        let next = [
            ep.poll_timeout(),
            reg.as_ref().and_then(|(r, _)| r.poll_timeout()),
            closing_until.map(tokio::time::Instant::into_std),
        ]
        .into_iter()
        .flatten()
        .min();
        let deadline = next.map(tokio::time::Instant::from_std);
        if let Some(d) = deadline
            && armed != Some(d)
        {
            timer.as_mut().reset(d);
            armed = Some(d);
        }
        let mut received_at = None;
        tokio::select! {
            cmd = cmds.recv(), if closing_until.is_none() => match cmd {
                None | Some(Cmd::Shutdown) => {
                    // Take our binding away on the way out: the REGISTER
                    // with Expires: 0 goes out at the top of the loop, and
                    // its answer (or challenge) is read for a while.
                    match reg.as_mut() {
                        Some((r, _)) => {
                            r.unregister(now());
                            closing_until = Some(tokio::time::Instant::now() + UNREGISTER_WAIT);
                        }
                        None => break,
                    }
                }
                Some(Cmd::Call(params, events, reply)) => {
                    let id = ep.start_call(now(), *params);
                    listeners.insert(id, Listener::Own(events));
                    let _ = reply.send(id);
                }
                Some(Cmd::Place(params, events)) => {
                    let id = ep.start_call(now(), *params);
                    listeners.insert(id, Listener::Shared(events));
                }
                Some(Cmd::Resume(rec, credentials, events, reply)) => {
                    let id = ep.resume_call(now(), *rec, credentials);
                    listeners.insert(id, Listener::Own(events));
                    let _ = reply.send(id);
                }
                Some(Cmd::Hangup(id)) => ep.hangup(now(), id),
                Some(Cmd::Registrar(addrs)) => {
                    if let Some(&first) = addrs.first()
                        && addrs != registrars
                    {
                        provider = first;
                        registrars = addrs;
                        if let Some((r, _)) = reg.as_mut() {
                            r.set_destinations(registrars.len());
                        }
                    }
                }
            },
            a = arrival(&mut io, &mut buf) => {
                let at = now();
                received_at = Some(Instant::now());
                match a {
                    Arrival::Datagram(n, from) => {
                        take_datagram(&mut ep, &mut reg, at, from, &buf[..n]);
                        // What else has queued meanwhile, before replying.
                        if let Io::Udp(sock) = &io {
                            for _ in 0..BATCH {
                                match sock.try_recv_from(&mut buf) {
                                    Ok((n, from)) => {
                                        take_datagram(&mut ep, &mut reg, now(), from, &buf[..n]);
                                    }
                                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                                        take_refused(&mut ep, &io, now(), None);
                                        break;
                                    }
                                    Err(_) => break,
                                }
                            }
                        }
                    }
                    Arrival::Msg(from, m) => {
                        tracing::trace!(%from, "SIP message in");
                        deliver(&mut ep, &mut reg, at, from, m)
                    }
                    Arrival::Refused(addr) => take_refused(&mut ep, &io, at, addr),
                    Arrival::Lost(addr) => {
                        tracing::warn!(%addr, "SIP connection closed; the next message opens a new one");
                        ep.handle_unreachable_at(at, Some(addr));
                    }
                    Arrival::Accepted(stream, peer) => {
                        if let Io::Stream(st) = &mut io {
                            st.accepted(peer, stream);
                        }
                    }
                    Arrival::Secured(stream, peer, place) => {
                        if let Io::Stream(st) = &mut io {
                            st.adopt(peer, stream, Some(place));
                        }
                    }
                    Arrival::Error(e) => tracing::warn!("SIP socket: {e}"),
                }
            },
            () = &mut timer, if deadline.is_some() => {
                armed = None;
                let t = now();
                ep.handle_timeout(t);
                if let Some((r, _)) = reg.as_mut() {
                    r.handle_timeout(t);
                }
            }
        }
        while let Some(t) = ep.poll_transmit_to() {
            let to = t.to.unwrap_or(provider);
            if let Err(e) = send(&mut io, to, t.bytes).await {
                if e.kind() == std::io::ErrorKind::ConnectionRefused {
                    ep.handle_unreachable_at(now(), Some(to));
                } else {
                    tracing::warn!(%to, "SIP send: {e}");
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
                l.send(id, ev);
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
    ua: Ua,
    mut params: CallParams,
    play: Option<f64>,
) -> Result<CallReport, SipError> {
    // Bound on this host; the SDP names the advertised (external) address.
    let rtp = UdpSocket::bind(SocketAddr::new(ua.host_ip(), 0)).await?;
    params.media_addr = SocketAddr::new(ua.local_addr().ip(), rtp.local_addr()?.port());
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
                if let Some(secs) = play {
                    // Only in a codec the answer took (RFC 3264 7); an
                    // answer with no SDP, or no G.711, has nothing to play
                    // to: hang up rather than wait.
                    match media.as_ref().and_then(|m| Some((m.addr, m.codec()?))) {
                        Some((addr, codec)) => {
                            let prompt = crate::media::wav::generated_prompt(secs);
                            match crate::media::player::play(&rtp, addr, &prompt, codec).await {
                                Ok(p) => prompt_packets = Some(p.packets),
                                Err(e) => tracing::warn!("prompt: {e}"),
                            }
                        }
                        None => tracing::warn!(
                            "the answer has no audio we can send (no SDP answer, or no PCMU or PCMA): hanging up"
                        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_is_looked_up_again_within_the_floor_and_ceiling() {
        let floor = Duration::from_secs(30);
        assert_eq!(relookup_after(Duration::ZERO, floor), floor, "TTL 0");
        assert_eq!(
            relookup_after(Duration::from_secs(300), floor),
            Duration::from_secs(300)
        );
        assert_eq!(
            relookup_after(Duration::from_secs(86_400), floor),
            RELOOKUP_CEILING
        );
        // A floor above the ceiling (a test's or an operator's) wins.
        let long = RELOOKUP_CEILING * 2;
        assert_eq!(relookup_after(Duration::from_secs(1), long), long);
    }

    /// RFC 5626 3.5.1: a double-CRLF ping on a stream gets a single-CRLF
    /// pong, also when the ping comes in two halves.
    #[tokio::test]
    async fn a_keep_alive_ping_on_a_stream_gets_a_pong() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let provider = listener.local_addr().unwrap();
        let ua = Ua::start(UaConfig::new(provider, Transport::Tcp))
            .await
            .unwrap();
        let (mut conn, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .unwrap()
            .unwrap();
        for halves in [false, true] {
            if halves {
                conn.write_all(b"\r\n").await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                conn.write_all(b"\r\n").await.unwrap();
            } else {
                conn.write_all(b"\r\n\r\n").await.unwrap();
            }
            let mut pong = [0u8; 2];
            tokio::time::timeout(Duration::from_secs(2), conn.read_exact(&mut pong))
                .await
                .expect("a pong")
                .unwrap();
            assert_eq!(&pong, b"\r\n");
        }
        ua.shutdown().await;
    }

    /// A framed message missing a mandatory header on a TCP connection is
    /// dropped; the connection stays, and the call's real answer on it
    /// still ends the call (it was closed, leaving the call to time out).
    #[tokio::test]
    async fn a_bad_message_on_a_stream_is_dropped_and_the_connection_kept() {
        use tokio::io::AsyncWriteExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let provider = listener.local_addr().unwrap();
        let ua = Ua::start(UaConfig::new(provider, Transport::Tcp))
            .await
            .unwrap();
        let call = ua
            .call(call_to(format!(
                "sip:+15551230001@{provider};transport=tcp"
            )))
            .await
            .unwrap();
        let (mut conn, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .unwrap()
            .unwrap();
        let Message::Request(invite) = read_message(&mut conn, &mut Vec::new()).await else {
            panic!("an INVITE");
        };
        let bad = b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let busy = message::Response::to(&invite, 486, "Busy Here", Some("peer"));
        conn.write_all(bad).await.unwrap();
        conn.write_all(&busy.encode()).await.unwrap();
        let summary = tokio::time::timeout(Duration::from_secs(5), call.ended())
            .await
            .expect("the 486 arrived on the same connection")
            .unwrap();
        assert_eq!(summary.final_code, Some(486));
        ua.shutdown().await;
    }

    /// A call to `target` with the tests' defaults.
    fn call_to(target: String) -> CallParams {
        CallParams {
            ids: None,
            target,
            from_user: "dialler".into(),
            ring_timeout: crate::sip::uac::RingTimeout::new(Duration::from_secs(15)).unwrap(),
            credentials: None,
            media_addr: "127.0.0.1:40000".parse().unwrap(),
            max_talk: None,
            display_name: None,
            extra_headers: Vec::new(),
            destinations: Vec::new(),
        }
    }

    /// Reads one SIP message from `conn` (CRLF keep-alives skipped).
    async fn read_message<S: AsyncRead + Unpin>(conn: &mut S, buf: &mut Vec<u8>) -> Message {
        loop {
            while buf.starts_with(b"\r\n") {
                buf.drain(..2);
            }
            if let Ok((m, used)) = message::parse(buf, true) {
                buf.drain(..used);
                return m;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut chunk))
                .await
                .expect("a message in time")
                .expect("read");
            assert!(n > 0, "connection closed before a message");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A CA and a certificate it signs for `name`, as PEM files in `dir`:
    /// (ca, cert, key).
    fn test_certificates(dir: &std::path::Path, name: &str) -> [std::path::PathBuf; 3] {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "dialler test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let paths = [
            dir.join(format!("{name}-ca.pem")),
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        ];
        std::fs::write(&paths[0], ca_cert.pem()).unwrap();
        std::fs::write(&paths[1], cert.pem()).unwrap();
        std::fs::write(&paths[2], key.serialize_pem()).unwrap();
        paths
    }

    /// Over TLS with a certificate, the Contact names a port that accepts
    /// TLS: a trunk whose connection to us closed after the answer opens a
    /// new one there, and its BYE is answered and ends the call (without
    /// the listener nothing accepted it: the call stayed up, and billed).
    #[tokio::test]
    async fn a_tls_peer_can_reach_our_contact_after_its_connection_closed() {
        let dir = tempfile::tempdir().unwrap();
        let [provider_ca, provider_cert, provider_key] =
            test_certificates(dir.path(), "carrier.test");
        let [our_ca, our_cert, our_key] = test_certificates(dir.path(), "dialler.test");
        let acceptor = tokio_rustls::TlsAcceptor::from(
            crate::sip::tls::server_config(&provider_cert, &provider_key).unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let provider = listener.local_addr().unwrap();
        let mut cfg = UaConfig::new(provider, Transport::Tls);
        cfg.bind = "127.0.0.1:0".parse().unwrap();
        cfg.tls = Some(TlsClient::new("carrier.test", Some(&provider_ca)).unwrap());
        cfg.tls_server = Some(crate::sip::tls::server_config(&our_cert, &our_key).unwrap());
        let (ua, accepted) = tokio::join!(Ua::start(cfg), async {
            let (tcp, _) = listener.accept().await.unwrap();
            acceptor.accept(tcp).await.unwrap()
        });
        let ua = ua.unwrap();
        let mut conn = accepted;
        let call = ua
            .call(call_to(format!(
                "sips:+15551230001@{provider};transport=tls"
            )))
            .await
            .unwrap();
        let mut buf = Vec::new();
        let Message::Request(invite) = read_message(&mut conn, &mut buf).await else {
            panic!("an INVITE");
        };
        let contact = invite.headers.get("Contact").unwrap().to_string();
        let port = ua.local_addr().port();
        assert!(
            contact.contains(&format!("127.0.0.1:{port};transport=tls")),
            "{contact}"
        );
        let mut ok = message::Response::to(&invite, 200, "OK", Some("peer"));
        ok.headers
            .push("Contact", format!("<sips:callee@{provider};transport=tls>"));
        ok.headers.push("Content-Type", "application/sdp");
        ok.body = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n".to_vec();
        conn.write_all(&ok.encode()).await.unwrap();
        let Message::Request(ack) = read_message(&mut conn, &mut buf).await else {
            panic!("an ACK");
        };
        assert_eq!(ack.method, message::Method::Ack);
        drop(conn);
        // The trunk's BYE on a connection of its own, to our Contact.
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_file_iter(&our_ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut back = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(
                rustls::pki_types::ServerName::try_from("dialler.test").unwrap(),
                tcp,
            )
            .await
            .expect("our listening port speaks TLS with our certificate");
        let mut bye = message::Request::new(message::Method::Bye, contact.trim_matches(['<', '>']));
        bye.headers
            .push("Via", "SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bKbye1");
        bye.headers.push("From", ok.headers.get("To").unwrap());
        bye.headers.push("To", invite.headers.get("From").unwrap());
        bye.headers
            .push("Call-ID", invite.headers.get("Call-ID").unwrap());
        bye.headers.push("CSeq", "1 BYE");
        back.write_all(&bye.encode()).await.unwrap();
        let mut buf = Vec::new();
        let Message::Response(r) = read_message(&mut back, &mut buf).await else {
            panic!("a response to the BYE");
        };
        assert_eq!(r.code, 200, "{r:?}");
        let summary = tokio::time::timeout(Duration::from_secs(5), call.ended())
            .await
            .expect("the BYE ended the call")
            .unwrap();
        assert_eq!(summary.hangup, Some(crate::sip::uac::Side::Remote));
        ua.shutdown().await;
    }

    /// Whether an accepted connection answers a keep-alive ping (else the
    /// UA closed it), with the connection.
    async fn pinged(mut c: TcpStream) -> (bool, TcpStream) {
        use tokio::io::AsyncWriteExt;
        c.write_all(b"\r\n\r\n").await.unwrap();
        let mut pong = [0u8; 2];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut pong))
            .await
            .expect("an answer or a close")
            .unwrap_or(0);
        (n > 0, c)
    }

    /// The listening port keeps at most `max_accepted` connections: one
    /// more is closed at once, the others still answer (a keep-alive
    /// pong), and a place freed by a closed one is taken again.
    #[tokio::test]
    async fn accepted_connections_are_capped() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let provider = listener.local_addr().unwrap();
        let mut cfg = UaConfig::new(provider, Transport::Tcp);
        cfg.bind = "127.0.0.1:0".parse().unwrap();
        cfg.max_accepted = 2;
        let ua = Ua::start(cfg).await.unwrap();
        let port = ua.local_addr().port();
        let open = || TcpStream::connect(("127.0.0.1", port));
        let (first_ok, first) = pinged(open().await.unwrap()).await;
        let (second_ok, second) = pinged(open().await.unwrap()).await;
        assert!(first_ok && second_ok);
        let (third_ok, _) = pinged(open().await.unwrap()).await;
        assert!(!third_ok, "a third connection is closed");
        drop(first);
        // Its place comes back once the UA has seen it close.
        let mut again = false;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if pinged(open().await.unwrap()).await.0 {
                again = true;
                break;
            }
        }
        assert!(again, "a freed place is taken again");
        drop(second);
        ua.shutdown().await;
    }

    /// One host address holds at most `max_accepted_per_host` of the
    /// places; another host still gets one.
    #[tokio::test]
    async fn one_host_cannot_take_every_place() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let provider = listener.local_addr().unwrap();
        let mut cfg = UaConfig::new(provider, Transport::Tcp);
        cfg.bind = "0.0.0.0:0".parse().unwrap();
        cfg.max_accepted = 8;
        cfg.max_accepted_per_host = 2;
        let ua = Ua::start(cfg).await.unwrap();
        let port = ua.local_addr().port();
        let open = |from: [u8; 4]| async move {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind(SocketAddr::from((from, 0))).unwrap();
            s.connect(SocketAddr::from(([127, 0, 0, 1], port)))
                .await
                .unwrap()
        };
        let (a_ok, _a) = pinged(open([127, 0, 0, 1]).await).await;
        let (b_ok, _b) = pinged(open([127, 0, 0, 1]).await).await;
        assert!(a_ok && b_ok);
        let (c_ok, _) = pinged(open([127, 0, 0, 1]).await).await;
        assert!(!c_ok, "a third from the same host is closed");
        let (d_ok, _d) = pinged(open([127, 0, 0, 2]).await).await;
        assert!(d_ok, "another host still gets a place");
        ua.shutdown().await;
    }

    /// An accepted connection bringing only keep-alive pings is closed
    /// once `accepted_idle` passes without a SIP message; one bringing
    /// requests stays.
    #[tokio::test]
    async fn an_idle_accepted_connection_is_closed() {
        use tokio::io::AsyncWriteExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let provider = listener.local_addr().unwrap();
        let mut cfg = UaConfig::new(provider, Transport::Tcp);
        cfg.bind = "127.0.0.1:0".parse().unwrap();
        cfg.accepted_idle = Duration::from_millis(300);
        let ua = Ua::start(cfg).await.unwrap();
        let port = ua.local_addr().port();
        let mut pinging = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut asking = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let options = |n: u32| {
            format!(
                "OPTIONS sip:d@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKidle{n}\r\nFrom: <sip:p@127.0.0.1>;tag=i\r\nTo: <sip:d@127.0.0.1>\r\nCall-ID: idle-{n}@127.0.0.1\r\nCSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let mut buf = [0u8; 4096];
        let mut pinging_closed_at = None;
        for n in 1..=10u32 {
            // Every 100 ms: a ping on one, a request on the other.
            tokio::time::sleep(Duration::from_millis(100)).await;
            if pinging_closed_at.is_none() {
                let _ = pinging.write_all(b"\r\n\r\n").await;
                match tokio::time::timeout(Duration::from_secs(5), pinging.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => pinging_closed_at = Some(n),
                    Ok(Ok(_)) => {}
                    Err(_) => panic!("neither a pong nor a close"),
                }
            }
            asking.write_all(options(n).as_bytes()).await.unwrap();
            let got = tokio::time::timeout(Duration::from_secs(5), asking.read(&mut buf))
                .await
                .expect("an answer")
                .unwrap();
            assert!(
                buf[..got].starts_with(b"SIP/2.0 200 "),
                "request {n}: {:?}",
                String::from_utf8_lossy(&buf[..got])
            );
        }
        let closed = pinging_closed_at.expect("the pinging connection was closed");
        assert!(closed >= 3, "closed after {closed} pings, before its time");
        ua.shutdown().await;
    }

    #[test]
    fn a_framed_message_without_a_call_id_is_skipped_with_its_length() {
        let bad = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCSeq: 1 INVITE\r\nContent-Length: 3\r\n\r\nabc";
        let good = "SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let buf = format!("{bad}{good}");
        let (first, used) = message::parse_framed(buf.as_bytes(), true).unwrap();
        assert!(matches!(first, Err(SipError::MissingHeader("Call-ID"))));
        assert_eq!(used, bad.len());
        let (second, _) = message::parse(&buf.as_bytes()[used..], true).unwrap();
        assert!(matches!(second, Message::Response(r) if r.code == 486));
        // Unframeable (a bad Content-Length): the outer error.
        assert!(
            message::parse_framed(b"SIP/2.0 180 R\r\nContent-Length: x\r\n\r\n", true).is_err()
        );
    }
}
