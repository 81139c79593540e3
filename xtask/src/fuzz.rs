//! `cargo xtask fuzz` and `cargo xtask fuzz-seed`: cargo-fuzz on stable Rust, and the seed corpus.
//!
//! The fuzz project is `fuzz/` (outside the workspace). Targets are built without a sanitizer
//! (`-s none`), which is what lets cargo-fuzz run on a stable toolchain; cargo-fuzz still builds
//! them optimised with debug assertions and overflow checks on. Each target's corpus is
//! `fuzz/corpus/<target>/`, minimised after every run so the repository keeps it small.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, ensure, Context, Result};

use crate::{cargo, display, root, run_checked, Args};

/// libFuzzer's per-input time limit, in seconds: a slower input is reported as a hang.
const INPUT_TIMEOUT_SECS: u64 = 10;
/// Vectors larger than this are left out of the seed corpus.
const MAX_SEED_FILE: u64 = 4 * 1024;
/// The whole seed set must stay below this.
const MAX_SEED_TOTAL: u64 = 1024 * 1024;
/// Seed files written by `fuzz-seed` start with this, so a rerun replaces exactly them.
const SEED_PREFIX: &str = "seed-";

/// `cargo xtask fuzz <target|all> [--seconds N] [--jobs J]`.
pub(crate) fn run(mut args: Args) -> Result<()> {
    let seconds = args.number("--seconds", 60)?;
    let jobs = args.number("--jobs", 1)?;
    let Some(target) = args.next_positional() else {
        bail!("usage: cargo xtask fuzz <target|all> [--seconds N] [--jobs J]");
    };
    args.finish()?;

    ensure_cargo_fuzz()?;
    let known = list_targets()?;
    let targets = if target == "all" {
        known
    } else if known.contains(&target) {
        vec![target]
    } else {
        bail!(
            "unknown fuzz target `{target}`; known: {}",
            known.join(", ")
        );
    };

    let mut summaries = Vec::new();
    for target in &targets {
        let summary = fuzz_one(target, seconds, jobs)?;
        minimise(target)?;
        summaries.push(format!("{target}: {summary}"));
    }
    println!("\n[fuzz] summary ({seconds} s per target, {jobs} job(s)):");
    for line in summaries {
        println!("[fuzz]   {line}");
    }
    Ok(())
}

/// Installs cargo-fuzz from crates.io unless `cargo fuzz --version` already works.
fn ensure_cargo_fuzz() -> Result<()> {
    let found = cargo(["fuzz", "--version"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        println!("[fuzz] cargo-fuzz not found; installing it (a few minutes)");
        run_checked(&mut cargo(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

/// The targets cargo-fuzz knows, from `fuzz/Cargo.toml`.
fn list_targets() -> Result<Vec<String>> {
    let out = cargo(["fuzz", "list"])
        .stderr(Stdio::inherit())
        .output()
        .context("could not run `cargo fuzz list`")?;
    ensure!(out.status.success(), "`cargo fuzz list` failed");
    let targets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    ensure!(!targets.is_empty(), "`cargo fuzz list` found no targets");
    Ok(targets)
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new("fuzz").join("corpus").join(target)
}

/// Runs one target for `seconds`, streaming libFuzzer's output, and returns its closing line.
fn fuzz_one(target: &str, seconds: u64, jobs: u64) -> Result<String> {
    let corpus = corpus_dir(target);
    fs::create_dir_all(root().join(&corpus))
        .with_context(|| format!("could not create {}", corpus.display()))?;

    let mut cmd = cargo(["fuzz", "run", "-s", "none"]);
    if jobs > 1 {
        // cargo-fuzz turns this into libFuzzer's `-fork=J`.
        cmd.args(["--jobs", &jobs.to_string()]);
    }
    cmd.arg(target)
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"));
    let shown = display(&cmd);
    println!("\n==> {shown}");

    // libFuzzer reports on stderr: pass every line through and keep the closing one.
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{shown}`"))?;
    let mut summary = None;
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line.context("reading the fuzzer's output")?;
            eprintln!("{line}");
            if is_summary(&line) {
                summary = Some(line);
            }
        }
    }
    let status = child.wait().context("waiting for cargo fuzz")?;
    if !status.success() {
        bail!(
            "fuzz target `{target}` failed ({status}); the input is under fuzz/artifacts/{target}/ \
             (reproduce: cargo fuzz run -s none {target} fuzz/artifacts/{target}/<file>)"
        );
    }
    let summary = summary.unwrap_or_else(|| "(libFuzzer printed no run count)".to_owned());
    println!("[fuzz] {target}: {summary}");
    Ok(summary)
}

/// libFuzzer's closing line: `Done N runs in S second(s)`; in fork mode (`--jobs` > 1) there is
/// none, so the last `#N: cov: … exec/s: …` status line stands for it.
fn is_summary(line: &str) -> bool {
    (line.starts_with("Done ") && line.contains(" runs in "))
        || (line.starts_with('#') && line.contains(": cov: ") && line.contains("exec/s"))
}

/// `cargo fuzz cmin`: keeps the smallest set of inputs with the same coverage.
fn minimise(target: &str) -> Result<()> {
    let corpus = corpus_dir(target);
    let before = dir_stats(&root().join(&corpus))?;
    let mut cmd = cargo(["fuzz", "cmin", "-s", "none", target]);
    cmd.arg(&corpus);
    run_checked(&mut cmd)?;
    let after = dir_stats(&root().join(&corpus))?;
    println!(
        "[fuzz] {target}: corpus minimised from {} files ({} bytes) to {} files ({} bytes)",
        before.0, before.1, after.0, after.1
    );
    Ok(())
}

/// (number of files, total bytes) directly inside `dir`.
fn dir_stats(dir: &Path) -> Result<(usize, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            files += 1;
            bytes += meta.len();
        }
    }
    Ok((files, bytes))
}

/// `cargo xtask fuzz-seed [--vectors DIR]`: rewrites the `seed-*` files of `fuzz/corpus/decode/`.
///
/// Each captured wire vector (`<v>-….bin` and `stream-<v>-….bin`, `<v>` one of `v31`, `v311`,
/// `v5`) becomes one seed: a version byte, then the file's bytes. The decode target maps the
/// first byte `b` to protocol level `b % 3 + 3`, so 3.1 is 0, 3.1.1 is 1 and 5.0 is 2.
/// Files over 4 KiB are skipped. Inputs the fuzzer found (named by hash) are left alone.
pub(crate) fn seed(mut args: Args) -> Result<()> {
    let vectors = match args.value("--vectors")? {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("MQTT_VECTORS").map_or_else(
            || root().join("..").join("shared").join("vectors"),
            PathBuf::from,
        ),
    };
    args.finish()?;

    let out_dir = root().join(corpus_dir("decode"));
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    for entry in fs::read_dir(&out_dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(SEED_PREFIX) {
            fs::remove_file(entry.path())?;
        }
    }

    let mut inputs: Vec<PathBuf> = fs::read_dir(&vectors)
        .with_context(|| format!("reading the vectors in {}", vectors.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    inputs.sort();

    let (mut written, mut skipped, mut total) = (0_usize, 0_usize, 0_u64);
    for path in inputs {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(".bin") {
            continue;
        }
        let Some(version) = version_byte(name) else {
            println!("[fuzz-seed] skip {name}: no v31/v311/v5 prefix");
            skipped += 1;
            continue;
        };
        let len = fs::metadata(&path)?.len();
        if len > MAX_SEED_FILE {
            println!("[fuzz-seed] skip {name}: {len} bytes > {MAX_SEED_FILE}");
            skipped += 1;
            continue;
        }
        let mut seed = vec![version];
        seed.extend(fs::read(&path).with_context(|| format!("reading {}", path.display()))?);
        total += seed.len() as u64;
        fs::write(out_dir.join(format!("{SEED_PREFIX}{name}")), &seed)?;
        written += 1;
    }
    ensure!(written > 0, "no vectors found in {}", vectors.display());
    ensure!(
        total < MAX_SEED_TOTAL,
        "the seed set is {total} bytes, over the {MAX_SEED_TOTAL}-byte budget"
    );
    println!(
        "[fuzz-seed] wrote {written} seeds ({total} bytes) to fuzz/corpus/decode/, skipped {skipped}"
    );
    Ok(())
}

/// The decode target's first byte for a vector file name: `v31` 0, `v311` 1, `v5` 2.
fn version_byte(file_name: &str) -> Option<u8> {
    let name = file_name.strip_prefix("stream-").unwrap_or(file_name);
    match name.split('-').next()? {
        "v31" => Some(0),
        "v311" => Some(1),
        "v5" => Some(2),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_byte_follows_the_file_prefix() {
        assert_eq!(version_byte("v31-client-connect-001.bin"), Some(0));
        assert_eq!(version_byte("v311-server-suback-002.bin"), Some(1));
        assert_eq!(version_byte("v5-client-auth-001.bin"), Some(2));
        assert_eq!(version_byte("stream-v311-paho-subscriber-c2s.bin"), Some(1));
        assert_eq!(
            version_byte("stream-v5-cli-props-subscriber-s2c.bin"),
            Some(2)
        );
        assert_eq!(version_byte("vectors.json"), None);
        // The decode target reads the protocol level as `b % 3 + 3`.
        for (b, level) in [(0_u8, 3_u8), (1, 4), (2, 5)] {
            assert_eq!(b % 3 + 3, level);
        }
    }

    #[test]
    fn recognises_libfuzzer_closing_lines() {
        assert!(is_summary("Done 3936471 runs in 6 second(s)"));
        assert!(is_summary(
            "#4768016: cov: 32 ft: 112 corp: 23 exec/s: 584312 oom/timeout/crash: 0/0/0 time: 6s"
        ));
        assert!(!is_summary(
            "#21\tNEW    cov: 16 ft: 19 corp: 2/3b lim: 4 exec/s: 0 rss: 27Mb"
        ));
        assert!(!is_summary("INFO: Done loading"));
    }
}
