//! The `pcprof` command: records the bundled demo (the default) and
//! analyses profiles.
//!
//! - `pcprof` / `pcprof demo`: profile real Pulley bytecode on several
//!   threads, write the file, print its report.
//! - `pcprof report|html|sequences|convert|diff|merge`: analysis of native
//!   and Pulley files, several at once as a suite (exit status 3 when one
//!   of them could not be read whole); each is also a library function in
//!   `pcprof::analysis`.
//! - Errors end the command with one line on stderr and a non-zero exit;
//!   a reader that closed the pipe (`pcprof report F | head`) ends it quietly,
//!   as it does for `cat` or `rg`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_tracing();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) if closed_pipe(e.as_ref()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pcprof: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `e`, or an error beneath it, is standard output's reader gone.
fn closed_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        cause = c.source();
    }
    false
}
