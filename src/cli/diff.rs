//! `pcprof diff`: the change in share per function and per instruction
//! between two profiles (see [`pcprof::analysis::diff`]), as text on stdout
//! and optionally as an HTML page.
//!
//! - Either file truncated or corrupt: the diff of their complete records,
//!   then the read error as the command's one-line error (non-zero exit).
//! - `--html` never names either input (refused before reading); it is
//!   written as [`pcprof::analysis::output`] describes.
//! - Several files a side: `diff A1 A2 -- B1 B2` (the files before `--`
//!   are the "before" side, merged on the fly; those after it the "after"
//!   side). `diff A B` is unchanged. A file cut short is named with its
//!   offset on stderr, and the exit status is [`super::EXIT_INPUT_FAILED`].

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
#[command(after_help = super::SUITE_EXIT_HELP)]
pub struct DiffArgs {
    /// The profile before the change, then the one after (`A B`); or, with
    /// `--`, every file of the "before" side (`A1 A2 -- B1 B2`).
    #[arg(value_name = "FILE", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    /// The files of the "after" side, after `--` (merged on the fly).
    #[arg(last = true, value_name = "AFTER")]
    after: Vec<PathBuf>,
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
    /// The Wasmtime version whose Pulley opcode table decodes the bytecode
    /// (a major version, 31 to 51), or auto: detected from the samples (of
    /// the first profile).
    #[arg(long, value_name = "VERSION", default_value = "auto")]
    pulley_version: super::PulleyVersion,
}

/// Runs `pcprof diff`.
pub fn run(args: DiffArgs) -> CliResult {
    if !args.after.is_empty() {
        return run_suites(&args);
    }
    let [before, after] = args.files.as_slice() else {
        return Err(format!(
            "diff takes two files (before, after), or several a side: \
             `diff A1 A2 -- B1 B2`; got {}",
            args.files.len()
        )
        .into());
    };
    let inputs = [before.as_path(), after.as_path()];
    if let Some(path) = &args.html {
        refuse_inputs(path, &inputs)?;
    }
    let load = LoadOptions::default();
    let before = super::load_profile(before, &load)?;
    let after = super::load_profile(after, &load)?;
    let options = DiffOptions {
        decoder: args.pulley_version.choose(&before, args.decoder.clone()).0,
        ..DiffOptions::default()
    };
    let d = diff(&before, &after, &options);
    write_diff(&args, &inputs, &d)?;
    if let Some(e) = before.read_error.or(after.read_error) {
        return Err(e.into());
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the diff as text, and as HTML when asked.
fn write_diff(
    args: &DiffArgs,
    inputs: &[&std::path::Path],
    d: &pcprof::analysis::diff::ProfileDiff,
) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(path) = &args.html {
        write_output(path, inputs, |w| {
            write_html(w, d, Some(args.top)).map_err(|source| ConvertError::Io {
                path: path.clone(),
                source,
            })
        })?;
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    write_text(&mut out, d, Some(args.top))?;
    if let Some(path) = &args.html {
        writeln!(out, "\nHTML: {}", path.display())?;
    }
    out.flush()?;
    Ok(())
}

/// `diff A1 A2 -- B1 B2`: each side merged on the fly, then compared.
fn run_suites(args: &DiffArgs) -> CliResult {
    let inputs: Vec<&std::path::Path> = args
        .files
        .iter()
        .chain(&args.after)
        .map(|p| p.as_path())
        .collect();
    if let Some(path) = &args.html {
        refuse_inputs(path, &inputs)?;
    }
    let before = super::load_suite_filtered(&args.files, None)?;
    let after = super::load_suite_filtered(&args.after, None)?;
    let options = DiffOptions {
        decoder: args
            .pulley_version
            .choose(&before.profile, args.decoder.clone())
            .0,
        ..DiffOptions::default()
    };
    let d = diff(&before.profile, &after.profile, &options);
    write_diff(args, &inputs, &d)?;
    let before_exit = super::suite_exit(&before.merge);
    let after_exit = super::suite_exit(&after.merge);
    Ok(if before.merge.all_read() {
        after_exit
    } else {
        before_exit
    })
}
