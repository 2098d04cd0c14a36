//! Test kit: the reference MCP upstream, a small MCP client, upstreams that misbehave on
//! purpose, and a harness that runs the gateway in-process from a YAML string.

pub mod reference;
pub mod serve;
