//! A profile file, aggregated for analysis in one streaming pass.
//!
//! - [`load`] reads a native or Pulley file record by record; memory holds
//!   the functions (their code and a counter per byte offset), the
//!   interpreters and a bounded timeline, never the samples, so it does not
//!   grow with the file's length.
//! - Samples resolve to functions by address and time (see
//!   [`crate::Resolver`]): unloaded code and reused addresses stay correct.
//! - A file that ends early or has a corrupt record still yields the
//!   complete records before the fault; [`Profile::read_error`] tells where
//!   reading stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::format::{Event, FileHeader, Format, ProfileReader, RateRecord, ReadError, Summary};
use crate::Resolver;

/// Options for [`load`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Keep only the samples of this interpreter (native files).
    pub interp: Option<u32>,
    /// Upper bound on the number of timeline buckets.
    pub timeline_buckets: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            interp: None,
            timeline_buckets: 400,
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
    /// Its bytecode.
    pub code: Vec<u8>,
    /// Load time (ns since the profile's start; 0 in Pulley files).
    pub loaded_ns: u64,
    /// Unload time, if unloaded.
    pub unloaded_ns: Option<u64>,
    /// Samples in this function.
    pub samples: u64,
    /// Samples at each byte offset (`hits.len() == code.len()`).
    pub hits: Vec<u64>,
}

impl FunctionProfile {
    /// Offsets with at least one sample, with their counts, in offset order.
    pub fn hot_offsets(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.hits
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(o, c)| (o as u32, *c))
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
}

/// Samples per interpreter over time, in equal buckets.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timeline {
    /// Width of a bucket, in ns (for Pulley files: in samples, see
    /// [`Timeline::by_sample_index`]).
    pub bucket_ns: u64,
    /// Time of the first bucket's start.
    pub start_ns: u64,
    /// Samples per interpreter id per bucket.
    pub counts: BTreeMap<u32, Vec<u64>>,
    /// The file has no times (Pulley format): buckets count samples in file
    /// order instead.
    pub by_sample_index: bool,
}

impl Timeline {
    /// Number of buckets.
    pub fn len(&self) -> usize {
        self.counts.values().map(Vec::len).max().unwrap_or(0)
    }

    /// Whether the timeline is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn add(&mut self, interp: u32, t: u64, max_buckets: usize) {
        if self.bucket_ns == 0 {
            self.bucket_ns = if self.by_sample_index { 16 } else { 1_000_000 };
            self.start_ns = t;
        }
        let t = t.max(self.start_ns);
        let mut idx = ((t - self.start_ns) / self.bucket_ns) as usize;
        while idx >= max_buckets.max(2) {
            // Halve the resolution: merge bucket pairs.
            self.bucket_ns *= 2;
            for v in self.counts.values_mut() {
                let merged: Vec<u64> = v.chunks(2).map(|c| c.iter().sum()).collect();
                *v = merged;
            }
            idx = ((t - self.start_ns) / self.bucket_ns) as usize;
        }
        let v = self.counts.entry(interp).or_default();
        if v.len() <= idx {
            v.resize(idx + 1, 0);
        }
        v[idx] += 1;
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
}

impl Profile {
    /// Functions ordered hottest first (ties by name).
    pub fn functions_by_heat(&self) -> Vec<&FunctionProfile> {
        let mut v: Vec<&FunctionProfile> = self.functions.iter().collect();
        v.sort_by(|a, b| b.samples.cmp(&a.samples).then_with(|| a.name.cmp(&b.name)));
        v
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

/// Reads and aggregates a profile. `progress` is called now and then with
/// the bytes read so far.
pub fn load(
    path: &Path,
    options: &LoadOptions,
    mut progress: impl FnMut(u64),
) -> Result<Profile, LoadError> {
    let file_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut reader = ProfileReader::open(path).map_err(LoadError)?;
    let format = reader.format();
    let header = reader.header().cloned();
    let mut p = Profile {
        path: path.to_path_buf(),
        file_bytes,
        format,
        header,
        summary: None,
        functions: Vec::new(),
        interpreters: Vec::new(),
        rates: Vec::new(),
        total_samples: 0,
        unresolved: 0,
        time_range: None,
        timeline: Timeline {
            by_sample_index: format == Format::Pulley,
            ..Timeline::default()
        },
        read_error: None,
        read_error_offset: None,
    };
    let mut resolver = Resolver::new();
    let mut interp_index: BTreeMap<u32, usize> = BTreeMap::new();
    let mut seq: u64 = 0;
    let max_buckets = options.timeline_buckets;
    while let Some(ev) = reader.next() {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                p.read_error_offset = Some(e.offset());
                p.read_error = Some(e.to_string());
                break;
            }
        };
        match ev {
            Event::Function(f) => {
                resolver.add(p.functions.len(), f.addr, f.code.len() as u64, f.loaded_ns);
                p.functions.push(FunctionProfile {
                    hits: vec![0; f.code.len()],
                    name: f.name,
                    addr: f.addr,
                    code: f.code,
                    loaded_ns: f.loaded_ns,
                    unloaded_ns: None,
                    samples: 0,
                });
            }
            Event::Unload(u) => {
                if let Some(i) = resolver.unload(u.addr, u.unloaded_ns) {
                    p.functions[i].unloaded_ns = Some(u.unloaded_ns);
                }
            }
            Event::Interpreter(i) => {
                interp_index.insert(i.id, p.interpreters.len());
                p.interpreters.push(InterpreterProfile {
                    id: i.id,
                    label: i.label,
                    samples: 0,
                    registered_ns: i.registered_ns,
                    retired_ns: None,
                });
            }
            Event::Retired(r) => {
                if let Some(&i) = interp_index.get(&r.id) {
                    p.interpreters[i].retired_ns = Some(r.retired_ns);
                }
            }
            Event::Rate(r) => p.rates.push(r),
            Event::Summary(s) => p.summary = Some(s),
            Event::Samples(samples) => {
                for s in &samples {
                    let idx = match interp_index.get(&s.interp) {
                        Some(&i) => i,
                        None => {
                            // Pulley files (and files whose interpreter
                            // record was lost) get an implicit interpreter.
                            interp_index.insert(s.interp, p.interpreters.len());
                            p.interpreters.push(InterpreterProfile {
                                id: s.interp,
                                label: None,
                                samples: 0,
                                registered_ns: 0,
                                retired_ns: None,
                            });
                            p.interpreters.len() - 1
                        }
                    };
                    p.interpreters[idx].samples += 1;
                    seq += 1;
                    if options.interp.is_some_and(|want| want != s.interp) {
                        continue;
                    }
                    p.total_samples += 1;
                    let t = if format == Format::Pulley { seq } else { s.time_ns };
                    p.timeline.add(s.interp, t, max_buckets);
                    if format == Format::Native {
                        p.time_range = Some(match p.time_range {
                            None => (s.time_ns, s.time_ns),
                            Some((a, b)) => (a.min(s.time_ns), b.max(s.time_ns)),
                        });
                    }
                    match resolver.resolve(s.pc, s.time_ns) {
                        Some(fi) => {
                            let f = &mut p.functions[fi];
                            f.samples += 1;
                            if let Some(h) = s.pc.checked_sub(f.addr).and_then(|o| f.hits.get_mut(o as usize)) {
                                *h += 1;
                            }
                        }
                        None => p.unresolved += 1,
                    }
                }
                progress(reader.offset());
            }
        }
    }
    progress(reader.offset());
    Ok(p)
}
