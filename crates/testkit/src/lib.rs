//! Test kit: the reference MCP upstream, a small MCP client, upstreams that misbehave on
//! purpose, counting HTTP upstreams, a Nagle-bound upstream, real npm peers, and a harness that runs the gateway
//! in-process from YAML.

pub mod authz;
pub mod client;
pub mod counting;
pub mod faulty;
pub mod guardrails;
pub mod harness;
pub mod jwt;
pub mod load;
pub mod nagle;
pub mod node;
pub mod otlp;
pub mod python;
pub mod recorder;
pub mod reference;
pub mod rls;
pub mod serve;
pub mod tls;
