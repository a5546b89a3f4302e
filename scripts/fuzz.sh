#!/usr/bin/env bash
# Fuzzes each wire codec (fuzz/fuzz_targets: http_head, chunked, uwsgi, scgi)
# with libFuzzer through cargo-fuzz, for SECONDS each (default 60), starting
# from the checked-in seed corpus fuzz/corpus/<target>.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# - Installs cargo-fuzz (crates.io) when it is missing.
# - The toolchain is stable; cargo-fuzz's nightly-only flags (-Zsanitizer,
#   sanitizer coverage) are unlocked with RUSTC_BOOTSTRAP=1.
# - The checked-in corpus is never written to: libFuzzer grows a copy under
#   fuzz/target/corpus/<target> and reads the checked-in one as a second,
#   read-only corpus directory.
# - Exits non-zero when any target crashes, leaks, times out or runs out of
#   memory, naming the target and the artifact (the reproducing input, under
#   fuzz/artifacts/<target>/). Replay one with
#   `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <artifact>`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(http_head chunked uwsgi scgi)
fi

say() { printf '==> %s\n' "$*" >&2; }

export RUSTC_BOOTSTRAP=1
# One input may take this long before it counts as a hang (an endless loop).
per_input_timeout=10
# libFuzzer's own RSS cap; an input that needs more is a bug (a declared size
# buffered before its limit was checked).
rss_limit_mb=2048

if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

say "building fuzz targets"
start=$(date +%s)
cargo fuzz build
say "built in $(($(date +%s) - start)) s"

failed=()
for target in "${targets[@]}"; do
    seeds=fuzz/corpus/$target
    work=fuzz/target/corpus/$target
    artifacts=fuzz/artifacts/$target
    [ -d "$seeds" ] || { say "no seed corpus $seeds"; exit 2; }
    mkdir -p "$work" "$artifacts"
    log=$(mktemp)
    say "fuzzing $target for $seconds s"
    status=0
    # -max_len: the largest seeds are 16 KiB; longer inputs add nothing the
    # small limits do not already reach, and slow every run.
    cargo fuzz run "$target" "$work" "$seeds" -- \
        -max_total_time="$seconds" \
        -timeout="$per_input_timeout" \
        -rss_limit_mb="$rss_limit_mb" \
        -max_len=16384 \
        -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
    grep -E '^(#[0-9]+ +DONE|Done [0-9]+ runs|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' "$log" >&2 || true
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$log" >&2
        artifact=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -n 1 | cut -d' ' -f5 || true)
        say "FAILED: $target (exit $status), artifact: ${artifact:-none written}"
        failed+=("$target${artifact:+ ($artifact)}")
    fi
    rm -f "$log"
done

if [ ${#failed[@]} -ne 0 ]; then
    say "fuzzing found problems in: ${failed[*]}"
    exit 1
fi
say "all targets ran $seconds s without a crash"
