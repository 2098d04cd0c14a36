//! The front-door shapes as written: `gateways`, `routes`, named `backends` and `mcp:`. How
//! they fit together (references, attachment, ports) is checked where they are lowered
//! (`lower.rs`).

use std::collections::HashSet;

use super::{Validator, check_host_port, check_hostname};
use crate::error::FieldPath;
use crate::model::{
    Config, Gateway, GatewayListener, GatewayProtocol, GatewayRefs, ListenerTls, NamedBackend, SimpleMcp,
    backend_ref_name,
};

impl Validator {
    pub(super) fn front_door(&mut self, c: &Config) {
        let root = FieldPath::root();
        for (name, g) in &c.gateways {
            self.gateway(&root.key("gateways").key(name), name, g);
        }
        for (i, r) in c.routes.iter().enumerate() {
            let at = root.key("routes").index(i);
            if let Some(refs) = &r.gateways {
                self.gateway_refs(&at.key("gateways"), refs);
            }
            self.route(&at, &r.route());
        }
        let mut names = HashSet::new();
        for (i, b) in c.backends.iter().enumerate() {
            let at = root.key("backends").index(i);
            if !names.insert(b.name.as_str()) {
                self.err(at.key("name"), format!("backend name `{}` is used twice", b.name));
            }
            self.named_backend(&at, b);
        }
        if let Some(m) = &c.mcp {
            self.simple_mcp(&root.key("mcp"), m);
        }
    }

    pub(super) fn backend_ref(&mut self, at: &FieldPath, reference: &str) {
        if backend_ref_name(reference).is_empty() {
            self.err(at.clone(), "names no backend (write the name of one of the top-level `backends`)");
        }
    }

    fn gateway(&mut self, at: &FieldPath, name: &str, g: &Gateway) {
        if name.is_empty() || name.contains('/') {
            self.err(
                at.clone(),
                format!("gateway name `{name}`: not empty and without `/` (`<gateway>/<listener>` names a listener)"),
            );
        }
        if g.listeners.is_empty() {
            self.gateway_protocol(at, g.protocol, g.tls.as_ref());
        }
        if let Some(p) = g.policies() {
            self.gateway_policies(at, &p);
        }
        let mut names = HashSet::new();
        for (i, l) in g.listeners.iter().enumerate() {
            let at = at.key("listeners").index(i);
            let own = l.name.clone().unwrap_or_else(|| format!("listener{i}"));
            if !names.insert(own.clone()) {
                self.err(at.key("name"), format!("listener name `{own}` is used twice in this gateway"));
            }
            self.gateway_listener(&at, l);
        }
        let https =
            |l: &GatewayListener| GatewayProtocol::effective(l.protocol, l.tls.is_some()) == GatewayProtocol::Https;
        if let Some(first) = g.listeners.first() {
            for (i, l) in g.listeners.iter().enumerate().skip(1) {
                if https(l) != https(first) {
                    self.err(
                        at.key("listeners").index(i).key("protocol"),
                        "every listener of a gateway must be HTTPS, or none: put HTTP and HTTPS on separate gateways",
                    );
                }
            }
        }
    }

    fn gateway_listener(&mut self, at: &FieldPath, l: &GatewayListener) {
        self.gateway_protocol(at, l.protocol, l.tls.as_ref());
        if let Some(h) = &l.hostname
            && let Err(msg) = check_hostname(h)
        {
            self.err(at.key("hostname"), msg);
        }
        if let Some(p) = l.policies() {
            self.gateway_policies(at, &p);
        }
    }

    fn gateway_protocol(&mut self, at: &FieldPath, written: Option<GatewayProtocol>, tls: Option<&ListenerTls>) {
        match GatewayProtocol::effective(written, tls.is_some()) {
            GatewayProtocol::Http if tls.is_some() => self.err(at.key("tls"), "`tls` needs `protocol: HTTPS`"),
            GatewayProtocol::Http => {}
            GatewayProtocol::Https => match tls {
                Some(tls) => self.listener_tls(&at.key("tls"), tls),
                None => self.err(at.key("tls"), "missing: `protocol: HTTPS` needs `tls: {cert: <file>, key: <file>}`"),
            },
            GatewayProtocol::Tcp | GatewayProtocol::Tls => {
                self.err(at.key("protocol"), "not supported yet (only HTTP listeners)")
            }
        }
    }

    fn gateway_refs(&mut self, at: &FieldPath, refs: &GatewayRefs) {
        for (i, r) in refs.as_slice().iter().enumerate() {
            let at = if matches!(refs, GatewayRefs::Many(_)) { at.index(i) } else { at.clone() };
            let (gateway, listener) = r.split_once('/').unwrap_or((r, "x"));
            if gateway.is_empty() || listener.is_empty() || listener.contains('/') {
                self.err(at, format!("`{r}` is not `<gateway>` or `<gateway>/<listener>`"));
            }
        }
    }

    fn named_backend(&mut self, at: &FieldPath, b: &NamedBackend) {
        if b.name.is_empty() || b.name.starts_with('/') {
            self.err(
                at.key("name"),
                "a backend name is not empty and does not start with `/` (references may add one)",
            );
        }
        self.unsupported(at, b.unsupported());
        match b.kinds() {
            0 => self.err(at.clone(), "a backend needs one of `host` or `mcp`"),
            1 => {}
            _ => self
                .err(at.clone(), "a backend has exactly one of `host`, `mcp`, `ai`, `aws`, `internal`; found several"),
        }
        if let Some(host) = &b.host
            && let Err(msg) = check_host_port(host)
        {
            self.err(at.key("host"), msg);
        }
        if let Some(mcp) = &b.mcp {
            self.mcp(&at.key("mcp"), mcp);
        }
        if let Some(p) = &b.policies {
            self.backend_policies(&at.key("policies"), p, false);
        }
    }

    fn simple_mcp(&mut self, at: &FieldPath, m: &SimpleMcp) {
        if let Some(refs) = &m.gateways {
            self.gateway_refs(&at.key("gateways"), refs);
        }
        self.mcp(at, &m.backend());
        if let Some(p) = &m.policies {
            self.route_policies(&at.key("policies"), p);
        }
    }
}
