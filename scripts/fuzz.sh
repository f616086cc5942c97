#!/usr/bin/env bash
# Bounded fuzzing of the parsers an attacker's bytes reach first (fuzz/):
# the JWS decoder and verifier, the token-endpoint form, the JSON-RPC peek,
# the X-Forwarded-For walk and the client metadata document check.
#
#   scripts/fuzz.sh                          # every target, FUZZ_SECONDS each
#   FUZZ_SECONDS=300 scripts/fuzz.sh jws     # one target, longer
#
# 1. Installs what is missing: the nightly toolchain (minimal profile) and
#    cargo-fuzz (pinned).
# 2. Builds every target once, into fuzz/target (its RUSTFLAGS differ from
#    the workspace build's, so sharing target/ would rebuild both).
# 3. Runs each target for FUZZ_SECONDS (default 30) on fuzz/corpus/<target>
#    (generated, git-ignored; kept between local runs) seeded with the
#    committed fuzz/seeds/<target>, and prints its wall time and libFuzzer's
#    execution count.
# 4. Exits non-zero if any target crashed (a panic, a failed property
#    assertion, a timeout or an out-of-memory), naming the input libFuzzer
#    saved under fuzz/artifacts/<target>/. Reproduce one with
#    `cargo +nightly fuzz run --sanitizer none <target> <artifact>`; a crash
#    becomes a unit test in the owning crate.
#
# --sanitizer none: the code is Rust with `unsafe_code = "forbid"`, so what
# we look for is panics, failed assertions (debug assertions and overflow
# checks stay on) and runaway time/memory; AddressSanitizer would slow every
# execution about 2x for memory errors the compiler already rules out
# (docs/tests.md, "Fuzzing", has the figures).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

CARGO_FUZZ_VERSION=0.13.2
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
# The workspace CI exports its own target dir; the fuzz build keeps its own.
export CARGO_TARGET_DIR="$root/fuzz/target"
# --dev: an unoptimised build (debug assertions and overflow checks on). A
# release build of this graph (~320 crates) took 1,370 s of CPU, twice the
# whole step's budget; the dev build takes ~470 s of CPU (measured), and a
# 30 s run still makes 40,000-160,000 executions per target (a release build
# makes ~10x more per second). Optimising only the crates under test and
# serde_json/base64 cost 270 s more build CPU for 1.2-3x the executions: not
# worth the step's time.
fuzz_flags=(--dev --sanitizer none --fuzz-dir "$root/fuzz")

started=$(date +%s)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "installing the nightly toolchain (minimal profile)"
  rustup toolchain install nightly --profile minimal
fi
if [ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir "$root/fuzz")
fi

build_started=$(date +%s)
cargo +nightly fuzz build "${fuzz_flags[@]}"
echo "fuzz build: $(( $(date +%s) - build_started )) s"

mkdir -p "$root/fuzz/logs"
failed=()
printf '\n%-14s %8s %12s %s\n' target seconds executions result
for t in "${targets[@]}"; do
  mkdir -p "$root/fuzz/corpus/$t"
  log="$root/fuzz/logs/$t.log"
  t0=$(date +%s)
  status=0
  # -max_len: above the JWS size cap (8 KiB), so the "too long" path is
  # reached; -timeout: one input taking 10 s is a hang, reported as a crash.
  cargo +nightly fuzz run "${fuzz_flags[@]}" "$t" \
    "$root/fuzz/corpus/$t" "$root/fuzz/seeds/$t" -- \
    -max_total_time="$FUZZ_SECONDS" -max_len=9000 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  secs=$(( $(date +%s) - t0 ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  if [ "$status" -eq 0 ]; then
    result=ok
  else
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    result="CRASH (exit $status) ${artifact:-no artifact; see $log}"
    failed+=("$t")
  fi
  printf '%-14s %8s %12s %s\n' "$t" "$secs" "${execs:-?}" "$result"
done

echo "fuzzing total (install, build, runs): $(( $(date +%s) - started )) s"
if [ ${#failed[@]} -gt 0 ]; then
  for t in "${failed[@]}"; do
    echo "--- $t: last lines of fuzz/logs/$t.log"
    tail -n 40 "$root/fuzz/logs/$t.log"
  done
  echo "fuzzing found a crash in: ${failed[*]}" >&2
  exit 1
fi
