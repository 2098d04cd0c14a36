//! `agentgateway`: the command line.
//!
//! Exit codes: 0 ok, 1 runtime failure, 2 bad config or usage.

use std::path::PathBuf;
use std::process::ExitCode;

use agw_config::Loaded;
use agw_config::model::LogFormat;
use clap::{Parser, Subcommand};
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

mod policy;

const EXIT_RUNTIME: u8 = 1;
pub(crate) const EXIT_CONFIG: u8 = 2;

/// An MCP gateway that reads agentgateway's standalone YAML config.
#[derive(Debug, Parser)]
#[command(name = "agentgateway", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    /// Config file (YAML or JSON).
    #[arg(short = 'f', long = "file", value_name = "FILE", conflicts_with = "config")]
    file: Option<PathBuf>,

    /// Config as an inline YAML string.
    #[arg(short = 'c', long = "config", value_name = "YAML")]
    config: Option<String>,

    /// Parse the config, compile every rule and load every key file, then exit:
    /// 0 if valid, 2 with the errors otherwise.
    #[arg(long)]
    validate_only: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the JSON Schema of the config file (for `# yaml-language-server: $schema=…`).
    Schema,
    /// Check `mcpAuthorization` rules without traffic.
    Policy {
        #[command(subcommand)]
        command: Box<PolicyCommand>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Run the cases of a test file: each names a caller, a request and the expected
    /// decision. Prints a line per case and `N passed, N failed`; exits 1 on any mismatch.
    Test {
        /// The test file (YAML); its `config` is relative to it.
        file: PathBuf,
    },
    /// Show every rule's result and the decision for one request.
    Explain {
        /// Config file.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
        /// Route name (default: the first route with mcpAuthorization).
        #[arg(long)]
        route: Option<String>,
        /// A file holding the caller's JWT (validated with the route's jwtAuth).
        #[arg(long, value_name = "FILE", conflicts_with = "claims")]
        token: Option<PathBuf>,
        /// The caller's claims as JSON, e.g. '{"sub":"alice"}'.
        #[arg(long, value_name = "JSON")]
        claims: Option<String>,
        /// MCP method (default: tools/call, prompts/get or resources/read).
        #[arg(long)]
        method: Option<String>,
        /// Tool name.
        #[arg(long)]
        tool: Option<String>,
        /// Prompt name.
        #[arg(long)]
        prompt: Option<String>,
        /// Resource URI.
        #[arg(long)]
        resource: Option<String>,
        /// Tool arguments as JSON.
        #[arg(long, value_name = "JSON")]
        arguments: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Schema) => {
            let schema = agw_config::json_schema();
            println!("{}", serde_json::to_string_pretty(&schema).expect("schema serialises"));
            return ExitCode::SUCCESS;
        }
        Some(Command::Policy { command }) => return policy::run(*command),
        None => {}
    }
    let loaded = match load(&cli) {
        Ok(l) => l,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match agw_gateway::resolve(&loaded) {
        Ok(r) => r,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if cli.validate_only {
        for w in &runtime.warnings {
            eprintln!("warning: {w}");
        }
        println!("{}: configuration is valid", loaded.file);
        return ExitCode::SUCCESS;
    }
    drop(runtime);
    if let Err(msg) = init_logging(&loaded) {
        eprintln!("{msg}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    runtime.block_on(run(loaded))
}

fn load(cli: &Cli) -> Result<Loaded, String> {
    match (&cli.file, &cli.config) {
        (Some(path), _) => agw_config::load_file(path).map_err(|e| e.to_string()),
        (None, Some(text)) => agw_config::load_str("<inline>", text).map_err(|e| e.to_string()),
        (None, None) => Err("error: a config is required: `agentgateway -f config.yaml` or `--config 'YAML'`\n\nFor more information, try '--help'.".into()),
    }
}

fn init_logging(loaded: &Loaded) -> Result<(), String> {
    let logging = loaded.config.config.as_ref().and_then(|c| c.logging.clone()).unwrap_or_default();
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => EnvFilter::try_new(env).map_err(|e| format!("RUST_LOG: {e}"))?,
        _ => {
            let level = logging.level.as_deref().unwrap_or("info");
            EnvFilter::try_new(level).map_err(|e| format!("{}: config.logging.level: {e}", loaded.file))?
        }
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match logging.format.unwrap_or_default() {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
    }
    Ok(())
}

async fn run(loaded: Loaded) -> ExitCode {
    // Handlers first: a signal that arrives while ports are being bound must still mean
    // "drain and exit 0", not the default "die".
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot install signal handlers: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let running = match agw_gateway::start(&loaded).await {
        Ok(r) => r,
        Err(agw_gateway::StartError::Config(e)) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(e) => {
            error!("{e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let signal = signals.wait().await;
    info!("received {signal}; draining and shutting down");
    running.shutdown().await;
    info!("shutdown complete");
    ExitCode::SUCCESS
}

#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    async fn wait(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals)
    }

    async fn wait(self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
