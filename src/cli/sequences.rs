//! `pcprof sequences`: hot instruction sequences, ranked as
//! macro-instruction candidates (see [`pcprof::analysis::sequences`]).
//!
//! - Loads the file in one streaming pass, mines, prints a table.
//! - A truncated or corrupt file: the table of its complete records, then
//!   the read error as the command's one-line error (non-zero exit).
//! - Several files: each mined on its own, candidates combined by opcode
//!   sequence and ranked by total share, with the number of programs each
//!   occurs in ([`pcprof::analysis::suite::mine_suite`]); a file that is
//!   cut short is named with its offset on stderr, the others are mined,
//!   and the exit status is [`super::EXIT_INPUT_FAILED`].

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use pcprof::analysis::merge::MergeInput;
use pcprof::analysis::sequences::{SequenceOptions, mine, write_sequences};
use pcprof::analysis::suite::{mine_suite, suite_name, write_suite_sequences};
use pcprof::disasm::DecoderChoice;

use super::CliResult;

/// Arguments of `pcprof sequences`.
#[derive(Debug, clap::Args)]
#[command(after_help = super::SUITE_EXIT_HELP)]
pub struct SequencesArgs {
    /// The profile file (native or Pulley format); several are a suite of
    /// programs, mined each on its own and ranked together.
    #[arg(value_name = "FILE", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
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
    /// Only the samples of this interpreter id (one file only).
    #[arg(long)]
    interp: Option<u32>,
    /// Decoder: auto (the listing recorded in the file, else Pulley;
    /// functions neither can decode are skipped) or pulley. Not hex: sequences need a decoder that knows where
    /// instructions start.
    #[arg(long, default_value = "auto", value_parser = parse_sequence_decoder)]
    decoder: DecoderChoice,
    /// The Wasmtime version whose Pulley opcode table decodes the bytecode
    /// (a major version, 31 to 51), or auto: detected from the samples.
    #[arg(long, value_name = "VERSION", default_value = "auto")]
    pulley_version: super::PulleyVersion,
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
    let options = SequenceOptions {
        min_len,
        max_len,
        top: Some(args.top),
        decoder: args.decoder,
    };
    if args.files.len() > 1 {
        if args.interp.is_some() {
            return Err("--interp applies to one file (interpreter ids are per file)".into());
        }
        return run_suite(&args.files, &options);
    }
    let profile = super::load_filtered(&args.files[0], args.interp)?;
    let mut options = options;
    options.decoder = args.pulley_version.choose(&profile, options.decoder).0;
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

/// `sequences` over several files: each loaded and mined on its own.
fn run_suite(files: &[PathBuf], options: &SequenceOptions) -> CliResult {
    let inputs = MergeInput::from_paths(files);
    let mut loaded = Vec::new();
    let mut failures = Vec::new();
    for input in &inputs {
        match super::load_profile(&input.path, &pcprof::analysis::LoadOptions::default()) {
            Ok(p) => {
                if let Some(e) = &p.read_error {
                    failures.push(e.clone());
                }
                loaded.push((input.origin.as_str(), p));
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    let programs: Vec<(&str, &pcprof::analysis::Profile)> =
        loaded.iter().map(|(o, p)| (*o, p)).collect();
    let seqs = mine_suite(&programs, options);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    write_suite_sequences(&mut out, &suite_name(&inputs), &seqs)?;
    out.flush()?;
    drop(out);
    for f in &failures {
        eprintln!("pcprof: error: {f}");
    }
    if failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(super::EXIT_INPUT_FAILED))
    }
}
