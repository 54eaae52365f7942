//! `pcprof sequences`: hot instruction sequences, ranked as
//! macro-instruction candidates (see [`pcprof::analysis::sequences`]).
//!
//! - Loads the file in one streaming pass, mines, prints a table.
//! - A truncated or corrupt file: the table of its complete records, then
//!   the read error as the command's one-line error (non-zero exit).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use pcprof::analysis::sequences::{SequenceOptions, mine, write_sequences};
use pcprof::disasm::DecoderChoice;

use super::CliResult;

/// Arguments of `pcprof sequences`.
#[derive(Debug, clap::Args)]
pub struct SequencesArgs {
    /// The profile file (native or Pulley format).
    file: PathBuf,
    /// Longest sequence, in instructions (2 to 64; default 4, or --min-len
    /// when that is longer).
    #[arg(long, value_parser = super::count_in(2, MAX_LEN))]
    max_len: Option<usize>,
    /// Shortest sequence, in instructions (1 to 64; default 2).
    #[arg(long, value_parser = super::count_in(1, MAX_LEN))]
    min_len: Option<usize>,
    /// Show the best this many candidates (at least 1).
    #[arg(long, default_value_t = 20, value_parser = super::count_in(1, usize::MAX))]
    top: usize,
    /// Only the samples of this interpreter id.
    #[arg(long)]
    interp: Option<u32>,
    /// Decoder: auto (the listing recorded in the file, else Pulley;
    /// functions neither can decode are skipped) or pulley. Not hex: sequences need a decoder that knows where
    /// instructions start.
    #[arg(long, default_value = "auto", value_parser = parse_sequence_decoder)]
    decoder: DecoderChoice,
}

/// The longest sequence `--max-len` and `--min-len` accept.
const MAX_LEN: usize = 64;

/// A decoder for `sequences`: any but hex, whose bytes have no instruction
/// boundaries to mine.
fn parse_sequence_decoder(s: &str) -> Result<DecoderChoice, String> {
    match s.parse()? {
        DecoderChoice::Hex => Err(
            "the hex decoder has no instruction boundaries; sequences need \
                                   a decoder that knows instructions (auto or pulley)"
                .to_string(),
        ),
        d => Ok(d),
    }
}

/// Runs `pcprof sequences`.
pub fn run(args: SequencesArgs) -> CliResult {
    let (min_len, max_len) = match (args.min_len, args.max_len) {
        (Some(min), Some(max)) if min > max => {
            let msg = format!("--min-len {min} is above --max-len {max}");
            <super::Cli as clap::CommandFactory>::command()
                .error(clap::error::ErrorKind::ArgumentConflict, msg)
                .exit()
        }
        (min, Some(max)) => (min.unwrap_or(2).min(max), max),
        (min, None) => {
            let min = min.unwrap_or(2);
            (min, min.max(4))
        }
    };
    let profile = super::load_filtered(&args.file, args.interp)?;
    let options = SequenceOptions {
        min_len,
        max_len,
        top: Some(args.top),
        decoder: args.decoder,
    };
    let seqs = mine(&profile, &options);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    write_sequences(&mut out, &profile, &seqs)?;
    out.flush()?;
    if let Some(e) = profile.read_error {
        return Err(e.into());
    }
    Ok(ExitCode::SUCCESS)
}
