//! Smoke mode of the fuzz targets: every target over its committed corpus
//! (`corpus/<target>/`) and a few thousand deterministic mutations of it (bit flips,
//! interesting bytes, dictionary tokens from `dict/<target>.dict`, cut, duplicated and spliced
//! ranges). No timing and nothing to install: it runs in `cargo test`. The real fuzzing is
//! AFL++'s (docs/fuzzing.md); this catches a target or a parser that breaks on the basics.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};

/// Mutated inputs per target (on top of the corpus).
const MUTANTS: usize = 5_000;
/// Mutants never grow past this.
const MAX_LEN: usize = 16 * 1024;

fn dir(kind: &str, target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(kind).join(target)
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let folder = dir("corpus", target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// The tokens of an AFL dictionary (`name="value"`, with `\\`, `\"` and `\xNN` escapes).
fn dictionary(target: &str) -> Vec<Vec<u8>> {
    let file = dir("dict", target).with_extension("dict");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut tokens = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let quoted = &line[line.find('"').expect("a quoted token") + 1..line.len() - 1];
        let mut token = Vec::new();
        let mut bytes = quoted.bytes();
        while let Some(b) = bytes.next() {
            if b != b'\\' {
                token.push(b);
                continue;
            }
            match bytes.next() {
                Some(b'x') => {
                    let hex = [bytes.next().unwrap(), bytes.next().unwrap()];
                    token.push(u8::from_str_radix(std::str::from_utf8(&hex).unwrap(), 16).unwrap());
                }
                Some(other) => token.push(other),
                None => panic!("{}: a dangling escape in {line}", file.display()),
            }
        }
        tokens.push(token);
    }
    tokens
}

/// splitmix64: the same inputs on every run and every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

const INTERESTING: &[u8] = b"\0\x01\x7f\x80\xff\n\r \t\"'\\/.%:,{}[]-0129aAzZ=&*!#";

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], dict: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let token = &dict[rng.below(dict.len())];
                let at = rng.below(len + 1);
                data.splice(at..at, token.iter().copied());
            }
            3 if len > 0 => {
                let from = rng.below(len);
                let to = from + rng.below(len - from + 1).min(64);
                data.drain(from..to);
            }
            4 if len > 0 => {
                let from = rng.below(len);
                let to = from + rng.below(len - from + 1).min(256);
                let copy = data[from..to].to_vec();
                for _ in 0..1 + rng.below(8) {
                    let at = rng.below(data.len() + 1);
                    data.splice(at..at, copy.iter().copied());
                }
            }
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                let keep = rng.below(len + 1);
                data.truncate(keep);
                data.extend_from_slice(&other[rng.below(other.len() + 1)..]);
            }
            6 => data.truncate(rng.below(len + 1)),
            _ => {
                let at = rng.below(len + 1);
                data.insert(at, rng.next() as u8);
            }
        }
        data.truncate(MAX_LEN);
    }
    data
}

/// Runs `target` on one input; a panic is reported with the input, which is also written
/// where `agw-fuzz-replay` can take it.
fn run(name: &str, target: agw_fuzz::Target, label: &str, data: &[u8]) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(data))) {
        let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-smoke-{name}-{label}"));
        std::fs::write(&file, data).unwrap();
        eprintln!(
            "{name}: input {label} panicked: {:?}\nsaved as {}\nreplay: cargo run -p agw-fuzz --bin agw-fuzz-replay -- {name} {}",
            String::from_utf8_lossy(&data[..data.len().min(512)]),
            file.display(),
            file.display(),
        );
        resume_unwind(panic);
    }
}

fn smoke(name: &str) {
    let target = agw_fuzz::target(name).expect("a target");
    let seeds = corpus(name);
    let dict = dictionary(name);
    for (i, seed) in seeds.iter().enumerate() {
        run(name, target, &format!("corpus-{i}"), seed);
    }
    let mut rng = Rng(0x5EED ^ name.len() as u64);
    for i in 0..MUTANTS {
        let data = mutate(&mut rng, &seeds, &dict);
        run(name, target, &format!("mutant-{i}"), &data);
    }
    println!("{name}: {} corpus inputs and {MUTANTS} mutants, no crash", seeds.len());
}

#[test]
fn smoke_jwt() {
    smoke("jwt");
}

#[test]
fn smoke_jsonrpc() {
    smoke("jsonrpc");
}

#[test]
fn smoke_sse() {
    smoke("sse");
}

#[test]
fn smoke_config() {
    smoke("config");
}

#[test]
fn smoke_path() {
    smoke("path");
}

#[test]
fn smoke_oauth() {
    smoke("oauth");
}

#[test]
fn smoke_openapi() {
    smoke("openapi");
}

#[test]
fn smoke_policy_answer() {
    smoke("policy_answer");
}

#[test]
fn every_target_has_a_corpus_a_dictionary_a_test_and_an_afl_binary() {
    let this = include_str!("smoke.rs");
    let afl = include_str!("../../../fuzz/afl/Cargo.toml");
    for (name, _) in agw_fuzz::TARGETS {
        assert!(afl.contains(&format!("name = \"{name}\"")), "fuzz/afl/Cargo.toml has no binary for {name}");
        assert!(corpus(name).len() >= 3, "corpus/{name} needs a few seeds");
        assert!(!dictionary(name).is_empty(), "dict/{name}.dict is empty");
        assert!(this.contains(&format!("fn smoke_{name}()")), "no smoke test for {name}");
    }
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")).unwrap() {
        let folder = entry.unwrap().file_name().into_string().unwrap();
        assert!(agw_fuzz::target(&folder).is_some(), "corpus/{folder} is not a target");
    }
}
