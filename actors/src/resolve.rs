//! Mapping a sampled PC (and its time) to the function it fell in.
//!
//! - Functions are spans `[addr, addr + len)` alive over `(loaded, unloaded]`.
//!   Code may be unloaded and another function loaded at the same address, so
//!   a PC alone is ambiguous; its tick time picks the generation. The
//!   interval is open at the load: load and unload times are stamped when the
//!   embedder calls, after any tick at that same instant was taken.
//! - Spans are kept sorted by start with a running maximum of ends, so a
//!   lookup is a binary search and a short backward scan even when spans
//!   overlap across generations.
//! - A sample a little before its function's load time (the load was stamped
//!   on another thread just after the tick) goes to the nearest generation in
//!   time rather than nowhere.

/// Resolves PCs to function indices (the indices given to [`Resolver::add`]).
#[derive(Clone, Debug, Default)]
pub struct Resolver {
    spans: Vec<Span>,
    /// `max_end[i]` = the largest end among `spans[..=i]`.
    max_end: Vec<u64>,
    sorted: bool,
    /// Whether any two spans overlap in address (only then does time matter).
    overlapping: bool,
}

#[derive(Clone, Copy, Debug)]
struct Span {
    start: u64,
    end: u64,
    loaded_ns: u64,
    unloaded_ns: u64,
    index: usize,
}

impl Resolver {
    /// An empty resolver.
    pub fn new() -> Resolver {
        Resolver::default()
    }

    /// Adds function `index` at `[addr, addr + len)`, loaded at `loaded_ns`.
    pub fn add(&mut self, index: usize, addr: u64, len: u64, loaded_ns: u64) {
        self.spans.push(Span {
            start: addr,
            end: addr.saturating_add(len),
            loaded_ns,
            unloaded_ns: u64::MAX,
            index,
        });
        self.sorted = false;
    }

    /// Marks the live function at `addr` unloaded at `unloaded_ns`; returns
    /// its index, or `None` if no live function starts there.
    pub fn unload(&mut self, addr: u64, unloaded_ns: u64) -> Option<usize> {
        let span = self
            .spans
            .iter_mut()
            .filter(|s| s.start == addr && s.unloaded_ns == u64::MAX)
            .max_by_key(|s| s.loaded_ns)?;
        span.unloaded_ns = unloaded_ns;
        Some(span.index)
    }

    /// Number of functions added.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether no function was added.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    fn prepare(&mut self) {
        if self.sorted {
            return;
        }
        self.spans.sort_by_key(|s| (s.start, s.loaded_ns));
        self.max_end.clear();
        let mut max = 0;
        self.overlapping = false;
        for s in &self.spans {
            if s.start < max {
                self.overlapping = true;
            }
            max = max.max(s.end);
            self.max_end.push(max);
        }
        self.sorted = true;
    }

    /// The function `pc` fell in at `time_ns`.
    pub fn resolve(&mut self, pc: u64, time_ns: u64) -> Option<usize> {
        self.prepare();
        let upper = self.spans.partition_point(|s| s.start <= pc);
        if !self.overlapping {
            let s = self.spans.get(upper.checked_sub(1)?)?;
            return (pc < s.end).then_some(s.index);
        }
        // Best: alive at `time_ns`, latest loaded; else nearest in time.
        let mut best: Option<(u64, u64, usize)> = None; // (distance, -, index)
        let mut i = upper;
        while i > 0 && self.max_end[i - 1] > pc {
            i -= 1;
            let s = self.spans[i];
            if pc >= s.end {
                continue;
            }
            let distance = if time_ns <= s.loaded_ns {
                // Saturating: a load at u64::MAX ns and a sample at 0 (the
                // file's word, not a clock's) must not wrap to "alive".
                (s.loaded_ns - time_ns).saturating_add(1)
            } else {
                // 0 while alive, then the time since the unload.
                time_ns.saturating_sub(s.unloaded_ns)
            };
            let key = (distance, u64::MAX - s.loaded_ns, s.index);
            if best.is_none_or(|b| key < b) {
                best = Some(key);
            }
        }
        best.map(|(_, _, index)| index)
    }

    /// Drops the generations unloaded before `time_ns`: no sample at or
    /// after `time_ns` can fall in them. (A minimal version for the writer;
    /// the O(log n) resolver brings its own.)
    pub fn forget_unloaded_before(&mut self, time_ns: u64) {
        let before = self.spans.len();
        self.spans.retain(|s| s.unloaded_ns >= time_ns);
        if self.spans.len() != before {
            self.sorted = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_functions() {
        let mut r = Resolver::new();
        r.add(0, 100, 10, 0);
        r.add(1, 200, 10, 0);
        assert_eq!(r.resolve(99, 0), None);
        assert_eq!(r.resolve(100, 0), Some(0));
        assert_eq!(r.resolve(109, 0), Some(0));
        assert_eq!(r.resolve(110, 0), None);
        assert_eq!(r.resolve(205, 0), Some(1));
        assert_eq!(r.resolve(210, 0), None);
    }

    #[test]
    fn address_reuse_resolves_by_time() {
        let mut r = Resolver::new();
        r.add(0, 100, 10, 0);
        r.add(5, 1000, 4, 0);
        assert_eq!(r.unload(100, 50), Some(0));
        r.add(1, 100, 20, 60);
        assert_eq!(r.resolve(105, 10), Some(0));
        assert_eq!(r.resolve(105, 50), Some(0));
        assert_eq!(r.resolve(105, 61), Some(1));
        assert_eq!(r.resolve(115, 70), Some(1));
        // Between unload and reload: the nearer generation in time.
        assert_eq!(r.resolve(105, 54), Some(0));
        assert_eq!(r.resolve(105, 59), Some(1));
        // Beyond the first generation's end, only the second contains it.
        assert_eq!(r.resolve(115, 10), Some(1));
        assert_eq!(r.resolve(1002, 0), Some(5));
        assert_eq!(r.unload(100, 100), Some(1));
        assert_eq!(r.unload(100, 100), None);
    }

    /// Found by fuzzing: the distance to a function loaded at u64::MAX ns
    /// overflowed for a sample at 0 (a panic in debug builds, the wrong
    /// function in release ones).
    #[test]
    fn load_time_at_the_end_of_time() {
        let mut r = Resolver::new();
        r.add(0, 100, 10, u64::MAX);
        r.add(1, 105, 10, 0);
        assert_eq!(r.resolve(106, 0), Some(1));
        assert_eq!(r.resolve(101, 0), Some(0));
    }
}
