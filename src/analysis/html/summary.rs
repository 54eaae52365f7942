//! The summary cards at the top of the page and the warnings under them.
//!
//! - A card is a key, a value, a detail line and whether it signals a
//!   problem (missed ticks, dropped samples, unresolved samples).
//! - Warnings say in words what makes the profile less trustworthy.

use std::fmt::Write as _;

use crate::analysis::profile::Profile;
use crate::analysis::text::{bytes_text, duration_text, escape, thousands};
use crate::format::Format;

/// One summary card: key, value, detail, and whether it signals a problem.
struct Card {
    key: &'static str,
    value: String,
    detail: String,
    bad: bool,
}

pub(super) fn summary(out: &mut String, profile: &Profile) {
    let stats = profile.summary.as_ref().map(|s| &s.stats);
    let native = profile.format == Format::Native;
    let not_recorded = if profile.converted_from_pulley() {
        "converted from a Pulley file"
    } else if native {
        "no closing summary"
    } else {
        "not in Pulley files"
    };
    let mut cards = Vec::new();

    let span = profile.time_range.map(|(a, b)| b.saturating_sub(a));
    let (duration, duration_detail) = match (stats, span) {
        (Some(s), _) if s.elapsed_ns > 0 => (
            duration_text(s.elapsed_ns),
            profile
                .header
                .as_ref()
                .map(|h| format!("{} clock", h.clock))
                .unwrap_or_default(),
        ),
        (_, Some(d)) => (duration_text(d), "first to last sample".to_string()),
        _ => ("—".to_string(), not_recorded.to_string()),
    };
    cards.push(Card {
        key: "Duration",
        value: duration,
        detail: duration_detail,
        bad: false,
    });

    let in_functions = profile.functions.iter().filter(|f| f.samples > 0).count();
    cards.push(Card {
        key: "Samples",
        value: thousands(profile.total_samples),
        detail: format!("in {} functions", thousands(in_functions as u64)),
        bad: false,
    });

    let asked = stats
        .map(|s| s.frequency_hz)
        .filter(|&hz| hz > 0)
        .or_else(|| profile.header.as_ref().map(|h| h.frequency_hz));
    cards.push(Card {
        key: "Rate asked",
        value: asked.map_or("—".to_string(), |hz| {
            format!("{} Hz", thousands(u64::from(hz)))
        }),
        detail: match stats {
            Some(s) => format!("achieved {:.0} Hz", s.achieved_hz()),
            None => not_recorded.to_string(),
        },
        bad: stats.is_some_and(|s| asked.is_some_and(|a| s.achieved_hz() < f64::from(a) * 0.9)),
    });

    cards.push(Card {
        key: "Sampling",
        value: profile
            .sampling
            .map_or("—".to_string(), |s| s.mode.as_str().to_string()),
        detail: match profile.sampling {
            Some(s) => format!(
                "instants, {} Hz asked",
                thousands(u64::from(s.frequency_hz))
            ),
            None if native && !profile.converted_from_pulley() => {
                "unknown (format version 1)".to_string()
            }
            None => not_recorded.to_string(),
        },
        bad: false,
    });

    match stats {
        Some(s) => {
            let missed_share = if s.ticks_scheduled == 0 {
                0.0
            } else {
                s.ticks_missed as f64 * 100.0 / s.ticks_scheduled as f64
            };
            cards.push(Card {
                key: "Ticks missed",
                value: thousands(s.ticks_missed),
                detail: format!(
                    "{missed_share:.1}% of {} scheduled",
                    thousands(s.ticks_scheduled)
                ),
                bad: missed_share > 1.0,
            });
            cards.push(Card {
                key: "Samples dropped",
                value: thousands(s.samples_dropped),
                detail: format!("{} written", thousands(s.samples_written)),
                bad: s.samples_dropped > 0,
            });
            cards.push(Card {
                key: "Lateness p50",
                value: duration_text(s.lateness_p50_ns),
                detail: format!(
                    "p99 {} · max {}",
                    duration_text(s.lateness_p99_ns),
                    duration_text(s.lateness_max_ns)
                ),
                bad: false,
            });
        }
        None => {
            for key in ["Ticks missed", "Samples dropped", "Lateness p50"] {
                cards.push(Card {
                    key,
                    value: "—".to_string(),
                    detail: not_recorded.to_string(),
                    bad: false,
                });
            }
        }
    }

    let retired = profile
        .interpreters
        .iter()
        .filter(|i| i.retired_ns.is_some())
        .count();
    cards.push(Card {
        key: "Interpreters",
        value: thousands(profile.interpreters.len() as u64),
        detail: format!("{retired} retired"),
        bad: false,
    });
    let unloaded = profile
        .functions
        .iter()
        .filter(|f| f.unloaded_ns.is_some())
        .count();
    cards.push(Card {
        key: "Functions",
        value: thousands(profile.functions.len() as u64),
        detail: format!("{unloaded} unloaded"),
        bad: false,
    });
    cards.push(Card {
        key: "Unresolved",
        value: thousands(profile.unresolved),
        detail: format!(
            "{:.1}% outside any function",
            profile.percent(profile.unresolved)
        ),
        bad: profile.percent(profile.unresolved) > 1.0,
    });
    cards.push(Card {
        key: "File",
        value: bytes_text(profile.file_bytes),
        detail: format!("{} format", profile.format),
        bad: false,
    });

    out.push_str("<section id=\"summary\">\n<h2>Summary</h2>\n");
    let warnings = warnings(profile);
    if !warnings.is_empty() {
        out.push_str("<ul class=\"warnings\">");
        for w in &warnings {
            let _ = write!(out, "<li>{}</li>", escape(w));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<div class=\"cards\">\n");
    for c in &cards {
        let _ = writeln!(
            out,
            "<div class=\"card{}\"><div class=\"k\">{}</div><div class=\"v\">{}</div>\
             <div class=\"d\">{}</div></div>",
            if c.bad { " bad" } else { "" },
            escape(c.key),
            escape(&c.value),
            escape(&c.detail)
        );
    }
    out.push_str("</div>\n</section>\n");
}

/// What makes the profile less trustworthy, in words.
fn warnings(profile: &Profile) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(e) = &profile.read_error {
        w.push(format!(
            "Reading stopped early: {e}. Every complete record before it is counted."
        ));
    }
    if profile.converted_from_pulley() {
        w.push(
            "Converted from a Pulley-format file: no closing statistics (rate, missed ticks, \
             drops) and sample times are synthetic, one sample after another."
                .to_string(),
        );
    } else if profile.format == Format::Native
        && profile.summary.is_none()
        && profile.read_error.is_none()
    {
        w.push(
            "The file has no closing summary: the profiler did not stop cleanly, \
             so rate, missed ticks and drops are unknown."
                .to_string(),
        );
    }
    if let Some(s) = profile.summary.as_ref().map(|s| &s.stats) {
        if s.samples_dropped > 0 {
            w.push(format!(
                "{} samples were dropped (the writer could not keep up or the output failed).",
                thousands(s.samples_dropped)
            ));
        }
        if let Some(e) = &s.first_error {
            w.push(format!(
                "{} errors during the run; the first: {e}",
                s.errors
            ));
        }
    }
    w
}
