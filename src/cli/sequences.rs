//! `pcprof sequences` (not implemented yet).

use std::path::PathBuf;
use std::process::ExitCode;

use super::CliResult;

/// Arguments of `pcprof sequences`.
#[derive(Debug, clap::Args)]
pub struct SequencesArgs {
    /// The profile file.
    file: PathBuf,
}

/// Runs `pcprof sequences`.
pub fn run(args: SequencesArgs) -> CliResult {
    Err(format!("pcprof sequences is not implemented yet ({})", args.file.display()).into())
}

#[allow(dead_code)]
fn _unused() -> ExitCode {
    ExitCode::SUCCESS
}
