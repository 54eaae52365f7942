#!/usr/bin/env bash
# Analysis at scale (BENCHMARKS.md): writes the crafted cases and the 50 M-
# sample Pulley file into $DIR (default /tmp/pcprof-scale, about 1 GB), then
# times `pcprof report` on each (median of 3 by wall time: wall, user+sys
# CPU, max RSS) and runs the side by side with Pulley's `profiler-html`
# (interleaved rounds) and the page-cache limit (`dd` into a 512 KiB buffer).
#
#   bench/analysis.sh            # everything
#   NO_VIEWER=1 bench/analysis.sh  # without profiler-html (needs the registry)
#   REAL_ONLY=1 bench/analysis.sh  # only the real shapes (issue 19)
#   REAL_FILES="wyosys=PATH wresvg=PATH" ...  # and profiles Wasmtime wrote
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
if [ -z "${REAL_ONLY:-}" ]; then
for c in large-ids interpreters interleaved generations reused-ids pulley-records; do
  median3 "report $c" "$B" report "$DIR/$c.pcprof"
done
fi

[ -n "${NO_VIEWER:-}" ] && exit 0
V="$DIR/pulley-viewer"
if [ ! -x "$V/target/release/examples/profiler-html" ]; then
  rm -rf "$V" && cp -r ~/.cargo/registry/src/*/pulley-interpreter-48.0.8 "$V"
  (cd "$V" && cargo build --quiet --release --example profiler-html --features disas,interp,profile)
fi
P="$V/target/release/examples/profiler-html"
F="$DIR/pulley-records.pcprof"
cat "$F" >/dev/null
if [ -z "${REAL_ONLY:-}" ]; then
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
fi

# --- Real shapes (issue 19): samples that hop between functions on every
# sample (8, 1 000 and 50 000 functions, 50 M samples), and a file shaped
# like Wasmtime's profile of Yosys (54 649 functions, 136 MB of code, one
# function of 23.5 MB that takes 3 samples in 10, 9 335 samples). Median of
# $ROUNDS interleaved rounds for every command, side by side with the
# viewer and the page-cache read.
[ -s "$DIR/hop8.pulley" ] || "$G" "$DIR/hop8.pulley" --functions 8 --hop --record 1000000 >&2
[ -s "$DIR/hop1000.pulley" ] || "$G" "$DIR/hop1000.pulley" --functions 1000 --hop --record 1000000 >&2
[ -s "$DIR/hop50000.pulley" ] || "$G" "$DIR/hop50000.pulley" --functions 50000 --hop --record 1000000 >&2
[ -s "$DIR/yosys.pulley" ] || "$G" "$DIR/yosys.pulley" --functions 54649 --code-bytes 136000000 \
  --big 23500000 --samples 9335 --hop --record 20000 >&2
echo "# real shapes, median of $ROUNDS rounds: file command wall(s) cpu(s) maxrss(MB)"
# Profiles Wasmtime wrote (BENCHMARKS "Two more real programs") join the
# table as NAME=PATH pairs: REAL_FILES="wyosys=/tmp/real/yosys.data".
FILES=()
for f in hop8 hop1000 hop50000 yosys; do FILES+=("$f=$DIR/$f.pulley"); done
for pair in ${REAL_FILES:-}; do FILES+=("$pair"); done
for pair in "${FILES[@]}"; do
  f="${pair%%=*}"
  F="${pair#*=}"
  cat "$F" >/dev/null
  for _ in $(seq 1 "$ROUNDS"); do
    for c in viewer report report-noinstr sequences html dd; do
      case $c in
        viewer) cmd=("$P" "$F") ;;
        report) cmd=("$B" report "$F") ;;
        report-noinstr) cmd=("$B" report "$F" --instructions false) ;;
        sequences) cmd=("$B" sequences "$F") ;;
        html) cmd=("$B" html "$F" -o "$DIR/$f.html") ;;
        dd) cmd=(dd if="$F" of=/dev/null bs=512K) ;;
      esac
      /usr/bin/time -f "$f $c %e %U %S %M" -o "$DIR/one" "${cmd[@]}" >/dev/null 2>&1 || true
      cat "$DIR/one"
    done
  done
done > "$DIR/real.raw"
mid=$(( (ROUNDS + 1) / 2 ))
cut -d' ' -f1,2 "$DIR/real.raw" | sort -u | while read -r f c; do
  grep "^$f $c " "$DIR/real.raw" | sort -k3,3n | sed -n "${mid}p" |
    awk '{printf "%-9s %-15s %7.2f %7.2f %9.1f\n", $1, $2, $3, $4 + $5, $6 / 1024}'
done
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
