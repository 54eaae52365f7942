//! The recording runtime end to end, on a virtual clock: exact counts, no
//! sleeping, no timing assertions.

use std::sync::Arc;
use std::time::Duration;

use pcprof::{Format, Profiler, VirtualClock};

use crate::common::{TempDir, read_all};

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
        .flush_every(flush)
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
