//! Command-line definitions and shared helpers of the `pcprof` binary.

pub mod calls;
pub mod convert;
pub mod demo;
pub mod diff;
pub mod html;
pub mod interrupt;
pub mod merge;
pub mod push;
pub mod report;
pub mod sequences;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use pcprof::analysis::merge::{MergeInput, MergeOptions, MergeReport};
use pcprof::analysis::suite::{Suite, load_suite};
use pcprof::analysis::{LoadOptions, Profile};

/// Result of a subcommand: an exit code, or an error printed as one line.
pub type CliResult = Result<ExitCode, Box<dyn std::error::Error>>;

/// pcprof: a sampling profiler for bytecode interpreters.
///
/// Without a subcommand, records the bundled Pulley demo and prints its
/// report (`pcprof demo`).
#[derive(Debug, Parser)]
#[command(
    name = "pcprof",
    version,
    about = "pcprof: a sampling profiler for bytecode interpreters. Without a command, records the \
             bundled Pulley demo and prints its report.",
    after_help = "Typical use:\n  pcprof                           record the demo (./pulley-<pid>.data) and report it\n  \
                  pcprof report FILE               hot functions and instructions, with disassembly\n  \
                  pcprof report --tree FILE        the call tree (profiles with call stacks)\n  \
                  pcprof calls FILE FUNCTION       a function's callers and callees\n  \
                  pcprof sequences FILE            hot instruction sequences (macro-instruction candidates)\n  \
                  pcprof html FILE                 an HTML report to open in a browser\n  \
                  pcprof merge A B... -o OUT       one profile from many runs (report A B... merges on the fly)\n\n\
                  Logging: RUST_LOG=pcprof_actors=trace shows every actor transition."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Profile the bundled Pulley workload and print its report (default).
    Demo(demo::DemoArgs),
    /// Hot functions and instructions of a profile, with disassembly.
    Report(report::ReportArgs),
    /// The callers and callees of one function (profiles with call stacks).
    Calls(calls::CallsArgs),
    /// A self-contained HTML report of a profile.
    Html(html::HtmlArgs),
    /// Hot instruction sequences: candidates for macro-instructions.
    Sequences(sequences::SequencesArgs),
    // The help lists the library's formats (from its table).
    #[command(about = convert::about())]
    Convert(convert::ConvertArgs),
    /// Compare two profiles: change in share per function and instruction.
    Diff(diff::DiffArgs),
    /// Merge several profiles (runs, processes) into one native profile.
    Merge(merge::MergeArgs),
    /// Send a profile to Grafana Pyroscope as pprof.
    Push(push::PushArgs),
}

/// `--pulley-version`: a Wasmtime major version, or `auto`.
#[derive(Debug, Clone, Copy)]
pub struct PulleyVersion(Option<pcprof::pulley::PulleyTable>);

impl std::str::FromStr for PulleyVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(PulleyVersion(None));
        }
        s.parse()
            .map(|t| PulleyVersion(Some(t)))
            .map_err(|e| format!("{e}"))
    }
}

impl PulleyVersion {
    /// The decoder for `profile`, with the table asked for or detected, and
    /// the report's line on it.
    pub fn choose(
        self,
        profile: &Profile,
        decoder: pcprof::disasm::DecoderChoice,
    ) -> (pcprof::disasm::DecoderChoice, Option<String>) {
        pcprof::analysis::tables::with_pulley_table(profile, decoder, self.0)
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> CliResult {
    match cli.command {
        None => demo::run(demo::DemoArgs::default()),
        Some(Command::Demo(a)) => demo::run(a),
        Some(Command::Report(a)) => report::run(a),
        Some(Command::Calls(a)) => calls::run(a),
        Some(Command::Html(a)) => html::run(a),
        Some(Command::Sequences(a)) => sequences::run(a),
        Some(Command::Convert(a)) => convert::run(a),
        Some(Command::Diff(a)) => diff::run(a),
        Some(Command::Merge(a)) => merge::run(a),
        Some(Command::Push(a)) => push::run(a),
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings); each line
/// leads with the event's dotted name (`registry.register_interpreter`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .event_format(Named(tracing_subscriber::fmt::format()))
        .try_init();
}

/// Prefixes the default format with the event's name, which carries pcprof's
/// actor transitions (the default format shows only target and fields).
struct Named<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for Named<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let name = event.metadata().name();
        // Unnamed events get tracing's generated `event file:line` name.
        if !name.starts_with("event ") {
            write!(writer, "{name} ")?;
        }
        self.0.format_event(ctx, writer, event)
    }
}

/// Whether to colour stdout: a terminal, and `NO_COLOR` unset or empty.
pub fn stdout_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Loads a profile, with a progress bar on stderr when it is a terminal
/// and the file is large enough to take a moment.
pub fn load_profile(
    path: &Path,
    options: &LoadOptions,
) -> Result<Profile, Box<dyn std::error::Error>> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    let bar = (std::io::stderr().is_terminal() && len > 16 << 20).then(|| {
        let bar = indicatif::ProgressBar::new(len);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} {wide_bar} {bytes}/{total_bytes} ({eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(format!("reading {}", path.display()));
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let profile = pcprof::analysis::load(path, options, |n| {
        if let Some(b) = &bar {
            b.set_position(n);
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(profile?)
}

/// Loads a profile keeping only interpreter `interp`'s samples (all when
/// `None`); an id the profile does not have is an error, not an empty report,
/// and so is any id for a Pulley-format file, which has no interpreter ids.
pub fn load_filtered(
    path: &Path,
    interp: Option<u32>,
) -> Result<Profile, Box<dyn std::error::Error>> {
    let options = LoadOptions {
        interp,
        ..LoadOptions::default()
    };
    let profile = load_profile(path, &options)?;
    if interp.is_some() && profile.format == pcprof::format::Format::Pulley {
        return Err(format!(
            "{}: a Pulley-format file has no interpreter ids, so --interp does not apply; \
             leave it out",
            path.display()
        )
        .into());
    }
    if let Some(id) = interp
        && !profile.interpreters.iter().any(|i| i.id == id)
    {
        return Err(format!("{}: no interpreter {id} in this profile", path.display()).into());
    }
    Ok(profile)
}

/// Exit status of `merge`, and of `report`, `html`, `sequences` and `diff`
/// given several files, when one or more inputs could not be read whole
/// (the others, and every complete record before the fault, were
/// reported).
pub const EXIT_INPUT_FAILED: u8 = 3;

/// The `--help` note of the commands that take several files.
pub const SUITE_EXIT_HELP: &str = "Exit status with several files: 0 when every file was read whole; 3 when one or \
    more are corrupt, cut short or unreadable (the others and every complete record are still \
    reported; one line on stderr names each such file and the byte offset); 1 for any other \
    error.";

/// Prints one stderr line per input of `report` that was not read whole
/// (naming the file and byte offset); the exit status to end with:
/// [`EXIT_INPUT_FAILED`] if there was one, success otherwise.
pub fn suite_exit(report: &MergeReport) -> ExitCode {
    let mut failed = false;
    for f in report.failures() {
        failed = true;
        eprintln!("pcprof: error: {f}");
    }
    if failed {
        ExitCode::from(EXIT_INPUT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// Loads several files as one profile (merged on the fly), keeping only
/// the merged interpreter `interp`'s samples when given (the merged ids,
/// which the report lists).
pub fn load_suite_filtered(
    files: &[std::path::PathBuf],
    interp: Option<u32>,
) -> Result<Suite, Box<dyn std::error::Error>> {
    let inputs = MergeInput::from_paths(files);
    let options = LoadOptions {
        interp,
        ..LoadOptions::default()
    };
    let suite = load_suite(&inputs, &options, &MergeOptions::default())?;
    if let Some(id) = interp
        && !suite.profile.interpreters.iter().any(|i| i.id == id)
    {
        return Err(format!(
            "{}: no interpreter {id} in these profiles merged",
            suite.profile.path.display()
        )
        .into());
    }
    Ok(suite)
}

/// A clap value parser for a count in `min..=max`, whose error names the
/// bound (`must be at least 2`); clap prefixes the argument the user gave.
pub(crate) fn count_in(
    min: usize,
    max: usize,
) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    move |s| {
        let v: usize = s
            .parse()
            .map_err(|_| format!("{s:?} is not a whole number"))?;
        if v < min {
            Err(format!("must be at least {min}"))
        } else if v > max {
            Err(format!("must be at most {max}"))
        } else {
            Ok(v)
        }
    }
}
