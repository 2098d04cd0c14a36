//! A rate-limit service speaking Envoy's protocol with its counters in Redis (see
//! `agw_testkit::rls`): what `remoteRateLimit` talks to in tests and the load harness.

use std::net::SocketAddr;

use agw_gateway::envoy::ratelimit::unit;
use agw_testkit::rls::{Limit, Rls};

fn usage() -> ! {
    eprintln!(
        "usage: rls-redis [--listen ADDR] [--redis ADDR] [--limit N] [--unit second|minute|hour|day]
  --listen ADDR  address to serve gRPC on (default 127.0.0.1:8081)
  --redis ADDR   the Redis server (default 127.0.0.1:6379)
  --limit N      requests per unit for descriptors without a limit override (default 100)
  --unit UNIT    the window of that limit (default minute)"
    );
    std::process::exit(2);
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut listen: SocketAddr = "127.0.0.1:8081".parse()?;
    let mut redis: SocketAddr = "127.0.0.1:6379".parse()?;
    let mut limit = Limit { requests_per_unit: 100, unit: unit::MINUTE };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--listen" => listen = value().parse()?,
            "--redis" => redis = value().parse()?,
            "--limit" => limit.requests_per_unit = value().parse()?,
            "--unit" => limit.unit = unit::by_name(&value()).unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    let rls = Rls::start(listen, redis, limit).await?;
    eprintln!("rate-limit service on {} (Redis {redis})", rls.host());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
