//! `pcprof html`: writes the self-contained HTML report of a profile
//! ([`pcprof::analysis::html`]).
//!
//! - Output defaults to `FILE.html` beside the input; an existing file is
//!   replaced (the report is derived data), and the command says so.
//! - Written as [`pcprof::analysis::output`] describes: a regular file
//!   through a temporary file and a rename, so a failure never leaves a
//!   half-written page; a symlink's target; a FIFO or device straight into;
//!   never over the input.
//! - A truncated or corrupt input: the page shows its complete records, then
//!   the read error is the command's one-line error (non-zero exit).
//! - Several files: merged on the fly, one page (`-o` required); a file
//!   cut short is named with its offset on stderr, and the exit status is
//!   [`super::EXIT_INPUT_FAILED`].

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use pcprof::analysis::Profile;
use pcprof::analysis::html::{HotSequence, HtmlOptions, write_report};
use pcprof::analysis::sequences::{SequenceOptions, mine};
use pcprof::analysis::text::counted;
use pcprof::disasm::DecoderChoice;

use super::CliResult;

/// Arguments of `pcprof html`.
#[derive(Debug, clap::Args)]
#[command(after_help = super::SUITE_EXIT_HELP)]
pub struct HtmlArgs {
    /// The profile file (native or Pulley format); several are merged on
    /// the fly into one page.
    #[arg(value_name = "FILE", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    /// Where to write the page [default: FILE.html beside the input;
    /// required with several files].
    #[arg(short, long, value_name = "OUT.html")]
    output: Option<PathBuf>,
    /// Keep only the samples of this interpreter.
    #[arg(long, value_name = "ID")]
    interp: Option<u32>,
    /// Decoder: auto (the listing recorded in the file, else Pulley, else
    /// hex), pulley or hex.
    #[arg(long, default_value = "auto")]
    decoder: DecoderChoice,
    /// The Wasmtime version whose Pulley opcode table decodes the bytecode
    /// (a major version, 31 to 51), or auto: detected from the samples.
    #[arg(long, value_name = "VERSION", default_value = "auto")]
    pulley_version: super::PulleyVersion,
    /// How many hot sequences to show.
    #[arg(long, value_name = "N", default_value_t = 20)]
    sequences: usize,
    /// How many of the hottest functions get their disassembly.
    #[arg(long, value_name = "N", default_value_t = 40)]
    functions: usize,
    /// Page title [default: the file's name].
    #[arg(long)]
    title: Option<String>,
    /// Flame graph (profiles with call stacks): frames under this share of
    /// all samples (%) are not drawn.
    #[arg(long, value_name = "PCT", default_value_t = 0.1, value_parser = super::report::parse_percent)]
    flame_threshold: f64,
    /// Flame graph: most frames drawn (the hottest kept; at least 1).
    #[arg(long, value_name = "N", default_value_t = 3000, value_parser = super::count_in(1, usize::MAX))]
    flame_frames: usize,
}

/// Runs `pcprof html`.
pub fn run(args: HtmlArgs) -> CliResult {
    let (profile, suite) = match args.files.as_slice() {
        [file] => (super::load_filtered(file, args.interp)?, None),
        files => {
            let Some(output) = &args.output else {
                return Err("several files make one page: name it with -o".into());
            };
            let inputs: Vec<&std::path::Path> = files.iter().map(|f| f.as_path()).collect();
            pcprof::analysis::output::refuse_inputs(output, &inputs)?;
            let suite = super::load_suite_filtered(files, args.interp)?;
            (suite.profile, Some(suite.merge))
        }
    };
    let output = args.output.clone().unwrap_or_else(|| {
        let mut name = args.files[0].clone().into_os_string();
        name.push(".html");
        PathBuf::from(name)
    });
    let (decoder, _) = args.pulley_version.choose(&profile, args.decoder);
    let (sequences, sequences_note) = hot_sequences(&profile, &decoder, args.sequences);
    let options = HtmlOptions {
        title: args.title,
        decoder,
        max_disassembled: args.functions,
        sequences,
        sequences_note,
        flame_min_share: args.flame_threshold,
        flame_max_frames: args.flame_frames,
        ..HtmlOptions::default()
    };
    // A FIFO, a device or /dev/stdout is written into, not replaced.
    let existed = pcprof::analysis::output::would_replace(&output);
    write_report(&profile, &options, &output)?;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "{} {} ({}, {})",
        if existed { "replaced" } else { "wrote" },
        output.display(),
        counted(profile.total_samples, "sample"),
        counted(profile.functions.len() as u64, "function")
    );
    if let Some(report) = suite {
        return Ok(super::suite_exit(&report));
    }
    if let Some(e) = profile.read_error {
        return Err(format!(
            "{e}; {} holds only the complete records before it",
            output.display()
        )
        .into());
    }
    Ok(ExitCode::SUCCESS)
}

/// The hot sequences shown on the page, mined as `pcprof sequences` does
/// (default lengths), and a note when there are none.
fn hot_sequences(
    profile: &Profile,
    decoder: &DecoderChoice,
    top: usize,
) -> (Vec<HotSequence>, Option<String>) {
    let mined = mine(
        profile,
        &SequenceOptions {
            top: Some(top),
            decoder: decoder.clone(),
            ..SequenceOptions::default()
        },
    );
    let rows: Vec<HotSequence> = mined
        .candidates
        .iter()
        .map(|c| HotSequence {
            opcodes: c.opcodes.clone(),
            samples: c.samples,
            sites: c.sites as u64,
            example: Some(format!("{}+{:#x}", c.top_site.function, c.top_site.offset)),
        })
        .collect();
    let note = rows.is_empty().then(|| {
        if mined.skipped_functions.is_empty() {
            "No sampled instruction sequence found.".to_string()
        } else {
            format!(
                "No sampled instruction sequence found ({} functions could not be decoded).",
                mined.skipped_functions.len()
            )
        }
    });
    (rows, note)
}
