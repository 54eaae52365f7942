//! The Pulley adapter on the real interpreter.

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use pcprof::disasm::{InstructionDecoder, instruction_at};
use pcprof::pulley::workload::{DemoProgram, Scratch};
use pcprof::pulley::{ProfiledVm, PulleyDecoder, PulleyTable, detect_table};
use pcprof::{Format, PcSource, Profiler};
use pulley_interpreter::interp::{DoneReason, Val, Vm, XRegVal};
use pulley_interpreter::{AddrO32, Op, PcRelOffset, XReg, op};

use crate::common::{TempDir, read_all, start_virtual};

/// `loop { if *x0 != 0 { return } }`: runs until the host sets a flag.
fn spin_until_flag() -> Vec<u8> {
    let (flag, val) = (XReg::x0, XReg::x1);
    let mut code = Vec::new();
    Op::from(op::XLoad8U32O32 {
        dst: val,
        addr: AddrO32 {
            addr: flag,
            offset: 0,
        },
    })
    .encode(&mut code);
    let back = -(code.len() as i32);
    Op::from(op::BrIfXeq32I8 {
        a: val,
        b: 0,
        offset: PcRelOffset::from(back),
    })
    .encode(&mut code);
    Op::from(op::Ret {}).encode(&mut code);
    code
}

/// Pulley's raw cell, registered without the adapter: what a naive
/// integration would sample.
struct RawCell(pulley_interpreter::profile::ExecutingPc);

impl PcSource for RawCell {
    fn pc(&self) -> Option<usize> {
        self.0.get()
    }
    fn is_finished(&self) -> bool {
        self.0.is_done()
    }
}

#[test]
fn idle_time_between_calls_is_not_sampled() {
    let dir = TempDir::new("pulley-idle");
    let (clock, mut p) = start_virtual(Profiler::builder().output(dir.path("p.data")).buffers(64));
    let code = spin_until_flag();
    p.register_function("spin", &code).unwrap();
    let flag = Arc::new(AtomicU8::new(0));
    let vm = Vm::new().unwrap();
    let raw = RawCell(vm.executing_pc().clone());
    let mut vm = ProfiledVm::new(vm, &p.handle(), Some("adapted")).unwrap();
    p.register_source(Some("raw"), raw).unwrap();
    p.sync().unwrap();

    let entered = Arc::new(AtomicBool::new(false));
    let (f, e, c) = (flag.clone(), entered.clone(), code.clone());
    let worker = std::thread::spawn(move || {
        let arg = Val::XReg(XRegVal::new_ptr(f.as_ptr()));
        e.store(true, Ordering::Relaxed);
        // SAFETY: `c` is the complete function above; x0 points at the
        // flag, which outlives the call.
        let done = unsafe { vm.call(NonNull::from(&c[..]).cast(), &[arg], []) };
        assert!(matches!(done, DoneReason::ReturnToHost(_)));
        vm
    });
    while !entered.load(Ordering::Relaxed) {
        std::thread::yield_now();
    }
    // Let the call get going: tick until the interpreter is seen running.
    let mut warmup = 0;
    while p.stats().unwrap().samples_taken < 2 {
        clock.advance(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(1));
        warmup += 1;
        assert!(warmup < 5000, "the Vm never started");
    }
    let before = p.stats().unwrap().samples_taken;
    // 100 ms running...
    clock.advance(Duration::from_millis(100));
    flag.store(1, Ordering::Relaxed);
    let vm = worker.join().unwrap();
    // ... then 900 ms idle between calls.
    clock.advance(Duration::from_millis(900));
    let s = p.stop().unwrap();
    drop(vm);

    let profile = pcprof::analysis::load(&dir.path("p.data"), &Default::default(), |_| {}).unwrap();
    let per: Vec<(Option<String>, u64)> = profile
        .interpreters
        .iter()
        .map(|i| (i.label.clone(), i.samples))
        .collect();
    let ids: Vec<u32> = profile.interpreters.iter().map(|i| i.id).collect();
    assert_eq!(ids, [0, 1]);
    assert_eq!(
        per.iter().map(|(l, _)| l.as_deref()).collect::<Vec<_>>(),
        [Some("adapted"), Some("raw")]
    );
    let adapted = per[0].1;
    let raw = per[1].1;
    // Each one's warm-up samples, counted apart: a warm-up tick may read
    // one cell just before the Vm's first instruction and the other just
    // after (the timing thread preempted between its two reads), so the
    // warm-up need not be split evenly.
    let warm_end_ns = warmup * 1_000_000;
    let c = read_all(&std::fs::read(dir.path("p.data")).unwrap()).unwrap();
    let warm = |id: u32| {
        c.samples
            .iter()
            .filter(|smp| smp.interp == id && smp.time_ns <= warm_end_ns)
            .count() as u64
    };
    assert_eq!(warm(ids[0]) + warm(ids[1]), before);
    // The adapted Vm: its warm-up samples plus exactly the 100 running
    // ticks, none of the 900 idle ones.
    assert_eq!(adapted, warm(ids[0]) + 100, "{per:?}");
    // The raw cell keeps showing the `ret` for the 900 idle ticks.
    assert_eq!(raw, warm(ids[1]) + 100 + 900, "{per:?}");
    assert_eq!(s.samples_written, adapted + raw);
}

#[test]
fn pulley_file_from_the_real_vm_decodes_onto_instruction_starts() {
    let dir = TempDir::new("pulley-real");
    let (clock, mut p) = start_virtual(
        Profiler::builder()
            .output(dir.path("p.data"))
            .format(Format::Pulley)
            .flush_every(50)
            .buffers(64),
    );
    let program = Arc::new(DemoProgram::new());
    for (name, body) in program.function_bodies() {
        p.register_function(name, body).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (prog, st, h) = (program.clone(), stop.clone(), p.handle());
    let worker = std::thread::spawn(move || {
        let mut vm = ProfiledVm::new(Vm::new().unwrap(), &h, Some("demo")).unwrap();
        let mut scratch = Scratch::new();
        while !st.load(Ordering::Relaxed) {
            vm.busy(|vm| prog.run_once(vm, &mut scratch)).unwrap();
        }
    });
    for _ in 0..300 {
        clock.advance(Duration::from_millis(1));
        std::thread::sleep(Duration::from_micros(300));
    }
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    let s = p.stop().unwrap();
    assert!(s.samples_written > 0);

    let bytes = std::fs::read(dir.path("p.data")).unwrap();
    let mut funcs = Vec::new();
    // Per function: its body and the sampled offsets in it, for detection.
    let mut sampled: Vec<(Vec<u8>, Vec<u32>)> = Vec::new();
    let mut n = 0;
    for ev in pulley_interpreter::profile::decode(&bytes) {
        match ev.unwrap() {
            pulley_interpreter::profile::Event::Function(addr, name, body) => {
                funcs.push((
                    addr,
                    name.to_string(),
                    PulleyDecoder.decode(body),
                    body.len() as u64,
                ));
                sampled.push((body.to_vec(), Vec::new()));
            }
            pulley_interpreter::profile::Event::Samples(samples) => {
                for smp in samples {
                    let pc = smp.0;
                    let i = funcs
                        .iter()
                        .position(|(a, _, _, len)| pc >= *a && pc < a + len)
                        .unwrap_or_else(|| panic!("sample {pc:#x} outside every function"));
                    let (addr, name, insns, _) = &funcs[i];
                    assert!(
                        instruction_at(insns, (pc - addr) as u32).is_some(),
                        "sample at {name}+{:#x} is not an instruction start",
                        pc - addr
                    );
                    sampled[i].1.push((pc - addr) as u32);
                    n += 1;
                }
            }
        }
    }
    assert_eq!(n, s.samples_written);
    assert_eq!(funcs.len(), program.functions().len());

    // The real interpreter's samples tell its own table, and only it.
    let detection = detect_table(
        sampled
            .iter()
            .map(|(body, offsets)| (body.as_slice(), offsets.as_slice())),
    );
    assert_eq!(
        detection.fitting(),
        vec![PulleyTable::LATEST],
        "{}",
        detection.describe()
    );
    let latest = detection.evidence_for(PulleyTable::LATEST).unwrap();
    assert_eq!(latest.offsets as u64, s.samples_written);
    assert_eq!(latest.offsets_on_starts, latest.offsets);
    assert_eq!(latest.functions, funcs.len());
}

/// With a shadow stack, every sample of the Vm is rooted at the function
/// the host called into (the leaf in it here), and the stack is empty
/// again once the call returns.
#[test]
fn a_vm_with_a_stack_roots_its_samples_at_the_function_called() {
    use pcprof::analysis::Frame;
    let dir = TempDir::new("pulley-stack");
    let (clock, mut p) = start_virtual(Profiler::builder().output(dir.path("p.data")));
    // The code the Vm runs is the code registered (same address).
    let code = Arc::new(spin_until_flag());
    p.register_function("spin", &code).unwrap();
    let flag = Arc::new(AtomicU8::new(0));
    let mut vm = ProfiledVm::with_stack(Vm::new().unwrap(), &p.handle(), Some("vm"), 8).unwrap();
    p.sync().unwrap();
    let (f, c) = (flag.clone(), Arc::clone(&code));
    let worker = std::thread::spawn(move || {
        let arg = Val::XReg(XRegVal::new_ptr(f.as_ptr()));
        // SAFETY: `c` is the complete function above; x0 points at the
        // flag, which outlives the call.
        let done = unsafe { vm.call(NonNull::from(&c[..]).cast(), &[arg], []) };
        assert!(matches!(done, DoneReason::ReturnToHost(_)));
        vm
    });
    let mut waited = 0;
    while p.stats().unwrap().samples_taken < 20 {
        clock.advance(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(1));
        waited += 1;
        assert!(waited < 5000, "the Vm never started");
    }
    flag.store(1, Ordering::Relaxed);
    let vm = worker.join().unwrap();
    assert_eq!(vm.stack_depth(), 0);
    p.stop().unwrap();
    drop(vm);
    let profile = pcprof::analysis::load(&dir.path("p.data"), &Default::default(), |_| {}).unwrap();
    assert!(profile.total_samples >= 20);
    assert!(profile.has_stacks());
    for leaf in &profile.stacks.leaves {
        assert_eq!(profile.stacks.path(leaf.stack), [Frame::Function(0)]);
        assert_eq!(leaf.function, Some(0));
    }
    assert_eq!(
        profile.stacks.leaves.iter().map(|l| l.samples).sum::<u64>(),
        profile.total_samples
    );
}

/// A `ProfiledVm` is on the activity protocol: sampled while inside a call
/// only, and retired once dropped (its finish sets its bit), its id then
/// free for the next Vm.
#[test]
fn a_dropped_vm_is_retired_and_its_id_reused() {
    let dir = TempDir::new("pulley-retire");
    let (clock, mut p) = start_virtual(Profiler::builder().output(dir.path("p.data")));
    let vm = ProfiledVm::new(Vm::new().unwrap(), &p.handle(), Some("first")).unwrap();
    let other = ProfiledVm::new(Vm::new().unwrap(), &p.handle(), Some("second")).unwrap();
    p.sync().unwrap();
    clock.advance(Duration::from_millis(2));
    assert_eq!(p.stats().unwrap().interpreters_live, 2);
    drop(vm);
    clock.advance(Duration::from_millis(1));
    p.sync().unwrap();
    let s = p.stats().unwrap();
    assert_eq!((s.interpreters_live, s.interpreters_retired), (1, 1));
    let again = ProfiledVm::new(Vm::new().unwrap(), &p.handle(), Some("third")).unwrap();
    p.sync().unwrap();
    let ids: Vec<(u32, Option<String>)> = p
        .interpreters()
        .unwrap()
        .into_iter()
        .map(|i| (i.id, i.label))
        .collect();
    assert_eq!(
        ids,
        [
            (0, Some("third".to_string())),
            (1, Some("second".to_string()))
        ]
    );
    let s = p.stop().unwrap();
    assert_eq!(s.samples_taken, 0);
    drop((other, again));
}
