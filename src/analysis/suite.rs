//! Several profiles analysed as one: a *suite* (runs, processes, programs).
//!
//! - [`load_suite`] merges the files on the fly ([`super::merge`]) on a
//!   thread writing into a pipe, and loads the merged stream with
//!   [`super::load_reader`] on the caller's: the [`Profile`] is exactly the
//!   one `merge` then `load` of its output would give (no file written, and
//!   memory as for one file). `report`, `html` and `diff` use it unchanged.
//! - [`write_sources`] prints each file's own figures (its samples, its
//!   run's summary, where it stopped if it is cut), which the merged profile
//!   holds only summed.
//! - [`mine_suite`] mines hot sequences in each program separately (a
//!   sequence's weight is a property of one program's code) and combines
//!   them by opcode sequence: the weights add up, the share is of all the
//!   suite's samples (so each program counts by its samples), and
//!   `programs` says in how many programs a sequence occurs. Candidates rank
//!   by that total, then by programs, then as [`super::sequences::mine`]
//!   ranks them.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufReader, BufWriter, Write};

use super::convert::ConvertError;
use super::merge::{MergeInput, MergeOptions, MergeReport, merge_to_writer};
use super::profile::{LoadError, LoadOptions, Profile, load_reader};
use super::sequences::{SequenceOptions, Site, mine, sequence_column};
use super::text::{counted, duration_fixed_text, share};

/// A suite loaded as one profile.
#[derive(Debug)]
pub struct Suite {
    /// The merged profile; its `path` lists the origins.
    pub profile: Profile,
    /// What the merge took from each file (and where a file stopped).
    pub merge: MergeReport,
}

/// Why a suite could not be loaded.
#[derive(Debug)]
pub enum SuiteError {
    /// The pipe between the merge and the load could not be made.
    Pipe(io::Error),
    /// The merge failed (not an input's fault: those are in the report).
    Merge(ConvertError),
    /// The merged stream could not be loaded.
    Load(LoadError),
    /// The merging thread panicked.
    Panicked,
}

impl fmt::Display for SuiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SuiteError::Pipe(e) => write!(f, "cannot make a pipe to merge the files: {e}"),
            SuiteError::Merge(e) => write!(f, "merging the files: {e}"),
            SuiteError::Load(e) => write!(f, "loading the merged files: {e}"),
            SuiteError::Panicked => f.write_str("the merging thread panicked"),
        }
    }
}

impl std::error::Error for SuiteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SuiteError::Pipe(e) => Some(e),
            SuiteError::Merge(e) => Some(e),
            SuiteError::Load(e) => Some(e),
            SuiteError::Panicked => None,
        }
    }
}

/// The name a suite's profile is shown under: its origins joined by ` + `.
pub fn suite_name(inputs: &[MergeInput]) -> String {
    inputs
        .iter()
        .map(|i| i.origin.as_str())
        .collect::<Vec<_>>()
        .join(" + ")
}

/// Merges `inputs` on the fly and loads the result (see the module
/// documentation). An input's fault is in [`Suite::merge`], not an error.
pub fn load_suite(
    inputs: &[MergeInput],
    load: &LoadOptions,
    merge: &MergeOptions,
) -> Result<Suite, SuiteError> {
    let (reader, writer) = io::pipe().map_err(SuiteError::Pipe)?;
    let name = std::path::Path::new("<pipe>");
    let (merged, loaded) = std::thread::scope(|scope| {
        let merging = scope.spawn(move || {
            let mut w = BufWriter::with_capacity(1 << 16, writer);
            let report = merge_to_writer(inputs, &mut w, name, merge)?;
            // Dropping the writer closes the pipe: the loader sees the end.
            w.into_inner().map_err(|e| ConvertError::Io {
                path: name.to_path_buf(),
                source: e.into_error(),
            })?;
            Ok::<_, ConvertError>(report)
        });
        // The reader is dropped when the load returns, so a load that stops
        // early ends the merge with a broken pipe rather than a hang.
        let loaded = load_reader(BufReader::with_capacity(1 << 16, reader), load, |_| {});
        (merging.join(), loaded)
    });
    let merged = merged.map_err(|_| SuiteError::Panicked)?;
    // The merge's own error explains a failed load better than the load's.
    let report = merged.map_err(SuiteError::Merge)?;
    let mut profile = loaded.map_err(SuiteError::Load)?;
    profile.path = suite_name(inputs).into();
    Ok(Suite {
        profile,
        merge: report,
    })
}

/// Writes one line per file of a suite: its format, samples, run summary,
/// and the fault where it stopped early.
pub fn write_sources(out: &mut dyn Write, report: &MergeReport) -> io::Result<()> {
    writeln!(
        out,
        "\nsuite: {} merged (runs follow one another; interpreters labelled by origin)",
        counted(report.sources.len() as u64, "file")
    )?;
    for s in &report.sources {
        let format = s
            .format
            .map(|f| format!("{f} format"))
            .unwrap_or_else(|| "not read".to_string());
        let run = match &s.summary {
            Some(sum) => {
                let st = &sum.stats;
                format!(
                    "run: duration {:.3} s, rate asked {} Hz, achieved {:.1} Hz, ticks missed {}, \
                     samples dropped {}, lateness p99 {}",
                    st.elapsed_ns as f64 / 1e9,
                    st.frequency_hz,
                    st.achieved_hz(),
                    st.ticks_missed,
                    st.samples_dropped,
                    duration_fixed_text(st.lateness_p99_ns)
                )
            }
            None if s.format == Some(crate::format::Format::Pulley) => {
                "run: not recorded (Pulley format)".to_string()
            }
            None => "run: no closing summary".to_string(),
        };
        writeln!(
            out,
            "  {}: {format}, {}, {} outside every function; {run}",
            s.origin,
            counted(s.samples, "sample"),
            s.unresolved
        )?;
        if let Some(e) = &s.error {
            writeln!(out, "    stopped early: {e}")?;
        }
    }
    Ok(())
}

/// A sequence of a suite, combined over its programs.
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteCandidate {
    /// The opcodes, in order.
    pub opcodes: Vec<String>,
    /// Its weight summed over the programs.
    pub samples: u64,
    /// That weight as a percentage of all the suite's samples.
    pub share: f64,
    /// Programs in which it occurs with samples.
    pub programs: usize,
    /// Occurrences with samples, over all programs.
    pub sites: usize,
    /// The program of the best occurrence.
    pub top_origin: String,
    /// The best occurrence (in the program that weighs it most).
    pub top_site: Site,
}

/// The result of [`mine_suite`].
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteSequences {
    /// All samples of all programs.
    pub total_samples: u64,
    /// Programs mined.
    pub programs: usize,
    /// Distinct sequences found, before `top`.
    pub distinct: usize,
    /// Functions that could not be decoded, over all programs.
    pub skipped_functions: usize,
    /// The candidates, best first.
    pub candidates: Vec<SuiteCandidate>,
    /// The options used.
    pub min_len: usize,
    /// The options used.
    pub max_len: usize,
}

/// Mines each `(origin, profile)` and combines the candidates (see the
/// module documentation); `options.top` applies to the combined list.
pub fn mine_suite(programs: &[(&str, &Profile)], options: &SequenceOptions) -> SuiteSequences {
    let each = SequenceOptions {
        top: None,
        ..options.clone()
    };
    let mut by_ops: HashMap<Vec<String>, SuiteCandidate> = HashMap::new();
    let mut total = 0u64;
    let mut skipped = 0;
    let (mut min_len, mut max_len) = (options.min_len, options.max_len);
    for (origin, profile) in programs {
        let mined = mine(profile, &each);
        (min_len, max_len) = (mined.min_len, mined.max_len);
        total += mined.total_samples;
        skipped += mined.skipped_functions.len();
        for c in mined.candidates {
            let entry = by_ops
                .entry(c.opcodes.clone())
                .or_insert_with(|| SuiteCandidate {
                    opcodes: c.opcodes.clone(),
                    samples: 0,
                    share: 0.0,
                    programs: 0,
                    sites: 0,
                    top_origin: origin.to_string(),
                    top_site: c.top_site.clone(),
                });
            entry.samples += c.samples;
            entry.programs += 1;
            entry.sites += c.sites;
            if c.top_site.samples > entry.top_site.samples {
                entry.top_origin = origin.to_string();
                entry.top_site = c.top_site;
            }
        }
    }
    let distinct = by_ops.len();
    let mut ranked: Vec<SuiteCandidate> = by_ops.into_values().collect();
    for c in &mut ranked {
        c.share = share(c.samples, total);
    }
    ranked.sort_by(|a, b| {
        b.samples
            .cmp(&a.samples)
            .then(b.programs.cmp(&a.programs))
            .then(b.opcodes.len().cmp(&a.opcodes.len()))
            .then_with(|| a.opcodes.cmp(&b.opcodes))
    });
    if let Some(n) = options.top {
        ranked.truncate(n);
    }
    SuiteSequences {
        total_samples: total,
        programs: programs.len(),
        distinct,
        skipped_functions: skipped,
        candidates: ranked,
        min_len,
        max_len,
    }
}

/// Writes a suite's sequences as a table with a `programs` column.
pub fn write_suite_sequences(
    out: &mut dyn Write,
    name: &str,
    sequences: &SuiteSequences,
) -> io::Result<()> {
    writeln!(
        out,
        "hot instruction sequences of {} programs ({name}): {}, runs of {} to {} instructions \
         within basic blocks, merged by opcode",
        sequences.programs,
        counted(sequences.total_samples, "sample"),
        sequences.min_len,
        sequences.max_len
    )?;
    writeln!(
        out,
        "samples = summed over the programs; share = samples / all samples of the suite; \
         programs = programs in which it occurs with samples; sites = occurrences with samples"
    )?;
    if sequences.skipped_functions > 0 {
        writeln!(
            out,
            "skipped (not decodable): {}",
            counted(sequences.skipped_functions as u64, "function")
        )?;
    }
    if sequences.candidates.is_empty() {
        writeln!(out, "no sampled instruction sequence found")?;
        return Ok(());
    }
    writeln!(out)?;
    let (seqs, width) = sequence_column(sequences.candidates.iter().map(|c| &c.opcodes[..]));
    writeln!(
        out,
        "rank   share     samples  programs  sites  {:width$}  top site",
        "sequence"
    )?;
    for (i, (c, s)) in sequences.candidates.iter().zip(&seqs).enumerate() {
        writeln!(
            out,
            "{:>4} {:6.2}% {:>11} {:>9} {:>6}  {s:width$}  {}: {}+{:#x} ({})",
            i + 1,
            c.share,
            c.samples,
            c.programs,
            c.sites,
            c.top_origin,
            c.top_site.function,
            c.top_site.offset,
            counted(c.top_site.samples, "sample")
        )?;
    }
    writeln!(
        out,
        "\n{} distinct sequences; shares overlap (a run contains shorter runs)",
        sequences.distinct
    )
}
