//! `pcprof push`: sends an existing profile to Grafana Pyroscope as one
//! pprof profile ([`pcprof::push`]).
//!
//! - The profile is what `convert --to pprof` writes (same options).
//! - Credentials come from the environment only (`PCPROF_PUSH_TOKEN`, or
//!   `PCPROF_PUSH_USER` and `PCPROF_PUSH_PASSWORD`), never from the command
//!   line, where `ps` and shell histories would show them.
//! - A truncated or corrupt input: its complete records are pushed, then
//!   the read error is the command's one-line error (non-zero exit), as for
//!   `convert`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use pcprof::analysis::convert::{ConvertOptions, Granularity};
use pcprof::analysis::text::counted;
use pcprof::push::{PushConfig, Pusher, push_file};

use super::CliResult;

/// Arguments of `pcprof push`.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The profile file (native or Pulley format).
    file: PathBuf,
    /// The Pyroscope server (`http://HOST:4040`; https with the `push-tls`
    /// feature).
    #[arg(long)]
    url: String,
    /// The `service_name` label.
    #[arg(long, value_name = "NAME")]
    service: String,
    /// A static label of the profile, `KEY=VALUE` (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Keep only the samples of this interpreter.
    #[arg(long, value_name = "ID")]
    interp: Option<u32>,
    /// What a sample's leaf names: `instruction` or `function`.
    #[arg(long, value_name = "LEVEL", default_value = "instruction")]
    granularity: Granularity,
    /// Time one attempt may take, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    timeout: f64,
    /// Attempts after the first when the server is unreachable, slow or
    /// answers 5xx/429 (each waits twice as long as the one before).
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Push one profile per this many seconds of recorded time (a native
    /// file's), each dated to its interval, rather than one for the whole
    /// file.
    #[arg(long, value_name = "SECONDS")]
    interval: Option<f64>,
    /// Pyroscope tenant (`X-Scope-OrgID`), in multi-tenant mode.
    #[arg(long)]
    tenant: Option<String>,
    /// Send the environment's credentials over plain http.
    #[arg(long)]
    allow_insecure_credentials: bool,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?}: expected KEY=VALUE"))
}

/// Runs `pcprof push`.
pub fn run(args: PushArgs) -> CliResult {
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        return Err(format!(
            "--timeout {}: expected a positive number of seconds",
            args.timeout
        )
        .into());
    }
    let config = PushConfig {
        labels: args.labels,
        timeout: Duration::from_secs_f64(args.timeout),
        retries: args.retries,
        tenant: args.tenant,
        allow_insecure_credentials: args.allow_insecure_credentials,
        ..PushConfig::new(args.url, args.service)
    };
    // The config is checked before the file is read.
    let pusher = Pusher::new(config)?;
    let options = ConvertOptions {
        interp: args.interp,
        granularity: args.granularity,
        ..ConvertOptions::default()
    };
    let interval = match args.interval {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => {
            return Err(format!("--interval {s}: expected a positive number of seconds").into());
        }
    };
    let pushed = push_file(&pusher, &args.file, &options, interval)?;
    let report = pushed.report;
    let mut err = std::io::stderr().lock();
    for note in &report.notes {
        let _ = writeln!(err, "note: {note}");
    }
    let _ = writeln!(
        err,
        "pushed {} ({}, {}, {} of pprof) to {} in {}",
        args.file.display(),
        counted(report.samples, "sample"),
        counted(pushed.profiles, "profile"),
        counted(pushed.bytes, "byte"),
        pusher.endpoint(),
        counted(pushed.attempts, "attempt"),
    );
    if let Some(e) = report.read_error {
        return Err(format!("{e}; only the complete records before it were pushed").into());
    }
    Ok(ExitCode::SUCCESS)
}
