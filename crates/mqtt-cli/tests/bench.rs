//! `mqtt bench` against `mqtt broker -p 0`, with small counts: every scenario's counts add up
//! (sent, expected, received, nothing lost or duplicated), `--json` parses, the open loop
//! keeps its schedule's count, and a run that loses QoS 1 messages fails.
//!
//! These tests check counts, never speed. Every command runs under [`WAIT`]; every broker is
//! killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

/// Every wait in these tests ends by this.
const WAIT: Duration = Duration::from_secs(60);

/// A running `mqtt broker -p 0` on 127.0.0.1; killed on drop.
struct Broker {
    child: Child,
    port: String,
}

impl Broker {
    fn start(extra: &[&str]) -> Self {
        let mut child = StdCommand::new(env!("CARGO_BIN_EXE_mqtt"))
            .args([
                "broker",
                "--bind",
                "127.0.0.1",
                "-p",
                "0",
                "--durability",
                "none",
            ])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + WAIT;
        let marker = "listening on mqtt://";
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no `{marker}` line: {e}"));
            if let Some(at) = line.find(marker) {
                let addr = line[at + marker.len()..].split_whitespace().next().unwrap();
                break addr.rsplit(':').next().unwrap().to_owned();
            }
        };
        Self { child, port }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `mqtt bench SCENARIO -h 127.0.0.1 -p PORT --quiet` and `args`.
    fn bench(&self, scenario: &str, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_mqtt"))
            .args([
                "bench",
                scenario,
                "-h",
                "127.0.0.1",
                "-p",
                &self.port,
                "--quiet",
            ])
            .args(args)
            .env_remove("RUST_LOG")
            .timeout(WAIT)
            .output()
            .unwrap()
    }

    /// A `--json` run that must pass: its report.
    fn passes(&self, scenario: &str, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.bench(scenario, &all);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{scenario} {args:?}: {}\n{stdout}\n{stderr}",
            out.status
        );
        let report: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
        assert_eq!(report["schema"], 1);
        assert_eq!(report["scenario"], scenario);
        assert_eq!(report["passed"], true, "{report}");
        assert_eq!(
            report["errors"].as_array().map(Vec::len),
            Some(0),
            "{report}"
        );
        report
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn n(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {key}: {report}"))
}

/// Every message arrived once per subscriber that should have it.
fn all_delivered(report: &Value, sent: u64, expected: u64) {
    assert_eq!(n(report, "sent"), sent, "{report}");
    assert_eq!(n(report, "expected"), expected, "{report}");
    assert_eq!(n(report, "received"), expected, "{report}");
    assert_eq!(n(report, "lost"), 0, "{report}");
    assert_eq!(n(report, "duplicates"), 0, "{report}");
    assert_eq!(n(report, "foreign"), 0, "{report}");
    assert_eq!(
        report["latency_us"]["count"].as_u64(),
        Some(expected),
        "{report}"
    );
}

#[test]
fn fan_in_qos1_delivers_every_message_once() {
    let broker = Broker::start(&[]);
    let r = broker.passes("fan-in", &["--publishers", "3", "-c", "200", "-q", "1"]);
    all_delivered(&r, 600, 600);
    assert_eq!((n(&r, "publishers"), n(&r, "subscribers")), (3, 1));
    assert_eq!(n(&r, "out_of_order"), 0);
    assert_eq!(r["load"]["mode"], "closed");
    assert_eq!(r["load"]["inflight"], 100);
    let l = &r["latency_us"];
    assert!(
        n(l, "p50") <= n(l, "p99") && n(l, "p99") <= n(l, "max"),
        "{l}"
    );
}

#[test]
fn fan_out_qos2_reaches_every_subscriber() {
    let broker = Broker::start(&[]);
    let r = broker.passes(
        "fan-out",
        &["--subscribers", "4", "-c", "100", "-q", "2", "-V", "mqttv5"],
    );
    all_delivered(&r, 100, 400);
    assert_eq!(r["protocol"], "5.0");
}

#[test]
fn pairs_qos0_each_on_its_own_topic() {
    let broker = Broker::start(&[]);
    let r = broker.passes(
        "pairs",
        &["-n", "5", "-c", "100", "-t", "t/%i/x", "-s", "100"],
    );
    all_delivered(&r, 500, 500);
    assert_eq!(n(&r, "size"), 100);
}

#[test]
fn shared_group_gets_each_message_once() {
    let broker = Broker::start(&[]);
    let r = broker.passes(
        "shared",
        &[
            "--publishers",
            "2",
            "--subscribers",
            "3",
            "-c",
            "100",
            "-q",
            "1",
            "-V",
            "5",
        ],
    );
    all_delivered(&r, 200, 200);
}

#[test]
fn open_loop_sends_its_schedule() {
    let broker = Broker::start(&[]);
    let start = Instant::now();
    let r = broker.passes(
        "pairs",
        &["-n", "2", "--rate", "400", "-c", "40", "-q", "1"],
    );
    all_delivered(&r, 80, 80);
    assert_eq!(r["load"]["mode"], "open");
    assert_eq!(r["load"]["rate"], 400.0);
    // 80 messages at 400 per second take about 0.2 s: a schedule, not a burst.
    assert!(r["send_s"].as_f64().unwrap() >= 0.15, "{r}");
    assert!(start.elapsed() < WAIT);
}

#[test]
fn pub_alone_counts_what_it_sent() {
    let broker = Broker::start(&[]);
    let r = broker.passes("pub", &["--publishers", "2", "-c", "300", "-q", "1"]);
    assert_eq!((n(&r, "sent"), n(&r, "subscribers")), (600, 0));
    assert!(r["latency_us"].is_null());
}

#[test]
fn sub_alone_counts_foreign_messages() {
    let broker = Broker::start(&[]);
    let port = broker.port.clone();
    let sub = std::thread::spawn(move || {
        Command::new(env!("CARGO_BIN_EXE_mqtt"))
            .args([
                "bench",
                "sub",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "--quiet",
                "--json",
            ])
            .args(["-c", "20", "--duration", "30", "-t", "ext/%i"])
            .timeout(WAIT)
            .output()
            .unwrap()
    });
    // Publish until the subscriber has had its 20 (it may not be subscribed yet at first).
    let deadline = Instant::now() + WAIT;
    while !sub.is_finished() {
        assert!(Instant::now() < deadline, "mqtt bench sub did not end");
        let published = Command::new(env!("CARGO_BIN_EXE_mqtt"))
            .args([
                "pub",
                "-h",
                "127.0.0.1",
                "-p",
                &broker.port,
                "-t",
                "ext/1",
                "-m",
                "x",
            ])
            .args(["--repeat", "20"])
            .timeout(WAIT)
            .output()
            .unwrap();
        assert!(published.status.success());
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = sub.join().unwrap();
    assert!(out.status.success(), "{out:?}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(n(&r, "received") >= 20, "{r}");
    assert_eq!(n(&r, "foreign"), n(&r, "received"));
    assert_eq!((n(&r, "expected"), n(&r, "lost")), (0, 0));
}

#[test]
fn conn_opens_and_weighs_connections() {
    let broker = Broker::start(&[]);
    let pid = broker.pid().to_string();
    let r = broker.passes("conn", &["-n", "50", "--hold", "0.1", "--broker-pid", &pid]);
    let c = &r["conn"];
    assert_eq!(
        (n(c, "requested"), n(c, "connected"), n(c, "failed")),
        (50, 50, 0)
    );
    assert!(c["connect_rate"].as_f64().unwrap() > 0.0, "{c}");
    assert!(n(c, "broker_rss_after_kib") > 0, "{c}");
    assert!(c["rss_per_connection_kib"].is_number(), "{c}");
}

#[test]
fn lost_qos1_messages_fail_the_run() {
    // One message in flight to the subscriber and no queue: the rest of a burst is dropped.
    let dir = std::env::temp_dir().join(format!("mqtt-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("tight.toml");
    std::fs::write(
        &config,
        "[limits]\nmax_inflight = 1\nmax_queued_messages = 0\n",
    )
    .unwrap();
    let broker = Broker::start(&["--config", config.to_str().unwrap()]);
    let out = broker.bench(
        "fan-in",
        &[
            "--publishers",
            "2",
            "-c",
            "200",
            "-q",
            "1",
            "--grace",
            "0.5",
            "--json",
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["passed"], false);
    assert!(n(&r, "lost") > 0, "{r}");
    assert_eq!(n(&r, "lost") + n(&r, "received"), 400, "{r}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lost"),
        "{out:?}"
    );
}

#[test]
fn the_table_is_the_default_output() {
    let broker = Broker::start(&[]);
    let out = broker.bench("fan-in", &["--publishers", "2", "-c", "50"]);
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("mqtt bench fan-in: 2 publishers, 1 subscriber"),
        "{table}"
    );
    assert!(
        table.contains("latency µs") && table.contains("result: ok"),
        "{table}"
    );
}

#[test]
fn flags_that_do_not_fit_are_refused() {
    let bench = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mqtt"))
            .arg("bench")
            .args(args)
            .args(["-p", "1"])
            .timeout(WAIT)
            .output()
            .unwrap()
    };
    let out = bench(&["pairs", "--publishers", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not apply"));
    let out = bench(&["fan-in", "-s", "10"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "payloads smaller than the stamp"
    );
    let out = bench(&["pairs", "-n", "3", "-t", "no/index"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("%i"));
    let out = bench(&["fan-in", "--rate", "10", "--inflight", "5"]);
    assert_eq!(out.status.code(), Some(2), "open and closed loop at once");
}
