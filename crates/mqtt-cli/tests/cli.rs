//! The `mqtt` binary as a user runs it: bad configurations refused, a broker on port 0 served.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use bytes::BytesMut;
use mqtt_core::codec::{decode, encode, DecodeLimits};
use mqtt_core::packet::{Connect, ConnectProperties};
use mqtt_core::{Packet, ProtocolVersion, ReasonCode};

/// Every wait in these tests ends by this.
const WAIT: Duration = Duration::from_secs(20);

fn mqtt() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mqtt"));
    cmd.env_remove("RUST_LOG").timeout(WAIT);
    cmd
}

/// A file in a fresh temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mqtt-cli-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs `mqtt broker --config` on `text`; it must fail at once, naming the file and `needle`.
fn refused_config(name: &str, text: &str, needle: &str) {
    let file = TempFile::new(name, text);
    let out = mqtt()
        .args(["broker", "-p", "0", "--config"])
        .arg(&file.0)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{name} was accepted: {stderr}");
    assert!(
        stderr.contains(name),
        "{name}: the file is not named: {stderr}"
    );
    assert!(
        stderr.contains(needle),
        "{name}: `{needle}` is not named: {stderr}"
    );
}

#[test]
fn unknown_key_is_refused() {
    refused_config("unknown.toml", "port = 1883\nbogus = 1\n", "bogus");
    refused_config(
        "unknown-limit.toml",
        "[limits]\nmax_inflite = 5\n",
        "max_inflite",
    );
}

#[test]
fn bad_values_are_refused_naming_the_key() {
    refused_config("qos.toml", "[broker]\nmaximum_qos = 3\n", "maximum_qos");
    refused_config(
        "size.toml",
        "[limits]\nmax_packet_size = 0\n",
        "max_packet_size",
    );
    refused_config(
        "type.toml",
        "[limits]\nmax_inflight = \"many\"\n",
        "max_inflight",
    );
    refused_config("tls.toml", "[tls]\nport = 8883\n", "--tls-cert");
}

#[test]
fn unreadable_config_file_is_refused() {
    let out = mqtt()
        .args(["broker", "--config", "/nonexistent/mqtt.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/mqtt.toml"), "{stderr}");
}

/// A running `mqtt broker`, killed on drop.
struct Broker {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Broker {
    fn start(args: &[&str]) -> Self {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mqtt"))
            .arg("broker")
            // Tests keep nothing on disk unless they ask for a --data-dir of their own.
            .args(["--durability", "none"])
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The address after `scheme://` in the first log line that has it.
    fn address(&self, scheme: &str) -> SocketAddr {
        let deadline = Instant::now() + WAIT;
        let marker = format!("listening on {scheme}://");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no `{marker}` line: {e}"));
            if let Some(at) = line.find(&marker) {
                let rest = &line[at + marker.len()..];
                return rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn broker_on_port_0_logs_its_address_and_answers_connect() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/broker.toml");
    let broker = Broker::start(&["-p", "0", "--config", example]);
    let addr = broker.address("mqtt");
    assert_ne!(addr.port(), 0);

    let mut socket = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let connect = Packet::Connect(Box::new(Connect {
        protocol_version: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 30,
        client_id: "cli-test".into(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }));
    let mut out = BytesMut::new();
    encode(&connect, ProtocolVersion::V5, &mut out).unwrap();
    socket.write_all(&out).unwrap();

    let mut rx = BytesMut::new();
    let packet = loop {
        if let Some(p) = decode(&mut rx, ProtocolVersion::V5, &DecodeLimits::default()).unwrap() {
            break p;
        }
        let mut chunk = [0; 256];
        let n = socket.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before CONNACK");
        rx.extend_from_slice(&chunk[..n]);
    };
    let Packet::ConnAck(ack) = packet else {
        panic!("expected CONNACK, got {packet:?}");
    };
    assert_eq!(ack.reason_code, ReasonCode::Success);
    // The example file's limits are announced to 5.0 clients.
    assert_eq!(
        ack.properties.maximum_packet_size.map(|v| v.get()),
        Some(1_048_576)
    );
}
