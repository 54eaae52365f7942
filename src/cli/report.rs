//! `pcprof report` (not implemented yet).

use std::path::PathBuf;
use std::process::ExitCode;

use super::CliResult;

/// Arguments of `pcprof report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The profile file.
    file: PathBuf,
}

/// Runs `pcprof report`.
pub fn run(args: ReportArgs) -> CliResult {
    Err(format!("pcprof report is not implemented yet ({})", args.file.display()).into())
}

#[allow(dead_code)]
fn _unused() -> ExitCode {
    ExitCode::SUCCESS
}
