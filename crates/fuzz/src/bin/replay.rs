//! Runs one fuzz target over files, as AFL would: `agw-fuzz-replay <target> <file>…`. A crash
//! reproduces here with a backtrace (`RUST_BACKTRACE=1`) and without AFL installed.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let names: Vec<&str> = agw_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    let Some((name, files)) = args.split_first() else {
        eprintln!("usage: agw-fuzz-replay <target> <file>…  (targets: {})", names.join(", "));
        std::process::exit(2);
    };
    let Some(target) = agw_fuzz::target(name) else {
        eprintln!("unknown target `{name}` (targets: {})", names.join(", "));
        std::process::exit(2);
    };
    for file in files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
        if let Err(panic) = std::panic::catch_unwind(|| target(&data)) {
            eprintln!("{name}: {file} ({} bytes) panicked", data.len());
            std::panic::resume_unwind(panic);
        }
    }
    println!("{name}: {} input(s), no crash", files.len());
}
