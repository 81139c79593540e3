//! `cargo xtask durability`: `mqtt broker` killed with SIGKILL under QoS 1 and QoS 2 load
//! towards offline persistent-session subscribers, restarted on the same data directory,
//! round after round. Every message the broker acknowledged (PUBACK; PUBREC for QoS 2) must
//! reach its subscriber, no QoS 2 message twice, and the retained message must be intact.
//!
//! The clients are `mqtt-core`'s codec over blocking sockets: the test needs to know exactly
//! which acknowledgements arrived before the kill, which no client library reports.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use bytes::BytesMut;
use mqtt_core::codec::{self, DecodeLimits};
use mqtt_core::packet::{
    Ack, Connect, Subscribe, SubscribeProperties, Subscription, SubscriptionOptions,
};
use mqtt_core::topic::{TopicFilter, TopicName};
use mqtt_core::{Packet, PacketId, ProtocolVersion, Publish, QoS};

use crate::Args;

/// In-flight window of each publisher.
const WINDOW: usize = 64;
/// A subscriber has everything once nothing more came for this long.
const IDLE: Duration = Duration::from_millis(700);
/// Bounds on one round's phases.
const BROKER_START: Duration = Duration::from_secs(20);
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

pub(crate) fn run(mut args: Args) -> Result<()> {
    let rounds: u32 = args.value("--rounds")?.map_or(Ok(100), |v| v.parse())?;
    let release = !args.flag("--debug");
    args.finish()?;
    let exe = crate::interop::build(release)?;
    let dir = std::env::temp_dir().join(format!("mqtt-durability-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let result = rounds_on(&exe, &dir, rounds);
    let _ = fs::remove_dir_all(&dir);
    let totals = result?;
    println!("\n[durability] {totals}");
    ensure!(
        totals.lost == 0 && totals.duplicated == 0 && totals.retained_bad == 0,
        "acknowledged messages were lost or QoS 2 messages duplicated: {totals}"
    );
    println!("[durability] ok");
    Ok(())
}

#[derive(Debug, Default)]
struct Totals {
    rounds: u32,
    acked_qos1: usize,
    acked_qos2: usize,
    delivered: usize,
    lost: usize,
    duplicated: usize,
    retained_bad: u32,
}

impl std::fmt::Display for Totals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} rounds of SIGKILL: {} QoS 1 and {} QoS 2 messages acknowledged, {} delivered, \
             {} acknowledged lost, {} QoS 2 duplicated, retained wrong in {} rounds",
            self.rounds,
            self.acked_qos1,
            self.acked_qos2,
            self.delivered,
            self.lost,
            self.duplicated,
            self.retained_bad
        )
    }
}

fn rounds_on(exe: &Path, dir: &Path, rounds: u32) -> Result<Totals> {
    let data = dir.join("data");
    let port = crate::interop::free_port()?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut broker = Broker::start(exe, &data, dir, port)?;
    for (id, filter, qos) in [("dur-sub-1", "dur/q1/#", 1), ("dur-sub-2", "dur/q2/#", 2)] {
        let mut s = Conn::connect(addr, id, false)?;
        s.subscribe(filter, qos)?;
        s.disconnect()?;
    }
    let mut totals = Totals::default();
    let mut seen_qos2: BTreeMap<String, usize> = BTreeMap::new();
    let mut rng = seed();
    for round in 1..=rounds {
        let retained = format!("round-{round}");
        let mut r = Conn::connect(addr, "dur-retainer", true)?;
        let mut message = Publish::new(topic("dur/retained"), retained.clone()).qos1(1);
        message.retain = true;
        r.publish_wait(&message)?;
        r.disconnect()?;

        let stop = Arc::new(AtomicBool::new(false));
        let load: Vec<_> = [1u8, 2]
            .into_iter()
            .map(|qos| {
                let stop = stop.clone();
                thread::spawn(move || publish_until_killed(addr, round, qos, &stop))
            })
            .collect();
        rng = next(rng);
        thread::sleep(Duration::from_millis(100 + rng % 500));
        broker.kill()?;
        stop.store(true, Ordering::Relaxed);
        let mut acked = [BTreeSet::new(), BTreeSet::new()];
        for (i, h) in load.into_iter().enumerate() {
            acked[i] = h
                .join()
                .map_err(|_| anyhow::anyhow!("publisher panicked"))??;
        }
        broker = Broker::start(exe, &data, dir, port)
            .with_context(|| format!("round {round}: restart"))?;

        let got1 = drain(addr, "dur-sub-1")?;
        let got2 = drain(addr, "dur-sub-2")?;
        let lost1 = acked[0].iter().filter(|p| !got1.contains_key(*p)).count();
        let lost2 = acked[1].iter().filter(|p| !got2.contains_key(*p)).count();
        for (payload, n) in &got2 {
            *seen_qos2.entry(payload.clone()).or_default() += n;
        }
        let dup = got2.values().filter(|&&n| n > 1).count();
        let retained_now = read_retained(addr)?;
        let retained_ok = retained_now.as_deref() == Some(retained.as_str());
        println!(
            "[durability] round {round}: acknowledged {} + {}, delivered {} + {}, lost {}, \
             duplicated {dup}, retained {}",
            acked[0].len(),
            acked[1].len(),
            got1.len(),
            got2.len(),
            lost1 + lost2,
            if retained_ok { "ok" } else { "WRONG" }
        );
        totals.rounds = round;
        totals.acked_qos1 += acked[0].len();
        totals.acked_qos2 += acked[1].len();
        totals.delivered += got1.values().sum::<usize>() + got2.values().sum::<usize>();
        totals.lost += lost1 + lost2;
        totals.retained_bad += u32::from(!retained_ok);
    }
    totals.duplicated = seen_qos2.values().filter(|&&n| n > 1).count();
    broker.kill()?;
    Ok(totals)
}

/// Publishes `dur/qQOS/ROUND` messages with a window of `WINDOW` until the connection dies;
/// returns the payloads the broker acknowledged (PUBACK, or PUBREC for QoS 2).
fn publish_until_killed(
    addr: SocketAddr,
    round: u32,
    qos: u8,
    stop: &AtomicBool,
) -> Result<BTreeSet<String>> {
    let mut acked = BTreeSet::new();
    let Ok(mut c) = Conn::connect(addr, &format!("dur-pub-{qos}"), true) else {
        return Ok(acked);
    };
    let topic = topic(&format!("dur/q{qos}/{round}"));
    let mut inflight: BTreeMap<u16, String> = BTreeMap::new();
    let mut seq: u32 = 0;
    let mut next_id: u16 = 0;
    while !stop.load(Ordering::Relaxed) {
        while inflight.len() < WINDOW {
            seq += 1;
            next_id = next_id % 60_000 + 1;
            let payload = format!("{round}:{seq}");
            let p = Publish::new(topic.clone(), payload.clone()).with_qos(qos, next_id);
            if c.send(&Packet::Publish(p)).is_err() {
                return Ok(acked);
            }
            inflight.insert(next_id, payload);
        }
        match c.recv(Duration::from_millis(200)) {
            Ok(Some(Packet::PubAck(a))) | Ok(Some(Packet::PubRec(a))) => {
                let rec = qos == 2;
                if let Some(payload) = inflight.remove(&a.packet_id.get()) {
                    if !a.reason_code.is_error() {
                        acked.insert(payload);
                    }
                }
                if rec && c.send(&Packet::PubRel(Ack::new(a.packet_id))).is_err() {
                    return Ok(acked);
                }
            }
            Ok(_) => {}
            Err(_) => return Ok(acked),
        }
    }
    Ok(acked)
}

/// Connects a persistent subscriber and takes everything queued for it, acknowledging as a
/// client must (a QoS 2 PUBLISH whose id it holds is the same message again). Returns how many
/// times each payload arrived as a new message.
fn drain(addr: SocketAddr, id: &str) -> Result<BTreeMap<String, usize>> {
    let mut c = Conn::connect(addr, id, false)?;
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    let mut held: BTreeSet<u16> = BTreeSet::new();
    let deadline = Instant::now() + DRAIN_LIMIT;
    while Instant::now() < deadline {
        let Some(packet) = c.recv(IDLE)? else {
            break;
        };
        match packet {
            Packet::Publish(m) => {
                let new = match (m.qos, m.packet_id) {
                    (QoS::AtLeastOnce, Some(pid)) => {
                        c.send(&Packet::PubAck(Ack::new(pid)))?;
                        true
                    }
                    (QoS::ExactlyOnce, Some(pid)) => {
                        c.send(&Packet::PubRec(Ack::new(pid)))?;
                        held.insert(pid.get())
                    }
                    _ => true,
                };
                if new {
                    let payload = String::from_utf8_lossy(&m.payload).into_owned();
                    *got.entry(payload).or_default() += 1;
                }
            }
            Packet::PubRel(a) => {
                held.remove(&a.packet_id.get());
                c.send(&Packet::PubComp(Ack::new(a.packet_id)))?;
            }
            _ => {}
        }
    }
    c.disconnect()?;
    Ok(got)
}

fn read_retained(addr: SocketAddr) -> Result<Option<String>> {
    let mut c = Conn::connect(addr, "dur-retained-reader", true)?;
    c.subscribe("dur/retained", 0)?;
    let got = match c.recv(Duration::from_secs(2))? {
        Some(Packet::Publish(m)) => Some(String::from_utf8_lossy(&m.payload).into_owned()),
        _ => None,
    };
    c.disconnect()?;
    Ok(got)
}

/// The broker process on its data directory.
struct Broker {
    child: Child,
}

impl Broker {
    fn start(exe: &Path, data: &Path, dir: &Path, port: u16) -> Result<Self> {
        let log = dir.join("broker.log");
        // Queues deep enough that no limit drops a message: only a crash could lose one.
        let conf = dir.join("mqtt.toml");
        fs::write(
            &conf,
            "[limits]\nmax_queued_messages = 100000000\nmax_queued_bytes = 17179869184\n",
        )?;
        let file = fs::File::options().create(true).append(true).open(&log)?;
        let child = Command::new(exe)
            .args(["broker", "--bind", "127.0.0.1", "-p", &port.to_string()])
            .arg("--data-dir")
            .arg(data)
            .args(["--durability", "sync"])
            .arg("--config")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        let mut broker = Self { child };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + BROKER_START;
        loop {
            if let Some(status) = broker.child.try_wait()? {
                let tail = fs::read_to_string(&log).unwrap_or_default();
                bail!("the broker exited at start ({status}):\n{tail}");
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(broker);
            }
            ensure!(
                Instant::now() < deadline,
                "the broker did not start in time"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to flush anything.
    fn kill(&mut self) -> Result<()> {
        self.child.kill().context("SIGKILL")?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One 3.1.1 connection over a blocking socket.
struct Conn {
    socket: TcpStream,
    rx: BytesMut,
    tx: BytesMut,
}

impl Conn {
    fn connect(addr: SocketAddr, id: &str, clean: bool) -> Result<Self> {
        let socket = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        socket.set_nodelay(true)?;
        let mut c = Self {
            socket,
            rx: BytesMut::new(),
            tx: BytesMut::new(),
        };
        let mut connect = Connect::new(ProtocolVersion::V311, id);
        connect.clean_start = clean;
        c.send(&Packet::Connect(Box::new(connect)))?;
        match c.recv(Duration::from_secs(5))? {
            Some(Packet::ConnAck(a)) if !a.reason_code.is_error() => Ok(c),
            other => bail!("{id}: no CONNACK: {other:?}"),
        }
    }

    fn send(&mut self, p: &Packet) -> Result<()> {
        codec::encode(p, ProtocolVersion::V311, &mut self.tx)?;
        self.socket.write_all(&self.tx)?;
        self.tx.clear();
        Ok(())
    }

    /// The next packet, or `None` after `wait` without one.
    fn recv(&mut self, wait: Duration) -> Result<Option<Packet>> {
        let deadline = Instant::now() + wait;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(p) = codec::decode(
                &mut self.rx,
                ProtocolVersion::V311,
                &DecodeLimits::default(),
            )? {
                return Ok(Some(p));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.socket.set_read_timeout(Some(left))?;
            match self.socket.read(&mut chunk) {
                Ok(0) => bail!("connection closed"),
                Ok(n) => self.rx.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(None)
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn subscribe(&mut self, filter: &str, qos: u8) -> Result<()> {
        let options = SubscriptionOptions {
            qos: QoS::from_u8(qos).context("QoS 0 to 2")?,
            ..Default::default()
        };
        let sub = Subscription {
            filter: TopicFilter::new(filter)?,
            options,
        };
        let s = Subscribe {
            packet_id: pid(1),
            subscriptions: vec![sub],
            properties: SubscribeProperties::default(),
        };
        self.send(&Packet::Subscribe(s))?;
        match self.recv(Duration::from_secs(5))? {
            Some(Packet::SubAck(_)) => Ok(()),
            other => bail!("no SUBACK: {other:?}"),
        }
    }

    fn publish_wait(&mut self, p: &Publish) -> Result<()> {
        self.send(&Packet::Publish(p.clone()))?;
        match self.recv(Duration::from_secs(5))? {
            Some(Packet::PubAck(_)) => Ok(()),
            other => bail!("no PUBACK: {other:?}"),
        }
    }

    fn disconnect(mut self) -> Result<()> {
        self.send(&Packet::Disconnect(Box::default()))
    }
}

fn topic(s: &str) -> TopicName {
    TopicName::new(s).unwrap_or_else(|e| panic!("bad test topic {s}: {e}"))
}

fn pid(id: u16) -> PacketId {
    PacketId::new(id).unwrap_or_else(|| panic!("packet id 0"))
}

trait PublishExt {
    fn qos1(self, id: u16) -> Self;
    fn with_qos(self, qos: u8, id: u16) -> Self;
}

impl PublishExt for Publish {
    fn qos1(self, id: u16) -> Self {
        self.with_qos(1, id)
    }

    fn with_qos(mut self, qos: u8, id: u16) -> Self {
        self.qos = if qos == 2 {
            QoS::ExactlyOnce
        } else {
            QoS::AtLeastOnce
        };
        self.packet_id = Some(pid(id));
        self
    }
}

fn seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

fn next(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 31)
}
