//! Digest authentication for the UAC (RFC 3261 22, RFC 7616 algorithms
//! MD5 and SHA-256, qop `auth` or none).
//!
//! Owns reading a `WWW-Authenticate`/`Proxy-Authenticate` challenge and
//! writing the matching `Authorization`/`Proxy-Authorization` value. Pure:
//! the caller passes the client nonce.

use md5::{Digest as _, Md5};
use sha2::Sha256;

use super::SipError;

/// Digest hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// MD5 (RFC 2617), still what most SIP trunks ask for.
    Md5,
    /// SHA-256 (RFC 7616, RFC 8760).
    Sha256,
}

impl Algorithm {
    fn hash(self, data: &str) -> String {
        fn hex(bytes: &[u8]) -> String {
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
        match self {
            Algorithm::Md5 => hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex(&Sha256::digest(data.as_bytes())),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }
}

/// A parsed digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection realm.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque value to echo, if any.
    pub opaque: Option<String>,
    /// Hash algorithm.
    pub algorithm: Algorithm,
    /// True when the server offered `qop=auth` (we then use it).
    pub qop_auth: bool,
    /// True for a 407 (proxy) challenge: answer in Proxy-Authorization.
    pub proxy: bool,
    /// A `-sess` algorithm (MD5-sess, SHA-256-sess): HA1 takes the nonce
    /// and client nonce in (RFC 7616 3.4.2).
    pub sess: bool,
    /// `stale=true`: the request's nonce had expired, not its credentials
    /// (RFC 7616 3.3): answer again with the new nonce.
    pub stale: bool,
}

/// Username and password for a provider.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Username (the authorization user).
    pub username: String,
    /// Password; never logged.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// Splits `k=v, k="v, w"` into pairs, honouring quotes.
fn auth_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = rest[eq + 1..].trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            // A quoted-string: a backslash escapes the next character
            // (RFC 3261 25.1), a `\"` inside does not end it.
            let mut value = String::new();
            let mut end = None;
            let mut chars = q.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            value.push(e);
                        }
                    }
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => value.push(c),
                }
            }
            match end {
                Some(end) => (value, &q[end + 1..]),
                None => (value, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (after[..end].trim().to_string(), &after[end..]),
                None => (after.trim().to_string(), ""),
            }
        };
        out.push((key, value));
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

impl Challenge {
    /// Parses a `Digest ...` challenge header value; `proxy` for 407.
    pub fn parse(value: &str, proxy: bool) -> Result<Challenge, SipError> {
        let value = value.trim();
        let rest = value
            .get(..6)
            .filter(|s| s.eq_ignore_ascii_case("digest"))
            .map(|_| &value[6..])
            .ok_or(SipError::Auth("not a Digest challenge"))?;
        let params = auth_params(rest);
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let (algorithm, sess) = match get("algorithm").as_deref().map(str::to_ascii_uppercase) {
            None => (Algorithm::Md5, false),
            Some(a) => match a.as_str() {
                "MD5" => (Algorithm::Md5, false),
                "MD5-SESS" => (Algorithm::Md5, true),
                "SHA-256" => (Algorithm::Sha256, false),
                "SHA-256-SESS" => (Algorithm::Sha256, true),
                _ => return Err(SipError::Auth("unsupported digest algorithm")),
            },
        };
        let qop_auth = match get("qop") {
            None => false,
            Some(q) => {
                if q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")) {
                    true
                } else {
                    return Err(SipError::Auth("only qop=auth is supported"));
                }
            }
        };
        Ok(Challenge {
            realm: get("realm").ok_or(SipError::Auth("challenge without realm"))?,
            nonce: get("nonce").ok_or(SipError::Auth("challenge without nonce"))?,
            opaque: get("opaque"),
            algorithm,
            qop_auth,
            proxy,
            sess,
            stale: get("stale").is_some_and(|v| v.eq_ignore_ascii_case("true")),
        })
    }

    /// The header name the answer goes in.
    pub fn answer_header(&self) -> &'static str {
        if self.proxy {
            "Proxy-Authorization"
        } else {
            "Authorization"
        }
    }

    /// The digest response hash (RFC 7616 3.4.1).
    pub fn response(
        &self,
        creds: &Credentials,
        method: &str,
        uri: &str,
        cnonce: &str,
        nc: u32,
    ) -> String {
        let a = self.algorithm;
        let mut ha1 = a.hash(&format!(
            "{}:{}:{}",
            creds.username, self.realm, creds.password
        ));
        if self.sess {
            ha1 = a.hash(&format!("{ha1}:{}:{cnonce}", self.nonce));
        }
        let ha2 = a.hash(&format!("{method}:{uri}"));
        if self.qop_auth {
            a.hash(&format!(
                "{ha1}:{}:{nc:08x}:{cnonce}:auth:{ha2}",
                self.nonce
            ))
        } else {
            a.hash(&format!("{ha1}:{}:{ha2}", self.nonce))
        }
    }

    /// The full `Authorization` header value.
    pub fn authorization(
        &self,
        creds: &Credentials,
        method: &str,
        uri: &str,
        cnonce: &str,
        nc: u32,
    ) -> String {
        let response = self.response(creds, method, uri, cnonce, nc);
        let mut v = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={}{}",
            quoted(&creds.username),
            quoted(&self.realm),
            quoted(&self.nonce),
            self.algorithm.name(),
            if self.sess { "-sess" } else { "" }
        );
        if self.qop_auth {
            v.push_str(&format!(", qop=auth, nc={nc:08x}, cnonce=\"{cnonce}\""));
        } else if self.sess {
            // A -sess hash took the client nonce in: the server needs it.
            v.push_str(&format!(", cnonce=\"{cnonce}\""));
        }
        if let Some(o) = &self.opaque {
            v.push_str(&format!(", opaque=\"{}\"", quoted(o)));
        }
        v
    }
}

/// `text` escaped for a quoted-string (RFC 3261 25.1: `"` and `\\` take a
/// backslash).
fn quoted(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(['"', '\\']) {
        text.replace('\\', "\\\\").replace('"', "\\\"").into()
    } else {
        text.into()
    }
}

/// The header a 401 (`WWW-Authenticate`) or a 407 (`Proxy-Authenticate`)
/// carries its challenges in.
pub fn challenge_header(code: u16) -> &'static str {
    if code == 407 {
        "Proxy-Authenticate"
    } else {
        "WWW-Authenticate"
    }
}

/// The challenge a 401 (`proxy` false) or 407 (`proxy` true) asks to be
/// answered: of its `WWW-Authenticate`/`Proxy-Authenticate` values, in
/// order, the first we can answer (RFC 8760 2.4: a server lists the
/// algorithms it takes, preferred first, and the client uses the topmost
/// it supports). The first one's error when none can be answered; `None`
/// when there is no challenge at all.
pub fn first_answerable<'a>(
    values: impl Iterator<Item = &'a str>,
    proxy: bool,
) -> Option<Result<Challenge, SipError>> {
    let mut first_error = None;
    for v in values {
        match Challenge::parse(v, proxy) {
            Ok(ch) => return Some(Ok(ch)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map(Err)
}

/// Whether a 401 (`proxy` false) or 407 challenge to a request that
/// carried credentials only says their nonce went stale (RFC 7616 3.3):
/// then one more answer, with the new nonce, is in order; otherwise the
/// credentials were refused.
pub fn only_stale<'a>(values: impl Iterator<Item = &'a str>, proxy: bool) -> bool {
    matches!(first_answerable(values, proxy), Some(Ok(ch)) if ch.stale)
}

/// Nonce counts (RFC 7616 3.4: `nc` counts the requests sent with one
/// nonce, starting at 1 for each new nonce; a server that checks it takes
/// a count seen before for a replay). Keeps the few nonces a call or a
/// registration meets (a proxy's and the far end's, then fresh ones).
#[derive(Debug, Clone, Default)]
pub struct NonceCounts(Vec<(String, u32)>);

impl NonceCounts {
    /// How many nonces are remembered; an older one starts again at 1 if
    /// it ever comes back (a server has long dropped it by then).
    const KEPT: usize = 8;

    /// The count for the next request sent with `nonce`.
    pub fn next(&mut self, nonce: &str) -> u32 {
        if let Some(i) = self.0.iter().position(|(n, _)| n == nonce) {
            let mut e = self.0.remove(i);
            e.1 = e.1.saturating_add(1);
            let nc = e.1;
            self.0.push(e);
            return nc;
        }
        if self.0.len() >= Self::KEPT {
            self.0.remove(0);
        }
        self.0.push((nonce.to_string(), 1));
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7616 section 3.9.1: the same request answered with both algorithms.
    const RFC7616: &str = r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=ALG, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;

    fn mufasa() -> Credentials {
        Credentials {
            username: "Mufasa".into(),
            password: "Circle of Life".into(),
        }
    }

    #[test]
    fn md5_and_sha256_match_the_rfc_7616_examples() {
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let md5 = Challenge::parse(&RFC7616.replace("ALG", "MD5"), false).unwrap();
        assert_eq!(md5.algorithm, Algorithm::Md5);
        assert!(md5.qop_auth);
        assert_eq!(
            md5.response(&mufasa(), "GET", "/dir/index.html", cnonce, 1),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
        let sha = Challenge::parse(&RFC7616.replace("ALG", "SHA-256"), false).unwrap();
        assert_eq!(
            sha.response(&mufasa(), "GET", "/dir/index.html", cnonce, 1),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn rfc_2617_without_qop_matches_its_example() {
        // RFC 2069 2.4 example (its corrected value: the RFC's printed
        // response was computed with another password).
        let c = Challenge::parse(
            r#"Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093""#,
            true,
        )
        .unwrap();
        assert!(!c.qop_auth);
        assert_eq!(c.answer_header(), "Proxy-Authorization");
        let creds = Credentials {
            username: "Mufasa".into(),
            password: "CircleOfLife".into(),
        };
        assert_eq!(
            c.response(&creds, "GET", "/dir/index.html", "", 0),
            "1949323746fe6a43ef61f9606e7febea"
        );
    }

    #[test]
    fn authorization_carries_qop_nc_cnonce_and_opaque() {
        let c = Challenge::parse(&RFC7616.replace("ALG", "MD5"), false).unwrap();
        let h = c.authorization(&mufasa(), "INVITE", "sip:b@h", "abc", 1);
        assert!(h.starts_with("Digest username=\"Mufasa\""));
        assert!(h.contains("qop=auth, nc=00000001, cnonce=\"abc\""));
        assert!(h.contains("opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""));
    }

    #[test]
    fn unsupported_challenges_are_refused() {
        assert!(Challenge::parse("Basic realm=\"x\"", false).is_err());
        assert!(
            Challenge::parse(
                "Digest realm=\"x\", nonce=\"n\", algorithm=SHA-512-256",
                false
            )
            .is_err()
        );
        assert!(
            Challenge::parse("Digest realm=\"x\", nonce=\"n\", qop=\"auth-int\"", false).is_err()
        );
        assert!(Challenge::parse("Digest realm=\"x\"", false).is_err());
        assert!(format!("{:?}", mufasa()).contains("***"));
    }

    #[test]
    fn the_topmost_challenge_we_can_answer_is_taken() {
        let values = [
            "Digest realm=\"x\", nonce=\"a\", algorithm=SHA-512-256",
            "Digest realm=\"x\", nonce=\"b\", algorithm=SHA-256",
            "Digest realm=\"x\", nonce=\"c\", algorithm=MD5",
        ];
        let ch = first_answerable(values.into_iter(), false)
            .unwrap()
            .unwrap();
        assert_eq!(ch.algorithm, Algorithm::Sha256);
        assert_eq!(ch.nonce, "b");
        assert!(
            first_answerable(values[..1].iter().copied(), false)
                .unwrap()
                .is_err()
        );
        assert!(first_answerable(std::iter::empty(), true).is_none());
    }

    /// RFC 7616 3.4.2: for MD5-sess, HA1 = H(H(user:realm:password):nonce:cnonce).
    #[test]
    fn md5_sess_takes_the_nonces_into_ha1() {
        let c = Challenge::parse(
            r#"Digest realm="r", nonce="n", qop="auth", algorithm=MD5-sess"#,
            false,
        )
        .unwrap();
        assert!(c.sess);
        let h = |s: String| -> String {
            Md5::digest(s.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        let ha1 = h(format!("{}:n:cn", h("Mufasa:r:Circle of Life".into())));
        let ha2 = h("REGISTER:sip:x".into());
        let want = h(format!("{ha1}:n:00000001:cn:auth:{ha2}"));
        assert_eq!(c.response(&mufasa(), "REGISTER", "sip:x", "cn", 1), want);
        let v = c.authorization(&mufasa(), "REGISTER", "sip:x", "cn", 1);
        assert!(v.contains("algorithm=MD5-sess"), "{v}");
        let sha = Challenge::parse(
            r#"Digest realm="r", nonce="n", algorithm=SHA-256-sess"#,
            true,
        );
        assert!(sha.is_ok_and(|c| c.sess && c.algorithm == Algorithm::Sha256));
    }

    /// RFC 3261 25.1: a backslash in a quoted-string escapes the next
    /// character; an escaped quote does not end the value.
    #[test]
    fn escaped_quotes_stay_inside_the_value() {
        let c = Challenge::parse(r#"Digest realm="a \"b\" c", nonce="x,y""#, false).unwrap();
        assert_eq!(c.realm, r#"a "b" c"#);
        assert_eq!(c.nonce, "x,y");
        let v = c.authorization(&mufasa(), "INVITE", "sip:b@h", "abc", 1);
        assert!(v.contains(r#"realm="a \"b\" c""#), "{v}");
    }

    #[test]
    fn a_nonce_count_starts_at_one_for_each_nonce() {
        let mut nc = NonceCounts::default();
        assert_eq!(nc.next("n1"), 1);
        assert_eq!(nc.next("n1"), 2);
        assert_eq!(nc.next("n2"), 1, "a fresh nonce counts from 1");
        assert_eq!(nc.next("n1"), 3, "the first nonce goes on");
        for i in 0..20 {
            assert_eq!(nc.next(&format!("x{i}")), 1);
        }
        assert_eq!(nc.next("n1"), 1, "long forgotten");
    }
}
