//! `cargo xtask ci`: the whole test suite, in the order CI runs it, stopping at the first failure.

use std::time::Instant;

use anyhow::Result;

use crate::{cargo, run_checked};

/// Each step is one cargo invocation; the first that fails stops the run.
const STEPS: &[&[&str]] = &[
    &["fmt", "--all", "--", "--check"],
    &[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ],
    &["test", "--workspace"],
    // The broker simulation again, every scenario with persistence on (a store answering at
    // once): what clients see must not change.
    &["test", "-p", "mqtt-core", "--test", "sim"],
];

/// Environment of each step, by index: the last runs with persistence on.
fn env(step: usize) -> Option<(&'static str, &'static str)> {
    (step == STEPS.len() - 1).then_some(("MQTT_SIM_PERSISTENCE", "1"))
}

pub(crate) fn run() -> Result<()> {
    let start = Instant::now();
    for (i, step) in STEPS.iter().enumerate() {
        println!("\n[ci {}/{}] {}", i + 1, STEPS.len(), step[0]);
        let mut cmd = cargo(*step);
        if let Some((key, value)) = env(i) {
            cmd.env(key, value);
        }
        run_checked(&mut cmd)?;
    }
    println!(
        "\n[ci] all {} steps passed in {:.1} s",
        STEPS.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
