//! `speedscope`: speedscope's file format
//! (<https://www.speedscope.app/file-format-schema.json>), the parts pcprof
//! writes: "sampled" profiles over shared frames (behind the `export`
//! feature).
//!
//! - One profile per interpreter, in time order; consecutive samples of one
//!   interpreter at the same instruction under the same callers merge into
//!   one weighted sample.
//! - A sample's stack is its caller functions (when the file has call
//!   stacks; `[truncated]` where frames were lost), its function, then its
//!   instruction, outermost first.
//! - Native files have real times, so a sample weighs the sampling period
//!   it stands for, in nanoseconds (following the file's rate changes), and
//!   speedscope shows durations; Pulley files have none, so weights count
//!   samples (unit `none`).
//! - The file is built whole before it is serialised, each distinct stack
//!   once and each sample a number ([`Compact`]): memory grows with the
//!   samples (less than Firefox's, thanks to the merging) and the distinct
//!   stacks, never samples × depth; the format repeats each sample's whole
//!   stack, so the output does.
//! - Exact sample instants and unloads are not kept.

#[cfg(feature = "export")]
use std::io::Read;
#[cfg(feature = "export")]
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Exporter;
#[cfg(feature = "export")]
use super::walk::{Site, Step, interp_name, site_frames, walk};
#[cfg(feature = "export")]
use super::{
    ConvertError, ConvertOptions, ConvertReport, TRUNCATED, UNRESOLVED, json, with_reader,
};
#[cfg(feature = "export")]
use crate::ProfileReader;

/// The table entry of `speedscope`.
pub(super) const EXPORTER: Exporter = Exporter {
    name: "speedscope",
    description: "speedscope (speedscope.app): its JSON file format",
    extension: "json",
    needs_export_feature: true,
    #[cfg(feature = "export")]
    prepare: Some(|input, options| {
        let name = input.name();
        with_reader!(input, |reader| json(compact_from(reader, name, options)))
    }),
    #[cfg(not(feature = "export"))]
    prepare: None,
};

/// The schema URL speedscope recognises its files by.
pub const SCHEMA: &str = "https://www.speedscope.app/file-format-schema.json";

/// A speedscope file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct File {
    /// Always [`SCHEMA`].
    #[serde(rename = "$schema")]
    pub schema: String,
    /// Frames shared by all profiles.
    pub shared: Shared,
    /// One profile per interpreter.
    pub profiles: Vec<SampledProfile>,
    /// Name of the whole file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Profile shown first.
    #[serde(
        rename = "activeProfileIndex",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub active_profile_index: Option<usize>,
    /// The program that wrote the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter: Option<String>,
}

/// The shared part of a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shared {
    /// Every frame; stacks refer to them by index.
    pub frames: Vec<Frame>,
}

/// A stack frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// Name shown.
    pub name: String,
    /// Source file, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Line, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Column, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub col: Option<u64>,
}

/// A profile of type "sampled".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampledProfile {
    /// Always `"sampled"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Name (the interpreter).
    pub name: String,
    /// Unit of the weights: `"nanoseconds"` (native files: each sample
    /// weighs its sampling period) or `"none"` (Pulley files: counts).
    pub unit: String,
    /// Start of the value range.
    #[serde(rename = "startValue")]
    pub start_value: f64,
    /// End of the value range (start + sum of weights).
    #[serde(rename = "endValue")]
    pub end_value: f64,
    /// Stacks, outermost frame first, as indices into the shared frames.
    pub samples: Vec<Vec<usize>>,
    /// Weight of each stack in `samples`.
    pub weights: Vec<f64>,
}

/// Builds the speedscope file of `input`: one "sampled" profile per
/// interpreter in time order, each sample weighing its sampling period in
/// nanoseconds (native files) or 1 (Pulley files, which have no times);
/// consecutive samples at one instruction merge into one weighted sample.
#[cfg(feature = "export")]
pub fn speedscope_file(
    input: &Path,
    options: &ConvertOptions,
) -> Result<(File, ConvertReport), ConvertError> {
    let reader = ProfileReader::open(input).map_err(ConvertError::Read)?;
    let name = input.file_name().map(|n| n.to_string_lossy().into_owned());
    speedscope_file_from(reader, name, options)
}

/// [`speedscope_file`] from an open reader (any [`Read`]: an embedder's
/// sink); `name` names the file (the input's file name).
#[cfg(feature = "export")]
pub fn speedscope_file_from<R: Read>(
    reader: ProfileReader<R>,
    name: Option<String>,
    options: &ConvertOptions,
) -> Result<(File, ConvertReport), ConvertError> {
    let (c, report) = compact_from(reader, name, options)?;
    let profiles = c
        .profiles
        .iter()
        .map(|l| SampledProfile {
            kind: "sampled".to_string(),
            name: l.name.clone(),
            unit: c.unit.to_string(),
            start_value: 0.0,
            end_value: l.weights.iter().sum(),
            samples: l.samples.iter().map(|&k| c.stack(k).to_vec()).collect(),
            weights: l.weights.clone(),
        })
        .collect();
    let file = File {
        schema: SCHEMA.to_string(),
        shared: Shared { frames: c.frames },
        active_profile_index: c.active_profile_index,
        profiles,
        name: c.name,
        exporter: c.exporter,
    };
    Ok((file, report))
}

/// A speedscope file as the export holds it: each distinct stack once
/// (`table`), each sample an index into it, so memory follows the samples
/// and the distinct stacks, not samples × depth; serialised as [`File`]
/// is, each sample's stack written out in full.
#[cfg(feature = "export")]
pub(super) struct Compact {
    frames: Vec<Frame>,
    /// The distinct stacks' frames, one after the other, and where each
    /// stack starts (one more entry than stacks).
    table: Vec<usize>,
    starts: Vec<usize>,
    profiles: Vec<Lane>,
    unit: &'static str,
    name: Option<String>,
    active_profile_index: Option<usize>,
    exporter: Option<String>,
}

/// One interpreter's samples: stack numbers in [`Compact`] and weights.
#[cfg(feature = "export")]
struct Lane {
    name: String,
    samples: Vec<u32>,
    weights: Vec<f64>,
    last: Option<(u32, Site)>,
}

#[cfg(feature = "export")]
impl Compact {
    fn stack(&self, k: u32) -> &[usize] {
        let k = k as usize;
        &self.table[self.starts[k]..self.starts[k + 1]]
    }
}

#[cfg(feature = "export")]
impl Serialize for Compact {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;

        /// One lane as a [`SampledProfile`].
        struct P<'a>(&'a Compact, &'a Lane);
        impl Serialize for P<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let (c, l) = (self.0, self.1);
                let mut p = s.serialize_struct("SampledProfile", 7)?;
                p.serialize_field("type", "sampled")?;
                p.serialize_field("name", &l.name)?;
                p.serialize_field("unit", c.unit)?;
                p.serialize_field("startValue", &0.0f64)?;
                p.serialize_field("endValue", &l.weights.iter().sum::<f64>())?;
                p.serialize_field("samples", &Stacks(c, &l.samples))?;
                p.serialize_field("weights", &l.weights)?;
                p.end()
            }
        }
        struct Stacks<'a>(&'a Compact, &'a [u32]);
        impl Serialize for Stacks<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.1.iter().map(|&k| self.0.stack(k)))
            }
        }
        struct Profiles<'a>(&'a Compact);
        impl Serialize for Profiles<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.profiles.iter().map(|l| P(self.0, l)))
            }
        }
        let mut f = s.serialize_struct("File", 6)?;
        f.serialize_field("$schema", SCHEMA)?;
        #[derive(Serialize)]
        struct SharedRef<'a> {
            frames: &'a [Frame],
        }
        f.serialize_field(
            "shared",
            &SharedRef {
                frames: &self.frames,
            },
        )?;
        f.serialize_field("profiles", &Profiles(self))?;
        if let Some(n) = &self.name {
            f.serialize_field("name", n)?;
        }
        if let Some(a) = &self.active_profile_index {
            f.serialize_field("activeProfileIndex", a)?;
        }
        if let Some(e) = &self.exporter {
            f.serialize_field("exporter", e)?;
        }
        f.end()
    }
}

/// The speedscope export of `reader`, compact (see [`Compact`]).
#[cfg(feature = "export")]
pub(super) fn compact_from<R: Read>(
    reader: ProfileReader<R>,
    name: Option<String>,
    options: &ConvertOptions,
) -> Result<(Compact, ConvertReport), ConvertError> {
    use std::collections::{BTreeMap, HashMap};

    use crate::analysis::profile::{FoldMap, Frame as Caller};
    use crate::format::Format;

    let mut frames: Vec<Frame> = Vec::new();
    let mut frame_index: HashMap<String, usize> = HashMap::new();
    let mut frame_of = |name: String, frames: &mut Vec<Frame>| -> usize {
        *frame_index.entry(name.clone()).or_insert_with(|| {
            frames.push(Frame {
                name,
                file: None,
                line: None,
                col: None,
            });
            frames.len() - 1
        })
    };
    // Each caller frame's and each site's frames, named once.
    let mut caller_frames: FoldMap<Caller, usize> = FoldMap::default();
    let mut site_frame_ids: FoldMap<Site, Vec<usize>> = FoldMap::default();
    // By (call path node, site): the stack's number.
    let mut stacks: FoldMap<(u32, Site), u32> = FoldMap::default();
    let mut table: Vec<usize> = Vec::new();
    let mut starts: Vec<usize> = vec![0];
    let mut path: Vec<Caller> = Vec::new();
    let mut lanes: BTreeMap<u32, Lane> = BTreeMap::new();
    // The period a sample stands for, from the header's rate and the rate
    // records; a pause keeps the last period (no sample comes meanwhile).
    let timed = reader.format() == Format::Native;
    let period_of = |hz: u32| 1e9 / f64::from(hz.max(1));
    let mut weight = match reader.header() {
        Some(h) if timed => period_of(h.frequency_hz),
        _ => 1.0,
    };
    let lane = |id: u32, label: Option<&str>| Lane {
        name: interp_name(id, label),
        samples: Vec::new(),
        weights: Vec::new(),
        last: None,
    };
    let end = walk(reader, options, |step| match step {
        Step::Interpreter(i) => {
            lanes
                .entry(i.id)
                .or_insert_with(|| lane(i.id, i.label.as_deref()));
        }
        Step::Retired(..) => {}
        Step::Rate(hz) => {
            if timed && hz > 0 {
                weight = period_of(hz);
            }
        }
        Step::Sample {
            interp,
            site,
            stack: callers,
            functions,
            ..
        } => {
            let l = lanes.entry(interp).or_insert_with(|| lane(interp, None));
            let key = (callers.node, site);
            if l.last == Some(key)
                && let Some(w) = l.weights.last_mut()
            {
                *w += weight;
                return;
            }
            let k = match stacks.get(&key) {
                Some(&k) => k,
                None => {
                    // Frames are named in the order the stack lists them,
                    // so the frame table is what naming each stack in full
                    // gave.
                    callers.path_into(&mut path);
                    for &c in &path {
                        let id = match caller_frames.get(&c) {
                            Some(&id) => id,
                            None => {
                                let name = match c {
                                    Caller::Function(i) => functions.get(i).map_or_else(
                                        || UNRESOLVED.to_string(),
                                        |f| f.name().to_string(),
                                    ),
                                    Caller::Outside => UNRESOLVED.to_string(),
                                    Caller::Truncated => TRUNCATED.to_string(),
                                };
                                let id = frame_of(name, &mut frames);
                                caller_frames.insert(c, id);
                                id
                            }
                        };
                        table.push(id);
                    }
                    let own = site_frame_ids.entry(site).or_insert_with(|| {
                        site_frames(site, functions)
                            .into_iter()
                            .map(|n| frame_of(n, &mut frames))
                            .collect()
                    });
                    table.extend_from_slice(own);
                    starts.push(table.len());
                    let k = (starts.len() - 2) as u32;
                    stacks.insert(key, k);
                    k
                }
            };
            l.samples.push(k);
            l.weights.push(weight);
            l.last = Some(key);
        }
    })?;
    let profiles: Vec<Lane> = lanes
        .into_values()
        .filter(|l| !l.samples.is_empty())
        .collect();
    let file = Compact {
        frames,
        table,
        starts,
        active_profile_index: (!profiles.is_empty()).then_some(0),
        profiles,
        unit: if timed { "nanoseconds" } else { "none" },
        name,
        exporter: Some(format!("pcprof {}", env!("CARGO_PKG_VERSION"))),
    };
    let mut report = end.report;
    report.notes.push(
        if timed {
            "Not kept: exact sample instants (each sample weighs its sampling period; time order is kept) and unloads."
        } else {
            "Not kept: unloads; Pulley files have no times, so weights count samples (time order is kept)."
        }
        .to_string(),
    );
    Ok((file, report))
}
