//! TLS settings of listeners and `frontendPolicies.tls`: what can be checked without reading
//! the certificate files (those are loaded, and their errors located, by the gateway's resolve).

use super::Validator;
use crate::error::FieldPath;
use crate::model::{BackendTls, CipherSuite, FrontendTls, ListenerTls, TlsVersion, present};

impl Validator {
    pub(super) fn listener_tls(&mut self, at: &FieldPath, tls: &ListenerTls) {
        self.unsupported(
            at,
            present([("keyExchangeGroups", &tls.key_exchange_groups), ("mode", &tls.mode), ("spiffe", &tls.spiffe)]),
        );
        for (name, file) in [("cert", &tls.cert), ("key", &tls.key)] {
            // With `spiffe` (refused above) agentgateway needs neither.
            if file.is_none() && tls.spiffe.is_none() {
                self.err(at.key(name), "missing: a PEM file, relative to the working directory");
            }
        }
        for (name, file) in [("cert", &tls.cert), ("key", &tls.key), ("root", &tls.root)] {
            if file.as_ref().is_some_and(|f| f.trim().is_empty()) {
                self.err(at.key(name), "a file path (PEM), relative to the working directory");
            }
        }
        self.tls_versions(at, ("minTLSVersion", tls.min_tls_version), ("maxTLSVersion", tls.max_tls_version));
        self.cipher_suites(at, tls.cipher_suites.as_deref());
    }

    pub(super) fn frontend_tls(&mut self, at: &FieldPath, tls: &FrontendTls) {
        self.unsupported(at, present([("alpn", &tls.alpn), ("keyExchangeGroups", &tls.key_exchange_groups)]));
        if tls.handshake_timeout.is_some_and(|d| d.get().is_zero()) {
            self.err(at.key("handshakeTimeout"), "must be more than 0 (leave it out for the default, 15s)");
        }
        self.tls_versions(at, ("minVersion", tls.min_version), ("maxVersion", tls.max_version));
        self.cipher_suites(at, tls.cipher_suites.as_deref());
    }

    /// The rest (files, names, combinations) is checked where the client is built, with the
    /// same located errors.
    pub(super) fn backend_tls(&mut self, at: &FieldPath, tls: &BackendTls) {
        self.unsupported(at, present([("keyExchangeGroups", &tls.key_exchange_groups), ("spiffe", &tls.spiffe)]));
    }

    fn tls_versions(
        &mut self,
        at: &FieldPath,
        (min_key, min): (&str, Option<TlsVersion>),
        (max_key, max): (&str, Option<TlsVersion>),
    ) {
        for (key, v) in [(min_key, min), (max_key, max)] {
            if v.is_some_and(|v| v < TlsVersion::TLS_V1_2) {
                self.err(at.key(key), "TLS 1.0 and 1.1 are not supported (insecure): use `TLS_V1_2` or `TLS_V1_3`");
            }
        }
        if let (Some(min), Some(max)) = (min, max)
            && min > max
        {
            self.err(at.key(max_key), format!("is older than `{min_key}`: no TLS version is left"));
        }
    }

    fn cipher_suites(&mut self, at: &FieldPath, suites: Option<&[CipherSuite]>) {
        if suites.is_some_and(<[CipherSuite]>::is_empty) {
            self.err(at.key("cipherSuites"), "an empty list allows no connection (leave it out for the defaults)");
        }
    }
}
