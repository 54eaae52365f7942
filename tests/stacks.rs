//! Call stacks end to end: an interpreter's shadow stack recorded on the
//! virtual clock and read back through the analysis, against a known truth.

use std::time::Duration;

use pcprof::analysis::{Frame, LoadOptions, load_bytes};
use pcprof::{Profiler, SamplingMode, StackHandle, VirtualClock};

use crate::common::TempDir;

/// One stretch of the synthetic program: how long it runs (µs), the call
/// sites on the stack (root first) and the PC (0: idle).
struct Segment {
    us: u64,
    frames: &'static [u64],
    pc: u64,
}

const MAIN: u64 = 0x1000;
const A: u64 = 0x2000;
const B: u64 = 0x3000;

/// main runs two instructions, calls `a` at main+2; `a` runs two, calls `b`
/// at a+2; `b` calls itself at b+1 twice (the second call is deeper than
/// the capacity of 3), returns to `a`, then to `main`, which idles. One
/// pass is 1061 µs: at 1 kHz, 1061 ticks see every µs of it once.
const PROGRAM: &[Segment] = &[
    Segment {
        us: 100,
        frames: &[],
        pc: MAIN,
    },
    Segment {
        us: 100,
        frames: &[],
        pc: MAIN + 1,
    },
    Segment {
        us: 150,
        frames: &[MAIN + 2],
        pc: A,
    },
    Segment {
        us: 150,
        frames: &[MAIN + 2],
        pc: A + 1,
    },
    Segment {
        us: 70,
        frames: &[MAIN + 2, A + 2],
        pc: B,
    },
    Segment {
        us: 70,
        frames: &[MAIN + 2, A + 2, B + 1],
        pc: B,
    },
    Segment {
        us: 50,
        frames: &[MAIN + 2, A + 2, B + 1, B + 1],
        pc: B + 2,
    },
    Segment {
        us: 80,
        frames: &[MAIN + 2],
        pc: A + 3,
    },
    Segment {
        us: 60,
        frames: &[],
        pc: MAIN + 3,
    },
    Segment {
        us: 231,
        frames: &[],
        pc: 0,
    },
];

/// Moves the shadow stack from `now` to `to` as an interpreter would: the
/// returns (one `set_depth`) and the calls.
fn go_to(stack: &mut StackHandle, now: &mut Vec<u64>, to: &[u64]) {
    let common = now.iter().zip(to).take_while(|(a, b)| a == b).count();
    stack.set_depth(common);
    now.truncate(common);
    for &site in &to[common..] {
        stack.call(site as usize);
        now.push(site);
    }
}

/// Known call tree, known costs per instruction, periodic ticks: every
/// call path's self and total samples are exactly the truth (three passes
/// of 1061 phases, 1 µs apart), idle time leaves no sample, and the stack
/// deeper than the capacity is reported truncated below its outermost
/// three frames.
#[test]
fn shares_per_call_path_match_a_known_program() {
    let dir = TempDir::new("stacks");
    let clock = VirtualClock::new();
    let mut p = Profiler::builder()
        .frequency(1000)
        .sampling(SamplingMode::Periodic)
        .output(dir.path("p.data"))
        .clock(std::sync::Arc::new(clock.clone()))
        .start()
        .unwrap();
    let code = [0u8; 16];
    for (name, addr) in [("main", MAIN), ("a", A), ("b", B)] {
        p.register_function_at(name, addr, &code).unwrap();
    }
    let (pc, mut stack) = p.new_interpreter_with_stack(Some("vm"), 3).unwrap();
    p.sync().unwrap();
    let pass: u64 = PROGRAM.iter().map(|s| s.us).sum();
    assert_eq!(pass, 1061);
    let passes = 3;
    let mut now = Vec::new();
    for k in 1..=pass * passes {
        // The program's state at the tick's deadline, k ms.
        let mut phase = (k * 1000) % pass;
        let seg = PROGRAM
            .iter()
            .find(|s| {
                let inside = phase < s.us;
                if !inside {
                    phase -= s.us;
                }
                inside
            })
            .unwrap();
        go_to(&mut stack, &mut now, seg.frames);
        pc.set(seg.pc as usize);
        clock.advance(Duration::from_millis(1));
    }
    pc.set_idle();
    let stats = p.stop().unwrap();
    assert_eq!(stats.stack_reads_torn, 0);

    let bytes = std::fs::read(dir.path("p.data")).unwrap();
    let profile = load_bytes(&bytes, &LoadOptions::default(), |_| {}).unwrap();
    // Idle time (231 µs a pass) leaves no sample.
    assert_eq!(profile.total_samples, (pass - 231) * passes);
    let own: Vec<(&str, u64)> = profile
        .functions
        .iter()
        .map(|f| (f.name.as_str(), f.samples))
        .collect();
    assert_eq!(
        own,
        [
            ("main", 260 * passes),
            ("a", 380 * passes),
            ("b", 190 * passes)
        ]
    );
    assert_eq!(
        profile.inclusive_samples(),
        [830 * passes, 570 * passes, 190 * passes]
    );
    assert_eq!(profile.stacks.truncated_samples, 50 * passes);
    // Self samples per (call path, leaf function).
    let mut paths: Vec<(Vec<Frame>, Option<usize>, u64)> = Vec::new();
    for l in &profile.stacks.leaves {
        let path = profile.stacks.path(l.stack);
        match paths
            .iter_mut()
            .find(|(p, f, _)| *p == path && *f == l.function)
        {
            Some(e) => e.2 += l.samples,
            None => paths.push((path, l.function, l.samples)),
        }
    }
    paths.sort();
    let (main, a, b) = (Frame::Function(0), Frame::Function(1), Frame::Function(2));
    assert_eq!(
        paths,
        [
            (vec![], Some(0), 260 * passes),
            (vec![main], Some(1), 380 * passes),
            (vec![main, a], Some(2), 70 * passes),
            (vec![main, a, b], Some(2), 70 * passes),
            (vec![main, a, b, Frame::Truncated], Some(2), 50 * passes),
        ]
    );
}
