//! `pcprof demo` (placeholder).

use super::CliResult;

/// Arguments of `pcprof demo`.
#[derive(Debug, Default, clap::Args)]
pub struct DemoArgs {}

/// Runs the demo.
pub fn run(_args: DemoArgs) -> CliResult {
    Err("demo not implemented yet".into())
}
