//! Tests of the estimator and the clocks.

use std::sync::Arc;
use std::thread;

use super::estimator::WAKE_BUCKET_NS;
use super::*;

/// A deterministic stand-in for the kernel's wake-up errors: 5 µs one
/// time in 10, 12 µs most of the time, 150 µs one time in 50 (2 %, so
/// the p99 is 150 µs and the p5 5 µs).
fn overshoot(i: u64) -> Nanos {
    match i % 50 {
        49 => 150_000,
        i if i % 10 == 0 => 5_000,
        _ => 12_000,
    }
}

#[test]
fn estimator_starts_at_the_cap_then_aims_the_p99_at_the_target() {
    let mut e = WakeEstimator::new(Some(50_000), 40_000);
    assert_eq!(e.margin(), 50_000);
    for i in 0..(WAKE_WARMUP as u64 - 1) {
        e.observe(overshoot(i));
    }
    assert_eq!(e.margin(), 50_000, "still warming up");
    for i in 0..2000 {
        e.observe(overshoot(i));
    }
    assert_eq!((e.p5(), e.p50(), e.p99()), (5_000, 12_000, 150_000));
    // p99 150 µs, target 40 µs: 110 µs early would be needed, beyond the
    // cap; spinning 50 µs a tick would still miss, so only the head start.
    assert_eq!(e.margin(), 5_000);
    let mut wide = WakeEstimator::new(Some(200_000), 40_000);
    for i in 0..2000 {
        wide.observe(overshoot(i));
    }
    assert_eq!(wide.margin(), 110_000);
}

#[test]
fn a_punctual_kernel_gets_only_the_free_head_start_and_a_shift_is_followed() {
    let mut e = WakeEstimator::new(Some(50_000), 40_000);
    for i in 0..2000 {
        e.observe(if i % 4 == 0 { 8_000 } else { 20_000 });
    }
    // p99 20 µs is within the target: only the p5 (8 µs), which the
    // kernel almost always overshoots, so it costs almost no spin.
    assert_eq!((e.p5(), e.p99(), e.margin()), (8_000, 20_000, 8_000));
    // The machine gets busier: wake-ups at 70 µs, and the window follows.
    for _ in 0..WAKE_WINDOW {
        e.observe(70_000);
    }
    // All 70 µs late: the p5 is 70 µs too, so waking that early costs
    // almost no spin; the cap still bounds it.
    assert_eq!((e.p5(), e.p99(), e.margin()), (70_000, 70_000, 50_000));
    // Mostly 10 µs, 2 % at 85 µs: 45 µs early brings the p99 to the target.
    for i in 0..WAKE_WINDOW {
        e.observe(if i % 50 == 0 { 85_000 } else { 10_000 });
    }
    assert_eq!((e.p5(), e.p99(), e.margin()), (10_000, 85_000, 45_000));
    // Huge preemptions: no margin within the cap reaches the target.
    for _ in 0..WAKE_WINDOW {
        e.observe(5_000_000);
    }
    assert_eq!(e.margin(), 50_000, "the head start, capped");
}

#[test]
fn the_automatic_cap_is_a_share_of_the_period_and_spins_through_when_sleep_is_hopeless() {
    let mut e = WakeEstimator::new(None, 40_000);
    // Before learning: the cap, 1/100 of the period, at most 50 µs.
    assert_eq!(e.margin_for(100_000), 1_000);
    assert_eq!(e.margin_for(1_000_000), 10_000);
    assert_eq!(e.margin_for(100_000_000), 50_000);
    for i in 0..2000 {
        e.observe(17_000 + 80_000 * u64::from(i % 50 == 0));
    }
    assert_eq!((e.p5(), e.p50(), e.p99()), (17_000, 17_000, 97_000));
    // 1 kHz: p99 97 µs − target 40 µs = 57 µs, beyond the 10 µs cap:
    // the head start (17 µs), capped at 10 µs.
    assert_eq!(e.margin_for(1_000_000), 10_000);
    // 10 kHz: at most 1 µs of each 100 µs period.
    assert_eq!(e.margin_for(100_000), 1_000);
    // 100 Hz: the cap is 50 µs, and 57 µs would be needed: the head start.
    assert_eq!(e.margin_for(10_000_000), 17_000);
    // 100 kHz: the median wake-up (17 µs) exceeds the period: spin through.
    assert_eq!(e.margin_for(10_000), 10_000);
    let mut e = WakeEstimator::new(None, 40_000);
    for i in 0..2000 {
        e.observe(6_000 + 40_000 * u64::from(i % 50 == 0));
    }
    // 1 kHz, p99 46 µs: 6 µs early is within the cap and reaches the target.
    assert_eq!(e.margin_for(1_000_000), 6_000);
}

/// Ticks before CPU (`SpinPolicy::Max`, and the default from 20 kHz up):
/// where sleeping would lose more than the budget of ticks, the thread
/// wakes early enough to save them, beyond the automatic cap, and stops as
/// soon as the host quietens.
#[test]
fn ticks_first_the_margin_saves_ticks_a_noisy_host_would_lose_and_follows_the_noise() {
    let mut e = WakeEstimator::with_policy(SpinPolicy::Max, 40_000);
    e.set_period(100_000);
    // 10 kHz; 1 % of wake-ups 150 µs late: sleeping to the deadline would
    // lose a tick each time (1 % of the ticks, above the 0.5 % budget).
    let noisy = |i: usize| {
        if i.is_multiple_of(100) {
            150_000
        } else {
            20_000
        }
    };
    for i in 0..WAKE_WINDOW {
        e.observe(noisy(i));
    }
    // 5/8 of the period early is the first step at which 150 µs is less
    // than a period late; far beyond the 1 µs cap for the lateness target.
    assert_eq!(e.tick_loss_margin(), 62_500);
    assert_eq!(e.plan(), 62_500);
    // The host quietens: a window later the margin is the capped head start.
    for _ in 0..WAKE_WINDOW {
        e.observe(20_000);
    }
    assert_eq!((e.tick_loss_margin(), e.plan()), (0, 1_000));
    // Noisier still: 3 % of wake-ups lose two ticks whatever the margin
    // short of a spin, so the thread spins through.
    for i in 0..WAKE_WINDOW {
        e.observe(noisy_10khz(i));
    }
    assert_eq!(e.plan(), SPIN_THROUGH);
    // But the spins end late too (an overloaded host takes the CPU from the
    // spinning thread as well): spinning buys nothing, so it sleeps, with
    // the capped head start.
    for _ in 0..256 {
        e.observe_spin(300_000);
    }
    assert_eq!(e.plan(), 1_000);
    // That memory fades: some thousands of ticks later (how many depends
    // on how much worse the spins were) spinning is tried again.
    let retried = (0..60_000).position(|_| e.plan() == SPIN_THROUGH);
    assert!(
        retried.is_some_and(|t| t > 1_000),
        "retried after {retried:?} ticks"
    );
    // Sharing the only CPU with the interpreter: never more than the head
    // start, however noisy.
    e.set_shared_core(true);
    assert_eq!(e.plan(), 1_000);
}

/// Below 20 kHz the default takes the cheap point and never spins
/// through. At 10 kHz with periodic deadlines, 3 % of wake-ups 250 µs late
/// lose two ticks each, the rest are 40 µs late. Waking 51 µs early saves
/// one of the two for 11 µs of spin on the other 97 % of the ticks (a
/// tick for 341 µs of spin, within the price of 20 ticks' cost, 400 µs);
/// saving the second would take 151 µs, more than a period: that the
/// default leaves, where ticks-first spins through. With the rest 20 µs
/// late, the 51 µs would spin 31 µs a tick, beyond a fifth of the period
/// and the 20 µs a tick costs: none.
#[test]
fn below_20_khz_the_default_takes_the_cheap_point_and_never_spins_through() {
    let host = |i: usize| {
        if i.is_multiple_of(33) {
            250_000
        } else {
            40_000
        }
    };
    let mut e = learned(100_000, false, host);
    assert_eq!(e.cheap_margin(), 51_000);
    assert_eq!(e.plan(), 51_000);
    assert!(!e.spinning_through());
    let mut first = learned_with(SpinPolicy::Max, 100_000, false, host);
    assert_eq!(first.plan(), SPIN_THROUGH);
    let mut e = learned(100_000, false, noisy_10khz);
    assert_eq!(e.cheap_margin(), 0);
    assert_eq!(e.plan(), 1_000);
    // However late the wake-ups, the default still sleeps below 20 kHz:
    // at most what leaves SLEEP_MIN to sleep, where ticks-first spins.
    let late = |_| 5_000_000;
    let mut e = learned(100_000, true, late);
    assert_eq!(e.plan(), 100_000 - super::estimator::SLEEP_MIN);
    let mut e = learned(60_000, true, late);
    assert_eq!(e.plan(), 60_000 - super::estimator::SLEEP_MIN);
    // From 20 kHz up, ticks first: it spins through.
    let mut e = learned(50_000, true, late);
    assert_eq!(e.plan(), SPIN_THROUGH);
    // A punctual host, every wake-up 12 µs late: with random instants each
    // loses 0.7 % of a tick, and waking 12 µs early saves it for no spin.
    let mut e = learned(100_000, true, |_| 12_000);
    assert_eq!((e.cheap_margin(), e.plan()), (12_000, 12_000));
    // With periodic deadlines there is no tick to save: only the head start
    // (capped at 1 µs for the lateness target at 10 kHz).
    let mut e = learned(100_000, false, |_| 12_000);
    assert_eq!((e.cheap_margin(), e.plan()), (0, 1_000));
    // Half the wake-ups spread evenly over 0-63 µs, half stalled for 5 ms:
    // each µs of margin saves 1/100 of a tick on every stalled one, worth
    // its spin at any margin; but a fifth of the period bounds it: 71 µs
    // spins (71 − 31.5) / 2 = 19.75 µs a tick, 72 µs would spin 20.25 µs.
    let e = learned(100_000, true, |i| {
        if i.is_multiple_of(2) {
            (i as u64 / 2 % 64) * 1_000
        } else {
            5_000_000
        }
    });
    assert_eq!(e.cheap_margin(), 71_000);
    // Sharing the only CPU with the interpreter: the head start alone.
    let mut e = learned(100_000, false, host);
    e.set_shared_core(true);
    assert_eq!(e.plan(), 1_000);
    // Spinning that does not pay (its spins end late too): the head start.
    let mut e = learned(100_000, false, host);
    for _ in 0..256 {
        e.observe_spin(300_000);
    }
    assert_eq!(e.plan(), 1_000);
}

/// The cheap point is the minimum, over whole microseconds of margin, of
/// the spin it costs plus the ticks it loses priced at `TICK_PRICE` times
/// a tick's cost: checked against that cost evaluated directly from the window,
/// wake-up by wake-up, for several hosts, rates and both kinds of
/// deadline.
#[test]
fn the_cheap_point_minimises_spin_plus_priced_ticks() {
    use super::estimator::{SLEEP_MIN, SPIN_SHARE_MAX, TICK_PRICE};
    // The cost of margin `m` µs, straight from the definition.
    let cost = |wakes: &[u64], p: f64, randomized: bool, m: u64| -> f64 {
        wakes
            .iter()
            .map(|&b| {
                let spin = m.saturating_sub(b) as f64;
                // The last bucket: how late is unknown, beyond a period.
                let last = b == WAKE_BUCKETS as u64 - 1;
                let late = if last { 1e9 } else { b as f64 - m as f64 };
                let x = late / p;
                let lost = if late <= 0.0 {
                    0.0
                } else if !randomized && !last {
                    x.floor()
                } else if x < 1.0 {
                    x * x / 2.0
                } else {
                    x - 0.5
                };
                spin + (TICK_PRICE * TICK_COST) as f64 / 1_000.0 * lost
            })
            .sum()
    };
    type Host = fn(usize) -> Nanos;
    let hosts: [(&str, Host); 5] = [
        // Most wake-ups 18-35 µs late, a tail to 400 µs and a stall.
        ("loaded", |i| match i % 100 {
            0 => 2_000_000,
            1..=3 => 400_000 - 30_000 * (i as u64 % 7),
            4..=9 => 60_000 + 5_000 * (i as u64 % 5),
            j => 18_000 + 170 * j as u64,
        }),
        ("bimodal", |i| if i % 10 < 7 { 10_000 } else { 70_000 }),
        ("tail", |i| if i % 50 == 0 { 150_000 } else { 12_000 }),
        ("spread", |i| (i as u64 * 97 % 300) * 1_000),
        ("noisy_10khz", noisy_10khz),
    ];
    for (name, host) in hosts {
        for period in [60_000, 100_000, 200_000, 1_000_000] {
            for randomized in [true, false] {
                let e = learned(period, randomized, host);
                let wakes: Vec<u64> = (0..WAKE_WINDOW)
                    .map(|i| (host(i) / WAKE_BUCKET_NS).min(WAKE_BUCKETS as u64 - 1))
                    .collect();
                let p = (period / WAKE_BUCKET_NS) as f64;
                // Within a sleep and a fifth of the period's spin.
                let spin = |m: u64| wakes.iter().map(|&b| m.saturating_sub(b)).sum::<u64>();
                let budget = (period / SPIN_SHARE_MAX).min(TICK_COST) as f64 / 1_000.0;
                let top = ((period - SLEEP_MIN) / WAKE_BUCKET_NS).min(
                    (0..)
                        .take_while(|&m| spin(m) as f64 <= WAKE_WINDOW as f64 * budget)
                        .last()
                        .unwrap_or(0),
                );
                let best = (0..top).fold(0, |best, m| {
                    let (c, b) = (
                        cost(&wakes, p, randomized, m + 1),
                        cost(&wakes, p, randomized, best),
                    );
                    if c < b - 1e-6 * b.abs().max(1.0) {
                        m + 1
                    } else {
                        best
                    }
                });
                let got = e.cheap_margin() / WAKE_BUCKET_NS;
                // The same minimum: equal margins, or equal costs where the
                // curve is flat.
                let (cg, cb) = (
                    cost(&wakes, p, randomized, got),
                    cost(&wakes, p, randomized, best),
                );
                assert!(
                    got == best || (cg - cb).abs() <= 1e-6 * cb.abs().max(1.0),
                    "{name} at {period} ns, randomized {randomized}: {got} µs (cost {cg}) \
                     against {best} µs (cost {cb})"
                );
            }
        }
    }
}

#[test]
fn spinning_through_still_sleeps_one_tick_in_probe_every_to_keep_learning() {
    let mut e = WakeEstimator::new(None, 40_000);
    for _ in 0..WAKE_WINDOW {
        e.observe(8_000);
    }
    // 100 kHz: an 8 µs median wake-up leaves no sleep worth a wake-up.
    e.set_period(10_000);
    let plans: Vec<Nanos> = (0..2 * PROBE_EVERY).map(|_| e.plan()).collect();
    let probes: Vec<usize> = (0..plans.len()).filter(|&i| plans[i] == 0).collect();
    assert_eq!(
        probes,
        [PROBE_EVERY as usize - 1, 2 * PROBE_EVERY as usize - 1]
    );
    assert!(plans.iter().all(|&m| m == 0 || m == SPIN_THROUGH));
    // An explicit cap below the period is never exceeded, even here.
    let mut capped = WakeEstimator::new(Some(2_000), 40_000);
    for _ in 0..WAKE_WINDOW {
        capped.observe(8_000);
    }
    capped.set_period(10_000);
    assert_eq!(capped.plan(), 2_000);
}

#[test]
fn errors_are_counted_in_whole_microseconds_up_to_the_last_bucket() {
    let mut e = WakeEstimator::new(None, 40_000);
    for i in 0..WAKE_WINDOW as u64 {
        // 2 % at 7 ms, the rest 12.9 µs and 12.1 µs.
        e.observe(match i % 50 {
            0 => 7_000_000,
            i if i % 2 == 0 => 12_900,
            _ => 12_100,
        });
    }
    let top = (WAKE_BUCKETS as Nanos - 1) * WAKE_BUCKET_NS;
    assert_eq!((e.p5(), e.p50(), e.p99()), (12_000, 12_000, top));
    // Forgetting is exact: a full window later only the new errors count.
    for _ in 0..WAKE_WINDOW {
        e.observe(3_000);
    }
    assert_eq!((e.p5(), e.p50(), e.p99()), (3_000, 3_000, 3_000));
    // Errors beyond the last bucket lose ticks whatever the margin short of
    // a spin: by default the thread still sleeps below 20 kHz (each µs of
    // margin saves 1/period of a tick a wake-up, so it wakes as early as
    // still leaves a sleep); ticks first, it spins through at 10 kHz.
    for _ in 0..WAKE_WINDOW {
        e.observe(5_000_000);
    }
    // Until what a tick costs is known, only the capped head start.
    assert_eq!(e.margin_for(1_000_000), 10_000);
    assert_eq!(e.margin_for(100_000), 1_000);
    e.observe_cpu(0);
    for _ in 0..WAKE_RECOMPUTE {
        e.observe(5_000_000);
    }
    e.observe_cpu(WAKE_RECOMPUTE as Nanos * TICK_COST);
    // Then as early as still leaves a sleep: a margin that costs no spin.
    assert_eq!(e.margin_for(1_000_000), 980_000);
    assert_eq!(e.margin_for(100_000), 80_000);
    let mut first = WakeEstimator::with_policy(SpinPolicy::Max, 40_000);
    for _ in 0..WAKE_WINDOW {
        first.observe(5_000_000);
    }
    assert_eq!(first.margin_for(100_000), 100_000);
}

#[test]
fn an_explicit_cap_is_never_exceeded() {
    let mut e = WakeEstimator::new(Some(5_000), 40_000);
    for _ in 0..2000 {
        e.observe(17_000);
    }
    // Even where sleeping cannot be on time (100 kHz), an explicit cap holds.
    assert_eq!(e.margin_for(10_000), 5_000);
    assert_eq!(e.margin_for(1_000_000), 5_000);
}

#[test]
fn a_long_sleep_is_ended_by_an_unpark_and_a_short_one_runs_to_its_deadline() {
    let clock = Arc::new(MonotonicClock::default());
    // Longer than DEAF_SLEEP_MAX: wakeable. Were the unpark ignored, the
    // sleep would last 60 s and return at or after its deadline.
    let long = clock.now() + 60_000_000_000;
    let sleeper = {
        let clock = Arc::clone(&clock);
        thread::spawn(move || {
            clock.sleep_until(long);
            clock.now()
        })
    };
    let woke = loop {
        sleeper.thread().unpark();
        if sleeper.is_finished() {
            break sleeper.join().expect("the sleeping thread panicked");
        }
        thread::sleep(Duration::from_millis(1));
    };
    assert!(woke < long, "an unpark must end a long sleep");
    // A tick's sleep: an unpark (already pending) does not cut it short.
    thread::current().unpark();
    let short = clock.now() + 2_000_000;
    clock.sleep_until(short);
    assert!(clock.now() >= short);
}

#[test]
fn zero_cap_never_spins() {
    let mut e = WakeEstimator::new(Some(0), 40_000);
    for _ in 0..2000 {
        e.observe(1_000_000);
    }
    assert_eq!((e.margin(), e.margin_for(10_000)), (0, 0));
    let c = MonotonicClock::default();
    assert_eq!(c.spin_margin(), Duration::ZERO);
    let c = MonotonicClock::new(Some(Duration::from_micros(40)));
    assert_eq!(c.clone().spin_margin(), Duration::from_micros(40));
    let c = MonotonicClock::new(None);
    assert_eq!(c.spin_margin(), AUTO_SPIN_MAX);
}

/// An estimator for ticks `period` ns apart (randomized deadlines or
/// not) that has seen a window of wake-ups, the `i`th `wake(i)` ns late.
fn learned(period: Nanos, randomized: bool, wake: impl Fn(usize) -> Nanos) -> WakeEstimator {
    learned_with(SpinPolicy::Auto, period, randomized, wake)
}

/// [`learned`] for a given policy.
fn learned_with(
    policy: SpinPolicy,
    period: Nanos,
    randomized: bool,
    wake: impl Fn(usize) -> Nanos,
) -> WakeEstimator {
    let mut e = WakeEstimator::with_policy(policy, 40_000);
    e.set_period(period);
    e.set_randomized(randomized);
    e.observe_cpu(1_000_000);
    for i in 0..WAKE_WINDOW {
        e.observe(wake(i));
    }
    // A sleeping tick costs 20 µs of CPU besides its spin.
    e.observe_cpu(1_000_000 + TICK_COST * WAKE_WINDOW as Nanos);
    e
}

/// What a sleeping tick costs in [`learned`], in CPU ns.
const TICK_COST: Nanos = 20_000;

/// The spin the cheap point may buy is bounded by what a sleeping tick
/// costs otherwise, learned from the thread's CPU time (less the spin
/// counted meanwhile); until that is known, only margins that cost no spin.
#[test]
fn the_cheap_point_spins_at_most_what_a_sleeping_tick_costs() {
    // Half the wake-ups spread evenly over 0-63 µs, half stalled: every µs
    // of margin is worth its spin, so the bound decides.
    let host = |i: usize| {
        if i.is_multiple_of(2) {
            (i as u64 / 2 % 64) * 1_000
        } else {
            5_000_000
        }
    };
    let mut e = WakeEstimator::new(None, 40_000);
    e.set_period(100_000);
    e.set_randomized(true);
    for i in 0..WAKE_WINDOW {
        e.observe(host(i));
    }
    // Not known: no spin at all (the lowest wake-up is 0 µs late).
    assert_eq!((e.tick_cost(), e.cheap_margin()), (0, 0));
    e.observe_cpu(0);
    for i in 0..64 {
        e.observe(host(i));
        e.count_spin(50_000);
    }
    // 64 wake-ups for 3.52 ms of CPU, 3.2 ms of it spin: 5 µs a tick.
    e.observe_cpu(3_520_000);
    assert_eq!(e.tick_cost(), 5_000);
    // 35 µs spins 8 × (35 × 36 / 2) µs over 1024 wake-ups, 4.92 µs a tick;
    // 36 µs would spin 5.2 µs.
    assert_eq!(e.cheap_margin(), 35_000);
    // Fewer than 32 wake-ups since the last reading: too few to tell.
    e.observe(host(0));
    e.observe_cpu(100_000_000);
    assert_eq!(e.tick_cost(), 5_000);
}

/// A noisy host at 10 kHz: 3 % of wake-ups two periods late, the rest
/// 20 µs.
fn noisy_10khz(i: usize) -> Nanos {
    if i.is_multiple_of(33) {
        250_000
    } else {
        20_000
    }
}

/// Randomized deadlines (one uniform instant a slot) are as little as no
/// time apart: a wake-up later than the gap to the next instant loses a
/// tick even when it is less than a period late. At 20 kHz, wake-ups
/// 20 µs late lose nothing with periodic deadlines and 8 % of a tick each
/// with randomized ones (x²/2, x = 0.4 of a period), so only the latter
/// buys a margin: 3/8 of the period, which leaves 1.25 µs of lateness
/// (0.03 % of a tick).
#[test]
fn randomized_deadlines_lose_ticks_to_gaps_shorter_than_a_period() {
    assert_eq!(learned(50_000, false, |_| 20_000).tick_loss_margin(), 0);
    assert_eq!(learned(50_000, true, |_| 20_000).tick_loss_margin(), 18_750);
    // Switching the mode re-reads the window at once.
    let mut e = learned(50_000, false, |_| 20_000);
    e.set_randomized(true);
    assert_eq!(e.tick_loss_margin(), 18_750);
}

/// One stall of the whole VM while spinning through (a millisecond: tens
/// of ticks lost, as a sleeping thread would lose them too) does not send
/// the thread back to sleep: the spins' losses are averaged over as long a
/// memory as the sleeps' window. With 64 spins of memory it slept for
/// thousands of ticks after each such stall.
#[test]
fn one_stall_while_spinning_through_does_not_stop_the_spin() {
    // 25 kHz, wake-ups 25 µs late: sleeping loses 0.2 ticks a wake-up, and
    // only a margin of 25 µs saves them, leaving less than 20 µs to sleep.
    let mut e = learned(40_000, true, |_| 25_000);
    assert_eq!(e.plan(), SPIN_THROUGH);
    e.observe_spin(1_000_000);
    // Every plan after it spins through, but for the probe sleeps (0).
    let slept = (0..2_000)
        .filter(|_| {
            e.observe_spin(100);
            !matches!(e.plan(), SPIN_THROUGH | 0)
        })
        .count();
    assert_eq!(slept, 0);
    assert!(e.spinning_through());
}

/// Where sleeping could pay again (periods longer than `SLEEP_MIN`), the
/// probes come every `PROBE_INTERVAL` (5 ms: every 50 ticks at 10 kHz), so
/// that a window of wake-ups is renewed in seconds and a host that
/// quietens sends the thread back to sleep; where it cannot (50 kHz and
/// above), one tick in `PROBE_EVERY`.
#[test]
fn probes_renew_the_window_in_seconds_where_sleeping_could_pay() {
    use super::estimator::probe_every;
    assert_eq!(probe_every(100_000), 50);
    assert_eq!(probe_every(50_000), 100);
    assert_eq!(probe_every(20_000), PROBE_EVERY);
    assert_eq!(probe_every(10_000), PROBE_EVERY);
    // 10 kHz on a noisy host, ticks first: 3 % of wake-ups two periods
    // late lose two ticks whatever the margin short of a spin, so it spins
    // through.
    let mut e = learned_with(SpinPolicy::Max, 100_000, false, noisy_10khz);
    assert_eq!(e.plan(), SPIN_THROUGH);
    // The host quietens: the probe sleeps see 20 µs wake-ups, and the
    // thread sleeps again (with a margin for the few late wake-ups left in
    // the window) once most of the window is probes: within a window of
    // them (51 200 ticks, 5 s), where one probe in 1024 ticks took a
    // million (100 s).
    let mut ticks = 0u64;
    let margin = loop {
        ticks += 1;
        assert!(ticks < 51_200, "still spinning through after {ticks} ticks");
        match e.plan() {
            SPIN_THROUGH => {}
            0 => e.observe(20_000),
            margin => break margin,
        }
    };
    assert!(ticks > 25_000, "slept again after {ticks} ticks");
    assert!(
        margin < 100_000 - super::estimator::SLEEP_MIN,
        "margin {margin}"
    );
}

/// On a host that stays overloaded, every retry of spinning fails at once
/// (its spins are preempted): each failure doubles the wait before the
/// next retry, up to 64 times. A retry that lasts resets the wait.
#[test]
fn retries_of_spinning_back_off_while_the_host_stays_overloaded() {
    // Spinning through pays on this host's wake-ups (ticks first)...
    let mut e = learned_with(SpinPolicy::Max, 100_000, false, noisy_10khz);
    // ...until its spins lose 3 ticks each: the waits between retries.
    let mut waits = Vec::new();
    let mut waited = 0u64;
    for _ in 0..3_000_000 {
        match e.plan() {
            SPIN_THROUGH | 0 => {
                if waited > 0 {
                    waits.push(waited);
                    waited = 0;
                }
                e.observe_spin(300_000);
            }
            _ => waited += 1,
        }
    }
    let head: Vec<u64> = waits.iter().copied().take(10).collect();
    assert!(
        (8..200).contains(&waits.len()),
        "{} waits: {head:?}",
        waits.len()
    );
    // Each wait is about twice the one before, until the cap.
    for w in waits.windows(2).skip(1).take(5) {
        assert!(w[1] > w[0] * 3 / 2, "{head:?}");
    }
    let last = waits[waits.len() - 1];
    assert!(last > waits[1] * 25, "{head:?} … {last}");
    assert!(waits[waits.len() - 2] * 3 / 2 > last, "{head:?} … {last}");
    // The host quietens: the retry lasts, and the next failure waits at the
    // base rate again (from a higher loss, 64 spins of 3 ticks, so longer
    // than the first wait, but far from 64 times it).
    let mut spun = 0;
    while spun < 20_000 {
        if matches!(e.plan(), SPIN_THROUGH | 0) {
            e.observe_spin(100);
            spun += 1;
        }
    }
    for _ in 0..64 {
        e.observe_spin(300_000);
    }
    let again = (0..1_000_000).position(|_| matches!(e.plan(), SPIN_THROUGH | 0));
    assert!(
        again.is_some_and(|t| (t as u64) < last / 2),
        "{again:?} {head:?}"
    );
}

/// A probe sleep among spun-through ticks wakes as a thread that has just
/// spun, which a loaded host's scheduler holds back: it may only say the
/// host got quieter (its error counts at most as the median), never keep
/// the thread spinning. A thread that sleeps again learns from its own
/// wake-ups, in full.
#[test]
fn probes_cannot_make_sleeping_look_worse() {
    let mut e = learned(40_000, true, |_| 25_000);
    assert_eq!(e.plan(), SPIN_THROUGH);
    // Probes 5 ms late: counted as 25 µs, the median.
    for _ in 0..WAKE_WINDOW {
        e.observe(5_000_000);
    }
    assert_eq!(e.p99(), 25_000);
    // Probes 2 µs late: counted in full, and the thread sleeps again.
    for _ in 0..WAKE_WINDOW {
        e.observe(2_000);
    }
    assert_eq!(e.p99(), 2_000);
    assert!(!matches!(e.plan(), SPIN_THROUGH | 0));
    // Sleeping, wake-ups 5 ms late count in full.
    for _ in 0..64 {
        e.observe(5_000_000);
    }
    assert_eq!(e.p99(), (WAKE_BUCKETS as Nanos - 1) * WAKE_BUCKET_NS);
}

/// A thread woken by a message counts as awake until it sleeps again, so
/// `settle` returns only after the message was handled, however late the
/// woken thread runs (here it handles it slowly on purpose: before
/// `Clock::wake`, `settle` returned while it still counted as asleep).
#[test]
fn settle_waits_for_a_thread_woken_by_a_message_to_handle_it() {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    let clock = VirtualClock::new();
    let (handled, inbox, stop) = (
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    clock.attach();
    let sleeper = {
        let (clock, handled, inbox, stop) = (
            clock.clone(),
            Arc::clone(&handled),
            Arc::clone(&inbox),
            Arc::clone(&stop),
        );
        thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                if inbox.swap(false, Ordering::AcqRel) {
                    thread::sleep(std::time::Duration::from_millis(20));
                    handled.fetch_add(1, Ordering::Release);
                }
                clock.sleep_until(NEVER);
            }
            clock.detach();
        })
    };
    for round in 1..=5 {
        clock.settle();
        inbox.store(true, Ordering::Release);
        clock.wake(sleeper.thread());
        clock.settle();
        assert_eq!(handled.load(Ordering::Acquire), round);
    }
    stop.store(true, Ordering::Release);
    clock.wake(sleeper.thread());
    sleeper.join().unwrap();
}
