//! The config loader (`agw_config::load_str`: YAML with positions, serde, validation). A
//! config is written by an operator, not a client, but it is edited by hand and reloaded
//! while the gateway runs: no text may crash or hang the loader.

const FILE: &str = "fuzz.yaml";

/// Input: config text.
///
/// Invariants: a refused config has at least one error, each naming the file and a position
/// inside the text (lines and columns count from 1).
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match agw_config::load_str(FILE, &text) {
        Ok(loaded) => assert_eq!(loaded.file, FILE),
        Err(errors) => {
            assert!(!errors.0.is_empty(), "refused without an error");
            let lines = 1 + text.bytes().filter(|b| *b == b'\n' || *b == b'\r').count();
            for e in &errors.0 {
                assert_eq!(e.file, FILE);
                assert!(e.line >= 1 && e.col >= 1, "positions count from 1: {e}");
                assert!(e.line <= lines + 1, "line {} of a {lines}-line text: {e}", e.line);
                assert!(e.to_string().starts_with("fuzz.yaml:"));
            }
        }
    }
}
