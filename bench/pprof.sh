#!/usr/bin/env bash
# The pprof export at scale (BENCHMARKS.md): `convert --to pprof` beside
# `convert --to collapsed` on the 50 M-sample Pulley file (records of
# 1 000 000, as bench/analysis.sh writes it), the same first 5 M samples,
# and the 50 M samples in the native format. ROUNDS interleaved rounds of
# /usr/bin/time; prints: file format wall(s) user(s) sys(s) maxrss(KB)
# output(bytes), sorted.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${DIR:-/tmp/pcprof-scale}"
ROUNDS="${ROUNDS:-3}"
mkdir -p "$DIR"
(cd "$ROOT" && cargo build --quiet --release --example gen_profile && cargo build --quiet --release)
T="${CARGO_TARGET_DIR:-$ROOT/target}/release"
G="$T/examples/gen_profile"
B="$T/pcprof"
[ -s "$DIR/big1m.pulley" ] || "$G" "$DIR/big1m.pulley" --record 1000000 >&2
[ -s "$DIR/big5m.pulley" ] || "$G" "$DIR/big5m.pulley" --samples 5000000 --record 1000000 >&2
[ -s "$DIR/big.native" ] || "$G" "$DIR/big.native" --native >&2
cat "$DIR/big1m.pulley" "$DIR/big5m.pulley" "$DIR/big.native" >/dev/null
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq 1 "$ROUNDS"); do
  for f in big1m.pulley big5m.pulley big.native; do
    for to in pprof collapsed; do
      out="$DIR/out.$to"
      /usr/bin/time -f "$f $to %e %U %S %M" -o "$DIR/one" "$B" convert "$DIR/$f" --to "$to" -o "$out" 2>/dev/null
      echo "$(cat "$DIR/one") $(stat -c %s "$out")"
    done
  done
done | sort -k1,1 -k2,2 -k3,3n
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
