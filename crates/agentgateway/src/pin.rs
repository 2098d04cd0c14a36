//! `agentgateway pin`: writes a pin file from live MCP servers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agw_gateway::pin;

/// What to pin.
pub(crate) enum Source {
    /// Every (or the named) MCP target of a config file.
    Config { file: PathBuf, targets: Vec<String> },
    /// One Streamable HTTP server, pinned under `name`.
    Url { url: String, name: String },
}

pub(crate) fn run(source: Source, output: Option<&Path>) -> ExitCode {
    let targets = match targets(source) {
        Ok(t) => t,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(crate::EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let pins = match runtime.block_on(pin::pin(&targets)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let text = pins.to_text();
    let written = match output {
        Some(path) => write_file(path, &text),
        None => std::io::stdout().write_all(text.as_bytes()).map_err(|e| e.to_string()),
    };
    if let Err(e) = written {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    for (target, tools) in &pins.targets {
        eprintln!("pinned {} tools of target `{target}`", tools.len());
    }
    ExitCode::SUCCESS
}

fn targets(source: Source) -> Result<Vec<pin::Target>, String> {
    match source {
        Source::Url { url, name } => Ok(vec![pin::url_target(&name, &url)?]),
        Source::Config { file, targets } => {
            let mut loaded = agw_config::load_file(&file).map_err(|e| e.to_string())?;
            // The pin file the config names may not exist yet: it is what is being written.
            without_pinning(&mut loaded.config);
            let runtime = agw_gateway::resolve(&loaded).map_err(|e| e.to_string())?;
            let mut all = pin::config_targets(&runtime);
            if !targets.is_empty() {
                if let Some(missing) = targets.iter().find(|t| !all.iter().any(|a| &a.name == *t)) {
                    return Err(format!("error: the config has no MCP target `{missing}`"));
                }
                all.retain(|t| targets.contains(&t.name));
            }
            if all.is_empty() {
                return Err("error: the config has no MCP targets".into());
            }
            Ok(all)
        }
    }
}

fn without_pinning(config: &mut agw_config::model::Config) {
    let backends = config.binds.iter_mut().flat_map(|b| &mut b.listeners).flat_map(|l| &mut l.routes);
    for backend in backends.flat_map(|r| &mut r.backends) {
        if let Some(mcp) = &mut backend.mcp {
            mcp.tool_pinning = None;
        }
    }
}

/// Writes beside `path` and renames over it: a reader never sees half a pin file.
fn write_file(path: &Path, text: &str) -> Result<(), String> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}
