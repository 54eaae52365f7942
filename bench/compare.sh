#!/usr/bin/env bash
# pcprof against the reference design (shared/bench/seed-baseline), side by
# side: builds both, then runs every scenario of BENCHMARKS.md REPS times
# (default 3), each run after waiting (up to QUIET_WAIT s, default 60) for the
# 2-core machine to be quiet, as the baseline's run-matrix.sh does. Prints one
# line per run: label, impl, the machine's busy cores during the run, the
# benchmark's JSON. Summarise with bench/summarise.py.
#
#   bench/compare.sh > bench-results.txt && python3 bench/summarise.py bench-results.txt
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BASE_DIR="${BASE_DIR:-$ROOT/../shared/bench/seed-baseline}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
SEED_TARGET="${SEED_TARGET:-$ROOT/target/seed-baseline}"
if [ -z "${NO_BUILD:-}" ]; then
  cargo build --quiet --release --manifest-path "$BASE_DIR/Cargo.toml" --target-dir "$SEED_TARGET" >&2
  (cd "$ROOT" && cargo build --quiet --release --example bench_sampling --example wake_probe >&2)
fi
B="$SEED_TARGET/release/seed-baseline"
P="$CARGO_TARGET_DIR/release/examples/bench_sampling"
# The floor: one bare sleep a tick, no profiler; its p99 shows the host's
# wake-up tail during that run, its CPU what one wake-up costs.
W="$CARGO_TARGET_DIR/release/examples/wake_probe"

busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
wait_quiet() {
  for _ in $(seq 1 "${QUIET_WAIT:-60}"); do
    read -r b0 t0 < <(busy); sleep 1; read -r b1 t1 < <(busy)
    if awk -v b=$((b1-b0)) -v t=$((t1-t0)) 'BEGIN{exit !(b/t < 0.10)}'; then return 0; fi
  done
  echo "# machine never quiet" >&2
}
run() {
  local label=$1 impl=$2; shift 2
  wait_quiet
  read -r b0 t0 < <(busy); local s0; s0=$(date +%s.%N)
  local j; j=$("$@")
  read -r b1 t1 < <(busy); local s1; s1=$(date +%s.%N)
  local bc; bc=$(awk -v b=$((b1-b0)) -v s0="$s0" -v s1="$s1" 'BEGIN{printf "%.2f", b/100/(s1-s0)}')
  echo "$label $impl machine_busy_cores=$bc $j"
}
both() {
  local label=$1; shift
  run "$label" seed-baseline "$B" "$@"
  run "$label" pcprof "$P" "$@"
}
for rep in $(seq 1 "${REPS:-3}"); do
  both idle1k --freq 1000 --interpreters 1 --seconds 3 --work idle
  run idle1k floor "$W" floor 1000 3
  both spin1k --freq 1000 --interpreters 4 --seconds 3 --work spin
  both spin10k --freq 10000 --interpreters 16 --seconds 3 --work spin
  run spin10k_fifo pcprof "$P" --freq 10000 --interpreters 16 --seconds 3 --work spin --realtime 10
  both idle100k --freq 100000 --interpreters 4 --seconds 2 --work idle
  run core1hz seed-baseline taskset -c 0 "$B" --freq 1 --interpreters 1 --seconds 3 --work spin
  run core10k seed-baseline taskset -c 0 "$B" --freq 10000 --interpreters 1 --seconds 3 --work spin
  run core1hz pcprof taskset -c 0 "$P" --freq 1 --interpreters 1 --seconds 3 --work spin
  run core10k pcprof taskset -c 0 "$P" --freq 10000 --interpreters 1 --seconds 3 --work spin
done
