//! The one pass the `firefox`, `speedscope` and `pprof` exports share:
//! stream a file, resolve every sample to its frames (callers, function,
//! then instruction) and hand it over in file order.
//!
//! - Call stacks (format version 3) resolve like the profile model's
//!   ([`StackBuilder`]): a file's stack is resolved once, at its first
//!   sample, to a node of a tree of caller functions, so paths that resolve
//!   alike are one node and the exports intern each once.
//! - Functions are decoded once, when their record arrives; samples resolve
//!   by address and time ([`Resolver`]), so unloads and reused addresses
//!   stay right.
//! - Hex (bytecode nobody decodes) gets a frame per sampled offset, made
//!   when its first sample arrives ([`HexDecoder::line_at`]): fixed-width
//!   lines would put samples of different instructions in one frame.
//! - Pulley samples get synthetic times (`index × pulley_interval_ns`).

use std::collections::HashMap;
use std::io::Read;

use super::{ConvertError, ConvertOptions, ConvertReport, UNRESOLVED, instruction_label};
use crate::analysis::profile::{Frame, StackBuilder};
use crate::disasm::{HexDecoder, Instruction, containing_instruction, decode_function};
use crate::format::{Event, Format, InterpreterRecord};
use crate::{ProfileReader, Resolver};

/// Where a sample fell: its own frames (function, then instruction), below
/// its callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Site {
    Unresolved,
    /// Function index, and instruction index when one contains the PC.
    Function(usize, Option<usize>),
}

/// A function seen while walking a file, decoded once.
#[derive(Debug)]
pub(super) struct WalkFunction {
    name: String,
    addr: u64,
    /// The decoder's listing; for hex, the lines of the offsets sampled so
    /// far, in the order first sampled.
    instructions: Vec<Instruction>,
    /// Hex: the code, and each sampled offset's line in `instructions`.
    hex: Option<(Vec<u8>, HashMap<u32, usize>)>,
}

impl WalkFunction {
    /// The function's name.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// Whether nobody decodes its bytes (hex lines, opcode `bytes`).
    pub(super) fn is_hex(&self) -> bool {
        self.hex.is_some()
    }

    /// The instruction a [`Site`] names by index.
    pub(super) fn instruction(&self, index: usize) -> Option<&Instruction> {
        self.instructions.get(index)
    }

    /// The index of the instruction at `offset` into the function.
    fn instruction_at(&mut self, offset: u64) -> Option<usize> {
        let Some((code, lines)) = &mut self.hex else {
            return containing_instruction(&self.instructions, offset);
        };
        let offset = u32::try_from(offset).ok()?;
        if let Some(&i) = lines.get(&offset) {
            return Some(i);
        }
        let line = HexDecoder::default().line_at(code, offset as usize)?;
        self.instructions.push(line);
        lines.insert(offset, self.instructions.len() - 1);
        Some(self.instructions.len() - 1)
    }
}

/// What [`walk`] reports, in file order.
pub(super) enum Step<'a> {
    Interpreter(&'a InterpreterRecord),
    Retired(u32, u64),
    /// The sampling rate changed (0: paused) from the next sample on.
    Rate(u32),
    Sample {
        interp: u32,
        time_ns: u64,
        site: Site,
        /// The callers the sample ran under.
        stack: Callers<'a>,
        functions: &'a [WalkFunction],
    },
}

/// A sample's callers: a node of the walk's tree of resolved call paths
/// (0: no stack), the same node for every sample under the same path.
#[derive(Clone, Copy)]
pub(super) struct Callers<'a> {
    pub(super) node: u32,
    tree: &'a StackBuilder,
}

impl Callers<'_> {
    /// The callers' frames, outermost first (none without a stack).
    #[cfg(feature = "export")]
    pub(super) fn path(&self) -> Vec<Frame> {
        let mut out = Vec::new();
        self.path_into(&mut out);
        out
    }

    /// The callers' frames, outermost first, into `out` (cleared first).
    pub(super) fn path_into(&self, out: &mut Vec<Frame>) {
        self.tree.path_into(self.node, out);
    }

    /// Walk node `node`'s parent node and caller frame (as for
    /// [`Callers::node`]; the root: itself).
    pub(super) fn parent_and_frame(&self, node: u32) -> (u32, Frame) {
        self.tree.parent_and_frame(node)
    }
}

/// What a walk learnt beyond its steps.
#[derive(Debug, Default)]
pub(super) struct WalkEnd {
    pub(super) stopped_ns: Option<u64>,
    pub(super) report: ConvertReport,
}

/// Streams `input` once, resolving every sample (after the interpreter
/// filter) to its function and instruction; Pulley samples get synthetic
/// times.
pub(super) fn walk<R: Read>(
    mut reader: ProfileReader<R>,
    options: &ConvertOptions,
    mut step: impl FnMut(Step<'_>),
) -> Result<WalkEnd, ConvertError> {
    let mut end = WalkEnd::default();
    let pulley = reader.format() == Format::Pulley;
    let interval = options.pulley_interval_ns.max(1);
    let mut functions: Vec<WalkFunction> = Vec::new();
    let mut resolver = Resolver::new();
    let mut seq: u64 = 0;
    let mut stacks = StackBuilder::default();
    let mut stacked = 0u64;
    // The last (function index, PC) resolved to an instruction, and it.
    let mut last_ins: Option<(usize, u64, Option<usize>)> = None;
    for event in reader.by_ref() {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                end.report.read_error = Some(e.to_string());
                break;
            }
        };
        match event {
            Event::Function(f) => {
                resolver.add(functions.len(), f.addr, f.code.len() as u64, f.loaded_ns);
                let listing = decode_function(&options.decoder, &f.code, f.listing.as_deref(), &[]);
                let (instructions, hex) = if listing.is_hex() {
                    (Vec::new(), Some((f.code, HashMap::new())))
                } else {
                    (listing.instructions, None)
                };
                functions.push(WalkFunction {
                    instructions,
                    hex,
                    name: f.name,
                    addr: f.addr,
                });
            }
            Event::Unload(u) => {
                resolver.unload(u.addr, u.unloaded_ns);
            }
            Event::Interpreter(i) => {
                if options.interp.is_none_or(|want| want == i.id) {
                    step(Step::Interpreter(&i));
                }
            }
            Event::Retired(r) => {
                if options.interp.is_none_or(|want| want == r.id) {
                    step(Step::Retired(r.id, r.retired_ns));
                }
            }
            Event::Rate(r) => step(Step::Rate(r.frequency_hz)),
            Event::Stacks(nodes) => stacks.introduce(&nodes),
            Event::Sampling(_) => {}
            Event::Summary(s) => end.stopped_ns = Some(s.stopped_ns),
            Event::Samples(samples) => {
                for s in samples {
                    let time_ns = if pulley {
                        seq = seq.saturating_add(1);
                        (seq - 1).saturating_mul(interval)
                    } else {
                        s.time_ns
                    };
                    if options.interp.is_some_and(|want| want != s.interp) {
                        continue;
                    }
                    let site = match resolver.resolve(s.pc, s.time_ns) {
                        // Runs of one PC are common: its instruction once.
                        Some(fi) if last_ins.is_some_and(|(f, pc, _)| f == fi && pc == s.pc) => {
                            Site::Function(fi, last_ins.and_then(|(_, _, ins)| ins))
                        }
                        Some(fi) => {
                            let f = &mut functions[fi];
                            let ins = s.pc.checked_sub(f.addr).and_then(|o| f.instruction_at(o));
                            last_ins = Some((fi, s.pc, ins));
                            Site::Function(fi, ins)
                        }
                        None => {
                            end.report.unresolved += 1;
                            Site::Unresolved
                        }
                    };
                    end.report.samples += 1;
                    let node = if s.stack == 0 {
                        0
                    } else {
                        stacked += 1;
                        stacks.node(s.stack, |pc| resolver.resolve(pc, s.time_ns))
                    };
                    step(Step::Sample {
                        interp: s.interp,
                        time_ns,
                        site,
                        stack: Callers {
                            node,
                            tree: &stacks,
                        },
                        functions: &functions,
                    });
                }
            }
        }
    }
    end.report.functions = functions.len() as u64;
    if stacked > 0 {
        end.report.notes.push(format!(
            "Kept: the call stacks of {stacked} samples, each caller as its function (the call \
             site's instruction is not kept)."
        ));
    }
    if pulley {
        end.report.notes.push(format!(
            "The Pulley file has no times: samples are {interval} ns apart."
        ));
    }
    Ok(end)
}

/// The frame names of a site, outermost first.
pub(super) fn site_frames(site: Site, functions: &[WalkFunction]) -> Vec<String> {
    match site {
        Site::Unresolved => vec![UNRESOLVED.to_string()],
        Site::Function(fi, ins) => {
            let Some(f) = functions.get(fi) else {
                return vec![UNRESOLVED.to_string()];
            };
            let mut v = vec![f.name.clone()];
            if let Some(i) = ins.and_then(|i| f.instructions.get(i)) {
                v.push(instruction_label(&f.name, i));
            }
            v
        }
    }
}

/// The name of an interpreter's track.
pub(super) fn interp_name(id: u32, label: Option<&str>) -> String {
    match label {
        Some(l) => format!("{l} (interpreter {id})"),
        None => format!("interpreter {id}"),
    }
}
