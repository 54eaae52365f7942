#!/usr/bin/env bash
# Analysis at scale (BENCHMARKS.md): writes the crafted cases and the 50 M-
# sample Pulley file into $DIR (default /tmp/pcprof-scale, about 1 GB), then
# times `pcprof report` on each (median of 3 by wall time: wall, user+sys
# CPU, max RSS) and runs the side by side with Pulley's `profiler-html`
# (interleaved rounds) and the page-cache limit (`dd` into a 512 KiB buffer).
#
#   bench/analysis.sh            # everything
#   NO_VIEWER=1 bench/analysis.sh  # without profiler-html (needs the registry)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${DIR:-/tmp/pcprof-scale}"
ROUNDS="${ROUNDS:-5}"
mkdir -p "$DIR"
(cd "$ROOT" && cargo build --quiet --release --example gen_profile && cargo build --quiet --release)
T="${CARGO_TARGET_DIR:-$ROOT/target}/release"
G="$T/examples/gen_profile"
B="$T/pcprof"
for c in large-ids interpreters interleaved generations reused-ids pulley-records; do
  [ -s "$DIR/$c.pcprof" ] || "$G" "$DIR/$c.pcprof" --case "$c" >&2
done

median3() { # LABEL CMD...
  local label=$1; shift
  for _ in 1 2 3; do
    /usr/bin/time -f "%e %U %S %M" -o "$DIR/one" "$@" >/dev/null 2>"$DIR/err" || true
    cat "$DIR/one"
  done | sort -n | sed -n 2p |
    awk -v l="$label" '{printf "%-28s %6.2f s wall %6.2f s cpu %8.1f MB\n", l, $1, $2+$3, $4/1024}'
}
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for c in large-ids interpreters interleaved generations reused-ids pulley-records; do
  median3 "report $c" "$B" report "$DIR/$c.pcprof"
done

[ -n "${NO_VIEWER:-}" ] && exit 0
V="$DIR/pulley-viewer"
if [ ! -x "$V/target/release/examples/profiler-html" ]; then
  rm -rf "$V" && cp -r ~/.cargo/registry/src/*/pulley-interpreter-48.0.8 "$V"
  (cd "$V" && cargo build --quiet --release --example profiler-html --features disas,interp,profile)
fi
P="$V/target/release/examples/profiler-html"
F="$DIR/pulley-records.pcprof"
cat "$F" >/dev/null
echo "# side by side, $ROUNDS interleaved rounds: label wall user sys maxrss(KB)"
for _ in $(seq 1 "$ROUNDS"); do
  for c in profiler-html pcprof dd; do
    case $c in
      profiler-html) cmd=("$P" "$F") ;;
      pcprof) cmd=("$B" report "$F") ;;
      dd) cmd=(dd if="$F" of=/dev/null bs=512K) ;;
    esac
    /usr/bin/time -f "$c %e %U %S %M" -o "$DIR/one" "${cmd[@]}" >/dev/null 2>&1
    cat "$DIR/one"
  done
done | sort -k1,1 -k2,2n
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
