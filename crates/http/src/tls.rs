//! TLS to upstreams with settings of their own (`backendTLS`): a CA other than the system's,
//! a client certificate, a server name other than the URL's, names accepted in place of it,
//! or verification turned off. Each such upstream gets its own [`HttpClient`] (and so its own
//! connection pools); upstreams without `backendTLS` share the gateway's client.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{WebPkiSupportedAlgorithms, ring};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// `backendTLS` as written, with file paths relative to the working directory.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    pub root: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub hostname: Option<String>,
    pub subject_alt_names: Option<Vec<String>>,
    pub insecure: bool,
    pub insecure_host: bool,
    pub alpn: Option<Vec<String>>,
}

/// What is wrong with one field of `backendTLS`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TlsError {
    /// The `backendTLS` field, as written (`root`, `cert`, …).
    pub field: &'static str,
    pub message: String,
}

fn error(field: &'static str, message: impl Into<String>) -> TlsError {
    TlsError { field, message: message.into() }
}

/// Which HTTP versions an upstream connection may speak, from `alpn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Versions {
    Http1,
    Http2,
    Both,
}

/// Everything the connector needs: the rustls config (without ALPN: the connector sets it from
/// `versions`), the server name to use instead of the URL's, and the HTTP versions.
pub(crate) struct Built {
    pub(crate) config: ClientConfig,
    pub(crate) server_name: Option<ServerName<'static>>,
    pub(crate) versions: Versions,
}

/// Reads the files and builds the client side of the TLS settings.
pub(crate) fn build(o: &TlsOptions) -> Result<Built, TlsError> {
    if o.insecure && (o.insecure_host || o.subject_alt_names.is_some()) {
        return Err(error("insecure", "turns every check off: leave out `insecureHost` and `subjectAltNames`"));
    }
    let server_name = match &o.hostname {
        Some(h) => Some(
            ServerName::try_from(h.clone())
                .map_err(|_| error("hostname", format!("`{h}` is not a DNS name or IP address")))?,
        ),
        None => None,
    };
    let accepted = match &o.subject_alt_names {
        Some(names) if names.is_empty() => return Err(error("subjectAltNames", "an empty list accepts no upstream")),
        Some(names) => Some(
            names
                .iter()
                .map(|n| {
                    if n.contains("://") {
                        // A URI name (e.g. a SPIFFE ID), compared exactly.
                        return Ok(Accepted::Uri(n.clone()));
                    }
                    ServerName::try_from(n.clone())
                        .map(Accepted::Name)
                        .map_err(|_| error("subjectAltNames", format!("`{n}` is not a DNS name, IP address or URI")))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    let versions = versions(o.alpn.as_deref())?;
    let roots = match &o.root {
        Some(path) => Arc::new(read_roots(path)?),
        None => system_roots(),
    };
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| error("root", e.to_string()))?
        .with_root_certificates(roots.clone());
    let mut config = match (&o.cert, &o.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs("cert", cert)?;
            let key_der = read_key(key)?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| error("key", format!("`{key}` cannot be used with the certificate in `{cert}`: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => return Err(error("key", "missing: `cert` needs the private key that goes with it")),
        (None, Some(_)) => return Err(error("cert", "missing: `key` needs the certificate that goes with it")),
    };
    let check = if o.insecure {
        Some(Check::Nothing)
    } else if o.insecure_host {
        Some(Check::ChainOnly(roots))
    } else {
        accepted.map(|names| Check::ChainAndNames(roots, names))
    };
    if let Some(check) = check {
        let algorithms = provider.signature_verification_algorithms;
        config.dangerous().set_certificate_verifier(Arc::new(Verifier { check, algorithms }));
    }
    Ok(Built { config, server_name, versions })
}

fn versions(alpn: Option<&[String]>) -> Result<Versions, TlsError> {
    let Some(alpn) = alpn else { return Ok(Versions::Http1) };
    let h1 = alpn.iter().any(|a| a == "http/1.1");
    let h2 = alpn.iter().any(|a| a == "h2");
    if let Some(other) = alpn.iter().find(|a| *a != "http/1.1" && *a != "h2") {
        return Err(error(
            "alpn",
            format!("`{other}`: only `h2` and `http/1.1` can be offered (this is an HTTP client)"),
        ));
    }
    match (h1, h2) {
        (true, true) => Ok(Versions::Both),
        (true, false) => Ok(Versions::Http1),
        (false, true) => Ok(Versions::Http2),
        (false, false) => Err(error("alpn", "an empty list: offer `http/1.1`, `h2` or both")),
    }
}

/// The system's root certificates, read once per process.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!("no system root certificates: `backendTLS` without `root` will fail to verify");
            }
            Arc::new(roots)
        })
        .clone()
}

fn read_certs(field: &'static str, path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    pem::certs(path).map_err(|m| error(field, m))
}

fn read_key(path: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    pem::key(path).map_err(|m| error("key", m))
}

fn read_roots(path: &str) -> Result<RootCertStore, TlsError> {
    pem::roots(path).map_err(|m| error("root", m))
}

/// PEM files named in the config, read for TLS (the gateway's listeners and its upstream
/// connections). Messages name the file, never a key's content.
pub mod pem {
    use rustls::RootCertStore;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    fn read(path: &str) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|e| format!("cannot read `{path}`: {e}"))
    }

    /// The certificates of a PEM file (at least one).
    pub fn certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
        let pem = read(path)?;
        let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("`{path}` is not valid PEM: {e}"))?;
        if certs.is_empty() {
            return Err(format!("no certificate in `{path}` (expected PEM `BEGIN CERTIFICATE` blocks)"));
        }
        Ok(certs)
    }

    /// The private key of a PEM file.
    pub fn key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
        let pem = read(path)?;
        PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
            format!("no private key in `{path}` (expected a PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)")
        })
    }

    /// The certificates of a PEM file as trust anchors.
    pub fn roots(path: &str) -> Result<RootCertStore, String> {
        let mut roots = RootCertStore::empty();
        for cert in certs(path)? {
            roots.add(cert).map_err(|e| format!("`{path}`: a certificate cannot be used as a CA: {e}"))?;
        }
        Ok(roots)
    }
}

/// The URI subject alternative names of a certificate whose chain was verified.
fn uri_names(der: &CertificateDer<'_>) -> Vec<String> {
    webpki::EndEntityCert::try_from(der).map(|c| c.valid_uri_names().map(str::to_string).collect()).unwrap_or_default()
}

/// What the upstream's certificate is checked for, when not the default (chain and the server
/// name).
#[derive(Debug)]
enum Check {
    Nothing,
    ChainOnly(Arc<RootCertStore>),
    ChainAndNames(Arc<RootCertStore>, Vec<Accepted>),
}

/// A name of `subjectAltNames`: DNS or IP (checked as rustls checks a server name), or a URI
/// (equal to one of the certificate's URI names).
#[derive(Debug)]
enum Accepted {
    Name(ServerName<'static>),
    Uri(String),
}

#[derive(Debug)]
struct Verifier {
    check: Check,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (roots, names) = match &self.check {
            Check::Nothing => return Ok(ServerCertVerified::assertion()),
            Check::ChainOnly(roots) => (roots, None),
            Check::ChainAndNames(roots, names) => (roots, Some(names)),
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(&cert, roots, intermediates, now, self.algorithms.all)?;
        if let Some(names) = names {
            let mut last = None;
            for name in names {
                let checked = match name {
                    Accepted::Name(name) => verify_server_name(&cert, name),
                    Accepted::Uri(uri) => uri_names(end_entity)
                        .iter()
                        .any(|u| u == uri)
                        .then_some(())
                        .ok_or_else(|| rustls::Error::General(format!("the certificate has no URI name `{uri}`"))),
                };
                match checked {
                    Ok(()) => return Ok(ServerCertVerified::assertion()),
                    Err(e) => last = Some(e),
                }
            }
            return Err(last.unwrap_or(rustls::Error::General("no accepted name".into())));
        }
        Ok(ServerCertVerified::assertion())
    }

    // The handshake's own signatures are always checked: even with `insecure`, the upstream
    // must hold the key of the certificate it sent.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The connect time-out of clients built for `backendTLS` (the gateway's default).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_chooses_http_versions() {
        let v = |a: &[&str]| versions(Some(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>()));
        assert_eq!(versions(None), Ok(Versions::Http1));
        assert_eq!(v(&["h2", "http/1.1"]), Ok(Versions::Both));
        assert_eq!(v(&["h2"]), Ok(Versions::Http2));
        assert_eq!(v(&["spdy/3"]).unwrap_err().field, "alpn");
        assert_eq!(v(&[]).unwrap_err().field, "alpn");
    }

    #[test]
    fn contradictions_and_halves_are_refused() {
        let o = TlsOptions { insecure: true, insecure_host: true, ..Default::default() };
        assert_eq!(build(&o).err().map(|e| e.field), Some("insecure"));
        let o = TlsOptions { cert: Some("c.pem".into()), root: None, ..Default::default() };
        assert_eq!(build(&o).err().map(|e| e.field), Some("key"));
        let o = TlsOptions { hostname: Some("not a name".into()), ..Default::default() };
        assert_eq!(build(&o).err().map(|e| e.field), Some("hostname"));
        let o = TlsOptions { subject_alt_names: Some(vec![]), ..Default::default() };
        assert_eq!(build(&o).err().map(|e| e.field), Some("subjectAltNames"));
    }
}
