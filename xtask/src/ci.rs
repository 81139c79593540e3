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
];

pub(crate) fn run() -> Result<()> {
    let start = Instant::now();
    for (i, step) in STEPS.iter().enumerate() {
        println!("\n[ci {}/{}] {}", i + 1, STEPS.len(), step[0]);
        run_checked(&mut cargo(*step))?;
    }
    println!(
        "\n[ci] all {} steps passed in {:.1} s",
        STEPS.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
