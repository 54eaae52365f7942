//! How late the kernel wakes a sleeping thread, learned: the spin margin.

use super::{AUTO_SPIN_MAX, AUTO_SPIN_SHARE, Nanos, SpinPolicy};

/// Wake-up errors remembered: the p99 is the 11th largest of them.
pub(crate) const WAKE_WINDOW: usize = 1024;
/// Wake-ups between two recomputations of the percentiles.
pub(crate) const WAKE_RECOMPUTE: usize = 32;
/// Wake-ups needed before the estimate is trusted (until then the margin is
/// the cap: the first ticks are on time rather than cheap).
pub(crate) const WAKE_WARMUP: usize = 32;
/// Wake-up errors are counted in whole microseconds, up to this many; the
/// last bucket holds every error of `WAKE_BUCKETS − 1` µs or more.
pub(crate) const WAKE_BUCKETS: usize = 1024;
/// The width of a bucket, in ns.
pub(crate) const WAKE_BUCKET_NS: Nanos = 1_000;
/// The share of ticks sleeping may lose (waking more than a period late)
/// before the thread wakes earlier to save them: 1/200 (0.5 %), a quarter
/// of the 2 points by which the ticks taken may trail what the host allows.
pub(crate) const TICK_LOSS_BUDGET: (u64, u64) = (1, 200);
/// Margins tried for the tick-loss budget: multiples of 1/8 of the period.
const LOSS_STEPS: u64 = 8;
/// A sleep shorter than this saves less CPU than a wake-up costs (about
/// 10 µs of CPU on a 2-vCPU VM, `wake_probe mechanisms`) plus the median
/// overshoot it risks: the thread spins through instead.
pub(crate) const SLEEP_MIN: Nanos = 20_000;
/// While spinning through at a period no longer than [`SLEEP_MIN`] (50 kHz
/// and above), one tick in this many sleeps (margin 0): sleeping cannot pay
/// there whatever the host does, so the probes only keep the statistics
/// alive, at about 0.1 % of the ticks.
pub(crate) const PROBE_EVERY: u32 = 1024;
/// While spinning through at longer periods, a probe sleep about this
/// often (but at least every [`PROBE_EVERY`] ticks), so that the window
/// of [`WAKE_WINDOW`] wake-ups is renewed in about 5 s and the thread goes
/// back to sleeping within seconds when the host quietens. One probe in
/// 1024 ticks renewed it in 100 s at 10 kHz: a burst of noise at the start
/// of a run kept a whole core spinning for the rest of it. A probe costs
/// the ticks a sleep loses (what the window says), on 2 % of the ticks at
/// 10 kHz.
pub(crate) const PROBE_INTERVAL: Nanos = 5_000_000;
/// A retry of spinning that stops paying within this many ticks was too
/// early: the next waits twice as long (up to [`RETRY_BACKOFF_MAX`]
/// doublings). A retry that lasts longer resets the wait.
const RETRY_GRACE: u32 = 8192;
/// At most 2⁶ times the base wait between retries: on an overloaded host
/// a retry every few seconds rather than every few hundred ms, each
/// retry costing the ticks a preempted spin loses.
const RETRY_BACKOFF_MAX: u32 = 6;
/// What a lost tick is worth to the automatic policy below 20 kHz: this
/// many times what a sleeping tick costs the thread (its wake-up and its
/// sample, learned on this host: [`WakeEstimator::observe_cpu`]). It spins
/// one more microsecond before each deadline only while that microsecond
/// saves ticks at that price or less. At 10 kHz on a 2-vCPU VM, where a
/// tick costs 10–20 µs, that buys the ticks a sleeping thread loses by a
/// few tens of µs (the goal: 99 % of the ticks for at most 20 % of a
/// core), and at 1 kHz almost nothing beyond the free head start (the
/// goal: the reference design's CPU). What a microsecond buys is read off
/// this host's own wake-ups ([`WakeEstimator::cheap_margin`]).
pub(crate) const TICK_PRICE: u64 = 20;
/// At this period and shorter (20 kHz and above) the automatic policy puts
/// ticks first, as [`SpinPolicy::Max`](super::SpinPolicy::Max) does at
/// every rate: it spins as much as keeping sleep's losses within
/// [`TICK_LOSS_BUDGET`] needs, through the whole period if it must. Below,
/// spinning a whole core is only ever asked for.
pub(crate) const SPIN_THROUGH_PERIOD: Nanos = 50_000;
/// Below 20 kHz the automatic policy spins for ticks at most 1/5 of each
/// period, by the window's count of what its margin costs: the 20 % of a
/// core the goals allow at 10 kHz, whatever the price says. It also spins
/// at most what a sleeping tick costs the thread otherwise (learned,
/// [`WakeEstimator::observe_cpu`]), so the default costs at most twice
/// what sleeping alone would.
pub(crate) const SPIN_SHARE_MAX: u64 = 5;
/// What [`WakeEstimator::plan`] returns to spin through: never sleep, even
/// when a randomized deadline is more than a period away.
pub const SPIN_THROUGH: Nanos = Nanos::MAX;

/// Learns how late the kernel wakes a sleeping thread, to wake it early
/// enough for a given p99 lateness and spin only the rest.
///
/// - Counts the last [`WAKE_WINDOW`] overshoots (how late a timed wait
///   returned after it was due) in 1 µs buckets, with a ring of the buckets
///   to forget the oldest. Recording is two counter updates and a ring
///   write in cache lines the last tick touched; every [`WAKE_RECOMPUTE`]
///   wake-ups the 5th, 50th and 99th percentiles are read off the counts.
///   Selecting them from a window of raw values instead cost about 0.1 µs a
///   tick on average, measured on a 2-vCPU VM.
/// - The margin is `p99 − target`, and never less than the p5: the kernel
///   is almost never that punctual, so waking that much early takes it off
///   every tick's lateness for almost no spin (measured on a 2-vCPU VM: a
///   p5 of 7–11 µs, at a fraction of a µs of spin a tick). Aiming a high
///   quantile at a budget, rather than a middle quantile at zero, is what
///   keeps both the p99 and the CPU low.
/// - The margin is capped: by default at 1/100 of the tick period (and
///   50 µs), or at exactly the cap the embedder set. Late wake-ups on a VM
///   are random (a late one predicts almost nothing about the next), so
///   spin is paid on every tick; the cap is what bounds that cost. When
///   even the cap cannot bring the p99 within the target (a noisy host),
///   the thread keeps only the head start rather than pay for a miss.
/// - Below 20 kHz ([`SPIN_THROUGH_PERIOD`]) the automatic policy spins for
///   ticks only where it is cheap: from the window it reads, microsecond by
///   microsecond, how much spin one more microsecond of margin costs (the
///   wake-ups that come before it) and how many ticks it saves (those that
///   come late), and stops where a tick saved would cost more than
///   [`TICK_PRICE`] times what a sleeping tick costs the thread
///   ([`WakeEstimator::cheap_margin`]), or where the spin would exceed that
///   cost or a fifth of the period ([`SPIN_SHARE_MAX`]). So it
///   takes the cheap head of the curve (the wake-ups that miss a random
///   instant by a few tens of µs) and leaves the tail that only a spinning
///   core could save; it always sleeps.
/// - From 20 kHz up, and at every rate with [`SpinPolicy::Max`]
///   (`PCPROF_SPIN=max`), ticks come before CPU: the margin keeps sleeping
///   from losing more than [`TICK_LOSS_BUDGET`] of the ticks, without bound
///   (a wake-up late past the next deadline loses it); an explicit cap
///   bounds it. How many ticks a late
///   wake-up loses depends on the deadlines: with random instants, gaps
///   shorter than a period lose some too ([`WakeEstimator::set_randomized`]).
///   Read off the same window every [`WAKE_RECOMPUTE`] wake-ups, the margin
///   follows the host's noise: none on a quiet host, more when the
///   tail grows. When what is left to sleep is shorter than [`SLEEP_MIN`]
///   (50 kHz and above, or a noisy host at 20 kHz), the thread spins
///   through, and sleeps a probe tick now and then (every
///   [`PROBE_INTERVAL`], or one tick in [`PROBE_EVERY`] where sleeping
///   cannot pay) to keep learning. An explicit cap is never exceeded.
///
/// [`SpinPolicy::Max`]: super::SpinPolicy::Max
/// - Spinning must pay: the ticks lost by spins that ended late (the CPU
///   taken from the spinning thread, an overloaded host) are averaged over
///   about 1024 spins, and while they are more than half of what sleeping
///   loses, the thread sleeps, trying again as that memory fades; a retry
///   that fails at once doubles the wait before the next (up to 64 times),
///   so a host that stays overloaded is retried every few seconds.
/// - On a shared core (the process confined to one CPU) it never spins
///   beyond the head start: the interpreter it would steal from is the
///   work being sampled.
/// - Observations are independent of the margin (they are measured against
///   the wait's own due time), so the feedback is stable.
/// - Pure and deterministic; owned by the thread that sleeps (no lock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WakeEstimator {
    counts: Box<WakeCounts>,
    seen: usize,
    p5: Nanos,
    p50: Nanos,
    p99: Nanos,
    /// `None`: the automatic cap (a share of the period).
    cap: Option<Nanos>,
    /// [`SpinPolicy::Max`](super::SpinPolicy::Max): ticks first at every
    /// rate.
    ticks_first: bool,
    target: Nanos,
    /// The tick period the owner sleeps for (0: unknown).
    period: Nanos,
    /// The smallest margin (a multiple of period/8) with which sleeping
    /// loses at most [`TICK_LOSS_BUDGET`] of the ticks, for `period`.
    loss_margin: Nanos,
    /// The cheap point for `period` ([`WakeEstimator::cheap_margin`]).
    cheap_margin: Nanos,
    /// What a sleeping tick costs the thread besides its spin, in CPU ns
    /// (0: not known yet): learned from [`WakeEstimator::observe_cpu`].
    tick_cost: Nanos,
    /// Spin counted so far, in ns ([`WakeEstimator::count_spin`]).
    spun_ns: Nanos,
    /// The thread's CPU time, the spin and the wake-ups seen at the last
    /// [`WakeEstimator::observe_cpu`].
    cpu_mark: Option<(Nanos, Nanos, usize)>,
    /// The sleeping thread shares its only CPU with the interpreters:
    /// spinning would take that CPU from them, so only the head start.
    shared_core: bool,
    /// Ticks spun through since the last probe sleep.
    spun: u32,
    /// Ticks spun through between probe sleeps, for `period`.
    probe_every: u32,
    /// Whether the last plan was to spin through (or a probe within it).
    through: bool,
    /// The deadlines are random instants within their slots (stratified
    /// sampling): a wake-up loses ticks to shorter gaps than a period.
    randomized: bool,
    /// Ticks lost per wake-up sleeping to the deadline (margin 0), read off
    /// the window, in 1/65536.
    sleep_loss: u64,
    /// Ticks lost per tick that spun to its deadline (an average over about
    /// the last 1024, in 1/65536, held times 1024): a spinning thread loses
    /// ticks too when the CPU is taken from it (an overloaded host), and
    /// spinning then buys nothing.
    spin_loss: u64,
    /// Whether spinning paid at the last plan.
    paying: bool,
    /// Plans since spinning last started paying again (a retry).
    since_retry: u32,
    /// Doublings of the wait before the next retry (see [`RETRY_GRACE`]).
    backoff: u32,
}

/// The estimator's window: how many of the remembered wake-ups fell in
/// each bucket, and which bucket each one fell in (oldest overwritten).
#[derive(Clone, Debug, PartialEq, Eq)]
struct WakeCounts {
    per_bucket: [u16; WAKE_BUCKETS],
    ring: [u16; WAKE_WINDOW],
}

impl WakeEstimator {
    /// A new estimator aiming the p99 of lateness at `target` ns, whose
    /// margin never exceeds `cap` ns (`None`: the automatic cap, 1/100 of
    /// the period and at most [`AUTO_SPIN_MAX`]).
    pub fn new(cap: Option<Nanos>, target: Nanos) -> WakeEstimator {
        WakeEstimator::with_policy(
            cap.map_or(SpinPolicy::Auto, |c| {
                SpinPolicy::Cap(std::time::Duration::from_nanos(c))
            }),
            target,
        )
    }

    /// A new estimator for `policy`, aiming the p99 of lateness at `target`
    /// ns.
    pub fn with_policy(policy: SpinPolicy, target: Nanos) -> WakeEstimator {
        let cap = match policy {
            SpinPolicy::Auto | SpinPolicy::Max => None,
            SpinPolicy::Cap(d) => Some(d.as_nanos().min(u128::from(u64::MAX / 4)) as Nanos),
        };
        WakeEstimator {
            counts: Box::new(WakeCounts {
                per_bucket: [0; WAKE_BUCKETS],
                ring: [0; WAKE_WINDOW],
            }),
            seen: 0,
            p5: 0,
            p50: 0,
            p99: 0,
            cap,
            ticks_first: policy == SpinPolicy::Max,
            target,
            period: 0,
            loss_margin: 0,
            cheap_margin: 0,
            tick_cost: 0,
            spun_ns: 0,
            cpu_mark: None,
            shared_core: false,
            spun: 0,
            probe_every: PROBE_EVERY,
            through: false,
            randomized: false,
            sleep_loss: 0,
            spin_loss: 0,
            paying: true,
            since_retry: u32::MAX,
            backoff: 0,
        }
    }

    /// Whether the thread is spinning through (its last plan was
    /// [`SPIN_THROUGH`] or a probe sleep among such ticks).
    #[inline]
    pub fn spinning_through(&self) -> bool {
        self.through
    }

    /// Records that a spin to a deadline ended `late` ns after it (more
    /// than a period: the CPU was taken from the spinning thread).
    #[inline]
    pub fn observe_spin(&mut self, late: Nanos) {
        if self.period == 0 {
            return;
        }
        let lost = self.ticks_lost(late, self.period).min(64 << 16);
        // An average over about the last 1024 spins, as long a memory as
        // the sleeps' window: a single stall of the whole VM (tens of ticks
        // lost, spinning or sleeping alike) must not outweigh the sleeps'
        // record, or one such stall sends the thread to sleep for thousands
        // of ticks. Held times 1024, so that fractions of a tick (a short
        // stall before a random instant) are not rounded away.
        self.spin_loss = self.spin_loss - (self.spin_loss >> 10) + lost;
    }

    /// Records that the thread spun `ns` before a deadline.
    #[inline]
    pub fn count_spin(&mut self, ns: Nanos) {
        self.spun_ns = self.spun_ns.wrapping_add(ns);
    }

    /// Records the sleeping thread's CPU time so far, in ns (its owner
    /// reads it every few hundred ticks): what a sleeping tick costs it
    /// besides its spin (the wake-up, the sample) is learned from two such
    /// readings at least [`WAKE_RECOMPUTE`] wake-ups apart, and bounds the
    /// spin the cheap point may buy. A host whose wake-ups are cheap gets
    /// a small bound, one whose wake-ups are dear a larger one: the default
    /// costs at most twice what sleeping alone would.
    pub fn observe_cpu(&mut self, cpu_ns: Nanos) {
        if let Some((cpu, spun, seen)) = self.cpu_mark {
            let wakes = self.seen - seen;
            if wakes < WAKE_RECOMPUTE {
                return; // spinning through: too few sleeps yet to tell
            }
            let used = cpu_ns
                .saturating_sub(cpu)
                .saturating_sub(self.spun_ns.wrapping_sub(spun));
            self.tick_cost = used / wakes as Nanos;
            self.cheap_margin = self.cheap_margin_if_used();
        }
        self.cpu_mark = Some((cpu_ns, self.spun_ns, self.seen));
    }

    /// What a sleeping tick costs the thread besides its spin, in CPU ns,
    /// as last learned (0: not yet known).
    pub fn tick_cost(&self) -> Nanos {
        self.tick_cost
    }

    /// Whether spinning saves ticks on this host now: it loses at most half
    /// as many as sleeping would.
    #[inline]
    fn spin_pays(&self) -> bool {
        (self.spin_loss >> 10) * 2 <= self.sleep_loss
    }

    /// The tick period the owner sleeps for, in ns (0: unknown). Cheap when
    /// unchanged: the timing thread calls it before every sleep.
    #[inline]
    pub fn set_period(&mut self, period: Nanos) {
        if period != self.period {
            self.period = period;
            self.probe_every = probe_every(period);
            self.loss_margin = self.compute_loss_margin();
            self.cheap_margin = self.cheap_margin_if_used();
        }
    }

    /// Whether the deadlines are random instants within their slots
    /// ([`SamplingMode::Randomized`](crate::config::SamplingMode)), which
    /// changes how many ticks a late wake-up loses.
    pub fn set_randomized(&mut self, randomized: bool) {
        if randomized != self.randomized {
            self.randomized = randomized;
            self.loss_margin = self.compute_loss_margin();
            self.cheap_margin = self.cheap_margin_if_used();
        }
    }

    /// The ticks a wake-up `late` ns past its deadline loses on average, in
    /// 1/65536, with ticks `period` ns apart (the ticker takes the latest
    /// passed deadline and skips the others).
    ///
    /// - Periodic deadlines, `x = late / period`: exactly `⌊x⌋`.
    /// - Randomized ones (one uniform instant a slot): the expected number
    ///   of later instants within `late` of a given one, `x²/2` below a
    ///   period and `x − 1/2` beyond (the gap to the next instant is
    ///   triangular on (0, 2 periods)). At 20 kHz a wake-up 20 µs late
    ///   loses 8 % of a tick, where a periodic one loses none: counting as
    ///   periodic, the policy slept through a 2 % loss there.
    #[inline]
    fn ticks_lost(&self, late: Nanos, period: Nanos) -> u64 {
        let period = period.max(1);
        if !self.randomized {
            return (late / period).min(u64::MAX >> 17) << 16;
        }
        // x in 1/65536; lateness beyond 2^40 ns (18 minutes) counts as
        // that, so the shift cannot overflow (and a u64 division is cheap:
        // the window is read off ~400 of them every 32 wake-ups).
        let x = (late.min(1 << 40) << 16) / period;
        if x < 1 << 16 {
            (x * x) >> 17
        } else {
            x - (1 << 15)
        }
    }

    /// Whether the sleeping thread shares its only CPU with the work it
    /// samples (a process confined to one CPU): then it never spins beyond
    /// the head start, since every µs spun is taken from an interpreter,
    /// which could not run meanwhile anyway.
    pub fn set_shared_core(&mut self, shared: bool) {
        self.shared_core = shared;
    }

    /// The smallest margin, in ns, with which sleeping loses at most
    /// [`TICK_LOSS_BUDGET`] of the ticks of the period set with
    /// [`WakeEstimator::set_period`]: read off the window.
    pub fn tick_loss_margin(&self) -> Nanos {
        self.loss_margin
    }

    /// The learned 5th percentile of the kernel's wake-up error, in ns
    /// (whole microseconds, rounded down).
    pub fn p5(&self) -> Nanos {
        self.p5
    }

    /// The learned median of the kernel's wake-up error, in ns.
    pub fn p50(&self) -> Nanos {
        self.p50
    }

    /// The learned 99th percentile of the kernel's wake-up error, in ns.
    pub fn p99(&self) -> Nanos {
        self.p99
    }

    /// The most the thread may spin before a deadline, for ticks `period`
    /// ns apart (0: unknown).
    pub fn cap_for(&self, period: Nanos) -> Nanos {
        let auto_max = AUTO_SPIN_MAX.as_nanos() as Nanos;
        match (self.cap, period) {
            (Some(cap), 0) => cap,
            (Some(cap), period) => cap.min(period),
            (None, 0) => auto_max,
            (None, period) => (period / AUTO_SPIN_SHARE).min(auto_max),
        }
    }

    /// How long before a deadline to wake and start spinning, in ns, for
    /// ticks `period` ns apart (0: unknown).
    ///
    /// - Until enough wake-ups are seen, the cap.
    /// - For the lateness target: `p99 − target` when that fits in the cap,
    ///   and at least the p5; else the p5 alone (within the cap): a margin
    ///   that cannot bring the p99 within the target would be spun on every
    ///   tick for a p99 still above it, since late wake-ups are random.
    /// - For the ticks, by default below 20 kHz ([`SPIN_THROUGH_PERIOD`]):
    ///   at least the cheap point ([`WakeEstimator::cheap_margin`]), which
    ///   always leaves a sleep.
    /// - For the ticks otherwise (from 20 kHz up, with
    ///   [`SpinPolicy::Max`](super::SpinPolicy::Max) at every rate, or
    ///   within an explicit cap): at least the smallest margin with which
    ///   sleeping loses at most [`TICK_LOSS_BUDGET`] of them (a lost tick
    ///   is a lost sample, which no later spin makes up); when what is left
    ///   to sleep is then shorter than [`SLEEP_MIN`], the period: spin
    ///   through.
    /// - Spinning for ticks only while it pays (see [`WakeEstimator::plan`]).
    /// - An explicit cap is never exceeded; on a shared core (see
    ///   [`WakeEstimator::set_shared_core`]) never more than the head start.
    pub fn margin_for(&self, period: Nanos) -> Nanos {
        let cap = self.cap_for(period);
        if self.seen < WAKE_WARMUP {
            return if self.shared_core { 0 } else { cap };
        }
        if self.shared_core {
            return self.p5.min(cap);
        }
        let needed = self.p99.saturating_sub(self.target);
        let mut margin = if needed <= cap {
            needed.max(self.p5)
        } else {
            self.p5
        }
        .min(cap);
        if period == 0 {
            return margin;
        }
        let cheap = self.seeks_cheap_point(period);
        let for_ticks = match (cheap, period == self.period) {
            (true, true) => self.cheap_margin,
            (true, false) => self.cheap_margin_for(period),
            (false, true) => self.loss_margin,
            (false, false) => self.loss_margin_for(period),
        };
        let for_ticks = match self.cap {
            Some(cap) => for_ticks.min(cap),
            None => for_ticks,
        };
        if self.spin_pays() {
            margin = margin.max(for_ticks);
        }
        if !cheap
            && margin.saturating_add(SLEEP_MIN) >= period
            && self.cap.is_none_or(|c| c >= period)
        {
            return period;
        }
        margin.min(period)
    }

    /// The cheap point for the period set with
    /// [`WakeEstimator::set_period`]: the margin, in whole microseconds and
    /// at most `period − SLEEP_MIN` (so that the thread still sleeps), that
    /// minimises the spin it costs plus the ticks sleeping then loses, each
    /// priced at [`TICK_PRICE`] times what a sleeping tick costs; read off
    /// the window every [`WAKE_RECOMPUTE`] wake-ups. Nothing until that
    /// cost is known.
    ///
    /// One more microsecond of margin costs a microsecond of spin to every
    /// wake-up that comes before it, and saves, to every one that comes
    /// after it, what that microsecond of lateness loses: `1/period` of a
    /// tick beyond a period late, less below (`x²/2` with random instants,
    /// a whole tick at each multiple of the period with periodic ones; see
    /// [`WakeEstimator::ticks_lost`]). The sum of both, swept from 0 up, is
    /// the margin's cost; its minimum is the cheap point. So a host whose
    /// wake-ups are mostly a few µs late but sometimes milliseconds late
    /// gets the few µs, and sleeps through the stalls it cannot afford to
    /// spin through.
    pub fn cheap_margin(&self) -> Nanos {
        self.cheap_margin
    }

    /// Whether the margin for ticks `period` ns apart is the cheap point:
    /// the automatic policy below 20 kHz.
    #[inline]
    fn seeks_cheap_point(&self, period: Nanos) -> bool {
        self.cap.is_none() && !self.ticks_first && period > SPIN_THROUGH_PERIOD
    }

    /// The cheap point for the period set, where it is used (the sweep is
    /// skipped where ticks come first).
    fn cheap_margin_if_used(&self) -> Nanos {
        if self.seeks_cheap_point(self.period) {
            self.cheap_margin_for(self.period)
        } else {
            0
        }
    }

    fn cheap_margin_for(&self, period: Nanos) -> Nanos {
        if self.seen < WAKE_WARMUP || period <= SLEEP_MIN {
            return 0;
        }
        let counts = &self.counts.per_bucket;
        let count = |b: usize| f64::from(counts[b]);
        let n = self.seen.min(WAKE_WINDOW) as f64;
        // In µs (the buckets' unit) and counts of wake-ups.
        let p = period as f64 / WAKE_BUCKET_NS as f64;
        let price = (TICK_PRICE * self.tick_cost) as f64 / WAKE_BUCKET_NS as f64;
        let top = ((period - SLEEP_MIN) / WAKE_BUCKET_NS).min(WAKE_BUCKETS as Nanos - 1) as usize;
        // With margin m: wake-ups in buckets ≤ m spin; those in (m, m + p]
        // lose x²/2 of a tick (randomized), those beyond (the tail) lose a
        // tick a period, so 1/p a µs.
        // The last bucket's wake-ups (how late is unknown) count in the
        // tail: a period late at least, whatever the margin.
        let last = WAKE_BUCKETS - 1;
        let reach = p as usize; // whole µs within a period
        let mut below = count(0);
        let (mut w0, mut w1) = (0.0, 0.0);
        for b in 1..=reach.min(last - 1) {
            w0 += count(b);
            w1 += count(b) * b as f64;
        }
        // The spin the margin costs, summed over the window: at most a
        // fifth of every period, and at most what a sleeping tick costs
        // otherwise (nothing until that is known).
        let budget = (period / SPIN_SHARE_MAX).min(self.tick_cost) as f64 / WAKE_BUCKET_NS as f64;
        let (mut spun, spin_max) = (0.0, n * budget);
        let (mut cost, mut best, mut best_m) = (0.0f64, 0.0f64, 0usize);
        for m in 0..top {
            if below >= n || spun + below > spin_max {
                break; // nothing left to save, or no more spin to spend
            }
            spun += below;
            let saved = if self.randomized {
                // Σ over the window of ((b−m)² − (b−m−1)²) / 2p², and the
                // tail's 1/p each.
                let tail = n - below - w0;
                (2.0 * w1 - (2.0 * m as f64 + 1.0) * w0) / (2.0 * p * p) + tail / p
            } else {
                // A whole tick for each wake-up exactly a multiple of the
                // period past the margin.
                let mut s = count(last) / p;
                let mut k = 1.0;
                loop {
                    let b = m + (k * p).ceil() as usize;
                    if b >= last {
                        break;
                    }
                    s += count(b);
                    k += 1.0;
                }
                s
            };
            cost += below - price * saved;
            if cost < best {
                (best, best_m) = (cost, m + 1);
            }
            // Slide to m + 1: bucket m + 1 now spins, bucket m + 1 + reach
            // enters the window.
            let next = m + 1;
            below += count(next);
            w0 -= count(next);
            w1 -= count(next) * next as f64;
            if next + reach < last {
                w0 += count(next + reach);
                w1 += count(next + reach) * (next + reach) as f64;
            }
        }
        best_m as Nanos * WAKE_BUCKET_NS
    }

    /// The margin for the next sleep, for the period set with
    /// [`WakeEstimator::set_period`]: [`WakeEstimator::margin_for`], except
    /// that spinning through is [`SPIN_THROUGH`], and one tick in
    /// [`PROBE_EVERY`] then sleeps (margin 0) so that the window keeps
    /// learning how the host wakes.
    #[inline]
    pub fn plan(&mut self) -> Nanos {
        if !self.spin_pays() {
            // Spinning lost ticks too: sleep, and let the memory of it fade
            // (by half in about 2800 ticks, times 2^backoff) so that
            // spinning is tried again.
            let fade = (self.spin_loss >> (12 + self.backoff)).max(1);
            self.spin_loss = self.spin_loss.saturating_sub(fade);
        }
        // What `margin_for` below decides with.
        let pays = self.spin_pays();
        if pays != self.paying {
            self.paying = pays;
            if pays {
                self.since_retry = 0;
            } else if self.since_retry < RETRY_GRACE {
                // The retry failed at once: the host is still overloaded.
                self.backoff = (self.backoff + 1).min(RETRY_BACKOFF_MAX);
            } else {
                self.backoff = 0;
            }
        }
        self.since_retry = self.since_retry.saturating_add(1);
        let margin = self.margin_for(self.period);
        self.through = self.period > 0 && margin >= self.period;
        if self.through {
            self.spun += 1;
            if self.spun >= self.probe_every {
                self.spun = 0;
                return 0;
            }
            return SPIN_THROUGH;
        }
        margin
    }

    /// [`WakeEstimator::margin_for`] a period too long to bound the spin.
    pub fn margin(&self) -> Nanos {
        self.margin_for(0)
    }

    fn compute_loss_margin(&mut self) -> Nanos {
        if self.seen < WAKE_WARMUP || self.period == 0 {
            return 0;
        }
        let (margin, lost_at_zero) = self.loss_for(self.period);
        self.sleep_loss = lost_at_zero / self.seen.min(WAKE_WINDOW) as u64;
        margin
    }

    fn loss_margin_for(&self, period: Nanos) -> Nanos {
        self.loss_for(period).0
    }

    /// The smallest multiple of `period`/8 as margin with which the window's
    /// wake-ups lose at most [`TICK_LOSS_BUDGET`] of the ticks, and the
    /// ticks they lose at margin 0 (in 1/65536). The margin is the period
    /// itself when none does. A wake-up `o` ns late with margin `m` loses
    /// [`WakeEstimator::ticks_lost`]`(o − m)`: counted from the 1 µs
    /// buckets' lower edges, skipping the buckets that lose nothing (below
    /// one period, with periodic deadlines); a wake-up beyond the last
    /// bucket loses at least a tick whatever the margin.
    fn loss_for(&self, period: Nanos) -> (Nanos, u64) {
        if period == 0 {
            return (0, 0);
        }
        let n = self.seen.min(WAKE_WINDOW) as u64;
        let (num, den) = TICK_LOSS_BUDGET;
        let step = period / LOSS_STEPS;
        let mut lost = [0u64; LOSS_STEPS as usize];
        let first = if self.randomized {
            1
        } else {
            (period / WAKE_BUCKET_NS) as usize
        };
        for (bucket, &count) in self.counts.per_bucket.iter().enumerate().skip(first) {
            if count == 0 {
                continue;
            }
            let late = bucket as Nanos * WAKE_BUCKET_NS;
            for (j, l) in lost.iter_mut().enumerate() {
                let ticks = if bucket == WAKE_BUCKETS - 1 {
                    // Beyond the counted range: how late is unknown, so no
                    // margin short of a spin is known to save it.
                    self.ticks_lost(late, period).max(1 << 16)
                } else {
                    self.ticks_lost(late.saturating_sub(j as Nanos * step), period)
                };
                *l += u64::from(count) * ticks;
            }
        }
        // The first margin whose losses a wake-up, lost[j] / n, are within
        // the budget.
        let margin = match lost.iter().position(|&l| l * den <= (num * n) << 16) {
            Some(j) => j as Nanos * step,
            None => period,
        };
        (margin, lost[0])
    }

    /// Records that a wait returned `overshoot` ns after it was due.
    pub fn observe(&mut self, overshoot: Nanos) {
        // A probe sleep among spun-through ticks is no sample of how a
        // sleeping thread wakes: on a loaded host the scheduler holds back
        // a thread that has just spun for thousands of ticks, so probes saw
        // millisecond wake-ups a sleeping thread does not (measured with 3
        // busy processes on 2 vCPUs: the probes kept the thread spinning
        // through at 47 % of the ticks, where sleeping took 70 %). Probes
        // may only say the host got quieter; if sleeping then loses ticks
        // after all, its own wake-ups say so within 32 of them.
        let overshoot = if self.through {
            overshoot.min(self.p50)
        } else {
            overshoot
        };
        let bucket = (overshoot / WAKE_BUCKET_NS).min(WAKE_BUCKETS as Nanos - 1) as u16;
        let counts = &mut *self.counts;
        let slot = self.seen % WAKE_WINDOW;
        if self.seen >= WAKE_WINDOW {
            let oldest = usize::from(counts.ring[slot]);
            counts.per_bucket[oldest] -= 1;
        }
        counts.ring[slot] = bucket;
        counts.per_bucket[usize::from(bucket)] += 1;
        self.seen += 1;
        if self.seen.is_multiple_of(WAKE_RECOMPUTE) && self.seen >= WAKE_WARMUP {
            let n = self.seen.min(WAKE_WINDOW);
            // 0-based ranks in the window's sorted order.
            let ranks = [n * 5 / 100, n / 2, (n * 99).div_ceil(100) - 1];
            let mut found = [0; 3];
            let (mut below, mut next) = (0, 0);
            for (bucket, &count) in counts.per_bucket.iter().enumerate() {
                below += usize::from(count);
                while next < 3 && below > ranks[next] {
                    found[next] = bucket as Nanos * WAKE_BUCKET_NS;
                    next += 1;
                }
                if next == 3 {
                    break;
                }
            }
            [self.p5, self.p50, self.p99] = found;
            self.loss_margin = self.compute_loss_margin();
            self.cheap_margin = self.cheap_margin_if_used();
        }
    }
}

/// Ticks spun through between two probe sleeps, for ticks `period` ns apart
/// (see [`PROBE_INTERVAL`]).
#[inline]
pub(crate) fn probe_every(period: Nanos) -> u32 {
    if period <= SLEEP_MIN {
        return PROBE_EVERY;
    }
    (PROBE_INTERVAL / period).clamp(16, Nanos::from(PROBE_EVERY)) as u32
}
