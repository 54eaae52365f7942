//! `firefox`: the Firefox Profiler's processed format, through
//! `fxprof-processed-profile` (behind the `export` feature).
//!
//! - One thread per interpreter, every sample at its real time, its frames
//!   root first: the caller functions of its call stack (when the file has
//!   stacks; `[truncated]` where frames were lost), then its function, then
//!   its instruction. Callers are functions, not call sites, so the call
//!   tree and flame graph merge every call from one function to another.
//! - The profile is built whole before it is serialised: memory grows with
//!   the samples (about 40 bytes each), never with their depth: a caller
//!   path is interned once per thread, on its parent's handle
//!   ([`Interner`]), and a (path, instruction) once.
//! - Unloads and rate changes are not kept (no equivalent).

#[cfg(feature = "export")]
use std::io::Read;
#[cfg(feature = "export")]
use std::path::Path;

use super::Exporter;
#[cfg(feature = "export")]
use super::walk::{Site, Step, interp_name, site_frames, walk};
#[cfg(feature = "export")]
use super::{ConvertError, ConvertOptions, ConvertReport, json, with_reader};
#[cfg(feature = "export")]
use crate::ProfileReader;

/// The table entry of `firefox`.
pub(super) const EXPORTER: Exporter = Exporter {
    name: "firefox",
    description: "The Firefox Profiler (profiler.firefox.com): processed-format JSON",
    extension: "json",
    needs_export_feature: true,
    #[cfg(feature = "export")]
    prepare: Some(|input, options| {
        let name = input.name().unwrap_or_default();
        with_reader!(input, |reader| json(firefox_profile_from(
            reader, &name, options
        )))
    }),
    #[cfg(not(feature = "export"))]
    prepare: None,
};

/// Builds the Firefox Profiler profile of `input`: one thread per
/// interpreter with every sample at its real time, its frames root first
/// (caller functions, function, then instruction). Serialise it with `serde_json`.
#[cfg(feature = "export")]
pub fn firefox_profile(
    input: &Path,
    options: &ConvertOptions,
) -> Result<(fxprof_processed_profile::Profile, ConvertReport), ConvertError> {
    let reader = ProfileReader::open(input).map_err(ConvertError::Read)?;
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    firefox_profile_from(reader, &name, options)
}

/// [`firefox_profile`] from an open reader (any [`Read`]: an embedder's
/// sink); `name` names the profile (the input's file name).
#[cfg(feature = "export")]
pub fn firefox_profile_from<R: Read>(
    reader: ProfileReader<R>,
    name: &str,
    options: &ConvertOptions,
) -> Result<(fxprof_processed_profile::Profile, ConvertReport), ConvertError> {
    use std::collections::HashMap;

    use fxprof_processed_profile as fx;

    use crate::analysis::profile::FoldMap;

    // The header is needed before the first thread.
    let header = reader.header().cloned();
    let interval_ns = match &header {
        Some(h) if h.frequency_hz > 0 => (1_000_000_000 / u64::from(h.frequency_hz)).max(1),
        Some(_) => 1_000_000,
        None => options.pulley_interval_ns.max(1),
    };
    let product = format!("pcprof: {name}");
    let reference = fx::ReferenceTimestamp::from_millis_since_unix_epoch(
        header
            .as_ref()
            .map_or(0.0, |h| h.started_unix_ns as f64 / 1e6),
    );
    let mut profile = fx::Profile::new(
        &product,
        reference,
        fx::SamplingInterval::from_nanos(interval_ns),
    );
    let category = profile.add_category("Bytecode", fx::CategoryColor::Orange);
    let process = profile.add_process(
        &product,
        header.as_ref().map_or(0, |h| h.pid),
        fx::Timestamp::from_nanos_since_reference(0),
    );

    struct Track {
        thread: fx::ThreadHandle,
        last_ns: Option<u64>,
    }
    let mut tracks: HashMap<u32, Track> = HashMap::new();
    // By (interpreter, call path node, site): each stack interned once.
    let mut stacks: FoldMap<(u32, u32, Site), Option<fx::StackHandle>> = FoldMap::default();
    let mut interner = Interner {
        category: category.into(),
        callers: FoldMap::default(),
        frames: FoldMap::default(),
        todo: Vec::new(),
    };
    // No thread is "main": the Firefox Profiler would show the process name
    // instead of the interpreter's. Every interpreter is visible at first,
    // the first one selected.
    let new_track = |profile: &mut fx::Profile, id: u32, label: Option<&str>, start: u64, first| {
        let thread = profile.add_thread(
            process,
            id,
            fx::Timestamp::from_nanos_since_reference(start),
            false,
        );
        profile.set_thread_name(thread, &interp_name(id, label));
        profile.add_initial_visible_thread(thread);
        if first {
            profile.add_initial_selected_thread(thread);
        }
        Track {
            thread,
            last_ns: None,
        }
    };

    let end = walk(reader, options, |step| match step {
        Step::Interpreter(i) => {
            if !tracks.contains_key(&i.id) {
                let first = tracks.is_empty();
                let t = new_track(
                    &mut profile,
                    i.id,
                    i.label.as_deref(),
                    i.registered_ns,
                    first,
                );
                tracks.insert(i.id, t);
            }
        }
        Step::Rate(_) => {}
        Step::Retired(id, t) => {
            if let Some(track) = tracks.get(&id) {
                profile.set_thread_end_time(
                    track.thread,
                    fx::Timestamp::from_nanos_since_reference(t),
                );
            }
        }
        Step::Sample {
            interp,
            time_ns,
            site,
            stack: callers,
            functions,
        } => {
            let first = tracks.is_empty();
            let track = tracks
                .entry(interp)
                .or_insert_with(|| new_track(&mut profile, interp, None, time_ns, first));
            let thread = track.thread;
            let key = (interp, callers.node, site);
            let stack = match stacks.get(&key) {
                Some(&h) => h,
                None => {
                    let h = interner.stack(&mut profile, thread, interp, callers, site, functions);
                    stacks.insert(key, h);
                    h
                }
            };
            // The interpreter was executing when sampled: count it busy
            // since its previous sample, at most one tick (it may have been
            // idle, and unsampled, in a longer gap).
            let busy = track.last_ns.map_or(interval_ns, |last| {
                time_ns.saturating_sub(last).min(interval_ns)
            });
            track.last_ns = Some(time_ns);
            profile.add_sample(
                thread,
                fx::Timestamp::from_nanos_since_reference(time_ns),
                stack,
                fx::CpuDelta::from_nanos(busy),
                1,
            );
        }
    })?;
    if let Some(stopped) = end.stopped_ns {
        profile.set_process_end_time(process, fx::Timestamp::from_nanos_since_reference(stopped));
    }
    let mut report = end.report;
    report
        .notes
        .push("Not kept: unloads and rate changes (no Firefox Profiler equivalent).".to_string());
    Ok((profile, report))
}

/// Interns call paths in a Firefox profile once each: a walk node's stack
/// on its parent's (so a new path costs one frame, however deep), frames
/// by function and by site.
#[cfg(feature = "export")]
struct Interner {
    category: fxprof_processed_profile::CategoryPairHandle,
    /// (interpreter, walk node) → its callers' stack.
    callers: crate::analysis::profile::FoldMap<(u32, u32), fxprof_processed_profile::StackHandle>,
    /// (interpreter, caller frame) → its frame.
    frames: crate::analysis::profile::FoldMap<
        (u32, crate::analysis::profile::Frame),
        fxprof_processed_profile::FrameHandle,
    >,
    /// Nodes to intern, innermost first (scratch).
    todo: Vec<(u32, crate::analysis::profile::Frame)>,
}

#[cfg(feature = "export")]
impl Interner {
    fn frame(
        &mut self,
        profile: &mut fxprof_processed_profile::Profile,
        thread: fxprof_processed_profile::ThreadHandle,
        name: &str,
    ) -> fxprof_processed_profile::FrameHandle {
        use fxprof_processed_profile as fx;
        let label = profile.intern_string(name);
        profile.intern_frame(
            thread,
            fx::FrameInfo {
                frame: fx::Frame::Label(label),
                category_pair: self.category,
                flags: fx::FrameFlags::empty(),
            },
        )
    }

    /// The stack of a sample at `site` under `callers`, on thread `thread`
    /// of interpreter `interp`.
    fn stack(
        &mut self,
        profile: &mut fxprof_processed_profile::Profile,
        thread: fxprof_processed_profile::ThreadHandle,
        interp: u32,
        callers: super::walk::Callers<'_>,
        site: Site,
        functions: &[super::walk::WalkFunction],
    ) -> Option<fxprof_processed_profile::StackHandle> {
        use crate::analysis::profile::Frame;
        // Up to the nearest ancestor interned already (or the root).
        self.todo.clear();
        let mut node = callers.node;
        let mut parent = None;
        while node != 0 {
            if let Some(&h) = self.callers.get(&(interp, node)) {
                parent = Some(h);
                break;
            }
            let (up, frame) = callers.parent_and_frame(node);
            self.todo.push((node, frame));
            node = up;
        }
        while let Some((node, frame)) = self.todo.pop() {
            let handle = match self.frames.get(&(interp, frame)) {
                Some(&h) => h,
                None => {
                    let name = match frame {
                        Frame::Function(i) => {
                            functions.get(i).map_or(super::UNRESOLVED, |f| f.name())
                        }
                        Frame::Outside => super::UNRESOLVED,
                        Frame::Truncated => super::TRUNCATED,
                    };
                    let h = self.frame(profile, thread, name);
                    self.frames.insert((interp, frame), h);
                    h
                }
            };
            let h = profile.intern_stack(thread, parent, handle);
            self.callers.insert((interp, node), h);
            parent = Some(h);
        }
        for name in site_frames(site, functions) {
            let frame = self.frame(profile, thread, &name);
            parent = Some(profile.intern_stack(thread, parent, frame));
        }
        parent
    }
}
