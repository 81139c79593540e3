//! `mqtt pub`, `mqtt sub` and `mqtt rr` as a user runs them, against `mqtt broker -p 0`: flags
//! refused before connecting, messages through, outputs, exit statuses.
//!
//! Every wait is bounded by [`WAIT`]; a client that must be ready first (a subscriber) is
//! run with `-d` and waited for on its `subscribed` log line, never on a sleep. Every process
//! is killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assert_cmd::Command;

/// Every wait in these tests ends by this.
const WAIT: Duration = Duration::from_secs(20);

fn mqtt() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mqtt"));
    cmd.env_remove("RUST_LOG").timeout(WAIT);
    cmd
}

/// A finished command: its status, stdout and stderr as text.
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Output {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

fn run(args: &[&str]) -> Output {
    run_with_stdin(args, "")
}

fn run_with_stdin(args: &[&str], stdin: &str) -> Output {
    let out = mqtt()
        .args(args)
        .write_stdin(stdin.as_bytes().to_vec())
        .output()
        .unwrap();
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running `mqtt` process, its output lines read by threads; killed on drop.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Proc {
    fn start(args: &[&str]) -> Self {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mqtt"))
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    /// A client with `-d`, returned once its log says `ready` (e.g. `subscribed`).
    fn ready(args: &[&str], ready: &str) -> Self {
        let mut with_debug = args.to_vec();
        with_debug.push("-d");
        let proc = Self::start(&with_debug);
        wait_line(&proc.stderr, ready);
        proc
    }

    /// Waits for the process to end; its status and the rest of its output.
    fn finish(mut self) -> Output {
        drop(self.stdin.take());
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the process did not end in time");
            std::thread::sleep(Duration::from_millis(10));
        };
        Output {
            status,
            stdout: drain(&self.stdout),
            stderr: drain(&self.stderr),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of `from`, read on a thread.
fn lines(from: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The first line that contains `needle`.
fn wait_line(rx: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no line with `{needle}`: {e}"));
        if line.contains(needle) {
            return line;
        }
    }
}

/// Everything left, until the writer closes (bounded).
fn drain(rx: &mpsc::Receiver<String>) -> String {
    let deadline = Instant::now() + WAIT;
    let mut all = String::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        all.push_str(&line);
        all.push('\n');
    }
    all
}

/// A running `mqtt broker -p 0`, killed on drop.
struct Broker {
    proc: Proc,
    port: String,
}

impl Broker {
    fn start() -> Self {
        Self::with_args(&[])
    }

    fn with_args(extra: &[&str]) -> Self {
        // Nothing on disk: these tests are about the clients.
        let mut args = vec!["broker", "-p", "0", "--durability", "none"];
        args.extend_from_slice(extra);
        let proc = Proc::start(&args);
        let port = port_of(&wait_line(&proc.stderr, "listening on mqtt://"), "mqtt://");
        Self { proc, port }
    }

    /// `-p PORT` and the command's own flags.
    fn args<'a>(&'a self, command: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![command, "-p", &self.port];
        args.extend_from_slice(rest);
        args
    }
}

/// The port after `scheme` in a `listening on` line.
fn port_of(line: &str, scheme: &str) -> String {
    let at = line.find(scheme).unwrap() + scheme.len();
    let addr = line[at..].split_whitespace().next().unwrap();
    addr.rsplit(':').next().unwrap().to_owned()
}

/// A file in a fresh temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("mqtt-cli-client-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str, contents: &[u8]) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `args` must be refused before any connection (port 1 has no broker), with exit status
/// `code` and `needle` in the message.
fn refused(args: &[&str], code: i32, needle: &str) {
    let mut all = args.to_vec();
    all.extend_from_slice(&["-p", "1"]);
    let out = run(&all);
    assert_eq!(out.code(), Some(code), "{args:?}: {}", out.stderr);
    assert!(
        out.stderr.contains(needle),
        "{args:?}: no `{needle}` in {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("cannot connect"),
        "{args:?} connected: {}",
        out.stderr
    );
}

#[test]
fn bad_flags_are_refused_before_connecting() {
    refused(&["pub", "-t", "t", "-m", "x", "-q", "3"], 2, "not a QoS");
    refused(&["sub", "-t", "t", "-q", "-1"], 2, "");
    refused(
        &["pub", "-t", "t", "-l", "-m", "x"],
        2,
        "cannot be used with",
    );
    refused(
        &["pub", "-t", "t", "-f", "a", "-s"],
        2,
        "cannot be used with",
    );
    refused(&["pub", "-t", "t"], 2, "required");
    refused(&["pub", "-m", "x"], 2, "required");
    refused(&["sub", "-C", "1"], 2, "required");
    refused(&["rr", "-t", "t", "-m", "x"], 2, "--response-topic");
    refused(&["pub", "-t", "t", "-m", "x", "-k", "2"], 2, "");
    refused(
        &["pub", "-t", "t", "-m", "x", "-V", "4"],
        2,
        "not an MQTT version",
    );
    refused(&["sub", "-t", "t", "-C", "0"], 2, "not a count");
    refused(
        &["sub", "-t", "t", "-F", "%t", "-v"],
        2,
        "cannot be used with",
    );
    refused(
        &["sub", "-t", "t", "--will-payload", "x"],
        2,
        "--will-topic",
    );
    refused(
        &["pub", "-t", "t", "-m", "x", "-x", "60", "-V", "311"],
        1,
        "mqtt: error: -x",
    );
    refused(
        &[
            "pub",
            "-t",
            "t",
            "-m",
            "x",
            "-D",
            "publish",
            "content-type",
            "a",
            "-V",
            "31",
        ],
        1,
        "mqtt: error: -D sets MQTT 5.0 properties",
    );
    refused(
        &["pub", "-t", "t", "-m", "x", "-D", "publish", "bogus", "1"],
        1,
        "unknown property",
    );
    refused(
        &[
            "pub",
            "-t",
            "t",
            "-m",
            "x",
            "-D",
            "subscribe",
            "subscription-identifier",
            "1",
        ],
        1,
        "sends no SUBSCRIBE",
    );
    refused(&["pub", "-t", "a/#", "-m", "x"], 1, "wildcard");
    refused(&["sub", "-t", "a/#/b"], 1, "mqtt: error: -t");
    refused(
        &["sub", "-t", "t", "-F", "%k"],
        1,
        "invalid format specifier '%k'",
    );
    refused(&["pub", "-t", "t", "-m", "x", "-c"], 1, "needs a client id");
    refused(
        &["pub", "-t", "t", "-f", "/nonexistent/file"],
        1,
        "/nonexistent/file",
    );
}

#[test]
fn help_works_and_h_is_the_host() {
    for command in ["pub", "sub", "rr"] {
        let out = run(&[command, "--help"]);
        assert_eq!(out.code(), Some(0), "{command}: {}", out.stderr);
        assert!(out.stdout.contains("-h, --host <HOST>"), "{}", out.stdout);
        assert!(out.stdout.contains("-D, --property"), "{}", out.stdout);
    }
}

#[test]
fn cannot_connect_exits_1() {
    let out = run(&["pub", "-p", "1", "-t", "t", "-m", "x"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("mqtt: error: cannot connect to mqtt://localhost:1"),
        "{}",
        out.stderr
    );
}

#[test]
fn sub_prints_what_pub_sends() {
    let broker = Broker::start();
    let sub = Proc::ready(
        &broker.args("sub", &["-t", "t", "-C", "2", "-W", "10", "-v"]),
        "subscribed",
    );
    for m in ["hi", "there"] {
        let out = run(&broker.args("pub", &["-t", "t", "-m", m, "-q", "1"]));
        assert_eq!(out.code(), Some(0), "{}", out.stderr);
    }
    let out = sub.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "t hi\nt there\n");
}

#[test]
fn retained_messages_and_format_strings() {
    let broker = Broker::start();
    let out = run(&broker.args("pub", &["-t", "r/1", "-m", "kept", "-r", "-q", "1"]));
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = run(&broker.args(
        "sub",
        &[
            "-t",
            "r/#",
            "-C",
            "1",
            "-W",
            "10",
            "-q",
            "1",
            "-F",
            r"%t|%p|%r|%q|%l|%x|%X|%%\t@@",
        ],
    ));
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "r/1|kept|1|1|4|6b657074|6B657074|%\t@\n");
    // The default output is the payload; -N leaves the newline out.
    let out = run(&broker.args("sub", &["-t", "r/#", "-C", "1", "-W", "10", "-N"]));
    assert_eq!(out.stdout, "kept");
    // -R: retained messages are not printed, so nothing comes within -W.
    let out = run(&broker.args("sub", &["-t", "r/#", "-W", "1", "-R"]));
    assert_eq!(out.code(), Some(27), "{}", out.stderr);
    assert_eq!(out.stdout, "");
    // %j: mosquitto's JSON object.
    let out = run(&broker.args("sub", &["-t", "r/#", "-C", "1", "-W", "10", "-F", "%j"]));
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["topic"], "r/1");
    assert_eq!(v["retain"], 1);
    assert_eq!(v["payload"], "kept");
}

#[test]
fn format_json_is_one_object_per_message() {
    let broker = Broker::start();
    let sub = Proc::ready(
        &broker.args(
            "sub",
            &[
                "-t", "j/#", "-C", "2", "-W", "10", "-V", "5", "--format", "json",
            ],
        ),
        "subscribed",
    );
    run(&broker.args(
        "pub",
        &[
            "-q",
            "1",
            "-t",
            "j/1",
            "-m",
            "text",
            "-D",
            "publish",
            "content-type",
            "text/plain",
        ],
    ));
    let bin = TempDir::new("json");
    let file = bin.file("payload", &[0, 255]);
    run(&broker.args("pub", &["-q", "1", "-t", "j/2", "-f", &file]));
    let out = sub.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert_eq!(lines[0]["topic"], "j/1");
    assert_eq!(lines[0]["payload"], "text");
    assert_eq!(lines[0]["retain"], false);
    assert_eq!(lines[0]["properties"]["content-type"], "text/plain");
    assert_eq!(lines[1]["payload_hex"], "00ff");
}

#[test]
fn v5_properties_from_d_are_seen_by_the_subscriber() {
    let broker = Broker::start();
    let sub = Proc::ready(
        &broker.args(
            "sub",
            &[
                "-t",
                "p",
                "-C",
                "1",
                "-W",
                "10",
                "-D",
                "subscribe",
                "subscription-identifier",
                "7",
                "-F",
                "%P|%C|%E|%R|%D|%F|%S",
            ],
        ),
        "subscribed",
    );
    let out = run(&broker.args(
        "pub",
        &[
            "-t",
            "p",
            "-m",
            "x",
            "-D",
            "publish",
            "user-property",
            "k",
            "v",
            "-D",
            "publish",
            "user-property",
            "k2",
            "v2",
            "-D",
            "publish",
            "content-type",
            "text/plain",
            "-D",
            "publish",
            "message-expiry-interval",
            "60",
            "-D",
            "publish",
            "response-topic",
            "back",
            "-D",
            "publish",
            "correlation-data",
            "c1",
            "-D",
            "publish",
            "payload-format-indicator",
            "1",
        ],
    ));
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = sub.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    // The broker counts the expiry down; it is at most 60 when it arrives.
    let fields: Vec<&str> = out.stdout.trim_end().split('|').collect();
    assert_eq!(fields[..2], ["k:v k2:v2", "text/plain"]);
    let expiry: u32 = fields[2].parse().unwrap();
    assert!((58..=60).contains(&expiry), "{expiry}");
    assert_eq!(fields[3..], ["back", "c1", "1", "7"]);
}

#[test]
fn exit_after_subscribe_keeps_a_persistent_session() {
    let broker = Broker::start();
    let session = ["-i", "keeper", "-c", "-q", "1"];
    let mut first = broker.args("sub", &session);
    first.extend_from_slice(&["-t", "s/#", "-E"]);
    let out = run(&first);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "");
    run(&broker.args("pub", &["-t", "s/1", "-m", "queued", "-q", "1"]));
    let mut again = broker.args("sub", &session);
    again.extend_from_slice(&["-t", "s/#", "-C", "1", "-W", "10", "-v"]);
    let out = run(&again);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "s/1 queued\n");
    // -U ends the subscription: nothing more is queued for the session.
    let mut leave = broker.args("sub", &session);
    leave.extend_from_slice(&["-U", "s/#", "-E"]);
    assert_eq!(run(&leave).code(), Some(0));
    run(&broker.args("pub", &["-t", "s/1", "-m", "lost", "-q", "1"]));
    let mut last = broker.args("sub", &session);
    last.extend_from_slice(&["-t", "other", "-W", "1"]);
    let out = run(&last);
    assert_eq!(out.code(), Some(27), "{}", out.stderr);
    assert_eq!(out.stdout, "");
}

#[test]
fn timeout_exits_27() {
    let broker = Broker::start();
    let started = Instant::now();
    let out = run(&broker.args("sub", &["-t", "quiet", "-W", "0.5"]));
    assert_eq!(out.code(), Some(27), "{}", out.stderr);
    assert!(
        out.stderr.contains("mqtt: error: timed out"),
        "{}",
        out.stderr
    );
    assert!(started.elapsed() < WAIT);
}

#[test]
fn remove_retained_clears_what_it_sees() {
    let broker = Broker::start();
    for (topic, m) in [("a/1", "one"), ("a/2", "two"), ("b/1", "other")] {
        run(&broker.args("pub", &["-t", topic, "-m", m, "-r"]));
    }
    let out = run(&broker.args(
        "sub",
        &[
            "-t",
            "#",
            "-T",
            "b/#",
            "--remove-retained",
            "--retained-only",
            "-W",
            "10",
            "-v",
        ],
    ));
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let mut seen: Vec<&str> = out.stdout.lines().collect();
    seen.sort_unstable();
    assert_eq!(seen, ["a/1 one", "a/2 two"]);
    // Only the topic filtered out by -T keeps its retained message.
    let out = run(&broker.args("sub", &["-t", "#", "-W", "1", "-v"]));
    assert_eq!(out.code(), Some(27), "{}", out.stderr);
    assert_eq!(out.stdout, "b/1 other\n");
}

#[test]
fn the_will_is_published_when_a_client_vanishes() {
    let broker = Broker::start();
    let vanishing = Proc::ready(
        &broker.args(
            "sub",
            &[
                "-t",
                "x",
                "-V",
                "5",
                "--will-topic",
                "wills/1",
                "--will-payload",
                "gone",
                "--will-qos",
                "1",
                "--will-retain",
                "-D",
                "will",
                "content-type",
                "text/plain",
            ],
        ),
        "subscribed",
    );
    drop(vanishing);
    let out = run(&broker.args(
        "sub",
        &[
            "-t", "wills/#", "-C", "1", "-W", "10", "-V", "5", "-F", "%t %p %C",
        ],
    ));
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    // The will may come retained or live, as the broker and this subscriber race.
    assert_eq!(out.stdout, "wills/1 gone text/plain\n");
}

#[test]
fn pub_reads_lines_stdin_files_and_repeats() {
    let broker = Broker::start();
    let sub = Proc::ready(
        &broker.args("sub", &["-t", "in", "-C", "7", "-W", "10", "-F", "[%p]"]),
        "subscribed",
    );
    let out = run_with_stdin(
        &broker.args("pub", &["-t", "in", "-l", "-q", "1"]),
        "a\nb\n\nc",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = run_with_stdin(
        &broker.args("pub", &["-q", "1", "-t", "in", "-s"]),
        "all\nof it",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = run(&broker.args(
        "pub",
        &[
            "-q",
            "1",
            "-t",
            "in",
            "-m",
            "again",
            "--repeat",
            "2",
            "--repeat-delay",
            "0.01",
        ],
    ));
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = sub.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "[a]\n[b]\n[]\n[c]\n[all\nof it]\n[again]\n[again]\n"
    );
}

#[test]
fn refused_connection_exits_with_the_connack_code() {
    let broker = Broker::start();
    // 3.1.1: an empty client id with a persistent session is 0x02, Identifier rejected.
    let out = run(&broker.args("pub", &["-V", "311", "-c", "-i", "", "-t", "t", "-m", "x"]));
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("mqtt: error: cannot connect"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("connection refused"), "{}", out.stderr);
}

#[test]
fn rr_prints_the_response_to_its_request() {
    let broker = Broker::start();
    // A responder: prints each request's response topic and correlation data.
    let responder = Proc::ready(
        &broker.args(
            "sub",
            &[
                "-t", "req", "-C", "1", "-W", "10", "-V", "5", "-F", "%R %D %p",
            ],
        ),
        "subscribed",
    );
    let rr = Proc::start(&broker.args(
        "rr",
        &["-t", "req", "-e", "resp/1", "-m", "ping", "-W", "10", "-v"],
    ));
    let request = wait_line(&responder.stdout, "resp/1");
    let mut words = request.split(' ');
    let (topic, correlation, payload) = (
        words.next().unwrap(),
        words.next().unwrap(),
        words.next().unwrap(),
    );
    assert_eq!((topic, payload), ("resp/1", "ping"));
    assert!(!correlation.is_empty());
    // Another request's response is skipped; ours is printed.
    run(&broker.args(
        "pub",
        &[
            "-q",
            "1",
            "-t",
            topic,
            "-m",
            "not ours",
            "-D",
            "publish",
            "correlation-data",
            "other",
        ],
    ));
    run(&broker.args(
        "pub",
        &[
            "-t",
            topic,
            "-m",
            "pong",
            "-D",
            "publish",
            "correlation-data",
            correlation,
        ],
    ));
    let out = rr.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "resp/1 pong\n");
}

#[test]
fn rr_without_a_response_times_out_with_27() {
    let broker = Broker::start();
    let out = run(&broker.args("rr", &["-t", "nobody", "-e", "resp/x", "-n", "-W", "0.5"]));
    assert_eq!(out.code(), Some(27), "{}", out.stderr);
    assert!(out.stderr.contains("no response"), "{}", out.stderr);
}

#[test]
fn url_and_tls() {
    let dir = TempDir::new("tls");
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_file = dir.file("cert.pem", cert.pem().as_bytes());
    let key_file = dir.file("key.pem", signing_key.serialize_pem().as_bytes());
    let broker = Broker::with_args(&[
        "--tls-port",
        "0",
        "--tls-cert",
        &cert_file,
        "--tls-key",
        &key_file,
    ]);
    let tls_port = port_of(
        &wait_line(&broker.proc.stderr, "listening on mqtts://"),
        "mqtts://",
    );

    let out = run(&[
        "pub",
        "-L",
        &format!("mqtts://localhost:{tls_port}/secure/1"),
        "--cafile",
        &cert_file,
        "-m",
        "s",
        "-r",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = run(&[
        "sub",
        "-L",
        &format!("mqtt://localhost:{}/secure/1", broker.port),
        "-C",
        "1",
        "-W",
        "10",
        "-v",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "secure/1 s\n");
    // Without the CA, the server's certificate is refused; --insecure skips the check.
    let insecure = [
        "sub",
        "-h",
        "localhost",
        "-p",
        &tls_port,
        "-t",
        "secure/1",
        "-C",
        "1",
        "-W",
        "10",
    ];
    let out = run(&insecure);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    let mut with_flag = insecure.to_vec();
    with_flag.push("--insecure");
    let out = run(&with_flag);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "s\n");
}
