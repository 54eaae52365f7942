//! What the analysis commands write, and what they do with a bad input:
//!
//! - an output that is an input (the same path, a symlink or a hard link to
//!   it) is refused and the input left intact;
//! - a symlink is written through (the link stays), a FIFO, a device or
//!   `/dev/stdout` is written into (never replaced), a failure removes the
//!   temporary file;
//! - a truncated or corrupt input: every command shows or writes its
//!   complete records, then exits 1 with one line naming the file and the
//!   byte offset.

use std::io::Read as _;
use std::os::unix::fs::FileTypeExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use pcprof::analysis::convert::ConvertError;
use pcprof::analysis::output::write_output;

use crate::common::TempDir;
use crate::convert::write_fixture;
use crate::demo::pcprof;

fn fixture(dir: &TempDir, name: &str) -> PathBuf {
    let path = dir.path(name);
    write_fixture(&path, ["hot", "warm", "cold"]);
    path
}

fn run(args: &[&Path]) -> Output {
    pcprof().args(args).output().expect("run pcprof")
}

fn p(s: &str) -> &Path {
    Path::new(s)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Names in `dir` that look like a left-over temporary file.
fn temporaries(dir: &TempDir) -> Vec<String> {
    std::fs::read_dir(&dir.0)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// The collapsed export of `input`, written to a regular file.
fn collapsed(dir: &TempDir, input: &Path) -> Vec<u8> {
    let plain = dir.path("plain.txt");
    let o = run(&[
        p("convert"),
        input,
        p("--to"),
        p("collapsed"),
        p("-o"),
        &plain,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::read(&plain).expect("read plain")
}

#[test]
fn a_symlink_output_writes_its_target_and_stays_a_link() {
    let dir = TempDir::new("out-symlink");
    let input = fixture(&dir, "in.pcprof");
    let want = collapsed(&dir, &input);

    // An existing target, through a relative link.
    std::fs::write(dir.path("real.txt"), "old").unwrap();
    let link = dir.path("link.txt");
    std::os::unix::fs::symlink("real.txt", &link).unwrap();
    let o = run(&[
        p("convert"),
        &input,
        p("--to"),
        p("collapsed"),
        p("-o"),
        &link,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_link(&link).unwrap(), p("real.txt"));
    assert_eq!(std::fs::read(dir.path("real.txt")).unwrap(), want);

    // A dangling link, through a chain of two: the final target is created.
    let page_link = dir.path("page-link.html");
    std::os::unix::fs::symlink("page-link2.html", &page_link).unwrap();
    std::os::unix::fs::symlink(dir.path("page.html"), dir.path("page-link2.html")).unwrap();
    let o = run(&[p("html"), &input, p("-o"), &page_link]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        page_link
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let page = std::fs::read_to_string(dir.path("page.html")).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(temporaries(&dir).is_empty(), "{:?}", temporaries(&dir));
}

#[test]
fn a_fifo_output_is_written_into() {
    let dir = TempDir::new("out-fifo");
    let input = fixture(&dir, "in.pcprof");
    let want = collapsed(&dir, &input);
    let fifo = dir.path("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);

    for args in [
        vec![
            p("convert"),
            &input,
            p("--to"),
            p("collapsed"),
            p("-o"),
            &fifo,
        ],
        vec![p("html"), &input, p("-o"), &fifo],
        vec![p("diff"), &input, &input, p("--html"), &fifo],
    ] {
        let path = fifo.clone();
        let reader = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            std::fs::File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .expect("read the fifo");
            bytes
        });
        let o = run(&args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        let got = reader.join().expect("reader");
        if args[0] == p("convert") {
            assert_eq!(got, want);
        } else {
            let page = String::from_utf8(got).unwrap();
            assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
        }
        assert!(fifo.metadata().unwrap().file_type().is_fifo(), "{args:?}");
        // Written into, not replaced: the command says "wrote".
        assert!(!stderr(&o).contains("replaced"), "{}", stderr(&o));
    }
    assert!(temporaries(&dir).is_empty(), "{:?}", temporaries(&dir));
}

#[test]
fn a_device_output_is_written_into_and_its_errors_name_it() {
    let dir = TempDir::new("out-device");
    let input = fixture(&dir, "in.pcprof");
    for args in [
        vec![p("convert"), &input, p("--to"), p("speedscope"), p("-o")],
        vec![p("html"), &input, p("-o")],
        vec![p("diff"), &input, &input, p("--html")],
    ] {
        let mut ok = args.clone();
        ok.push(p("/dev/null"));
        let o = run(&ok);
        assert!(o.status.success(), "{ok:?}: {}", stderr(&o));

        // /dev/full: every write fails with ENOSPC.
        let mut full = args.clone();
        full.push(p("/dev/full"));
        let o = run(&full);
        assert_eq!(o.status.code(), Some(1), "{full:?}");
        let err = stderr(&o);
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("pcprof: error: /dev/full: cannot write: No space left on device"),
            "{full:?}: {err}"
        );
    }
    // /dev/stdout is a link through /proc to the open file description:
    // written into, a pipe as a regular file, which is not renamed over.
    let want = collapsed(&dir, &input);
    let to_stdout = [
        p("convert"),
        &input,
        p("--to"),
        p("collapsed"),
        p("-o"),
        p("/dev/stdout"),
    ];
    let o = run(&to_stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, want);
    let file = dir.path("stdout.txt");
    let o = pcprof()
        .args(to_stdout)
        .stdout(std::fs::File::create(&file).unwrap())
        .output()
        .expect("run pcprof");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&file).unwrap(), want);
    assert!(temporaries(&dir).is_empty(), "{:?}", temporaries(&dir));

    for dev in ["/dev/null", "/dev/full"] {
        let m = Path::new(dev).metadata().unwrap();
        assert!(m.file_type().is_char_device(), "{dev} was replaced");
    }
}

#[test]
fn an_output_that_is_an_input_is_refused() {
    let dir = TempDir::new("out-same");
    let input = fixture(&dir, "in.pcprof");
    let other = fixture(&dir, "other.pcprof");
    let bytes = std::fs::read(&input).unwrap();
    let hard = dir.path("hard.pcprof");
    std::fs::hard_link(&input, &hard).unwrap();
    let soft = dir.path("soft.pcprof");
    std::os::unix::fs::symlink(&input, &soft).unwrap();
    let respelled = dir.0.join("sub/../in.pcprof");
    std::fs::create_dir(dir.path("sub")).unwrap();

    for out in [&input, &hard, &soft, &respelled] {
        for args in [
            vec![p("convert"), &input, p("--to"), p("native"), p("-o"), out],
            vec![p("html"), &input, p("-o"), out],
            vec![p("diff"), &other, &input, p("--html"), out],
            vec![p("diff"), &input, &other, p("--html"), out],
        ] {
            let o = run(&args);
            assert_eq!(o.status.code(), Some(1), "{args:?}");
            let err = stderr(&o);
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(
                err.contains("the output is the input file") && err.contains("in.pcprof"),
                "{args:?}: {err}"
            );
            // Refused before anything was shown or written.
            assert!(o.stdout.is_empty(), "{args:?}");
            assert_eq!(std::fs::read(&input).unwrap(), bytes, "{args:?}");
        }
    }
    assert!(soft.symlink_metadata().unwrap().file_type().is_symlink());
    assert!(temporaries(&dir).is_empty(), "{:?}", temporaries(&dir));
}

#[test]
fn a_failed_write_leaves_the_target_and_no_temporary_file() {
    let dir = TempDir::new("out-fail");
    let target = dir.path("out.txt");
    std::fs::write(&target, "before").unwrap();
    let e = write_output(&target, &[], |w| {
        std::io::Write::write_all(w, b"half").unwrap();
        Err::<(), _>(ConvertError::Io {
            path: target.clone(),
            source: std::io::Error::other("the export failed"),
        })
    })
    .unwrap_err();
    assert!(e.to_string().contains("the export failed"), "{e}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "before");
    assert!(temporaries(&dir).is_empty(), "{:?}", temporaries(&dir));

    // A directory is refused, not replaced.
    let sub = dir.path("sub");
    std::fs::create_dir(&sub).unwrap();
    let e = write_output(&sub, &[], |_| Ok(())).unwrap_err();
    assert!(
        e.to_string().contains("sub") && e.to_string().contains("directory"),
        "{e}"
    );
    assert!(sub.is_dir());
}

/// A truncated or corrupt input: each command's output holds the complete
/// records, and the command exits 1 with one line naming the file and the
/// byte offset where reading stopped.
#[test]
fn bad_inputs_fail_every_analysis_command_after_its_output() {
    let dir = TempDir::new("out-bad");
    let good = fixture(&dir, "good.pcprof");
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path("cut.pcprof");
    std::fs::write(&cut, &bytes[..bytes.len() - 30]).unwrap();
    let corrupt = dir.path("corrupt.pcprof");
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    std::fs::write(&corrupt, &flipped).unwrap();

    for (bad, what) in [(&cut, "truncated record"), (&corrupt, "corrupt record")] {
        let loaded = pcprof::analysis::load(bad, &Default::default(), |_| {}).unwrap();
        let offset = loaded.read_error_offset.expect("a read error");
        let name = bad.file_name().unwrap().to_str().unwrap();
        let page = dir.path("page.html");
        let flame = dir.path("flame.txt");
        let cases: Vec<(Vec<&Path>, &str)> = vec![
            (vec![p("report"), bad], "report"),
            (
                vec![p("sequences"), bad, p("--decoder"), p("auto")],
                "sequences",
            ),
            (vec![p("html"), bad, p("-o"), &page], "html"),
            (
                vec![
                    p("convert"),
                    bad,
                    p("--to"),
                    p("collapsed"),
                    p("-o"),
                    &flame,
                ],
                "convert",
            ),
            (vec![p("diff"), &good, bad], "diff"),
        ];
        for (args, command) in cases {
            let o = run(&args);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(1), "{command} {name}: {err}");
            let last = err.lines().last().unwrap_or_default();
            assert!(
                last.starts_with("pcprof: error: ")
                    && last.contains(name)
                    && last.contains(&format!("{what} at byte {offset}")),
                "{command} {name}: {err}"
            );
            let stdout = String::from_utf8_lossy(&o.stdout);
            match command {
                "report" | "diff" => assert!(stdout.contains("hot"), "{command}: {stdout}"),
                "sequences" => assert!(!stdout.is_empty(), "{command}"),
                "html" => {
                    assert!(last.contains("page.html holds only the complete records"));
                    let page = std::fs::read_to_string(&page).unwrap();
                    assert!(page.contains("hot"), "{command}");
                }
                _ => {
                    assert!(last.contains("flame.txt holds only the complete records"));
                    let flame = std::fs::read_to_string(&flame).unwrap();
                    assert!(flame.lines().any(|l| l.starts_with("hot;")), "{flame}");
                }
            }
        }
        // Every target format, not only the one checked above.
        for to in ["native", "pulley", "firefox", "speedscope"] {
            let out = dir.path(&format!("out.{to}"));
            let o = run(&[p("convert"), bad, p("--to"), p(to), p("-o"), &out]);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(1), "convert --to {to} {name}: {err}");
            let last = err.lines().last().unwrap_or_default();
            assert!(
                last.contains(&format!("{what} at byte {offset}"))
                    && last.contains(&format!("out.{to} holds only the complete records")),
                "convert --to {to} {name}: {err}"
            );
            assert!(out.metadata().unwrap().len() > 0, "{to}");
        }
    }
}
