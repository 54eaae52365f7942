#!/usr/bin/env bash
# pcprof against the reference design (shared/bench/seed-baseline) and the
# host's limits (shared/bench/limits: `floor`, a bare thread sleeping to each
# deadline; `spin`, a bare thread spinning to each deadline), side by side:
# builds all four, then runs every scenario of BENCHMARKS.md REPS times
# (default 3), each run after waiting (up to QUIET_WAIT s, default 60) for the
# 2-core machine to be quiet, as the baseline's run-matrix.sh does. The limit
# probes run in the same repetition as the profilers they bound, minutes
# apart at most, so that summarise.py can give each figure as a ratio to the
# limit of the same run. Prints one line per run: label, impl, the machine's
# busy cores during the run, the program's JSON. Summarise with
# bench/summarise.py. The `cpu*` scenarios set the default spin policy
# beside ticks first (`--spin-max`) and sleeping alone (`--spin-us 0`); the
# `idle*` and `parked*` ones are the many-interpreter cases (issue 22).
#
#   bench/compare.sh > bench-results.txt && python3 bench/summarise.py bench-results.txt
#   ONLY='^(idle|parked)' REPS=5 bench/compare.sh   # some scenarios only
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BASE_DIR="${BASE_DIR:-$ROOT/../shared/bench/seed-baseline}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
SEED_TARGET="${SEED_TARGET:-$ROOT/target/seed-baseline}"
if [ -z "${NO_BUILD:-}" ]; then
  cargo build --quiet --release --manifest-path "$BASE_DIR/Cargo.toml" --target-dir "$SEED_TARGET" >&2
  (cd "$ROOT" && cargo build --quiet --release --example bench_sampling --example wake_probe >&2)
fi
LIMITS_DIR="${LIMITS_DIR:-$ROOT/../shared/bench/limits}"
L="$CARGO_TARGET_DIR/limits"
if [ -z "${NO_BUILD:-}" ]; then
  mkdir -p "$L"
  cc -O2 -o "$L/floor" "$LIMITS_DIR/floor.c"
  cc -O2 -o "$L/spin" "$LIMITS_DIR/spin.c"
fi
B="$SEED_TARGET/release/seed-baseline"
P="$CARGO_TARGET_DIR/release/examples/bench_sampling"
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
  # ONLY='^(idle|parked)' runs the scenarios whose label matches.
  [[ "$label" =~ ${ONLY:-.} ]] || return 0
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
# The host's limits at a rate, in this repetition: what a bare sleeping
# thread and a bare spinning thread achieve (any prefix, e.g. taskset, is
# passed through).
limits() {
  local label=$1 hz=$2 secs=$3; shift 3
  run "$label" floor "$@" "$L/floor" "$hz" "$secs"
  run "$label" spin "$@" "$L/spin" "$hz" "$secs"
}
# Unprivileged: the same binary as user nobody, where SCHED_FIFO is refused.
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
for rep in $(seq 1 "${REPS:-3}"); do
  # Every rate from 1 Hz to 100 kHz, 4 idle interpreters: ticks taken
  # against the spin probe, lateness and CPU against the floor.
  for hz in 1 100 1000 10000 20000 30000 50000 100000; do
    secs=2; [ "$hz" = 1 ] && secs=3
    both "rate$hz" --freq "$hz" --interpreters 4 --seconds "$secs" --work idle
    limits "rate$hz" "$hz" "$secs"
  done
  # The spin policies beside the default, in the same repetition: ticks
  # first (max) and sleep only (0); 1 idle interpreter, as issue 22's table.
  for hz in 1000 10000 20000; do
    both "cpu$hz" --freq "$hz" --interpreters 1 --seconds 3 --work idle
    run "cpu$hz" pcprof-max "$P" --freq "$hz" --interpreters 1 --seconds 3 --work idle --spin-max
    run "cpu$hz" pcprof-sleep "$P" --freq "$hz" --interpreters 1 --seconds 3 --work idle --spin-us 0
    limits "cpu$hz" "$hz" 3
  done
  # Thousands of interpreters at 1 kHz: 2 running among N registered and
  # idle (PC 0); then 10 000 parked on a PC (10 M samples a second).
  for n in 100 1000 10000; do
    run "idle$n" pcprof "$P" --freq 1000 --interpreters 2 --work spin --idle $((n - 2)) --seconds 3
    # The same on the activity protocol (`new_interpreter_on_demand`):
    # the sampler reads the cells of entered interpreters only.
    run "idle$n" pcprof-ondemand "$P" --freq 1000 --interpreters 2 --work spin --idle $((n - 2)) --seconds 3 --on-demand
  done
  both parked10000 --freq 1000 --interpreters 10000 --seconds 3 --work idle
  both spin1k --freq 1000 --interpreters 4 --seconds 3 --work spin
  both spin10k --freq 10000 --interpreters 16 --seconds 3 --work spin
  run spin10k_fifo pcprof "$P" --freq 10000 --interpreters 16 --seconds 3 --work spin --realtime 10
  run spin10k_fifo_unprivileged pcprof "${NOBODY[@]}" "$P" --freq 10000 --interpreters 16 --seconds 3 --work spin --realtime 10
  run rate100000_unprivileged pcprof "${NOBODY[@]}" "$P" --freq 100000 --interpreters 4 --seconds 2 --work idle
  # One core: the interpreter shares it with the sampling thread.
  run core1hz seed-baseline taskset -c 0 "$B" --freq 1 --interpreters 1 --seconds 3 --work spin
  run core10k seed-baseline taskset -c 0 "$B" --freq 10000 --interpreters 1 --seconds 3 --work spin
  run core1hz pcprof taskset -c 0 "$P" --freq 1 --interpreters 1 --seconds 3 --work spin
  run core10k pcprof taskset -c 0 "$P" --freq 10000 --interpreters 1 --seconds 3 --work spin
  # The same, paired phase by phase in one process, with the floor (the
  # timer interrupt alone) and a signal read on the interpreter's thread.
  wait_quiet
  taskset -c 0 "$W" core 10000 30 100 json | while read -r j; do
    impl=$(sed 's/.*"impl":"\([^"]*\)".*/\1/' <<<"$j")
    echo "coreprobe $impl machine_busy_cores=nan $j"
  done
  # Work locked to 1 ms, sampled at 1 kHz: periodic sampling aliases,
  # randomized does not (the truth is 0.1).
  run phased1k pcprof-periodic "$P" --freq 1000 --interpreters 1 --seconds 2 --work phased --sampling periodic
  run phased1k pcprof "$P" --freq 1000 --interpreters 1 --seconds 2 --work phased
done
