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
            match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
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
        let algorithm = match get("algorithm").as_deref().map(str::to_ascii_uppercase) {
            None => Algorithm::Md5,
            Some(a) if a == "MD5" => Algorithm::Md5,
            Some(a) if a == "SHA-256" => Algorithm::Sha256,
            Some(_) => return Err(SipError::Auth("unsupported digest algorithm")),
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
        let ha1 = a.hash(&format!(
            "{}:{}:{}",
            creds.username, self.realm, creds.password
        ));
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
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={}",
            creds.username,
            self.realm,
            self.nonce,
            self.algorithm.name()
        );
        if self.qop_auth {
            v.push_str(&format!(", qop=auth, nc={nc:08x}, cnonce=\"{cnonce}\""));
        }
        if let Some(o) = &self.opaque {
            v.push_str(&format!(", opaque=\"{o}\""));
        }
        v
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
}
