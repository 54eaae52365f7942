//! Text for people, shared by every report (text, HTML, diff) and the CLI.
//!
//! - One HTML [`escape`] for everything written into a page: names and
//!   disassembly come from the profile file and are untrusted, and control
//!   characters would make the document invalid, so they are shown as
//!   `\u{..}` escapes.
//! - One formatter per quantity ([`bytes_text`], [`duration_text`],
//!   [`thousands`], [`share`]), so the text report and the HTML page say the
//!   same thing the same way; the one exception is the text report's
//!   lateness, [`duration_fixed_text`], whose fixed decimals are kept.

use std::fmt::Write as _;

/// Escapes text for HTML content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters would make the document invalid; show them.
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters, with an ellipsis when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A count with its noun, singular for one: `counted(1, "sample")` is
/// `1 sample`, `counted(2, "sample")` is `2 samples`.
pub fn counted(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration in ns, in the unit that reads best, without trailing zeros
/// (`12 µs`, `1.5 ms`, `2 s`).
pub fn duration_text(ns: u64) -> String {
    let f = ns as f64;
    if ns == 0 {
        "0".to_string()
    } else if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.3} µs", f / 1e3).replace(".000 ", " ")
    } else if ns < 1_000_000_000 {
        trim_zeros(format!("{:.3}", f / 1e6)) + " ms"
    } else {
        trim_zeros(format!("{:.3}", f / 1e9)) + " s"
    }
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A duration in ns with fixed decimals per unit (`850 ns`, `42.0 µs`,
/// `1.50 ms`): the text report's lateness figures, which tests and users
/// read as they always were. Pages use [`duration_text`].
pub fn duration_fixed_text(ns: u64) -> String {
    let f = ns as f64;
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} µs", f / 1e3)
    } else {
        format!("{:.2} ms", f / 1e6)
    }
}

/// A byte count in binary units (`512 B`, `1.5 KiB`).
pub fn bytes_text(n: u64) -> String {
    let f = n as f64;
    if n < 1024 {
        format!("{n} B")
    } else if n < 1 << 20 {
        format!("{:.1} KiB", f / 1024.0)
    } else if n < 1 << 30 {
        format!("{:.1} MiB", f / 1048576.0)
    } else {
        format!("{:.2} GiB", f / 1073741824.0)
    }
}

/// `part` as a percentage of `whole` (0 when `whole` is 0).
pub fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_quotes_and_control_characters() {
        assert_eq!(
            escape("<script>\"a\"&'b'</script>"),
            "&lt;script&gt;&quot;a&quot;&amp;&#39;b&#39;&lt;/script&gt;"
        );
        assert_eq!(escape("a\u{0}b"), "a\\u{0}b");
        assert_eq!(escape("a\tb\nc"), "a\tb\nc");
    }

    #[test]
    fn number_and_time_formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(duration_text(1_500_000), "1.5 ms");
        assert_eq!(duration_text(2_000_000_000), "2 s");
        assert_eq!(duration_fixed_text(1_500), "1.5 µs");
        assert_eq!(duration_fixed_text(42_000), "42.0 µs");
        assert_eq!(duration_fixed_text(1_500_000), "1.50 ms");
        assert_eq!(bytes_text(512), "512 B");
        assert_eq!(bytes_text(1536), "1.5 KiB");
        assert_eq!(share(1, 4), 25.0);
        assert_eq!(share(1, 0), 0.0);
    }
}
