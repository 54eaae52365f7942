//! The profiler inside tokio, and many interpreters registering and
//! finishing while sampling goes on.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use pcprof::Profiler;

use crate::common::{TempDir, read_all, start_virtual};

#[tokio::test(flavor = "current_thread")]
async fn start_query_stop_inside_a_current_thread_runtime() {
    let dir = TempDir::new("tokio1");
    let (clock, mut p) = start_virtual(Profiler::builder().output(dir.path("p.data")));
    let code = [0u8; 4];
    p.register_function("f", &code).unwrap();
    let h = p.new_interpreter(None).unwrap();
    h.set_ptr(&code[0]);
    p.sync().unwrap();
    clock.advance(Duration::from_millis(5));
    // The actors answer async callers too.
    let stats = ractor::call!(p.supervisor(), pcprof::supervisor::SupervisorMsg::GetStats)
        .unwrap()
        .unwrap();
    assert_eq!(stats.ticks_taken, 5);
    assert_eq!(p.stats().unwrap().samples_taken, 5);
    assert_eq!(p.stop().unwrap().samples_written, 5);
}

/// The ticker, sampler and writer live on their own threads; their faces
/// forward each public message to them, so async code reaches them like any
/// actor.
#[tokio::test(flavor = "current_thread")]
async fn every_actor_answers_ractor_call() {
    use pcprof::sampler::SamplerMsg;
    use pcprof::ticker::TickerMsg;
    use pcprof::writer::WriterMsg;

    let dir = TempDir::new("faces");
    let (clock, mut p) = start_virtual(Profiler::builder().output(dir.path("p.data")));
    let code = [0u8; 4];
    p.register_function("f", &code).unwrap();
    let h = p.new_interpreter(None).unwrap();
    h.set_ptr(&code[1]);
    p.sync().unwrap();
    clock.advance(Duration::from_millis(4));
    let t = ractor::call!(p.ticker(), TickerMsg::GetStats).unwrap();
    assert_eq!((t.ticks_taken, t.samples_taken), (4, 4));
    ractor::call!(p.sampler(), SamplerMsg::Flush).unwrap();
    let w = ractor::call!(p.writer(), WriterMsg::Flush).unwrap();
    assert_eq!(w.samples_written, 4);
    let hot = ractor::call!(p.writer(), WriterMsg::GetHotFunctions, 3).unwrap();
    assert_eq!((hot[0].name.as_str(), hot[0].samples), ("f", 4));
    let refused = ractor::call!(p.ticker(), TickerMsg::SetRate, 0).unwrap();
    assert!(refused.is_err());
    ractor::call!(p.ticker(), TickerMsg::SetRate, 500)
        .unwrap()
        .unwrap();
    let interps =
        ractor::call!(p.registry(), pcprof::registry::RegistryMsg::GetInterpreters).unwrap();
    assert_eq!(interps.len(), 1);
    assert_eq!(p.stop().unwrap().samples_written, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_inside_a_multi_thread_runtime() {
    let dir = TempDir::new("tokio2");
    let path = dir.path("p.data");
    {
        let p = Profiler::builder().output(&path).start().unwrap();
        let code = [0u8; 4];
        p.register_function("f", &code).unwrap();
        tokio::task::yield_now().await;
        // Dropped here: stops in order, no nested block_on panic.
    }
    let c = read_all(&std::fs::read(&path).unwrap()).unwrap();
    assert!(c.error.is_none());
    assert!(c.summary.is_some());
}

#[test]
fn many_interpreters_come_and_go_while_sampling() {
    let dir = TempDir::new("many");
    let (clock, mut p) = start_virtual(
        Profiler::builder()
            .flush_every(7)
            .buffers(64)
            .output(dir.path("p.data")),
    );
    let code: Arc<Vec<u8>> = Arc::new((0..=255).collect());
    p.register_function("f", &code).unwrap();
    const THREADS: usize = 8;
    const ROUNDS: usize = 5;
    // Each round every thread registers an interpreter, publishes a PC, and
    // (after time moves) drops it; time moves between the phases.
    let go = Arc::new(Barrier::new(THREADS + 1));
    let done = Arc::new(Barrier::new(THREADS + 1));
    let mut joins = Vec::new();
    for t in 0..THREADS {
        let handle = p.handle();
        let code = Arc::clone(&code);
        let (go, done) = (Arc::clone(&go), Arc::clone(&done));
        joins.push(std::thread::spawn(move || {
            for r in 0..ROUNDS {
                let h = handle.new_interpreter(Some(&format!("t{t}r{r}"))).unwrap();
                h.set_ptr(&code[t * 16 + r]);
                done.wait(); // registered
                go.wait(); // time moved
                drop(h);
                done.wait(); // finished
                go.wait();
            }
        }));
    }
    for _ in 0..ROUNDS {
        done.wait();
        p.sync().unwrap();
        clock.advance(Duration::from_millis(3));
        go.wait();
        done.wait();
        clock.advance(Duration::from_millis(1));
        go.wait();
    }
    for j in joins {
        j.join().unwrap();
    }
    clock.advance(Duration::from_millis(1));
    p.sync().unwrap();
    // Every interpreter retired: the registry keeps none of them.
    assert!(p.interpreters().unwrap().is_empty());
    let s = p.stop().unwrap();
    // 3 ticks per round for each live interpreter.
    assert_eq!(s.samples_taken, (THREADS * ROUNDS * 3) as u64);
    assert_eq!(s.samples_written, s.samples_taken);
    assert_eq!(s.interpreters_retired, (THREADS * ROUNDS) as u64);
    let c = read_all(&std::fs::read(dir.path("p.data")).unwrap()).unwrap();
    assert_eq!(c.samples.len() as u64, s.samples_taken);
    // Each round's interpreters retire before the next round registers:
    // ids are reused, never beyond those alive at once.
    assert_eq!(c.interpreters.len(), THREADS * ROUNDS);
    assert!(c.interpreters.iter().all(|i| (i.id as usize) < THREADS));
    let base = code.as_ptr() as u64;
    for smp in &c.samples {
        // The registration of this id with the greatest time at or before
        // the sample's.
        let label = c
            .interpreters
            .iter()
            .filter(|i| i.id == smp.interp && i.registered_ns <= smp.time_ns)
            .max_by_key(|i| i.registered_ns)
            .and_then(|i| i.label.clone())
            .unwrap();
        let (t, r) = label[1..].split_once('r').unwrap();
        let (t, r): (u64, u64) = (t.parse().unwrap(), r.parse().unwrap());
        assert_eq!(smp.pc - base, t * 16 + r, "{label}");
    }
}

/// A server's shape: hundreds of requests, each a task on a multi-thread
/// runtime that registers an interpreter on demand, enters, runs, leaves
/// and drops it. Every registration is answered, the one tick taken while
/// all are entered samples each exactly once, the tick after they left
/// samples none, and every one is retired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_on_demand_interpreters_from_async_tasks() {
    const TASKS: usize = 400;
    let dir = TempDir::new("tokio-on-demand");
    let (clock, mut p) = start_virtual(Profiler::builder().output(dir.path("p.data")));
    let code: Arc<Vec<u8>> = Arc::new((0..=255).collect());
    p.register_function("f", &code).unwrap();
    let entered = Arc::new(tokio::sync::Barrier::new(TASKS + 1));
    let release = Arc::new(tokio::sync::Barrier::new(TASKS + 1));
    let mut tasks = Vec::new();
    for k in 0..TASKS {
        let handle = p.handle();
        let code = Arc::clone(&code);
        let (entered, release) = (Arc::clone(&entered), Arc::clone(&release));
        tasks.push(tokio::spawn(async move {
            let pc = handle
                .new_interpreter_on_demand(Some(&format!("request {k}")))
                .unwrap();
            {
                let _inside = pc.enter();
                pc.set_ptr(&code[k % 256]);
                entered.wait().await;
                release.wait().await;
            }
            drop(pc);
        }));
    }
    entered.wait().await;
    p.sync().unwrap();
    clock.advance(Duration::from_millis(1));
    p.sync().unwrap();
    assert_eq!(p.stats().unwrap().samples_taken, TASKS as u64);
    release.wait().await;
    for t in tasks {
        t.await.unwrap();
    }
    clock.advance(Duration::from_millis(1));
    p.sync().unwrap();
    assert!(p.interpreters().unwrap().is_empty());
    let s = p.stop().unwrap();
    assert_eq!(
        s.samples_taken, TASKS as u64,
        "a left interpreter was sampled"
    );
    assert_eq!(s.interpreters_retired, TASKS as u64);
    let c = read_all(&std::fs::read(dir.path("p.data")).unwrap()).unwrap();
    assert_eq!(c.samples.len(), TASKS);
    let base = code.as_ptr() as u64;
    let mut seen = vec![0u32; 256];
    for smp in &c.samples {
        seen[(smp.pc - base) as usize] += 1;
    }
    for (k, n) in seen.iter().enumerate() {
        // Tasks k, k + 256, ... published code[k].
        let expected = (0..TASKS).filter(|t| t % 256 == k).count() as u32;
        assert_eq!(*n, expected, "samples of code[{k}]");
    }
}
