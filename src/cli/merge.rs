//! `pcprof merge`: several profiles into one native file
//! ([`pcprof::analysis::merge`]).
//!
//! - `-o` is required and never names an input (refused before reading);
//!   it is written as [`pcprof::analysis::output`] describes.
//! - Each input's figures go to stderr, one line each.
//! - An input that is corrupt or cut short: its complete records are
//!   merged, the others too, and the command ends with one stderr line per
//!   such file (naming it and the byte offset) and exit status
//!   [`super::EXIT_INPUT_FAILED`].

use std::io::Write as _;
use std::path::PathBuf;

use pcprof::analysis::merge::{MergeInput, MergeOptions, merge};
use pcprof::analysis::text::counted;

use super::CliResult;

/// Arguments of `pcprof merge`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 when every input was read whole; 3 when one or more \
                        inputs are corrupt, cut short or unreadable (their complete records \
                        and the other inputs are merged; one line on stderr names each such \
                        file and the byte offset); 1 for any other error."
)]
pub struct MergeArgs {
    /// The profiles to merge (native or Pulley format), in order: their
    /// runs follow one another in the output's time.
    #[arg(value_name = "FILE", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    /// The native file to write (replaced if it exists; never an input).
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// Time between two samples of a Pulley file, which records no times, in
    /// nanoseconds.
    #[arg(long, value_name = "NS", default_value_t = 1_000_000)]
    pulley_interval_ns: u64,
}

/// Runs `pcprof merge`.
pub fn run(args: MergeArgs) -> CliResult {
    let inputs = MergeInput::from_paths(&args.files);
    let options = MergeOptions {
        pulley_interval_ns: args.pulley_interval_ns,
    };
    let report = merge(&inputs, &args.output, &options)?;
    let mut err = std::io::stderr().lock();
    for s in &report.sources {
        let _ = writeln!(
            err,
            "  {}: {}, {} ({} new), {}",
            s.origin,
            counted(s.samples, "sample"),
            counted(s.functions, "function"),
            s.new_functions,
            counted(s.interpreters, "interpreter"),
        );
    }
    let _ = writeln!(
        err,
        "wrote {} (native: {} from {}, {}, {}, {} unresolved)",
        args.output.display(),
        counted(report.samples, "sample"),
        counted(report.sources.len() as u64, "file"),
        counted(report.functions, "function"),
        counted(report.interpreters, "interpreter"),
        report.unresolved
    );
    drop(err);
    Ok(super::suite_exit(&report))
}
