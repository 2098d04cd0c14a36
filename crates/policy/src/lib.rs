//! Policy logic, free of I/O: JWT validation, API keys, Basic auth, CORS, and where
//! credentials travel. The gateway loads files and fetches remote keys; this crate decides.

pub mod apikey;
pub mod basic;
pub mod cors;
pub mod expr;
mod functions;
pub mod jwt;
pub mod location;
pub mod random;
pub mod rules;
