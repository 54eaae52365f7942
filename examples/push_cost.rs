//! What continuous profiling costs (BENCHMARKS.md, "Continuous push"):
//! `N` interpreters at 1 kHz pushing every `INTERVAL_MS` to `TARGET`,
//! either `live` (a loopback server in this process that answers 200) or
//! `dead` (a loopback port nothing listens on: every push refused). Prints
//! the RSS every 10 s, then the CPU of the tee and push threads per
//! interval, and the counts.
//!
//! ```text
//! cargo run --release --features push --example push_cost -- live 120 1000 4
//! cargo run --release --features push --example push_cost -- dead 150 1000 4
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pcprof::Profiler;
use pcprof::push::{Continuous, PushTo as _};

/// Answers every request 200 (reads the body by Content-Length).
fn live_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.to_ascii_lowercase();
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    let mut body = vec![0; len];
                    let _ = r.read_exact(&mut body);
                    let mut c = &conn;
                    let _ = c.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    break;
                }
            }
        }
    });
    url
}

/// CPU time of this process's threads named `name`, in ns (schedstat:
/// nanoseconds, where `stat` counts 10 ms ticks).
fn thread_cpu_ns(name: &str) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let sched = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += sched
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let target = args.get(1).map_or("live", String::as_str);
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(60);
    let interval_ms: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let n: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(4);
    let url = match target {
        "live" => live_server(),
        _ => {
            let l = TcpListener::bind("127.0.0.1:0")?;
            format!("http://{}", l.local_addr()?)
        }
    };
    let out = std::env::temp_dir().join(format!("push-cost-{}.data", std::process::id()));
    let mut c = Continuous::new(url, "push-cost").interval(Duration::from_millis(interval_ms));
    c.push.retries = 3;
    let mut profiler = Profiler::builder()
        .frequency(1000)
        .output(&out)
        .push_to(c)?
        .start()?;
    let code: Vec<u8> = (0..=255).collect();
    profiler.register_function("spin", &code)?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for i in 0..n {
        let pc = profiler.new_interpreter(Some(&format!("interp-{i}")))?;
        let code = code.clone();
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut x = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for (j, op) in code.iter().enumerate() {
                    pc.set_ptr(op);
                    x = x.wrapping_mul(31).wrapping_add(j as u64 ^ u64::from(*op));
                }
            }
            pc.set_idle();
            x
        }));
    }
    let start = Instant::now();
    let mut next = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(seconds) {
        if start.elapsed() >= next {
            println!("t={:>4}s rss={} KiB", next.as_secs(), rss_kib());
            next += Duration::from_secs(10);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let tee_ns = thread_cpu_ns("pcprof-tee");
    let push_ns = thread_cpu_ns("pcprof-push");
    let writer_ns = thread_cpu_ns("pcprof-writer");
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let stats = profiler.stop()?;
    let intervals = (stats.push_intervals_pushed + stats.push_intervals_dropped).max(1);
    println!(
        "{target}: {seconds} s, {n} interpreters at 1 kHz, interval {interval_ms} ms: {} samples; intervals pushed {}, dropped {}",
        stats.samples_written, stats.push_intervals_pushed, stats.push_intervals_dropped
    );
    println!(
        "CPU per interval: tee {:.3} ms, push {:.3} ms (writer, whole run: {:.1} ms); rss at the end {} KiB",
        tee_ns as f64 / 1e6 / intervals as f64,
        push_ns as f64 / 1e6 / intervals as f64,
        writer_ns as f64 / 1e6,
        rss_kib()
    );
    let _ = std::fs::remove_file(out);
    Ok(())
}
