//! The example MCP server used by the README's quick start and by tests: Streamable HTTP at
//! `http://<addr>/mcp`, with the tutorial's tools (`echo`, `add`, `printEnv`) and every tool,
//! resource and prompt of the MCP conformance suite's server scenarios.

use std::net::SocketAddr;

use agw_testkit::reference;

fn usage() -> ! {
    eprintln!(
        "usage: mcp-example-server [--listen ADDR] [--json]\n  --listen ADDR  address to listen on (default 127.0.0.1:3001)\n  --json         answer with application/json, without sessions"
    );
    std::process::exit(2);
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut addr: SocketAddr = "127.0.0.1:3001".parse()?;
    let mut opts = reference::Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => addr = args.next().unwrap_or_else(|| usage()).parse()?,
            "--json" => opts.json_response = true,
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    let server = reference::serve(addr, opts).await?;
    eprintln!("MCP example server on {}", server.url("/mcp"));
    tokio::signal::ctrl_c().await?;
    server.stop().await;
    Ok(())
}
