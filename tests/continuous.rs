//! Continuous profiling (`pcprof::push::Continuous`, the builder's
//! `push_to`): a running profiler on the `VirtualClock` pushes one pprof
//! profile per interval to the loopback stand-in of `push.rs` (127.0.0.1
//! only; no real Pyroscope server can be installed here). What a server
//! that fails, answers slowly or never answers costs is counted, never
//! timed.

use std::sync::Arc;
use std::time::Duration;

use pcprof::push::{Continuous, Credentials, PushConfig, PushTo as _};
use pcprof::{Event, ProfileReader, Profiler, SamplingMode, Stats, VirtualClock};

use crate::common::TempDir;
use crate::push::{Answer, decode, pairs, stand_in};

const INTERVAL: Duration = Duration::from_millis(100);

/// Settings for `url`: 100 ms intervals, fast retries, no credentials.
fn continuous(url: &str, retries: u32, timeout: Duration) -> Continuous {
    Continuous {
        push: PushConfig {
            retries,
            timeout,
            labels: pairs(&[("region", "eu-west")]),
            ..crate::push::config(url)
        },
        ..Continuous::new(url, "fleet-test").interval(INTERVAL)
    }
}

/// Records 350 ms at 1 kHz of two interpreters on a virtual clock, pushing
/// to `c`, and stops. Windows of 100 ms: ticks 1-99, 100-199, 200-299,
/// 300-350 ms, so 198, 200, 200 and 102 samples.
fn record(dir: &TempDir, c: Continuous, actor_timeout: Duration) -> Stats {
    let clock = VirtualClock::new();
    let mut p = Profiler::builder()
        .frequency(1000)
        .sampling(SamplingMode::Periodic)
        .flush_every(20)
        .buffers(64)
        .actor_timeout(actor_timeout)
        .output(dir.path("p.data"))
        .clock(Arc::new(clock.clone()))
        .push_to(c)
        .expect("settings")
        .start()
        .expect("start profiler");
    let code = vec![0u8; 64];
    p.register_function("f", &code).unwrap();
    let a = p.new_interpreter(Some("a")).unwrap();
    let b = p.new_interpreter(Some("b")).unwrap();
    a.set_ptr(&code[4]);
    b.set_ptr(&code[9]);
    p.sync().unwrap();
    for _ in 0..35 {
        clock.advance(Duration::from_millis(10));
    }
    p.stop().expect("stop")
}

/// The file's samples, whether it has its summary, and its push record.
fn file(dir: &TempDir) -> (u64, bool, pcprof::format::PushRecord) {
    let mut reader = ProfileReader::open(dir.path("p.data")).unwrap();
    let (mut samples, mut summary) = (0, false);
    for ev in reader.by_ref() {
        match ev.expect("a complete file") {
            Event::Samples(s) => samples += s.len() as u64,
            Event::Summary(_) => summary = true,
            _ => {}
        }
    }
    (
        samples,
        summary,
        *reader.push_record().expect("a push record"),
    )
}

#[test]
fn continuous_pushes_one_profile_per_interval_with_the_series_labels() {
    let dir = TempDir::new("continuous-ok");
    let server = stand_in(&[]);
    let stats = record(
        &dir,
        continuous(&server.url, 3, Duration::from_secs(10)),
        Duration::from_secs(60),
    );
    let received = server.received.lock().unwrap().clone();
    let mut totals = Vec::new();
    for r in &received {
        assert_eq!(r.path, "/push.v1.PusherService/Push");
        let (labels, _, profile) = decode(r);
        assert_eq!(
            labels,
            pairs(&[
                ("__name__", "process_cpu"),
                ("service_name", "fleet-test"),
                ("region", "eu-west")
            ])
        );
        assert_eq!(profile.duration_nanos, INTERVAL.as_nanos() as i64);
        totals.push(profile.sample.iter().map(|s| s.value[0]).sum::<i64>());
    }
    assert_eq!(totals, [198, 200, 200, 102]);
    let (samples, summary, push) = file(&dir);
    assert!(summary);
    assert_eq!(samples, 700);
    assert_eq!(stats.samples_written, 700);
    assert_eq!(totals.iter().sum::<i64>(), 700);
    assert_eq!(
        (stats.push_intervals_pushed, stats.push_intervals_dropped),
        (4, 0)
    );
    assert_eq!(
        (
            push.intervals_pushed,
            push.intervals_dropped,
            push.chunks_dropped
        ),
        (4, 0, 0)
    );
}

#[test]
fn continuous_counts_the_intervals_a_failing_server_refuses() {
    let dir = TempDir::new("continuous-500");
    // Each interval: a 500, then one retry, a 500 again; the last lands.
    let server = stand_in(&[Answer::Status(500); 6]);
    let stats = record(
        &dir,
        continuous(&server.url, 1, Duration::from_secs(10)),
        Duration::from_secs(60),
    );
    assert_eq!(server.received.lock().unwrap().len(), 7);
    let (samples, summary, push) = file(&dir);
    assert!(summary);
    assert_eq!((samples, stats.samples_written), (700, 700));
    assert_eq!(
        (stats.push_intervals_pushed, stats.push_intervals_dropped),
        (1, 3)
    );
    assert_eq!((push.intervals_pushed, push.intervals_dropped), (1, 3));
}

#[test]
fn continuous_lands_every_interval_on_a_slow_server() {
    let dir = TempDir::new("continuous-slow");
    let server = stand_in(&[Answer::Slow(Duration::from_millis(200)); 4]);
    let stats = record(
        &dir,
        continuous(&server.url, 0, Duration::from_secs(30)),
        Duration::from_secs(60),
    );
    assert_eq!(server.received.lock().unwrap().len(), 4);
    let (samples, _, push) = file(&dir);
    assert_eq!(samples, 700);
    assert_eq!((push.intervals_pushed, push.intervals_dropped), (4, 0));
    assert_eq!(stats.push_intervals_pushed, 4);
}

/// A server that never answers holds the push thread on its first
/// interval; the others wait in the queue. The stop waits half its actor
/// timeout for them, then counts all four dropped and returns.
#[test]
fn continuous_to_a_silent_server_stops_in_time_and_counts_every_interval() {
    let dir = TempDir::new("continuous-silent");
    let server = stand_in(&[Answer::Silent; 8]);
    let stats = record(
        &dir,
        continuous(&server.url, 0, Duration::from_secs(3600)),
        Duration::from_millis(500),
    );
    let (samples, summary, push) = file(&dir);
    assert!(summary);
    assert_eq!((samples, stats.samples_written), (700, 700));
    assert_eq!(
        (stats.push_intervals_pushed, stats.push_intervals_dropped),
        (0, 4)
    );
    assert_eq!((push.intervals_pushed, push.intervals_dropped), (0, 4));
    assert!(stats.first_error.is_none(), "{:?}", stats.first_error);
}

#[test]
fn continuous_to_an_absent_server_counts_every_interval() {
    let dir = TempDir::new("continuous-absent");
    // A port nothing listens on: bound, then closed.
    let url = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let stats = record(
        &dir,
        continuous(&url, 1, Duration::from_secs(10)),
        Duration::from_secs(60),
    );
    let (samples, _, push) = file(&dir);
    assert_eq!(samples, 700);
    assert_eq!((push.intervals_pushed, push.intervals_dropped), (0, 4));
    assert_eq!(stats.push_intervals_dropped, 4);
}

#[test]
fn continuous_settings_are_checked_before_the_profiler_starts() {
    let e = Profiler::builder()
        .push_to(Continuous::new("ftp://x", "s"))
        .unwrap_err();
    assert!(
        e.to_string().contains("the scheme must be http or https"),
        "{e}"
    );
    let e = Profiler::builder()
        .push_to(Continuous::new("http://127.0.0.1:1", "s").label("__x", "y"))
        .unwrap_err();
    assert!(e.to_string().contains("label name \"__x\""), "{e}");
    let e = Profiler::builder()
        .push_to(Continuous::new("http://127.0.0.1:1", "s").interval(Duration::ZERO))
        .unwrap_err();
    assert!(e.to_string().contains("at least 1 ms"), "{e}");
    // The Pulley format has no times to cut.
    let e = Profiler::builder()
        .format(pcprof::Format::Pulley)
        .output_writer(std::io::sink())
        .push_to(Continuous::new("http://127.0.0.1:1", "s"))
        .unwrap()
        .start()
        .unwrap_err();
    assert!(e.to_string().contains("tee"), "{e}");
}

/// Credentials go in the request's header only: never into the file, never
/// into the profiler's statistics or errors; over plain http only when
/// allowed.
#[test]
fn continuous_credentials_stay_out_of_the_file() {
    const TOKEN: &str = "s3cret-t0ken";
    let refused = Profiler::builder()
        .push_to(Continuous {
            push: PushConfig {
                credentials: Some(Credentials::Bearer(TOKEN.into())),
                ..crate::push::config("http://127.0.0.1:1")
            },
            ..Continuous::new("http://127.0.0.1:1", "s")
        })
        .unwrap_err();
    assert!(refused.to_string().contains("plain http"), "{refused}");
    assert!(!refused.to_string().contains(TOKEN));

    let dir = TempDir::new("continuous-credentials");
    let server = stand_in(&[]);
    let mut c = continuous(&server.url, 0, Duration::from_secs(10));
    c.push.credentials = Some(Credentials::Bearer(TOKEN.into()));
    c.push.allow_insecure_credentials = true;
    let stats = record(&dir, c, Duration::from_secs(60));
    assert_eq!(stats.push_intervals_pushed, 4);
    let received = server.received.lock().unwrap().clone();
    assert!(
        received
            .iter()
            .all(|r| r.header("authorization") == Some(&format!("Bearer {TOKEN}")))
    );
    let bytes = std::fs::read(dir.path("p.data")).unwrap();
    assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()));
    assert!(!format!("{stats:?}").contains(TOKEN));
}
