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
//! - The file is built whole before it is serialised: memory grows with the
//!   samples (less than Firefox's, thanks to the merging).
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
use super::{ConvertError, ConvertOptions, ConvertReport, json, with_reader};
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
        with_reader!(input, |reader| json(speedscope_file_from(
            reader, name, options
        )))
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
    use std::collections::{BTreeMap, HashMap};

    use crate::format::Format;

    struct Lane {
        name: String,
        samples: Vec<Vec<usize>>,
        weights: Vec<f64>,
        last: Option<(u32, Site)>,
    }
    let mut frames: Vec<Frame> = Vec::new();
    let mut frame_index: HashMap<String, usize> = HashMap::new();
    // By (call path node, site).
    let mut stacks: HashMap<(u32, Site), Vec<usize>> = HashMap::new();
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
            let stack = stacks.entry(key).or_insert_with(|| {
                let mut names = callers.frame_names(functions);
                names.extend(site_frames(site, functions));
                names
                    .into_iter()
                    .map(|name| {
                        *frame_index.entry(name.clone()).or_insert_with(|| {
                            frames.push(Frame {
                                name,
                                file: None,
                                line: None,
                                col: None,
                            });
                            frames.len() - 1
                        })
                    })
                    .collect()
            });
            l.samples.push(stack.clone());
            l.weights.push(weight);
            l.last = Some(key);
        }
    })?;
    let profiles: Vec<SampledProfile> = lanes
        .into_values()
        .filter(|l| !l.samples.is_empty())
        .map(|l| {
            let total: f64 = l.weights.iter().sum();
            SampledProfile {
                kind: "sampled".to_string(),
                name: l.name,
                unit: if timed { "nanoseconds" } else { "none" }.to_string(),
                start_value: 0.0,
                end_value: total,
                samples: l.samples,
                weights: l.weights,
            }
        })
        .collect();
    let file = File {
        schema: SCHEMA.to_string(),
        shared: Shared { frames },
        active_profile_index: (!profiles.is_empty()).then_some(0),
        profiles,
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
