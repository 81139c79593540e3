//! `cargo xtask interop`: the `mqtt` broker against clients nobody here wrote, over real sockets.
//!
//! Builds `mqtt` (debug by default, which `cargo xtask ci` has mostly built already; `--release`
//! for an optimised one), starts `mqtt broker --bind 127.0.0.1 -p PORT` on a free loopback port,
//! waits (bounded) until it accepts connections, then runs:
//! - the Debian `mosquitto-clients` tools in MQTT 3.1.1 and 5.0: QoS 0/1/2 publish -> subscribe,
//!   QoS downgrade, retained set / get / clear (`-r`, `-n`), a will (a `mosquitto_sub
//!   --will-topic` killed with SIGKILL), a persistent session (`-c -i ID -q 1`), a shared
//!   subscription, v5 properties through `-D` read back with `-F`, and `$SYS/broker/version`;
//! - `xtask/interop/paho_check.py` (paho-mqtt 2.x) in both versions, which prints its own
//!   PASS/FAIL lines (they are counted here);
//! - a last check that the broker is still running and exits 0 on SIGTERM.
//!
//! `--against-mosquitto` then runs the same checks against `/usr/sbin/mosquitto` on another free
//! port: a check that fails there is a wrong check, not a broker bug.
//!
//! Last, our own clients `mqtt pub` / `mqtt sub` (same flags as mosquitto's, so mostly the same
//! check functions) against a fresh Mosquitto (whenever it is installed; a SKIP line if not),
//! started with `persistence true`, and a fresh `mqtt broker`, in 3.1.1 and 5.0: QoS 0/1/2,
//! retained set / get / clear (`-r -n`), a will, `-F %t %q %r %p`, a persistent session, v5
//! properties (`-D`, read back with `-F %P %C %E ...`), and a persistent session resumed after
//! the broker restarts (SIGTERM, then start again on the same store: Mosquitto's database, or
//! `mqtt broker --data-dir`).
//!
//! Every subprocess has a deadline and is killed past it; a broker is killed when its checks end,
//! whatever happened. One `PASS`/`FAIL` line per check, then a closing `N passed, M failed` line;
//! any failure makes the command fail. Subscribers run with `-d`, and a check
//! publishes only once the subscriber has printed `received SUBACK`: nothing sleeps a fixed time.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use crate::{cargo, display, root, Args};

/// How long one client tool may run before it is killed.
const TOOL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a subscriber waits for its messages (`mosquitto_sub -W`).
const WAIT_SECS: u64 = 5;
/// `$SYS` topics come every `sys_interval` (10 s by default): wait for more than one period.
const SYS_WAIT_SECS: u64 = 25;
/// The whole paho script (its own waits are 5 s each).
const PAHO_TIMEOUT: Duration = Duration::from_secs(240);
/// How long a broker may take to accept connections, and to stop on SIGTERM.
const BROKER_START: Duration = Duration::from_secs(15);
const BROKER_STOP: Duration = Duration::from_secs(10);
/// The message format of every subscriber: a marker, then topic, QoS, retain and payload.
const FORMAT: &str = "MSG|%t|%q|%r|%p";
/// Messages per shared-subscription check.
const SHARED_MESSAGES: usize = 10;

/// `cargo xtask interop [--release] [--against-mosquitto]`.
pub(crate) fn run(mut args: Args) -> Result<()> {
    let against_mosquitto = args.flag("--against-mosquitto");
    let release = args.flag("--release");
    args.finish()?;
    let started = Instant::now();

    preflight(against_mosquitto)?;
    let mqtt = build(release)?;
    let built = started.elapsed();
    let work = WorkDir::new()?;
    let mut report = Report::default();

    // Every runtime adapter of our broker passes the same checks.
    let mut targets: Vec<Target> = RUNTIMES
        .iter()
        .map(|&runtime| Target::Mqtt(mqtt.clone(), runtime))
        .collect();
    if against_mosquitto {
        targets.push(Target::Mosquitto);
    }
    for target in &targets {
        println!("\n[interop] against {}", target.name());
        let failed_before = report.failed;
        let broker = report.check(&format!("[{}] broker starts", target.name()), || {
            Broker::start(target, &work).map(|b| (b, String::new()))
        });
        let Some(mut broker) = broker else {
            continue;
        };
        println!(
            "[interop] {} listening on 127.0.0.1:{}",
            target.name(),
            broker.port
        );
        run_checks(&mut report, &broker);
        report.check(
            &format!(
                "[{}] broker still running, exits 0 on SIGTERM",
                target.name()
            ),
            || broker.stop().map(|()| (String::new(), String::new())),
        );
        if report.failed > failed_before {
            broker.print_log_tail(40);
        }
    }
    cli_clients(&mut report, &mqtt, &work);
    client_adapters(&mut report, release, &work);
    if report.failed == 0 {
        work.remove();
    } else {
        println!("[interop] logs kept in {}", work.path.display());
    }

    println!(
        "\n[interop] {} checks ({} skipped) in {:.1} s (after {:.1} s of build)",
        report.passed + report.failed,
        report.skipped,
        (started.elapsed() - built).as_secs_f64(),
        built.as_secs_f64()
    );
    println!("{} passed, {} failed", report.passed, report.failed);
    ensure!(
        report.failed == 0,
        "{} interop check(s) failed",
        report.failed
    );
    Ok(())
}

/// Every tool is there, or the run stops before anything starts, naming the package to install.
fn preflight(against_mosquitto: bool) -> Result<()> {
    for tool in ["mosquitto_pub", "mosquitto_sub"] {
        ensure!(
            find_program(tool).is_some(),
            "`{tool}` not found: apt-get install mosquitto-clients"
        );
    }
    ensure!(
        find_program("stdbuf").is_some(),
        "`stdbuf` not found: apt-get install coreutils"
    );
    if against_mosquitto {
        ensure!(
            mosquitto_program().is_some(),
            "`mosquitto` not found (looked in /usr/sbin and PATH): apt-get install mosquitto"
        );
    }
    let probe = "import sys, paho.mqtt as m; sys.exit(int(m.__version__.split('.')[0]) < 2)";
    let ok = Command::new(python())
        .args(["-c", probe])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ensure!(
        ok,
        "{} cannot import paho-mqtt 2.x: python3 -m pip install 'paho-mqtt>=2,<3' \
         (set PYTHON to use another interpreter)",
        python()
    );
    Ok(())
}

/// Builds `mqtt` and returns the path of the executable cargo reports.
pub(crate) fn build(release: bool) -> Result<PathBuf> {
    build_target(release, &["-p", "mqtt-cli", "--bin", "mqtt"], "mqtt")
}

/// Builds what `select` names (`-p PACKAGE --bin|--example NAME`) and returns the path of the
/// executable cargo reports for `name`.
fn build_target(release: bool, select: &[&str], name: &str) -> Result<PathBuf> {
    let mut cmd = cargo(["build", "--message-format=json-render-diagnostics"]);
    cmd.args(select);
    if release {
        cmd.arg("--release");
    }
    let shown = display(&cmd);
    println!("==> {shown}");
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start `{shown}`"))?;
    ensure!(out.status.success(), "`{shown}` failed ({})", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact" && msg["target"]["name"] == name {
            if let Some(exe) = msg["executable"].as_str() {
                println!("==> built {exe}");
                return Ok(PathBuf::from(exe));
            }
        }
    }
    bail!("`{shown}` reported no `{name}` executable")
}

// ---- brokers ----

/// The `mqtt broker --runtime` values; the first is the default.
const RUNTIMES: [&str; 3] = ["tokio", "smol", "blocking"];

/// A broker to check against.
enum Target {
    /// Ours: the `mqtt` executable, with `--runtime`.
    Mqtt(PathBuf, &'static str),
    /// The reference: Debian's Mosquitto, to show the checks are right.
    Mosquitto,
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Self::Mqtt(_, "smol") => "mqtt-smol",
            Self::Mqtt(_, "blocking") => "mqtt-blocking",
            Self::Mqtt(..) => "mqtt",
            Self::Mosquitto => "mosquitto",
        }
    }
}

/// A running broker process on 127.0.0.1:`port`; killed when dropped.
struct Broker {
    name: &'static str,
    port: u16,
    child: Child,
    log: PathBuf,
    /// How it was started, to start it again ([`Broker::restart`]).
    program: PathBuf,
    args: Vec<String>,
    /// A line the broker logs once it listens.
    logged: Option<String>,
}

impl Broker {
    /// Starts `target` on a free port and waits until it accepts connections.
    fn start(target: &Target, work: &WorkDir) -> Result<Self> {
        Self::start_in(target, &work.path, false)
    }

    /// Starts `target` on a free port with its log (and configuration) in `dir`; Mosquitto
    /// with `persist` keeps its sessions in `dir/persist/` (written when it stops).
    fn start_in(target: &Target, dir: &Path, persist: bool) -> Result<Self> {
        let port = free_port()?;
        let log = dir.join(format!("{}.log", target.name()));
        let (program, args) = match target {
            Target::Mqtt(exe, runtime) => {
                let port = port.to_string();
                let args = [
                    "broker",
                    "--bind",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "--runtime",
                    runtime,
                ];
                let mut args = args.map(str::to_owned).to_vec();
                match persist {
                    true => {
                        let store = dir.join("persist").to_string_lossy().into_owned();
                        args.extend(["--data-dir".to_owned(), store]);
                    }
                    false => args.extend(["--durability", "none"].map(str::to_owned)),
                }
                (exe.clone(), args)
            }
            Target::Mosquitto => {
                let conf = dir.join("mosquitto.conf");
                let mut text = format!("listener {port} 127.0.0.1\nallow_anonymous true\n");
                if persist {
                    let store = dir.join("persist");
                    fs::create_dir_all(&store)
                        .with_context(|| format!("cannot create {}", store.display()))?;
                    // Run as root, Mosquitto drops to the `mosquitto` user: let it write here.
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::PermissionsExt as _;
                        fs::set_permissions(&store, fs::Permissions::from_mode(0o777))?;
                    }
                    let _ = writeln!(
                        text,
                        "persistence true\npersistence_location {}/",
                        store.display()
                    );
                }
                fs::write(&conf, text)
                    .with_context(|| format!("cannot write {}", conf.display()))?;
                let exe = mosquitto_program().context("mosquitto not found")?;
                (
                    exe,
                    vec!["-c".to_owned(), conf.to_string_lossy().into_owned()],
                )
            }
        };
        // `mqtt broker` also says where it listens.
        let logged = match target {
            Target::Mqtt(..) => Some(format!("listening on mqtt://127.0.0.1:{port}")),
            Target::Mosquitto => None,
        };
        let child = Self::spawn(&program, &args, &log)?;
        let mut broker = Self {
            name: target.name(),
            port,
            child,
            log,
            program,
            args,
            logged,
        };
        broker.wait_ready_or_log()?;
        Ok(broker)
    }

    /// Starts the broker process, its output appended to `log`.
    fn spawn(program: &Path, args: &[String], log: &Path) -> Result<Child> {
        let mut cmd = Command::new(program);
        cmd.args(args);
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file));
        println!("==> {}", display(&cmd));
        cmd.spawn()
            .with_context(|| format!("could not start `{}`", display(&cmd)))
    }

    fn wait_ready_or_log(&mut self) -> Result<()> {
        let logged = self.logged.clone();
        self.wait_ready(logged.as_deref()).map_err(|e| {
            let tail = log_tail(&self.log, 20);
            e.context(format!("log:\n{tail}"))
        })
    }

    /// Stops the broker with SIGTERM (it must exit 0) and starts it again on the same port.
    fn restart(&mut self) -> Result<()> {
        self.stop().context("stopping")?;
        self.child = Self::spawn(&self.program, &self.args, &self.log)?;
        self.wait_ready_or_log().context("starting again")
    }

    /// Polls (bounded) until the port accepts a TCP connection and the log holds `logged`,
    /// failing early if the process exits.
    fn wait_ready(&mut self, logged: Option<&str>) -> Result<()> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + BROKER_START;
        let mut accepting = false;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited at start ({status})", self.name);
            }
            accepting =
                accepting || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
            let said = logged.is_none_or(|line| {
                fs::read_to_string(&self.log).is_ok_and(|log| log.contains(line))
            });
            if accepting && said {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "{} not ready within {} s (accepting connections on {addr}: {accepting}; \
                 logged {logged:?}: {said})",
                self.name,
                BROKER_START.as_secs()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Checks that the broker is still running, sends SIGTERM and expects exit status 0.
    fn stop(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} had already exited ({status})", self.name);
        }
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .context("could not run `kill -TERM`")?;
        ensure!(sent.success(), "`kill -TERM {pid}` failed ({sent})");
        let status = wait_until(&mut self.child, Instant::now() + BROKER_STOP)?;
        match status {
            Some(s) if s.success() => Ok(()),
            Some(s) => bail!("{} exited with {s} on SIGTERM", self.name),
            None => bail!(
                "{} still running {} s after SIGTERM: killed",
                self.name,
                BROKER_STOP.as_secs()
            ),
        }
    }

    fn print_log_tail(&self, lines: usize) {
        println!("[interop] end of {}:", self.log.display());
        println!("{}", log_tail(&self.log, lines));
    }
}

/// The last `lines` lines of a log file, indented.
fn log_tail(path: &Path, lines: usize) -> String {
    let log = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| format!("  | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A free loopback port: bind port 0, read the port, let the listener go.
pub(crate) fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

pub(crate) fn mosquitto_program() -> Option<PathBuf> {
    let sbin = PathBuf::from("/usr/sbin/mosquitto");
    if sbin.is_file() {
        return Some(sbin);
    }
    find_program("mosquitto")
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The Python interpreter for the paho script: `$PYTHON`, or `python3`.
fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// A scratch directory for logs and configuration, removed when every check passed.
struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    fn new() -> Result<Self> {
        let path = std::env::temp_dir().join(format!("mqtt-interop-{}", std::process::id()));
        fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self { path })
    }

    fn remove(self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---- the checks ----

/// Passed and failed counts; prints one line per check.
#[derive(Default)]
struct Report {
    passed: usize,
    failed: usize,
    skipped: usize,
}

impl Report {
    /// Runs `f`, prints `PASS name (time)[: detail]` or `FAIL name: why`, and returns `f`'s
    /// value on success.
    fn check<T>(&mut self, name: &str, f: impl FnOnce() -> Result<(T, String)>) -> Option<T> {
        let start = Instant::now();
        let result = f();
        let secs = start.elapsed().as_secs_f64();
        match result {
            Ok((value, detail)) => {
                self.passed += 1;
                let detail = if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {detail}")
                };
                println!("PASS {name} ({secs:.2} s){detail}");
                Some(value)
            }
            Err(e) => {
                self.failed += 1;
                println!("FAIL {name} ({secs:.2} s): {e:#}");
                None
            }
        }
    }

    /// Prints `SKIP name: why`; counted apart, neither passed nor failed.
    fn skip(&mut self, name: &str, why: &str) {
        self.skipped += 1;
        println!("SKIP {name}: {why}");
    }

    /// Counts a line printed by another checker (the paho script).
    fn external(&mut self, line: &str) {
        if line.starts_with("PASS ") {
            self.passed += 1;
        } else if line.starts_with("FAIL ") {
            self.failed += 1;
        }
        println!("{line}");
    }
}

/// One mosquitto-clients check: its name and what it does.
type MosqCheck = (&'static str, fn(&Mosq) -> Result<String>);

/// Checks run in both protocol versions.
const BOTH_VERSIONS: &[MosqCheck] = &[
    ("qos0 pub/sub", |m| qos_pub_sub(m, 0, 0)),
    ("qos1 pub/sub", |m| qos_pub_sub(m, 1, 1)),
    ("qos2 pub/sub", |m| qos_pub_sub(m, 2, 2)),
    ("qos2 publish to a qos1 subscription", |m| {
        qos_pub_sub(m, 2, 1)
    }),
    (
        "retained: late subscriber gets it, RETAIN set",
        retained_get,
    ),
    (
        "retained: cleared by an empty retained publish",
        retained_clear,
    ),
    ("will: subscriber killed with SIGKILL", will),
    (
        "persistent session: queued while offline",
        persistent_session,
    ),
    (
        "shared subscription: each message once",
        shared_subscription,
    ),
];

/// Checks of 5.0 only.
const V5_ONLY: &[MosqCheck] = &[("properties through -D, read with -F", properties)];

fn run_checks(report: &mut Report, broker: &Broker) {
    let run = std::process::id();
    for version in [Version::V311, Version::V5] {
        let m = Mosq {
            port: broker.port,
            version,
            run,
            clients: Clients::Mosquitto,
        };
        let extra = if version == Version::V5 { V5_ONLY } else { &[] };
        for (name, check) in BOTH_VERSIONS.iter().chain(extra) {
            let label = format!("[{}] mosquitto {} {name}", broker.name, version.label());
            report.check(&label, || check(&m).map(|detail| ((), detail)));
        }
    }
    // Last: the first `$SYS` publication may be one interval after the broker's first packet.
    for version in [Version::V311, Version::V5] {
        let m = Mosq {
            port: broker.port,
            version,
            run,
            clients: Clients::Mosquitto,
        };
        let label = format!(
            "[{}] mosquitto {} $SYS/broker/version",
            broker.name,
            version.label()
        );
        report.check(&label, || sys_version(&m).map(|detail| ((), detail)));
    }
    paho(report, broker);
}

/// Runs the paho script and counts its PASS/FAIL lines.
fn paho(report: &mut Report, broker: &Broker) {
    let script = root().join("xtask/interop/paho_check.py");
    let args = [
        script.to_string_lossy().into_owned(),
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        broker.port.to_string(),
        "--prefix".into(),
        format!("[{}] paho ", broker.name),
    ];
    let label = format!("[{}] paho script ran to the end", broker.name);
    let finished = Tool::spawn(&python(), &args).and_then(|t| t.finish(PAHO_TIMEOUT));
    let finished = match finished {
        Ok(f) => f,
        Err(e) => {
            report.check(&label, || -> Result<((), String)> { Err(e) });
            return;
        }
    };
    let mut counted = 0;
    for line in &finished.lines {
        if line.starts_with("PASS ") || line.starts_with("FAIL ") {
            counted += 1;
            report.external(line);
        } else {
            println!("  | {line}");
        }
    }
    let fails = finished
        .lines
        .iter()
        .filter(|l| l.starts_with("FAIL "))
        .count();
    // A script that died, hung or printed nothing is a failure of its own.
    let clean = match finished.status {
        Some(s) => s.success() || (s.code() == Some(1) && fails > 0),
        None => false,
    };
    if !clean || counted == 0 {
        report.check(&label, || -> Result<((), String)> {
            bail!(
                "{} after {counted} checks; stderr: {}",
                finished.describe_status(),
                finished.stderr.trim()
            )
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V311,
    V5,
}

impl Version {
    fn label(self) -> &'static str {
        match self {
            Self::V311 => "v3.1.1",
            Self::V5 => "v5",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Self::V311 => "mqttv311",
            Self::V5 => "mqttv5",
        }
    }

    /// `mqtt pub/sub -V`.
    fn cli_flag(self) -> &'static str {
        match self {
            Self::V311 => "311",
            Self::V5 => "5",
        }
    }
}

/// Which publish / subscribe tools a check runs.
#[derive(Debug, Clone)]
enum Clients {
    /// `mosquitto_pub` and `mosquitto_sub`.
    Mosquitto,
    /// Ours: `mqtt pub` and `mqtt sub` of this executable.
    Mqtt(PathBuf),
}

/// The client tools (mosquitto's, or ours with the same flags) pointed at one broker, in one
/// protocol version.
struct Mosq {
    port: u16,
    version: Version,
    /// This run's id, in every topic and client id.
    run: u32,
    clients: Clients,
}

impl Mosq {
    fn topic(&self, name: &str) -> String {
        format!("interop/{}/{}/{name}", self.run, self.version.label())
    }

    fn client_id(&self, name: &str) -> String {
        format!("interop-{}-{}-{name}", self.run, self.version.label())
    }

    fn base(&self) -> Vec<String> {
        let port = self.port.to_string();
        let version = match self.clients {
            Clients::Mosquitto => self.version.flag(),
            Clients::Mqtt(_) => self.version.cli_flag(),
        };
        ["-h", "127.0.0.1", "-p", &port, "-V", version]
            .map(str::to_owned)
            .to_vec()
    }

    /// `mosquitto_pub` (or `mqtt pub`) with `args`; done when it exits 0 (QoS 1/2: after
    /// PUBACK / PUBCOMP).
    fn publish(&self, args: &[&str]) -> Result<()> {
        let (program, mut all) = match &self.clients {
            Clients::Mosquitto => ("mosquitto_pub".to_owned(), Vec::new()),
            Clients::Mqtt(exe) => (exe.to_string_lossy().into_owned(), vec!["pub".to_owned()]),
        };
        all.extend(self.base());
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let done = Tool::spawn(&program, &all)?.finish(TOOL_TIMEOUT)?;
        ensure!(
            done.status.is_some_and(|s| s.success()),
            "{} {}: {}; stderr: {}",
            self.clients.publisher(),
            args.join(" "),
            done.describe_status(),
            done.stderr.trim()
        );
        Ok(())
    }

    /// `mosquitto_sub -d -F format` (or `mqtt sub`) with `args`, returned once it said it has
    /// its SUBACK.
    fn subscribe(&self, format: &str, args: &[&str]) -> Result<Tool> {
        let mut tool = self.start_sub(format, args)?;
        let (what, said): (_, fn(&str) -> bool) = match self.clients {
            Clients::Mosquitto => ("received SUBACK", |l| l.contains("received SUBACK")),
            // `-d` logs `DEBUG mqtt_cli::cmd::subscribe: subscribed filter=...` per SUBACK code.
            Clients::Mqtt(_) => ("a `subscribed` debug line", |l| {
                l.contains(" subscribed filter=")
            }),
        };
        tool.wait_for(what, Instant::now() + TOOL_TIMEOUT, said)?;
        Ok(tool)
    }

    /// `mosquitto_sub -d -F format` with `args`, line-buffered (`stdbuf -oL`: its debug lines
    /// are plain stdio, block-buffered into a pipe). `mqtt sub` flushes each message itself
    /// and logs (`-d`) to stderr, which is sent into stdout here so that it can be waited for.
    fn start_sub(&self, format: &str, args: &[&str]) -> Result<Tool> {
        let mut all = match &self.clients {
            Clients::Mosquitto => ["-oL", "mosquitto_sub"].map(str::to_owned).to_vec(),
            Clients::Mqtt(exe) => vec![
                "-c".to_owned(),
                "exec \"$0\" \"$@\" 2>&1".to_owned(),
                exe.to_string_lossy().into_owned(),
                "sub".to_owned(),
            ],
        };
        all.extend(self.base());
        all.extend(["-d".to_owned(), "-F".to_owned(), format.to_owned()]);
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let program = match self.clients {
            Clients::Mosquitto => "stdbuf",
            Clients::Mqtt(_) => "sh",
        };
        Tool::spawn(program, &all)
    }
}

impl Clients {
    fn publisher(&self) -> &'static str {
        match self {
            Self::Mosquitto => "mosquitto_pub",
            Self::Mqtt(_) => "mqtt pub",
        }
    }
}

/// The `MSG|...` lines of a subscriber's output, without the marker.
fn messages(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("MSG|"))
        .map(str::to_owned)
        .collect()
}

/// Waits for a subscriber started with `-C N` to exit and returns its messages.
fn collect(sub: Tool) -> Result<Vec<String>> {
    let done = sub.finish(TOOL_TIMEOUT)?;
    let got = messages(&done.lines);
    ensure!(
        done.status.is_some_and(|s| s.success()),
        "the subscriber {} with messages {got:?}; stderr: {}; other output: {:?}",
        done.describe_status(),
        done.stderr.trim(),
        done.lines
            .iter()
            .filter(|l| !l.starts_with("MSG|"))
            .collect::<Vec<_>>()
    );
    Ok(got)
}

fn expect_messages(got: &[String], expected: &[String]) -> Result<()> {
    ensure!(got == expected, "received {got:?}, expected {expected:?}");
    Ok(())
}

fn qos_pub_sub(m: &Mosq, publish_qos: u8, subscribe_qos: u8) -> Result<String> {
    let topic = m.topic(&format!("qos/{publish_qos}{subscribe_qos}"));
    let payload = format!("hello at QoS {publish_qos}");
    let (pq, sq) = (publish_qos.to_string(), subscribe_qos.to_string());
    let w = WAIT_SECS.to_string();
    let sub = m.subscribe(FORMAT, &["-q", &sq, "-t", &topic, "-C", "1", "-W", &w])?;
    m.publish(&["-q", &pq, "-t", &topic, "-m", &payload])?;
    let got = collect(sub)?;
    let granted = publish_qos.min(subscribe_qos);
    expect_messages(&got, &[format!("{topic}|{granted}|0|{payload}")])?;
    Ok(String::new())
}

fn retained_get(m: &Mosq) -> Result<String> {
    let topic = m.topic("retain/get");
    let w = WAIT_SECS.to_string();
    m.publish(&["-q", "1", "-r", "-t", &topic, "-m", "kept"])?;
    let sub = m.subscribe(FORMAT, &["-q", "1", "-t", &topic, "-C", "1", "-W", &w])?;
    expect_messages(&collect(sub)?, &[format!("{topic}|1|1|kept")])?;
    Ok(String::new())
}

fn retained_clear(m: &Mosq) -> Result<String> {
    let topic = m.topic("retain/clear");
    let w = WAIT_SECS.to_string();
    m.publish(&["-q", "1", "-r", "-t", &topic, "-m", "to be cleared"])?;
    m.publish(&["-q", "1", "-r", "-t", &topic, "-n"])?;
    let sub = m.subscribe(FORMAT, &["-q", "1", "-t", &topic, "-C", "1", "-W", &w])?;
    // A retained message would come with the subscription, before this one.
    m.publish(&["-q", "1", "-t", &topic, "-m", "live"])?;
    expect_messages(&collect(sub)?, &[format!("{topic}|1|0|live")])?;
    Ok(String::new())
}

fn will(m: &Mosq) -> Result<String> {
    let topic = m.topic("will");
    let w = WAIT_SECS.to_string();
    let watcher = m.subscribe(FORMAT, &["-q", "1", "-t", &topic, "-C", "1", "-W", &w])?;
    let idle = m.topic("will/idle");
    let id = m.client_id("will");
    let mut victim = m.subscribe(
        FORMAT,
        &[
            "-i",
            &id,
            "-t",
            &idle,
            "--will-topic",
            &topic,
            "--will-payload",
            "gone",
            "--will-qos",
            "1",
        ],
    )?;
    // SIGKILL: the kernel closes the socket, no DISCONNECT is sent.
    victim.kill();
    expect_messages(&collect(watcher)?, &[format!("{topic}|1|0|gone")])?;
    Ok(String::new())
}

fn persistent_session(m: &Mosq) -> Result<String> {
    let topic = m.topic("session");
    let id = m.client_id("persistent");
    let w = WAIT_SECS.to_string();
    // -E: subscribe, then disconnect at once; the session stays (-c).
    let first = m.subscribe(FORMAT, &["-c", "-i", &id, "-q", "1", "-t", &topic, "-E"])?;
    collect(first)?;
    let sent: Vec<String> = (1..=3).map(|i| format!("offline {i}")).collect();
    for payload in &sent {
        m.publish(&["-q", "1", "-t", &topic, "-m", payload])?;
    }
    // Queued messages may come before SUBACK, and with them `-C 3` ends the subscriber.
    let back = m.start_sub(
        FORMAT,
        &[
            "-c", "-i", &id, "-q", "1", "-t", &topic, "-C", "3", "-W", &w,
        ],
    )?;
    let expected: Vec<String> = sent.iter().map(|p| format!("{topic}|1|0|{p}")).collect();
    expect_messages(&collect(back)?, &expected)?;
    // Leave no session behind: a clean connection ends it.
    let clean = m.subscribe(FORMAT, &["-i", &id, "-t", &topic, "-E"])?;
    collect(clean)?;
    Ok(String::new())
}

fn shared_subscription(m: &Mosq) -> Result<String> {
    let topic = m.topic("shared/t");
    let end = m.topic("shared/end");
    let share = format!("$share/g/{topic}");
    let mut members = Vec::new();
    for _ in 0..2 {
        // Not shared: both members hear the end marker, published after the messages.
        members.push(m.subscribe(FORMAT, &["-q", "1", "-t", &share, "-t", &end])?);
    }
    for i in 0..SHARED_MESSAGES {
        m.publish(&["-q", "1", "-t", &topic, "-m", &i.to_string()])?;
    }
    m.publish(&["-q", "1", "-t", &end, "-m", "end"])?;
    // A member's messages arrive in the order they were routed: once it has the marker, it
    // has all of its share.
    let marker = format!("MSG|{end}|1|0|end");
    let mut seen = Vec::new();
    let mut counts = Vec::new();
    for mut member in members {
        member.wait_for("the end marker", Instant::now() + TOOL_TIMEOUT, |l| {
            l == marker
        })?;
        let mine: Vec<usize> = messages(&member.seen)
            .iter()
            .filter_map(|msg| msg.strip_prefix(&format!("{topic}|1|0|")))
            .map(|p| p.parse().context("payload"))
            .collect::<Result<_>>()?;
        counts.push(mine.len());
        seen.extend(mine);
        member.kill();
    }
    seen.sort_unstable();
    let expected: Vec<usize> = (0..SHARED_MESSAGES).collect();
    ensure!(
        seen == expected,
        "received {seen:?} (per member {counts:?}), expected each of 0..{SHARED_MESSAGES} once"
    );
    Ok(format!("split {counts:?}"))
}

fn properties(m: &Mosq) -> Result<String> {
    let topic = m.topic("props");
    let reply = m.topic("props/reply");
    let w = WAIT_SECS.to_string();
    let sub = m.subscribe(
        "MSG|%t|%p|%P|%C|%E|%F|%R|%D|%S",
        &[
            "-q",
            "1",
            "-t",
            &topic,
            "-D",
            "subscribe",
            "subscription-identifier",
            "42",
            "-C",
            "1",
            "-W",
            &w,
        ],
    )?;
    m.publish(&[
        "-q",
        "1",
        "-t",
        &topic,
        "-m",
        "hello",
        "-D",
        "publish",
        "user-property",
        "k",
        "v",
        "-D",
        "publish",
        "user-property",
        "k",
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
        "payload-format-indicator",
        "1",
        "-D",
        "publish",
        "response-topic",
        &reply,
        "-D",
        "publish",
        "correlation-data",
        "corr-1",
    ])?;
    let got = collect(sub)?;
    ensure!(got.len() == 1, "received {got:?}, expected one message");
    let fields: Vec<&str> = got[0].split('|').collect();
    let expected = [
        topic.as_str(),
        "hello",
        "k:v k:v2",
        "text/plain",
        "60",
        "1",
        &reply,
        "corr-1",
        "42",
    ];
    ensure!(
        fields.len() == expected.len(),
        "received {:?}, expected {expected:?}",
        got[0]
    );
    let mut wrong = String::new();
    for (i, (g, e)) in fields.iter().zip(expected).enumerate() {
        // The expiry is the time left: a second may have passed.
        let ok = if i == 4 {
            matches!(*g, "58" | "59" | "60")
        } else {
            *g == e
        };
        if !ok {
            let _ = write!(wrong, " field {i}: {g:?}, expected {e:?};");
        }
    }
    ensure!(wrong.is_empty(), "in {:?}:{wrong}", got[0]);
    Ok(String::new())
}

fn sys_version(m: &Mosq) -> Result<String> {
    let w = SYS_WAIT_SECS.to_string();
    let sub = m.subscribe(FORMAT, &["-t", "$SYS/broker/version", "-C", "1", "-W", &w])?;
    let got = collect(sub)?;
    // Retained if it was published before the subscription, live (RETAIN 0) if after.
    let version = got
        .first()
        .and_then(|l| l.strip_prefix("$SYS/broker/version|0|"))
        .and_then(|l| l.split_once('|'))
        .filter(|(_, v)| !v.is_empty());
    match version {
        Some((retain, v)) => Ok(format!("{v:?} (RETAIN {retain})")),
        None => bail!("received {got:?}, expected $SYS/broker/version"),
    }
}

// ---- our clients: `mqtt pub` / `mqtt sub` ----

/// Checks of `mqtt pub` / `mqtt sub` in both protocol versions (most are the mosquitto-clients
/// checks, run with our tools: the flags are the same).
const CLI_BOTH_VERSIONS: &[MosqCheck] = &[
    ("qos0 pub/sub", |m| qos_pub_sub(m, 0, 0)),
    ("qos1 pub/sub", |m| qos_pub_sub(m, 1, 1)),
    ("qos2 pub/sub", |m| qos_pub_sub(m, 2, 2)),
    ("qos2 publish to a qos1 subscription", |m| {
        qos_pub_sub(m, 2, 1)
    }),
    (
        "retained: late subscriber gets it, RETAIN set",
        retained_get,
    ),
    (
        "retained: cleared by an empty retained publish (-r -n)",
        retained_clear,
    ),
    ("will: subscriber killed with SIGKILL", will),
    ("-F %t %q %r %p", format_codes),
    (
        "persistent session: queued while offline",
        persistent_session,
    ),
];

/// The third part: our `mqtt pub` / `mqtt sub` against a real Mosquitto (when installed,
/// whether or not `--against-mosquitto` was given) and against `mqtt broker`. Each broker is
/// started afresh, in its own directory: Mosquitto with persistence, for the restart check.
fn cli_clients(report: &mut Report, mqtt: &Path, work: &WorkDir) {
    let mut targets = Vec::new();
    if mosquitto_program().is_some() {
        targets.push(Target::Mosquitto);
    } else {
        report.skip(
            "[mosquitto] mqtt-cli checks",
            "mosquitto not found (looked in /usr/sbin and PATH): apt-get install mosquitto",
        );
    }
    targets.push(Target::Mqtt(mqtt.to_owned(), RUNTIMES[0]));
    let run = std::process::id();
    for target in &targets {
        println!("\n[interop] mqtt pub / mqtt sub against {}", target.name());
        let dir = work.path.join(format!("cli-{}", target.name()));
        let failed_before = report.failed;
        let label = format!("[{}] broker starts (for mqtt-cli)", target.name());
        let broker = report.check(&label, || {
            fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            Broker::start_in(target, &dir, true).map(|b| (b, String::new()))
        });
        let Some(mut broker) = broker else {
            continue;
        };
        println!(
            "[interop] {} listening on 127.0.0.1:{}",
            target.name(),
            broker.port
        );
        for version in [Version::V311, Version::V5] {
            let m = Mosq {
                port: broker.port,
                version,
                run,
                clients: Clients::Mqtt(mqtt.to_owned()),
            };
            let extra = if version == Version::V5 { V5_ONLY } else { &[] };
            for (name, check) in CLI_BOTH_VERSIONS.iter().chain(extra) {
                let label = format!("[{}] mqtt-cli {} {name}", broker.name, version.label());
                report.check(&label, || check(&m).map(|detail| ((), detail)));
            }
        }
        for version in [Version::V311, Version::V5] {
            let m = Mosq {
                port: broker.port,
                version,
                run,
                clients: Clients::Mqtt(mqtt.to_owned()),
            };
            let label = format!(
                "[{}] mqtt-cli {} persistent session resumed after a broker restart",
                broker.name,
                version.label()
            );
            let store = dir.join("persist");
            report.check(&label, || {
                session_across_restart(&m, &mut broker, &store).map(|d| ((), d))
            });
        }
        report.check(
            &format!(
                "[{}] broker still running, exits 0 on SIGTERM (after mqtt-cli)",
                target.name()
            ),
            || broker.stop().map(|()| (String::new(), String::new())),
        );
        if report.failed > failed_before {
            broker.print_log_tail(40);
        }
    }
}

/// The fourth part: each client adapter's runnable example (connect, subscribe at QoS 1,
/// publish at QoS 1, receive it back, disconnect) against a real Mosquitto.
fn client_adapters(report: &mut Report, release: bool, work: &WorkDir) {
    if mosquitto_program().is_none() {
        report.skip("[mosquitto] client adapter examples", "mosquitto not found");
        return;
    }
    let dir = work.path.join("client-adapters");
    let broker = report.check(
        "[mosquitto] broker starts (for the client adapters)",
        || {
            fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            Broker::start_in(&Target::Mosquitto, &dir, false).map(|b| (b, String::new()))
        },
    );
    let Some(mut broker) = broker else {
        return;
    };
    for runtime in RUNTIMES {
        let label = format!("[mosquitto] the mqtt-{runtime} client example: QoS 1 out and back");
        report.check(&label, || {
            let exe = build_example(
                release,
                &format!("mqtt-{runtime}"),
                &format!("{runtime}_client"),
                &dir,
            )?;
            let topic = format!("interop/{runtime}/{}", std::process::id());
            let url = format!("mqtt://127.0.0.1:{}", broker.port);
            let out = Command::new(&exe)
                .args([url.as_str(), topic.as_str()])
                .output()
                .with_context(|| format!("cannot run {}", exe.display()))?;
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            ensure!(
                out.status.success(),
                "{} exited with {}: {stdout}{}",
                exe.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            let expected = format!("received on {topic}: hello from mqtt-{runtime}");
            ensure!(stdout.contains(&expected), "no {expected:?} in {stdout:?}");
            ensure!(
                stdout.contains("disconnected"),
                "no clean disconnect: {stdout:?}"
            );
            Ok(((), expected))
        });
    }
    report.check(
        "[mosquitto] broker still running, exits 0 on SIGTERM",
        || broker.stop().map(|()| ((), String::new())),
    );
}

/// Builds `example` of `package` and copies it into `dir`.
fn build_example(release: bool, package: &str, example: &str, dir: &Path) -> Result<PathBuf> {
    let built = build_target(release, &["-p", package, "--example", example], example)?;
    let copy = dir.join(format!("{package}-{example}"));
    fs::copy(&built, &copy)
        .with_context(|| format!("cannot copy {} to {}", built.display(), copy.display()))?;
    Ok(copy)
}

/// `-F` with each of `%t %q %r %p` on its own: a retained QoS 2 message (granted 2), then a
/// live QoS 1 one, a payload with spaces and a `%` in it.
fn format_codes(m: &Mosq) -> Result<String> {
    let topic = m.topic("format");
    let w = WAIT_SECS.to_string();
    let kept = "kept at 100% QoS 2";
    m.publish(&["-q", "2", "-r", "-t", &topic, "-m", kept])?;
    let sub = m.subscribe(
        "MSG|topic=%t qos=%q retain=%r payload=%p",
        &["-q", "2", "-t", &topic, "-C", "2", "-W", &w],
    )?;
    m.publish(&["-q", "1", "-t", &topic, "-m", "live one"])?;
    let got = collect(sub)?;
    // Leave no retained message behind.
    m.publish(&["-q", "1", "-r", "-t", &topic, "-n"])?;
    expect_messages(
        &got,
        &[
            format!("topic={topic} qos=2 retain=1 payload={kept}"),
            format!("topic={topic} qos=1 retain=0 payload=live one"),
        ],
    )?;
    Ok(String::new())
}

/// A persistent session (`-c -i ID -q 1`, with a message queued while its client is away)
/// kept across a broker restart: SIGTERM (Mosquitto writes its database), start again, one
/// more message, then the client comes back and gets both.
fn session_across_restart(m: &Mosq, broker: &mut Broker, store: &Path) -> Result<String> {
    let topic = m.topic("restart");
    let id = m.client_id("restart");
    let w = WAIT_SECS.to_string();
    let first = m.subscribe(FORMAT, &["-c", "-i", &id, "-q", "1", "-t", &topic, "-E"])?;
    collect(first)?;
    m.publish(&["-q", "1", "-t", &topic, "-m", "before restart"])?;
    broker.restart()?;
    let db = fs::read_dir(store)
        .with_context(|| format!("cannot read {}", store.display()))?
        .filter_map(Result::ok)
        .map(|e| {
            let len = e.metadata().map_or(0, |md| md.len());
            format!("{} ({len} bytes)", e.file_name().to_string_lossy())
        })
        .collect::<Vec<_>>();
    ensure!(!db.is_empty(), "nothing written in {}", store.display());
    m.publish(&["-q", "1", "-t", &topic, "-m", "after restart"])?;
    // Queued messages may come before the SUBACK, and with them `-C 2` ends the subscriber.
    let back = m.start_sub(
        FORMAT,
        &[
            "-c", "-i", &id, "-q", "1", "-t", &topic, "-C", "2", "-W", &w,
        ],
    )?;
    let expected = ["before restart", "after restart"].map(|p| format!("{topic}|1|0|{p}"));
    expect_messages(&collect(back)?, &expected)?;
    // Leave no session behind: a clean connection ends it.
    let clean = m.subscribe(FORMAT, &["-i", &id, "-t", &topic, "-E"])?;
    collect(clean)?;
    Ok(format!("saved {}", db.join(", ")))
}

// ---- subprocesses ----

/// A running client tool. Its stdout is read line by line on a thread (so it never blocks on a
/// full pipe); it is killed (SIGKILL) when dropped.
struct Tool {
    what: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every stdout line received so far.
    seen: Vec<String>,
    stderr: Option<JoinHandle<String>>,
}

/// How a tool ended.
struct Finished {
    /// `None`: it was killed at its deadline.
    status: Option<ExitStatus>,
    lines: Vec<String>,
    stderr: String,
}

impl Finished {
    fn describe_status(&self) -> String {
        match self.status {
            Some(s) => format!("exited with {s}"),
            None => "killed at its deadline".to_owned(),
        }
    }
}

impl Tool {
    fn spawn(program: &str, args: &[String]) -> Result<Self> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = display(&cmd);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("could not start `{what}`"))?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut stderr = child.stderr.take().context("stderr")?;
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf);
                        if tx
                            .send(line.trim_end_matches(['\r', '\n']).to_owned())
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let mut bytes = Vec::new();
            if stderr.read_to_end(&mut bytes).is_ok() {
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            text
        });
        Ok(Self {
            what,
            child,
            lines,
            seen: Vec::new(),
            stderr: Some(stderr),
        })
    }

    /// Reads lines until one satisfies `pred` (returned), the output ends, or `deadline`.
    fn wait_for(
        &mut self,
        what: &str,
        deadline: Instant,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String> {
        if let Some(line) = self.seen.iter().find(|l| pred(l)) {
            return Ok(line.clone());
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = pred(&line);
                    self.seen.push(line.clone());
                    if hit {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!(
                        "{}: timed out waiting for {what}; output {:?}",
                        self.what,
                        self.seen
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = wait_until(&mut self.child, Instant::now() + TOOL_TIMEOUT)?;
                    let stderr = self.take_stderr();
                    bail!(
                        "{}: ended ({status:?}) before {what}; output {:?}; stderr: {}",
                        self.what,
                        self.seen,
                        stderr.trim()
                    )
                }
            }
        }
    }

    /// Waits for the tool to end on its own within `limit` (then kills it) and returns all of
    /// its output.
    fn finish(mut self, limit: Duration) -> Result<Finished> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    self.kill();
                    let stderr = self.take_stderr();
                    return Ok(Finished {
                        status: None,
                        lines: std::mem::take(&mut self.seen),
                        stderr,
                    });
                }
            }
        }
        let status = wait_until(&mut self.child, deadline)?;
        let stderr = self.take_stderr();
        Ok(Finished {
            status,
            lines: std::mem::take(&mut self.seen),
            stderr,
        })
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    fn take_stderr(&mut self) -> String {
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits for `child` to exit until `deadline`; past it, kills it and returns `None`.
pub(crate) fn wait_until(child: &mut Child, deadline: Instant) -> Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_message_lines() {
        let lines = [
            "Client x received SUBACK",
            "MSG|a/b|1|0|hi",
            "Subscribed (mid: 1): 1",
            "MSG|a/c|0|1|",
        ]
        .map(str::to_owned);
        assert_eq!(messages(&lines), ["a/b|1|0|hi", "a/c|0|1|"]);
    }

    #[test]
    fn a_tool_that_hangs_is_killed_at_its_deadline() {
        let tool = Tool::spawn("sleep", &["30".to_owned()]).unwrap();
        let done = tool.finish(Duration::from_millis(100)).unwrap();
        assert!(done.status.is_none());
    }

    #[test]
    fn free_ports_are_loopback_and_nonzero() {
        assert_ne!(free_port().unwrap(), 0);
    }

    #[test]
    fn reads_lines_and_status() {
        let tool = Tool::spawn(
            "sh",
            &["-c".to_owned(), "echo one; echo two; exit 3".to_owned()],
        )
        .unwrap();
        let done = tool.finish(Duration::from_secs(10)).unwrap();
        assert_eq!(done.lines, ["one", "two"]);
        assert_eq!(done.status.and_then(|s| s.code()), Some(3));
    }
}
