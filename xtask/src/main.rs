//! `cargo xtask`: the project's automation, one file per subcommand.
//!
//! Run from anywhere in the repository; every command works from the workspace root.
//! Arguments are parsed by hand to keep this crate's build short.

#![forbid(unsafe_code)]

mod bench;
mod bench_broker;
mod bench_setups;
mod ci;
mod durability;
mod fuzz;
mod interop;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  ci                              fmt --check, clippy -D warnings, test (the whole test suite)
  fuzz <target|all> [--seconds N] [--jobs J]
                                  run a cargo-fuzz target (default 60 s), then minimise its corpus
  fuzz-seed [--vectors DIR]       write the seed corpus fuzz/corpus/decode/ from the wire vectors
                                  (default DIR: ../shared/vectors beside the repository)
  bench [--quick] [--no-run]      run the codec criterion bench and write docs/benchmarks.md
                                  (--no-run: only rewrite the report from target/criterion)
  bench setups [--quick]          the same loads against `mqtt broker` set up several ways, one at a
                                  time: --durability sync / none / Mosquitto with its database, and
                                  --runtime tokio / smol / blocking; written to docs/benchmarks.md
  bench broker [--quick]          build `mqtt` (release), run `mqtt bench` scenarios against
                                  Mosquitto and against `mqtt broker`, one at a time, and write
                                  the table with ratios to docs/benchmarks.md (--quick: 10x less)
  durability [--rounds N] [--debug]
                                  build `mqtt` (release; --debug: debug), kill its broker with
                                  SIGKILL under QoS 1/2 load towards offline persistent sessions,
                                  restart it on the same data directory, N rounds (default 100):
                                  fails if an acknowledged message is lost or a QoS 2 one doubled
  interop [--release] [--against-mosquitto]
                                  build `mqtt` (debug; --release: optimised), start its broker on a
                                  free loopback port and check it with mosquitto_pub/_sub and
                                  paho-mqtt (xtask/interop/paho_check.py) in MQTT 3.1.1 and 5.0;
                                  --against-mosquitto: also run the checks against /usr/sbin/mosquitto;
                                  then our `mqtt pub`/`mqtt sub` against Mosquitto (when installed)
                                  and against `mqtt broker`
";

fn main() {
    if let Err(err) = run() {
        eprintln!("xtask: error: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut args = Args::new(std::env::args().skip(1).collect());
    let Some(command) = args.next_positional() else {
        eprint!("{USAGE}");
        bail!("no command given");
    };
    match command.as_str() {
        "ci" => {
            args.finish()?;
            ci::run()
        }
        "fuzz" => fuzz::run(args),
        "fuzz-seed" => fuzz::seed(args),
        "bench" => bench::run(args),
        "interop" => interop::run(args),
        "durability" => durability::run(args),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            eprint!("{USAGE}");
            bail!("unknown command `{other}`")
        }
    }
}

/// The workspace root: the parent of this crate's directory.
fn root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.to_path_buf(), Path::to_path_buf)
}

/// A `cargo` command (the same cargo that runs xtask) started at the workspace root.
fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(args).current_dir(root());
    cmd
}

/// Prints `cmd`, runs it with inherited stdio and fails unless it exits with success.
fn run_checked(cmd: &mut Command) -> Result<()> {
    let shown = display(cmd);
    println!("\n==> {shown}");
    let start = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    let secs = start.elapsed().as_secs_f64();
    if !status.success() {
        bail!("`{shown}` failed ({status}) after {secs:.1} s");
    }
    println!("==> ok ({secs:.1} s): {shown}");
    Ok(())
}

/// `cmd` as a shell-like line, for logs.
fn display(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program())
        .file_name()
        .unwrap_or_else(|| cmd.get_program())
        .to_string_lossy()
        .into_owned();
    std::iter::once(program)
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The remaining command-line arguments, consumed by the subcommands.
struct Args {
    rest: Vec<String>,
}

impl Args {
    fn new(rest: Vec<String>) -> Self {
        Self { rest }
    }

    /// Takes the first argument that does not start with `-`.
    fn next_positional(&mut self) -> Option<String> {
        let i = self.rest.iter().position(|a| !a.starts_with('-'))?;
        Some(self.rest.remove(i))
    }

    /// Takes `name` if present.
    fn flag(&mut self, name: &str) -> bool {
        match self.rest.iter().position(|a| a == name) {
            Some(i) => {
                self.rest.remove(i);
                true
            }
            None => false,
        }
    }

    /// Takes `name VALUE` or `name=VALUE` if present.
    fn value(&mut self, name: &str) -> Result<Option<String>> {
        let prefix = format!("{name}=");
        if let Some(i) = self.rest.iter().position(|a| a.starts_with(&prefix)) {
            let arg = self.rest.remove(i);
            return Ok(Some(arg[prefix.len()..].to_owned()));
        }
        let Some(i) = self.rest.iter().position(|a| a == name) else {
            return Ok(None);
        };
        self.rest.remove(i);
        if i >= self.rest.len() {
            bail!("`{name}` needs a value");
        }
        Ok(Some(self.rest.remove(i)))
    }

    /// Takes `name N` as a positive number, or `default`.
    fn number(&mut self, name: &str, default: u64) -> Result<u64> {
        match self.value(name)? {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => bail!("`{name}` needs a positive whole number, got `{v}`"),
            },
        }
    }

    /// Fails if anything was left unparsed.
    fn finish(self) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            bail!("unexpected arguments: {}", self.rest.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Args {
        Args::new(line.split_whitespace().map(str::to_owned).collect())
    }

    #[test]
    fn parses_values_flags_and_positionals() {
        let mut a = args("--seconds 5 decode --jobs=2 --quick");
        assert_eq!(a.number("--seconds", 60).unwrap(), 5);
        assert_eq!(a.number("--jobs", 1).unwrap(), 2);
        assert!(a.flag("--quick"));
        assert!(!a.flag("--quick"));
        assert_eq!(a.next_positional().as_deref(), Some("decode"));
        a.finish().unwrap();
    }

    #[test]
    fn rejects_bad_and_leftover_arguments() {
        assert!(args("--seconds 0").number("--seconds", 60).is_err());
        assert!(args("--seconds").number("--seconds", 60).is_err());
        assert!(args("--what").finish().is_err());
    }
}
