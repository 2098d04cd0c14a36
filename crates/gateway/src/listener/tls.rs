//! HTTPS listeners: the TLS handshake between accepting a socket and serving HTTP on it.
//!
//! Each listener of a bind has its own rustls config (certificate, client CA, versions, cipher
//! suites). The client's SNI picks the listener the way a `Host` header does (exact name, then
//! the longest `*.` wildcard, then a listener without `hostname`), so one port serves several
//! certificates. The configs are built by the resolve step, once per config version: the
//! reloader watches the certificate and key files, so a rotated certificate is served to
//! connections accepted after the reload while open connections keep their session.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use agw_config::FieldPath;
use agw_config::model::{CipherSuite, FrontendTls, ListenerTls, TlsVersion};
use agw_http::tls::pem;
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite};
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use crate::route::HostMatch;

/// How long a client may take to finish its handshake, unless `frontendPolicies.tls` says.
pub(crate) const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// The TLS side of one bind whose listeners are HTTPS.
#[derive(Debug)]
pub struct BindTls {
    /// Per listener, in bind order: its name, the SNI names it takes, and its config.
    listeners: Vec<(Arc<str>, HostMatch, Arc<ServerConfig>)>,
    handshake_timeout: Duration,
}

/// What a finished handshake established, kept for the connection's requests.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The listener the client's SNI chose; a request for another listener's host is refused
    /// (421), so that SNI cannot be used to pass another listener's client-certificate check.
    pub(crate) listener: Arc<str>,
    /// The client's certificate, verified against the listener's `root` (mTLS only).
    pub(crate) client: Option<Arc<ClientCert>>,
}

/// What CEL rules see of a verified client certificate, as agentgateway names it:
/// `source.subjectAltNames` (DNS names and URIs) and `source.spiffeId` (the first `spiffe://`
/// URI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    pub subject_alt_names: Vec<String>,
    pub spiffe_id: Option<String>,
    /// The subject and issuer names, attribute by attribute in the certificate's order
    /// (`CN=alice, O=Example`), and the subject's common name.
    pub subject: String,
    pub issuer: String,
    pub subject_cn: Option<String>,
}

impl ClientCert {
    /// The names of a DER certificate rustls has verified (`None` if it cannot be read).
    fn from_der(der: &CertificateDer<'_>) -> Option<ClientCert> {
        let cert = webpki::EndEntityCert::try_from(der).ok()?;
        let uris: Vec<String> = cert.valid_uri_names().map(str::to_string).collect();
        let spiffe_id = uris.iter().find(|u| u.starts_with("spiffe://")).cloned();
        let mut subject_alt_names: Vec<String> = cert.valid_dns_names().map(str::to_string).collect();
        subject_alt_names.extend(uris);
        // Names for rules; a certificate rustls verified but this parser cannot read has none.
        let parsed = <x509_cert::Certificate as x509_cert::der::Decode>::from_der(der.as_ref()).ok();
        let tbs = parsed.as_ref().map(|c| &c.tbs_certificate);
        let subject_cn = tbs.and_then(|t| {
            t.subject.0.iter().flat_map(|rdn| rdn.0.iter()).find_map(|atv| {
                (atv.oid == x509_cert::der::asn1::ObjectIdentifier::new_unwrap("2.5.4.3"))
                    .then(|| attribute_text(atv))?
            })
        });
        Some(ClientCert {
            subject_alt_names,
            spiffe_id,
            subject: tbs.map(|t| name_text(&t.subject)).unwrap_or_default(),
            issuer: tbs.map(|t| name_text(&t.issuer)).unwrap_or_default(),
            subject_cn,
        })
    }
}

/// A distinguished name as `CN=alice, O=Example` (attributes in the certificate's order).
fn name_text(name: &x509_cert::name::Name) -> String {
    let parts: Vec<String> = name.0.iter().flat_map(|rdn| rdn.0.iter()).map(|atv| atv.to_string()).collect();
    parts.join(", ")
}

/// A string attribute's text (UTF8String, PrintableString, IA5String, …).
fn attribute_text(atv: &x509_cert::attr::AttributeTypeAndValue) -> Option<String> {
    use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
    let v = &atv.value;
    v.decode_as::<Utf8StringRef<'_>>()
        .map(|s| s.as_str().to_string())
        .or_else(|_| v.decode_as::<PrintableStringRef<'_>>().map(|s| s.as_str().to_string()))
        .or_else(|_| v.decode_as::<Ia5StringRef<'_>>().map(|s| s.as_str().to_string()))
        .or_else(|_| v.decode_as::<TeletexStringRef<'_>>().map(|s| s.as_str().to_string()))
        .ok()
}

/// Why a handshake did not complete (logged at debug level: clients cause these).
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("TLS handshake not finished within {0:?}")]
    TimedOut(Duration),
    #[error("no HTTPS listener for server name {0:?}")]
    NoListener(Option<String>),
    #[error("TLS handshake failed: {0}")]
    Failed(io::Error),
}

impl BindTls {
    /// Builds the TLS side of a bind from its listeners (each with its path in the config, for
    /// errors). Certificate, key and CA files are read here.
    pub(crate) fn build<'a>(
        listeners: impl Iterator<Item = (FieldPath, &'a str, Option<&'a str>, &'a ListenerTls)>,
        frontend: Option<&FrontendTls>,
    ) -> Result<BindTls, Vec<(FieldPath, String)>> {
        let mut built = Vec::new();
        let mut errors = Vec::new();
        for (at, name, hostname, tls) in listeners {
            match server_config(&at, tls, frontend) {
                Ok(config) => built.push((Arc::from(name), HostMatch::parse(hostname.unwrap_or("")), config)),
                Err(e) => errors.extend(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let handshake_timeout =
            frontend.and_then(|f| f.handshake_timeout).map_or(DEFAULT_HANDSHAKE_TIMEOUT, |d| d.get());
        Ok(BindTls { listeners: built, handshake_timeout })
    }

    /// The listener for a client's SNI (no SNI: only a listener without `hostname` takes it).
    fn select(&self, sni: Option<&str>) -> Option<&(Arc<str>, HostMatch, Arc<ServerConfig>)> {
        let name = sni.map(str::to_ascii_lowercase).unwrap_or_default();
        self.listeners.iter().filter_map(|l| l.1.score(&name).map(|s| (s, l))).max_by_key(|(s, _)| *s).map(|(_, l)| l)
    }

    /// Runs the server side of the handshake, bounded in time.
    pub(crate) async fn accept(&self, tcp: TcpStream) -> Result<(TlsStream<TcpStream>, Session), HandshakeError> {
        let handshake = async {
            let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp)
                .await
                .map_err(HandshakeError::Failed)?;
            let sni = start.client_hello().server_name().map(str::to_string);
            let Some((name, _, config)) = self.select(sni.as_deref()) else {
                return Err(HandshakeError::NoListener(sni));
            };
            let stream = start.into_stream(config.clone()).await.map_err(HandshakeError::Failed)?;
            let client = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(ClientCert::from_der);
            Ok((stream, Session { listener: name.clone(), client: client.map(Arc::new) }))
        };
        tokio::time::timeout(self.handshake_timeout, handshake)
            .await
            .unwrap_or(Err(HandshakeError::TimedOut(self.handshake_timeout)))
    }
}

/// One listener's rustls config: its settings over `frontendPolicies.tls`, ALPN `h2` and
/// `http/1.1`.
fn server_config(
    at: &FieldPath,
    tls: &ListenerTls,
    frontend: Option<&FrontendTls>,
) -> Result<Arc<ServerConfig>, Vec<(FieldPath, String)>> {
    // Validation saw both set.
    let (cert_path, key_path) = (tls.cert.as_deref().unwrap_or_default(), tls.key.as_deref().unwrap_or_default());
    let certs = read_certs(&at.key("cert"), cert_path);
    let key = read_key(&at.key("key"), key_path);
    let roots = tls.root.as_deref().map(|root| read_roots(&at.key("root"), root)).transpose();
    let (certs, key, roots) = match (certs, key, roots) {
        (Ok(c), Ok(k), Ok(r)) => (c, k, r),
        (c, k, r) => return Err([c.err(), k.err(), r.err()].into_iter().flatten().collect()),
    };
    let suites = tls.cipher_suites.as_deref().or(frontend.and_then(|f| f.cipher_suites.as_deref()));
    let provider = Arc::new(provider(suites));
    let min = tls.min_tls_version.or(frontend.and_then(|f| f.min_version));
    let max = tls.max_tls_version.or(frontend.and_then(|f| f.max_version));
    let versions = versions(min, max);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| vec![(at.key("cipherSuites"), format!("no cipher suite for the TLS versions allowed: {e}"))])?;
    let builder = match roots {
        Some(roots) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| vec![(at.key("root"), format!("cannot verify client certificates with it: {e}"))])?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        vec![(at.key("key"), format!("`{key_path}` cannot be used with the certificate in `{cert_path}`: {e}"))]
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_certs(at: &FieldPath, path: &str) -> Result<Vec<CertificateDer<'static>>, (FieldPath, String)> {
    pem::certs(path).map_err(|m| (at.clone(), m))
}

fn read_key(at: &FieldPath, path: &str) -> Result<PrivateKeyDer<'static>, (FieldPath, String)> {
    pem::key(path).map_err(|m| (at.clone(), m))
}

fn read_roots(at: &FieldPath, path: &str) -> Result<RootCertStore, (FieldPath, String)> {
    pem::roots(path).map_err(|m| (at.clone(), m))
}

/// ring's provider, restricted to `suites` (in their order) when given.
fn provider(suites: Option<&[CipherSuite]>) -> CryptoProvider {
    let mut provider = ring::default_provider();
    if let Some(suites) = suites {
        provider.cipher_suites = suites.iter().map(|s| cipher_suite(*s)).collect();
    }
    provider
}

fn cipher_suite(s: CipherSuite) -> SupportedCipherSuite {
    use ring::cipher_suite as rs;
    match s {
        CipherSuite::TLS_AES_256_GCM_SHA384 => rs::TLS13_AES_256_GCM_SHA384,
        CipherSuite::TLS_AES_128_GCM_SHA256 => rs::TLS13_AES_128_GCM_SHA256,
        CipherSuite::TLS_CHACHA20_POLY1305_SHA256 => rs::TLS13_CHACHA20_POLY1305_SHA256,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => rs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => rs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => rs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => rs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => rs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => rs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    }
}

/// The versions from `min` to `max` (TLS 1.2 and 1.3 by default; older ones are refused by
/// validation, and ignored here).
fn versions(min: Option<TlsVersion>, max: Option<TlsVersion>) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let min = min.unwrap_or(TlsVersion::TLS_V1_2);
    let max = max.unwrap_or(TlsVersion::TLS_V1_3);
    [(TlsVersion::TLS_V1_2, &rustls::version::TLS12), (TlsVersion::TLS_V1_3, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(v, _)| (min..=max).contains(v))
        .map(|(_, p)| p)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ranges() {
        assert_eq!(versions(None, None).len(), 2);
        assert_eq!(versions(Some(TlsVersion::TLS_V1_3), None), vec![&rustls::version::TLS13]);
        assert_eq!(versions(None, Some(TlsVersion::TLS_V1_2)), vec![&rustls::version::TLS12]);
    }

    #[test]
    fn cipher_suites_keep_their_order() {
        let p = provider(Some(&[CipherSuite::TLS_AES_128_GCM_SHA256, CipherSuite::TLS_AES_256_GCM_SHA384]));
        let names: Vec<_> = p.cipher_suites.iter().map(|s| format!("{:?}", s.suite())).collect();
        assert_eq!(names, ["TLS13_AES_128_GCM_SHA256", "TLS13_AES_256_GCM_SHA384"]);
    }
}
