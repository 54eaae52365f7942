//! The hex fall-back: bytecode nobody can decode, shown as bytes.
//!
//! - Lines of at most [`HexDecoder::width`] bytes, all
//!   [`InstructionKind::Plain`]: hex never ends a basic block.
//! - [`HexDecoder::listing`] also starts a line at every sampled offset, so
//!   each sample of unknown bytecode lands on a line of its own (reports);
//!   [`InstructionDecoder::decode`] is the same listing without samples.
//! - [`HexDecoder::line_at`] is the line of one sampled offset, for exports
//!   that name each sample's frame as it streams past, before the
//!   function's other samples are known.

use super::{Instruction, InstructionDecoder, InstructionKind, OffsetHits, hits_in};

/// Fall-back decoder: shows the bytes in fixed-width chunks of hex.
#[derive(Clone, Copy, Debug)]
pub struct HexDecoder {
    /// Bytes per listed line (at least 1).
    pub width: u32,
}

impl Default for HexDecoder {
    fn default() -> Self {
        HexDecoder { width: 4 }
    }
}

impl HexDecoder {
    /// Hex lines of at most `width` bytes, also starting at each offset with
    /// a sample in `hits` (may be empty).
    pub fn listing(&self, code: &[u8], hits: &OffsetHits) -> Vec<Instruction> {
        let width = self.width.max(1) as usize;
        let mut out = Vec::new();
        let mut start = 0;
        while start < code.len() {
            let mut end = (start + width).min(code.len());
            if let Some(&(next_hot, _)) = hits_in(hits, start as u32 + 1, end as u32)
                .iter()
                .find(|h| h.1 > 0)
            {
                end = next_hot as usize;
            }
            out.push(line(start as u32, &code[start..end]));
            start = end;
        }
        out
    }

    /// The line of a sample at `offset`: up to `width` bytes from it. A
    /// sampled PC is an instruction's start, so it is a frame of its own;
    /// where that instruction ends is unknown (the next sampled offset
    /// would end it in [`HexDecoder::listing`]). `None` past the code.
    pub fn line_at(&self, code: &[u8], offset: usize) -> Option<Instruction> {
        let rest = code.get(offset..).filter(|r| !r.is_empty())?;
        let bytes = &rest[..rest.len().min(self.width.max(1) as usize)];
        Some(line(u32::try_from(offset).ok()?, bytes))
    }
}

/// One hex line: `bytes`, at `offset`.
fn line(offset: u32, bytes: &[u8]) -> Instruction {
    Instruction {
        offset,
        len: bytes.len() as u32,
        opcode: "bytes".to_string(),
        text: bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" "),
        kind: InstructionKind::Plain,
    }
}

impl InstructionDecoder for HexDecoder {
    fn name(&self) -> &'static str {
        "hex"
    }

    fn decode(&self, code: &[u8]) -> Vec<Instruction> {
        self.listing(code, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_splits_at_hot_offsets() {
        let code = [1u8, 2, 3, 4, 5, 6, 7];
        let l = HexDecoder { width: 4 }.listing(&code, &[(2, 1)]);
        let offs: Vec<(u32, u32)> = l.iter().map(|i| (i.offset, i.len)).collect();
        assert_eq!(offs, vec![(0, 2), (2, 4), (6, 1)]);
        assert_eq!(l[1].text, "03 04 05 06");
    }

    #[test]
    fn a_line_at_a_sampled_offset_starts_there() {
        let code = [1u8, 2, 3, 4, 5, 6, 7];
        let h = HexDecoder { width: 4 };
        let l = h.line_at(&code, 5).unwrap();
        assert_eq!((l.offset, l.len, l.text.as_str()), (5, 2, "06 07"));
        assert_eq!(h.line_at(&code, 1).unwrap().text, "02 03 04 05");
        assert!(h.line_at(&code, 7).is_none());
        assert!(h.line_at(&code, usize::MAX).is_none());
    }

    #[test]
    fn decode_is_fixed_width() {
        let l = HexDecoder { width: 3 }.decode(&[0u8; 7]);
        let offs: Vec<(u32, u32)> = l.iter().map(|i| (i.offset, i.len)).collect();
        assert_eq!(offs, vec![(0, 3), (3, 3), (6, 1)]);
    }
}
