//! What an embedder knows of its instruction set, carried in the profile.
//!
//! - An embedder implements [`InstructionSet`] (a name and `decode`, which
//!   pushes each instruction into a [`ListingBuilder`]) and gives it to the
//!   profiler (`.instruction_set(...)`): reports then show its mnemonics and
//!   cut basic blocks at its branches with no plug-in on the command line.
//! - The registry decodes each function once, when it is registered (never on
//!   the tick path), keeping recent listings by code hash so a function
//!   reloaded thousands of times is decoded once ([`Listings`]).
//! - The listing rides on the function record to the writer, whose encoder
//!   writes it once per distinct code (FORMAT.md, `Listing`).
//! - A panicking or incomplete decoder never hurts the host: a panic means
//!   no listing for that code, and bytes it left undecoded become one
//!   `Undecodable` instruction.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use tracing::warn;

use crate::format::{Flow, ListedInstruction, ListingRecord, code_hash};

/// An interpreter's instruction set, as the profiler records it.
pub trait InstructionSet: Send + Sync + fmt::Debug + 'static {
    /// Short name of the instruction set (`stack-vm`), shown as the decoder
    /// of its functions.
    fn name(&self) -> &str;
    /// Decodes `code` from offset 0, pushing every instruction in order
    /// into `out`. Stopping early is allowed: the rest is marked
    /// undecodable.
    fn decode(&self, code: &[u8], out: &mut ListingBuilder);
}

/// Collects the instructions of one function's code.
#[derive(Debug)]
pub struct ListingBuilder {
    code_len: u32,
    at: u64,
    opcodes: Vec<String>,
    index: HashMap<String, u32>,
    instructions: Vec<ListedInstruction>,
}

impl ListingBuilder {
    fn new(code_len: u32) -> ListingBuilder {
        ListingBuilder {
            code_len,
            at: 0,
            opcodes: Vec::new(),
            index: HashMap::new(),
            instructions: Vec::new(),
        }
    }

    /// Offset of the next instruction: the sum of the lengths pushed.
    pub fn offset(&self) -> u32 {
        u32::try_from(self.at).unwrap_or(u32::MAX)
    }

    /// Adds the next instruction: `len` bytes, its mnemonic (the key under
    /// which sequences merge), its operands as text (may be empty) and its
    /// control flow. Returns `false` (and adds nothing) if `len` is 0 or
    /// runs past the code; branch targets outside the code are dropped.
    pub fn push(&mut self, len: u32, mnemonic: &str, operands: &str, flow: Flow) -> bool {
        let end = self.at + u64::from(len);
        if len == 0 || end > u64::from(self.code_len) {
            return false;
        }
        let opcode = match self.index.get(mnemonic) {
            Some(&i) => i,
            None => {
                let i = self.opcodes.len() as u32;
                self.opcodes.push(mnemonic.to_string());
                self.index.insert(mnemonic.to_string(), i);
                i
            }
        };
        let flow = match flow {
            Flow::Branch {
                mut targets,
                conditional,
            } => {
                targets.retain(|&t| t < self.code_len);
                Flow::Branch {
                    targets,
                    conditional,
                }
            }
            other => other,
        };
        self.instructions.push(ListedInstruction {
            len,
            opcode,
            operands: operands.to_string(),
            flow,
        });
        self.at = end;
        true
    }

    fn finish(mut self, code_hash: u64, isa: &str) -> ListingRecord {
        let rest = u64::from(self.code_len) - self.at;
        if rest > 0 {
            self.push(rest as u32, "?", "", Flow::Undecodable);
        }
        ListingRecord {
            code_hash,
            code_len: self.code_len,
            isa: isa.to_string(),
            opcodes: self.opcodes,
            instructions: self.instructions,
        }
    }
}

/// Decodes `code` with `isa` into a listing record; `None` if the code is
/// too long for the format (over 4 GiB) or the decoder panicked.
pub fn listing_of(isa: &dyn InstructionSet, code: &[u8]) -> Option<ListingRecord> {
    let code_len = u32::try_from(code.len()).ok()?;
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut out = ListingBuilder::new(code_len);
        isa.decode(code, &mut out);
        out
    }));
    match decoded {
        Ok(out) => Some(out.finish(code_hash(code), isa.name())),
        Err(payload) => {
            warn!(
                name: "registry.decoder_panicked",
                isa = isa.name(),
                reason = crate::watch::panic_message(payload.as_ref()),
                "the instruction set's decoder panicked: this code has no listing"
            );
            None
        }
    }
}

/// Recent listings kept by the registry, by code hash: at most this many.
const CACHED_MAX: usize = 4096;

/// The registry's side: the instruction set and a bounded cache of the
/// listings it made, so reloaded code is not decoded again.
#[derive(Debug, Default)]
pub struct Listings {
    isa: Option<Arc<dyn InstructionSet>>,
    cache: HashMap<u64, Arc<ListingRecord>>,
}

impl Listings {
    /// Listings made with `isa` (none without one).
    pub fn new(isa: Option<Arc<dyn InstructionSet>>) -> Listings {
        Listings {
            isa,
            cache: HashMap::new(),
        }
    }

    /// The listing of `code`, decoding it unless a recent function had the
    /// same code.
    pub fn listing(&mut self, code: &[u8]) -> Option<Arc<ListingRecord>> {
        let isa = self.isa.as_deref()?;
        let hash = code_hash(code);
        if let Some(l) = self.cache.get(&hash)
            && l.code_len as usize == code.len()
        {
            return Some(Arc::clone(l));
        }
        let listing = Arc::new(listing_of(isa, code)?);
        if self.cache.len() >= CACHED_MAX {
            self.cache.clear();
        }
        self.cache.insert(hash, Arc::clone(&listing));
        Some(listing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Pairs;
    impl InstructionSet for Pairs {
        fn name(&self) -> &str {
            "pairs"
        }
        fn decode(&self, code: &[u8], out: &mut ListingBuilder) {
            // Two-byte instructions; an odd last byte is left undecoded.
            for c in code.chunks_exact(2) {
                let flow = if c[0] == 9 {
                    Flow::Branch {
                        targets: vec![u32::from(c[1]), 1000],
                        conditional: true,
                    }
                } else {
                    Flow::Plain
                };
                out.push(2, if c[0] == 9 { "br" } else { "op" }, "", flow);
            }
        }
    }

    #[test]
    fn listing_interns_mnemonics_drops_far_targets_and_fills_the_tail() {
        let l = listing_of(&Pairs, &[1, 0, 9, 0, 1, 0, 7]).unwrap();
        assert_eq!(l.opcodes, vec!["op", "br", "?"]);
        assert_eq!(l.code_len, 7);
        let lens: Vec<u32> = l.instructions.iter().map(|i| i.len).collect();
        assert_eq!(lens, vec![2, 2, 2, 1]);
        assert_eq!(
            l.instructions[1].flow,
            Flow::Branch {
                targets: vec![0],
                conditional: true
            }
        );
        assert_eq!(l.instructions[3].flow, Flow::Undecodable);
        assert_eq!(l.check(), Ok(()));
    }

    #[derive(Debug)]
    struct Panics;
    impl InstructionSet for Panics {
        fn name(&self) -> &str {
            "panics"
        }
        fn decode(&self, _: &[u8], _: &mut ListingBuilder) {
            panic!("bad decoder");
        }
    }

    #[test]
    fn a_panicking_decoder_gives_no_listing_and_the_cache_decodes_once() {
        assert_eq!(listing_of(&Panics, &[1, 2]), None);
        let mut ls = Listings::new(Some(Arc::new(Pairs)));
        let a = ls.listing(&[1, 0]).unwrap();
        let b = ls.listing(&[1, 0]).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(Listings::new(None).listing(&[1, 0]), None);
    }
}
