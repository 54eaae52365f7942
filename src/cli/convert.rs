//! `pcprof convert`: exports a profile to another tool's format or re-encodes
//! it ([`pcprof::analysis::convert`]).
//!
//! - The formats, their help and `--to`'s errors come from the library's
//!   table ([`pcprof::analysis::convert::EXPORTERS`]): nothing to edit here
//!   for a new format.
//! - `-o` is required: exports are not meant to land somewhere implicit.
//!   It never names the input (refused); a symlink's target, a FIFO or a
//!   device are written as [`pcprof::analysis::output`] describes.
//! - What the target cannot carry is noted on stderr.
//! - A truncated or corrupt input: the output holds its complete records,
//!   then the read error is the command's one-line error (non-zero exit).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use pcprof::analysis::convert::{ConvertOptions, ExportFormat, Granularity, convert};
use pcprof::analysis::text::counted;

use pcprof::disasm::DecoderChoice;

use super::CliResult;

/// The `--to` parser: the names and help of [`ExportFormat::ALL`], so a
/// format added to the library's table shows up here untouched.
fn format_parser() -> impl TypedValueParser<Value = ExportFormat> {
    PossibleValuesParser::new(
        ExportFormat::ALL.map(|f| PossibleValue::new(f.name()).help(f.exporter().description)),
    )
    // Only listed names get here, and each parses.
    .try_map(|name| name.parse::<ExportFormat>())
}

/// The command's one-line help, listing the formats.
pub fn about() -> String {
    let names: Vec<&str> = ExportFormat::ALL.iter().map(|f| f.name()).collect();
    format!("Convert a profile to another format ({})", names.join(", "))
}

/// Arguments of `pcprof convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// The profile file (native or Pulley format).
    file: PathBuf,
    /// The format to write.
    #[arg(long = "to", value_name = "FORMAT", value_parser = format_parser())]
    to: ExportFormat,
    /// The file to write (replaced if it exists; a symlink's target, a FIFO
    /// or a device is written into).
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// Keep only the samples of this interpreter.
    #[arg(long, value_name = "ID")]
    interp: Option<u32>,
    /// Decoder naming instruction frames: auto (the listing recorded in the
    /// file, else Pulley, else hex), pulley or hex.
    #[arg(long, default_value = "auto")]
    decoder: DecoderChoice,
    /// Time between two samples of a Pulley file, which records no times, in
    /// nanoseconds.
    #[arg(long, value_name = "NS", default_value_t = 1_000_000)]
    pulley_interval_ns: u64,
    /// pprof: what a sample's leaf names, `instruction` (an inner frame
    /// `func+0x1c xadd64` under its function) or `function`.
    #[arg(long, value_name = "LEVEL", default_value = "instruction")]
    granularity: Granularity,
}

/// Runs `pcprof convert`.
pub fn run(args: ConvertArgs) -> CliResult {
    let format = args.to;
    let options = ConvertOptions {
        interp: args.interp,
        decoder: args.decoder,
        pulley_interval_ns: args.pulley_interval_ns,
        granularity: args.granularity,
    };
    let report = convert(&args.file, &args.output, format, &options)?;
    let mut err = std::io::stderr().lock();
    for note in &report.notes {
        let _ = writeln!(err, "note: {note}");
    }
    let _ = writeln!(
        err,
        "wrote {} ({format}: {}, {}, {} unresolved)",
        args.output.display(),
        counted(report.samples, "sample"),
        counted(report.functions, "function"),
        report.unresolved
    );
    if let Some(e) = report.read_error {
        return Err(format!(
            "{e}; {} holds only the complete records before it",
            args.output.display()
        )
        .into());
    }
    Ok(ExitCode::SUCCESS)
}
