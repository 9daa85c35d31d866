#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 60).
#
#   fuzz/run.sh 60
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). It builds without a
# sanitizer, which works on stable Rust; set FUZZ_SANITIZER=address (with a
# nightly toolchain, e.g. `cargo +nightly`) for AddressSanitizer. Corpora
# are kept in fuzz/corpus/TARGET between runs; a crash is saved in
# fuzz/artifacts/TARGET and makes this script exit non-zero.
set -euo pipefail
seconds="${1:-60}"
sanitizer="${FUZZ_SANITIZER:-none}"
cd "$(dirname "$0")/.."
targets=$(cargo fuzz list)
cargo fuzz build --sanitizer "$sanitizer" --release
mkdir -p fuzz/target
for t in $targets; do
    echo "== $t: ${seconds}s"
    log="fuzz/target/$t.log"
    start=$(date +%s)
    status=0
    cargo fuzz run --sanitizer "$sanitizer" --release "$t" -- \
        -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY)|panicked|Done [0-9]+ runs' "$log" || true
    echo "== $t: exit $status after $(( $(date +%s) - start ))s (full output: $log)"
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$log"
        exit "$status"
    fi
done
