//! Locating a provider from its SIP URI (RFC 3263): the transport from
//! `;transport=`, the scheme, or NAPTR records; the port and addresses from
//! SRV records (priority, then weight, RFC 2782) or A/AAAA; every address
//! in the order to try, so the UA can fail over (RFC 3263 4.3).
//!
//! The ordering rules are plain functions ([`naptr_choice`], [`srv_order`])
//! tested without a network; [`Resolver`] runs the lookups with
//! hickory-resolver, which honours `/etc/hosts` and `/etc/resolv.conf`
//! (or a given server, as the tests do with dnsmasq on loopback).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use rand::RngExt;

use super::{SipError, Transport, masked_uri};

/// The parts of a provider URI that decide where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// The URI as written.
    pub uri: String,
    /// `sips:`: TLS all the way.
    pub secure: bool,
    /// Host name or IP address (without brackets).
    pub host: String,
    /// The port, when the URI gives one.
    pub port: Option<u16>,
    /// `;transport=`, when given.
    pub transport: Option<Transport>,
}

impl SipUri {
    /// Parses `sip:` or `sips:` `[user@]host[:port][;params]`.
    pub fn parse(uri: &str) -> Result<SipUri, SipError> {
        let bad = |why| SipError::BadUri(masked_uri(uri), why);
        super::uri_characters(uri).map_err(bad)?;
        let (secure, rest) = if let Some(r) = super::after_scheme(uri, "sips:") {
            (true, r)
        } else if let Some(r) = super::after_scheme(uri, "sip:") {
            (false, r)
        } else {
            return Err(bad("must start with sip: or sips:"));
        };
        // The user part ends at the '@' (it may hold ';', as in
        // `+15551234567;npdi@gw`, never an unescaped '@'); parameters and
        // headers follow the host.
        let rest = rest.split_once('@').map_or(rest, |(_, h)| h);
        let rest = rest.split_once('?').map_or(rest, |(h, _)| h);
        let (hostport, params) = rest.split_once(';').unwrap_or((rest, ""));
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in host"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse::<u16>().map_err(|_| bad("bad port"))?),
                None if after.is_empty() => None,
                None => return Err(bad("text after the IPv6 address")),
            };
            (h.to_string(), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    Some(p.parse::<u16>().map_err(|_| bad("bad port"))?),
                ),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if host.parse::<IpAddr>().is_err()
            && !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(bad("host must be a DNS name or an IP address"));
        }
        if port == Some(0) {
            return Err(bad("port 0"));
        }
        let transport = params
            .split(';')
            .find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.eq_ignore_ascii_case("transport").then_some(v)
            })
            .map(|t| match t.to_ascii_lowercase().as_str() {
                "udp" => Ok(Transport::Udp),
                "tcp" if secure => Ok(Transport::Tls),
                "tcp" => Ok(Transport::Tcp),
                "tls" => Ok(Transport::Tls),
                _ => Err(bad("transport must be udp, tcp or tls")),
            })
            .transpose()?;
        if secure && transport == Some(Transport::Udp) {
            return Err(bad("sips: cannot use UDP"));
        }
        Ok(SipUri {
            uri: uri.to_string(),
            secure,
            host,
            port,
            transport,
        })
    }

    /// The host as an IP address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// A Request-URI for `user` at this provider: same scheme, host, port
    /// and transport parameter.
    pub fn request_uri(&self, user: &str) -> String {
        let scheme = if self.secure { "sips" } else { "sip" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        let transport = match self.transport {
            Some(Transport::Tcp) => ";transport=tcp",
            Some(Transport::Tls) if !self.secure => ";transport=tls",
            _ => "",
        };
        format!("{scheme}:{user}@{host}{port}{transport}")
    }
}

/// Where a provider is: one transport and the addresses to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The transport every address is reached with.
    pub transport: Transport,
    /// Addresses, first to try first, as drawn at the lookup (the
    /// registration's order; each call draws its own from `choices`).
    pub addrs: Vec<SocketAddr>,
    /// The SRV targets' addresses with their priority and weight (one
    /// choice, in order, without SRV): RFC 2782 asks for the weighted
    /// draw per request, so that calls spread over targets by weight.
    pub choices: Vec<Weighted>,
    /// The name a TLS certificate must carry (the URI's host, RFC 5922).
    pub server_name: String,
    /// How long the answers hold: the shortest TTL of the records used.
    /// `None` for a numeric host, which never changes.
    pub ttl: Option<Duration>,
}

/// One NAPTR record's fields that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naptr {
    /// Order: lowest first, and only the first order that matches counts.
    pub order: u16,
    /// Preference within an order.
    pub preference: u16,
    /// Flags (`s`: the replacement is an SRV name).
    pub flags: String,
    /// Service (`SIP+D2U`, `SIP+D2T`, `SIPS+D2T`).
    pub service: String,
    /// The SRV name to look up.
    pub replacement: String,
}

/// One SRV target's addresses, with its record's priority and weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weighted {
    /// Lower first.
    pub priority: u16,
    /// Relative share within a priority.
    pub weight: u16,
    /// The target's addresses, in the order to try.
    pub addrs: Vec<SocketAddr>,
}

impl Weighted {
    /// Addresses tried in the order given: one choice, no weights.
    pub fn fixed(addrs: Vec<SocketAddr>) -> Vec<Weighted> {
        vec![Weighted {
            priority: 0,
            weight: 0,
            addrs,
        }]
    }

    /// Every address of `choices` in an order drawn by priority and
    /// weight ([`weighted_order`]), each once.
    pub fn draw(choices: &[Weighted], rng: &mut impl rand::Rng) -> Vec<SocketAddr> {
        let order = weighted_order(choices.iter().collect(), |w| (w.priority, w.weight), rng);
        let mut out: Vec<SocketAddr> = Vec::new();
        for a in order.into_iter().flat_map(|w| &w.addrs) {
            if !out.contains(a) {
                out.push(*a);
            }
        }
        out
    }
}

/// One SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    /// Lower first.
    pub priority: u16,
    /// Relative share within a priority.
    pub weight: u16,
    /// Port on the target.
    pub port: u16,
    /// Target host (`.` means no service).
    pub target: String,
}

/// The transports a NAPTR set offers, best first (RFC 3263 4.1): records
/// with the `s` flag and a service we speak, by order then preference; a
/// `sips:` URI takes `SIPS+D2T` only.
pub fn naptr_choice(records: &[Naptr], secure: bool) -> Vec<(Transport, String)> {
    let mut usable: Vec<&Naptr> = records
        .iter()
        .filter(|r| r.flags.eq_ignore_ascii_case("s"))
        .filter(|r| naptr_transport(&r.service, secure).is_some())
        .collect();
    usable.sort_by_key(|r| (r.order, r.preference));
    usable
        .into_iter()
        .filter_map(|r| Some((naptr_transport(&r.service, secure)?, r.replacement.clone())))
        .collect()
}

fn naptr_transport(service: &str, secure: bool) -> Option<Transport> {
    match service.to_ascii_uppercase().as_str() {
        "SIPS+D2T" => Some(Transport::Tls),
        "SIP+D2T" if !secure => Some(Transport::Tcp),
        "SIP+D2U" if !secure => Some(Transport::Udp),
        _ => None,
    }
}

/// SRV records in the order to try (RFC 2782): by priority, and within a
/// priority by weighted random choice, zero weights only rarely first.
/// A target of `.` ("no service here") is dropped.
pub fn srv_order(mut records: Vec<Srv>, rng: &mut impl rand::Rng) -> Vec<Srv> {
    records.retain(|r| r.target != "." && !r.target.is_empty());
    weighted_order(records, |r| (r.priority, r.weight), rng)
}

/// RFC 2782's selection: `items` by priority (`key`'s first), and within
/// a priority by repeated weighted random choice (its second), zero
/// weights first only rarely.
pub fn weighted_order<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> (u16, u16),
    rng: &mut impl rand::Rng,
) -> Vec<T> {
    items.sort_by_key(|r| {
        let (priority, weight) = key(r);
        (priority, weight != 0)
    });
    let mut out = Vec::with_capacity(items.len());
    while !items.is_empty() {
        let priority = key(&items[0]).0;
        let end = items
            .iter()
            .position(|r| key(r).0 != priority)
            .unwrap_or(items.len());
        let mut group: Vec<T> = items.drain(..end).collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(key(r).1)).sum();
            let pick = if total == 0 {
                0
            } else {
                let roll = rng.random_range(0..=total);
                let mut running = 0u32;
                group
                    .iter()
                    .position(|r| {
                        running += u32::from(key(r).1);
                        running >= roll
                    })
                    .unwrap_or(0)
            };
            out.push(group.remove(pick));
        }
    }
    out
}

/// The default port of a transport (5061 for TLS, RFC 3261 19.1.2).
pub fn default_port(t: Transport) -> u16 {
    if t == Transport::Tls { 5061 } else { 5060 }
}

fn srv_name(t: Transport, host: &str) -> String {
    match t {
        Transport::Udp => format!("_sip._udp.{host}"),
        Transport::Tcp => format!("_sip._tcp.{host}"),
        Transport::Tls => format!("_sips._tcp.{host}"),
    }
}

/// Where `uri` is when its host is an IP address (no lookup: the port as
/// given or the transport's default, RFC 3263 4.2), else `None`.
pub fn numeric(uri: &SipUri) -> Option<Resolved> {
    let ip = uri.ip()?;
    let t = uri.transport.unwrap_or(if uri.secure {
        Transport::Tls
    } else {
        Transport::Udp
    });
    let addrs = vec![SocketAddr::new(
        ip,
        uri.port.unwrap_or_else(|| default_port(t)),
    )];
    Some(Resolved {
        transport: t,
        choices: Weighted::fixed(addrs.clone()),
        addrs,
        server_name: uri.host.clone(),
        ttl: None,
    })
}

/// Where `uri`'s provider is: a numeric host as written, without reading
/// any DNS configuration (a host with no usable `/etc/resolv.conf` can
/// still dial an IP address), else through [`Resolver::new`]`(server)`.
pub async fn locate(server: Option<SocketAddr>, uri: &SipUri) -> Result<Resolved, SipError> {
    match numeric(uri) {
        Some(r) => Ok(r),
        None => Resolver::new(server)?.resolve(uri).await,
    }
}

/// Runs RFC 3263 lookups.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl Resolver {
    /// The system's resolver: `/etc/resolv.conf`, with `/etc/hosts`
    /// answered first.
    pub fn system() -> Result<Resolver, SipError> {
        let mut b = TokioResolver::builder_tokio()
            .map_err(|e| SipError::Resolve(format!("reading the system DNS configuration: {e}")))?;
        b.options_mut().use_hosts_file = ResolveHosts::Always;
        let inner = b
            .build()
            .map_err(|e| SipError::Resolve(format!("starting the resolver: {e}")))?;
        Ok(Resolver { inner })
    }

    /// A resolver asking one server (UDP, then TCP for long answers), with
    /// `/etc/hosts` still answered first.
    pub fn with_server(server: SocketAddr) -> Result<Resolver, SipError> {
        let mut udp = ConnectionConfig::udp();
        udp.port = server.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = server.port();
        let ns = NameServerConfig::new(server.ip(), true, vec![udp, tcp]);
        let config = ResolverConfig::from_parts(None, Vec::new(), vec![ns]);
        let mut opts = ResolverOpts::default();
        opts.use_hosts_file = ResolveHosts::Always;
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        let inner = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| SipError::Resolve(format!("starting the resolver: {e}")))?;
        Ok(Resolver { inner })
    }

    /// [`Resolver::with_server`] when `server` is given, else the system's.
    pub fn new(server: Option<SocketAddr>) -> Result<Resolver, SipError> {
        match server {
            Some(s) => Resolver::with_server(s),
            None => Resolver::system(),
        }
    }

    /// Where `uri`'s provider is (RFC 3263 4.1, 4.2).
    pub async fn resolve(&self, uri: &SipUri) -> Result<Resolved, SipError> {
        let server_name = uri.host.clone();
        // The earliest moment any record used stops being valid.
        let mut until = Until::default();
        let default_transport = if uri.secure {
            Transport::Tls
        } else {
            Transport::Udp
        };
        // A numeric host, or an explicit port: no NAPTR or SRV.
        if let Some(r) = numeric(uri) {
            return Ok(r);
        }
        if let Some(port) = uri.port {
            let t = uri.transport.unwrap_or(default_transport);
            let addrs = self.addresses(&uri.host, port, &mut until).await?;
            return Ok(Resolved {
                transport: t,
                choices: Weighted::fixed(addrs.clone()),
                addrs,
                server_name,
                ttl: until.ttl(),
            });
        }
        // The transport, and the SRV names to try for it.
        let mut plans: Vec<(Transport, String)> = Vec::new();
        match uri.transport {
            Some(t) => plans.push((t, srv_name(t, &uri.host))),
            None => {
                let naptr = self.naptr(&uri.host, &mut until).await?;
                plans = naptr_choice(&naptr, uri.secure);
                if plans.is_empty() {
                    let offered: &[Transport] = if uri.secure {
                        &[Transport::Tls]
                    } else {
                        &[Transport::Udp, Transport::Tcp, Transport::Tls]
                    };
                    plans = offered
                        .iter()
                        .map(|t| (*t, srv_name(*t, &uri.host)))
                        .collect();
                }
            }
        }
        for (t, name) in &plans {
            let srv = self.srv(name, &mut until).await?;
            if srv.is_empty() {
                continue;
            }
            let ordered = srv_order(srv, &mut rand::rng());
            let mut choices = Vec::new();
            for r in ordered {
                match self.addresses(&r.target, r.port, &mut until).await {
                    Ok(addrs) => choices.push(Weighted {
                        priority: r.priority,
                        weight: r.weight,
                        addrs,
                    }),
                    Err(e) => tracing::warn!(target = %r.target, "SRV target without address: {e}"),
                }
            }
            if choices.is_empty() {
                return Err(SipError::Resolve(format!(
                    "{name}: no SRV target has an address"
                )));
            }
            return Ok(Resolved {
                transport: *t,
                addrs: Weighted::draw(&choices, &mut rand::rng()),
                choices,
                server_name,
                ttl: until.ttl(),
            });
        }
        // No SRV: the host's own addresses on the default port.
        let t = uri.transport.unwrap_or(default_transport);
        let addrs = self
            .addresses(&uri.host, default_port(t), &mut until)
            .await?;
        Ok(Resolved {
            transport: t,
            choices: Weighted::fixed(addrs.clone()),
            addrs,
            server_name,
            ttl: until.ttl(),
        })
    }

    async fn naptr(&self, host: &str, until: &mut Until) -> Result<Vec<Naptr>, SipError> {
        match self.inner.lookup(fqdn(host), RecordType::NAPTR).await {
            Ok(l) => {
                until.seen(l.valid_until());
                Ok(l.answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::NAPTR(n) => Some(Naptr {
                            order: n.order,
                            preference: n.preference,
                            flags: String::from_utf8_lossy(&n.flags).into_owned(),
                            service: String::from_utf8_lossy(&n.services).into_owned(),
                            replacement: n.replacement.to_ascii().trim_end_matches('.').to_string(),
                        }),
                        _ => None,
                    })
                    .collect())
            }
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(SipError::Resolve(format!("NAPTR {host}: {e}"))),
        }
    }

    async fn srv(&self, name: &str, until: &mut Until) -> Result<Vec<Srv>, SipError> {
        match self.inner.lookup(fqdn(name), RecordType::SRV).await {
            Ok(l) => {
                until.seen(l.valid_until());
                Ok(l.answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::SRV(s) => Some(Srv {
                            priority: s.priority,
                            weight: s.weight,
                            port: s.port,
                            target: s.target.to_ascii().trim_end_matches('.').to_string(),
                        }),
                        _ => None,
                    })
                    .collect())
            }
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(SipError::Resolve(format!("SRV {name}: {e}"))),
        }
    }

    async fn addresses(
        &self,
        host: &str,
        port: u16,
        until: &mut Until,
    ) -> Result<Vec<SocketAddr>, SipError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let l = self
            .inner
            .lookup_ip(fqdn(host))
            .await
            .map_err(|e| SipError::Resolve(format!("{host}: {e}")))?;
        until.seen(l.valid_until());
        let addrs: Vec<SocketAddr> = l.iter().map(|ip| SocketAddr::new(ip, port)).collect();
        if addrs.is_empty() {
            return Err(SipError::Resolve(format!("{host}: no A or AAAA record")));
        }
        Ok(addrs)
    }
}

/// The earliest expiry of the DNS answers one resolution used.
#[derive(Default)]
struct Until(Option<std::time::Instant>);

impl Until {
    /// Notes an answer valid until `at`.
    fn seen(&mut self, at: std::time::Instant) {
        self.0 = Some(self.0.map_or(at, |u| u.min(at)));
    }

    /// What is left of the shortest validity (`None`: nothing was looked up).
    fn ttl(&self) -> Option<Duration> {
        self.0
            .map(|u| u.saturating_duration_since(std::time::Instant::now()))
    }
}

/// A name made absolute, so no search domain is tried first.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn uris_give_scheme_host_port_and_transport() {
        let u = SipUri::parse("sip:sip.us.example.com;transport=tcp").unwrap();
        assert_eq!(
            (u.secure, u.host.as_str(), u.port, u.transport),
            (false, "sip.us.example.com", None, Some(Transport::Tcp))
        );
        let u = SipUri::parse("sips:+15551230000@carrier.example:5071").unwrap();
        assert_eq!((u.secure, u.port, u.transport), (true, Some(5071), None));
        assert!(SipUri::parse("sip:%2B1555@h.example;user=phone?Subject=a%20b").is_ok());
        // A user part with parameters (RFC 4694 number portability): the
        // host is after the '@'.
        let u =
            SipUri::parse("sip:+15551230000;npdi;rn=+15559990000@gw.example:5062;transport=tcp")
                .unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.transport),
            ("gw.example", Some(5062), Some(Transport::Tcp))
        );
        let u = SipUri::parse("sip:gw.example?Subject=x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("gw.example", None));
        // The scheme is case-insensitive (RFC 3261 19.1.4).
        assert!(SipUri::parse("SIPS:edge.example").unwrap().secure);
        assert!(!SipUri::parse("Sip:edge.example").unwrap().secure);
        let u = SipUri::parse("sip:[::1]:5080").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", Some(5080)));
        let u = SipUri::parse("sips:edge.example;transport=tcp").unwrap();
        assert_eq!(u.transport, Some(Transport::Tls), "sips over TCP is TLS");
        for bad in [
            "tel:+15551230000",
            "sips:edge.example;transport=udp",
            "sip:edge.example;transport=sctp",
            "sip:edge.example:99999",
            "sip:edge_example!",
            "sip:",
            // Nothing that could end a line or a header early (RFC 3261
            // 25.1): the URI goes into the Request-Line and To.
            "sip:a@127.0.0.1:5093;x=1\r\nX-Evil: injected",
            "sip:a b@127.0.0.1",
            "sip:a@127.0.0.1;x=\"",
            "sip:<a>@127.0.0.1",
            "sip:a@127.0.0.1;x=%2",
            "sip:\u{e9}@127.0.0.1",
        ] {
            assert!(SipUri::parse(bad).is_err(), "{bad}");
            assert!(crate::sip::Target::parse(bad).is_err(), "{bad}");
        }
    }

    fn naptr(order: u16, pref: u16, flags: &str, service: &str, to: &str) -> Naptr {
        Naptr {
            order,
            preference: pref,
            flags: flags.into(),
            service: service.into(),
            replacement: to.into(),
        }
    }

    #[test]
    fn naptr_records_choose_transports_by_order_then_preference() {
        let records = vec![
            naptr(20, 10, "s", "SIP+D2U", "_sip._udp.x"),
            naptr(10, 50, "s", "SIP+D2T", "_sip._tcp.x"),
            naptr(10, 20, "s", "SIPS+D2T", "_sips._tcp.x"),
            naptr(5, 1, "u", "SIP+D2U", "!regexp!"),
            naptr(5, 1, "s", "SIP+D2S", "_sip._sctp.x"),
        ];
        let got = naptr_choice(&records, false);
        assert_eq!(
            got,
            vec![
                (Transport::Tls, "_sips._tcp.x".to_string()),
                (Transport::Tcp, "_sip._tcp.x".to_string()),
                (Transport::Udp, "_sip._udp.x".to_string()),
            ]
        );
        assert_eq!(
            naptr_choice(&records, true),
            vec![(Transport::Tls, "_sips._tcp.x".to_string())],
            "sips: takes TLS only"
        );
    }

    fn srv(priority: u16, weight: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port: 5060,
            target: target.into(),
        }
    }

    #[test]
    fn srv_records_go_by_priority_and_share_by_weight() {
        let records = vec![
            srv(20, 0, "backup"),
            srv(10, 90, "big"),
            srv(10, 10, "small"),
            srv(5, 0, "."),
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut big_first = 0;
        for _ in 0..2000 {
            let order = srv_order(records.clone(), &mut rng);
            let names: Vec<&str> = order.iter().map(|r| r.target.as_str()).collect();
            assert_eq!(names.len(), 3, "the '.' target is no service");
            assert_eq!(names[2], "backup", "priority 20 after every priority 10");
            if names[0] == "big" {
                big_first += 1;
            }
        }
        // 90:10 weights: "big" first about 90% of the time.
        assert!((1700..=1900).contains(&big_first), "{big_first}");
    }

    /// Each draw is a fresh weighted order over the targets' addresses,
    /// every address once, lower priorities last.
    #[test]
    fn each_draw_orders_the_targets_addresses_by_weight() {
        let a: SocketAddr = "192.0.2.1:5060".parse().unwrap();
        let a2: SocketAddr = "192.0.2.2:5060".parse().unwrap();
        let b: SocketAddr = "192.0.2.3:5060".parse().unwrap();
        let backup: SocketAddr = "192.0.2.4:5060".parse().unwrap();
        let choices = vec![
            Weighted {
                priority: 20,
                weight: 0,
                addrs: vec![backup, a],
            },
            Weighted {
                priority: 10,
                weight: 25,
                addrs: vec![a, a2],
            },
            Weighted {
                priority: 10,
                weight: 75,
                addrs: vec![b],
            },
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut b_first = 0;
        for _ in 0..2000 {
            let order = Weighted::draw(&choices, &mut rng);
            assert_eq!(order.len(), 4, "{order:?}");
            assert_eq!(order[3], backup, "{order:?}");
            if order[0] == b {
                b_first += 1;
            } else {
                assert_eq!(&order[..3], [a, a2, b]);
            }
        }
        assert!((1400..=1600).contains(&b_first), "{b_first}");
        assert_eq!(
            Weighted::draw(&Weighted::fixed(vec![b, a]), &mut rng),
            [b, a]
        );
    }
}
