//! `cargo xtask bench [--quick] [--no-run]`: runs the criterion benches of `benches/` (the codec
//! and the client, each next to its peers) and writes their
//! results to `docs/benchmarks.md`, between the `bench:codec` markers.
//!
//! Every `new/estimates.json` under `target/criterion` is one result; its `benchmark.json`
//! beside it names the group and function and gives the throughput. One table per group
//! (`decode/v4_publish_64B`), one row per function (`ours`, a peer, or a `*_floor`). When the
//! group declares `Elements(N)` throughput, a row reports the mean time per element (per packet
//! in the codec bench), else the mean time per iteration.
//!
//! `cargo xtask bench broker` (our broker against Mosquitto) is in `bench_broker.rs`; it writes
//! its own section of the same file with [`write_section`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::{cargo, root, run_checked, Args};

const START_MARKER: &str = "<!-- bench:codec:start -->";
const END_MARKER: &str = "<!-- bench:codec:end -->";
/// The codec section of `docs/benchmarks.md`.
const CODEC: Markers = Markers {
    start: START_MARKER,
    end: END_MARKER,
    name: "bench:codec",
};
const BENCH_ARGS: &[&str] = &["bench", "-p", "mqtt-benches", "--", "--noplot"];
/// The function every other row of a group is compared with.
const BASELINE: &str = "ours";

pub(crate) fn run(mut args: Args) -> Result<()> {
    if let Some(mode) = args.next_positional() {
        return match mode.as_str() {
            "broker" => crate::bench_broker::run(args),
            "setups" => crate::bench_setups::run(args),
            other => bail!("unknown bench mode `{other}` (expected none, or `broker`)"),
        };
    }
    let quick = args.flag("--quick");
    let no_run = args.flag("--no-run");
    args.finish()?;

    let mut bench_args = BENCH_ARGS.to_vec();
    if quick {
        bench_args.push("--quick");
    }
    let since = if no_run {
        None
    } else {
        // Results from this run only: older ones may belong to other benches.
        let started = SystemTime::now() - Duration::from_secs(2);
        run_checked(&mut cargo(&bench_args))?;
        Some(started)
    };

    let criterion_dir = root().join("target").join("criterion");
    let results = collect(&criterion_dir, since)?;
    if results.is_empty() {
        bail!("no criterion results under {}", criterion_dir.display());
    }
    let newest = results
        .iter()
        .map(|r| r.modified)
        .max()
        .unwrap_or(UNIX_EPOCH);
    let header = Header {
        command: if no_run {
            "`cargo xtask bench --no-run`: rewritten from the results already in target/criterion"
                .to_owned()
        } else {
            format!(
                "`cargo xtask bench{}`, which runs `cargo {}`",
                if quick { " --quick" } else { "" },
                bench_args.join(" ")
            )
        },
        date: utc_date(newest),
        rustc: rustc_version(),
        cpu: cpu_model(),
        cores: core_count(),
    };
    let section = render(&header, &results);
    write_section(&CODEC, &section)?;
    println!(
        "[bench] wrote {} results in {} groups to docs/benchmarks.md",
        results.len(),
        group(&results).len()
    );
    Ok(())
}

/// One criterion result.
#[derive(Debug, Clone, PartialEq)]
struct BenchResult {
    /// The path of the result's directory under `target/criterion`.
    id: String,
    /// The table it goes in: criterion's group id, plus its parameter if it has one.
    group: String,
    /// The row: criterion's function id.
    function: String,
    /// Mean time per iteration, with its confidence interval, in nanoseconds.
    mean_ns: f64,
    lower_ns: f64,
    upper_ns: f64,
    /// `Elements(N)` throughput: N elements per iteration.
    elements: Option<u64>,
    modified: SystemTime,
}

impl BenchResult {
    /// The number a row reports: nanoseconds per element, or per iteration.
    fn per_unit(&self, ns: f64) -> f64 {
        match self.elements {
            Some(n) if n > 0 => ns / n as f64,
            _ => ns,
        }
    }
}

/// Every `<id>/new/estimates.json` under `dir`, modified at or after `since` if given.
fn collect(dir: &Path, since: Option<SystemTime>) -> Result<Vec<BenchResult>> {
    let mut found = Vec::new();
    walk(dir, &mut found)?;
    found.sort();
    let mut results = Vec::new();
    for estimates in found {
        let modified = fs::metadata(&estimates)?.modified()?;
        if since.is_some_and(|since| modified < since) {
            continue;
        }
        // <dir>/<id>/new/estimates.json
        let Some(result_dir) = estimates.parent().and_then(Path::parent) else {
            continue;
        };
        let id = result_dir
            .strip_prefix(dir)
            .unwrap_or(result_dir)
            .to_string_lossy()
            .replace('\\', "/");
        results.push(read_result(&estimates, id, modified)?);
    }
    Ok(results)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        let estimates = path.join("estimates.json");
        if path.file_name().is_some_and(|n| n == "new") && estimates.is_file() {
            found.push(estimates);
        } else {
            walk(&path, found)?;
        }
    }
    Ok(())
}

fn read_json(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn read_result(estimates_path: &Path, id: String, modified: SystemTime) -> Result<BenchResult> {
    let estimates = read_json(estimates_path)?;
    let mean = &estimates["mean"];
    let Some(mean_ns) = mean["point_estimate"].as_f64() else {
        bail!("{}: no mean.point_estimate", estimates_path.display());
    };
    let interval = &mean["confidence_interval"];
    let lower_ns = interval["lower_bound"].as_f64().unwrap_or(mean_ns);
    let upper_ns = interval["upper_bound"].as_f64().unwrap_or(mean_ns);

    let benchmark_path = estimates_path.with_file_name("benchmark.json");
    let benchmark = if benchmark_path.is_file() {
        read_json(&benchmark_path)?
    } else {
        Value::Null
    };
    let (group, function) = match (
        benchmark["group_id"].as_str(),
        benchmark["function_id"].as_str(),
    ) {
        (Some(group), Some(function)) => match benchmark["value_str"].as_str() {
            Some(value) => (format!("{group}/{value}"), function.to_owned()),
            None => (group.to_owned(), function.to_owned()),
        },
        // No benchmark.json: the last path component is the function.
        _ => match id.rsplit_once('/') {
            Some((group, function)) => (group.to_owned(), function.to_owned()),
            None => (id.clone(), id.clone()),
        },
    };
    let throughput = &benchmark["throughput"];
    let elements = throughput["Elements"]
        .as_u64()
        .or_else(|| throughput["ElementsAndBytes"]["elements"].as_u64());
    Ok(BenchResult {
        id,
        group,
        function,
        mean_ns,
        lower_ns,
        upper_ns,
        elements,
        modified,
    })
}

/// Results by group, in the order the bench ran them (oldest result first), each group's rows
/// in report order: ours, the peers, the floors.
fn group(results: &[BenchResult]) -> Vec<(&str, Vec<&BenchResult>)> {
    let mut groups: BTreeMap<&str, Vec<&BenchResult>> = BTreeMap::new();
    for r in results {
        groups.entry(r.group.as_str()).or_default().push(r);
    }
    for rows in groups.values_mut() {
        rows.sort_by(|a, b| {
            (kind(&a.function), &a.function).cmp(&(kind(&b.function), &b.function))
        });
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by_key(|(name, rows)| (rows.iter().map(|r| r.modified).min(), *name));
    groups
}

/// What a row is: the baseline, a peer, or a floor (a lower bound no codec can beat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Ours,
    Peer,
    Floor,
}

fn kind(function: &str) -> Kind {
    if function == BASELINE {
        Kind::Ours
    } else if function.ends_with("floor") {
        Kind::Floor
    } else {
        Kind::Peer
    }
}

struct Header {
    command: String,
    date: String,
    rustc: String,
    cpu: String,
    cores: usize,
}

/// The text that goes between the markers.
fn render(header: &Header, results: &[BenchResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{START_MARKER}");
    let _ = writeln!(
        s,
        "<!-- Written by `cargo xtask bench`; edits between these markers are overwritten. -->\n"
    );
    let _ = writeln!(s, "- command: {}", header.command);
    let _ = writeln!(s, "- date: {} (UTC)", header.date);
    let _ = writeln!(s, "- rustc: `{}`", header.rustc);
    let _ = writeln!(s, "- CPU: {}, {} cores", header.cpu, header.cores);
    let _ = writeln!(
        s,
        "\nTimes are criterion's mean with its 95% confidence interval. Where a group declares a \
         throughput of N elements per iteration, times are per element (one packet in the codec \
         bench). \"vs ours\": for a peer, its time divided by ours (above 1: ours is faster); for \
         a floor, our time divided by the floor's (how far ours is from that lower bound)."
    );
    for (name, rows) in group(results) {
        let ours = rows.iter().copied().find(|r| r.function == BASELINE);
        let unit = if rows.iter().all(|r| r.elements.is_some()) {
            let n = rows[0].elements.unwrap_or(1);
            let same = rows.iter().all(|r| r.elements == Some(n));
            if same {
                format!("ns per element (batch of {n})")
            } else {
                "ns per element".to_owned()
            }
        } else {
            "ns per iteration".to_owned()
        };
        let _ = writeln!(s, "\n### {name}\n");
        let _ = writeln!(s, "| function | {unit} | 95% CI | vs ours |");
        let _ = writeln!(s, "|---|--:|--:|--:|");
        for r in &rows {
            let time = r.per_unit(r.mean_ns);
            let ratio = match (kind(&r.function), ours) {
                (Kind::Ours, _) => "baseline".to_owned(),
                (_, None) => "–".to_owned(),
                (Kind::Peer, Some(o)) => format!(
                    "{:.2}× ({} / ours)",
                    time / o.per_unit(o.mean_ns),
                    r.function
                ),
                (Kind::Floor, Some(o)) => format!(
                    "{:.2}× (ours / {})",
                    o.per_unit(o.mean_ns) / time,
                    r.function
                ),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} – {} | {} |",
                r.function,
                ns(time),
                ns(r.per_unit(r.lower_ns)),
                ns(r.per_unit(r.upper_ns)),
                ratio
            );
        }
    }
    let _ = write!(s, "\n{END_MARKER}");
    s
}

/// A nanosecond count with three or so significant digits.
fn ns(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// The two markers around one generated section of `docs/benchmarks.md`.
pub(crate) struct Markers {
    pub(crate) start: &'static str,
    pub(crate) end: &'static str,
    /// For messages: `bench:codec`.
    pub(crate) name: &'static str,
}

/// Writes `section` (which includes both of its markers) into `docs/benchmarks.md` in place
/// of the marked part, keeping the rest of the file.
pub(crate) fn write_section(markers: &Markers, section: &str) -> Result<()> {
    let path = root().join("docs").join("benchmarks.md");
    let old = match fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let new = splice_between(old.as_deref(), section, markers)?;
    fs::create_dir_all(root().join("docs"))?;
    fs::write(&path, new).with_context(|| format!("writing {}", path.display()))
}

/// [`splice_between`] for the codec section.
#[cfg(test)]
fn splice(old: Option<&str>, section: &str) -> Result<String> {
    splice_between(old, section, &CODEC)
}

/// Puts `section` (which includes both markers) in place of the marked part of `old`, keeping
/// everything outside the markers; a section without markers yet is appended; a new file gets
/// a title and the section.
fn splice_between(old: Option<&str>, section: &str, markers: &Markers) -> Result<String> {
    let Some(old) = old else {
        return Ok(format!(
            "# Benchmarks\n\nCodec throughput against peer crates measured in the same run; \
             regenerate with `cargo xtask bench` (add `--quick` for a short run).\n\n\
             {section}\n"
        ));
    };
    match (old.find(markers.start), old.find(markers.end)) {
        (Some(start), Some(end)) if start < end => Ok(format!(
            "{}{section}{}",
            &old[..start],
            &old[end + markers.end.len()..]
        )),
        (None, None) => {
            let sep = if old.ends_with('\n') { "\n" } else { "\n\n" };
            Ok(format!("{old}{sep}{section}\n"))
        }
        _ => bail!(
            "docs/benchmarks.md has unpaired or misordered {} markers",
            markers.name
        ),
    }
}

pub(crate) fn rustc_version() -> String {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
}

pub(crate) fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

pub(crate) fn core_count() -> usize {
    let listed = fs::read_to_string("/proc/cpuinfo")
        .map(|info| info.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0);
    if listed > 0 {
        listed
    } else {
        std::thread::available_parallelism().map_or(1, usize::from)
    }
}

/// `YYYY-MM-DD` in UTC (days-to-civil, after Howard Hinnant's `civil_from_days`).
pub(crate) fn utc_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(group: &str, function: &str, mean_ns: f64, elements: Option<u64>) -> BenchResult {
        BenchResult {
            id: format!("{group}/{function}"),
            group: group.to_owned(),
            function: function.to_owned(),
            mean_ns,
            lower_ns: mean_ns * 0.9,
            upper_ns: mean_ns * 1.1,
            elements,
            modified: UNIX_EPOCH,
        }
    }

    fn header() -> Header {
        Header {
            command: "`cargo xtask bench`".to_owned(),
            date: "2026-01-01".to_owned(),
            rustc: "rustc 1.95.0".to_owned(),
            cpu: "test CPU".to_owned(),
            cores: 2,
        }
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc_date(UNIX_EPOCH), "1970-01-01");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_164_800); // 2024-02-29T00:00:00Z
        assert_eq!(utc_date(t), "2024-02-29");
    }

    #[test]
    fn renders_per_element_times_and_ratios() {
        let results = [
            result(
                "decode/v4_publish_64B",
                "memcpy_floor",
                50_000.0,
                Some(10_000),
            ),
            result("decode/v4_publish_64B", "rumqttc", 400_000.0, Some(10_000)),
            result("decode/v4_publish_64B", "ours", 200_000.0, Some(10_000)),
            result("topic/match", "ours", 123.0, None),
        ];
        let text = render(&header(), &results);
        assert!(text.starts_with(START_MARKER) && text.ends_with(END_MARKER));
        assert!(text.contains("### decode/v4_publish_64B"));
        assert!(text.contains("ns per element (batch of 10000)"));
        assert!(text.contains("| ours | 20.0 | 18.0 – 22.0 | baseline |"));
        assert!(text.contains("| rumqttc | 40.0 | 36.0 – 44.0 | 2.00× (rumqttc / ours) |"));
        assert!(
            text.contains("| memcpy_floor | 5.00 | 4.50 – 5.50 | 4.00× (ours / memcpy_floor) |")
        );
        assert!(text.contains("### topic/match"));
        assert!(text.contains("ns per iteration"));
        // ours, then peers, then floors.
        let pos = |s: &str| text.find(s).unwrap();
        assert!(
            pos("| ours | 20.0") < pos("| rumqttc") && pos("| rumqttc") < pos("| memcpy_floor")
        );
    }

    #[test]
    fn splice_keeps_text_outside_the_markers() {
        let section = format!("{START_MARKER}\nnew\n{END_MARKER}");
        let old = format!("# Title\n\nmine\n\n{START_MARKER}\nold\n{END_MARKER}\n\nafter\n");
        let new = splice(Some(&old), &section).unwrap();
        assert_eq!(new, format!("# Title\n\nmine\n\n{section}\n\nafter\n"));
        assert_eq!(splice(Some(&new), &section).unwrap(), new);

        let fresh = splice(None, &section).unwrap();
        assert!(fresh.starts_with("# Benchmarks") && fresh.contains(&section));
        let appended = splice(Some("# Notes\n"), &section).unwrap();
        assert_eq!(appended, format!("# Notes\n\n{section}\n"));
        assert!(splice(Some(END_MARKER), &section).is_err());
    }

    #[test]
    fn collects_criterion_results_from_a_tree() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let new = dir.join("decode_v4_publish_64B").join("ours").join("new");
        fs::create_dir_all(&new).unwrap();
        fs::write(
            new.join("estimates.json"),
            r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":90.0,"upper_bound":110.0},"point_estimate":100.0,"standard_error":1.0}}"#,
        )
        .unwrap();
        fs::write(
            new.join("benchmark.json"),
            r#"{"group_id":"decode/v4_publish_64B","function_id":"ours","value_str":null,"throughput":{"Elements":10},"full_id":"decode/v4_publish_64B/ours","directory_name":"decode_v4_publish_64B/ours","title":"decode/v4_publish_64B/ours"}"#,
        )
        .unwrap();
        // A result without benchmark.json: grouped by its path.
        let bare = dir.join("g").join("f").join("new");
        fs::create_dir_all(&bare).unwrap();
        fs::write(
            bare.join("estimates.json"),
            r#"{"mean":{"point_estimate":5.0}}"#,
        )
        .unwrap();

        let results = collect(&dir, None).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(results.len(), 2);
        let ours = &results[0];
        assert_eq!(ours.id, "decode_v4_publish_64B/ours");
        assert_eq!(ours.group, "decode/v4_publish_64B");
        assert_eq!(ours.function, "ours");
        assert_eq!(ours.elements, Some(10));
        assert!((ours.per_unit(ours.mean_ns) - 10.0).abs() < 1e-9);
        assert_eq!(
            (results[1].group.as_str(), results[1].function.as_str()),
            ("g", "f")
        );
        assert_eq!(results[1].elements, None);
    }
}
