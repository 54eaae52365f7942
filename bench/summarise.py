#!/usr/bin/env python3
"""Medians of bench/compare.sh output, each scenario beside the host's limits.

- One row per scenario and implementation, medians of the repetitions; the
  p99 of each run is listed too: on a VM the host's wake-up tail swings
  several-fold between runs minutes apart, and a median hides that.
- The limit probes (`floor`: a bare thread sleeping to each deadline;
  `spin`: a bare thread spinning to each deadline) run in the same
  repetition as the profilers. Each profiler run is compared with the probes
  of its own repetition, then the medians are taken: `Δ ticks vs spin` is
  the share of ticks taken minus the spin probe's, in points; `p99 / floor`
  and `CPU / floor` divide by the floor's.
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


def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def tick_share(d):
    if "taken" in d:  # the spin probe
        return d["taken"] / d["expected"]
    return d["ticks"] / d.get("ticks_scheduled", d["expected_ticks"]) if "ticks" in d else float("nan")


def limit(label, name, i):
    ds = runs.get((label, name), [])
    return ds[i] if i < len(ds) else None


def opt(x, fmt):
    """A figure, or nothing where the scenario has no limit to compare with."""
    return "" if x != x else fmt.format(x)


def secs(label):
    """The length of a limit probe's run: what compare.sh gives it."""
    return 3.0 if label.startswith("cpu") or label == "rate1" else 2.0


def per_run(ds, key, fmt="{:.0f}"):
    return ", ".join(fmt.format(d[key]) for d in ds)


def ratio(a, b):
    return a / b if b else float("nan")


print("| scenario | impl | ticks taken / expected | ticks share | Δ ticks vs spin (points) | p50 µs | p99 µs | p99 per run | p99 / floor | max µs | profiler CPU s | CPU share of a core | CPU / floor | steps/s | B/sample | scheduling | busy cores |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for (label, impl), ds in runs.items():
    if label == "coreprobe" or label.startswith("idle") or label.startswith("parked"):
        continue
    busy = f"{min(d['busy'] for d in ds):.2f}-{max(d['busy'] for d in ds):.2f}"
    if impl == "spin":
        share = med([tick_share(d) for d in ds])
        taken = med([d["taken"] for d in ds])
        print(f"| {label} | spin (limit) | {taken:.0f} / {ds[0]['expected']} | {share:.4f} | 0 | | | | | | | | | | | | {busy} |")
        continue
    if impl == "floor":
        print(
            f"| {label} | floor (limit) | | | | {med([d['late_p50_us'] for d in ds]):.1f} "
            f"| {med([d['late_p99_us'] for d in ds]):.1f} | {per_run(ds, 'late_p99_us')} | 1 | "
            f"| {med([d['cpu_s'] for d in ds]):.3f} | {med([d['cpu_s'] / secs(label) for d in ds]):.3f} | 1 | | | | {busy} |"
        )
        continue
    delta, p99r, cpur = [], [], []
    for i, d in enumerate(ds):
        s, fl = limit(label, "spin", i), limit(label, "floor", i)
        if s:
            delta.append(100 * (tick_share(d) - tick_share(s)))
        if fl:
            p99r.append(ratio(d["late_p99_us"], fl["late_p99_us"]))
            cpur.append(ratio(d["profiler_cpu_s"], fl["cpu_s"]))
    ticks = med([d["ticks"] for d in ds])
    exp = ds[0]["expected_ticks"]
    print(
        f"| {label} | {impl} | {ticks:.0f} / {exp} | {med([tick_share(d) for d in ds]):.4f} "
        f"| {opt(med(delta), '{:+.2f}')} | {med([d['late_p50_us'] for d in ds]):.1f} "
        f"| {med([d['late_p99_us'] for d in ds]):.1f} | {per_run(ds, 'late_p99_us')} "
        f"| {opt(med(p99r), '{:.2f}')} | {med([d['late_max_us'] for d in ds]):.0f} "
        f"| {med([d['profiler_cpu_s'] for d in ds]):.3f} | {med([d['profiler_cpu_s'] / d['seconds'] for d in ds]):.3f} "
        f"| {opt(med(cpur), '{:.2f}')} "
        f"| {med([d.get('steps_per_sec', 0) for d in ds]):.3g} "
        f"| {med([d.get('bytes_per_sample', float('nan')) for d in ds]):.2f} | {ds[0].get('scheduling', '-')} "
        f"| {busy} |"
    )
    lost = [d for d in ds if d.get("file_samples") != d.get("samples") or d.get("samples_outside_functions")]
    if lost:
        print(f"<!-- {label} {impl}: {len(lost)} runs with samples missing from the file -->")

# The interpreter's slowdown on its own core: 10 kHz against 1 Hz, per
# implementation, pairing the runs of each repetition.
for impl in ("seed-baseline", "pcprof"):
    slow, fast = runs.get(("core1hz", impl), []), runs.get(("core10k", impl), [])
    pairs = [100 * (1 - f["steps_per_sec"] / s["steps_per_sec"]) for s, f in zip(slow, fast) if s.get("steps_per_sec")]
    if pairs:
        print(f"\ncore10k slowdown against core1hz, {impl}: median {med(pairs):.1f} % (runs: {', '.join('%.1f' % p for p in pairs)})")

# Aliasing: the share of the brief part of work locked to 1 ms (truth 0.1).
for impl in ("pcprof-periodic", "pcprof"):
    ds = runs.get(("phased1k", impl), [])
    if ds:
        print(f"phased1k {impl}: brief share per run {per_run(ds, 'phased_brief_share', '{:.3f}')} (truth 0.100)")

# The same one-core question paired within one process (wake_probe core):
# each mechanism against the busy loop alone, phase by phase.
probe = [(impl, ds) for (label, impl), ds in runs.items() if label == "coreprobe"]
if probe:
    print("\n| on the interpreter's core, 10 kHz (wake_probe core) | slowdown, median of runs | per run | µs a tick | ticks share |")
    print("|---|---|---|---|---|")
    for impl, ds in probe:
        share = med([d["tick_share"] for d in ds if d["tick_share"] >= 0])
        print(
            f"| {ds[0]['mechanism']} | {100 * med([d['slowdown'] for d in ds]):.1f} % "
            f"| {', '.join('%.1f' % (100 * d['slowdown']) for d in ds)} "
            f"| {med([d['us_per_tick'] for d in ds]):.1f} | {opt(share, '{:.3f}')} |"
        )

# Thousands of interpreters (issue 22): the timing thread's CPU a tick and
# the writer's a sample, over the middle half of each run (registering and
# retiring apart), with the ticks and the samples dropped.
many = [(k, ds) for k, ds in runs.items() if k[0].startswith("idle") or k[0].startswith("parked")]
if many:
    print("\n| scenario | impl | ticks share (middle half) | sampler µs a tick (middle half) | per run | writer ns a sample (middle half) | samples taken | samples dropped | profiler CPU s | busy cores |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (label, impl), ds in many:
        busy = f"{min(d['busy'] for d in ds):.2f}-{max(d['busy'] for d in ds):.2f}"
        if impl == "seed-baseline":
            print(
                f"| {label} | {impl} | {med([d['ticks'] / d['expected_ticks'] for d in ds]):.4f} (whole run) | "
                f"{med([d['sampling_cpu_s'] * 1e6 / max(d['ticks'], 1) for d in ds]):.1f} (whole run) | | "
                f"{med([d['recording_cpu_s'] * 1e9 / max(d['file_samples'], 1) for d in ds]):.0f} (whole run) | "
                f"{med([d['samples'] for d in ds]):.0f} | 0 | {med([d['profiler_cpu_s'] for d in ds]):.3f} | {busy} |"
            )
            continue
        print(
            f"| {label} | {impl} | {med([d['steady_ticks_share'] for d in ds]):.4f} "
            f"| {med([d['steady_sampler_us_per_tick'] for d in ds]):.1f} | {per_run(ds, 'steady_sampler_us_per_tick', '{:.1f}')} "
            f"| {med([d['steady_writer_ns_per_sample'] for d in ds]):.0f} | {med([d['samples'] for d in ds]):.0f} "
            f"| {med([d['samples_dropped'] for d in ds]):.0f} | {med([d['profiler_cpu_s'] for d in ds]):.3f} | {busy} |"
        )
