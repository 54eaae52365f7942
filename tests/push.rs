//! Pushing to Grafana Pyroscope (`pcprof::push`, `pcprof push`) against a
//! stand-in: a loopback HTTP server started by each test (127.0.0.1 only)
//! that decodes every request with Pyroscope's own protobuf definitions and
//! answers as the test scripts it (200, 500, 400, slowly, never). No real
//! Pyroscope server can be installed here.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pcprof::analysis::convert::ConvertOptions;
use pcprof::analysis::convert::pprof::proto::Profile;
use pcprof::push::proto::push::v1::PushRequest;
use pcprof::push::{Credentials, PushConfig, PushError, Pusher, pprof_bytes};
use prost::Message as _;

use crate::common::TempDir;
use crate::convert::write_fixture;

/// How the stand-in answers one request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Answer {
    Status(u16),
    /// 200 after this long.
    Slow(Duration),
    /// Reads the request and never answers (until the server is dropped).
    Silent,
}

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    method: String,
    pub(crate) path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The stand-in server: answers the scripted answers in order, then 200.
pub(crate) struct StandIn {
    pub(crate) url: String,
    pub(crate) received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees `stop`.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

pub(crate) fn stand_in(answers: &[Answer]) -> StandIn {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let script = Arc::new(Mutex::new(answers.iter().copied().collect::<VecDeque<_>>()));
    {
        let received = received.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let received = received.clone();
                let stop = stop.clone();
                let script = script.clone();
                std::thread::spawn(move || serve(conn, &received, &stop, &script));
            }
        });
    }
    StandIn {
        url,
        received,
        stop,
    }
}

/// Reads one request from `conn`, records it, answers as scripted and
/// closes the connection.
fn serve(
    conn: TcpStream,
    received: &Mutex<Vec<Received>>,
    stop: &AtomicBool,
    script: &Mutex<VecDeque<Answer>>,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return; // the drop's wake-up, or a client that gave up
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .expect("the client sends Content-Length");
    let mut body = vec![0; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    received.lock().unwrap().push(Received {
        method,
        path,
        headers,
        body,
    });
    let answer = script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Answer::Status(200));
    let status = match answer {
        Answer::Status(s) => s,
        Answer::Slow(d) => {
            let until = Instant::now() + d;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
            200
        }
        Answer::Silent => {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
            return;
        }
    };
    let body = if status == 200 {
        ""
    } else {
        "stand-in says no"
    };
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.flush();
}

/// A config for `url` with fast retries and no credentials.
pub(crate) fn config(url: &str) -> PushConfig {
    PushConfig {
        timeout: Duration::from_secs(10),
        retries: 3,
        backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
        credentials: None,
        ..PushConfig::new(url, "fleet-test")
    }
}

/// The fixture profile (90 samples, two interpreters) as gzipped pprof.
fn fixture_pprof(dir: &TempDir) -> Vec<u8> {
    let input = dir.path("in.pcprof");
    write_fixture(&input, ["hot", "warm", "cold"]);
    pprof_bytes(&input, &ConvertOptions::default()).unwrap().0
}

/// Decodes a request as Pyroscope does, and its profile.
pub(crate) fn decode(r: &Received) -> (Vec<(String, String)>, String, Profile) {
    let request = PushRequest::decode(r.body.as_slice()).expect("push.v1.PushRequest");
    assert_eq!(request.series.len(), 1);
    let series = &request.series[0];
    let labels = series
        .labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect();
    assert_eq!(series.samples.len(), 1);
    let sample = &series.samples[0];
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(sample.raw_profile.as_slice())
        .read_to_end(&mut raw)
        .expect("gzipped");
    let profile = Profile::decode(raw.as_slice()).expect("profile.proto");
    (labels, sample.id.clone(), profile)
}

pub(crate) fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn push_sends_the_series_labels_and_the_profile_whole() {
    let dir = TempDir::new("push-ok");
    let server = stand_in(&[]);
    let pusher = Pusher::new(PushConfig {
        labels: pairs(&[("region", "eu-west"), ("host", "a1")]),
        tenant: Some("team-7".to_string()),
        ..config(&server.url)
    })
    .unwrap();
    let report = pusher.push(fixture_pprof(&dir)).unwrap();
    assert_eq!(report.attempts, 1);

    let got = server.received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/push.v1.PusherService/Push")
    );
    assert_eq!(r.header("content-type"), Some("application/proto"));
    assert_eq!(r.header("connect-protocol-version"), Some("1"));
    assert_eq!(r.header("x-scope-orgid"), Some("team-7"));
    assert_eq!(r.header("authorization"), None);
    assert_eq!(r.body.len(), report.bytes);
    let (labels, id, profile) = decode(r);
    assert_eq!(
        labels,
        pairs(&[
            ("__name__", "process_cpu"),
            ("service_name", "fleet-test"),
            ("region", "eu-west"),
            ("host", "a1"),
        ])
    );
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    // The fixture's totals: 90 samples of 1 ms.
    let sum = |i: usize| profile.sample.iter().map(|s| s.value[i]).sum::<i64>();
    assert_eq!((sum(0), sum(1)), (90, 90_000_000));
    let names: Vec<&str> = profile.string_table.iter().map(String::as_str).collect();
    assert!(names.contains(&"interpreter_label") && names.contains(&"worker"));
}

#[test]
fn push_retries_500s_with_back_off_then_lands() {
    let dir = TempDir::new("push-500");
    let server = stand_in(&[Answer::Status(500), Answer::Status(503)]);
    let report = Pusher::new(config(&server.url))
        .unwrap()
        .push(fixture_pprof(&dir))
        .unwrap();
    assert_eq!(report.attempts, 3);
    let got = server.received.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    // Each attempt is the same profile under its same id.
    assert!(got.iter().all(|r| r.body == got[0].body));
}

#[test]
fn push_gives_up_after_its_retries_when_the_server_keeps_failing() {
    let dir = TempDir::new("push-500s");
    let server = stand_in(&[Answer::Status(500); 10]);
    let e = Pusher::new(config(&server.url))
        .unwrap()
        .push(fixture_pprof(&dir))
        .unwrap_err();
    let PushError::GaveUp { attempts, .. } = &e else {
        panic!("{e:?}");
    };
    assert_eq!(*attempts, 4);
    let text = e.to_string();
    assert!(
        text.contains(&server.url) && text.contains("HTTP 500"),
        "{text}"
    );
    assert!(text.contains("stand-in says no"), "{text}");
    assert_eq!(server.received.lock().unwrap().len(), 4);
}

#[test]
fn push_does_not_retry_a_refusal() {
    let dir = TempDir::new("push-400");
    let server = stand_in(&[Answer::Status(400)]);
    let e = Pusher::new(config(&server.url))
        .unwrap()
        .push(fixture_pprof(&dir))
        .unwrap_err();
    assert!(
        matches!(&e, PushError::Refused { status: 400, body, .. } if body == "stand-in says no"),
        "{e:?}"
    );
    assert_eq!(server.received.lock().unwrap().len(), 1);
}

#[test]
fn push_waits_for_a_slow_answer_within_its_timeout() {
    let dir = TempDir::new("push-slow");
    let server = stand_in(&[Answer::Slow(Duration::from_millis(100))]);
    let report = Pusher::new(config(&server.url))
        .unwrap()
        .push(fixture_pprof(&dir))
        .unwrap();
    assert_eq!(report.attempts, 1);
}

#[test]
fn push_times_out_on_a_server_that_never_answers_and_retries_boundedly() {
    let dir = TempDir::new("push-silent");
    let server = stand_in(&[Answer::Silent; 10]);
    let e = Pusher::new(PushConfig {
        timeout: Duration::from_millis(200),
        retries: 2,
        ..config(&server.url)
    })
    .unwrap()
    .push(fixture_pprof(&dir))
    .unwrap_err();
    assert!(matches!(e, PushError::GaveUp { attempts: 3, .. }), "{e:?}");
    assert_eq!(server.received.lock().unwrap().len(), 3);
}

#[test]
fn push_to_an_absent_server_gives_up() {
    let dir = TempDir::new("push-absent");
    // A port that was just free: nothing listens there.
    let url = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let e = Pusher::new(config(&url))
        .unwrap()
        .push(fixture_pprof(&dir))
        .unwrap_err();
    assert!(matches!(e, PushError::GaveUp { attempts: 4, .. }), "{e:?}");
}

#[test]
fn push_credentials_are_sent_only_where_safe_and_never_shown() {
    let secret = "s3cr3t-token-value";
    let server = stand_in(&[]);
    let with = |allow| PushConfig {
        credentials: Some(Credentials::Bearer(secret.to_string())),
        allow_insecure_credentials: allow,
        ..config(&server.url)
    };
    // Plain http with credentials: refused unless asked for.
    let e = Pusher::new(with(false)).unwrap_err();
    assert!(matches!(e, PushError::InsecureCredentials { .. }), "{e:?}");
    assert!(!format!("{e} {e:?}").contains(secret));
    let pusher = Pusher::new(with(true)).unwrap();
    assert!(!format!("{pusher:?}").contains(secret), "{pusher:?}");
    let dir = TempDir::new("push-credentials");
    pusher.push(fixture_pprof(&dir)).unwrap();
    let got = server.received.lock().unwrap().clone();
    assert_eq!(
        got[0].header("authorization"),
        Some(format!("Bearer {secret}").as_str())
    );
    // Basic auth: base64 of user:password.
    let basic = Credentials::Basic {
        user: "u".to_string(),
        password: "pw".to_string(),
    };
    assert!(!format!("{basic:?}").contains("pw"));
    Pusher::new(PushConfig {
        credentials: Some(basic),
        allow_insecure_credentials: true,
        ..config(&server.url)
    })
    .unwrap()
    .push(fixture_pprof(&dir))
    .unwrap();
    let got = server.received.lock().unwrap().clone();
    assert_eq!(got[1].header("authorization"), Some("Basic dTpwdw=="));
    // Credentials inside the URL: refused, and not echoed.
    let e = Pusher::new(config("http://user:hunter2@127.0.0.1:9")).unwrap_err();
    assert!(!format!("{e} {e:?}").contains("hunter2"), "{e}");
}

#[test]
fn push_refuses_bad_urls_and_label_names() {
    for url in ["127.0.0.1:4040", "ftp://host", "http://"] {
        let e = Pusher::new(config(url)).unwrap_err();
        assert!(matches!(e, PushError::Url { .. }), "{url}: {e:?}");
    }
    for name in ["", "9lives", "has-dash", "__name__"] {
        let e = Pusher::new(PushConfig {
            labels: pairs(&[(name, "v")]),
            ..config("http://127.0.0.1:9")
        })
        .unwrap_err();
        assert!(
            matches!(&e, PushError::Label { name: n } if n == name),
            "{e:?}"
        );
    }
}

#[test]
fn pcprof_push_sends_a_file_and_keeps_credentials_off_http() {
    let dir = TempDir::new("push-cli");
    let input = dir.path("in.pcprof");
    write_fixture(&input, ["hot", "warm", "cold"]);
    let server = stand_in(&[Answer::Status(500)]);
    let out = crate::demo::pcprof()
        .args(["push", input.to_str().unwrap(), "--url", &server.url])
        .args([
            "--service",
            "cli-test",
            "--label",
            "env=ci",
            "--retries",
            "1",
        ])
        .env_remove("PCPROF_PUSH_TOKEN")
        .env_remove("PCPROF_PUSH_USER")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("pushed") && err.contains("90 samples") && err.contains("2 attempts"),
        "{err}"
    );
    let got = server.received.lock().unwrap().clone();
    let (labels, _, _) = decode(&got[1]);
    assert_eq!(
        labels,
        pairs(&[
            ("__name__", "process_cpu"),
            ("service_name", "cli-test"),
            ("env", "ci"),
        ])
    );

    // A token in the environment and a plain http URL: refused, unsent,
    // unshown.
    let out = crate::demo::pcprof()
        .args(["push", input.to_str().unwrap(), "--url", &server.url])
        .args(["--service", "cli-test"])
        .env("PCPROF_PUSH_TOKEN", "tok-123456")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("plain http") && !err.contains("tok-123456"),
        "{err}"
    );
    assert_eq!(server.received.lock().unwrap().len(), 2);
}

#[test]
fn pcprof_push_of_a_cut_file_pushes_its_complete_records_and_fails() {
    let dir = TempDir::new("push-cut");
    let input = dir.path("in.pcprof");
    write_fixture(&input, ["hot", "warm", "cold"]);
    let bytes = std::fs::read(&input).unwrap();
    let cut = dir.path("cut.pcprof");
    std::fs::write(&cut, &bytes[..bytes.len() - 30]).unwrap();
    let server = stand_in(&[]);
    let out = crate::demo::pcprof()
        .args(["push", cut.to_str().unwrap(), "--url", &server.url])
        .args(["--service", "cut"])
        .env_remove("PCPROF_PUSH_TOKEN")
        .env_remove("PCPROF_PUSH_USER")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cut.pcprof")
            && err.contains("only the complete records before it were pushed"),
        "{err}"
    );
    let got = server.received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (_, _, profile) = decode(&got[0]);
    let n: i64 = profile.sample.iter().map(|s| s.value[0]).sum();
    assert!(n > 0 && n <= 90, "{n}");
}

#[test]
fn pcprof_push_with_an_interval_sends_one_dated_profile_per_interval() {
    let dir = TempDir::new("push-interval");
    let input = dir.path("in.pcprof");
    write_fixture(&input, ["hot", "warm", "cold"]);
    let server = stand_in(&[]);
    let out = crate::demo::pcprof()
        .args(["push", input.to_str().unwrap(), "--url", &server.url])
        .args(["--service", "intervals", "--interval", "0.02"])
        .env_remove("PCPROF_PUSH_TOKEN")
        .env_remove("PCPROF_PUSH_USER")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("90 samples, 4 profiles"), "{err}");
    let got = server.received.lock().unwrap().clone();
    let totals: Vec<(i64, i64)> = got
        .iter()
        .map(|r| {
            let (_, _, p) = decode(r);
            let n = p.sample.iter().map(|s| s.value[0]).sum();
            (p.time_nanos - crate::convert::STARTED_UNIX_NS as i64, n)
        })
        .collect();
    assert_eq!(
        totals,
        [(0, 38), (20_000_000, 31), (40_000_000, 20), (60_000_000, 1)]
    );

    // A Pulley file: refused before anything is sent.
    let pulley = dir.path("in.pulley");
    let code: Vec<u8> = (0..16).collect();
    std::fs::write(
        &pulley,
        crate::report::pulley_file(&[("w", 0x2000, &code)], &[0x2000], 1),
    )
    .unwrap();
    let out = crate::demo::pcprof()
        .args(["push", pulley.to_str().unwrap(), "--url", &server.url])
        .args(["--service", "intervals", "--interval", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no times"), "{err}");
    assert_eq!(server.received.lock().unwrap().len(), 4);
}
