//! The SIP edge of the dialler: outbound calls to a provider (UAC) and the
//! built-in sandbox provider (UAS), over UDP or TCP.
//!
//! Owns SIP messages ([`message`]), digest auth ([`auth`]), the SDP we
//! offer ([`sdp`]), the sans-IO call state machines ([`uac`] for our calls,
//! [`sandbox`] for the test provider) and their tokio drivers ([`ua`],
//! [`sandbox::serve`]), plus the load runner behind `dialler sip load`
//! ([`load`]). It never touches the store or campaign state: the runner
//! asks it to place calls and reads the outcomes.

pub mod auth;
pub mod load;

pub mod message;
pub mod register;
pub mod resolve;
pub mod sandbox;

pub mod sdp;
pub mod sipp;
pub mod tls;
pub mod ua;

pub mod uac;

use std::net::SocketAddr;
use std::time::Duration;

/// Errors of the SIP layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SipError {
    /// More bytes are needed to finish the message (stream transports).
    #[error("incomplete SIP message")]
    Incomplete,
    /// The bytes are not a SIP message we accept.
    #[error("malformed SIP message: {0}")]
    Malformed(&'static str),
    /// A mandatory header is missing.
    #[error("SIP message without {0} header")]
    MissingHeader(&'static str),
    /// A digest challenge we cannot answer.
    #[error("digest authentication: {0}")]
    Auth(&'static str),
    /// A ring timeout under the 15 s floor.
    #[error("ring timeout {0:?} is under the 15 s minimum")]
    RingTimeoutTooShort(Duration),
    /// A SIP URI we cannot dial.
    #[error("bad SIP URI {0:?}: {1}")]
    BadUri(String, &'static str),
    /// A socket error.
    #[error("{0}")]
    Io(String),
    /// The provider refused the connection.
    #[error("provider at {0} refused the connection")]
    Refused(SocketAddr),
    /// The UA task is gone (shut down).
    #[error("the SIP user agent has stopped")]
    Stopped,
    /// DNS could not locate the provider (RFC 3263).
    #[error("DNS: {0}")]
    Resolve(String),
    /// A TLS setting or handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
}

impl From<std::io::Error> for SipError {
    fn from(e: std::io::Error) -> SipError {
        SipError::Io(e.to_string())
    }
}

/// How the dialler finds and reaches SIP peers: the DNS server (default:
/// the system's), an extra trusted CA for TLS and the certificate to
/// listen with, and the public address to advertise behind NAT.
#[derive(Debug, Clone)]
pub struct SipNet {
    /// Ask this DNS server instead of `/etc/resolv.conf`'s.
    pub dns_server: Option<std::net::SocketAddr>,
    /// A PEM file of CA certificates trusted besides the system's.
    pub tls_ca: Option<std::path::PathBuf>,
    /// The certificate and private key (PEM files) a TLS provider's UA
    /// listens with, so the provider can open a connection to our Contact
    /// (without them it can only reuse ours).
    pub tls_listen: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// The address the provider sees us at (Via, Contact, SDP).
    pub external: Option<std::net::IpAddr>,
    /// The local address to bind (default: any address, a free port).
    pub bind: Option<std::net::SocketAddr>,
    /// The least time between two DNS lookups of a provider
    /// ([`ua::RELOOKUP_FLOOR`] unless a test wants it shorter).
    pub relookup_floor: std::time::Duration,
}

impl Default for SipNet {
    fn default() -> SipNet {
        SipNet {
            dns_server: None,
            tls_ca: None,
            tls_listen: None,
            external: None,
            bind: None,
            relookup_floor: ua::RELOOKUP_FLOOR,
        }
    }
}

impl SipNet {
    /// Resolves `uri` (RFC 3263) into UA settings.
    pub async fn ua_config(&self, uri: &resolve::SipUri) -> Result<ua::UaConfig, SipError> {
        Ok(self.locate(uri).await?.0)
    }

    /// [`SipNet::ua_config`], with the DNS answer it came from (whose TTL
    /// says when to look again, see [`ua::keep_resolved`]).
    pub async fn locate(
        &self,
        uri: &resolve::SipUri,
    ) -> Result<(ua::UaConfig, resolve::Resolved), SipError> {
        let resolved = resolve::locate(self.dns_server, uri).await?;
        tracing::info!(
            host = %uri.host,
            transport = resolved.transport.via_name(),
            addresses = ?resolved.addrs,
            "provider located"
        );
        let mut cfg = ua::UaConfig::resolved(&resolved, self.tls_ca.as_deref())?;
        if let Some((cert, key)) = &self.tls_listen {
            if resolved.transport == Transport::Tls {
                cfg.tls_server = Some(tls::server_config(cert, key)?);
            } else {
                tracing::warn!(
                    transport = resolved.transport.via_name(),
                    "--tls-cert is for a TLS provider; this one is not, so it is not used"
                );
            }
        }
        cfg.external = self.external;
        if let Some(bind) = self.bind {
            cfg.bind = bind;
        }
        Ok((cfg, resolved))
    }
}

/// A SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP: requests retransmitted on timers A and E.
    #[default]
    Udp,
    /// TCP: reliable, no retransmissions; messages framed by Content-Length.
    Tcp,
    /// TLS over TCP (`sips:`, `;transport=tls`): as TCP, encrypted, the
    /// provider's certificate checked against its name.
    Tls,
}

impl Transport {
    /// True for transports that deliver reliably (no retransmissions).
    pub fn reliable(self) -> bool {
        self != Transport::Udp
    }

    /// The transport a Via header value names (`SIP/2.0/TCP host...`, LWS
    /// allowed around the slashes, RFC 3261 25.1).
    pub fn from_via(via: &str) -> Option<Transport> {
        let sent_protocol = via.split(';').next()?;
        let (_, after) = sent_protocol.rsplit_once('/')?;
        match after
            .split_whitespace()
            .next()?
            .to_ascii_uppercase()
            .as_str()
        {
            "UDP" => Some(Transport::Udp),
            "TCP" => Some(Transport::Tcp),
            "TLS" => Some(Transport::Tls),
            _ => None,
        }
    }

    /// The Via protocol token.
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// A Contact header value for `user` at `addr`.
    pub fn contact(self, user: &str, addr: SocketAddr) -> String {
        match self {
            Transport::Udp => format!("<sip:{user}@{addr}>"),
            Transport::Tcp => format!("<sip:{user}@{addr};transport=tcp>"),
            Transport::Tls => format!("<sips:{user}@{addr};transport=tls>"),
        }
    }
}

/// A dialable SIP URI's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URI as given, used as Request-URI.
    pub uri: String,
    /// Where to send (host must be an IP address: no DNS here).
    pub addr: SocketAddr,
    /// Transport from `;transport=` (UDP by default).
    pub transport: Transport,
}

/// Checks that `uri` holds only what a SIP URI may (RFC 3261 25.1):
/// letters, digits, `-_.!~*'()`, the reserved `;/?:@&=+$,`, `[]` around an
/// IPv6 address, and `%HH` escapes. A space, CR or LF, a quote or `<>`
/// would let the URI end the Request-Line or a header early and add
/// headers of its own to every request it is put in.
pub(crate) fn uri_characters(uri: &str) -> Result<(), &'static str> {
    let b = uri.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                if !(i + 2 < b.len()
                    && b[i + 1].is_ascii_hexdigit()
                    && b[i + 2].is_ascii_hexdigit())
                {
                    return Err("a % must start an escape of two hex digits");
                }
                i += 3;
                continue;
            }
            c if c.is_ascii_alphanumeric() || b"-_.!~*'();/?:@&=+$,[]".contains(&c) => {}
            _ => {
                return Err(
                    "a SIP URI may hold no spaces, control characters, quotes, <>, {}, |, \\, ^, ` or non-ASCII letters unescaped (RFC 3261 25.1)",
                );
            }
        }
        i += 1;
    }
    Ok(())
}

/// `uri` after its `scheme` (given with its colon, lower case), compared
/// case-insensitively: a URI scheme is case-insensitive (RFC 3261 19.1.4,
/// RFC 3986 3.1), so `SIP:` is `sip:`.
pub fn after_scheme<'a>(uri: &'a str, scheme: &str) -> Option<&'a str> {
    uri.get(..scheme.len())
        .filter(|s| s.eq_ignore_ascii_case(scheme))
        .map(|_| &uri[scheme.len()..])
}

impl Target {
    /// Parses `sip:user@host[:port][;transport=tcp]` whose host is an IP
    /// address (agent phones, `--provider`). A provider named by DNS goes
    /// through [`resolve`] instead.
    pub fn parse(uri: &str) -> Result<Target, SipError> {
        let bad = |why| SipError::BadUri(masked_uri(uri), why);
        let u = resolve::SipUri::parse(uri)?;
        let ip = u.ip().ok_or_else(|| bad("host must be an IP address"))?;
        let transport = if u.secure {
            Transport::Tls
        } else {
            u.transport.unwrap_or_default()
        };
        // The default port of the transport (RFC 3263 4.2: 5061 for TLS).
        let port = u.port.unwrap_or(if transport == Transport::Tls {
            5061
        } else {
            5060
        });
        Ok(Target {
            uri: uri.to_string(),
            addr: SocketAddr::new(ip, port),
            transport,
        })
    }
}

/// A SIP URI with the digits of its user part masked (for logs: the user
/// part is the customer's phone number).
pub fn masked_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return crate::phone::mask(uri);
    };
    match rest.split_once('@') {
        Some((user, host)) => format!("{scheme}:{}@{host}", crate::phone::mask(user)),
        None => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_parses_port_transport_and_default_port() {
        let t = Target::parse("sip:+919876543210@127.0.0.1:5080;transport=tcp").unwrap();
        assert_eq!(t.addr, "127.0.0.1:5080".parse().unwrap());
        assert_eq!(t.transport, Transport::Tcp);
        let t = Target::parse("sip:100@10.1.2.3").unwrap();
        assert_eq!(t.addr, "10.1.2.3:5060".parse().unwrap());
        assert_eq!(t.transport, Transport::Udp);
        assert!(Target::parse("sip:100@provider.example").is_err());
        assert!(Target::parse("tel:+15551234567").is_err());
        // The scheme is case-insensitive (RFC 3261 19.1.4).
        assert_eq!(Target::parse("SIP:100@10.1.2.3").unwrap().addr.port(), 5060);
        assert_eq!(
            Target::parse("Sips:100@10.1.2.3").unwrap().transport,
            Transport::Tls
        );
        assert!(Target::parse("sip:1@127.0.0.1;transport=sctp").is_err());
        // TLS's default port is 5061 (RFC 3263 4.2), the parameter's name
        // and value any case; a user part with ';' keeps its host.
        let t = Target::parse("sip:1@127.0.0.1;Transport=TLS").unwrap();
        assert_eq!((t.addr.port(), t.transport), (5061, Transport::Tls));
        let t = Target::parse("sip:+15551230000;npdi@127.0.0.1:5070").unwrap();
        assert_eq!(t.addr, "127.0.0.1:5070".parse().unwrap());
    }

    #[test]
    fn masked_uri_hides_all_but_the_last_four_digits() {
        assert_eq!(
            masked_uri("sip:+919876543210@127.0.0.1"),
            "sip:********3210@127.0.0.1"
        );
        let e = Target::parse("sip:+919876543210@nowhere").unwrap_err();
        assert!(!e.to_string().contains("98765"));
    }

    #[test]
    fn a_via_names_its_transport() {
        assert_eq!(
            Transport::from_via("SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKx"),
            Some(Transport::Tcp)
        );
        assert_eq!(
            Transport::from_via("SIP/2.0/tls host"),
            Some(Transport::Tls)
        );
        assert_eq!(Transport::from_via("SIP/2.0/UDP h"), Some(Transport::Udp));
        assert_eq!(Transport::from_via("SIP/2.0/SCTP h"), None);
        assert_eq!(
            Transport::from_via("SIP / 2.0 / TCP h;branch=z9hG4bKx"),
            Some(Transport::Tcp)
        );
        assert_eq!(Transport::from_via(""), None);
    }
}
