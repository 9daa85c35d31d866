#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 60), one
# after the other; or only the TARGETs named.
#
#   fuzz/run.sh 60                 # every target, a minute each
#   fuzz/run.sh 3600 chat_room     # one target, an hour
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a C++
# compiler (libFuzzer is built from source). It builds without a
# sanitizer, which works on stable Rust; set FUZZ_SANITIZER=address (with a
# nightly toolchain, e.g. `cargo +nightly`) for AddressSanitizer. It builds
# cargo-fuzz's default way, optimized but with debug assertions and
# overflow checks on (`--release` would turn those off, and they find bugs).
#
# Each run starts from the committed seeds in fuzz/corpus/TARGET (read
# only, so the checkout stays clean) and from what earlier runs found in
# fuzz/target/corpus/TARGET, where new inputs go: a longer run goes deeper,
# and the next one starts there. fuzz/dicts/TARGET.dict, if there is one,
# gives libFuzzer the protocol's words. A crash is saved in
# fuzz/artifacts/TARGET and makes this script exit non-zero; replay it with
# `cargo fuzz run --sanitizer none TARGET fuzz/artifacts/TARGET/crash-...`.
set -euo pipefail
seconds="${1:-60}"
shift || true
sanitizer="${FUZZ_SANITIZER:-none}"
cd "$(dirname "$0")/.."
if [ "$#" -gt 0 ]; then
    targets="$*"
else
    targets=$(cargo fuzz list)
fi
cargo fuzz build --sanitizer "$sanitizer"
mkdir -p fuzz/target
for t in $targets; do
    echo "== $t: ${seconds}s"
    log="fuzz/target/$t.log"
    mkdir -p "fuzz/corpus/$t" "fuzz/target/corpus/$t"
    dict=()
    [ -f "fuzz/dicts/$t.dict" ] && dict=("-dict=fuzz/dicts/$t.dict")
    start=$(date +%s)
    status=0
    cargo fuzz run --sanitizer "$sanitizer" "$t" "fuzz/target/corpus/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -max_len=4096 "${dict[@]}" \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY)|panicked|Done [0-9]+ runs' "$log" || true
    echo "== $t: exit $status after $(( $(date +%s) - start ))s (full output: $log)"
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$log"
        exit "$status"
    fi
done
