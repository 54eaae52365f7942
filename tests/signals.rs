//! Ctrl-C (SIGINT) and SIGTERM during `pcprof demo`: the first stops the
//! recording cleanly (summary written, report printed, exit 130 or 143), a
//! second one exits at once.
//!
//! The tests wait for events (a line on stderr, the summary in the file),
//! never for a time; the deadline only turns a hang into a failure.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use crate::common::TempDir;
use crate::demo::pcprof;

/// Longest wait for anything: generous, only there so a hang fails.
const DEADLINE: Duration = Duration::from_secs(120);

/// Starts a long recording to `out` with stdout as given; its stderr lines
/// arrive on the returned channel.
fn start(out: &Path, stdout: Stdio) -> (Child, Receiver<String>) {
    let mut child = pcprof()
        .args(["demo", "--seconds", "600", "--threads", "1", "--out"])
        .arg(out)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pcprof");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits for a stderr line containing `want`; returns every line read.
fn wait_for_line(rx: &Receiver<String>, want: &str, seen: &mut Vec<String>) {
    let until = Instant::now() + DEADLINE;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(want);
                seen.push(line);
                if found {
                    return;
                }
            }
            Err(e) => panic!("no stderr line with {want:?} ({e}); stderr so far: {seen:#?}"),
        }
    }
}

fn kill(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).expect("pid fits");
    // SAFETY: kill has no memory effects; the child is ours and not yet
    // reaped, so its pid cannot have been reused.
    assert_eq!(
        unsafe { libc::kill(pid, signal) },
        0,
        "kill({pid}, {signal})"
    );
}

/// Waits for the child to exit (killing it at the deadline).
fn wait(child: &mut Child) -> ExitStatus {
    let until = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("pcprof did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One signal: the recording stops cleanly with the conventional status.
fn stops_cleanly_on(signal: i32, name: &str, status: i32) {
    let dir = TempDir::new(&format!("signal-{name}"));
    let out = dir.path("run.data");
    let (mut child, rx) = start(&out, Stdio::piped());
    let mut stdout = child.stdout.take().expect("stdout piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let mut seen = Vec::new();
    wait_for_line(&rx, "recording", &mut seen);
    kill(&child, signal);
    let exit = wait(&mut child);
    let stdout = reader.join().expect("stdout reader");
    seen.extend(rx.iter());
    let stderr = seen.join("\n");

    assert_eq!(exit.code(), Some(status), "{stderr}\n{stdout}");
    assert!(
        stderr.contains(&format!("interrupted by {name}")),
        "{stderr}"
    );
    // The report of what was recorded, and where it is.
    assert!(stdout.contains("recorded "), "{stdout}");
    assert!(stdout.contains("profile: "), "{stdout}");

    let profile = pcprof::analysis::load(&out, &Default::default(), |_| {}).expect("load");
    assert_eq!(profile.read_error, None);
    let summary = profile.summary.expect("the summary was written");
    assert_eq!(summary.stats.samples_written, profile.total_samples);
    assert!(
        stdout.contains(&format!("recorded {} samples", profile.total_samples)),
        "{stdout}"
    );
}

#[test]
fn sigint_stops_the_demo_cleanly_with_status_130() {
    stops_cleanly_on(libc::SIGINT, "SIGINT", 130);
}

#[test]
fn sigterm_stops_the_demo_cleanly_with_status_143() {
    stops_cleanly_on(libc::SIGTERM, "SIGTERM", 143);
}

/// A pipe whose write end is already full, so whoever writes to it blocks
/// until the read end is read.
fn full_pipe() -> (std::fs::File, OwnedFd, usize) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two descriptors, which are then owned here.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut write = std::fs::File::from(write);
    // Fill it without blocking, then make it blocking again: the flag is
    // shared with the child, whose writes must block, not fail.
    let fd = std::os::fd::AsRawFd::as_raw_fd(&write);
    let set_nonblocking = |on: bool| {
        // SAFETY: plain fcntl calls on a descriptor owned here.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            let flags = if on {
                flags | libc::O_NONBLOCK
            } else {
                flags & !libc::O_NONBLOCK
            };
            assert_eq!(libc::fcntl(fd, libc::F_SETFL, flags), 0);
        }
    };
    set_nonblocking(true);
    let mut filled = 0;
    loop {
        match std::io::Write::write(&mut write, &[b'.'; 4096]) {
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("filling the pipe: {e}"),
        }
    }
    set_nonblocking(false);
    (std::fs::File::from(read), OwnedFd::from(write), filled)
}

/// A second signal exits at once, even while the first one's clean stop
/// cannot finish. Here stdout is a full pipe, so the report (printed after
/// the summary is written) blocks: the process can end only through the
/// second signal, which is what makes this deterministic.
#[test]
fn a_second_sigint_exits_at_once() {
    let dir = TempDir::new("signal-twice");
    let out = dir.path("run.data");
    let (mut stdout, write_end, filled) = full_pipe();
    let (mut child, rx) = start(&out, Stdio::from(write_end));
    let mut seen = Vec::new();
    wait_for_line(&rx, "recording", &mut seen);
    kill(&child, libc::SIGINT);
    wait_for_line(&rx, "interrupted by SIGINT", &mut seen);
    // The clean stop wrote the summary; the report is now stuck on stdout.
    let until = Instant::now() + DEADLINE;
    loop {
        let p = pcprof::analysis::load(&out, &Default::default(), |_| {});
        if p.is_ok_and(|p| p.summary.is_some()) {
            break;
        }
        assert!(Instant::now() < until, "no summary in {}", out.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        child.try_wait().expect("try_wait"),
        None,
        "pcprof ended although its stdout is full"
    );

    kill(&child, libc::SIGINT);
    let exit = wait(&mut child);
    seen.extend(rx.iter());
    let stderr = seen.join("\n");
    assert_eq!(exit.code(), Some(130), "{stderr}");
    // It exited without finishing: nothing of the report got out, and the
    // clean path's last line is missing.
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).expect("read stdout");
    assert_eq!(
        rest.len(),
        filled,
        "only the test's own filler is in the pipe"
    );
    assert!(!stderr.contains("complete up to then"), "{stderr}");
    // The file keeps everything flushed before the exit: here all of it.
    let profile = pcprof::analysis::load(&out, &Default::default(), |_| {}).expect("load");
    assert_eq!(profile.read_error, None);
    assert!(profile.summary.is_some());
}

/// Samples in the complete records of `out` (a torn tail is allowed: the
/// process may die in the middle of a write).
fn samples_on_disk(out: &Path) -> u64 {
    let Ok(bytes) = std::fs::read(out) else {
        return 0;
    };
    match crate::common::read_all(&bytes) {
        Ok(c) => c.samples.len() as u64,
        Err(_) => 0, // not even a header yet
    }
}

/// Starts `pcprof demo` in `format` and waits until at least two flush
/// intervals' worth of samples are on disk; returns how many there were.
fn recording_with_samples_on_disk(format: &str, out: &Path) -> (Child, u64) {
    let mut child = pcprof()
        .args([
            "demo",
            "--seconds",
            "600",
            "--threads",
            "2",
            "--format",
            format,
        ])
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pcprof");
    let until = Instant::now() + DEADLINE;
    loop {
        // Two threads at 1 kHz, sealed every second: more than one batch.
        let n = samples_on_disk(out);
        if n > 2000 {
            return (child, n);
        }
        if Instant::now() > until || child.try_wait().expect("try_wait").is_some() {
            let _ = child.kill();
            panic!("no samples reached {} ({n} so far)", out.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The scenario: `kill -9` in the middle of a recording. Whatever was
/// on disk before the kill is still there and readable, in both formats (a
/// 64 KiB buffer and 20 000-sample batches used to leave a 0-byte file).
#[test]
fn kill_9_during_the_demo_keeps_every_flushed_sample() {
    for format in ["native", "pulley"] {
        let dir = TempDir::new(&format!("kill9-demo-{format}"));
        let out = dir.path("run.data");
        let (mut child, before) = recording_with_samples_on_disk(format, &out);
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("reap");
        assert_eq!(status.code(), None, "killed by a signal");
        let after = samples_on_disk(&out);
        assert!(
            after >= before,
            "{format}: {after} samples after, {before} before"
        );
        let profile = pcprof::analysis::load(&out, &Default::default(), |_| {}).expect("load");
        assert_eq!(profile.total_samples, after, "{format}");
        assert!(
            profile.summary.is_none(),
            "{format}: no summary after kill -9"
        );
    }
}

/// Two Ctrl-C in a row while recording: the second exits at once, and the
/// file holds at least what was on disk before (records are whole; a torn
/// tail is reported as such, never an unreadable file).
#[test]
fn a_second_sigint_while_recording_leaves_a_readable_file() {
    let dir = TempDir::new("double-sigint-recording");
    let out = dir.path("run.data");
    let (mut child, before) = recording_with_samples_on_disk("native", &out);
    kill(&child, libc::SIGINT);
    kill(&child, libc::SIGINT);
    let status = wait(&mut child);
    assert_eq!(status.code(), Some(130));
    let after = samples_on_disk(&out);
    assert!(after >= before, "{after} samples after, {before} before");
}
