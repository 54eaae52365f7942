//! `pcprof diff` (not implemented yet).

use std::path::PathBuf;
use std::process::ExitCode;

use super::CliResult;

/// Arguments of `pcprof diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The profile file.
    file: PathBuf,
}

/// Runs `pcprof diff`.
pub fn run(args: DiffArgs) -> CliResult {
    Err(format!("pcprof diff is not implemented yet ({})", args.file.display()).into())
}

#[allow(dead_code)]
fn _unused() -> ExitCode {
    ExitCode::SUCCESS
}
