//! `pcprof html` (not implemented yet).

use std::path::PathBuf;
use std::process::ExitCode;

use super::CliResult;

/// Arguments of `pcprof html`.
#[derive(Debug, clap::Args)]
pub struct HtmlArgs {
    /// The profile file.
    file: PathBuf,
}

/// Runs `pcprof html`.
pub fn run(args: HtmlArgs) -> CliResult {
    Err(format!("pcprof html is not implemented yet ({})", args.file.display()).into())
}

#[allow(dead_code)]
fn _unused() -> ExitCode {
    ExitCode::SUCCESS
}
