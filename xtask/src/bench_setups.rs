//! `cargo xtask bench setups [--quick]`: the same `mqtt bench` load against several set-ups of
//! a broker, one at a time, written to `docs/benchmarks.md` between the `bench:setups` markers:
//!
//! - durability: QoS 1 into a persistent session with `--durability sync` against
//!   `--durability none` and against Mosquitto with its database on;
//! - adapters: `mqtt broker --runtime tokio | smol | blocking` under the same loads.

use std::fmt::Write as _;
use std::fs;
use std::time::SystemTime;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::bench::{core_count, cpu_model, utc_date, write_section, Markers};
use crate::bench_broker::{run_one, summary, Kind, Measure, Scenario};
use crate::interop::{build, mosquitto_program};
use crate::Args;

const MARKERS: Markers = Markers {
    start: "<!-- bench:setups:start -->",
    end: "<!-- bench:setups:end -->",
    name: "bench:setups",
};

/// One comparison: a load and the set-ups it runs against, the first being the reference.
struct Comparison {
    title: &'static str,
    scenarios: Vec<Scenario>,
    setups: Vec<Kind>,
}

fn comparisons(quick: bool) -> Vec<Comparison> {
    let div = if quick { 10 } else { 1 };
    let scenario = |title: String, args: String| Scenario {
        title,
        args: args.split_whitespace().map(str::to_owned).collect(),
        measure: Measure::Throughput,
    };
    let ours = |runtime, durability| Kind::Ours {
        runtime,
        durability,
    };
    vec![
        Comparison {
            title: "Durability: QoS 1 into a persistent session",
            scenarios: vec![scenario(
                format!(
                    "fan-in QoS 1: 4 publishers x {} msgs -> 1 persistent subscriber",
                    100_000 / div
                ),
                format!(
                    "fan-in --publishers 4 -c {} -q 1 -s 64 --persistent-subscribers",
                    100_000 / div
                ),
            )],
            setups: vec![
                ours("tokio", "sync"),
                ours("tokio", "none"),
                Kind::Mosquitto { persist: true },
            ],
        },
        Comparison {
            title: "Adapters: the same broker core on three runtimes",
            scenarios: vec![
                scenario(
                    format!(
                        "fan-in QoS 1: 4 publishers x {} msgs -> 1 subscriber",
                        100_000 / div
                    ),
                    format!("fan-in --publishers 4 -c {} -q 1 -s 64", 100_000 / div),
                ),
                scenario(
                    format!(
                        "fan-out QoS 0: 1 publisher x {} msgs -> 50 subscribers",
                        20_000 / div
                    ),
                    format!("fan-out --subscribers 50 -c {} -q 0 -s 64", 20_000 / div),
                ),
                scenario(
                    format!("pairs QoS 1: 50 pairs x {} msgs", 4_000 / div),
                    format!("pairs -n 50 -c {} -q 1 -s 64", 4_000 / div),
                ),
            ],
            setups: vec![
                ours("tokio", "none"),
                ours("smol", "none"),
                ours("blocking", "none"),
            ],
        },
    ]
}

pub(crate) fn run(mut args: Args) -> Result<()> {
    let quick = args.flag("--quick");
    args.finish()?;
    let mosquitto =
        mosquitto_program().context("`mosquitto` not found: apt-get install mosquitto")?;
    let mqtt = build(true)?;
    let work = std::env::temp_dir().join(format!("xtask-bench-setups-{}", std::process::id()));
    fs::create_dir_all(&work)?;
    let mut s = String::new();
    let _ = writeln!(s, "{}", MARKERS.start);
    let _ = writeln!(
        s,
        "<!-- Written by `cargo xtask bench setups`; edits between these markers are overwritten. -->\n"
    );
    let _ = writeln!(
        s,
        "- command: `cargo xtask bench setups{}`; date: {} (UTC); machine: {}, {} cores\n",
        if quick { " --quick" } else { "" },
        utc_date(SystemTime::now()),
        cpu_model(),
        core_count()
    );
    for comparison in comparisons(quick) {
        let _ = writeln!(s, "### {}\n", comparison.title);
        let names: Vec<String> = comparison.setups.iter().map(|k| k.name()).collect();
        let _ = writeln!(s, "| scenario | {} |", names.join(" | "));
        let _ = writeln!(s, "|---|{}", "--:|".repeat(names.len()));
        for scenario in &comparison.scenarios {
            let mut cells = Vec::new();
            let mut reference = None;
            for &kind in &comparison.setups {
                println!("\n[bench setups] {}: {}", kind.name(), scenario.title);
                let cell = match run_one(kind, &mosquitto, &mqtt, &work, scenario) {
                    Ok(report) => {
                        println!("[bench setups] {}", summary(&report));
                        rate_cell(&report, &mut reference)
                    }
                    Err(e) => {
                        println!("[bench setups] failed: {e:#}");
                        "error".to_owned()
                    }
                };
                cells.push(cell);
            }
            let _ = writeln!(s, "| {} | {} |", scenario.title, cells.join(" | "));
        }
        let _ = writeln!(
            s,
            "\nReceived messages per second (ratio to the first column). Loads: {}\n",
            comparison
                .scenarios
                .iter()
                .map(|sc| format!("`mqtt bench {}`", sc.args.join(" ")))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = write!(s, "{}", MARKERS.end);
    let _ = fs::remove_dir_all(&work);
    write_section(&MARKERS, &s)?;
    println!("\n[bench setups] wrote the bench:setups section of docs/benchmarks.md:\n{s}");
    Ok(())
}

/// `rate (ratio)`; the first rate of a row is the reference.
fn rate_cell(report: &Value, reference: &mut Option<f64>) -> String {
    let rate = report["receive_rate"].as_f64().unwrap_or(0.0);
    let lost = report["lost"].as_u64().unwrap_or(0);
    let base = *reference.get_or_insert(rate);
    let ratio = if base > 0.0 { rate / base } else { 0.0 };
    let lost = if lost > 0 {
        format!(", lost {lost}")
    } else {
        String::new()
    };
    format!("{:.0} ({ratio:.2}x{lost})", rate)
}
