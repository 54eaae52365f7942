//! The reading half shared by both formats: [`ProfileReader`] detects the
//! format by the first byte, reads frames with bounded allocations, and
//! turns every fault into a [`ReadError`] naming the byte offset; each
//! format's own decoding is in [`super::native`] and [`super::pulley`].

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use super::batch::Sample;
use super::records::{
    FileHeader, FunctionRecord, InterpreterRecord, ListingRecord, PushRecord, RateRecord, Record,
    RetiredRecord, SamplingRecord, Summary, UnloadRecord,
};
use super::stacks::StackNode;
use super::{Format, MAGIC, OLDEST_VERSION, PULLEY_FUNCTION, PULLEY_SAMPLES, VERSION};

/// What is wrong with a profile file.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadErrorKind {
    /// The file has no bytes.
    Empty,
    /// The first byte is neither the native magic nor a Pulley tag.
    UnknownFormat {
        /// The first byte.
        first_byte: u8,
    },
    /// The native version is not one this reader understands.
    UnsupportedVersion {
        /// The version found.
        version: u16,
    },
    /// The file ends inside a record.
    Truncated {
        /// Bytes the record needs from its start.
        needed: u64,
        /// Bytes the file has from the record's start.
        available: u64,
    },
    /// A record's checksum does not match its bytes.
    Checksum {
        /// Checksum stored in the frame.
        stored: u32,
        /// Checksum of the bytes.
        computed: u32,
    },
    /// A length field is beyond what any valid record has.
    TooLarge {
        /// The length found.
        len: u64,
    },
    /// A Pulley section tag other than 1 or 2.
    UnknownTag {
        /// The tag found.
        tag: u8,
    },
    /// The record's content does not decode.
    Invalid {
        /// What is wrong.
        reason: String,
    },
    /// Reading failed.
    Io(io::Error),
}

/// A profile file could not be read: names the file (when known) and the
/// byte offset of the record at fault.
#[derive(Debug)]
pub struct ReadError {
    path: Option<PathBuf>,
    offset: u64,
    kind: ReadErrorKind,
}

impl ReadError {
    pub(super) fn new(offset: u64, kind: ReadErrorKind) -> ReadError {
        ReadError {
            path: None,
            offset,
            kind,
        }
    }

    /// An error at `offset` of the file at `path`: for readers of a profile
    /// built on this one (an analysis reading a function's code back).
    pub fn at(path: Option<PathBuf>, offset: u64, kind: ReadErrorKind) -> ReadError {
        ReadError { path, offset, kind }
    }

    /// Byte offset of the record at fault (0 for errors about the whole file).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// What is wrong.
    pub fn kind(&self) -> &ReadErrorKind {
        &self.kind
    }

    /// The file, if the reader was opened from a path.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether the file merely ends early (a run killed mid-write): every
    /// record before [`ReadError::offset`] is complete.
    pub fn is_truncation(&self) -> bool {
        matches!(self.kind, ReadErrorKind::Truncated { .. })
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.path {
            write!(f, "{}: ", p.display())?;
        }
        let at = self.offset;
        match &self.kind {
            ReadErrorKind::Empty => write!(f, "empty file: not a profile"),
            ReadErrorKind::UnknownFormat { first_byte } => write!(
                f,
                "not a profile: first byte is {first_byte:#04x}, \
                 expected the pcprof magic or a Pulley section tag (1 or 2)"
            ),
            ReadErrorKind::UnsupportedVersion { version } => write!(
                f,
                "native format version {version} at byte 8 is not supported (this pcprof reads versions {OLDEST_VERSION} to {VERSION})"
            ),
            ReadErrorKind::Truncated { needed, available } => write!(
                f,
                "truncated record at byte {at}: it needs {needed} bytes but the file has {available} more"
            ),
            ReadErrorKind::Checksum { stored, computed } => write!(
                f,
                "corrupt record at byte {at}: checksum {computed:#010x} does not match stored {stored:#010x}"
            ),
            ReadErrorKind::TooLarge { len } => {
                write!(f, "corrupt record at byte {at}: length {len} is too large")
            }
            ReadErrorKind::UnknownTag { tag } => {
                write!(f, "corrupt section at byte {at}: unknown tag {tag:#04x}")
            }
            ReadErrorKind::Invalid { reason } => write!(f, "corrupt record at byte {at}: {reason}"),
            ReadErrorKind::Io(e) => write!(f, "read error at byte {at}: {e}"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ReadErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// One item read from a profile.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A function was loaded.
    Function(FunctionRecord),
    /// A function was unloaded.
    Unload(UnloadRecord),
    /// An interpreter was registered.
    Interpreter(InterpreterRecord),
    /// An interpreter finished.
    Retired(RetiredRecord),
    /// A batch of samples, in time order.
    Samples(Vec<Sample>),
    /// The rate changed or sampling paused.
    Rate(RateRecord),
    /// The closing statistics.
    Summary(Summary),
    /// How the ticks were placed (version 2 files).
    Sampling(SamplingRecord),
    /// Call stacks (version 3 files), each before the first sample whose
    /// [`Sample::stack`] names it. Ids follow one another from 1, and a
    /// node's parent is introduced before it (0: the empty stack), so an
    /// analysis may keep them in a vector indexed by id.
    Stacks(Vec<StackNode>),
}

/// Streams the events of a profile file of either format.
#[derive(Debug)]
pub struct ProfileReader<R: Read> {
    pub(super) source: R,
    pub(super) format: Format,
    pub(super) header: Option<FileHeader>,
    pub(super) offset: u64,
    /// A byte read to detect the format that belongs to the first record.
    pub(super) pending: Option<u8>,
    pub(super) buf: Vec<u8>,
    pub(super) path: Option<PathBuf>,
    pub(super) done: bool,
    /// The native file's version (0 for Pulley files).
    pub(super) version: u16,
    /// Listings read so far, by code hash: each function record whose code
    /// has one gets it attached.
    pub(super) listings: HashMap<u64, Arc<ListingRecord>>,
    /// Pulley files: where the reader is inside a samples section, which it
    /// streams in bounded chunks.
    pub(super) pulley: PulleySection,
    /// Pulley files: the PCs of a chunk, for `next_into`'s `Sample`s.
    pub(super) pulley_pcs: Vec<RawPc>,
    /// Where the code of the last function event lies in the source.
    pub(super) code_at: Option<u64>,
    /// The highest stack id introduced so far (version 3).
    pub(super) stacks_known: u32,
    /// The push record, once read (version 3).
    pub(super) push: Option<PushRecord>,
    /// Pulley files: function code is kept while it totals at most this
    /// many bytes; past it, code streams past into a checksum.
    pub(super) code_budget: u64,
    /// Code kept so far against `code_budget`.
    pub(super) code_kept: u64,
    /// The last function event's code, when it was not kept.
    pub(super) skipped: Option<SkippedCode>,
    /// Where skipped code streams through (allocated at the first skip).
    pub(super) scratch: Vec<u8>,
}

/// A function's code that the reader let stream past rather than keep
/// (see [`ProfileReader::keep_code_up_to`]): what a later pass needs to
/// read it back and check it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SkippedCode {
    /// Where the code starts in the source.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
    /// Its CRC-32 (as `crc32fast::hash` of the bytes).
    pub crc: u32,
}

/// Buffer of a file opened by [`ProfileReader::open`]: half a Pulley
/// chunk's bytes, so that chunks are read straight into their buffer
/// rather than copied through this one.
const BUF_CAPACITY: usize = 1 << 18;

impl ProfileReader<BufReader<File>> {
    /// Opens a profile file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ReadError> {
        let path = path.as_ref();
        let with_path = |mut e: ReadError| {
            e.path = Some(path.to_path_buf());
            e
        };
        let file =
            File::open(path).map_err(|e| with_path(ReadError::new(0, ReadErrorKind::Io(e))))?;
        let mut r =
            ProfileReader::new(BufReader::with_capacity(BUF_CAPACITY, file)).map_err(with_path)?;
        r.path = Some(path.to_path_buf());
        Ok(r)
    }
}

/// Reads up to `n` bytes into `buf` (replacing its content) without trusting
/// `n` for the allocation; returns how many bytes there were.
pub(super) fn read_up_to<R: Read>(r: &mut R, n: u64, buf: &mut Vec<u8>) -> io::Result<u64> {
    buf.clear();
    r.take(n).read_to_end(buf).map(|k| k as u64)
}

/// Fills `buf` as far as the source allows; returns the bytes read.
pub(super) fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Reads a fixed-size field of the section that started at `start`.
pub(super) fn take_fixed<R: Read, const N: usize>(
    r: &mut R,
    start: u64,
    pos: &mut u64,
) -> Result<[u8; N], ReadError> {
    let mut b = [0u8; N];
    let got = read_full(r, &mut b).map_err(|e| ReadError::new(start, ReadErrorKind::Io(e)))?;
    if got < N {
        return Err(ReadError::new(
            start,
            ReadErrorKind::Truncated {
                needed: *pos + N as u64,
                available: *pos + got as u64,
            },
        ));
    }
    *pos += N as u64;
    Ok(b)
}

/// Reads a variable-size field of `n` bytes into `buf`.
pub(super) fn take_vec<R: Read>(
    r: &mut R,
    start: u64,
    pos: &mut u64,
    n: u64,
    buf: &mut Vec<u8>,
) -> Result<(), ReadError> {
    let got = read_up_to(r, n, buf).map_err(|e| ReadError::new(start, ReadErrorKind::Io(e)))?;
    if got < n {
        return Err(ReadError::new(
            start,
            ReadErrorKind::Truncated {
                needed: *pos + n,
                available: *pos + got,
            },
        ));
    }
    *pos += n;
    Ok(())
}

/// Streams `n` bytes of the section that started at `start` through
/// `scratch` into a CRC-32, keeping none of them.
pub(super) fn take_crc<R: Read>(
    r: &mut R,
    start: u64,
    pos: &mut u64,
    n: u64,
    scratch: &mut Vec<u8>,
) -> Result<u32, ReadError> {
    const SCRATCH: usize = 1 << 16;
    if scratch.len() < SCRATCH {
        scratch.resize(SCRATCH, 0);
    }
    let mut crc = crc32fast::Hasher::new();
    let mut got = 0u64;
    while got < n {
        let want = usize::try_from(n - got).map_or(SCRATCH, |w| w.min(SCRATCH));
        let k = read_full(r, &mut scratch[..want])
            .map_err(|e| ReadError::new(start, ReadErrorKind::Io(e)))?;
        crc.update(&scratch[..k]);
        got += k as u64;
        if k < want {
            return Err(ReadError::new(
                start,
                ReadErrorKind::Truncated {
                    needed: *pos + n,
                    available: *pos + got,
                },
            ));
        }
    }
    *pos += n;
    Ok(crc.finalize())
}

impl<R: Read> ProfileReader<R> {
    /// Starts reading: detects the format and, for native files, reads the
    /// header.
    pub fn new(mut source: R) -> Result<Self, ReadError> {
        let io_err = |e| ReadError::new(0, ReadErrorKind::Io(e));
        let mut first = [0u8; 1];
        if read_full(&mut source, &mut first).map_err(io_err)? == 0 {
            return Err(ReadError::new(0, ReadErrorKind::Empty));
        }
        let mut reader = ProfileReader {
            source,
            format: Format::Pulley,
            header: None,
            offset: 0,
            pending: None,
            buf: Vec::new(),
            path: None,
            done: false,
            version: 0,
            listings: HashMap::new(),
            pulley: PulleySection::default(),
            pulley_pcs: Vec::new(),
            code_at: None,
            stacks_known: 0,
            push: None,
            code_budget: u64::MAX,
            code_kept: 0,
            skipped: None,
            scratch: Vec::new(),
        };
        match first[0] {
            b if b == MAGIC[0] => {
                let mut rest = [0u8; MAGIC.len() + 1];
                let got = read_full(&mut reader.source, &mut rest).map_err(io_err)?;
                if rest[..got.min(MAGIC.len() - 1)] != MAGIC[1..1 + got.min(MAGIC.len() - 1)] {
                    return Err(ReadError::new(
                        0,
                        ReadErrorKind::UnknownFormat { first_byte: b },
                    ));
                }
                if got < rest.len() {
                    return Err(ReadError::new(
                        0,
                        ReadErrorKind::Truncated {
                            needed: MAGIC.len() as u64 + 2,
                            available: 1 + got as u64,
                        },
                    ));
                }
                let version = u16::from_le_bytes([rest[MAGIC.len() - 1], rest[MAGIC.len()]]);
                if !(OLDEST_VERSION..=VERSION).contains(&version) {
                    return Err(ReadError::new(
                        MAGIC.len() as u64,
                        ReadErrorKind::UnsupportedVersion { version },
                    ));
                }
                reader.format = Format::Native;
                reader.version = version;
                reader.offset = MAGIC.len() as u64 + 2;
                let at = reader.offset;
                match reader.next_native()? {
                    Some(Record::Header(h)) => reader.header = Some(h),
                    Some(other) => {
                        return Err(ReadError::new(
                            at,
                            ReadErrorKind::Invalid {
                                reason: format!(
                                    "first record is a {} record, not the header",
                                    other.kind()
                                ),
                            },
                        ));
                    }
                    None => {
                        return Err(ReadError::new(
                            at,
                            ReadErrorKind::Truncated {
                                needed: 8,
                                available: 0,
                            },
                        ));
                    }
                }
            }
            tag @ (PULLEY_FUNCTION | PULLEY_SAMPLES) => reader.pending = Some(tag),
            b => {
                return Err(ReadError::new(
                    0,
                    ReadErrorKind::UnknownFormat { first_byte: b },
                ));
            }
        }
        Ok(reader)
    }

    /// The file's format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The native format's version (FORMAT.md, "Version history"); 0 for
    /// Pulley files.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// The push record (what became of the intervals pushed while
    /// recording), once read: it comes just before the summary.
    pub fn push_record(&self) -> Option<&PushRecord> {
        self.push.as_ref()
    }

    /// The header of a native file (`None` for Pulley files).
    pub fn header(&self) -> Option<&FileHeader> {
        self.header.as_ref()
    }

    /// Offset of the next record: after an error, the offset up to which
    /// every record was complete.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Where the bytes of the last [`Event::Function`]'s code start in the
    /// source, when they are stored there as they are (always, in both
    /// formats as written today): an analysis may drop the code of a big
    /// function and read it back from the file if a sample needs it.
    /// `None` before the first function event.
    pub fn function_code_offset(&self) -> Option<u64> {
        self.code_at
    }

    /// Keeps function code only while it totals at most `bytes` (Pulley
    /// files, whose code is most of the file: Yosys' is 136 MB). Past that,
    /// a function event comes with empty `code`, and
    /// [`ProfileReader::skipped_code`] tells where the code lies, its length
    /// and its CRC-32: the bytes stream through one scratch buffer, so an
    /// unsampled function costs no allocation and no copy. Native files
    /// keep all code (their listings are matched by it).
    pub fn keep_code_up_to(&mut self, bytes: u64) {
        self.code_budget = bytes;
    }

    /// After an [`Event::Function`] whose code was not kept (see
    /// [`ProfileReader::keep_code_up_to`]): that code's place, length and
    /// checksum. `None` when the event carries its code.
    pub fn skipped_code(&self) -> Option<SkippedCode> {
        self.skipped
    }

    /// The next event into `samples` (see [`ProfileReader::next_into`]).
    fn next_event_into(&mut self, samples: &mut Vec<Sample>) -> Result<Option<Event>, ReadError> {
        match self.format {
            Format::Pulley => self.next_pulley_into(samples),
            Format::Native => self.next_native_into(samples),
        }
    }

    /// Ends the iteration after the end of the file or an error.
    fn settle(
        &mut self,
        result: Result<Option<Event>, ReadError>,
    ) -> Option<Result<Event, ReadError>> {
        match result {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(mut e) => {
                self.done = true;
                e.path = self.path.clone();
                Some(Err(e))
            }
        }
    }
}

/// Allocation-free reading of sample batches, for analyses that aggregate
/// tens of millions of samples: the batch is decoded into a buffer the
/// caller reuses, instead of a fresh `Vec` per [`Event::Samples`].
impl<R: Read> ProfileReader<R> {
    /// Like [`Iterator::next`], but a batch of samples is decoded into
    /// `samples` (cleared first, its capacity reused from call to call) and
    /// announced as an empty [`Event::Samples`]; every other event is
    /// returned as `next` returns it. Errors and the end of the file are as
    /// for `next`, after which `samples` is empty.
    pub fn next_into(&mut self, samples: &mut Vec<Sample>) -> Option<Result<Event, ReadError>> {
        samples.clear();
        if self.done {
            return None;
        }
        let result = self.next_event_into(samples);
        if result.is_err() {
            samples.clear();
        }
        self.settle(result)
    }
}

/// A PC of a Pulley file as stored: 8 bytes, little-endian
/// (`u64::from_le_bytes`).
pub type RawPc = [u8; 8];

/// The tightest path for Pulley files, whose samples are bare PCs.
impl<R: Read> ProfileReader<R> {
    /// Like [`ProfileReader::next_into`], except that a Pulley file's
    /// samples are read straight into `pcs`, as stored (no [`Sample`] of 24
    /// bytes per 8-byte PC, no decoding pass; `samples` stays empty); a
    /// native file's go to `samples` (`pcs` stays empty). Both are cleared
    /// first. A Pulley samples section comes as several [`Event::Samples`]
    /// of at most 65 536 samples each, so memory is bounded however large
    /// the section.
    pub fn next_pcs_into(
        &mut self,
        samples: &mut Vec<Sample>,
        pcs: &mut Vec<RawPc>,
    ) -> Option<Result<Event, ReadError>> {
        samples.clear();
        pcs.clear();
        if self.done {
            return None;
        }
        let result = match self.format {
            Format::Pulley => self.next_pulley_pcs(pcs),
            Format::Native => self.next_native_into(samples),
        };
        if result.is_err() {
            samples.clear();
            pcs.clear();
        }
        self.settle(result)
    }
}

impl<R: Read> Iterator for ProfileReader<R> {
    type Item = Result<Event, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut samples = Vec::new();
        let result = self.next_event_into(&mut samples).map(|e| {
            e.map(|e| match e {
                Event::Samples(_) => Event::Samples(samples),
                other => other,
            })
        });
        self.settle(result)
    }
}

impl<R: Read> std::iter::FusedIterator for ProfileReader<R> {}

/// Where the reader is inside a Pulley samples section.
#[derive(Debug, Default)]
pub(crate) struct PulleySection {
    /// Samples the section declares.
    pub(super) count: u32,
    /// Samples of it not yet read.
    pub(super) left: u32,
    /// Bytes of it read so far (tag and count included).
    pub(super) pos: u64,
    /// The error to report after the samples read before it.
    pub(super) failed: Option<ReadError>,
}
