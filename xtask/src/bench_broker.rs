//! `cargo xtask bench broker [--quick]`: our broker against Mosquitto, under the same load
//! from `mqtt bench`, one broker at a time, and a table of the two with their ratio written to
//! `docs/benchmarks.md` between the `bench:broker` markers.
//!
//! Each scenario gets a fresh broker process on a free loopback port (so nothing one leaves
//! behind, queued messages or memory, weighs on the next), started through `sh -c 'ulimit -n
//! ...; exec ...'` so that thousands of connections fit, and the load runs the same way. Both
//! brokers get the same bounds: 100 messages in flight per client and no practical limit on
//! queued messages (Mosquitto's `max_queued_messages 0`; ours a queue of ten million).
//! `--quick` divides every count by ten.

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use crate::bench::{core_count, cpu_model, rustc_version, utc_date, write_section, Markers};
use crate::interop::{build, free_port, mosquitto_program, wait_until};
use crate::{display, Args};

const MARKERS: Markers = Markers {
    start: "<!-- bench:broker:start -->",
    end: "<!-- bench:broker:end -->",
    name: "bench:broker",
};
/// The open-files limit asked for the brokers and the load (soft limit; the hard one caps it).
const NOFILE: u32 = 20_000;
/// How long a broker may take to accept connections, and to exit on SIGTERM.
const BROKER_START: Duration = Duration::from_secs(10);
const BROKER_STOP: Duration = Duration::from_secs(10);

/// A broker and how it is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Mosquitto, with its database (`persistence true`, default autosave) or without.
    Mosquitto { persist: bool },
    /// `mqtt broker --runtime R --durability D` (a fresh data directory unless `none`).
    Ours {
        runtime: &'static str,
        durability: &'static str,
    },
}

/// The pair the main table compares: both keep nothing on disk.
const MOSQUITTO: Kind = Kind::Mosquitto { persist: false };
const OURS: Kind = Kind::Ours {
    runtime: "tokio",
    durability: "none",
};

impl Kind {
    pub(crate) fn name(self) -> String {
        match self {
            Self::Mosquitto { persist: false } => "mosquitto".to_owned(),
            Self::Mosquitto { persist: true } => "mosquitto (persistence)".to_owned(),
            Self::Ours {
                runtime,
                durability,
            } => format!("mqtt ({runtime}, durability {durability})"),
        }
    }
}

/// What a scenario's row reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Measure {
    /// Messages received per second.
    Throughput,
    /// p50, p99 and max of end-to-end latency.
    Latency,
    /// Connections per second and broker memory per connection.
    Connections,
}

impl Measure {
    /// Runs per broker. The latency at a low rate and the connect rate move with the
    /// host's noise as much as the differences they measure (Mosquitto's own p99 ranged over
    /// 0.45-1.5 ms in five runs of one day, and in 27 alternating pairs of connect runs
    /// either broker's rate over 9-15k/s), so each is run several times, the two brokers
    /// alternating, and the run with the median figure is the one reported. A connect run
    /// takes about 4 s, a latency run 11 s: the connect rate, the noisier, gets more runs.
    fn rounds(self) -> usize {
        match self {
            Self::Throughput => 1,
            Self::Latency => 5,
            Self::Connections => 7,
        }
    }

    /// The figure the median is taken of.
    fn key(self, report: &Value) -> Option<f64> {
        match self {
            Self::Throughput => report["receive_rate"].as_f64(),
            Self::Latency => report["latency_us"]["p99"].as_f64(),
            Self::Connections => report["conn"]["connect_rate"].as_f64(),
        }
    }

    /// The name and unit of [`Measure::key`], for the notes under the table.
    fn key_name(self) -> &'static str {
        match self {
            Self::Throughput => "received msg/s",
            Self::Latency => "p99 (µs)",
            Self::Connections => "connections/s",
        }
    }
}

/// The run with the median key figure of `runs`; the first failure if any run failed.
fn median(measure: Measure, runs: Vec<Result<Value, String>>) -> Result<Value, String> {
    let mut ok = Vec::with_capacity(runs.len());
    for run in runs {
        ok.push(run?);
    }
    ok.sort_by(|a, b| {
        let (a, b) = (measure.key(a), measure.key(b));
        a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal)
    });
    let middle = ok.len() / 2;
    ok.into_iter()
        .nth(middle)
        .ok_or_else(|| "no run".to_owned())
}

/// The brokers of one round, each with its index in the results (Mosquitto 0, ours 1). The
/// one that goes first changes every round, so that neither always meets the state the other
/// left behind (the loopback's TIME_WAIT sockets, a warm page cache).
fn round_order(round: usize) -> [(usize, Kind); 2] {
    if round.is_multiple_of(2) {
        [(0, MOSQUITTO), (1, OURS)]
    } else {
        [(1, OURS), (0, MOSQUITTO)]
    }
}

/// "p99 (µs) of each run: Mosquitto 458, 817, 636; ours 576, 960, 477 (ours / Mosquitto by
/// round: 1.26, 1.18, 0.75)": each run's key figure, in run order, and each round's ratio.
fn spread(measure: Measure, runs: &[Vec<Result<Value, String>>]) -> String {
    let list = |runs: &Vec<Result<Value, String>>| {
        runs.iter()
            .map(|r| match r.as_ref().ok().and_then(|r| measure.key(r)) {
                Some(v) => thousands(v.round() as u64),
                None => "error".to_owned(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let key = |r: &Result<Value, String>| r.as_ref().ok().and_then(|r| measure.key(r));
    let ratios = runs[0]
        .iter()
        .zip(&runs[1])
        .map(|(theirs, ours)| match (key(theirs), key(ours)) {
            (Some(t), Some(o)) if t > 0.0 => format!("{:.2}", o / t),
            _ => "–".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{} of each run: Mosquitto {}; ours {} (ours / Mosquitto by round: {ratios})",
        measure.key_name(),
        list(&runs[0]),
        list(&runs[1])
    )
}

/// One load, run the same way against each broker.
pub(crate) struct Scenario {
    pub(crate) title: String,
    /// `mqtt bench` arguments, after the scenario name's.
    pub(crate) args: Vec<String>,
    pub(crate) measure: Measure,
}

fn scenarios(quick: bool) -> Vec<Scenario> {
    let div = if quick { 10 } else { 1 };
    let scenario = |title: String, args: &str, measure| Scenario {
        title,
        args: args.split_whitespace().map(str::to_owned).collect(),
        measure,
    };
    let n = |v: u64| v / div;
    vec![
        scenario(
            format!(
                "fan-in QoS 0: 4 publishers x {} msgs of 64 B -> 1 subscriber",
                thousands(n(250_000))
            ),
            &format!("fan-in --publishers 4 -c {} -q 0 -s 64", n(250_000)),
            Measure::Throughput,
        ),
        scenario(
            format!(
                "fan-in QoS 1: 4 publishers x {} msgs -> 1 subscriber",
                thousands(n(150_000))
            ),
            &format!("fan-in --publishers 4 -c {} -q 1 -s 64", n(150_000)),
            Measure::Throughput,
        ),
        scenario(
            format!(
                "fan-out QoS 0: 1 publisher x {} msgs -> 50 subscribers",
                thousands(n(40_000))
            ),
            &format!("fan-out --subscribers 50 -c {} -q 0 -s 64", n(40_000)),
            Measure::Throughput,
        ),
        scenario(
            format!("pairs QoS 1: 50 pairs x {} msgs", thousands(n(8_000))),
            &format!("pairs -n 50 -c {} -q 1 -s 64", n(8_000)),
            Measure::Throughput,
        ),
        scenario(
            format!(
                "latency QoS 1 at 1,000 msg/s: 1 pair x {} msgs (open loop)",
                thousands(n(10_000))
            ),
            &format!("pairs -n 1 --rate 1000 -c {} -q 1 -s 64", n(10_000)),
            Measure::Latency,
        ),
        scenario(
            format!("{} idle connections", thousands(n(5_000))),
            &format!("conn -n {} --hold 2", n(5_000)),
            Measure::Connections,
        ),
    ]
}

pub(crate) fn run(mut args: Args) -> Result<()> {
    let quick = args.flag("--quick");
    args.finish()?;
    let mosquitto = mosquitto_program().context(
        "`mosquitto` not found (looked in /usr/sbin and PATH): apt-get install mosquitto",
    )?;
    let mqtt = build(true)?;
    let work = std::env::temp_dir().join(format!("xtask-bench-broker-{}", std::process::id()));
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;

    let scenarios = scenarios(quick);
    let mut results = Vec::new();
    let mut spreads = Vec::new();
    for scenario in &scenarios {
        // Per broker, its runs; the brokers alternate, the first changing every round.
        let mut runs = vec![Vec::new(), Vec::new()];
        for round in 0..scenario.measure.rounds() {
            for (i, kind) in round_order(round) {
                println!("\n[bench broker] {}: {}", kind.name(), scenario.title);
                let outcome = run_one(kind, &mosquitto, &mqtt, &work, scenario);
                match &outcome {
                    Ok(report) => println!("[bench broker] {}", summary(report)),
                    Err(e) => println!("[bench broker] failed: {e:#}"),
                }
                runs[i].push(outcome.map_err(|e| format!("{e:#}")));
            }
        }
        spreads.push((scenario.measure.rounds() > 1).then(|| spread(scenario.measure, &runs)));
        results.push(
            runs.into_iter()
                .map(|r| median(scenario.measure, r))
                .collect(),
        );
    }
    let _ = fs::remove_dir_all(&work);

    let header = Header {
        command: format!(
            "`cargo xtask bench broker{}`",
            if quick { " --quick" } else { "" }
        ),
        date: utc_date(SystemTime::now()),
        rustc: rustc_version(),
        cpu: cpu_model(),
        cores: core_count(),
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned()),
        mosquitto: mosquitto_version(&mosquitto),
    };
    let section = render(&header, &scenarios, &results, &spreads);
    write_section(&MARKERS, &section)?;
    println!("\n[bench broker] wrote the bench:broker section of docs/benchmarks.md:\n{section}");
    Ok(())
}

/// Starts `kind` on a free port, runs `scenario` against it, stops it: the `--json` report.
pub(crate) fn run_one(
    kind: Kind,
    mosquitto: &Path,
    mqtt: &Path,
    work: &Path,
    scenario: &Scenario,
) -> Result<Value> {
    let port = free_port()?;
    let mut broker = Broker::start(kind, mosquitto, mqtt, work, port)?;
    let mut bench = vec![
        "bench".to_owned(),
        "-h".to_owned(),
        "127.0.0.1".to_owned(),
        "-p".to_owned(),
        port.to_string(),
        "-V".to_owned(),
        "311".to_owned(),
        "--duration".to_owned(),
        "120".to_owned(),
        "--quiet".to_owned(),
        "--json".to_owned(),
    ];
    // The scenario name first, so that `mqtt bench` reads it as the positional.
    bench.splice(1..1, scenario.args.iter().cloned());
    if scenario.measure == Measure::Connections {
        bench.push("--broker-pid".to_owned());
        bench.push(broker.child.id().to_string());
    }
    let mut cmd = with_nofile(mqtt, &bench);
    println!("==> {}", display(&cmd));
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .context("could not start `mqtt bench`")?;
    let stopped = broker.stop();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).with_context(|| {
        format!(
            "`mqtt bench` ({}) printed no report: {stdout}\nbroker log:\n{}",
            out.status,
            log_tail(&broker.log)
        )
    })?;
    stopped.with_context(|| format!("stopping {}", kind.name()))?;
    Ok(report)
}

/// `program args` run through `sh` with the open-files limit raised first.
fn with_nofile(program: &Path, args: &[String]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -n {NOFILE} 2>/dev/null || ulimit -n \"$(ulimit -Hn)\"; exec \"$0\" \"$@\""
        ))
        .arg(program)
        .args(args);
    cmd
}

/// A broker process on 127.0.0.1; killed if still running when dropped.
struct Broker {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Broker {
    fn start(kind: Kind, mosquitto: &Path, mqtt: &Path, work: &Path, port: u16) -> Result<Self> {
        let log = work.join(format!("broker-{port}.log"));
        let (program, args) = match kind {
            Kind::Mosquitto { persist } => {
                let conf = work.join("mosquitto.conf");
                let mut text = format!(
                    "listener {port} 127.0.0.1\nallow_anonymous true\npersistence {persist}\n\
                     max_queued_messages 0\nmax_inflight_messages 100\n"
                );
                if persist {
                    let store = work.join(format!("mosquitto-data-{port}"));
                    fs::create_dir_all(&store)?;
                    // Run as root, Mosquitto drops to the `mosquitto` user: let it write here.
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::PermissionsExt as _;
                        fs::set_permissions(&store, fs::Permissions::from_mode(0o777))?;
                    }
                    let _ = writeln!(text, "persistence_location {}/", store.display());
                }
                fs::write(&conf, text).with_context(|| format!("writing {}", conf.display()))?;
                let args = vec!["-c".to_owned(), conf.to_string_lossy().into_owned()];
                (mosquitto.to_path_buf(), args)
            }
            Kind::Ours {
                runtime,
                durability,
            } => {
                let conf = work.join("mqtt.toml");
                // Mosquitto's `max_queued_messages 0`: queues without bound, and that includes
                // QoS 0 for a subscriber that reads slower than publishers send, which ours
                // would drop past `max_pending_write_bytes`.
                let text = "[limits]\nmax_inflight = 100\nmax_queued_messages = 10000000\n\
                            max_queued_bytes = 4294967296\nmax_pending_write_bytes = 4294967296\n";
                fs::write(&conf, text).with_context(|| format!("writing {}", conf.display()))?;
                let args = [
                    "broker",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--config",
                    &conf.to_string_lossy(),
                    "--runtime",
                    runtime,
                    "--durability",
                    durability,
                ]
                .map(str::to_owned)
                .to_vec();
                let mut args = args;
                if durability != "none" {
                    let data = work.join(format!("mqtt-data-{port}"));
                    let _ = fs::remove_dir_all(&data);
                    args.extend(["--data-dir".to_owned(), data.to_string_lossy().into_owned()]);
                }
                (mqtt.to_path_buf(), args)
            }
        };
        let file = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = with_nofile(&program, &args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file));
        println!("==> {}", display(&cmd));
        // `exec` keeps the process id: the child is the broker itself.
        let child = cmd
            .spawn()
            .with_context(|| format!("could not start {}", kind.name()))?;
        let mut broker = Self {
            name: kind.name(),
            child,
            log,
        };
        broker.wait_ready(port)?;
        Ok(broker)
    }

    /// Polls (bounded) until the port accepts a connection; fails if the process exits.
    fn wait_ready(&mut self, port: u16) -> Result<()> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + BROKER_START;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited at start ({status}):\n{}",
                    self.name,
                    log_tail(&self.log)
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "{} not accepting on {addr} within {} s",
                self.name,
                BROKER_START.as_secs()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits (bounded) for the exit; kills it if it does not.
    fn stop(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} had already exited ({status})", self.name);
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        // Killed if it does not exit in time.
        match wait_until(&mut self.child, Instant::now() + BROKER_STOP)? {
            Some(_) => Ok(()),
            None => bail!(
                "{} did not exit within {} s of SIGTERM",
                self.name,
                BROKER_STOP.as_secs()
            ),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn log_tail(path: &Path) -> String {
    let log = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn mosquitto_version(program: &Path) -> String {
    // `mosquitto -h` prints its version on the first line (and exits non-zero).
    Command::new(program)
        .arg("-h")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim().trim_start_matches("mosquitto version ").to_owned())
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown version".to_owned())
}

/// One line about a report, for the log.
pub(crate) fn summary(r: &Value) -> String {
    let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
    let u = |k: &str| r[k].as_u64().unwrap_or(0);
    if r["conn"].is_object() {
        let c = &r["conn"];
        return format!(
            "{} connected, {:.0} conn/s, {} KiB/conn, passed: {}",
            c["connected"],
            c["connect_rate"].as_f64().unwrap_or(0.0),
            c["rss_per_connection_kib"],
            r["passed"]
        );
    }
    format!(
        "sent {} ({:.0}/s), received {} ({:.0}/s), lost {}, dup {}, p50 {} µs, p99 {} µs, max {} µs, passed: {}",
        u("sent"),
        f("send_rate"),
        u("received"),
        f("receive_rate"),
        u("lost"),
        u("duplicates"),
        r["latency_us"]["p50"],
        r["latency_us"]["p99"],
        r["latency_us"]["max"],
        r["passed"]
    )
}

struct Header {
    command: String,
    date: String,
    rustc: String,
    cpu: String,
    cores: usize,
    kernel: String,
    mosquitto: String,
}

/// One cell's value and how to show it.
#[derive(Debug, Clone, Copy)]
enum Figure {
    Rate(f64),
    Micros(u64),
    KiB(f64),
}

impl Figure {
    fn value(self) -> f64 {
        match self {
            Self::Rate(v) | Self::KiB(v) => v,
            Self::Micros(v) => v as f64,
        }
    }

    fn show(self) -> String {
        match self {
            Self::Rate(v) => thousands(v.round() as u64),
            Self::Micros(us) if us >= 10_000 => format!("{:.1} ms", us as f64 / 1_000.0),
            Self::Micros(us) if us >= 1_000 => format!("{:.2} ms", us as f64 / 1_000.0),
            Self::Micros(us) => format!("{us} µs"),
            Self::KiB(v) => format!("{v:.2}"),
        }
    }
}

fn thousands(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The rows of one scenario: (metric, how it reads, a figure from a report).
type Row = (&'static str, fn(&Value) -> Option<Figure>);

fn rows(measure: Measure) -> Vec<Row> {
    match measure {
        Measure::Throughput => vec![("received msg/s", |r| {
            r["receive_rate"].as_f64().map(Figure::Rate)
        })],
        Measure::Latency => vec![
            ("latency p50", |r| {
                r["latency_us"]["p50"].as_u64().map(Figure::Micros)
            }),
            ("latency p99", |r| {
                r["latency_us"]["p99"].as_u64().map(Figure::Micros)
            }),
            ("latency max", |r| {
                r["latency_us"]["max"].as_u64().map(Figure::Micros)
            }),
        ],
        Measure::Connections => vec![
            ("connections/s", |r| {
                r["conn"]["connect_rate"].as_f64().map(Figure::Rate)
            }),
            ("broker KiB per connection", |r| {
                r["conn"]["rss_per_connection_kib"]
                    .as_f64()
                    .map(Figure::KiB)
            }),
        ],
    }
}

/// What a report says went wrong: lost or duplicated messages, failures.
fn caveat(r: &Value) -> Option<String> {
    let mut notes = Vec::new();
    let expected = r["expected"].as_u64().unwrap_or(0);
    let lost = r["lost"].as_u64().unwrap_or(0);
    if lost > 0 && expected > 0 {
        notes.push(format!(
            "lost {:.1}%",
            lost as f64 * 100.0 / expected as f64
        ));
    }
    if r["duplicates"].as_u64().unwrap_or(0) > 0 {
        notes.push(format!("{} dup", r["duplicates"]));
    }
    if r["passed"] == false && lost == 0 {
        notes.push("failed".to_owned());
    }
    (!notes.is_empty()).then(|| notes.join(", "))
}

fn cell(outcome: &Result<Value, String>, row: &Row) -> (String, Option<f64>) {
    match outcome {
        Err(_) => ("error".to_owned(), None),
        Ok(r) => match (row.1)(r) {
            Some(fig) => {
                let mut text = fig.show();
                if let Some(c) = caveat(r) {
                    let _ = write!(text, " ({c})");
                }
                (text, Some(fig.value()))
            }
            None => ("–".to_owned(), None),
        },
    }
}

/// The text that goes between the markers.
fn render(
    header: &Header,
    scenarios: &[Scenario],
    results: &[Vec<Result<Value, String>>],
    spreads: &[Option<String>],
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", MARKERS.start);
    let _ = writeln!(
        s,
        "<!-- Written by `cargo xtask bench broker`; edits between these markers are overwritten. -->\n"
    );
    let _ = writeln!(s, "- command: {}", header.command);
    let _ = writeln!(s, "- date: {} (UTC)", header.date);
    let _ = writeln!(
        s,
        "- machine: {}, {} cores, Linux {}; brokers and load generator share it",
        header.cpu, header.cores, header.kernel
    );
    let _ = writeln!(
        s,
        "- rustc: `{}`; Mosquitto {}",
        header.rustc, header.mosquitto
    );
    let _ = writeln!(
        s,
        "\nLoad from `mqtt bench` (MQTT 3.1.1, closed loop with a window of 100 per publisher \
         unless said otherwise), each scenario against a fresh broker, one broker at a time. \
         Ratios are ours / Mosquitto: above 1 is better for rates, below 1 is better for \
         latency and memory. A loss note means messages that never arrived (QoS 0 drops, or a \
         failure at QoS 1).\n"
    );
    let _ = writeln!(
        s,
        "| scenario | metric | Mosquitto | ours | ours / Mosquitto |"
    );
    let _ = writeln!(s, "|---|---|--:|--:|--:|");
    for (scenario, pair) in scenarios.iter().zip(results) {
        let (Some(theirs), Some(ours)) = (pair.first(), pair.get(1)) else {
            continue;
        };
        for (i, row) in rows(scenario.measure).into_iter().enumerate() {
            // The scenario is named on its first row only.
            let title = if i == 0 { scenario.title.as_str() } else { "" };
            let (t, tv) = cell(theirs, &row);
            let (o, ov) = cell(ours, &row);
            let ratio = match (ov, tv) {
                (Some(o), Some(t)) if t > 0.0 => format!("{:.2}", o / t),
                _ => "–".to_owned(),
            };
            let _ = writeln!(s, "| {} | {} | {t} | {o} | {ratio} |", title, row.0);
        }
    }
    let errors: Vec<String> = scenarios
        .iter()
        .zip(results)
        .flat_map(|(scenario, pair)| {
            pair.iter()
                .zip([MOSQUITTO, OURS])
                .filter_map(move |(o, kind)| {
                    o.as_ref()
                        .err()
                        .map(|e| format!("- {} / {}: {e}", scenario.title, kind.name()))
                })
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(s, "\nErrors:\n\n{}", errors.join("\n"));
    }
    let repeated: Vec<String> = scenarios
        .iter()
        .zip(spreads)
        .filter_map(|(scenario, spread)| {
            let spread = spread.as_ref()?;
            Some(format!(
                "- {}: {} runs per broker, alternating, the first broker changing every \
                 round; the table shows the run with the median {}. {spread}.",
                scenario.title,
                scenario.measure.rounds(),
                scenario.measure.key_name()
            ))
        })
        .collect();
    if !repeated.is_empty() {
        let _ = writeln!(
            s,
            "\nRepeated scenarios (their figures move with the host's noise as much as \
             the brokers differ):\n\n{}",
            repeated.join("\n")
        );
    }
    let _ = writeln!(s, "\nEach row's load: `mqtt bench <args> -h 127.0.0.1 -p PORT -V 311 --duration 120 --quiet --json`, with:\n");
    for scenario in scenarios {
        let _ = writeln!(s, "- {}: `{}`", scenario.title, scenario.args.join(" "));
    }
    let _ = write!(s, "\n{}", MARKERS.end);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_ratios_and_notes() {
        let scenarios = scenarios(true);
        assert!(scenarios[0].title.contains("25,000"));
        let report = |rate: f64, lost: u64| {
            serde_json::json!({
                "receive_rate": rate, "expected": 1000, "lost": lost, "duplicates": 0,
                "passed": true,
                "latency_us": {"p50": 150, "p99": 2500, "max": 12000},
                "conn": {"connect_rate": 10000.0, "rss_per_connection_kib": 0.7}
            })
        };
        let results: Vec<Vec<Result<Value, String>>> = scenarios
            .iter()
            .map(|_| vec![Ok(report(100_000.0, 0)), Ok(report(150_000.0, 10))])
            .collect();
        let mut results = results;
        results[1][1] = Err("boom".to_owned());
        let header = Header {
            command: "`cargo xtask bench broker --quick`".to_owned(),
            date: "2026-01-01".to_owned(),
            rustc: "rustc 1.95.0".to_owned(),
            cpu: "test CPU".to_owned(),
            cores: 2,
            kernel: "6.1".to_owned(),
            mosquitto: "2.0.11".to_owned(),
        };
        let spreads: Vec<Option<String>> = scenarios
            .iter()
            .map(|sc| (sc.measure == Measure::Latency).then(|| "p99 (µs) of each run: X".into()))
            .collect();
        let text = render(&header, &scenarios, &results, &spreads);
        assert!(text.starts_with(MARKERS.start) && text.ends_with(MARKERS.end));
        assert!(
            text.contains("5 runs per broker, alternating, the first broker changing every round; the table shows the run with the median p99 (µs). p99 (µs) of each run: X."),
            "{text}"
        );
        assert!(
            text.contains("| 100,000 | 150,000 (lost 1.0%) | 1.50 |"),
            "{text}"
        );
        assert!(text.contains("| 100,000 | error | – |"), "{text}");
        assert!(
            text.contains("| latency p50 | 150 µs | 150 µs (lost 1.0%) | 1.00 |"),
            "{text}"
        );
        assert!(text.contains("| 2.50 ms |"), "{text}");
        assert!(text.contains("| 12.0 ms |"), "{text}");
        assert!(
            text.contains("| broker KiB per connection | 0.70 |"),
            "{text}"
        );
        assert!(text.contains("boom"));
        assert!(text.contains("`conn -n 500 --hold 2`"));
    }

    #[test]
    fn the_first_broker_changes_every_round() {
        let firsts: Vec<usize> = (0..4).map(|round| round_order(round)[0].0).collect();
        assert_eq!(firsts, [0, 1, 0, 1]);
        for round in 0..4 {
            let [(a, first), (b, second)] = round_order(round);
            assert_eq!((a + b, first.name() == second.name()), (1, false));
            let mosquitto = if a == 0 { first } else { second };
            assert_eq!(mosquitto.name(), MOSQUITTO.name());
        }
    }

    #[test]
    fn the_median_run_is_reported_and_a_failed_run_shows() {
        let run = |p99: u64| -> Result<Value, String> {
            Ok(serde_json::json!({"latency_us": {"p99": p99}}))
        };
        let runs = vec![run(900), run(300), run(500)];
        let picked = median(Measure::Latency, runs.clone()).expect("all ran");
        assert_eq!(picked["latency_us"]["p99"], 500);
        let both = [runs, vec![run(400), Err("boom".into()), run(450)]];
        assert_eq!(
            spread(Measure::Latency, &both),
            "p99 (µs) of each run: Mosquitto 900, 300, 500; ours 400, error, 450 \
             (ours / Mosquitto by round: 0.44, –, 0.90)"
        );
        let [_, ours] = both;
        assert_eq!(median(Measure::Latency, ours), Err("boom".to_owned()));
    }
}
