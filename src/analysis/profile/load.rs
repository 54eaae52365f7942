//! Reading a profile into a [`Profile`]: the entry points and the threads.
//!
//! - One thread reads and decodes (the kernel's copy from the page cache
//!   and, for native files, the varints), handing over [`Block`]s of about
//!   64 Ki samples through a channel of two; the aggregating thread applies
//!   them in file order.
//! - Pulley files (bare PCs, no times, one interpreter) are tallied by
//!   several threads: every chunk of PCs goes to one tally in turn, every
//!   function to all of them in file order, and the tallies are merged at
//!   the end, so the result is the one-threaded pass's.
//! - Code dropped while reading (see `aggregate.rs`) is read back for the
//!   sampled functions at the end, checked against the CRC taken when it
//!   was read.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Profile;
use super::aggregate::{Aggregator, CodeAt, KEEP_CODE_BYTES, Tally, tally_indexed};
use super::timeline::TimelineBuilder;
use super::{LoadOptions, StackTree, Timeline};
use crate::format::{
    Event, FileHeader, Format, ProfileReader, RawPc, ReadError, ReadErrorKind, Sample,
};

/// Why a profile could not be loaded at all.
#[derive(Debug)]
pub struct LoadError(pub ReadError);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Where dropped code can be read back from.
enum CodeSource<'a> {
    File(&'a Path),
    Bytes(&'a [u8]),
}

/// Reads and aggregates a profile. `progress` is called now and then with
/// the bytes read so far.
pub fn load(
    path: &Path,
    options: &LoadOptions,
    progress: impl FnMut(u64),
) -> Result<Profile, LoadError> {
    let file_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let reader = ProfileReader::open(path).map_err(LoadError)?;
    let p = aggregate_pipelined(
        reader,
        path.to_path_buf(),
        file_bytes,
        options,
        CodeSource::File(path),
        progress,
    )?;
    Ok(p)
}

/// Like [`load`], from a profile already in memory (`path` is left empty):
/// for tests and fuzzing, which have bytes rather than a file.
pub fn load_bytes(
    bytes: &[u8],
    options: &LoadOptions,
    progress: impl FnMut(u64),
) -> Result<Profile, LoadError> {
    let reader = ProfileReader::new(bytes).map_err(LoadError)?;
    aggregate_pipelined(
        reader,
        PathBuf::new(),
        bytes.len() as u64,
        options,
        CodeSource::Bytes(bytes),
        progress,
    )
}

/// Like [`load`], from any reader: an embedder who recorded into
/// `.output_writer(sink)` reports straight from the bytes its sink received
/// (`examples/from_memory.rs`). The profile's `file_bytes` counts the bytes
/// read; its `path` is `<memory>`. Every function's code stays in memory
/// until the end (a stream cannot be read again).
pub fn load_reader<R: Read>(
    source: R,
    options: &LoadOptions,
    mut progress: impl FnMut(u64),
) -> Result<Profile, LoadError> {
    /// Counts what the reader consumed, since a stream has no length.
    struct Counted<R> {
        inner: R,
        bytes: u64,
    }
    impl<R: Read> Read for Counted<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.bytes += n as u64;
            Ok(n)
        }
    }
    let mut counted = Counted {
        inner: source,
        bytes: 0,
    };
    let mut reader = ProfileReader::new(&mut counted).map_err(LoadError)?;
    let mut p = empty(
        PathBuf::from("<memory>"),
        0,
        reader.format(),
        reader.header(),
    );
    let mut agg = Aggregator::new(p.format, options);
    let mut samples: Vec<Sample> = Vec::new();
    let mut pcs: Vec<RawPc> = Vec::new();
    let mut last_progress = 0u64;
    while let Some(ev) = reader.next_pcs_into(&mut samples, &mut pcs) {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                p.read_error_offset = Some(e.offset());
                p.read_error = Some(e.to_string());
                break;
            }
        };
        let code_at = code_offset(&ev, &reader);
        agg.event(&mut p, ev, &samples, &pcs, code_at, true);
        let at = reader.offset();
        if at != last_progress {
            last_progress = at;
            progress(at);
        }
    }
    progress(reader.offset());
    drop(reader);
    // Nothing was dropped: the source cannot be read again.
    agg.finish(&mut p);
    p.file_bytes = counted.bytes;
    Ok(p)
}

fn empty(path: PathBuf, file_bytes: u64, format: Format, header: Option<&FileHeader>) -> Profile {
    Profile {
        path,
        file_bytes,
        format,
        header: header.cloned(),
        summary: None,
        sampling: None,
        functions: Vec::new(),
        interpreters: Vec::new(),
        rates: Vec::new(),
        total_samples: 0,
        unresolved: 0,
        time_range: None,
        timeline: Timeline::default(),
        read_error: None,
        read_error_offset: None,
        stacks: StackTree::default(),
    }
}

/// Where a function event's code lies in the source.
fn code_offset<R: Read>(ev: &Event, reader: &ProfileReader<R>) -> CodeAt {
    match ev {
        Event::Function(_) => CodeAt {
            offset: reader.function_code_offset(),
            skipped: reader.skipped_code(),
        },
        _ => CodeAt::default(),
    }
}

/// Samples (or PCs) a [`Block`] gathers before it is handed over: enough
/// that the hand-over costs nothing per sample, little enough that the
/// block stays in the cache.
const BLOCK_SAMPLES: usize = 1 << 16;
/// Events a [`Block`] gathers at most (files of many small records).
const BLOCK_EVENTS: usize = 1024;
/// Pulley files smaller than this are tallied on one thread: below it, a
/// second thread costs more than it saves.
const PARALLEL_MIN_BYTES: u64 = 16 << 20;
/// Samples a Pulley file shows before more threads join the tally.
const PARALLEL_AFTER_SAMPLES: u64 = 1 << 20;

/// What the reading thread hands over: events in file order, each with the
/// end of its samples in `samples` / `pcs` and, for a function, where its
/// code lies in the source.
#[derive(Default)]
struct Block {
    events: Vec<(Event, usize, usize, CodeAt)>,
    samples: Vec<Sample>,
    /// Shared with the tally thread that counts them (Pulley files).
    pcs: Arc<PcBuf>,
    /// The reader's offset after the last event.
    offset: u64,
    /// Where reading stopped, in the last block.
    error: Option<ReadError>,
}

/// A block's PCs, which go back to the reading thread's pool when the last
/// thread that counts them lets go: 400 MB of samples fault in a few
/// buffers' pages, not 400 MB of fresh ones.
#[derive(Default)]
struct PcBuf {
    pcs: Vec<RawPc>,
    home: Option<std::sync::mpsc::Sender<Vec<RawPc>>>,
}

impl std::ops::Deref for PcBuf {
    type Target = [RawPc];
    fn deref(&self) -> &[RawPc] {
        &self.pcs
    }
}

impl Drop for PcBuf {
    fn drop(&mut self) {
        if let Some(home) = &self.home {
            // The reading side has ended when this fails: nothing to reuse.
            let _ = home.send(std::mem::take(&mut self.pcs));
        }
    }
}

/// What a tally thread is told, in file order.
enum TallyMsg {
    Function {
        addr: u64,
        len: u64,
    },
    /// PCs `pcs[from..to]`, the first of which has sample index `first`.
    Chunk {
        pcs: Arc<PcBuf>,
        from: usize,
        to: usize,
        first: u64,
    },
}

/// The aggregating threads.
fn aggregate_pipelined<R: Read + Send>(
    mut reader: ProfileReader<R>,
    path: PathBuf,
    file_bytes: u64,
    options: &LoadOptions,
    code: CodeSource<'_>,
    mut progress: impl FnMut(u64),
) -> Result<Profile, LoadError> {
    use std::sync::mpsc::{channel, sync_channel};

    let mut p = empty(path, file_bytes, reader.format(), reader.header());
    let mut agg = Aggregator::new(p.format, options);
    agg.code.can_drop = true;
    if !options.keep_all_code {
        // The same budget as the aggregator's: past it, code the file
        // holds streams past the reader, checksummed, never copied.
        reader.keep_code_up_to(KEEP_CODE_BYTES);
    }
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
        n => n,
    };
    let helpers = if p.format == Format::Pulley && file_bytes >= PARALLEL_MIN_BYTES {
        threads.saturating_sub(1)
    } else {
        0
    };
    let buckets = options.timeline_buckets;
    let (full_tx, full_rx) = sync_channel::<Block>(2);
    let (empty_tx, empty_rx) = channel::<Block>();
    let (pool_tx, pool_rx) = channel::<Vec<RawPc>>();
    let mut last_progress = 0;
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut samples = Vec::new();
            let mut pcs = Vec::new();
            loop {
                let mut block = empty_rx.try_recv().unwrap_or_default();
                block.events.clear();
                block.samples.clear();
                // The PCs go in a buffer of the pool (one a tally thread
                // let go), so that its pages are reused.
                let mut block_pcs = pool_rx.try_recv().unwrap_or_default();
                block_pcs.clear();
                let mut end = false;
                while block.events.len() < BLOCK_EVENTS
                    && block.samples.len() + block_pcs.len() < BLOCK_SAMPLES
                {
                    match reader.next_pcs_into(&mut samples, &mut pcs) {
                        Some(Ok(ev)) => {
                            let code_at = code_offset(&ev, &reader);
                            if block.samples.is_empty() && block_pcs.is_empty() {
                                // No copy for the first (for Pulley files,
                                // often the only) batch of a block.
                                std::mem::swap(&mut samples, &mut block.samples);
                                std::mem::swap(&mut pcs, &mut block_pcs);
                            } else {
                                block.samples.extend_from_slice(&samples);
                                block_pcs.extend_from_slice(&pcs);
                            }
                            block
                                .events
                                .push((ev, block.samples.len(), block_pcs.len(), code_at));
                        }
                        Some(Err(e)) => {
                            block.error = Some(e);
                            end = true;
                            break;
                        }
                        None => {
                            end = true;
                            break;
                        }
                    }
                }
                block.pcs = Arc::new(PcBuf {
                    pcs: block_pcs,
                    home: Some(pool_tx.clone()),
                });
                block.offset = reader.offset();
                // The aggregating side has gone only if it panicked.
                if full_tx.send(block).is_err() || end {
                    return;
                }
            }
        });
        // Tally threads, started once the file has shown many samples (a
        // file of code and few samples gains nothing from them): each
        // counts the chunks sent to it.
        let mut to_helpers: Vec<std::sync::mpsc::SyncSender<TallyMsg>> = Vec::new();
        let mut joins = Vec::new();
        let mut start_helpers = |p: &Profile, to_helpers: &mut Vec<_>| {
            for _ in 0..helpers {
                // A short queue: the PCs it holds are buffers out of the pool.
                let (tx, rx) = sync_channel::<TallyMsg>(8);
                joins.push(scope.spawn(move || {
                    let mut tally = Tally::new();
                    let mut timeline = TimelineBuilder::new(true, buckets);
                    for msg in rx {
                        match msg {
                            TallyMsg::Function { addr, len } => tally.add_function(addr, len, 0),
                            TallyMsg::Chunk {
                                pcs,
                                from,
                                to,
                                first,
                            } => tally_indexed(
                                &mut tally,
                                &mut timeline,
                                0,
                                first,
                                pcs.get(from..to).unwrap_or(&[]),
                                |pc| u64::from_le_bytes(*pc),
                            ),
                        }
                    }
                    (tally, timeline)
                }));
                // The functions read so far, once the thread runs to take
                // them (the channel is bounded).
                for f in &p.functions {
                    // A helper has gone only if it panicked; the join below
                    // reports it.
                    let _ = tx.send(TallyMsg::Function {
                        addr: f.addr,
                        len: f.code_len,
                    });
                }
                to_helpers.push(tx);
            }
        };
        let mut turn = 0usize;
        for mut block in full_rx {
            if helpers > 0 && to_helpers.is_empty() && agg.next_index() > PARALLEL_AFTER_SAMPLES {
                start_helpers(&p, &mut to_helpers);
            }
            let (mut s0, mut p0) = (0, 0);
            let pcs = block.pcs.clone();
            for (ev, s1, p1, code_at) in block.events.drain(..) {
                let mut mine = true;
                if !to_helpers.is_empty() {
                    match &ev {
                        Event::Function(f) => {
                            for tx in &to_helpers {
                                // A helper has gone only if it panicked; the
                                // join below reports it.
                                let _ = tx.send(TallyMsg::Function {
                                    addr: f.addr,
                                    len: code_at.skipped.map_or(f.code.len() as u64, |s| s.len),
                                });
                            }
                        }
                        Event::Samples(_) if p1 > p0 && agg.wants_interp_0() => {
                            turn = (turn + 1) % (to_helpers.len() + 1);
                            if turn > 0 {
                                mine = false;
                                let _ = to_helpers[turn - 1].send(TallyMsg::Chunk {
                                    pcs: pcs.clone(),
                                    from: p0,
                                    to: p1,
                                    first: agg.next_index(),
                                });
                            }
                        }
                        _ => {}
                    }
                }
                agg.event(
                    &mut p,
                    ev,
                    &block.samples[s0..s1],
                    &pcs[p0..p1],
                    code_at,
                    mine,
                );
                (s0, p0) = (s1, p1);
            }
            drop(pcs);
            if let Some(e) = block.error.take() {
                p.read_error_offset = Some(e.offset());
                p.read_error = Some(e.to_string());
            }
            if block.offset != last_progress {
                last_progress = block.offset;
                progress(block.offset);
            }
            // The reading side has ended when this fails: nothing to reuse.
            let _ = empty_tx.send(block);
        }
        drop(to_helpers);
        for join in joins {
            match join.join() {
                Ok((tally, timeline)) => {
                    agg.tally.merge(tally);
                    agg.timeline.merge(timeline);
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    let dropped = agg.finish(&mut p);
    restore_code(&mut p, dropped, &code).map_err(LoadError)?;
    progress(last_progress);
    Ok(p)
}

/// Reads back the code of the sampled functions whose code was dropped
/// while reading: (index, offset in the source, CRC-32 of the code).
fn restore_code(
    p: &mut Profile,
    mut dropped: Vec<(usize, u64, u32)>,
    source: &CodeSource<'_>,
) -> Result<(), ReadError> {
    if dropped.is_empty() {
        return Ok(());
    }
    dropped.sort_unstable_by_key(|d| d.1);
    let path = match source {
        CodeSource::File(path) => Some(path.to_path_buf()),
        _ => None,
    };
    let mut file = match source {
        CodeSource::File(path) => Some(
            std::fs::File::open(path)
                .map_err(|e| ReadError::at(path.to_path_buf().into(), 0, ReadErrorKind::Io(e)))?,
        ),
        _ => None,
    };
    for (i, at, crc) in dropped {
        let f = &mut p.functions[i];
        let len = usize::try_from(f.code_len).unwrap_or(usize::MAX);
        let code = match (&mut file, source) {
            (Some(file), _) => {
                let mut code = vec![0; len];
                file.seek(SeekFrom::Start(at))
                    .and_then(|_| file.read_exact(&mut code))
                    .map_err(|e| ReadError::at(path.clone(), at, ReadErrorKind::Io(e)))?;
                code
            }
            (_, CodeSource::Bytes(bytes)) => at
                .try_into()
                .ok()
                .and_then(|at: usize| bytes.get(at..at.checked_add(len)?))
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
            (None, CodeSource::File(_)) => Vec::new(),
        };
        if code.len() != len || crc32fast::hash(&code) != crc {
            let reason = format!(
                "the code of function {:?} ({} bytes at offset {at}) changed since it was read",
                f.name, f.code_len
            );
            return Err(ReadError::at(path, at, ReadErrorKind::Invalid { reason }));
        }
        f.code = code;
    }
    Ok(())
}
