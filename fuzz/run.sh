#!/usr/bin/env bash
# Runs every fuzz target for a set time, one after another, each on its corpus.
#
#   bash fuzz/run.sh [seconds-per-target]      (default 120)
#
# Needs cargo-fuzz (installed here if missing). Only a stable toolchain is assumed:
# RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly-only flags (-Zsanitizer, sancov) to it.
# Sanitizer: FUZZ_SANITIZER (default address; `none` is faster, and the crate itself forbids
# unsafe code). Builds with CARGO_BUILD_JOBS=1 unless set. Prints, per target, the executions
# (libFuzzer's stat::number_of_executed_units) and whether it found a crash; exits nonzero if
# any target crashed. Crashing inputs are left in fuzz/artifacts/<target>/.
set -euo pipefail

seconds="${1:-120}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: $0 [seconds-per-target]" >&2
    exit 2
fi
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
sanitizer="${FUZZ_SANITIZER:-address}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

targets=(request_decode batch_validate log_recovery metadata_records sasl_messages)
cargo fuzz build -s "$sanitizer"

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
failed=0
summary=()
for t in "${targets[@]}"; do
    # New inputs go to a working corpus under target/ (not committed); the seeds in corpus/
    # are read, never written.
    work="target/corpus/$t"
    mkdir -p "corpus/$t" "artifacts/$t" "$work"
    log="$logs/$t.log"
    echo "== $t: ${seconds}s" >&2
    status=0
    # -rss_limit_mb bounds memory (an allocation sized by an untrusted count shows up as an
    # OOM crash); -timeout flags a single input running over 10 s (a hang).
    cargo fuzz run -s "$sanitizer" "$t" "$work" "corpus/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
        >"$log" 2>&1 || status=$?
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)"
    corpus="$(find "$work" "corpus/$t" -type f | wc -l)"
    if [ "$status" -ne 0 ] || grep -qE '^(==[0-9]+== ?ERROR|SUMMARY: libFuzzer|thread .* panicked)' "$log"; then
        result="CRASH (exit $status; see fuzz/artifacts/$t/)"
        failed=1
        grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -5 >&2 || true
    else
        result="no crash"
    fi
    summary+=("$(printf '%-18s %12s executions in %ss, corpus %s files: %s' "$t" "${execs:-?}" "$seconds" "$corpus" "$result")")
done
echo
printf '%s\n' "${summary[@]}"
exit "$failed"
