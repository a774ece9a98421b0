//! TLS settings for `sips:` and `;transport=tls` providers (rustls): as a
//! client, the system's trusted roots plus an optional extra CA file, and
//! the name the provider's certificate must carry (RFC 5922: the host of
//! the URI, not the address it resolved to); as a server, the certificate
//! and key the UA's TLS listening port presents to a peer that opens a
//! connection to our Contact (RFC 3261 18.2.2: an in-dialog request after
//! our connection closed).

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::SipError;

/// How the UA opens TLS connections to its provider.
#[derive(Clone)]
pub struct TlsClient {
    /// The rustls configuration (roots, protocol versions).
    pub config: Arc<rustls::ClientConfig>,
    /// The name the certificate is checked against.
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// Trusts the system's roots and, when given, the CA certificates in
    /// the PEM file `extra_ca` (a private carrier CA, or a test CA).
    pub fn new(server_name: &str, extra_ca: Option<&Path>) -> Result<TlsClient, SipError> {
        let config = client_config(extra_ca)?;
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|e| SipError::Tls(format!("{server_name:?} is not a server name: {e}")))?;
        Ok(TlsClient {
            config: Arc::new(config),
            server_name,
        })
    }
}

/// A rustls client configuration (ring) trusting the system's roots and,
/// when given, the CA certificates in the PEM file `extra_ca`: the SIP
/// edge's and the webhook deliverer's.
pub fn client_config(extra_ca: Option<&Path>) -> Result<rustls::ClientConfig, SipError> {
    {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // A system root rustls cannot read is skipped, as browsers do.
            let _ = roots.add(cert);
        }
        if let Some(path) = extra_ca {
            for c in pem_certificates(path)? {
                roots
                    .add(c)
                    .map_err(|e| SipError::Tls(format!("{}: {e}", path.display())))?;
            }
        }
        if roots.is_empty() {
            return Err(SipError::Tls(
                "no trusted root certificates (install ca-certificates or give a CA file)".into(),
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SipError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }
}

/// A rustls server configuration (ring) presenting the certificate chain
/// in the PEM file `cert` with the private key in the PEM file `key`; no
/// client certificate is asked for (a trunk authenticates by digest).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, SipError> {
    let chain = pem_certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| SipError::Tls(format!("{}: no private key read: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SipError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| SipError::Tls(format!("{}: {e}", cert.display())))?;
    Ok(Arc::new(config))
}

/// The certificates in the PEM file `path`; an error naming the file when
/// it cannot be read or holds none.
fn pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, SipError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| SipError::Tls(format!("{}: {e}", path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| SipError::Tls(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(SipError::Tls(format!(
            "{}: no PEM certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}
