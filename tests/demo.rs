//! `pcprof demo` end to end: the binary records real Pulley bytecode and its
//! report names the workload's functions.

use std::process::Command;

use crate::common::TempDir;

/// The binary, with none of the caller's settings: every variable the
/// profiler reads (the tests check the defaults, e.g. randomized sampling)
/// and `RUST_LOG` (extra log lines on stderr, which tests read).
pub(crate) fn pcprof() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pcprof"));
    c.env_remove("PCPROF_OUT")
        .env_remove("PCPROF_FORMAT")
        .env_remove("PULLEY_SAMPLING_FREQ")
        .env_remove("PULLEY_SAMPLING_FLUSH_AMT")
        .env_remove("PCPROF_FLUSH_INTERVAL")
        .env_remove("PCPROF_SAMPLING")
        .env_remove("PCPROF_SPIN")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    c
}

#[test]
fn demo_records_and_reports_the_workload() {
    let dir = TempDir::new("demo");
    // No --out: the default file lands in the current directory.
    let out = pcprof()
        .args([
            "demo",
            "--seconds",
            "0.4",
            "--threads",
            "2",
            "--freq",
            "2000",
        ])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for f in ["sieve", "hash", "fill", "collatz", "fib", "dot"] {
        assert!(stdout.contains(f), "report lacks {f}:\n{stdout}");
    }
    let files: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].starts_with("pulley-") && files[0].ends_with(".data"),
        "{files:?}"
    );
    // The last lines say where the file is and what to run next.
    let tail: Vec<&str> = stdout.lines().rev().take(5).collect();
    assert!(
        tail.iter()
            .any(|l| l.starts_with("profile:") && l.contains(&files[0])),
        "{tail:?}"
    );
    assert!(tail.iter().any(|l| l.contains("pcprof report")), "{tail:?}");
    // The last line says how to record longer, on more threads, at another
    // rate, with options the demo has.
    for option in ["--seconds", "--threads", "--freq"] {
        assert!(tail[0].contains(option), "{tail:?}");
    }
    assert!(stdout.contains("sampling: randomized, 2000 Hz"), "{stdout}");
    // No colour when not on a terminal.
    assert!(!stdout.contains('\x1b'));

    // The file is complete and its summary matches the run.
    let profile =
        pcprof::analysis::load(&dir.0.join(&files[0]), &Default::default(), |_| {}).unwrap();
    assert!(profile.read_error.is_none());
    let summary = profile.summary.expect("summary");
    assert_eq!(summary.stats.samples_written, profile.total_samples);
    assert!(profile.total_samples > 0);
    assert_eq!(profile.unresolved, 0);
    assert_eq!(profile.interpreters.len(), 2);
    // Interpreter `i` is the thread the demo named `interp-{i}`.
    for i in &profile.interpreters {
        assert_eq!(i.label, Some(format!("interp-{}", i.id)));
    }
    assert_eq!(summary.stats.frequency_hz, 2000);
}

#[test]
fn demo_writes_pulley_format_on_request_and_refuses_to_overwrite() {
    let dir = TempDir::new("demo-pulley");
    let path = dir.path("d.data");
    let run = |extra: &[&str]| {
        pcprof()
            .args(["demo", "--seconds", "0.2", "--threads", "1", "--out"])
            .arg(&path)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&["--format", "pulley", "--instructions", "false"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes[0], 1, "a Pulley file starts with a function section");
    assert!(pulley_interpreter::profile::decode(&bytes).all(|e| e.is_ok()));

    // Running again must not overwrite the profile.
    let again = run(&[]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("exists already") && err.contains("d.data"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes);

    // Bad arguments are refused with a message.
    let bad = pcprof().args(["demo", "--seconds", "0"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("seconds"));
    let bad = pcprof()
        .args(["demo", "--seconds", "0.1"])
        .env("PULLEY_SAMPLING_FREQ", "fast")
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("PULLEY_SAMPLING_FREQ") && err.contains("fast"),
        "{err}"
    );
}
