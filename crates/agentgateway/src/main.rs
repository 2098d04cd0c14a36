//! `agentgateway`: the command line.
//!
//! Exit codes: 0 ok, 1 runtime failure, 2 bad config or usage.

use std::path::PathBuf;
use std::process::ExitCode;

use agw_config::Loaded;
use agw_config::model::LogFormat;
use clap::{Parser, Subcommand};
use std::sync::{Arc, Mutex};
use tracing::{error, info};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

mod healthcheck;
mod pin;
mod policy;

/// `--version`: the crate version and the commit it was built from (build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("AGW_COMMIT"), ")");

/// mimalloc instead of the system allocator: a proxied call allocates and frees many small
/// buffers on two threads, which glibc's malloc serves markedly slower (see
/// docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXIT_RUNTIME: u8 = 1;
pub(crate) const EXIT_CONFIG: u8 = 2;

/// An MCP gateway that reads agentgateway's standalone YAML config.
#[derive(Debug, Parser)]
#[command(name = "agentgateway", version = VERSION, about, args_conflicts_with_subcommands = true)]
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
    /// Pin the tool definitions of live MCP servers: connects to each target (initialize, then
    /// every page of tools/list) and writes a pin file for `toolPinning.file`.
    Pin {
        /// Config file: pin every MCP target it names (each with its transport and policies).
        #[arg(
            short = 'f',
            long = "file",
            value_name = "FILE",
            required_unless_present = "url",
            conflicts_with = "url"
        )]
        file: Option<PathBuf>,
        /// Pin one Streamable HTTP server at this URL instead of a config's targets.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// The target name to pin `--url` under: the name the config gives the target.
        #[arg(long, value_name = "NAME", default_value = "mcp", requires = "url")]
        name: String,
        /// Only this target of the config (repeatable; default: every target).
        #[arg(long = "target", value_name = "NAME", requires = "file")]
        targets: Vec<String>,
        /// Where to write the pin file (default: standard output).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Probe a running gateway's readiness (`GET /healthz/ready`): exit 0 on `200`, 1
    /// otherwise. For container health checks where there is no curl.
    Healthcheck {
        /// The readiness server (`config.readinessAddr`).
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15021")]
        addr: String,
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
        Some(Command::Healthcheck { addr }) => return healthcheck::run(&addr),
        Some(Command::Pin { file, url, name, targets, output }) => {
            let source = match (file, url) {
                (_, Some(url)) => pin::Source::Url { url, name },
                (Some(file), None) => pin::Source::Config { file, targets },
                (None, None) => unreachable!("clap requires --file or --url"),
            };
            return pin::run(source, output.as_deref());
        }
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
        if let Err(msg) = log_filter(&loaded) {
            eprintln!("{msg}");
            return ExitCode::from(EXIT_CONFIG);
        }
        for w in &runtime.warnings {
            eprintln!("warning: {w}");
        }
        println!("{}: configuration is valid", loaded.file);
        return ExitCode::SUCCESS;
    }
    drop(runtime);
    let log_control = match init_logging(&loaded) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let options = agw_gateway::Options { log_level: Some(log_control), config_path: cli.file.clone() };
    // The gateway runs one event loop per worker thread (`config.workerThreads`); this one is
    // the first of them and also runs the admin server and background jobs.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    runtime.block_on(run(loaded, options))
}

fn load(cli: &Cli) -> Result<Loaded, String> {
    match (&cli.file, &cli.config) {
        (Some(path), _) => agw_config::load_file(path).map_err(|e| e.to_string()),
        (None, Some(text)) => agw_config::load_str("<inline>", text).map_err(|e| e.to_string()),
        (None, None) => Err("error: a config is required: `agentgateway -f config.yaml` or `--config 'YAML'`\n\nFor more information, try '--help'.".into()),
    }
}

/// The log filter, changeable at run time through the admin server's `/logging`.
struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    current: Mutex<String>,
}

impl agw_gateway::LogLevel for LogControl {
    fn get(&self) -> String {
        self.current.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn set(&self, filter: &str) -> Result<(), String> {
        let parsed = EnvFilter::try_new(filter).map_err(|e| e.to_string())?;
        self.handle.reload(parsed).map_err(|e| e.to_string())?;
        if let Ok(mut c) = self.current.lock() {
            *c = filter.to_string();
        }
        Ok(())
    }
}

/// The log filter: `RUST_LOG` if set, else `config.logging.level` (a list is joined with
/// commas), else `info`.
fn log_filter(loaded: &Loaded) -> Result<(String, EnvFilter), String> {
    let level = loaded.config.config.as_ref().and_then(|c| c.logging.as_ref()).and_then(|l| l.level.as_ref());
    let text = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => env,
        _ => level.map_or_else(|| "info".into(), |l| l.filter()),
    };
    let filter = EnvFilter::try_new(&text).map_err(|e| match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => format!("RUST_LOG: {e}"),
        _ => {
            let at = agw_config::FieldPath::root().key("config").key("logging").key("level");
            loaded.error(agw_config::FieldError::new(at, format!("not a log filter: {e}"))).to_string()
        }
    })?;
    Ok((text, filter))
}

fn init_logging(loaded: &Loaded) -> Result<Arc<LogControl>, String> {
    let logging = loaded.config.config.as_ref().and_then(|c| c.logging.clone()).unwrap_or_default();
    let (text, filter) = log_filter(loaded)?;
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    match logging.format.unwrap_or_default() {
        LogFormat::Json => registry.with(fmt::layer().json().flatten_event(true).with_writer(std::io::stderr)).init(),
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
    Ok(Arc::new(LogControl { handle, current: Mutex::new(text) }))
}

async fn run(loaded: Loaded, options: agw_gateway::Options) -> ExitCode {
    // Handlers first: a signal that arrives while ports are being bound must still mean
    // "drain and exit 0", not the default "die".
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot install signal handlers: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    // Each client connection holds a descriptor; the per-worker connection caps are derived
    // from the limit raised here.
    match agw_gateway::raise_fd_limit() {
        Ok((soft, hard)) => info!(soft, hard, "file descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the file descriptor limit"),
    }
    let running = match agw_gateway::start_with(&loaded, options).await {
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
    info!("received {signal}; shutting down");
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
