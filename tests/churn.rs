//! Recording under churn, on a virtual clock: thousands of generations of
//! code at reused addresses, interpreters coming and going.
//!
//! - Each generation executes at its own offset, so a sample's PC says which
//!   generation it was read from; every sample in the file must resolve by
//!   its time to that generation (the writer's way, and the analysis's).
//! - Interpreters are replaced again and again: their ids are reused, stay
//!   small, and every sample of an id falls after the registration it
//!   belongs to (the greatest `registered_ns <= time_ns`).
//! - The registry's state is bounded: created and dropped interpreters and
//!   unloaded functions leave only counts.

use std::collections::BTreeMap;
use std::time::Duration;

use pcprof::{Event, ProfileReader, Profiler, Resolver, Sample, VirtualClock};

use crate::common::{TempDir, start_virtual};

const CODE_LEN: u64 = 64;
/// Addresses each interpreter cycles through: generation `g` runs at
/// `slot(g % SLOTS)`, so every address is reused every `SLOTS` generations.
const SLOTS: u64 = 2;
const GENERATIONS: u64 = 2000;
/// The second interpreter is replaced every this many generations.
const REPLACE_EVERY: u64 = 40;

fn profiler(dir: &TempDir, hz: u32) -> (Profiler, VirtualClock) {
    let (clock, p) = start_virtual(
        Profiler::builder()
            .frequency(hz)
            .flush_every(500)
            .buffers(64)
            .output(dir.path("p.data")),
    );
    (p, clock)
}

fn addr(interp: u64, g: u64) -> u64 {
    0x10_0000 + (interp * SLOTS + g % SLOTS) * CODE_LEN
}

/// Generations sharing an address run at different offsets.
fn offset(g: u64) -> u64 {
    (g / SLOTS) % CODE_LEN
}

/// What a function's name says: (interpreter, instance, generation).
fn parse_name(name: &str) -> (u64, u64, u64) {
    let mut it = name
        .split(['i', 'n', 'g'])
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u64>().expect("a generated name"));
    let (i, n, g) = (it.next(), it.next(), it.next());
    (
        i.expect("interp"),
        n.expect("instance"),
        g.expect("generation"),
    )
}

#[test]
fn every_sample_resolves_to_the_generation_it_was_read_from_and_ids_are_reused() {
    let dir = TempDir::new("churn");
    let (mut p, clock) = profiler(&dir, 1000);
    let code = [0u8; CODE_LEN as usize];
    // Interpreter 0 lives throughout; interpreter 1 is replaced (instance n).
    let mut handles = vec![
        p.new_interpreter(Some("a")).unwrap(),
        p.new_interpreter(Some("b0")).unwrap(),
    ];
    let mut instance = [0u64, 0];
    let mut expected = 0u64;
    for g in 0..GENERATIONS {
        if g > 0 && g % REPLACE_EVERY == 0 {
            // The old interpreter finishes; the next tick retires it (both
            // are idle: no sample); the new one reuses its id.
            drop(handles.pop());
            clock.advance(Duration::from_millis(1));
            instance[1] += 1;
            handles.push(
                p.new_interpreter(Some(&format!("b{}", instance[1])))
                    .unwrap(),
            );
        }
        for (k, h) in handles.iter().enumerate() {
            let k = k as u64;
            let at = addr(k, g);
            p.register_function_at(&format!("i{k}n{}g{g}", instance[k as usize]), at, &code)
                .unwrap();
            h.set((at + offset(g)) as usize);
        }
        p.sync().unwrap();
        // Two ticks of each generation.
        clock.advance(Duration::from_millis(2));
        expected += 2 * handles.len() as u64;
        // The code stops, then is unloaded: at the same virtual instant as
        // the last tick, and the next generation at this address is loaded
        // at that instant too.
        for (k, h) in handles.iter().enumerate() {
            h.set_idle();
            p.unregister_function(addr(k as u64, g)).unwrap();
        }
    }
    p.sync().unwrap();
    let counts = p.stats().unwrap();
    assert_eq!(
        (counts.functions_live, counts.functions_unloaded),
        (0, 2 * GENERATIONS)
    );
    let stats = p.stop().unwrap();
    assert_eq!(stats.samples_dropped, 0);
    assert_eq!(stats.samples_taken, expected);
    assert_eq!(stats.samples_written, expected);

    let bytes = std::fs::read(dir.path("p.data")).unwrap();
    // The writer's way: a resolver that forgets what no later sample can
    // fall in, fed in file order.
    let mut reader = ProfileReader::new(&bytes[..]).unwrap();
    let mut resolver = Resolver::new();
    let mut names: Vec<String> = Vec::new();
    // Registrations of each id: (registered_ns, instance label).
    let mut registrations: BTreeMap<u32, Vec<(u64, String)>> = BTreeMap::new();
    let mut retired = 0;
    let mut samples: Vec<Sample> = Vec::new();
    let mut read = 0u64;
    while let Some(ev) = reader.next_into(&mut samples) {
        match ev.unwrap() {
            Event::Function(f) => {
                resolver.add(names.len(), f.addr, f.code.len() as u64, f.loaded_ns);
                names.push(f.name);
            }
            Event::Unload(u) => {
                resolver
                    .unload(u.addr, u.unloaded_ns)
                    .expect("a live function");
            }
            Event::Interpreter(i) => {
                let list = registrations.entry(i.id).or_default();
                // Reuse comes after the retirement, later in time.
                assert!(list.last().is_none_or(|&(t, _)| t <= i.registered_ns));
                list.push((i.registered_ns, i.label.expect("labelled")));
            }
            Event::Retired(_) => retired += 1,
            Event::Samples(_) => {
                for s in &samples {
                    read += 1;
                    let i = resolver
                        .resolve(s.pc, s.time_ns)
                        .unwrap_or_else(|| panic!("{s:?} resolves to no function"));
                    let (k, n, g) = parse_name(&names[i]);
                    assert_eq!(
                        s.pc,
                        addr(k, g) + offset(g),
                        "{s:?} resolved to {} but was read from another generation",
                        names[i]
                    );
                    // The registration this sample belongs to: the greatest
                    // `registered_ns <= time_ns` of its id.
                    let regs = &registrations[&s.interp];
                    let (_, label) = regs
                        .iter()
                        .rev()
                        .find(|&&(t, _)| t <= s.time_ns)
                        .expect("a registration before the sample");
                    let want = if k == 0 {
                        "a".to_string()
                    } else {
                        format!("b{n}")
                    };
                    assert_eq!(label, &want, "{s:?} of {}", names[i]);
                }
                if let Some(last) = samples.last() {
                    resolver.forget_unloaded_before(last.time_ns);
                }
            }
            _ => {}
        }
    }
    assert_eq!(read, expected);
    // Ids stay as small as the interpreters alive at once.
    assert_eq!(registrations.keys().copied().collect::<Vec<_>>(), [0, 1]);
    assert_eq!(
        registrations[&1].len() as u64,
        1 + (GENERATIONS - 1) / REPLACE_EVERY
    );
    assert_eq!(retired as u64, (GENERATIONS - 1) / REPLACE_EVERY);

    // The analysis agrees: each generation's samples all at its offset.
    let profile = pcprof::analysis::load_bytes(&bytes, &Default::default(), |_| {}).unwrap();
    assert_eq!(profile.unresolved, 0);
    assert_eq!(profile.functions.len() as u64, 2 * GENERATIONS);
    let mut total = 0;
    for f in &profile.functions {
        let (_, _, g) = parse_name(&f.name);
        assert_eq!(f.hits.get(offset(g) as u32), f.samples, "{}", f.name);
        assert_eq!(f.samples, 2, "{}", f.name);
        total += f.samples;
    }
    assert_eq!(total, expected);
}

#[test]
fn interpreters_created_and_dropped_leave_counts_only() {
    let dir = TempDir::new("dropped");
    let (mut p, clock) = profiler(&dir, 1000);
    let code = [0u8; CODE_LEN as usize];
    let keep = p.new_interpreter(Some("keep")).unwrap();
    const ROUNDS: u64 = 300;
    const AT_ONCE: u64 = 5;
    for round in 0..ROUNDS {
        let batch: Vec<_> = (0..AT_ONCE)
            .map(|_| p.new_interpreter(None).unwrap())
            .collect();
        for h in &batch {
            h.set(0x1000);
        }
        p.register_function_at(&format!("f{round}"), 0x1000, &code)
            .unwrap();
        p.sync().unwrap();
        clock.advance(Duration::from_millis(1));
        drop(batch);
        p.unregister_function(0x1000).unwrap();
        // The next tick retires them.
        clock.advance(Duration::from_millis(1));
    }
    p.sync().unwrap();
    let interps = p.interpreters().unwrap();
    // Only the live one is kept, and ids never grew past those alive at once.
    assert_eq!(interps.len(), 1);
    assert_eq!(interps[0].label.as_deref(), Some("keep"));
    assert!(p.functions().unwrap().is_empty());
    let s = p.stats().unwrap();
    assert_eq!(
        (
            s.interpreters_live,
            s.interpreters_retired,
            s.functions_live,
            s.functions_unloaded
        ),
        (1, ROUNDS * AT_ONCE, 0, ROUNDS)
    );
    p.stop().unwrap();
    let c = crate::common::read_all(&std::fs::read(dir.path("p.data")).unwrap()).unwrap();
    assert_eq!(c.interpreters.len() as u64, 1 + ROUNDS * AT_ONCE);
    let max_id = c.interpreters.iter().map(|i| i.id).max().unwrap();
    assert_eq!(max_id, AT_ONCE as u32);
    assert_eq!(c.samples.len() as u64, ROUNDS * AT_ONCE);
    drop(keep);
}
