//! The example MCP server used by the README's quick start and by tests: Streamable HTTP at
//! `http://<addr>/mcp` (or stdio with `--stdio`), with the tutorial's tools (`echo`, `add`,
//! `printEnv`) and every tool, resource and prompt of the MCP conformance suite's server
//! scenarios.

use std::net::SocketAddr;

use agw_testkit::reference;

fn usage() -> ! {
    eprintln!(
        "usage: mcp-example-server [--listen ADDR] [--json] [--stdio] [--name NAME]
  --listen ADDR  address to listen on (default 127.0.0.1:3001)
  --json         answer with application/json, without sessions
  --stdio        speak MCP on stdin/stdout instead of HTTP
  --name NAME    the name in serverInfo
  --apps         also serve an MCP App (tool show_dashboard, resource ui://dashboard/app.html)"
    );
    std::process::exit(2);
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut addr: SocketAddr = "127.0.0.1:3001".parse()?;
    let mut opts = reference::Options::default();
    let mut stdio = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => addr = args.next().unwrap_or_else(|| usage()).parse()?,
            "--json" => opts.json_response = true,
            "--stdio" => stdio = true,
            "--apps" => opts.apps = true,
            "--name" => opts.name = Some(args.next().unwrap_or_else(|| usage())),
            _ => usage(),
        }
    }
    if stdio {
        return reference::serve_stdio(opts).await;
    }
    let server = reference::serve(addr, opts).await?;
    eprintln!("MCP example server on {}", server.url("/mcp"));
    tokio::signal::ctrl_c().await?;
    server.stop().await;
    Ok(())
}
