//! Mapping a sampled PC (and its time) to the function it fell in, in one
//! streaming pass over a profile.
//!
//! - Functions are spans `[addr, addr + len)` alive over `(loaded, unloaded]`.
//!   Code may be unloaded and another function loaded at the same address, so
//!   a PC alone is ambiguous; its sample time picks the generation. The
//!   interval is open at the load: load and unload times are stamped when the
//!   embedder calls, after any tick at that same instant was taken.
//! - A time sweep. Samples come in time order (one sampler, one clock), but a
//!   batch is written after the registrations made while it filled, so loads
//!   and unloads are *queued* by time and applied only once a sample is later
//!   than them. The code live at the sweep's time is an interval map of
//!   disjoint pieces (a later load overwrites what it overlaps), so a lookup
//!   is one ordered-map search and every add, unload and resolve costs
//!   O(log n) however they interleave.
//! - A PC that no live code holds goes to the nearest generation in time:
//!   one about to be loaded (its load was stamped on another thread just
//!   after the tick) or the last one unloaded there (an idle interpreter's
//!   stale PC), whichever is closer.
//! - Two caches make the common case a few compares: the last piece hit, and
//!   a sorted snapshot of the live pieces (with a table of where each
//!   fixed-size granule of the code's address range starts in it, so a
//!   lookup is an index and a search among a few pieces), rebuilt only once
//!   as many lookups
//!   as there are pieces have been made since the last change (so a file
//!   that interleaves loads and samples never pays a rebuild per load).
//! - Times are expected not to go backwards; a sample earlier than one
//!   already resolved is answered as of the latest time seen. A load at time
//!   0 (Pulley files have no times) is live at once.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};

/// Resolves PCs to function indices (the indices given to [`Resolver::add`]).
#[derive(Clone, Debug, Default)]
pub struct Resolver {
    /// Functions added and not yet unloaded, by `(start, loaded_ns, seq)`:
    /// an unload record names an address, and means the latest load there.
    open: BTreeMap<(u64, u64, u64), Span>,
    /// Loads and unloads not yet applied, earliest first.
    due: BinaryHeap<Reverse<(u64, u64, Change)>>,
    /// Loads still queued, by `(start, seq)`, for the nearest-in-time rule.
    queued_loads: BTreeMap<(u64, u64), Span>,
    /// The code live at the sweep's time, as disjoint pieces by start.
    live: BTreeMap<u64, Piece>,
    /// Starts of the pieces each live function may own (some stale: checked
    /// against `live` when the function is unloaded).
    owned: HashMap<usize, Vec<u64>>,
    /// Functions unloaded before their load was applied (crafted files).
    cancelled: HashSet<usize>,
    /// The last generation unloaded at each address, as disjoint pieces.
    dead: BTreeMap<u64, Piece>,
    /// `(unloaded_ns, start, index)` of each piece put in `dead`, oldest
    /// first, so [`Resolver::forget_unloaded_before`] need not scan.
    dead_order: VecDeque<(u64, u64, usize)>,
    /// The time of the next queued change (`u64::MAX`: none).
    next_due: u64,
    /// Latest time applied.
    now: u64,
    /// Bumped whenever `live` changes; stamps the caches.
    epoch: u64,
    /// Sorted copy of `live` (`start, end, index`), valid at `snapshot_epoch`.
    snapshot: Vec<(u64, u64, usize)>,
    snapshot_epoch: u64,
    /// For the snapshot: `granules[j]` is the index of the first piece that
    /// ends after `granule_base + (j << granule_shift)`; empty when the live
    /// code spans too wide a range for a table of its size.
    granules: Vec<u32>,
    granule_base: u64,
    granule_shift: u32,
    /// Lookups made in `live` since it last changed.
    lookups: usize,
    /// Last live piece hit: `start, end, index, epoch`.
    last: Option<(u64, u64, usize, u64)>,
    added: usize,
    seq: u64,
}

/// An answer of [`Resolver::resolve_hit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The function's index.
    pub index: usize,
    /// `[start, end)`: live code of that function around the PC, for which
    /// the answer stays the same until [`Resolver::next_change`]; `None`
    /// when the answer came from the nearest-in-time rule.
    pub span: Option<(u64, u64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Change {
    // Unloads sort first at equal times: the old code leaves before the new
    // arrives at the same instant.
    Unload(usize),
    Load(Span),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Span {
    start: u64,
    end: u64,
    loaded_ns: u64,
    seq: u64,
    index: usize,
}

#[derive(Clone, Copy, Debug)]
struct Piece {
    end: u64,
    index: usize,
    loaded_ns: u64,
    unloaded_ns: u64,
}

impl Resolver {
    /// An empty resolver.
    pub fn new() -> Resolver {
        Resolver {
            next_due: u64::MAX,
            epoch: 1,
            ..Resolver::default()
        }
    }

    /// Adds function `index` at `[addr, addr + len)`, loaded at `loaded_ns`.
    pub fn add(&mut self, index: usize, addr: u64, len: u64, loaded_ns: u64) {
        self.seq += 1;
        self.added += 1;
        let span = Span {
            start: addr,
            end: addr.saturating_add(len),
            loaded_ns,
            seq: self.seq,
            index,
        };
        self.open.insert((addr, loaded_ns, self.seq), span);
        if loaded_ns == 0 || loaded_ns < self.now {
            // Already in the past for the sweep (or timeless): live at once.
            self.load(span);
        } else {
            self.queued_loads.insert((addr, self.seq), span);
            self.queue(loaded_ns, Change::Load(span));
        }
    }

    /// Marks the live function at `addr` unloaded at `unloaded_ns`; returns
    /// its index, or `None` if no live function starts there.
    pub fn unload(&mut self, addr: u64, unloaded_ns: u64) -> Option<usize> {
        let (&key, _) = self
            .open
            .range((addr, 0, 0)..=(addr, u64::MAX, u64::MAX))
            .next_back()?;
        let span = self.open.remove(&key)?;
        if unloaded_ns < self.now {
            self.apply(Change::Unload(span.index), unloaded_ns);
        } else {
            self.queue(unloaded_ns, Change::Unload(span.index));
        }
        Some(span.index)
    }

    /// Number of functions added.
    pub fn len(&self) -> usize {
        self.added
    }

    /// Whether no function was added.
    pub fn is_empty(&self) -> bool {
        self.added == 0
    }

    /// Forgets generations unloaded before `time_ns`: a recorder calls this
    /// with a time no later sample can precede, so memory follows the code
    /// that is live, not all the code that ever was.
    pub fn forget_unloaded_before(&mut self, time_ns: u64) {
        while let Some(&(unloaded, start, index)) = self.dead_order.front() {
            if unloaded >= time_ns {
                break;
            }
            self.dead_order.pop_front();
            if self
                .dead
                .get(&start)
                .is_some_and(|p| p.index == index && p.unloaded_ns == unloaded)
            {
                self.dead.remove(&start);
            }
        }
    }

    /// The function `pc` fell in at `time_ns`.
    #[inline]
    pub fn resolve(&mut self, pc: u64, time_ns: u64) -> Option<usize> {
        self.resolve_hit(pc, time_ns).map(|h| h.index)
    }

    /// Like [`Resolver::resolve`], with the span of live code the answer
    /// holds for: a caller may reuse the answer for any PC in that span at
    /// any time up to [`Resolver::next_change`], without asking again.
    #[inline]
    pub fn resolve_hit(&mut self, pc: u64, time_ns: u64) -> Option<Hit> {
        if time_ns > self.next_due {
            self.advance(time_ns);
        }
        self.now = self.now.max(time_ns);
        if let Some((start, end, index, epoch)) = self.last
            && epoch == self.epoch
            && pc >= start
            && pc < end
        {
            return Some(Hit {
                index,
                span: Some((start, end)),
            });
        }
        if let Some((start, end, index)) = self.live_at(pc) {
            self.last = Some((start, end, index, self.epoch));
            return Some(Hit {
                index,
                span: Some((start, end)),
            });
        }
        self.nearest(pc, time_ns)
            .map(|index| Hit { index, span: None })
    }

    /// The time of the next queued load or unload (`u64::MAX`: none): until
    /// a sample is later than it, the live code does not change.
    pub fn next_change(&self) -> u64 {
        self.next_due
    }

    /// Changes whenever the live code does (a load or unload applied): a
    /// caller that memoizes answers with a span keeps them while the epoch
    /// stays the same and no sample is later than [`Resolver::next_change`].
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The live piece holding `pc`: from the snapshot when it is current,
    /// else from the map (rebuilding the snapshot once lookups have paid for
    /// it).
    fn live_at(&mut self, pc: u64) -> Option<(u64, u64, usize)> {
        if self.snapshot_epoch != self.epoch {
            self.lookups += 1;
            if self.lookups <= self.live.len() {
                let (&start, p) = self.live.range(..=pc).next_back()?;
                return (pc < p.end).then_some((start, p.end, p.index));
            }
            self.snapshot.clear();
            self.snapshot
                .extend(self.live.iter().map(|(&s, p)| (s, p.end, p.index)));
            self.snapshot_epoch = self.epoch;
            self.index_granules();
        }
        let pieces = match self.granule_of(pc) {
            Some(j) => {
                let lo = self.granules[j] as usize;
                let hi = self.granules.get(j + 1).map_or(self.snapshot.len(), |&h| {
                    (h as usize + 1).min(self.snapshot.len())
                });
                self.snapshot.get(lo..hi)?
            }
            None => &self.snapshot[..],
        };
        let i = pieces.partition_point(|&(s, _, _)| s <= pc);
        let &(start, end, index) = pieces.get(i.checked_sub(1)?)?;
        (pc < end).then_some((start, end, index))
    }

    /// The granule of `pc`, when the table covers it.
    #[inline]
    fn granule_of(&self, pc: u64) -> Option<usize> {
        let j = pc.checked_sub(self.granule_base)? >> self.granule_shift;
        (j < self.granules.len() as u64).then_some(j as usize)
    }

    /// Builds the granule table of the snapshot: at most 4 entries a piece
    /// (granules of at least 16 bytes), so it costs about what the snapshot
    /// does; pieces far apart (a span the table cannot cover at that size
    /// with granules of at most 64 KiB) leave it empty and lookups search
    /// the whole snapshot.
    fn index_granules(&mut self) {
        self.granules.clear();
        let (Some(first), Some(last)) = (self.snapshot.first(), self.snapshot.last()) else {
            return;
        };
        let (base, span) = (first.0, last.1.saturating_sub(first.0));
        let budget = (self.snapshot.len() as u64).saturating_mul(4).max(64);
        let mut shift = 4;
        while (span >> shift) >= budget && shift < 16 {
            shift += 1;
        }
        if (span >> shift) >= budget || self.snapshot.len() >= u32::MAX as usize {
            return;
        }
        let n = (span >> shift) as usize + 1;
        self.granules.reserve(n);
        let mut i = 0usize;
        for j in 0..n as u64 {
            let at = base + (j << shift);
            // The first piece ending after the granule's start: every piece
            // holding a PC of this granule is at or after it.
            while i + 1 < self.snapshot.len() && self.snapshot[i].1 <= at {
                i += 1;
            }
            self.granules.push(i as u32);
        }
        self.granule_base = base;
        self.granule_shift = shift;
    }

    /// No live code holds `pc`: the nearer in time of the next load there
    /// and the last unload there (ties go to the later load).
    fn nearest(&self, pc: u64, time_ns: u64) -> Option<usize> {
        let upcoming = self
            .queued_loads
            .range(..=(pc, u64::MAX))
            .next_back()
            .map(|(_, s)| *s)
            .filter(|s| pc < s.end)
            .map(|s| {
                let distance = s.loaded_ns.saturating_sub(time_ns).saturating_add(1);
                (distance, Reverse(s.loaded_ns), s.index)
            });
        let gone = self
            .dead
            .range(..=pc)
            .next_back()
            .map(|(_, p)| *p)
            .filter(|p| pc < p.end)
            .map(|p| {
                let distance = time_ns.abs_diff(p.unloaded_ns);
                (distance, Reverse(p.loaded_ns), p.index)
            });
        match (upcoming, gone) {
            (Some(a), Some(b)) => Some(a.min(b).2),
            (a, b) => a.or(b).map(|k| k.2),
        }
    }

    fn queue(&mut self, at: u64, change: Change) {
        self.due.push(Reverse((at, self.seq, change)));
        self.next_due = self.next_due.min(at);
    }

    /// Applies every queued change strictly before `time_ns`.
    #[cold]
    fn advance(&mut self, time_ns: u64) {
        while let Some(Reverse((at, _, change))) = self.due.peek().copied() {
            if at >= time_ns {
                break;
            }
            self.due.pop();
            self.apply(change, at);
        }
        self.next_due = self.due.peek().map_or(u64::MAX, |Reverse((at, _, _))| *at);
    }

    fn apply(&mut self, change: Change, at: u64) {
        match change {
            Change::Load(span) => {
                self.queued_loads.remove(&(span.start, span.seq));
                if !self.cancelled.remove(&span.index) {
                    self.load(span);
                }
            }
            Change::Unload(index) => self.retire(index, at),
        }
    }

    fn load(&mut self, span: Span) {
        if span.end <= span.start {
            // Holds no PC, but is known, so its unload finds it.
            self.owned.entry(span.index).or_default();
            return;
        }
        let owned = &mut self.owned;
        carve(&mut self.live, span.start, span.end, |p, start| {
            owned.entry(p.index).or_default().push(start);
        });
        self.live.insert(
            span.start,
            Piece {
                end: span.end,
                index: span.index,
                loaded_ns: span.loaded_ns,
                unloaded_ns: u64::MAX,
            },
        );
        self.owned.entry(span.index).or_default().push(span.start);
        self.changed();
    }

    /// Moves function `index`'s live pieces to `dead`.
    fn retire(&mut self, index: usize, at: u64) {
        let Some(starts) = self.owned.remove(&index) else {
            // Its load is still queued (a crafted file unloads before it
            // loads): it never becomes live.
            self.cancelled.insert(index);
            return;
        };
        for start in starts {
            let Some(p) = self.live.get(&start).copied() else {
                continue;
            };
            if p.index != index {
                continue;
            }
            self.live.remove(&start);
            let order = &mut self.dead_order;
            carve(&mut self.dead, start, p.end, |d, start| {
                // Out of time order, so forgotten a little late: harmless.
                order.push_back((d.unloaded_ns, start, d.index));
            });
            self.dead.insert(
                start,
                Piece {
                    unloaded_ns: at,
                    ..p
                },
            );
            self.dead_order.push_back((at, start, index));
        }
        self.changed();
    }

    fn changed(&mut self) {
        self.epoch += 1;
        self.lookups = 0;
        self.last = None;
    }
}

/// Clears `[start, end)` in a map of disjoint pieces: pieces that overlap it
/// are trimmed or removed; `split(owner, start)` is told of each right-hand
/// remainder that now starts at `end`. Amortised O(log n): every piece
/// removed was inserted once.
fn carve(map: &mut BTreeMap<u64, Piece>, start: u64, end: u64, mut split: impl FnMut(&Piece, u64)) {
    if let Some((_, p)) = map.range_mut(..start).next_back()
        && p.end > start
    {
        let old_end = p.end;
        p.end = start;
        if old_end > end {
            // `[start, end)` lies inside this piece: its right part stays.
            let right = Piece { end: old_end, ..*p };
            map.insert(end, right);
            split(&right, end);
            return;
        }
    }
    while let Some((&s, &p)) = map.range(start..end).next() {
        map.remove(&s);
        if p.end > end {
            map.insert(end, p);
            split(&p, end);
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The granule table answers as a search of the whole snapshot does:
    /// functions of every size, adjacent, apart, one far away (too wide a
    /// span for the table), and one loaded over others.
    #[test]
    fn granules_answer_as_the_snapshot_search() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for far in [false, true] {
            let mut r = Resolver::new();
            let mut spans = Vec::new();
            let mut addr = 0x1000u64;
            for i in 0..500 {
                let len = 1 + next() % 300;
                let gap = [0, 0, 1, 16, 4096][(next() % 5) as usize];
                addr += gap;
                r.add(i, addr, len, 0);
                spans.push((addr, addr + len, i));
                addr += len;
            }
            if far {
                r.add(500, 1 << 40, 64, 0);
                spans.push((1 << 40, (1 << 40) + 64, 500));
            }
            // Loaded over the middle of three others: it wins there.
            let (a, b) = (spans[100].0 + 1, spans[102].1 - 1);
            r.add(501, a, b - a, 0);
            let truth = |pc: u64| {
                if (a..b).contains(&pc) {
                    return Some(501);
                }
                spans
                    .iter()
                    .find(|&&(s, e, _)| pc >= s && pc < e)
                    .map(|&(_, _, i)| i)
            };
            let hi = spans
                .iter()
                .map(|s| s.1)
                .filter(|&e| e < 1 << 40)
                .max()
                .unwrap();
            // Enough lookups that the snapshot and its table are built.
            for _ in 0..20_000 {
                let pc = 0x0f00 + next() % (hi - 0x0f00 + 64);
                assert_eq!(r.resolve(pc, 0), truth(pc), "pc {pc:#x}, far {far}");
            }
            for pc in [(1 << 40) - 1, 1 << 40, (1 << 40) + 63, (1 << 40) + 64] {
                assert_eq!(r.resolve(pc, 0), truth(pc), "pc {pc:#x}");
            }
            assert_eq!(r.granules.is_empty(), far, "a far function leaves no table");
        }
    }

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

    /// Records in file order: a batch is written after the registrations
    /// made while it filled, so the second generation's load and the first
    /// one's unload come before samples taken while the first was live.
    #[test]
    fn address_reuse_resolves_by_time() {
        let mut r = Resolver::new();
        r.add(0, 100, 10, 5);
        r.add(5, 1000, 4, 5);
        assert_eq!(r.unload(100, 50), Some(0));
        r.add(1, 100, 20, 60);
        assert_eq!(r.resolve(105, 10), Some(0));
        assert_eq!(r.resolve(105, 50), Some(0));
        // Between unload and reload: the nearer generation in time.
        assert_eq!(r.resolve(105, 54), Some(0));
        // Beyond the first generation's end, only the second was ever there.
        assert_eq!(r.resolve(115, 55), Some(1));
        assert_eq!(r.resolve(105, 59), Some(1));
        // At the load's own instant the tick came first: still not live.
        assert_eq!(r.resolve(105, 60), Some(1));
        assert_eq!(r.resolve(105, 61), Some(1));
        assert_eq!(r.resolve(115, 70), Some(1));
        assert_eq!(r.resolve(1002, 70), Some(5));
        assert_eq!(r.unload(100, 100), Some(1));
        assert_eq!(r.unload(100, 100), None);
        // A stale PC after the unload: the last generation there.
        assert_eq!(r.resolve(105, 200), Some(1));
    }

    #[test]
    fn unload_and_reload_at_one_instant() {
        let mut r = Resolver::new();
        r.add(0, 100, 10, 5);
        r.unload(100, 20);
        r.add(1, 100, 10, 20);
        // The tick at 20 was taken before the calls stamped at 20.
        assert_eq!(r.resolve(101, 20), Some(0));
        assert_eq!(r.resolve(101, 21), Some(1));
    }

    /// A later load overwrites the part of an older live span it overlaps;
    /// unloading the later one leaves the older one's remaining pieces.
    #[test]
    fn overlapping_live_spans() {
        let mut r = Resolver::new();
        r.add(0, 100, 100, 1);
        r.add(1, 120, 10, 2);
        assert_eq!(r.resolve(110, 3), Some(0));
        assert_eq!(r.resolve(125, 3), Some(1));
        assert_eq!(r.resolve(150, 3), Some(0));
        assert_eq!(r.unload(100, 4), Some(0));
        assert_eq!(r.resolve(150, 5), Some(0), "nearest: just unloaded");
        assert_eq!(r.resolve(125, 5), Some(1));
        assert_eq!(r.unload(120, 6), Some(1));
        assert_eq!(r.resolve(125, 7), Some(1));
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
        assert_eq!(r.resolve(101, u64::MAX), Some(0));
    }

    #[test]
    fn unload_before_load_applies_is_honoured() {
        let mut r = Resolver::new();
        r.add(0, 100, 10, 50);
        assert_eq!(r.unload(100, 40), Some(0));
        assert_eq!(r.resolve(105, 60), None);
        assert_eq!(r.live.len(), 0, "never live");
    }

    #[test]
    fn forgetting_bounds_memory() {
        let mut r = Resolver::new();
        for g in 0..10_000u64 {
            r.add(g as usize, 1000 + (g % 7) * 64, 32, 10 * g + 1);
            r.unload(1000 + (g % 7) * 64, 10 * g + 5);
            assert_eq!(
                r.resolve(1000 + (g % 7) * 64 + 3, 10 * g + 3),
                Some(g as usize)
            );
            r.forget_unloaded_before(10 * g);
        }
        // A last sample applies the last unload.
        assert_eq!(r.resolve(1, 1_000_000), None);
        assert!(r.dead.len() <= 2, "{}", r.dead.len());
        assert!(r.dead_order.len() <= 2);
        assert!(r.open.is_empty() && r.live.is_empty() && r.owned.is_empty());
    }

    /// The cost cases of the old design: 80 000 generations at one address,
    /// and functions interleaved with samples. Counted in steps, not timed:
    /// each resolve touches O(log n) entries, so the maps stay small here.
    #[test]
    fn many_generations_at_one_address() {
        let mut r = Resolver::new();
        let n = 80_000u64;
        for g in 0..n {
            r.add(g as usize, 4096, 16, 3 * g + 1);
            assert_eq!(r.resolve(4100, 3 * g + 2), Some(g as usize));
            r.unload(4096, 3 * g + 2);
        }
        assert_eq!(r.resolve(4100, 3 * n + 1), Some(n as usize - 1), "stale PC");
        assert_eq!(r.live.len(), 0);
        assert_eq!(r.dead.len(), 1);
        assert!(r.due.len() <= 1);
    }
}
