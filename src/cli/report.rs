//! `pcprof report`: hot functions and instructions of a profile, with
//! disassembly (see [`pcprof::analysis::report`]).
//!
//! - One streaming pass loads the file (progress bar on a terminal for big
//!   files), then the report is written to stdout through a buffer.
//! - A truncated or corrupt file: the report of its complete records, then
//!   the read error as the command's one-line error (non-zero exit).
//! - `--tree`: the call tree instead ([`pcprof::analysis::calltree`]).
//! - Several files: merged on the fly ([`pcprof::analysis::suite`]), the
//!   report of the merged profile, then each file's own figures; a file
//!   that is cut short is named with its offset on stderr, the others are
//!   reported, and the exit status is [`super::EXIT_INPUT_FAILED`].

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use pcprof::analysis::calltree::write_call_tree;
use pcprof::analysis::report::{ReportOptions, write_report};
use pcprof::disasm::DecoderChoice;

use super::CliResult;

/// Arguments of `pcprof report`.
#[derive(Debug, clap::Args)]
#[command(after_help = super::SUITE_EXIT_HELP)]
pub struct ReportArgs {
    /// The profile file (native or Pulley format); several are merged on
    /// the fly (as `pcprof merge` would) and reported as one.
    #[arg(value_name = "FILE", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    /// Functions under this share of all samples (%) are left out;
    /// instructions under this share of their function's samples are not
    /// annotated.
    #[arg(long, default_value_t = 0.5, value_parser = parse_percent)]
    threshold: f64,
    /// Whether to show each function's disassembly.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    instructions: bool,
    /// Show at most this many functions (at least 1).
    #[arg(long, value_parser = super::count_in(1, usize::MAX))]
    top: Option<usize>,
    /// Only the samples of this interpreter id (the report lists the ids;
    /// Pulley-format files have none; for several files, the merged ids).
    #[arg(long)]
    interp: Option<u32>,
    /// Decoder: auto (the listing recorded in the file, else Pulley, else
    /// hex), pulley or hex.
    #[arg(long, default_value = "auto")]
    decoder: DecoderChoice,
    /// The Wasmtime version whose Pulley opcode table decodes the bytecode
    /// (a major version, 31 to 51), or auto: detected from the samples.
    #[arg(long, value_name = "VERSION", default_value = "auto")]
    pulley_version: super::PulleyVersion,
    /// List every instruction: runs of unsampled instructions are not
    /// folded into one line (functions over 256 KiB still list only their
    /// sampled basic blocks).
    #[arg(long)]
    all_instructions: bool,
    /// Show the call tree instead: every call path top-down, each function
    /// with its total and self share of all samples, nodes under
    /// --threshold left out (a profile without call stacks: each function
    /// at the root).
    #[arg(long)]
    tree: bool,
    /// With --tree: show at most this many levels (at least 1).
    #[arg(long, value_name = "N", requires = "tree", value_parser = super::count_in(1, usize::MAX))]
    depth: Option<usize>,
}

/// Parses a percentage in 0..=100.
pub(crate) fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("{v} is outside 0..=100"));
    }
    Ok(v)
}

/// Runs `pcprof report`.
pub fn run(args: ReportArgs) -> CliResult {
    let mut options = ReportOptions {
        threshold: args.threshold,
        instructions: args.instructions,
        top: args.top,
        decoder: args.decoder.clone(),
        color: super::stdout_color(),
        all_instructions: args.all_instructions,
        decoder_note: None,
    };
    if args.tree {
        return run_tree(&args);
    }
    if let [file] = args.files.as_slice() {
        let profile = super::load_filtered(file, args.interp)?;
        // Without instructions nothing is decoded: no table to choose.
        if options.instructions {
            (options.decoder, options.decoder_note) =
                args.pulley_version.choose(&profile, args.decoder);
        }
        return run_one(&profile, &options);
    }
    let suite = super::load_suite_filtered(&args.files, args.interp)?;
    if options.instructions {
        (options.decoder, options.decoder_note) =
            args.pulley_version.choose(&suite.profile, args.decoder);
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    write_report(&mut out, &suite.profile, &options)?;
    pcprof::analysis::suite::write_sources(&mut out, &suite.merge)?;
    out.flush()?;
    drop(out);
    Ok(super::suite_exit(&suite.merge))
}

/// `--tree`: the call tree of one file or of several merged.
fn run_tree(args: &ReportArgs) -> CliResult {
    let depth = args.depth.unwrap_or(usize::MAX);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    if let [file] = args.files.as_slice() {
        let profile = super::load_filtered(file, args.interp)?;
        write_call_tree(&mut out, &profile, args.threshold, depth)?;
        out.flush()?;
        if let Some(e) = &profile.read_error {
            return Err(e.clone().into());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let suite = super::load_suite_filtered(&args.files, args.interp)?;
    write_call_tree(&mut out, &suite.profile, args.threshold, depth)?;
    pcprof::analysis::suite::write_sources(&mut out, &suite.merge)?;
    out.flush()?;
    drop(out);
    Ok(super::suite_exit(&suite.merge))
}

/// The report of one file, as before suites.
fn run_one(profile: &pcprof::analysis::Profile, options: &ReportOptions) -> CliResult {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    write_report(&mut out, profile, options)?;
    out.flush()?;
    if let Some(e) = &profile.read_error {
        return Err(e.clone().into());
    }
    Ok(ExitCode::SUCCESS)
}
