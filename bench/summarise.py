#!/usr/bin/env python3
"""Medians of bench/compare.sh output: one row per scenario and implementation.

The p99 of each run is listed too: on a VM the host's wake-up tail swings
several-fold between runs minutes apart, and a median of 3 hides that.
"""
import json
import statistics
import sys
from collections import defaultdict

runs = defaultdict(list)
with open(sys.argv[1] if len(sys.argv) > 1 else "/dev/stdin") as f:
    for line in f:
        parts = line.split(" ", 3)
        if len(parts) < 4 or not parts[3].startswith("{"):
            continue
        label, impl, busy, js = parts
        d = json.loads(js)
        d["busy"] = float(busy.split("=")[1])
        runs[(label, impl)].append(d)

def per_run(ds):
    return ", ".join(f"{d['late_p99_us']:.0f}" for d in ds)

def med(xs):
    return statistics.median(xs) if xs else float("nan")

print("| scenario | impl | ticks taken / expected | ratio | p50 µs | p99 µs | p99 per run | max µs | profiler CPU s | steps/s | B/sample | scheduling | busy cores |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for (label, impl), ds in runs.items():
    ticks = med([d["ticks"] for d in ds])
    exp = ds[0]["expected_ticks"]
    ratio = med([d["ticks"] / d.get("ticks_scheduled", d["expected_ticks"]) for d in ds])
    print(
        f"| {label} | {impl} | {ticks:.0f} / {exp} | {ratio:.3f} | {med([d['late_p50_us'] for d in ds]):.1f} "
        f"| {med([d['late_p99_us'] for d in ds]):.1f} | {per_run(ds)} "
        f"| {med([d['late_max_us'] for d in ds]):.0f} "
        f"| {med([d['profiler_cpu_s'] for d in ds]):.3f} | {med([d.get('steps_per_sec', 0) for d in ds]):.3g} "
        f"| {med([d.get('bytes_per_sample', float('nan')) for d in ds]):.2f} | {ds[0].get('scheduling', '-')} "
        f"| {min(d['busy'] for d in ds):.2f}-{max(d['busy'] for d in ds):.2f} |"
    )
    lost = [d for d in ds if d.get("file_samples") != d.get("samples") or d.get("samples_outside_functions")]
    if lost:
        print(f"<!-- {label} {impl}: {len(lost)} runs with samples missing from the file -->")
