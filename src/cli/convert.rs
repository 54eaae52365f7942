//! `pcprof convert` (not implemented yet).

use std::path::PathBuf;
use std::process::ExitCode;

use super::CliResult;

/// Arguments of `pcprof convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// The profile file.
    file: PathBuf,
}

/// Runs `pcprof convert`.
pub fn run(args: ConvertArgs) -> CliResult {
    Err(format!("pcprof convert is not implemented yet ({})", args.file.display()).into())
}

#[allow(dead_code)]
fn _unused() -> ExitCode {
    ExitCode::SUCCESS
}
