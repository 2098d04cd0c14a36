#!/usr/bin/env bash
# Builds the AFL++ binaries and fuzzes each target in turn, then prints one table row per
# target from AFL's fuzzer_stats (the table of docs/fuzzing.md).
#
#   fuzz/afl/run.sh [EXECS] [SECONDS] [TARGET…]     defaults: 1000000 1800 jwt jsonrpc sse config
#
# Each target stops after EXECS executions or SECONDS seconds, whichever comes first. One
# afl-fuzz runs at a time (a 2-core machine is shared with builds). Needs `cargo install
# cargo-afl --locked` once (docs/fuzzing.md). Output: fuzz/afl/out/<target>/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")"
execs="${1:-1000000}"
seconds="${2:-1800}"
shift $(( $# > 2 ? 2 : $# ))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(jwt jsonrpc sse config)

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agentgateway-rs/target-afl}"
cargo afl build --release --locked

export AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
corpus=../../crates/fuzz
mkdir -p out
rows=()
for t in "${targets[@]}"; do
  rm -rf "out/$t"
  cargo afl fuzz -i "$corpus/corpus/$t" -o "out/$t" -x "$corpus/dict/$t.dict" -m 1024 \
    -E "$execs" -V "$seconds" -- "$CARGO_TARGET_DIR/release/$t" > "out/$t.log" 2>&1 \
    || { echo "afl-fuzz failed on $t; see fuzz/afl/out/$t.log" >&2; tail -20 "out/$t.log" >&2; exit 1; }
  stat() { sed -n "s/^$1 *: *//p" "out/$t/default/fuzzer_stats"; }
  rows+=("| \`$t\` | $(stat execs_done) | $(stat run_time) s | $(stat execs_per_sec) | $(stat corpus_count) | $(stat saved_crashes) | $(stat saved_hangs) |")
done
echo "| target | executions | time | execs/s | corpus (paths) | crashes | hangs |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
