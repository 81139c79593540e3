//! Reconnect backoff: deterministic from the seed, growing, bounded.

use std::time::Duration;

use mqtt_core::client::ClientOptions;

fn options(seed: u64) -> ClientOptions {
    let mut o = ClientOptions::new("c");
    o.backoff_initial = Duration::from_millis(500);
    o.backoff_max = Duration::from_secs(30);
    o.backoff_multiplier = 2.0;
    o.backoff_jitter = 0.25;
    o.seed = seed;
    o
}

#[test]
fn same_seed_same_delays_other_seed_other_delays() {
    let a: Vec<_> = (0..20).map(|n| options(7).backoff(n)).collect();
    let b: Vec<_> = (0..20).map(|n| options(7).backoff(n)).collect();
    let c: Vec<_> = (0..20).map(|n| options(8).backoff(n)).collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn delays_grow_within_the_jitter_and_stay_bounded() {
    let o = options(42);
    for n in 0..100u32 {
        let base = (0.5 * 2f64.powi(n as i32)).min(30.0);
        let d = o.backoff(n).as_secs_f64();
        assert!(
            d <= base + 1e-9 && d >= base * 0.75 - 1e-9,
            "attempt {n}: {d} not in [{}, {base}]",
            base * 0.75
        );
        assert!(o.backoff(n) <= o.backoff_max);
    }
    assert!(o.backoff(u32::MAX) <= Duration::from_secs(30));
}

#[test]
fn no_jitter_is_exact_and_nonsense_numbers_stay_bounded() {
    let mut o = options(1);
    o.backoff_jitter = 0.0;
    assert_eq!(o.backoff(0), Duration::from_millis(500));
    assert_eq!(o.backoff(3), Duration::from_secs(4));
    assert_eq!(o.backoff(10), Duration::from_secs(30));
    o.backoff_multiplier = f64::NAN;
    o.backoff_jitter = f64::INFINITY;
    assert_eq!(o.backoff(5), Duration::from_millis(500));
    o.backoff_multiplier = 0.1;
    assert_eq!(o.backoff(5), Duration::from_millis(500));
}
