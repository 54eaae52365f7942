//! Writing an analysis command's output (`convert -o`, `html -o`,
//! `diff --html`) without ever destroying an input or a special file.
//!
//! - An output that is one of the inputs is refused before anything is
//!   written. "Is" means the same file, by device and inode after following
//!   symlinks: a symlink to an input, a hard link to it, or the same path
//!   spelled differently are all refused.
//! - A symlink is followed to its final target, and that target is replaced:
//!   the symlink stays a symlink.
//! - A regular file (or a path that does not exist yet) is written to a
//!   temporary file beside it, synced, and renamed into place only when
//!   complete: a failure never leaves half a file, and the temporary file is
//!   removed.
//! - A FIFO, a character or block device, or another non-regular file is
//!   written straight into (renaming over it would replace it); a failure
//!   there (ENOSPC from `/dev/full`, a reader gone) is an error naming it.
//! - A path through `/proc` (`/dev/stdout` is `/proc/self/fd/1`) names an
//!   open file description, not a place in a directory: it is written into,
//!   appending when it is a regular file (as the shell's `>` or `>>` left
//!   it), never renamed over.
//! - A directory is refused.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::analysis::convert::ConvertError;

/// Symlinks followed before giving up (Linux's own limit).
const MAX_SYMLINK_HOPS: u32 = 40;

/// Whether `a` and `b` name the same existing file (device and inode, after
/// following symlinks). A path that cannot be inspected is not the same.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => same_identity(&a, &b),
        _ => false,
    }
}

#[cfg(unix)]
fn same_identity(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_identity(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    // No inodes to compare: only `refuse_inputs`' canonical paths apply.
    false
}

/// Whether [`write_output`] to `output` would replace an existing file (a
/// regular one, not reached through `/proc`), rather than create one or
/// write into one.
pub fn would_replace(output: &Path) -> bool {
    std::fs::metadata(output).is_ok_and(|m| m.is_file())
        && resolve_symlinks(output).is_ok_and(|(_, through_proc)| !through_proc)
}

/// Fails with [`ConvertError::SameFile`] when `output` is one of `inputs`.
pub fn refuse_inputs(output: &Path, inputs: &[&Path]) -> Result<(), ConvertError> {
    for input in inputs {
        let same_path = matches!(
            (std::fs::canonicalize(input), std::fs::canonicalize(output)),
            (Ok(a), Ok(b)) if a == b
        );
        if same_path || same_file(input, output) {
            return Err(ConvertError::SameFile {
                output: output.to_path_buf(),
                input: input.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Refuses `output` if it is one of `inputs`, then runs `write` on a
/// buffered writer to it, as the module documentation describes (temporary
/// file and rename for a regular file, straight into a FIFO or device).
pub fn write_output<T>(
    output: &Path,
    inputs: &[&Path],
    write: impl FnOnce(&mut BufWriter<File>) -> Result<T, ConvertError>,
) -> Result<T, ConvertError> {
    refuse_inputs(output, inputs)?;
    let io_err = |source| ConvertError::Io {
        path: output.to_path_buf(),
        source,
    };
    // The kernel follows the links here, `/proc`'s magic ones included.
    let existing = match std::fs::metadata(output) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(e)),
    };
    match existing {
        Some(m) if m.is_dir() => Err(io_err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "is a directory",
        ))),
        Some(m) if !m.is_file() => write_into(output, false, write),
        Some(m) => {
            let (target, through_proc) = resolve_symlinks(output).map_err(io_err)?;
            if through_proc {
                write_into(output, true, write)
            } else {
                write_replacing(output, &target, Some(m.permissions()), write)
            }
        }
        None => {
            let (target, _) = resolve_symlinks(output).map_err(io_err)?;
            write_replacing(output, &target, None, write)
        }
    }
}

/// Follows `path` while it is a symlink; the result is the path of the
/// final target, which may not exist yet (a dangling symlink is written
/// through, creating its target), and whether a link on the way was under
/// `/proc` (whose targets are descriptions like `pipe:[1234]` or a file's
/// old name, not paths to rename onto).
fn resolve_symlinks(path: &Path) -> io::Result<(PathBuf, bool)> {
    let mut path = path.to_path_buf();
    let mut through_proc = false;
    for _ in 0..MAX_SYMLINK_HOPS {
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                through_proc |= path.starts_with("/proc");
                let link = std::fs::read_link(&path)?;
                // A relative link is relative to the directory holding it.
                path = match path.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            _ => return Ok((path, through_proc)),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("more than {MAX_SYMLINK_HOPS} levels of symbolic links"),
    ))
}

/// Writes straight into an existing file opened through `output` (a FIFO,
/// a device, an open file named through `/proc`, appended to): no temporary
/// file, no truncation, no sync (FIFOs and many devices refuse `fsync`).
fn write_into<T>(
    output: &Path,
    append: bool,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<T, ConvertError>,
) -> Result<T, ConvertError> {
    let io_err = |source| ConvertError::Io {
        path: output.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .write(true)
        .append(append)
        .open(output)
        .map_err(io_err)?;
    let mut w = BufWriter::with_capacity(1 << 16, file);
    let value = write(&mut w)?;
    w.into_inner().map_err(|e| io_err(e.into_error()))?;
    Ok(value)
}

/// Writes a temporary file beside `target` and renames it over `target`
/// once complete and synced; removes the temporary file on any failure.
fn write_replacing<T>(
    output: &Path,
    target: &Path,
    permissions: Option<std::fs::Permissions>,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<T, ConvertError>,
) -> Result<T, ConvertError> {
    // Unique per process and call: library users may convert concurrently.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let io_err = |source| ConvertError::Io {
        path: output.to_path_buf(),
        source,
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".to_string());
    let tmp = target.with_file_name(format!(
        ".{name}.pcprof-{}-{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    // `create_new`: never write through whatever already sits at that name.
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|source| ConvertError::Io {
            path: tmp.clone(),
            source,
        })?;
    let result = (|| {
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let value = write(&mut w)?;
        let file = w.into_inner().map_err(|e| io_err(e.into_error()))?;
        // The replaced file keeps its mode (a derived report shared with a
        // group stays shared).
        if let Some(p) = permissions {
            file.set_permissions(p).map_err(io_err)?;
        }
        file.sync_all().map_err(io_err)?;
        std::fs::rename(&tmp, target).map_err(io_err)?;
        Ok(value)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
