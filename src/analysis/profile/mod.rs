//! A profile file, aggregated for analysis in one streaming pass.
//!
//! - [`load()`] reads a native or Pulley file record by record; memory holds
//!   the functions' names and addresses, the code of the sampled ones, a
//!   counter per *sampled* offset ([`Hits`]), the interpreters and a
//!   bounded timeline, never the samples: it grows with what was sampled,
//!   not with what was loaded or how long the run was.
//! - Code follows the samples too: a function no sample hit keeps only its
//!   length; big code is dropped as it is read and read back from the file
//!   for the functions that turn out sampled (`load.rs`).
//! - Threads: one reads and decodes, the others aggregate, handing over
//!   blocks of about 64 Ki samples (`load.rs`); per sample, a memo of the
//!   PCs seen turns resolution and counting into one lookup
//!   (`aggregate.rs`), however samples hop between functions.
//! - Samples resolve to functions by address and time (see
//!   [`crate::Resolver`]): unloaded code and reused addresses stay correct.
//! - Per-interpreter state is proportional to the interpreters that appear
//!   (the timeline is sparse, `timeline.rs`); a reused interpreter id's
//!   samples go to the registration live at their time, and its
//!   registrations are one interpreter in the result.
//! - Call stacks (format version 3) are kept as a tree of call paths with
//!   the samples of each (path, leaf instruction): memory follows the
//!   distinct stacks ([`StackTree`], `stacks.rs`).
//! - A file that ends early or has a corrupt record still yields the
//!   complete records before the fault; [`Profile::read_error`] tells where
//!   reading stopped.

use std::path::PathBuf;
use std::sync::Arc;

use crate::format::{FileHeader, Format, ListingRecord, RateRecord, SamplingRecord, Summary};

mod aggregate;
mod hits;
mod load;
mod stacks;
mod timeline;

/// The cheap hash map of integer keys (also the pprof export's).
#[cfg(feature = "export")]
pub(crate) use timeline::FoldMap;

pub use hits::Hits;
pub use load::{LoadError, load, load_bytes, load_reader};
// The streaming exports resolve a file's stacks as the model does.
#[cfg(feature = "export")]
pub(crate) use stacks::StackBuilder;
pub use stacks::{Frame, PathNode, StackLeaf, StackTree};

/// Options for [`load()`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Keep only the samples of this interpreter (native files).
    pub interp: Option<u32>,
    /// Upper bound on the number of timeline buckets.
    pub timeline_buckets: usize,
    /// Keep the code of every function, sampled or not (by default only
    /// the sampled functions' code is kept: see [`FunctionProfile::code`]).
    pub keep_all_code: bool,
    /// Threads that aggregate samples (besides the one that reads); 0: as
    /// many as the machine has cores, at most 4.
    pub threads: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            interp: None,
            timeline_buckets: 400,
            keep_all_code: false,
            threads: 0,
        }
    }
}

/// A function with the samples that fell in it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionProfile {
    /// Name.
    pub name: String,
    /// Address of its first byte.
    pub addr: u64,
    /// Its bytecode, when kept: always for a sampled function, for the
    /// others only with [`LoadOptions::keep_all_code`] (empty otherwise;
    /// [`FunctionProfile::code_len`] is its length either way).
    pub code: Vec<u8>,
    /// Length of its bytecode in bytes.
    pub code_len: u64,
    /// CRC-32 of its bytecode: with `code_len`, which functions share
    /// code, kept or not.
    pub code_crc: u32,
    /// Load time (ns since the profile's start; 0 in Pulley files).
    pub loaded_ns: u64,
    /// Unload time, if unloaded.
    pub unloaded_ns: Option<u64>,
    /// Samples in this function.
    pub samples: u64,
    /// Samples at each sampled byte offset.
    pub hits: Hits,
    /// Its instructions as its interpreter decoded them at record time, if
    /// the file carries them (shared by every function with this code).
    pub listing: Option<Arc<ListingRecord>>,
}

impl FunctionProfile {
    /// Offsets with at least one sample, with their counts, in offset order.
    pub fn hot_offsets(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.hits.iter()
    }

    /// Whether `other` has the same bytecode (by length and CRC-32, so
    /// also when either's code was not kept).
    pub fn same_code(&self, other: &FunctionProfile) -> bool {
        (self.code_len, self.code_crc) == (other.code_len, other.code_crc)
    }

    /// Whether its code is at hand (see [`FunctionProfile::code`]).
    pub fn has_code(&self) -> bool {
        self.code.len() as u64 == self.code_len
    }
}

/// An interpreter seen in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpreterProfile {
    /// Id.
    pub id: u32,
    /// Label (thread name), if given.
    pub label: Option<String>,
    /// Samples of this interpreter (before any filter).
    pub samples: u64,
    /// Registration time.
    pub registered_ns: u64,
    /// Retirement time, if retired.
    pub retired_ns: Option<u64>,
    /// Every registration of this id, in time order, when it was registered
    /// more than once (the recorder reuses the id of a retired
    /// interpreter); empty otherwise. A sample belongs to the registration
    /// with the greatest `registered_ns` at or before its time; the fields
    /// above sum them (`registered_ns`: the first; `retired_ns`: the last's).
    pub registrations: Vec<Registration>,
}

/// One registration of a reused interpreter id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Registration time.
    pub registered_ns: u64,
    /// Retirement time, if retired.
    pub retired_ns: Option<u64>,
    /// Samples of this registration (before any filter).
    pub samples: u64,
}

/// Samples per interpreter over time, in equal buckets, kept sparse: only
/// the (interpreter, bucket) pairs with samples, so a million interpreters
/// of one sample each cost a million cells, not a million lanes of buckets.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timeline {
    /// Width of a bucket, in ns (for Pulley files: in samples, see
    /// [`Timeline::by_sample_index`]).
    pub bucket_ns: u64,
    /// Time of the first bucket's start.
    pub start_ns: u64,
    /// Number of buckets: one past the last bucket with samples.
    pub buckets: usize,
    /// Every bucket with samples, ordered by interpreter id, then bucket.
    /// Registrations of one id (an id reused after its interpreter retired)
    /// are summed into one lane.
    pub cells: Vec<TimelineCell>,
    /// Which functions ran in each cell: ordered by interpreter id, bucket,
    /// then function (`None` last); a cell's entries sum to its `samples`.
    /// At most [`TIMELINE_FUNCTIONS_PER_CELL`] entries a cell: samples
    /// outside every function, and the least hit functions of a cell that
    /// had more, are `None` ("other").
    pub functions: Vec<TimelineFunction>,
    /// The file has no times (Pulley format): buckets count samples in file
    /// order instead.
    pub by_sample_index: bool,
}

/// The samples of one interpreter in one bucket of a [`Timeline`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineCell {
    /// Interpreter id.
    pub interp: u32,
    /// Bucket index.
    pub bucket: u32,
    /// Samples (never 0).
    pub samples: u64,
}

/// Function entries kept per timeline cell (the last one is "other"):
/// exact counts for every function of a cell with at most this many
/// distinct functions (outside code counting as one), so memory stays
/// bounded by cells, not by functions.
pub const TIMELINE_FUNCTIONS_PER_CELL: usize = 16;

/// The samples of one function in one cell of a [`Timeline`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineFunction {
    /// Interpreter id.
    pub interp: u32,
    /// Bucket index.
    pub bucket: u32,
    /// Index in [`Profile::functions`]; `None`: outside every function, or
    /// a function lumped into "other" (see [`Timeline::functions`]).
    pub function: Option<usize>,
    /// Samples (never 0).
    pub samples: u64,
}

impl Timeline {
    /// The functions of interpreter `id` in `bucket` (empty if none).
    pub fn cell_functions(&self, id: u32, bucket: u32) -> &[TimelineFunction] {
        let key = |f: &TimelineFunction| (f.interp, f.bucket);
        let from = self.functions.partition_point(|f| key(f) < (id, bucket));
        let to = self.functions.partition_point(|f| key(f) <= (id, bucket));
        &self.functions[from..to.max(from)]
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        self.buckets
    }

    /// Whether the timeline is empty.
    pub fn is_empty(&self) -> bool {
        self.buckets == 0
    }

    /// One lane per interpreter id with samples, in id order: its cells.
    pub fn lanes(&self) -> impl Iterator<Item = (u32, &[TimelineCell])> + '_ {
        self.cells
            .chunk_by(|a, b| a.interp == b.interp)
            .map(|lane| (lane[0].interp, lane))
    }

    /// The counts of interpreter `id` in every bucket (`len()` of them).
    pub fn lane(&self, id: u32) -> Vec<u64> {
        let mut v = vec![0; self.buckets];
        let from = self.cells.partition_point(|c| c.interp < id);
        for c in self.cells[from..].iter().take_while(|c| c.interp == id) {
            if let Some(slot) = v.get_mut(c.bucket as usize) {
                *slot += c.samples;
            }
        }
        v
    }

    /// All samples in the timeline.
    pub fn total(&self) -> u64 {
        self.cells.iter().map(|c| c.samples).sum()
    }
}

/// A profile, aggregated.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The file read.
    pub path: PathBuf,
    /// Its size in bytes.
    pub file_bytes: u64,
    /// Its format.
    pub format: Format,
    /// Native header.
    pub header: Option<FileHeader>,
    /// Closing statistics of the run (native files written to the end).
    pub summary: Option<Summary>,
    /// How the ticks were placed (native files of version 2 and later).
    pub sampling: Option<SamplingRecord>,
    /// Every function, in load order.
    pub functions: Vec<FunctionProfile>,
    /// Every interpreter, by id.
    pub interpreters: Vec<InterpreterProfile>,
    /// Rate changes and pauses.
    pub rates: Vec<RateRecord>,
    /// Samples counted (after the interpreter filter).
    pub total_samples: u64,
    /// Samples (after the filter) that fell outside every function.
    pub unresolved: u64,
    /// Earliest and latest sample time (native files).
    pub time_range: Option<(u64, u64)>,
    /// Samples over time.
    pub timeline: Timeline,
    /// Why reading stopped before the end of the file, if it did: every
    /// record before the fault is counted.
    pub read_error: Option<String>,
    /// Byte offset of that fault.
    pub read_error_offset: Option<u64>,
    /// The call stacks the samples ran in (empty when the file has none):
    /// the tree of call paths and the samples of each (path, leaf); see
    /// [`StackTree`] and [`Profile::inclusive_samples`].
    pub stacks: StackTree,
}

impl Profile {
    /// Whether this native file was converted from the Pulley format
    /// (`pcprof convert --to native`): synthetic times, no closing summary.
    pub fn converted_from_pulley(&self) -> bool {
        self.header
            .as_ref()
            .is_some_and(|h| h.clock == crate::analysis::convert::recode::PULLEY_CLOCK)
    }

    /// How the ticks were placed, in words (`periodic, 1000 Hz`); `None`
    /// when the file does not say (Pulley files, native version 1).
    pub fn sampling_text(&self) -> Option<String> {
        self.sampling
            .map(|s| format!("{}, {} Hz", s.mode.as_str(), s.frequency_hz))
    }

    /// Functions ordered hottest first (ties by name).
    pub fn functions_by_heat(&self) -> Vec<&FunctionProfile> {
        let mut v: Vec<&FunctionProfile> = self.functions.iter().collect();
        v.sort_by(|a, b| b.samples.cmp(&a.samples).then_with(|| a.name.cmp(&b.name)));
        v
    }

    /// [`Profile::functions_by_heat`], with each function's index in
    /// [`Profile::functions`].
    pub fn functions_by_heat_indexed(&self) -> Vec<(usize, &FunctionProfile)> {
        let mut v: Vec<(usize, &FunctionProfile)> = self.functions.iter().enumerate().collect();
        v.sort_by(|a, b| {
            b.1.samples
                .cmp(&a.1.samples)
                .then_with(|| a.1.name.cmp(&b.1.name))
        });
        v
    }

    /// The functions with samples, in [`Profile::functions_by_heat`]'s
    /// order, with their indices: what a view that shows sampled functions
    /// only needs, without ordering the tens of thousands a big program
    /// never ran by name.
    pub fn sampled_by_heat_indexed(&self) -> Vec<(usize, &FunctionProfile)> {
        let mut v: Vec<(usize, &FunctionProfile)> = self
            .functions
            .iter()
            .enumerate()
            .filter(|f| f.1.samples > 0)
            .collect();
        // Stable: equal names keep their index order, as in the full sort.
        v.sort_by(|a, b| {
            b.1.samples
                .cmp(&a.1.samples)
                .then_with(|| a.1.name.cmp(&b.1.name))
        });
        v
    }

    /// [`Profile::sampled_by_heat_indexed`] without the indices.
    pub fn sampled_by_heat(&self) -> Vec<&FunctionProfile> {
        self.sampled_by_heat_indexed()
            .into_iter()
            .map(|f| f.1)
            .collect()
    }

    /// Whether the samples carry call stacks (native files of version 3
    /// whose interpreters kept a shadow stack).
    pub fn has_stacks(&self) -> bool {
        !self.stacks.is_empty()
    }

    /// Each function's total (inclusive) samples, by index in
    /// [`Profile::functions`]: the samples in which it is the leaf or a
    /// caller, counted once per sample however often it recurs. Without
    /// stacks, its own samples.
    pub fn inclusive_samples(&self) -> Vec<u64> {
        if self.has_stacks() {
            self.stacks.inclusive(self.functions.len())
        } else {
            self.functions.iter().map(|f| f.samples).collect()
        }
    }

    /// Share of all samples, in percent.
    pub fn percent(&self, samples: u64) -> f64 {
        if self.total_samples == 0 {
            0.0
        } else {
            samples as f64 * 100.0 / self.total_samples as f64
        }
    }
}
