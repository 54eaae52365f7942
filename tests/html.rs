//! `pcprof html`: the page's content and escaping without a browser, then
//! the page driven in headless Chromium — it opens from the file system,
//! shows the hottest function first, sorts when its headers are clicked —
//! and a screenshot of a realistic report (copied to
//! `docs/html-report.png` when `PCPROF_UPDATE_SCREENSHOT=1`).
//!
//! The page carries its own self-test, run only with `#selftest` in the
//! URL: it clicks the sort headers through their real event handlers and
//! writes what it saw as JSON into `<pre id="selftest-result">`, which
//! Chromium's `--dump-dom` hands back to us. Without Chromium the browser
//! tests are skipped with a notice, unless `CI` is set: then they fail.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pcprof::analysis::html::{HtmlOptions, render, write_report};
use pcprof::analysis::report::DecoderChoice;
use pcprof::analysis::{LoadOptions, load};
use pcprof::disasm::HexDecoder;

use crate::common::TempDir;
use crate::convert::write_fixture;

/// Names that would break the page if they were not escaped.
const NASTY: [&str; 3] = [
    "hot<script>window.pwned=1</script>",
    "warm \"quoted\" & 'apostrophe'",
    "<img src=x onerror=alert(1)>",
];

fn options() -> HtmlOptions {
    HtmlOptions {
        decoder: DecoderChoice::Custom(Arc::new(HexDecoder { width: 4 })),
        ..HtmlOptions::default()
    }
}

fn fixture_page(dir: &TempDir, names: [&str; 3]) -> (PathBuf, String) {
    let input = dir.path("fixture.pcprof");
    write_fixture(&input, names);
    let profile = load(&input, &LoadOptions::default(), |_| {}).expect("load fixture");
    let page = render(&profile, &options());
    (input, page)
}

#[test]
fn page_has_every_section_and_fetches_nothing() {
    let dir = TempDir::new("html-sections");
    let (_, page) = fixture_page(&dir, ["hot", "warm", "cold"]);
    for want in [
        "id=\"summary\"",
        "id=\"functions\"",
        "id=\"timeline\"",
        "id=\"sequences-section\"",
        "id=\"disassembly\"",
        "<svg class=\"timeline\"",
        // Summary figures of the fixture.
        "Rate asked</div><div class=\"v\">1,000 Hz",
        "achieved 1000 Hz",
        "Ticks missed</div><div class=\"v\">1<",
        "Samples dropped</div><div class=\"v\">0<",
        "Lateness p50</div><div class=\"v\">12 µs",
        "p99 80 µs · max 150 µs",
        "Duration</div><div class=\"v\">60 ms",
        "Samples</div><div class=\"v\">90<",
        // The hottest instruction, with its heat bar.
        "04 05 06 07",
        "class=\"bar\"",
        // Both interpreters have a lane.
        "main (1)",
        "worker (2)",
    ] {
        assert!(page.contains(want), "page lacks {want:?}");
    }
    assert_eq!(page.matches("<g class=\"lane\">").count(), 2);
    // Self-contained: no URL to fetch, and a policy forbidding any.
    assert!(page.contains("Content-Security-Policy\" content=\"default-src 'none'"));
    for attr in ["src=\"", "href=\"http", "url(", "@import"] {
        assert!(!page.contains(attr), "page references {attr}");
    }
    // The hottest function is the first row.
    let rows: Vec<&str> = page.split("<tr data-order=").skip(1).collect();
    assert_eq!(rows.len(), 2, "functions with samples");
    assert!(rows[0].contains("data-name=\"hot\""));
    assert!(!page.contains("data-name=\"cold\""));
}

#[test]
fn names_from_the_file_are_escaped() {
    let dir = TempDir::new("html-escape");
    let (_, page) = fixture_page(&dir, NASTY);
    for raw in NASTY {
        assert!(!page.contains(raw), "unescaped {raw:?}");
    }
    assert!(page.contains("hot&lt;script&gt;window.pwned=1&lt;/script&gt;"));
    assert!(page.contains("warm &quot;quoted&quot; &amp; &#39;apostrophe&#39;"));
    // One script only: ours.
    assert_eq!(page.matches("<script").count(), 1);
}

#[test]
fn empty_and_pulley_profiles_render() {
    let dir = TempDir::new("html-empty");
    let path = dir.path("empty.data");
    // A Pulley file with one function and no sample.
    let mut e = pcprof::format::Encoder::pulley(Vec::new());
    e.write(&pcprof::format::Record::Function(
        pcprof::format::FunctionRecord {
            addr: 0x10,
            name: "f".to_string(),
            code: vec![0; 8],
            loaded_ns: 0,
            listing: None,
        },
    ))
    .unwrap();
    std::fs::write(&path, e.into_inner()).unwrap();
    let profile = load(&path, &LoadOptions::default(), |_| {}).unwrap();
    let page = render(&profile, &options());
    assert!(page.contains("No samples."));
    assert!(page.contains("No function has any sample."));
    assert!(page.contains("not in Pulley files"));
}

#[test]
fn cli_writes_beside_the_input_and_says_when_it_replaces() {
    let dir = TempDir::new("html-cli");
    let input = dir.path("run.pcprof");
    write_fixture(&input, ["hot", "warm", "cold"]);
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_pcprof"))
            .args(["html", "--decoder", "hex"])
            .arg(&input)
            .output()
            .expect("run pcprof")
    };
    let o = run();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.path("run.pcprof.html");
    assert!(String::from_utf8_lossy(&o.stderr).contains("wrote"));
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .starts_with("<!DOCTYPE html>")
    );
    let o = run();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("replaced"));

    // The input itself is never overwritten.
    let profile = load(&input, &LoadOptions::default(), |_| {}).unwrap();
    let e = write_report(&profile, &options(), &input).unwrap_err();
    assert!(e.to_string().contains("the output is the input"), "{e}");
    assert!(load(&input, &LoadOptions::default(), |_| {}).is_ok());
}

// ---------------------------------------------------------------- browser

/// Chromium's binary, if installed.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let fallback = PathBuf::from("/usr/bin/chromium");
    fallback.is_file().then_some(fallback)
}

/// Chromium, or `None` after a notice (a failure under CI).
fn chromium_or_skip(test: &str) -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!(
                "{test}: chromium is not installed (`apt-get install -y chromium`), and CI is set"
            );
        }
        eprintln!(
            "notice: {test} skipped: chromium is not installed (apt-get install -y chromium)"
        );
    }
    found
}

/// One browser at a time: the suite runs its tests in parallel on what
/// may be a 2-core machine, and two Chromiums beside it starve each other.
static BROWSER: Mutex<()> = Mutex::new(());

/// Real time one Chromium run may take before it is taken as hung.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(45);

/// Runs before a hang fails the test. Headless Chromium with
/// `--virtual-time-budget` is known to hang now and then, before or after
/// doing its work (seen here once in CI on a freshly installed Chromium,
/// never locally in dozens of runs); a fresh profile directory is a fresh
/// browser.
const ATTEMPTS: u32 = 3;

/// Runs headless Chromium on `url` with `extra` arguments and returns its
/// stdout once `complete` accepts it. A run that hangs is killed with its
/// whole process group after [`ATTEMPT_LIMIT`]; if its work was done by
/// then (`complete` says so: the DOM was dumped, the PNG was written) that
/// counts, otherwise it is tried again, up to [`ATTEMPTS`] times. A browser
/// test never hangs the suite, and fails only when Chromium fails every time.
fn run_chromium(
    chromium: &Path,
    profile_dir: &Path,
    extra: &[String],
    url: &str,
    complete: &dyn Fn(&str) -> bool,
) -> String {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let mut failures = Vec::new();
    for attempt in 1..=ATTEMPTS {
        let dir = PathBuf::from(format!("{}-{attempt}", profile_dir.display()));
        let (status, out, err) = chromium_once(chromium, &dir, extra, url);
        match status {
            Some(s) if s.success() && complete(&out) => return out,
            None if complete(&out) => {
                eprintln!("notice: chromium hung after finishing its work; killed it");
                return out;
            }
            Some(s) => failures.push(format!(
                "run {attempt}: chromium exited ({s}) without finishing; stderr:\n{}",
                tail(&err)
            )),
            None => failures.push(format!(
                "run {attempt}: chromium did not finish in {} s; stderr:\n{}",
                ATTEMPT_LIMIT.as_secs(),
                tail(&err)
            )),
        }
        eprintln!(
            "notice: {}",
            failures
                .last()
                .map_or("", |f| f.lines().next().unwrap_or(""))
        );
    }
    panic!("chromium failed {ATTEMPTS} times:\n{}", failures.join("\n"));
}

/// The last lines of Chromium's stderr, which begins with pages of D-Bus
/// complaints on a machine without a session bus.
fn tail(err: &str) -> String {
    let lines: Vec<&str> = err.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// One Chromium run: its exit status (None when it was killed at the
/// limit), stdout and stderr.
fn chromium_once(
    chromium: &Path,
    profile_dir: &Path,
    extra: &[String],
    url: &str,
) -> (Option<std::process::ExitStatus>, String, String) {
    use std::os::unix::process::CommandExt as _;
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--force-color-profile=srgb",
            // Screenshots: raster every tile before capture (otherwise the
            // bottom of the page may come out blank).
            "--run-all-compositor-stages-before-draw",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile_dir.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a hang is ended with every
        // renderer and helper, whose open pipes would otherwise keep the
        // readers below waiting.
        .process_group(0)
        .spawn()
        .expect("start chromium");
    // Drain both pipes on threads: a large DOM would otherwise fill the
    // pipe and block Chromium before it exits.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + ATTEMPT_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait chromium") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let group = i32::try_from(child.id()).expect("pid fits in pid_t");
            // SAFETY: kill(2) with a negative pid signals that process
            // group, which is the one Chromium was started in above.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    (status, out, err)
}

/// A dumped DOM is complete when its document is closed.
fn dom_dumped(out: &str) -> bool {
    out.contains("</html>")
}

/// A PNG is complete when its last chunk, IEND, has been written.
fn png_written(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|png| {
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.ends_with(b"IEND\xae\x42\x60\x82")
    })
}

fn file_url(path: &Path) -> String {
    let abs = std::fs::canonicalize(path).expect("absolute path");
    let mut url = String::from("file://");
    for b in abs.to_string_lossy().bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                url.push(b as char)
            }
            _ => url.push_str(&format!("%{b:02X}")),
        }
    }
    url
}

/// The text of `<pre id="selftest-result">` in a dumped DOM, unescaped.
fn selftest_result(dom: &str) -> serde_json::Value {
    let start = dom.find("<pre id=\"selftest-result\">").unwrap_or_else(|| {
        panic!(
            "no self-test result in the DOM:\n{}",
            &dom[dom.len().saturating_sub(2000)..]
        )
    });
    let rest = &dom[start + "<pre id=\"selftest-result\">".len()..];
    let end = rest.find("</pre>").expect("end of result");
    let text = rest[..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("result is not JSON ({e}): {text}"))
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

fn numbers(v: &serde_json::Value) -> Vec<u64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_u64().expect("number"))
        .collect()
}

#[test]
fn browser_shows_hottest_first_and_sorts() {
    let Some(chromium) = chromium_or_skip("browser_shows_hottest_first_and_sorts") else {
        return;
    };
    let dir = TempDir::new("html-browser");
    // A third function with samples, so that every sort order differs.
    let input = dir.path("fixture.pcprof");
    write_fixture(&input, NASTY);
    let all_code = LoadOptions {
        keep_all_code: true,
        ..LoadOptions::default()
    };
    let mut profile = load(&input, &all_code, |_| {}).unwrap();
    profile.functions[2].samples = 5;
    profile.functions[2].hits = pcprof::analysis::profile::Hits::from_pairs(vec![(0, 5)]);
    profile.total_samples += 5;
    let page = dir.path("report.html");
    write_report(&profile, &options(), &page).unwrap();

    let dom = run_chromium(
        &chromium,
        &dir.path("chromium-profile"),
        &["--dump-dom".to_string()],
        &format!("{}#selftest", file_url(&page)),
        &dom_dumped,
    );
    let r = selftest_result(&dom);
    assert_eq!(r["ok"], true, "self-test error: {r}");
    // The script ran in the page, our names came through intact (escaped
    // in the HTML, decoded by the browser), and no injected script ran.
    assert_eq!(r["scripts"], 1, "only the page's own script");
    assert_eq!(r["images"], 0, "no injected image");
    let [hot, warm, cold] = NASTY.map(str::to_string);

    // Hottest first, as loaded.
    assert_eq!(
        strings(&r["initial"]["names"]),
        [hot.as_str(), warm.as_str(), cold.as_str()]
    );
    assert_eq!(numbers(&r["initial"]["samples"]), [60, 29, 5]);

    let steps = r["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 4);
    // Name, ascending then descending (byte order: '<' < 'h' < 'w').
    let mut by_name = vec![hot.clone(), warm.clone(), cold.clone()];
    by_name.sort();
    assert_eq!(steps[0]["sort"], "ascending");
    assert_eq!(strings(&steps[0]["names"]), by_name);
    assert_eq!(steps[1]["sort"], "descending");
    by_name.reverse();
    assert_eq!(strings(&steps[1]["names"]), by_name);
    // Samples, descending first, then ascending.
    assert_eq!(steps[2]["sort"], "descending");
    assert_eq!(numbers(&steps[2]["samples"]), [60, 29, 5]);
    assert_eq!(steps[3]["sort"], "ascending");
    assert_eq!(numbers(&steps[3]["samples"]), [5, 29, 60]);
    assert_eq!(
        strings(&steps[3]["names"]),
        [cold.as_str(), warm.as_str(), hot.as_str()]
    );

    // The rest of the page, as the browser built it.
    assert_eq!(
        strings(&r["disassembled"]),
        [hot.as_str(), warm.as_str(), cold.as_str()]
    );
    assert_eq!(r["timelineLanes"], 2);
    assert_eq!(
        r["external"], 0,
        "the page references something outside itself"
    );
}

/// The flame graph of the version 3 fixture (`main` calls `f`, `f` calls
/// `g`, `g` calls itself, a stack truncated below `main`), driven through
/// its real handlers: a click zooms, a hover shows the counts, a search
/// marks frames and counts a recursion once, the reset button undoes the
/// zoom.
#[test]
fn browser_flame_graph_zooms_searches_and_hovers() {
    let Some(chromium) = chromium_or_skip("browser_flame_graph_zooms_searches_and_hovers") else {
        return;
    };
    let dir = TempDir::new("html-flame");
    let input = dir.path("v3.data");
    std::fs::write(&input, include_bytes!("fixtures/native-v3-stacks.data")).unwrap();
    let profile = load(&input, &LoadOptions::default(), |_| {}).unwrap();
    let page = dir.path("report.html");
    write_report(&profile, &options(), &page).unwrap();
    let dom = run_chromium(
        &chromium,
        &dir.path("chromium-profile"),
        &["--dump-dom".to_string()],
        &format!("{}#selftest", file_url(&page)),
        &dom_dumped,
    );
    let r = selftest_result(&dom);
    assert_eq!(r["ok"], true, "self-test error: {r}");
    assert_eq!(r["scripts"], 1);
    assert_eq!(r["external"], 0);
    let fl = &r["flame"];
    let frames = |v: &serde_json::Value| -> Vec<(String, u64, f64, f64)> {
        v.as_array()
            .expect("frames")
            .iter()
            .map(|f| {
                (
                    f[0].as_str().unwrap().to_string(),
                    f[1].as_u64().unwrap(),
                    f[2].as_f64().unwrap(),
                    f[3].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let want = |v: &[(&str, u64, f64, f64)]| -> Vec<(String, u64, f64, f64)> {
        v.iter()
            .map(|&(n, d, l, w)| (n.to_string(), d, l, w))
            .collect()
    };
    let initial = want(&[
        ("all", 0, 0.0, 100.0),
        ("main", 1, 0.0, 100.0),
        ("f", 2, 0.0, 37.5),
        ("g", 3, 0.0, 25.0),
        ("g", 4, 0.0, 12.5),
        ("[truncated]", 2, 37.5, 12.5),
        ("g", 3, 37.5, 12.5),
    ]);
    assert_eq!(frames(&fl["initial"]), initial);
    // Zoomed on f: its callers above at full width, g's recursion below.
    assert_eq!(
        frames(&fl["zoomed"]),
        want(&[
            ("all", 0, 0.0, 100.0),
            ("main", 1, 0.0, 100.0),
            ("f", 2, 0.0, 100.0),
            ("g", 3, 0.0, 66.67),
            ("g", 4, 0.0, 33.33),
        ])
    );
    assert_eq!(fl["info"], "f: total 9 samples (37.50%), self 3 (12.50%)");
    // "g": three frames marked, 6 + 3 samples (the recursion's inner frame
    // counted once, with its caller).
    assert_eq!(fl["marked"], 3);
    assert_eq!(fl["matched"], "3 frames matched: 37.50% of all samples");
    assert_eq!(frames(&fl["reset"]), initial);
}

/// A profile that looks like a real run: the bundled demo program's real
/// Pulley bytecode, three interpreters over two seconds at 1 kHz, samples
/// falling mostly in loops (deterministic pseudo-random, no clock).
#[cfg(feature = "pulley")]
fn realistic_profile(path: &Path) {
    use pcprof::Sample;
    use pcprof::Stats;
    use pcprof::disasm::{InstructionDecoder, InstructionKind};
    use pcprof::format::{
        Encoder, FileHeader, FunctionRecord, InterpreterRecord, Record, RetiredRecord, Summary,
    };
    use pcprof::pulley::PulleyDecoder;
    use pcprof::pulley::workload::DemoProgram;

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn pick(&mut self, weights: &[u64]) -> usize {
            let total: u64 = weights.iter().sum();
            let mut r = self.next() % total.max(1);
            for (i, &w) in weights.iter().enumerate() {
                if r < w {
                    return i;
                }
                r -= w;
            }
            0
        }
    }

    let program = DemoProgram::new();
    let base = 0x7f3a_0000_1000u64;
    let mut e = Encoder::native(
        std::io::BufWriter::new(std::fs::File::create(path).unwrap()),
        &FileHeader {
            pcprof_version: env!("CARGO_PKG_VERSION").to_string(),
            pid: 31337,
            started_unix_ns: 1_767_225_600_000_000_000,
            frequency_hz: 1000,
            flush_samples: 4096,
            clock: "monotonic".to_string(),
        },
    )
    .unwrap();
    // Per function: its address and a weight per instruction (loop bodies,
    // found from backward branches, weigh more; nested loops more still).
    let mut fns = Vec::new();
    for (f, (name, body)) in program.functions().iter().zip(program.function_bodies()) {
        let addr = base + f.offset as u64;
        e.write(&Record::Function(FunctionRecord {
            addr,
            name: name.to_string(),
            code: body.to_vec(),
            loaded_ns: 0,
            listing: None,
        }))
        .unwrap();
        let ins = PulleyDecoder.decode(body);
        let mut w: Vec<u64> = vec![1; ins.len()];
        for (j, i) in ins.iter().enumerate() {
            if let InstructionKind::Branch { targets, .. } = &i.kind {
                for &t in targets.iter().filter(|&&t| t < i.offset) {
                    for (k, other) in ins.iter().enumerate().take(j + 1) {
                        if other.offset >= t {
                            w[k] *= 6;
                        }
                    }
                }
            }
            if i.opcode.contains("load") || i.opcode.contains("store") {
                w[j] *= 2;
            }
        }
        fns.push((name, addr, ins, w));
    }
    let share = |name: &str| match name {
        "sieve" => 50,
        "hash" => 16,
        "fill" => 13,
        "collatz" => 8,
        "fib" => 7,
        "dot" => 5,
        _ => 1,
    };
    for (id, label) in [(1, "main"), (2, "worker-1"), (3, "worker-2")] {
        e.write(&Record::Interpreter(InterpreterRecord {
            id,
            label: Some(label.to_string()),
            registered_ns: if id == 3 { 600_000_000 } else { 0 },
        }))
        .unwrap();
    }
    let mut rng = Lcg(42);
    let mut batch = Vec::new();
    let mut total = 0u64;
    for tick in 1..=2000u64 {
        let t = tick * 1_000_000;
        for interp in 1..=3u32 {
            let busy = match interp {
                1 => 95,
                2 if tick >= 200 => 40 + (((tick as f64) / 140.0).sin() * 45.0) as i64,
                3 if (600..1500).contains(&tick) => 85,
                _ => 0,
            };
            if (rng.next() % 100) as i64 >= busy {
                continue;
            }
            // Each interpreter leans on different functions.
            let weights: Vec<u64> = fns
                .iter()
                .map(|(name, ..)| {
                    let s = share(name);
                    match (interp, *name) {
                        (2, "hash" | "fill") => s * 4,
                        (3, "fib" | "collatz") => s * 6,
                        _ => s,
                    }
                })
                .collect();
            let (_, addr, ins, w) = &fns[rng.pick(&weights)];
            let i = &ins[rng.pick(w)];
            batch.push(Sample {
                time_ns: t,
                interp,
                pc: addr + u64::from(i.offset),
                stack: 0,
            });
        }
        if tick % 64 == 0 || tick == 2000 {
            total += batch.len() as u64;
            e.write_samples(&batch).unwrap();
            batch.clear();
        }
        if tick == 1500 {
            e.write(&Record::Retired(RetiredRecord {
                id: 3,
                retired_ns: t,
            }))
            .unwrap();
        }
    }
    e.write(&Record::Summary(Summary {
        stopped_ns: 2_000_500_000,
        stats: Stats {
            frequency_hz: 1000,
            elapsed_ns: 2_000_000_000,
            ticks_scheduled: 2000,
            ticks_taken: 1997,
            ticks_missed: 3,
            samples_taken: total,
            samples_written: total,
            lateness_p50_ns: 41_000,
            lateness_p99_ns: 212_000,
            lateness_max_ns: 1_180_000,
            interpreters_retired: 1,
            interpreters_live: 2,
            functions_live: fns.len() as u64,
            scheduling: "normal".to_string(),
            ..Stats::default()
        },
    }))
    .unwrap();
    use std::io::Write as _;
    e.into_inner().flush().unwrap();
}

#[cfg(feature = "pulley")]
#[test]
fn browser_screenshot_of_a_realistic_report() {
    let Some(chromium) = chromium_or_skip("browser_screenshot_of_a_realistic_report") else {
        return;
    };
    let dir = TempDir::new("html-screenshot");
    let input = dir.path("demo.pcprof");
    realistic_profile(&input);
    let profile = load(&input, &LoadOptions::default(), |_| {}).unwrap();
    // The real page, as `pcprof html` makes it (Pulley decoder, hot
    // sequences mined).
    let page = dir.path("demo.pcprof.html");
    let o = Command::new(env!("CARGO_BIN_EXE_pcprof"))
        .arg("html")
        .arg(&input)
        .output()
        .expect("run pcprof html");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("xload8_u32") || html.contains("xload"),
        "Pulley disassembly"
    );

    let dom = run_chromium(
        &chromium,
        &dir.path("chromium-profile"),
        &["--dump-dom".to_string()],
        &format!("{}#selftest", file_url(&page)),
        &dom_dumped,
    );
    let r = selftest_result(&dom);
    assert_eq!(r["ok"], true, "{r}");
    let hottest = profile.functions_by_heat()[0].name.clone();
    assert_eq!(hottest, "sieve");
    assert_eq!(strings(&r["initial"]["names"])[0], hottest);
    assert_eq!(r["timelineLanes"], 3);
    assert!(r["sequences"].as_u64().unwrap() > 0, "hot sequences listed");

    let shot = dir.path("report.png");
    run_chromium(
        &chromium,
        &dir.path("chromium-profile-2"),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,1600".to_string(),
        ],
        &file_url(&page),
        &|_| png_written(&shot),
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(
        png.len() > 20_000,
        "a blank page would compress to almost nothing"
    );
    if std::env::var_os("PCPROF_UPDATE_SCREENSHOT").is_some_and(|v| v == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::copy(&shot, docs.join("html-report.png")).unwrap();
        eprintln!("updated docs/html-report.png");
    }
    if let Some(keep) = std::env::var_os("PCPROF_KEEP_REPORT") {
        let _ = std::fs::copy(&page, PathBuf::from(&keep).join("html-report.html"));
        let _ = std::fs::copy(&shot, PathBuf::from(&keep).join("html-report.png"));
        let _ = std::fs::copy(&input, PathBuf::from(&keep).join("demo.pcprof"));
    }
}
