//! Sampling tells the truth: shares read back from the recorded bytes agree
//! with what a synthetic interpreter really did, on a virtual clock.
//!
//! - The test thread is the interpreter: it stores a PC, then advances the
//!   virtual clock by that instruction's known cost, so the truth is exact
//!   and every sample the timing thread takes sees the PC of the instruction
//!   running at its instant.
//! - Work locked to the sampling period aliases in periodic mode (shares that
//!   depend on the phase) and not in the default randomized mode.
//! - Shares come from `pcprof::analysis::load_bytes` on the bytes recorded,
//!   per function and per instruction, idle time excluded. "Within sampling
//!   error" is 4 standard deviations of a binomial share: randomized
//!   sampling takes one independent uniform instant a period, so each
//!   sample is a draw with the true share as its chance (stratification
//!   only lowers the variance). The virtual clock's seed is fixed, so each
//!   test is exact: it gives the same samples on every run.

use std::sync::Arc;
use std::time::Duration;

use pcprof::analysis::{LoadOptions, Profile, load_bytes};
use pcprof::{PcHandle, Profiler, SamplingMode, Stats, VirtualClock};

use crate::common::MemorySink;

/// One instruction of a synthetic function: where it starts and how long
/// it runs each time.
#[derive(Clone, Copy)]
struct Op {
    offset: usize,
    cost_ns: u64,
}

/// The interpreter the test thread plays.
struct Interp<'a> {
    pc: PcHandle,
    clock: &'a VirtualClock,
}

impl Interp<'_> {
    /// Runs `op` of `code`: its PC is stored, then its cost passes.
    fn run(&self, code: &[u8], op: Op) {
        self.pc.set_ptr(&code[op.offset]);
        self.clock.advance(Duration::from_nanos(op.cost_ns));
    }

    fn idle(&self, ns: u64) {
        self.pc.set_idle();
        self.clock.advance(Duration::from_nanos(ns));
    }
}

/// Records on a virtual clock at `hz` in `mode`, registering `functions`,
/// while `script` plays the interpreter; returns the profile read back from
/// the bytes and the run's statistics.
fn record(
    hz: u32,
    mode: SamplingMode,
    functions: &[(&str, &[u8])],
    script: impl FnOnce(&Interp),
) -> (Profile, Stats) {
    let clock = VirtualClock::new();
    let memory = MemorySink::default();
    let mut p = Profiler::builder()
        .frequency(hz)
        .sampling(mode)
        .buffers(64)
        .output_writer(memory.clone())
        .clock(Arc::new(clock.clone()))
        .start()
        .expect("start");
    for (name, code) in functions {
        p.register_function(name, code).expect("register");
    }
    let pc = p.new_interpreter(Some("synthetic")).expect("interpreter");
    p.sync().expect("sync");
    script(&Interp { pc, clock: &clock });
    let stats = p.stop().expect("stop");
    let bytes = memory.bytes();
    let profile = load_bytes(&bytes, &LoadOptions::default(), |_| {}).expect("read back");
    (profile, stats)
}

fn samples_of(profile: &Profile, name: &str) -> u64 {
    profile
        .functions
        .iter()
        .filter(|f| f.name == name)
        .map(|f| f.samples)
        .sum()
}

fn hits_at(profile: &Profile, name: &str, offset: usize) -> u64 {
    profile
        .functions
        .iter()
        .filter(|f| f.name == name)
        .map(|f| f.hits.get(offset as u32))
        .sum()
}

/// Four standard deviations of a share `p` measured from `n` samples.
fn tolerance(p: f64, n: u64) -> f64 {
    4.0 * (p * (1.0 - p) / n as f64).sqrt()
}

/// 900 µs in `busy`, then 100 µs in `brief`, on absolute 1 ms deadlines
/// starting `phase_ns` into the run, for `ms` milliseconds, sampled at
/// 1 kHz: the share of `brief` among the samples.
fn phase_locked_share(mode: SamplingMode, phase_ns: u64, ms: u64) -> (f64, u64) {
    let busy = vec![0u8; 16];
    let brief = vec![0u8; 16];
    let (profile, stats) = record(1000, mode, &[("busy", &busy), ("brief", &brief)], |vm| {
        vm.idle(phase_ns);
        for _ in 0..ms {
            vm.run(
                &busy,
                Op {
                    offset: 0,
                    cost_ns: 900_000,
                },
            );
            vm.run(
                &brief,
                Op {
                    offset: 0,
                    cost_ns: 100_000,
                },
            );
        }
    });
    assert_eq!(stats.ticks_missed, 0, "the virtual clock takes every tick");
    let n = samples_of(&profile, "busy") + samples_of(&profile, "brief");
    assert_eq!(n, profile.total_samples, "every sample is in one of them");
    (samples_of(&profile, "brief") as f64 / n as f64, n)
}

#[test]
fn periodic_sampling_aliases_with_phase_locked_work() {
    // Samples at whole milliseconds see the instruction that ends there:
    // `brief` at phase 0, `busy` a quarter period later. The truth is 10 %.
    let (at_0, _) = phase_locked_share(SamplingMode::Periodic, 0, 500);
    let (at_250, _) = phase_locked_share(SamplingMode::Periodic, 250_000, 500);
    assert_eq!((at_0, at_250), (1.0, 0.0));
}

#[test]
fn randomized_sampling_is_the_default_and_does_not_alias() {
    assert_eq!(
        Profiler::builder().config().sampling_mode(),
        SamplingMode::Randomized
    );
    for phase in [0, 250_000, 950_000] {
        let (share, n) = phase_locked_share(SamplingMode::Randomized, phase, 2000);
        // Every period is sampled once: no tick lost to randomization.
        assert!(n >= 1999, "phase {phase}: {n} samples in 2000 periods");
        assert!(
            (share - 0.1).abs() <= tolerance(0.1, n),
            "phase {phase} µs: brief's share {share:.4}, truth 0.1, {n} samples"
        );
    }
}

/// A synthetic interpreter with known per-instruction costs, idle between
/// runs of its loop: the shares reported per function and per instruction
/// agree with the time each really ran, idle time excluded.
#[test]
fn reported_shares_match_known_instruction_costs() {
    let f = vec![0u8; 12];
    let g = vec![0u8; 4];
    let f_ops = [
        Op {
            offset: 0,
            cost_ns: 20_000,
        },
        Op {
            offset: 4,
            cost_ns: 50_000,
        },
        Op {
            offset: 8,
            cost_ns: 30_000,
        },
    ];
    let g_ops = [
        Op {
            offset: 0,
            cost_ns: 70_000,
        },
        Op {
            offset: 2,
            cost_ns: 10_000,
        },
    ];
    let idle_ns = 120_000;
    // 300 µs a loop: three periods at 10 kHz, so periodic sampling would
    // see the same three phases on every loop.
    let loops = 3_000;
    let (profile, stats) = record(
        10_000,
        SamplingMode::Randomized,
        &[("f", &f), ("g", &g)],
        |vm| {
            for _ in 0..loops {
                for op in f_ops {
                    vm.run(&f, op);
                }
                for op in g_ops {
                    vm.run(&g, op);
                }
                vm.idle(idle_ns);
            }
        },
    );
    let busy_ns: u64 = f_ops.iter().chain(&g_ops).map(|o| o.cost_ns).sum();
    // Every period of the run was sampled once; idle ones left no sample.
    assert_eq!(stats.ticks_taken, loops * 3);
    assert_eq!(stats.ticks_missed, 0);
    let n = profile.total_samples;
    assert_eq!(n, stats.samples_written);
    let busy_share = busy_ns as f64 / (busy_ns + idle_ns) as f64;
    let busy_ticks = (loops * 3) as f64 * busy_share;
    assert!(
        (n as f64 - busy_ticks).abs() <= tolerance(busy_share, loops * 3) * (loops * 3) as f64,
        "{n} samples for {busy_ticks} busy ticks: idle time must leave no sample"
    );
    let check = |what: String, observed: u64, truth_ns: u64| {
        let truth = truth_ns as f64 / busy_ns as f64;
        let share = observed as f64 / n as f64;
        assert!(
            (share - truth).abs() <= tolerance(truth, n),
            "{what}: reported {share:.4}, truth {truth:.4}, {n} samples"
        );
    };
    for (name, code_ops) in [("f", &f_ops[..]), ("g", &g_ops[..])] {
        let total: u64 = code_ops.iter().map(|o| o.cost_ns).sum();
        check(name.to_string(), samples_of(&profile, name), total);
        for op in code_ops {
            check(
                format!("{name}+{}", op.offset),
                hits_at(&profile, name, op.offset),
                op.cost_ns,
            );
        }
        // Only instruction starts are hit.
        let hit: u64 = code_ops
            .iter()
            .map(|o| hits_at(&profile, name, o.offset))
            .sum();
        assert_eq!(
            hit,
            samples_of(&profile, name),
            "{name}: a hit off an instruction"
        );
    }
}
