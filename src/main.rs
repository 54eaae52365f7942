//! The `pcprof` command: records the bundled demo (the default) and
//! analyses profiles.
//!
//! - `pcprof` / `pcprof demo`: profile real Pulley bytecode on several
//!   threads, write the file, print its report.
//! - `pcprof report|html|sequences|convert|diff`: analysis of native and
//!   Pulley files; each is also a library function in `pcprof::analysis`.
//! - Errors end the command with one line on stderr and a non-zero exit.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_tracing();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pcprof: error: {e}");
            ExitCode::FAILURE
        }
    }
}
