//! TLS for tests: the committed test certificates (`tests/tls/`, made by `tests/tls/gen.sh`
//! with the `openssl` CLI), client configs that trust them, and raw handshakes that show what a
//! server presented.
//!
//! The certificates: `ca` signs `localhost`, `localhost2` (a rotated `localhost`), `a`
//! (`a.example.com`), `b` (`*.b.example.com`), `expired` (`localhost`, expired in 2020),
//! `upstream` (`upstream.internal`, `localhost`) and the client certificate `client` (CN
//! `alice`); `other-ca` signs `client-other` (CN `mallory`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The absolute path of a test certificate file, e.g. `path("localhost.pem")`.
pub fn path(file: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tls").join(file).display().to_string()
}

/// The certificates of `<name>.pem`.
pub fn certs(name: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path(&format!("{name}.pem")))
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .unwrap_or_else(|e| panic!("test certificate {name}.pem: {e}"))
}

/// The private key of `<name>.key`.
pub fn key(name: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(path(&format!("{name}.key"))).unwrap_or_else(|e| panic!("test key {name}.key: {e}"))
}

/// A client config trusting the CAs `roots` (e.g. `["ca"]`), presenting the client
/// certificate `client` (e.g. `Some("client")`), TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`.
pub fn client_config(roots: &[&str], client: Option<&str>) -> ClientConfig {
    client_config_with(roots, client, rustls::DEFAULT_VERSIONS)
}

/// [`client_config`] limited to some TLS versions.
pub fn client_config_with(
    roots: &[&str],
    client: Option<&str>,
    versions: &[&'static SupportedProtocolVersion],
) -> ClientConfig {
    let mut store = RootCertStore::empty();
    for root in roots {
        for cert in certs(root) {
            store.add(cert).expect("a usable test CA");
        }
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(versions)
        .expect("versions supported")
        .with_root_certificates(store);
    let mut config = match client {
        Some(name) => builder.with_client_auth_cert(certs(name), key(name)).expect("a usable client certificate"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// A server config presenting `<cert>.pem`/`<cert>.key`, requiring client certificates from
/// the CA `client_ca` when given; ALPN `h2` and `http/1.1`.
pub fn server_config(cert: &str, client_ca: Option<&str>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions supported");
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca) {
                roots.add(c).expect("a usable test CA");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("a client verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs(cert), key(cert)).expect("a usable test certificate");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Connects to `addr` and completes a handshake for `server_name` (sent as SNI unless it is an
/// IP address).
pub async fn connect(
    addr: SocketAddr,
    server_name: &str,
    config: ClientConfig,
) -> std::io::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config)).connect(name, tcp).await
}

/// The leaf certificate a server presented on `stream`.
pub fn leaf(stream: &TlsStream<TcpStream>) -> Option<CertificateDer<'static>> {
    stream.get_ref().1.peer_certificates()?.first().map(|c| c.clone().into_owned())
}
