//! `agentgateway policy test` and `agentgateway policy explain`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agw_gateway::explain::{self, Case, Expect, TestFile};

use crate::{EXIT_CONFIG, PolicyCommand};

pub(crate) fn run(command: PolicyCommand) -> ExitCode {
    let result = match command {
        PolicyCommand::Test { file } => test(&file),
        PolicyCommand::Explain { file, route, token, claims, method, tool, prompt, resource, arguments } => {
            let parse = |what: &str, s: Option<String>| -> Result<Option<serde_json::Value>, String> {
                s.map(|s| serde_json::from_str(&s).map_err(|e| format!("--{what} is not JSON: {e}"))).transpose()
            };
            (|| {
                let claims = match parse("claims", claims)? {
                    Some(serde_json::Value::Object(m)) => Some(m),
                    Some(_) => return Err("--claims must be a JSON object".to_string()),
                    None => None,
                };
                let case = Case {
                    route,
                    token,
                    claims,
                    method,
                    tool,
                    prompt,
                    resource,
                    arguments: parse("arguments", arguments)?,
                    ..Case::default()
                };
                let runtime = load(&file)?;
                let e = explain::explain(&runtime, &case, Path::new("."))?;
                print!("{}", e.render());
                Ok(ExitCode::SUCCESS)
            })()
        }
    };
    result.unwrap_or_else(|msg| {
        eprintln!("{msg}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn load(config: &Path) -> Result<agw_gateway::Runtime, String> {
    let loaded = agw_config::load_file(config).map_err(|e| e.to_string())?;
    agw_gateway::resolve(&loaded).map_err(|e| e.to_string())
}

/// Runs a test file. Relative paths inside the config (JWKS files) resolve against the
/// config's directory, as if the gateway ran from there.
fn test(file: &Path) -> Result<ExitCode, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    let tests: TestFile = agw_config::load_as(&file.display().to_string(), &text).map_err(|e| e.to_string())?;
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let config = base.join(&tests.config);
    let config_dir = config.parent().map(Path::to_path_buf).unwrap_or_default();
    let config_name: PathBuf = config.file_name().map(PathBuf::from).ok_or("the test file's `config` names no file")?;
    let base = std::fs::canonicalize(if base.as_os_str().is_empty() { Path::new(".") } else { &base })
        .map_err(|e| e.to_string())?;
    if !config_dir.as_os_str().is_empty() {
        std::env::set_current_dir(&config_dir).map_err(|e| format!("{}: {e}", config_dir.display()))?;
    }
    let runtime = load(&config_name)?;
    let (mut passed, mut failed) = (0, 0);
    for (i, case) in tests.cases.iter().enumerate() {
        let mut case = case.clone();
        case.route = case.route.or_else(|| tests.route.clone());
        let label = case.name.clone().unwrap_or_else(|| format!("case {i}"));
        let Some(expect) = case.expect else {
            return Err(format!("{label}: `expect: allow|deny` is required"));
        };
        match explain::explain(&runtime, &case, &base) {
            Ok(e) => {
                let got = if e.allowed { Expect::Allow } else { Expect::Deny };
                let why = match e.decision.rule {
                    Some(r) if !e.listing => format!("{}, rule [{r}] `{}`", e.decision.reason.describe(), e.rules[r].1),
                    _ if e.listing => "listing".to_string(),
                    _ => e.decision.reason.describe().to_string(),
                };
                if got == expect {
                    passed += 1;
                    println!("PASS  {label}: {} ({why})", word(got));
                } else {
                    failed += 1;
                    println!("FAIL  {label}: expected {}, got {} ({why})", word(expect), word(got));
                }
            }
            Err(msg) => {
                failed += 1;
                println!("FAIL  {label}: {msg}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn word(e: Expect) -> &'static str {
    match e {
        Expect::Allow => "allow",
        Expect::Deny => "deny",
    }
}
