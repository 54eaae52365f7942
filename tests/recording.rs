//! The recording runtime end to end, on a virtual clock: exact counts, no
//! sleeping, no timing assertions.

use std::sync::Arc;
use std::time::Duration;

use pcprof::{Format, Profiler, SamplingMode, VirtualClock};

use crate::common::{TempDir, read_all, start_virtual};

fn virtual_profiler(
    dir: &TempDir,
    name: &str,
    hz: u32,
    flush: u32,
    format: Format,
) -> (Profiler, VirtualClock) {
    let clock = VirtualClock::new();
    let p = Profiler::builder()
        .frequency(hz)
        // These tests pin the schedule: deadlines at whole periods.
        .sampling(SamplingMode::Periodic)
        .flush_every(flush)
        // Virtual time can outrun the writer; enough buffers keep every
        // batch (the drop path has its own test).
        .buffers(64)
        .output(dir.path(name))
        .format(format)
        .clock(Arc::new(clock.clone()))
        .start()
        .expect("start profiler");
    (p, clock)
}

#[test]
fn ten_ms_at_1khz_is_exactly_ten_ticks() {
    let dir = TempDir::new("tenticks");
    let (mut p, clock) = virtual_profiler(&dir, "p.data", 1000, 20_000, Format::Native);
    let code = vec![0u8; 64];
    p.register_function("f", &code).unwrap();
    let a = p.new_interpreter(Some("a")).unwrap();
    let b = p.new_interpreter(Some("b")).unwrap();
    a.set_ptr(&code[4]);
    b.set_ptr(&code[9]);
    p.sync().unwrap();
    clock.advance(Duration::from_millis(10));
    let stats = p.stop().unwrap();
    assert_eq!(stats.ticks_scheduled, 10);
    assert_eq!(stats.ticks_taken, 10);
    assert_eq!(stats.ticks_missed, 0);
    assert_eq!(stats.samples_taken, 20);
    assert_eq!(stats.samples_written, 20);
    assert_eq!(stats.samples_dropped, 0);
    assert_eq!(stats.lateness_max_ns, 0);

    let bytes = std::fs::read(dir.path("p.data")).unwrap();
    let c = read_all(&bytes).unwrap();
    assert!(c.error.is_none(), "{:?}", c.error);
    assert_eq!(c.samples.len(), 20);
    let base = code.as_ptr() as u64;
    let times: Vec<u64> = c.samples.iter().map(|s| s.time_ns).collect();
    let expect: Vec<u64> = (1..=10u64).flat_map(|k| [k * 1_000_000; 2]).collect();
    assert_eq!(times, expect);
    for s in &c.samples {
        let off = s.pc - base;
        assert_eq!(off, if s.interp == 0 { 4 } else { 9 });
    }
    let summary = c.summary.expect("summary record");
    assert_eq!(summary.stats.ticks_taken, 10);
    assert_eq!(summary.stats.samples_written, 20);
    assert_eq!(c.interpreters.len(), 2);
    assert_eq!(c.functions.len(), 1);
    drop((a, b));
}

fn native_code(len: usize) -> Vec<u8> {
    (0..len).map(|i| i as u8).collect()
}

#[test]
fn shutdown_is_ordered_and_traced() {
    let dir = TempDir::new("order");
    let log = crate::common::EventLog::default();
    let stats = tracing::subscriber::with_default(log.subscriber(), || {
        let (mut p, clock) = virtual_profiler(&dir, "p.data", 1000, 3, Format::Native);
        let code = native_code(16);
        p.register_function("f", &code).unwrap();
        let h = p.new_interpreter(Some("t")).unwrap();
        h.set_ptr(&code[1]);
        p.sync().unwrap();
        clock.advance(Duration::from_millis(7));
        let stats = p.stop().unwrap();
        // Stopping twice is harmless and returns the same result.
        assert_eq!(p.stop().unwrap(), stats);
        stats
    });
    assert_eq!(stats.samples_written, 7);
    let names = log.names();
    let pos = |n: &str| {
        names
            .iter()
            .position(|x| x == n)
            .unwrap_or_else(|| panic!("no event {n} in {names:?}"))
    };
    // Ticker stops, sampler hands over, writer finishes, registry stops.
    assert!(pos("ticker.stopped_ticking") < pos("sampler.drained"));
    assert!(pos("sampler.drained") < pos("writer.finished"));
    assert!(pos("writer.finished") < pos("registry.stopped"));
    let steps: Vec<String> = log
        .events()
        .into_iter()
        .filter(|(n, _)| n == "supervisor.shutdown")
        .map(|(_, f)| f.split_whitespace().next().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        steps,
        [
            "step=\"ticker\"",
            "step=\"sampler\"",
            "step=\"writer\"",
            "step=\"registry\""
        ]
    );
    // Every actor's start and each message kind are traced.
    for n in [
        "supervisor.started",
        "registry.started",
        "ticker.started",
        "sampler.started",
        "writer.started",
        "registry.register_interpreter",
        "registry.register_function",
        "sampler.add_interpreter",
        "writer.record",
        "writer.batch",
        "supervisor.stopped",
    ] {
        assert!(names.iter().any(|x| x == n), "no event {n}");
    }
}

#[test]
fn late_wake_skips_missed_ticks_without_burst() {
    let dir = TempDir::new("missed");
    let (mut p, clock) = virtual_profiler(&dir, "p.data", 1000, 100, Format::Native);
    let code = native_code(8);
    p.register_function("f", &code).unwrap();
    let h = p.new_interpreter(None).unwrap();
    h.set_ptr(&code[0]);
    p.sync().unwrap();
    clock.advance(Duration::from_millis(1));
    // Time leaps 5.5 ms at once: deadlines 2..=6 pass while asleep.
    clock.jump(Duration::from_micros(5500));
    clock.advance(Duration::from_millis(1));
    let s = p.stop().unwrap();
    assert_eq!(
        (s.ticks_scheduled, s.ticks_taken, s.ticks_missed),
        (7, 3, 4)
    );
    assert_eq!(s.samples_written, 3);
    assert_eq!(s.lateness_max_ns, 500_000);
    let c = read_all(&std::fs::read(dir.path("p.data")).unwrap()).unwrap();
    // Each sample is stamped when its PC was read: the late tick read at
    // 6.5 ms, for the 6 ms deadline.
    let times: Vec<u64> = c.samples.iter().map(|s| s.time_ns).collect();
    assert_eq!(times, [1_000_000, 6_500_000, 7_000_000]);
}

#[test]
fn pause_resume_and_rate_change() {
    let dir = TempDir::new("rate");
    let (mut p, clock) = virtual_profiler(&dir, "p.data", 1000, 100, Format::Native);
    let code = native_code(8);
    p.register_function("f", &code).unwrap();
    let h = p.new_interpreter(None).unwrap();
    h.set_ptr(&code[3]);
    p.sync().unwrap();
    clock.advance(Duration::from_millis(2));
    p.pause().unwrap();
    p.sync().unwrap();
    clock.advance(Duration::from_millis(10));
    assert_eq!(p.stats().unwrap().ticks_taken, 2);
    p.resume().unwrap();
    p.set_rate(2000).unwrap();
    p.sync().unwrap();
    clock.advance(Duration::from_millis(5));
    assert!(p.set_rate(0).is_err());
    assert!(p.set_rate(2_000_000).is_err());
    let s = p.stop().unwrap();
    assert_eq!(s.ticks_taken, 12);
    assert_eq!(s.frequency_hz, 2000);
    assert_eq!(s.ticks_missed, 0);
    assert_eq!(s.elapsed_ns, 7_000_000);
}

#[test]
fn idle_interpreters_give_no_samples_and_finished_ones_retire() {
    let dir = TempDir::new("idle");
    let (mut p, clock) = virtual_profiler(&dir, "p.data", 1000, 100, Format::Native);
    let code = native_code(8);
    p.register_function("f", &code).unwrap();
    let busy = p.new_interpreter(Some("busy")).unwrap();
    let idle = p.new_interpreter(Some("idle")).unwrap();
    busy.set_ptr(&code[2]);
    idle.set_idle();
    p.sync().unwrap();
    clock.advance(Duration::from_millis(4));
    drop(busy);
    clock.advance(Duration::from_millis(4));
    p.sync().unwrap();
    // The retired one is forgotten (counted only); the idle one is listed.
    let infos = p.interpreters().unwrap();
    assert_eq!(infos.len(), 1, "{infos:?}");
    assert_eq!(infos[0].label.as_deref(), Some("idle"));
    assert!(infos[0].retired_ns.is_none());
    assert_eq!(infos[0].current_pc, None);
    idle.set_ptr(&code[6]);
    assert_eq!(
        p.interpreters().unwrap()[0].current_pc,
        Some(&code[6] as *const u8 as usize)
    );
    idle.set_idle();
    let s = p.stop().unwrap();
    assert_eq!(s.samples_written, 4);
    assert_eq!(s.interpreters_live, 1);
    assert_eq!(s.interpreters_retired, 1);
    let c = read_all(&std::fs::read(dir.path("p.data")).unwrap()).unwrap();
    assert_eq!(c.retired.len(), 1);
    assert!(c.samples.iter().all(|s| s.interp == 0));
    drop(idle);
}

#[test]
fn unload_and_address_reuse_resolve_by_time() {
    let dir = TempDir::new("reuse");
    let (mut p, clock) = virtual_profiler(&dir, "p.data", 1000, 4, Format::Native);
    const ADDR: u64 = 0x10_000;
    p.register_function_at("old", ADDR, &[0; 32]).unwrap();
    let h = p.new_interpreter(None).unwrap();
    h.set(ADDR as usize + 5);
    p.sync().unwrap();
    clock.advance(Duration::from_millis(5));
    h.set_idle();
    p.unregister_function(ADDR).unwrap();
    p.register_function_at("new", ADDR, &[1; 16]).unwrap();
    h.set(ADDR as usize + 5);
    p.sync().unwrap();
    clock.advance(Duration::from_millis(3));
    // Only the live generation is listed; the unloaded one is counted.
    let funcs = p.functions().unwrap();
    assert_eq!(funcs.len(), 1);
    assert_eq!(funcs[0].name, "new");
    assert!(funcs[0].unloaded_ns.is_none());
    let hot = p.hot_functions(5).unwrap();
    assert_eq!(
        hot.iter()
            .map(|h| (h.name.as_str(), h.samples))
            .collect::<Vec<_>>(),
        [("old", 5), ("new", 3)]
    );
    let s = p.stop().unwrap();
    assert_eq!((s.functions_live, s.functions_unloaded), (1, 1));

    let profile = pcprof::analysis::load(&dir.path("p.data"), &Default::default(), |_| {}).unwrap();
    let by_name: Vec<(&str, u64)> = profile
        .functions
        .iter()
        .map(|f| (f.name.as_str(), f.samples))
        .collect();
    assert_eq!(by_name, [("old", 5), ("new", 3)]);
    assert_eq!(profile.unresolved, 0);
    assert_eq!(profile.functions[0].hits.get(5), 5);
    assert_eq!(profile.functions[1].hits.get(5), 3);
}

#[test]
fn function_records_precede_their_samples() {
    let dir = TempDir::new("precede");
    let (mut p, clock) = virtual_profiler(&dir, "p.data", 1000, 1, Format::Native);
    let h = p.new_interpreter(None).unwrap();
    let mut codes = Vec::new();
    for i in 0..20 {
        // Register and execute at once, as an embedder would, flushing
        // every sample: the record must still come first in the file.
        let code = native_code(8 + i);
        p.register_function(&format!("f{i}"), &code).unwrap();
        h.set_ptr(&code[i % 8]);
        p.sync().unwrap();
        clock.advance(Duration::from_millis(1));
        codes.push(code);
    }
    p.stop().unwrap();
    let c = read_all(&std::fs::read(dir.path("p.data")).unwrap()).unwrap();
    assert_eq!(c.samples.len(), 20);
    let mut resolver = pcprof::Resolver::new();
    let reader = pcprof::ProfileReader::open(dir.path("p.data")).unwrap();
    let mut n = 0;
    for ev in reader {
        match ev.unwrap() {
            pcprof::Event::Function(f) => {
                resolver.add(n, f.addr, f.code.len() as u64, f.loaded_ns);
                n += 1;
            }
            pcprof::Event::Samples(s) => {
                for s in s {
                    assert!(
                        resolver.resolve(s.pc, s.time_ns).is_some(),
                        "sample before its function"
                    );
                }
            }
            _ => {}
        }
    }
}

/// The batch-buffer pool starts at the configured 4 and grows as
/// interpreters register, to hold 100 ms of what they can sample: 2 000
/// interpreters at 1 kHz make 200 000 samples in 100 ms, 10 batches of
/// 20 000, and the one being filled.
#[test]
fn the_buffer_pool_grows_with_the_interpreters_registered() {
    let dir = TempDir::new("pool");
    let (clock, mut p) = start_virtual(
        Profiler::builder()
            .frequency(1000)
            .output(dir.path("p.data")),
    );
    assert_eq!(p.stats().unwrap().batch_buffers, 4);
    let handles: Vec<_> = (0..2_000)
        .map(|_| p.new_interpreter(None).unwrap())
        .collect();
    p.sync().unwrap();
    assert_eq!(p.stats().unwrap().batch_buffers, 11);
    drop(handles);
    clock.advance(Duration::from_millis(1));
    p.sync().unwrap();
    // Retirements never shrink it.
    let s = p.stop().unwrap();
    assert_eq!((s.interpreters_live, s.batch_buffers), (0, 11));
}

/// Interpreters on the activity protocol: sampled exactly while entered
/// (nested entries keep them entered until the outermost leave; each leave
/// stores PC 0), never while left, however many are registered; a finish
/// while left retires the interpreter, and its id (its slot) goes to the
/// next registration.
#[test]
fn on_demand_interpreters_are_sampled_while_entered() {
    let dir = TempDir::new("ondemand");
    let (mut p, clock) = virtual_profiler(&dir, "p.data", 1000, 20_000, Format::Native);
    let code = native_code(16);
    p.register_function("f", &code).unwrap();
    let a = p.new_interpreter_on_demand(Some("a")).unwrap();
    let b = p.new_interpreter_on_demand(Some("b")).unwrap();
    let idle: Vec<_> = (0..5_000)
        .map(|_| p.new_interpreter_on_demand(None).unwrap())
        .collect();
    p.sync().unwrap();
    {
        let _in = a.enter();
        a.set_ptr(&code[4]);
        clock.advance(Duration::from_millis(3)); // ticks 1-3: a at 4
    }
    clock.advance(Duration::from_millis(2)); // ticks 4-5: nothing
    {
        let _outer = b.enter();
        b.set_ptr(&code[6]);
        {
            let _inner = b.enter();
            b.set_ptr(&code[8]);
            clock.advance(Duration::from_millis(1)); // tick 6: b at 8
        }
        // Back in the host under the outer call: idle until it resumes.
        clock.advance(Duration::from_millis(1)); // tick 7: nothing
        b.set_ptr(&code[10]);
        clock.advance(Duration::from_millis(2)); // ticks 8-9: b at 10
    }
    let a_id = a.id();
    drop(a); // finished while left
    clock.advance(Duration::from_millis(1)); // tick 10: a retired
    p.sync().unwrap();
    let c = p.new_interpreter_on_demand(Some("c")).unwrap();
    assert_eq!(c.id(), a_id, "the retired slot is reused");
    p.sync().unwrap();
    {
        let _in = c.enter();
        c.set_ptr(&code[12]);
        clock.advance(Duration::from_millis(1)); // tick 11: c at 12
    }
    let s = p.stop().unwrap();
    assert_eq!(s.interpreters_retired, 1);
    assert_eq!(s.interpreters_live, 5_002);
    let bytes = std::fs::read(dir.path("p.data")).unwrap();
    let got: Vec<(u64, u32, u64)> = read_all(&bytes)
        .unwrap()
        .samples
        .iter()
        .map(|s| (s.time_ns / 1_000_000, s.interp, s.pc - code.as_ptr() as u64))
        .collect();
    let (ai, bi) = (a_id, b.id());
    assert_eq!(
        got,
        [
            (1, ai, 4),
            (2, ai, 4),
            (3, ai, 4),
            (6, bi, 8),
            (8, bi, 10),
            (9, bi, 10),
            (11, ai, 12),
        ]
    );
    drop((b, c, idle));
}
