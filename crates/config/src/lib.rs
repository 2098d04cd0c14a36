//! The user-facing config model: agentgateway's standalone YAML, read with positions so that
//! every error names file, line, column and field path.
//!
//! Loading is `text → Source (positions, $VAR expansion) → serde_json::Value → model::Config →
//! validate → lower` (agentgateway's `mcp:`, `gateways`/`routes` and named `backends` become
//! `binds`).
//! The gateway turns a [`Loaded`] config into runtime types in its own resolve step and reports
//! its errors through [`Loaded::error`], so they are located the same way.

pub mod error;
pub mod expand;
mod lower;
pub mod model;
pub mod redact;
pub mod source;
mod validate;

use std::path::Path;

pub use error::{ConfigError, ConfigErrors, FieldError, FieldPath};
pub use lower::Origins;
pub use model::Config;
use source::{Pos, Source};

/// Config files larger than this are refused outright.
pub const MAX_CONFIG_BYTES: usize = 16 * 1024 * 1024;

/// A parsed and statically validated config, with its source kept for locating errors.
///
/// `config` is the lowered form: agentgateway's `gateways`, `routes`, named `backends` and
/// `mcp:` shorthand are turned into `binds` (see `lower.rs`), so the gateway runs one shape.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The name errors use: the path given on the command line, or `<inline>`.
    pub file: String,
    source: Source,
    /// Where each lowered piece of `config` was written.
    origins: Origins,
}

impl Loaded {
    /// Locates a problem found after loading (e.g. a CEL rule that does not compile) at a path
    /// of the lowered `config`: the message names the place in the file as written. A value that
    /// came from a variable is shown as written (`$VAR`), never as its value.
    pub fn error(&self, e: FieldError) -> ConfigError {
        let path = self.origins.source(&e.path);
        let message = self.source.redact(&path, e.message);
        ConfigError::at(&self.file, self.source.locate(&path), Some(path), message)
    }

    /// Locates several problems at once. A piece used in several places (a route attached to
    /// two gateways, a named backend referenced twice) is reported once.
    pub fn errors(&self, errs: Vec<FieldError>) -> ConfigErrors {
        let mut seen = std::collections::HashSet::new();
        let located = errs.into_iter().map(|e| self.error(e));
        ConfigErrors(located.filter(|e| seen.insert(e.to_string())).collect())
    }
}

/// Reads and loads a config file.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigErrors> {
    let name = path.display().to_string();
    let fail = |message: String| ConfigErrors(vec![ConfigError::at(&name, Pos { line: 1, col: 1 }, None, message)]);
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read config file: {e}")))?;
    if meta.len() > MAX_CONFIG_BYTES as u64 {
        return Err(fail(format!("config file is larger than {MAX_CONFIG_BYTES} bytes")));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read config file: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| fail("config file is not valid UTF-8".into()))?;
    load_str(&name, &text)
}

/// Loads config text; `file` is the name used in error messages. `$VAR` references are
/// expanded from the process environment.
pub fn load_str(file: &str, text: &str) -> Result<Loaded, ConfigErrors> {
    load_str_with(file, text, &expand::env)
}

/// Loads config text, expanding `$VAR` references with `vars` instead of the environment.
pub fn load_str_with(file: &str, text: &str, vars: expand::Lookup<'_>) -> Result<Loaded, ConfigErrors> {
    let one = |pos: Pos, path: Option<FieldPath>, message: String| {
        ConfigErrors(vec![ConfigError::at(file, pos, path, message)])
    };
    if text.len() > MAX_CONFIG_BYTES {
        return Err(one(Pos { line: 1, col: 1 }, None, format!("config is larger than {MAX_CONFIG_BYTES} bytes")));
    }
    let source = Source::parse_expanding(text, vars).map_err(|errors| {
        let located = errors.into_iter().map(|e| match e.path {
            None => ConfigError::at(file, e.pos, None, format!("invalid YAML: {}", e.message)),
            Some(path) => ConfigError::at(file, e.pos, Some(path), e.message),
        });
        ConfigErrors(located.collect())
    })?;
    let mut value = source.to_value();
    if value.is_null() {
        value = serde_json::Value::Object(Default::default());
    }
    let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = FieldPath::from_serde(e.path());
        let message = source.redact(&path, explain_serde(&e.inner().to_string()));
        one(source.locate(&path), Some(path), message)
    })?;
    // Both checks see the config as written, so their paths need no translation.
    let mut problems = validate::validate(&config);
    let (lowered, origins, wiring) = lower::lower(&config);
    problems.extend(wiring);
    if !problems.is_empty() {
        let as_written = Loaded { config, file: file.to_string(), source, origins: Origins::default() };
        return Err(as_written.errors(problems));
    }
    Ok(Loaded { config: lowered, file: file.to_string(), source, origins })
}

/// Loads any other YAML document (e.g. a `policy test` file) with the same positioned errors.
pub fn load_as<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, ConfigErrors> {
    let one = |pos: Pos, path: Option<FieldPath>, message: String| {
        ConfigErrors(vec![ConfigError::at(file, pos, path, message)])
    };
    let source = Source::parse(text).map_err(|e| one(e.pos, None, format!("invalid YAML: {}", e.message)))?;
    serde_path_to_error::deserialize(source.to_value()).map_err(|e| {
        let path = FieldPath::from_serde(e.path());
        one(source.locate(&path), Some(path), explain_serde(&e.inner().to_string()))
    })
}

/// serde's messages are good; a few are made friendlier.
fn explain_serde(msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("invalid type: ") {
        return format!("wrong type: found {rest}");
    }
    msg.to_string()
}

/// The JSON Schema of the config file (for `# yaml-language-server: $schema=…`).
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Config);
    serde_json::to_value(schema).expect("schema serialises")
}

#[cfg(test)]
mod tests;
