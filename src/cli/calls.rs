//! `pcprof calls`: the callers and callees of one function of a profile
//! with call stacks (see [`pcprof::analysis::calltree`]).
//!
//! - The function is named exactly, or by a part of its name that only
//!   one name contains; an unknown or ambiguous name is the command's
//!   error, naming the candidates.
//! - A truncated or corrupt file: the figures of its complete records,
//!   then the read error as the command's one-line error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use pcprof::analysis::calltree::{find_function, write_calls};

use super::CliResult;

/// Arguments of `pcprof calls`.
#[derive(Debug, clap::Args)]
pub struct CallsArgs {
    /// The profile file (native format with call stacks; without them,
    /// only the function's own share is shown).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The function: its name, or a part of it that only one name
    /// contains (every function of that name counts as one).
    #[arg(value_name = "FUNCTION")]
    function: String,
    /// Only the samples of this interpreter id.
    #[arg(long)]
    interp: Option<u32>,
}

/// Runs `pcprof calls`.
pub fn run(args: CallsArgs) -> CliResult {
    let profile = super::load_filtered(&args.file, args.interp)?;
    let of = find_function(&profile, &args.function)
        .map_err(|e| format!("{}: {e}", args.file.display()))?;
    let name = profile.functions[of[0]].name.clone();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    write_calls(&mut out, &profile, &of, &name)?;
    out.flush()?;
    if let Some(e) = &profile.read_error {
        return Err(e.clone().into());
    }
    Ok(ExitCode::SUCCESS)
}
