//! `pcprof diff`: the change in share per function and per instruction
//! between two profiles (see [`pcprof::analysis::diff`]), as text on stdout
//! and optionally as an HTML page.
//!
//! - Either file truncated or corrupt: the diff of their complete records,
//!   then the read error as the command's one-line error (non-zero exit).
//! - `--html` never names either input (refused before reading); it is
//!   written as [`pcprof::analysis::output`] describes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use pcprof::analysis::LoadOptions;
use pcprof::analysis::convert::ConvertError;
use pcprof::analysis::diff::{DiffOptions, diff, write_html, write_text};
use pcprof::analysis::output::{refuse_inputs, write_output};
use pcprof::disasm::DecoderChoice;

use super::CliResult;

/// Arguments of `pcprof diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The profile before the change.
    before: PathBuf,
    /// The profile after the change.
    after: PathBuf,
    /// Show at most this many rows per table.
    #[arg(long, default_value_t = 30)]
    top: usize,
    /// Also write the diff as a self-contained HTML page here.
    #[arg(long, value_name = "OUT.html")]
    html: Option<PathBuf>,
    /// Decoder: auto (the listing recorded in the file, else Pulley, else
    /// hex), pulley or hex.
    #[arg(long, default_value = "auto")]
    decoder: DecoderChoice,
}

/// Runs `pcprof diff`.
pub fn run(args: DiffArgs) -> CliResult {
    let inputs = [args.before.as_path(), args.after.as_path()];
    if let Some(path) = &args.html {
        refuse_inputs(path, &inputs)?;
    }
    let load = LoadOptions::default();
    let before = super::load_profile(&args.before, &load)?;
    let after = super::load_profile(&args.after, &load)?;
    let options = DiffOptions {
        decoder: args.decoder,
        ..DiffOptions::default()
    };
    let d = diff(&before, &after, &options);
    if let Some(path) = &args.html {
        write_output(path, &inputs, |w| {
            write_html(w, &d, Some(args.top)).map_err(|source| ConvertError::Io {
                path: path.clone(),
                source,
            })
        })?;
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    write_text(&mut out, &d, Some(args.top))?;
    if let Some(path) = &args.html {
        writeln!(out, "\nHTML: {}", path.display())?;
    }
    out.flush()?;
    if let Some(e) = before.read_error.or(after.read_error) {
        return Err(e.into());
    }
    Ok(ExitCode::SUCCESS)
}
