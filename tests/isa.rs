//! Self-describing profiles: an interpreter's instruction set recorded with
//! its functions, read back by every analysis with no plug-in.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pcprof::analysis::report::{ReportOptions, write_report};
use pcprof::analysis::sequences::{SequenceOptions, mine};
use pcprof::analysis::{LoadOptions, load_bytes};
use pcprof::format::Flow;
use pcprof::{InstructionSet, ListingBuilder, Profiler, VirtualClock};

use crate::common::TempDir;

/// `inc` (1 byte), `br <target>` (2 bytes, conditional), `ret` (1 byte);
/// counts its calls. Also the instruction set of the version-2 fixture
/// (`versions.rs`).
#[derive(Debug, Default)]
pub(crate) struct Tiny {
    decodes: AtomicUsize,
}

impl InstructionSet for Tiny {
    fn name(&self) -> &str {
        "tiny"
    }
    fn decode(&self, code: &[u8], out: &mut ListingBuilder) {
        self.decodes.fetch_add(1, Ordering::SeqCst);
        let mut at = 0;
        while at < code.len() {
            let ok = match code[at] {
                1 => out.push(1, "inc", "", Flow::Plain),
                2 if at + 1 < code.len() => out.push(
                    2,
                    "br",
                    &code[at + 1].to_string(),
                    Flow::Branch {
                        targets: vec![u32::from(code[at + 1])],
                        conditional: true,
                    },
                ),
                3 => out.push(1, "ret", "", Flow::Return),
                _ => false,
            };
            if !ok {
                return;
            }
            at = out.offset() as usize;
        }
    }
}

/// A function reloaded 1000 times with the same code is decoded once and
/// listed once; the report shows its mnemonics and the sequences stop at
/// its branch and its return.
#[test]
fn a_recorded_instruction_set_names_instructions_and_cuts_blocks() {
    let dir = TempDir::new("isa");
    let clock = VirtualClock::new();
    let isa = Arc::new(Tiny::default());
    let mut p = Profiler::builder()
        .frequency(1000)
        .instruction_set(Arc::clone(&isa) as Arc<dyn InstructionSet>)
        .output(dir.path("p.data"))
        .clock(Arc::new(clock.clone()))
        .start()
        .unwrap();
    // inc; inc; br 0; inc; ret  (offsets 0, 1, 2, 4, 5)
    let code = [1u8, 1, 2, 0, 1, 3];
    let addr = 0x1000;
    p.register_function_at("f", addr, &code).unwrap();
    for _ in 0..1000 {
        p.unregister_function(addr).unwrap();
        p.register_function_at("f", addr, &code).unwrap();
    }
    let pc = p.new_interpreter(Some("interp-0")).unwrap();
    for tick in 0..10 {
        pc.set(addr as usize + [0, 1, 2, 4, 5][tick % 5]);
        p.sync().unwrap();
        clock.advance(Duration::from_millis(1));
    }
    p.stop().unwrap();
    assert_eq!(isa.decodes.load(Ordering::SeqCst), 1);

    let bytes = std::fs::read(dir.path("p.data")).unwrap();
    assert_eq!(bytes.windows(4).filter(|w| w == b"tiny").count(), 1);
    let profile = load_bytes(&bytes, &LoadOptions::default(), |_| {}).unwrap();
    assert_eq!(profile.functions.len(), 1001);
    let (first, last) = (&profile.functions[0], &profile.functions[1000]);
    assert!(Arc::ptr_eq(
        first.listing.as_ref().unwrap(),
        last.listing.as_ref().unwrap()
    ));
    assert_eq!(last.hits.dense(6), vec![2, 2, 2, 0, 2, 2]);

    let mut out = Vec::new();
    write_report(
        &mut out,
        &profile,
        &ReportOptions {
            threshold: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("decoder: tiny, the instruction listings"),
        "{text}"
    );
    assert!(text.contains("sampling: randomized, 1000 Hz"), "{text}");
    for line in ["0: inc", "2: br 0", "4: inc", "5: ret"] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }

    let found = mine(&profile, &SequenceOptions::default());
    let mut seqs: Vec<(String, u64)> = found
        .candidates
        .iter()
        .map(|c| (c.opcodes.join(" ; "), c.samples))
        .collect();
    seqs.sort();
    assert_eq!(
        seqs,
        vec![
            ("inc ; br".to_string(), 4),
            ("inc ; inc".to_string(), 4),
            ("inc ; inc ; br".to_string(), 6),
            ("inc ; ret".to_string(), 4),
        ]
    );
}
