//! Merging what several targets answered into one answer.

use serde_json::{Map, Value, json};

/// `initialize` results of the targets (in target order) as one: the lowest protocol version,
/// the union of capabilities, the gateway as the server, instructions joined with target names.
pub fn initialize(results: &[(&str, Value)]) -> Value {
    if let [(_, only)] = results {
        return only.clone();
    }
    let version = results
        .iter()
        .filter_map(|(_, r)| r.get("protocolVersion").and_then(Value::as_str))
        .min()
        .unwrap_or("2025-06-18");
    let mut capabilities = Value::Object(Map::new());
    for (_, r) in results {
        if let Some(c) = r.get("capabilities") {
            union(&mut capabilities, c);
        }
    }
    let instructions: Vec<String> = results
        .iter()
        .filter_map(|(name, r)| {
            r.get("instructions").and_then(Value::as_str).filter(|s| !s.is_empty()).map(|s| format!("{name}: {s}"))
        })
        .collect();
    let mut out = json!({
        "protocolVersion": version,
        "capabilities": capabilities,
        "serverInfo": {"name": "agentgateway", "version": env!("CARGO_PKG_VERSION")},
    });
    if !instructions.is_empty() {
        out["instructions"] = Value::String(instructions.join("\n\n"));
    }
    out
}

/// Deep union of JSON objects: keys of `from` missing in `into` are added; objects on both
/// sides merge; otherwise `into` keeps its value.
fn union(into: &mut Value, from: &Value) {
    let (Value::Object(a), Value::Object(b)) = (into, from) else { return };
    for (k, v) in b {
        match a.get_mut(k) {
            Some(existing) => union(existing, v),
            None => {
                a.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initialize_merges() {
        let a = json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {"listChanged": true}}, "serverInfo": {"name": "a"}, "instructions": "Use a."});
        let b = json!({"protocolVersion": "2025-03-26", "capabilities": {"tools": {}, "resources": {"subscribe": true}}, "serverInfo": {"name": "b"}});
        let m = initialize(&[("a", a.clone()), ("b", b)]);
        assert_eq!(m["protocolVersion"], "2025-03-26");
        assert_eq!(m["capabilities"], json!({"tools": {"listChanged": true}, "resources": {"subscribe": true}}));
        assert_eq!(m["serverInfo"]["name"], "agentgateway");
        assert_eq!(m["instructions"], "a: Use a.");
        assert_eq!(initialize(&[("a", a.clone())]), a, "one target: its own answer");
    }
}
