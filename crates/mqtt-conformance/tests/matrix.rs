//! The conformance matrix: one `#[test]` per behaviour (generated from the one list in
//! `mqtt_conformance::for_each_behaviour!`), each running that behaviour against every
//! broker adapter × client adapter pair, every pair on its own thread (each starts its own
//! broker on 127.0.0.1:0, so nothing is shared). A failure names every pair that failed
//! and why.
//!
//! `cargo test -p mqtt-conformance` runs it all; `cargo test -p mqtt-conformance -- will_`
//! runs the behaviours whose name contains `will_`.

use std::time::Instant;

use mqtt_conformance::adapters;
use mqtt_conformance::behaviours::{self, Behaviour};

macro_rules! matrix {
    ($($module:ident :: $name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run(stringify!($name));
            }
        )*
    };
}

mqtt_conformance::for_each_behaviour!(matrix);

/// Runs behaviour `name` against every adapter pair, in parallel; panics listing every
/// pair that failed.
fn run(name: &str) {
    let behaviour: Behaviour = behaviours::find(name).expect("listed in the registry");
    let brokers = adapters::brokers();
    let clients = adapters::clients();
    let started = Instant::now();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = brokers
            .iter()
            .flat_map(|b| clients.iter().map(move |c| (b, c)))
            .map(|(b, c)| {
                let label = format!("{} broker × {} client", b.name(), c.name());
                let handle = std::thread::Builder::new()
                    .name(format!("{name} {label}"))
                    .spawn_scoped(scope, move || (behaviour.run)(b.as_ref(), c.as_ref()))
                    .expect("spawn a behaviour thread");
                (label, handle)
            })
            .collect();
        runs.into_iter()
            .filter_map(|(label, handle)| match handle.join() {
                Ok(Ok(())) => None,
                Ok(Err(failure)) => Some(format!("  {label}: {failure}")),
                Err(_) => Some(format!(
                    "  {label}: panicked (a bug in the suite or an adapter)"
                )),
            })
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{}::{name} failed in {:?}:\n{}",
        behaviour.group,
        started.elapsed(),
        failures.join("\n")
    );
}

#[test]
fn every_behaviour_has_a_unique_name() {
    let all = behaviours::all();
    let mut names: Vec<_> = all.iter().map(|b| b.name).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "duplicate behaviour names");
    assert!(all.len() >= 60, "only {} behaviours", all.len());
}

#[test]
fn every_adapter_pair_is_run() {
    assert!(!adapters::brokers().is_empty());
    assert!(!adapters::clients().is_empty());
}
