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
    /// Longest sequence, in instructions.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    max_len: u32,
    /// Shortest sequence, in instructions.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    min_len: u32,
    /// Show the best this many candidates.
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// Only the samples of this interpreter id.
    #[arg(long)]
    interp: Option<u32>,
    /// Decoder: auto (Pulley; functions it cannot decode are skipped),
    /// pulley or hex.
    #[arg(long, default_value = "auto")]
    decoder: DecoderChoice,
}

/// Runs `pcprof sequences`.
pub fn run(args: SequencesArgs) -> CliResult {
    if args.min_len > args.max_len {
        return Err(format!(
            "--min-len {} is above --max-len {}",
            args.min_len, args.max_len
        )
        .into());
    }
    let profile = super::load_filtered(&args.file, args.interp)?;
    let options = SequenceOptions {
        min_len: args.min_len as usize,
        max_len: args.max_len as usize,
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
