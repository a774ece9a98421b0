//! SIP message parsing and building (RFC 3261 section 7), without I/O.
//!
//! Owns the wire format only: start line, headers (compact forms folded to
//! their full names, continuation lines joined) and the body framed by
//! Content-Length. It knows nothing about transactions or dialogs.
//!
//! Why a parser of our own rather than `rsip`: the UA reads a dozen headers
//! and copies the rest verbatim, at hundreds of calls per second. A flat
//! `Vec` of header lines parsed in one pass is cheap, has no panicking path
//! (fuzzed in `tests/sip_fuzz.rs`), and frees us from tracking an external
//! crate's typed-header API. `rsipstack` was not taken either: its
//! transaction layer owns the timers and sockets, and the dialler needs its
//! own sans-IO state machine to be driven by the simulator's virtual time.

use std::borrow::Cow;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

use super::SipError;

/// Largest message we accept (a UDP datagram cannot be bigger anyway).
pub const MAX_MESSAGE: usize = 65_535;

/// A SIP request method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE: start a session.
    Invite,
    /// ACK: confirm a final response to INVITE.
    Ack,
    /// BYE: end a session.
    Bye,
    /// CANCEL: abandon a pending INVITE.
    Cancel,
    /// OPTIONS: capability query, also used as a keep-alive.
    Options,
    /// PRACK: acknowledge a reliable provisional response (RFC 3262).
    Prack,
    /// UPDATE: change the session before or without a re-INVITE (RFC 3311).
    Update,
    /// REGISTER: bind a contact at a registrar.
    Register,
    /// Any other method, kept verbatim.
    Other(String),
}

impl Method {
    /// Parses a method token (case-sensitive, as RFC 3261 says).
    pub fn parse(token: &str) -> Method {
        match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "PRACK" => Method::Prack,
            "UPDATE" => Method::Update,
            "REGISTER" => Method::Register,
            other => Method::Other(other.to_string()),
        }
    }

    /// The method's token on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Register => "REGISTER",
            Method::Other(s) => s,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Header names we meet often, in their usual spelling. A name that
/// matches one (case-insensitively) is kept as the static string, with no
/// allocation of its own: a busy trunk parses and builds thousands of
/// messages a second, and a `String` per name was a tenth of the load's
/// allocations.
const KNOWN_NAMES: &[&str] = &[
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Content-Length",
    "Content-Type",
    "Max-Forwards",
    "Record-Route",
    "Route",
    "Allow",
    "Supported",
    "Require",
    "Unsupported",
    "Session-Expires",
    "Min-SE",
    "User-Agent",
    "Server",
    "Expires",
    "Min-Expires",
    "Retry-After",
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "Authorization",
    "Proxy-Authorization",
    "RSeq",
    "RAck",
    "P-Asserted-Identity",
    "Privacy",
    "Reason",
    "Subject",
    "Accept",
    "Allow-Events",
    "Date",
    "Warning",
    "X-AMD",
];

/// A header name: a known one without an allocation, any other owned.
fn name_of(name: &str) -> Cow<'static, str> {
    KNOWN_NAMES
        .iter()
        .find(|k| k.len() == name.len() && k.eq_ignore_ascii_case(name))
        .map_or_else(|| Cow::Owned(name.to_string()), |k| Cow::Borrowed(*k))
}

/// Header lines in wire order, names in their full form (the usual
/// spelling for the names in [`KNOWN_NAMES`]; names compare
/// case-insensitively anyway).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(Cow<'static, str>, String)>);

impl Headers {
    /// No headers.
    pub fn new() -> Headers {
        Headers(Vec::new())
    }

    /// Appends a header line.
    pub fn push(&mut self, name: impl AsRef<str>, value: impl Into<String>) {
        self.0.push((name_of(name.as_ref()), value.into()));
    }

    /// The first value of a header (name compared case-insensitively).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Removes every line of a header.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Keeps only the lines of the named headers (names compared
    /// case-insensitively), and gives back the memory of the rest.
    pub fn keep_only(&mut self, names: &[&str]) {
        self.0
            .retain(|(n, _)| names.iter().any(|k| n.eq_ignore_ascii_case(k)));
        self.0.shrink_to_fit();
    }

    /// Replaces every line of a header by one value.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.push(name, value);
    }

    /// The first value of a header, to change in place.
    pub fn first_mut(&mut self, name: &str) -> Option<&mut String> {
        self.0
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// All lines, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_ref(), v.as_str()))
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The Request-URI, verbatim.
    pub uri: String,
    /// Header lines (Content-Length is written by [`Request::encode`]).
    pub headers: Headers,
    /// The body (SDP or empty).
    pub body: Vec<u8>,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, 100 to 699.
    pub code: u16,
    /// Reason phrase.
    pub reason: String,
    /// Header lines (Content-Length is written by [`Response::encode`]).
    pub headers: Headers,
    /// The body (SDP or empty).
    pub body: Vec<u8>,
}

/// A parsed SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl Message {
    /// The message's headers.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }
}

/// Full name of a compact header form (RFC 3261 section 7.3.3).
fn full_name(name: &str) -> &str {
    if name.len() != 1 {
        return name;
    }
    match name.as_bytes()[0].to_ascii_lowercase() {
        b'i' => "Call-ID",
        b'm' => "Contact",
        b'e' => "Content-Encoding",
        b'l' => "Content-Length",
        b'c' => "Content-Type",
        b'f' => "From",
        b's' => "Subject",
        b'k' => "Supported",
        b't' => "To",
        b'v' => "Via",
        b'x' => "Session-Expires",
        _ => name,
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Parses one message from the start of `buf`.
///
/// `stream` is true for TCP: the message ends where Content-Length says, a
/// missing Content-Length means an empty body, and a short buffer gives
/// [`SipError::Incomplete`] (read more and try again). Over UDP the datagram
/// is the message. Returns the message and the bytes it used. Leading CRLF
/// keep-alives are skipped.
pub fn parse(buf: &[u8], stream: bool) -> Result<(Message, usize), SipError> {
    let (message, used) = parse_framed(buf, stream)?;
    Ok((message?, used))
}

/// [`parse`], telling a message that cannot be framed (the outer error:
/// a stream must then be closed, RFC 3261 18.3) from one that is framed
/// but not a valid message (the inner error, with the bytes it took: a
/// missing mandatory header, a bad start line or CSeq), which a stream
/// can skip and go on from, so one peer's bad message does not cut every
/// call on the connection.
pub fn parse_framed(
    buf: &[u8],
    stream: bool,
) -> Result<(Result<Message, SipError>, usize), SipError> {
    let skip = buf
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(buf.len());
    let rest = &buf[skip..];
    if rest.is_empty() {
        return Err(SipError::Incomplete);
    }
    let Some(head_end) = find_head_end(rest) else {
        if rest.len() > MAX_MESSAGE {
            return Err(SipError::Malformed("header section too large"));
        }
        return Err(SipError::Incomplete);
    };
    let head =
        std::str::from_utf8(&rest[..head_end]).map_err(|_| SipError::Malformed("not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or_default();
    let mut headers = Headers::new();
    let mut defect: Option<&'static str> = None;
    for line in lines {
        if line.starts_with([' ', '\t']) {
            // Folded continuation of the previous header (RFC 3261 7.3.1).
            match headers.0.last_mut() {
                Some((_, v)) => {
                    // A value that starts on the continuation line has no
                    // leading space (`Call-ID:` CRLF SP `abc` is `abc`).
                    if !v.is_empty() {
                        v.push(' ');
                    }
                    v.push_str(line.trim());
                    if line.chars().any(is_ctl) {
                        defect.get_or_insert("control character in a header value");
                    }
                }
                None => return Err(SipError::Malformed("continuation before any header")),
            }
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(SipError::Malformed("header line without a colon"))?;
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SipError::Malformed("bad header name"));
        }
        let name = full_name(name);
        let value = value.trim();
        if SINGLE.iter().any(|s| s.eq_ignore_ascii_case(name))
            && let Some(first) = headers.get(name)
        {
            // Two lengths that differ leave a stream without framing;
            // anything else repeated spoils this message only.
            if name == "Content-Length" && first != value {
                return Err(SipError::Malformed("two Content-Lengths that differ"));
            }
            // RFC 4475 3.3.8-3.3.9: which one would count is anyone's
            // guess.
            defect.get_or_insert("a header that may appear once is repeated");
        }
        // No control characters in a value (RFC 3261 25.1: TEXT-UTF8 has
        // none of C0 or DEL): a bare CR or LF would end a header line early
        // in anything that copies the value into a message of ours.
        if value.chars().any(is_ctl) {
            defect.get_or_insert("control character in a header value");
        }
        headers.push(name, value);
    }
    // A request's address and route lists must keep their grammar
    // (responses are read leniently: dropping one would only stall a
    // call that a sloppy but harmless peer answered).
    if !start.starts_with("SIP/") {
        for (name, value) in &headers.0 {
            if let Some(why) = list_defect(name, value) {
                defect.get_or_insert(why);
            }
        }
    }
    let body_start = head_end + 4;
    let available = rest.len() - body_start;
    let body_len = match headers.get("Content-Length") {
        Some(v) => digits(v.trim())
            .and_then(|d| d.parse::<usize>().ok())
            .ok_or(SipError::Malformed("bad Content-Length"))?,
        None if stream => 0,
        None => available,
    };
    if body_len > MAX_MESSAGE {
        return Err(SipError::Malformed("Content-Length too large"));
    }
    if body_len > available {
        return Err(if stream {
            SipError::Incomplete
        } else {
            SipError::Malformed("body shorter than Content-Length")
        });
    }
    let body = rest[body_start..body_start + body_len].to_vec();
    let used = skip + body_start + body_len;
    // A framed message with a defect is refused alone: a stream goes on.
    let message = match defect {
        Some(why) => Err(SipError::Malformed(why)),
        None => build(start, headers, body),
    };
    Ok((message, used))
}

/// The 400 a datagram that is a request but not a valid one gets (RFC
/// 3261 8.2, 18.3: a body shorter than its Content-Length, a missing
/// Call-ID or CSeq, a bad header line), or the 505 of another SIP
/// version: its Via, From, To, Call-ID and CSeq copied as far as they
/// can be read, a To tag added. `None` when it is not a request line
/// with a Via to answer along, or is an ACK (never answered).
pub fn bad_request(bytes: &[u8]) -> Option<Vec<u8>> {
    let start = bytes.iter().position(|b| *b != b'\r' && *b != b'\n')?;
    let text = String::from_utf8_lossy(&bytes[start..]);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?;
    // The method first and the version last, however the spaces between
    // fell (RFC 4475 3.1.2.8-9: whitespace in or before the URI).
    let mut parts = request_line.split_whitespace();
    let method = parts.next()?;
    let version = parts.next_back()?;
    if method == "ACK" || !is_token(method) || !version.to_ascii_uppercase().starts_with("SIP/") {
        return None;
    }
    // Another SIP version: 505 (RFC 3261 8.2.4 does not name it, RFC 4475
    // 3.1.2.16 does).
    let status = if version.eq_ignore_ascii_case("SIP/2.0") {
        "400 Bad Request"
    } else {
        "505 Version Not Supported"
    };
    let mut copied: Vec<(&str, String)> = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = full_name(name.trim());
        let keep = ["Via", "From", "To", "Call-ID", "CSeq"]
            .into_iter()
            .find(|k| k.eq_ignore_ascii_case(name));
        if let Some(k) = keep
            && (k == "Via" || !copied.iter().any(|(n, _)| *n == k))
        {
            let value = value.trim();
            // Nothing that could end a header line early goes back.
            if !value.contains(is_ctl) {
                copied.push((k, value.to_string()));
            }
        }
    }
    if !copied.iter().any(|(n, _)| *n == "Via") {
        return None;
    }
    let mut out = format!("SIP/2.0 {status}\r\n");
    for (name, value) in &copied {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        if *name == "To" && tag_of(value).is_none() {
            out.push_str(";tag=dialler");
        }
        out.push_str("\r\n");
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

/// A framed message from its start line, headers and body.
fn build(start: &str, headers: Headers, body: Vec<u8>) -> Result<Message, SipError> {
    for required in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if headers.get(required).is_none() {
            return Err(SipError::MissingHeader(required));
        }
    }
    // The version is case-insensitive (RFC 3261 7.1); we send it upper case.
    let message = if let Some(status) = start
        .get(..8)
        .filter(|v| v.eq_ignore_ascii_case("SIP/2.0 "))
        .map(|_| &start[8..])
    {
        let (code, reason) = status.split_once(' ').unwrap_or((status, ""));
        // Exactly three digits (RFC 3261 25.1 Status-Code): not `+200`,
        // not `0200`.
        let code: u16 = Some(code)
            .filter(|c| c.len() == 3)
            .and_then(digits)
            .and_then(|c| c.parse().ok())
            .ok_or(SipError::Malformed("bad status code"))?;
        if !(100..=699).contains(&code) {
            return Err(SipError::Malformed("status code out of range"));
        }
        Message::Response(Response {
            code,
            reason: reason.to_string(),
            headers,
            body,
        })
    } else {
        let mut parts = start.split(' ');
        let (Some(method), Some(uri), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SipError::Malformed("bad request line"));
        };
        if !version.eq_ignore_ascii_case("SIP/2.0") {
            return Err(SipError::Malformed("not SIP/2.0"));
        }
        if !is_token(method) {
            return Err(SipError::Malformed("bad method"));
        }
        if !is_request_uri(uri) {
            return Err(SipError::Malformed("bad Request-URI"));
        }
        Message::Request(Request {
            method: Method::parse(method),
            uri: uri.to_string(),
            headers,
            body,
        })
    };
    // CSeq must be usable by every caller: check it once here. A
    // request's CSeq names its own method (RFC 3261 8.1.1.5; RFC 4475
    // 3.1.2.17).
    let (n, method) = cseq(message.headers())?;
    if let Message::Request(r) = &message {
        if r.method != method {
            return Err(SipError::Malformed(
                "CSeq method differs from the request's",
            ));
        }
        // A request outside a dialog starts its sequence under 2**31 (RFC
        // 3261 8.1.1.5); in one the number only has to fit 32 bits
        // (12.2.1.1).
        if n >= 1 << 31 && r.headers.get("To").and_then(tag_of).is_none() {
            return Err(SipError::Malformed(
                "CSeq of 2**31 or more outside a dialog",
            ));
        }
    }
    Ok(message)
}

fn encode_into(out: &mut Vec<u8>, headers: &Headers, body: &[u8]) {
    for (n, v) in headers.iter() {
        if n.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        for part in [n, ": ", v, "\r\n"] {
            out.extend_from_slice(part.as_bytes());
        }
    }
    let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
    out.extend_from_slice(body);
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, uri: impl Into<String>) -> Request {
        Request {
            method,
            uri: uri.into(),
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// The wire form, with Content-Length computed.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        for part in [self.method.as_str(), " ", &self.uri, " SIP/2.0\r\n"] {
            out.extend_from_slice(part.as_bytes());
        }
        encode_into(&mut out, &self.headers, &self.body);
        out
    }
}

impl Response {
    /// A response to `req` (RFC 3261 8.2.6): Via, From, To, Call-ID and CSeq
    /// copied; `to_tag` added to To when it has none.
    pub fn to(req: &Request, code: u16, reason: &str, to_tag: Option<&str>) -> Response {
        let mut headers = Headers::new();
        for v in req.headers.get_all("Via") {
            headers.push("Via", v);
        }
        // RFC 3261 8.2.6.2: a final or provisional response (not a 100) to
        // a request whose To has no tag carries one. Without one given, a
        // tag derived from the request's transaction, so that a
        // retransmission gets the same response.
        let derived;
        let to_tag = match to_tag {
            Some(t) => Some(t),
            None if code > 100 => {
                derived = stateless_tag(req);
                Some(derived.as_str())
            }
            None => None,
        };
        for name in ["From", "To", "Call-ID", "CSeq"] {
            if let Some(v) = req.headers.get(name) {
                let value = match (name, to_tag) {
                    ("To", Some(tag)) if tag_of(v).is_none() => format!("{v};tag={tag}"),
                    _ => v.to_string(),
                };
                headers.push(name, value);
            }
        }
        Response {
            code,
            reason: reason.to_string(),
            headers,
            body: Vec::new(),
        }
    }

    /// The wire form, with Content-Length computed.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        let _ = write!(out, "SIP/2.0 {} {}\r\n", self.code, self.reason);
        encode_into(&mut out, &self.headers, &self.body);
        out
    }
}

/// Header fields a message carries at most once (RFC 3261 20): a second
/// one makes the message malformed.
const SINGLE: [&str; 7] = [
    "Call-ID",
    "CSeq",
    "From",
    "To",
    "Content-Length",
    "Max-Forwards",
    "Content-Type",
];

/// A control character a header value may not hold (RFC 3261 25.1:
/// TEXT-UTF8 has none of C0 or DEL; a tab is whitespace).
fn is_ctl(c: char) -> bool {
    c.is_ascii_control() && c != '\t'
}

/// `text` when it is one or more ASCII digits (no sign, which Rust's
/// integer parsing would take).
fn digits(text: &str) -> Option<&str> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then_some(text)
}

/// An RFC 3261 token (25.1): a method name, for one.
pub fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// A Request-URI as RFC 3261 25.1 has it: an absolute URI, `scheme:`
/// then no whitespace and no angle brackets (RFC 4475 3.1.2.7).
fn is_request_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        && !rest.is_empty()
        && !rest.contains(|c: char| c.is_whitespace() || c == '<' || c == '>' || c.is_control())
}

/// The CSeq number and method of a message.
pub fn cseq(headers: &Headers) -> Result<(u32, Method), SipError> {
    let v = headers.get("CSeq").ok_or(SipError::MissingHeader("CSeq"))?;
    let mut it = v.split_whitespace();
    let n = it
        .next()
        .and_then(digits)
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or(SipError::Malformed("bad CSeq number"))?;
    let m = it
        .next()
        .ok_or(SipError::Malformed("CSeq without method"))?;
    Ok((n, Method::parse(m)))
}

/// A parameter of a header value (`;name=value`), outside quotes and the
/// `<...>` URI.
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let after_uri = match uri_span(value) {
        Some((_, end)) => &value[end + 1..],
        None => value,
    };
    after_uri.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"'))
    })
}

/// The `tag` parameter of a From or To value.
pub fn tag_of(value: &str) -> Option<&str> {
    param(value, "tag").filter(|t| !t.is_empty())
}

/// The characters of a header value outside its quoted strings and
/// `<...>` URIs, with their byte offsets. The `"` and `<` that open one
/// and the `>` that closes a URI are given too, so a caller sees where
/// each starts and ends; after the last, `quoted` and `angle` say whether
/// one was left open. The one scanner of RFC 3261 25.1's quoting here.
struct Outside<'a> {
    chars: std::str::CharIndices<'a>,
    quoted: bool,
    escaped: bool,
    angle: bool,
}

impl<'a> Outside<'a> {
    fn new(value: &'a str) -> Outside<'a> {
        Outside {
            chars: value.char_indices(),
            quoted: false,
            escaped: false,
            angle: false,
        }
    }
}

impl Iterator for Outside<'_> {
    type Item = (usize, char);

    fn next(&mut self) -> Option<(usize, char)> {
        loop {
            let (i, c) = self.chars.next()?;
            if self.quoted {
                match (self.escaped, c) {
                    (true, _) => self.escaped = false,
                    (false, '\\') => self.escaped = true,
                    (false, '"') => self.quoted = false,
                    _ => {}
                }
                continue;
            }
            if self.angle {
                if c != '>' {
                    continue;
                }
                self.angle = false;
            }
            match c {
                '"' => self.quoted = true,
                '<' => self.angle = true,
                _ => {}
            }
            return Some((i, c));
        }
    }
}

/// The entries of a header that holds a comma-separated list (Route,
/// Record-Route, Contact, Via), in order: commas inside `<...>` or quotes
/// do not split.
pub fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in Outside::new(value) {
        if c == ',' {
            out.push(value[start..i].trim());
            start = i + 1;
        }
    }
    out.push(value[start..].trim());
    out.retain(|e| !e.is_empty());
    out
}

/// What breaks RFC 3261 25.1's grammar in a Via, From, To, Contact,
/// Route or Record-Route value: an empty list element or parameter
/// (`;;`, `,,`, a trailing `;`: RFC 4475 3.1.2.1, badinv01), a quoted
/// display name that never closes (3.1.2.7, quotbal, which RFC 4475 lets
/// an element refuse rather than guess where the name ends) or a `<`
/// without its `>`. Inside quotes and `<...>` anything goes here (the
/// URI is read on its own). `None` for other headers and for `*`.
fn list_defect(name: &str, value: &str) -> Option<&'static str> {
    const CHECKED: [&str; 6] = ["Via", "From", "To", "Contact", "Route", "Record-Route"];
    if !CHECKED.iter().any(|h| h.eq_ignore_ascii_case(name)) || value == "*" {
        return None;
    }
    // Whether the text since the last `;` or `,` (or the start) holds
    // anything.
    let mut filled = false;
    let mut scan = Outside::new(value);
    for (_, c) in scan.by_ref() {
        match c {
            ';' | ',' if !filled => {
                return Some("an empty element or parameter in an address list");
            }
            ';' | ',' => filled = false,
            c if !c.is_whitespace() => filled = true,
            _ => {}
        }
    }
    if scan.quoted {
        Some("a quoted string that never closes")
    } else if scan.angle {
        Some("a '<' without its '>'")
    } else if !filled && !value.trim().is_empty() {
        Some("an empty element or parameter in an address list")
    } else {
        None
    }
}

/// Every entry of every line of a list header, in wire order.
pub fn list_entries<'a>(headers: &'a Headers, name: &'a str) -> Vec<&'a str> {
    headers.get_all(name).flat_map(split_list).collect()
}

/// A To tag for a response sent without dialog state: the same for every
/// retransmission of the request (its Call-ID, From tag and top Via
/// branch), different between transactions.
pub fn stateless_tag(req: &Request) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    req.headers.get("Call-ID").hash(&mut h);
    req.headers.get("From").and_then(tag_of).hash(&mut h);
    top_branch(&req.headers).hash(&mut h);
    format!("{:012x}", h.finish() >> 16)
}

/// The branch of the top Via.
pub fn top_branch(headers: &Headers) -> Option<&str> {
    let via = headers.get("Via")?;
    let first = via.split(',').next().unwrap_or(via);
    param(first, "branch")
}

/// Stamps the top Via of a request that came over UDP from `source` as
/// the server transport must (RFC 3261 18.2.1: `received` when the
/// sent-by host is not the address it came from; RFC 3581 4: with `rport`,
/// `received` always and `rport` set to the source port), and returns
/// where its responses go (RFC 3261 18.2.2, RFC 3581 4): the source
/// address and port when the sender asked for `rport`, else the source
/// address and the sent-by port (5060 when none is given). A Via that
/// cannot be read is left alone and the response goes back to the source.
pub fn stamp_via_received(headers: &mut Headers, source: SocketAddr) -> SocketAddr {
    let Some(line) = headers.first_mut("Via") else {
        return source;
    };
    let Some(top) = split_list(line).first().copied() else {
        return source;
    };
    // Where the top entry sits in the line (split_list trims it).
    let start = top.as_ptr() as usize - line.as_ptr() as usize;
    let end = start + top.len();
    let mut parts = top.split(';');
    let proto_and_sent_by = parts.next().unwrap_or_default();
    // sent-protocol is `name / version / transport` (LWS allowed around
    // each slash, RFC 3261 25.1); the sent-by follows the transport.
    let Some((host, port)) = proto_and_sent_by
        .rsplit_once('/')
        .and_then(|(_, after)| {
            let after = after.trim_start();
            let rest = after.trim_start_matches(|c: char| !c.is_whitespace());
            let sent_by = rest.trim();
            (!sent_by.is_empty() && !sent_by.contains(char::is_whitespace)).then_some(sent_by)
        })
        .and_then(sent_by_host_port)
    else {
        return source;
    };
    let params: Vec<&str> = parts.map(str::trim).filter(|p| !p.is_empty()).collect();
    let name_of = |p: &str| p.split('=').next().unwrap_or(p).trim().to_ascii_lowercase();
    let rport = params.iter().any(|p| name_of(p) == "rport");
    let host_is_source = host.parse::<IpAddr>().ok() == Some(source.ip());
    let mut entry = proto_and_sent_by.trim_end().to_string();
    for p in params
        .iter()
        .filter(|p| !matches!(name_of(p).as_str(), "rport" | "received"))
    {
        entry.push(';');
        entry.push_str(p);
    }
    if rport || !host_is_source {
        entry.push_str(&format!(";received={}", source.ip()));
    }
    if rport {
        entry.push_str(&format!(";rport={}", source.port()));
    }
    line.replace_range(start..end, &entry);
    if rport {
        source
    } else {
        SocketAddr::new(source.ip(), port.unwrap_or(5060))
    }
}

/// The host and port of a Via's sent-by (`host`, `host:port`, `[v6]` or
/// `[v6]:port`), or `None` if it is not one.
fn sent_by_host_port(sent_by: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = match sent_by.strip_prefix('[') {
        Some(rest) => {
            let (h, after) = rest.split_once(']')?;
            (h, after.strip_prefix(':'))
        }
        None => match sent_by.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (sent_by, None),
        },
    };
    if host.is_empty() {
        return None;
    }
    match port {
        Some(p) => Some((host, Some(p.parse().ok().filter(|&p: &u16| p != 0)?))),
        None => Some((host, None)),
    }
}

/// The URI inside a name-addr (`"Name" <sip:x@y>;tag=1` gives `sip:x@y`),
/// or the addr-spec up to its parameters.
pub fn uri_of(value: &str) -> &str {
    match uri_span(value) {
        Some((a, b)) => &value[a + 1..b],
        None => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// Where a name-addr's `<` and `>` are: the first `<` outside a quoted
/// display name (`"<sip:evil>" <sip:real@h>` is `sip:real@h`), and the
/// `>` after it.
fn uri_span(value: &str) -> Option<(usize, usize)> {
    let mut scan = Outside::new(value);
    let (a, _) = scan.find(|&(_, c)| c == '<')?;
    let (b, _) = scan.find(|&(_, c)| c == '>')?;
    Some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4475 3.1.2.1 (badinv01) and 3.1.2.7 (quotbal) are refused;
    /// quoted and bracketed separators, a lone `*` and empty values are not
    /// list defects.
    #[test]
    fn broken_address_lists_are_defects() {
        for (name, value) in [
            ("Via", "SIP/2.0/UDP 192.0.2.15;;,;,,"),
            ("Via", "SIP/2.0/UDP 192.0.2.15;branch=z9hG4bK1;"),
            ("v", ", SIP/2.0/UDP 192.0.2.15"),
            ("Contact", "\"Joe\" <sip:joe@example.org>;;;;"),
            ("To", "\"Mr. J. User <sip:j.user@example.com>"),
            ("From", "\"a \\\" b <sip:a@b>;tag=1"),
            ("Record-Route", "<sip:p1@example.com;lr"),
        ] {
            assert!(
                list_defect(full_name(name), value).is_some(),
                "{name}: {value}"
            );
        }
        for (name, value) in [
            (
                "Via",
                "SIP/2.0/UDP 192.0.2.15;branch=z9hG4bK1;rport, SIP/2.0/TCP [2001:db8::1]:5060;received=1.2.3.4",
            ),
            ("To", "\"a;b,c \\\" d\" <sip:a@b;lr;x=1,2>;tag=9"),
            ("From", "sip:caller@example.net;tag=134161461246"),
            ("Contact", "*"),
            ("Contact", ""),
            ("Subject", ";;,,"),
        ] {
            assert_eq!(list_defect(full_name(name), value), None, "{name}: {value}");
        }
    }

    /// On a stream, a message that frames but is defective (a header
    /// that may appear once, twice; a control character) is refused
    /// alone and the next one is read; two Content-Lengths that differ
    /// leave no framing. A C1 character (UTF-8 text, RFC 3261 25.1) is
    /// fine.
    #[test]
    fn a_defective_message_on_a_stream_is_refused_alone() {
        let msg = |extra: &str| {
            format!(
                "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
            )
        };
        for bad in [
            "Call-ID: other\r\n",
            "Content-Length: 0\r\n",
            "Subject: a\u{1b}b\r\n",
            "Subject: a\r\n \u{0}b\r\n",
        ] {
            let stream = format!("{}{}", msg(bad), msg(""));
            let (first, used) = parse_framed(stream.as_bytes(), true).unwrap();
            assert!(first.is_err(), "{bad:?}");
            let (second, _) = parse_framed(&stream.as_bytes()[used..], true).unwrap();
            assert!(second.is_ok(), "{bad:?}: the next message is read");
        }
        let differ = msg("Content-Length: 5\r\n");
        assert!(parse_framed(differ.as_bytes(), true).is_err());
        let c1 = msg("Subject: caf\u{e9} \u{85}\r\n");
        assert!(parse(c1.as_bytes(), true).is_ok());
    }

    #[test]
    fn a_quoted_display_name_hides_nothing() {
        let v = r#""<sip:evil@x>;tag=no" <sip:real@h>;tag=yes"#;
        assert_eq!(uri_of(v), "sip:real@h");
        assert_eq!(tag_of(v), Some("yes"));
        let v = r#""a \" <sip:evil@x>" <sip:real@h>"#;
        assert_eq!(uri_of(v), "sip:real@h");
        assert_eq!(uri_of("<sip:a@b>;expires=5"), "sip:a@b");
        assert_eq!(uri_of("sip:a@b;lr"), "sip:a@b");
    }

    #[test]
    fn list_headers_split_on_commas_outside_brackets_and_quotes() {
        let v = r#"<sip:p1.example;lr>, "A, B" <sip:p2.example;lr;x="1,2">,<sip:p3.example>"#;
        assert_eq!(
            split_list(v),
            vec![
                "<sip:p1.example;lr>",
                r#""A, B" <sip:p2.example;lr;x="1,2">"#,
                "<sip:p3.example>"
            ]
        );
        let mut h = Headers::new();
        h.push("Record-Route", "<sip:a;lr>, <sip:b;lr>");
        h.push("Record-Route", "<sip:c;lr>");
        assert_eq!(
            list_entries(&h, "Record-Route"),
            vec!["<sip:a;lr>", "<sip:b;lr>", "<sip:c;lr>"]
        );
    }

    const INVITE: &str = "INVITE sip:bob@127.0.0.1:5060 SIP/2.0\r\n\
v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
Max-Forwards: 70\r\n\
f: <sip:alice@127.0.0.1>;tag=abc\r\n\
t: <sip:bob@127.0.0.1>\r\n\
i: call-1@host\r\n\
CSeq: 1 INVITE\r\n\
Subject: folded\r\n  over two lines\r\n\
l: 4\r\n\r\nv=0\r\n";

    #[test]
    fn compact_forms_parse_to_full_names_and_folded_lines_join() {
        let (m, used) = parse(INVITE.as_bytes(), true).unwrap();
        assert_eq!(
            used,
            INVITE.len() - 1,
            "one byte past Content-Length is left"
        );
        let Message::Request(r) = m else {
            panic!("request expected")
        };
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.headers.get("call-id"), Some("call-1@host"));
        assert_eq!(r.headers.get("Subject"), Some("folded over two lines"));
        assert_eq!(r.body, b"v=0\r");
        assert_eq!(top_branch(&r.headers), Some("z9hG4bK1"));
        assert_eq!(tag_of(r.headers.get("From").unwrap()), Some("abc"));
        assert_eq!(tag_of(r.headers.get("To").unwrap()), None);
    }

    #[test]
    fn a_stream_with_a_short_body_is_incomplete_and_a_datagram_is_malformed() {
        let cut = &INVITE.as_bytes()[..INVITE.len() - 4];
        assert_eq!(parse(cut, true).unwrap_err(), SipError::Incomplete);
        assert!(matches!(parse(cut, false), Err(SipError::Malformed(_))));
    }

    #[test]
    fn two_messages_in_a_stream_parse_one_after_the_other() {
        let one = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let both = format!("{one}\r\n{one}");
        let (m, used) = parse(both.as_bytes(), true).unwrap();
        assert!(matches!(m, Message::Response(ref r) if r.code == 180));
        let (m2, used2) = parse(&both.as_bytes()[used..], true).unwrap();
        assert_eq!(m, m2);
        assert_eq!(used + used2, both.len());
    }

    #[test]
    fn encode_then_parse_gives_the_same_request() {
        let (m, _) = parse(INVITE.as_bytes(), true).unwrap();
        let Message::Request(r) = m else {
            panic!("request expected")
        };
        let (again, _) = parse(&r.encode(), true).unwrap();
        assert_eq!(again, Message::Request(r));
    }

    #[test]
    fn response_to_copies_vias_and_adds_the_to_tag_once() {
        let (Message::Request(r), _) = parse(INVITE.as_bytes(), true).unwrap() else {
            panic!("request expected")
        };
        let resp = Response::to(&r, 486, "Busy Here", Some("xyz"));
        assert_eq!(tag_of(resp.headers.get("To").unwrap()), Some("xyz"));
        let (Message::Response(p), _) = parse(&resp.encode(), false).unwrap() else {
            panic!("response expected")
        };
        assert_eq!(p.code, 486);
        assert_eq!(cseq(&p.headers).unwrap(), (1, Method::Invite));
    }

    #[test]
    fn missing_mandatory_headers_and_bad_status_are_errors() {
        let no_callid = INVITE.replace("i: call-1@host\r\n", "");
        assert_eq!(
            parse(no_callid.as_bytes(), true).unwrap_err(),
            SipError::MissingHeader("Call-ID")
        );
        let bad =
            "SIP/2.0 99 Odd\r\nVia: x\r\nFrom: a\r\nTo: b\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
        assert!(matches!(
            parse(bad.as_bytes(), false),
            Err(SipError::Malformed(_))
        ));
        let bad_cseq = INVITE.replace("CSeq: 1 INVITE", "CSeq: x INVITE");
        assert!(parse(bad_cseq.as_bytes(), true).is_err());
    }

    #[test]
    fn uri_of_reads_name_addr_and_addr_spec() {
        assert_eq!(
            uri_of("\"Bob\" <sip:bob@h:5060;transport=tcp>;tag=1"),
            "sip:bob@h:5060;transport=tcp"
        );
        assert_eq!(uri_of("sip:bob@h;tag=1"), "sip:bob@h");
    }

    #[test]
    fn a_udp_requests_via_is_stamped_and_names_where_responses_go() {
        let src: std::net::SocketAddr = "[2001:db8::5]:7000".parse().unwrap();
        let stamp = |via: &str| {
            let mut h = Headers::new();
            h.push("Via", via);
            let to = stamp_via_received(&mut h, src);
            (to.to_string(), h.get("Via").unwrap_or_default().to_string())
        };
        assert_eq!(
            stamp("SIP/2.0/UDP [2001:db8::5]:5062;branch=z9hG4bKa"),
            (
                "[2001:db8::5]:5062".into(),
                "SIP/2.0/UDP [2001:db8::5]:5062;branch=z9hG4bKa".into()
            )
        );
        // A forged `received` is replaced; rport given a value.
        assert_eq!(
            stamp("SIP / 2.0 / UDP host.example;received=10.9.9.9;branch=z9hG4bKb;rport"),
            (
                "[2001:db8::5]:7000".into(),
                "SIP / 2.0 / UDP host.example;branch=z9hG4bKb;received=2001:db8::5;rport=7000"
                    .into()
            )
        );
        // LWS around the slashes and before the sent-by (RFC 3261 25.1).
        assert_eq!(
            stamp("SIP / 2.0 /  UDP   [2001:db8::5]:5064 ;branch=z9hG4bKf").0,
            "[2001:db8::5]:5064"
        );
        // Unreadable sent-by: left alone, back to the source.
        for bad in [
            "SIP/2.0/UDP",
            "SIP / 2.0 / UDP",
            "SIP / 2.0 / UDP ;branch=z9hG4bKd",
            "SIP/2.0/UDP a b;branch=z9hG4bKe",
            "SIP/2.0/UDP h:99999;branch=z9hG4bKc",
            "SIP/2.0/UDP [::1;branch=x",
        ] {
            assert_eq!(
                stamp(bad),
                ("[2001:db8::5]:7000".into(), bad.into()),
                "{bad}"
            );
        }
    }

    /// RFC 3261 7.1: the SIP-Version is case-insensitive.
    #[test]
    fn a_lower_case_version_is_read() {
        let r = "sip/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        assert!(
            matches!(parse(r.as_bytes(), false).unwrap().0, Message::Response(r) if r.code == 200)
        );
        let q = "BYE sip:a@h Sip/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKy\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
        assert!(
            matches!(parse(q.as_bytes(), false).unwrap().0, Message::Request(q) if q.method == Method::Bye)
        );
        assert!(parse(q.replace("Sip/2.0", "SIP/3.0").as_bytes(), false).is_err());
    }
}
