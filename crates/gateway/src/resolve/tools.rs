//! An MCP backend's tool policy (extensions): per-target allow/deny lists and tool-definition
//! pinning, with the pin file read and the trust-on-first-use state file opened.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use agw_config::FieldPath;
use agw_config::model::McpBackend;
use agw_mcp::guard::pins::{PinFile, TofuStore};
use agw_mcp::guard::{NameFilter, Pinning, ToolGuard};

use super::Builder;

impl Builder {
    /// The backend's guard, or `None` when it has neither filters nor pinning (its requests
    /// then pay nothing for either).
    pub(super) fn tool_guard(&mut self, at: &FieldPath, m: &McpBackend) -> Option<Arc<ToolGuard>> {
        let filters: HashMap<String, NameFilter> = m
            .targets
            .iter()
            .filter_map(|t| {
                let f = t.tools.as_ref()?;
                Some((t.name.clone(), NameFilter { allow: f.allow.clone(), deny: f.deny.clone() }))
            })
            .collect();
        let pinning = m.tool_pinning.as_ref().map(|p| {
            let at = at.key("toolPinning");
            let file = p.file.as_ref().and_then(|f| {
                let read = super::policy::read_file(f).and_then(|text| PinFile::parse(&text));
                read.map_err(|e| self.err(at.key("file"), e)).ok()
            });
            let tofu = p.trust_on_first_use.as_ref().and_then(|t| {
                TofuStore::open(Path::new(&t.state_file))
                    .map_err(|e| self.err(at.key("trustOnFirstUse").key("stateFile"), e))
                    .ok()
            });
            Pinning { file, tofu }
        });
        if filters.is_empty() && pinning.is_none() {
            return None;
        }
        Some(Arc::new(ToolGuard::new(filters, pinning)))
    }
}
