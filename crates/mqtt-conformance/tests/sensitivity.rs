//! Every behaviour can fail: run against a broker that accepts every CONNECT and then
//! ignores everything (no SUBACK, no routing, no close, no refusal), each behaviour must
//! report a failure. A behaviour that passed here would be asserting nothing about the
//! broker.
//!
//! All behaviours run at once, each on its own thread; each gives up at its first bounded
//! wait, so the whole test takes about one `WAIT`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::BytesMut;
use mqtt_conformance::adapters;
use mqtt_conformance::behaviours;
use mqtt_conformance::{BrokerAdapter, Failure, RunningBroker};
use mqtt_core::broker::BrokerConfig;
use mqtt_core::codec::{decode, encode, DecodeLimits};
use mqtt_core::packet::ConnAck;
use mqtt_core::{Packet, ProtocolVersion, ReasonCode};

/// A "broker" that answers CONNACK 0x00 to a CONNECT and nothing else, ever.
struct Deaf;

impl BrokerAdapter for Deaf {
    fn name(&self) -> &'static str {
        "deaf"
    }

    fn start(&self, _config: BrokerConfig) -> Result<Box<dyn RunningBroker>, Failure> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| Failure::new(e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Failure::new(e.to_string()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Failure::new(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let accept = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let flag = flag.clone();
                        conns.push(std::thread::spawn(move || serve(s, &flag)));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        Ok(Box::new(DeafRunning {
            addr,
            stop,
            accept: Some(accept),
        }))
    }
}

fn serve(mut s: TcpStream, stop: &AtomicBool) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let mut rx = BytesMut::new();
    let mut chunk = [0u8; 4096];
    let mut connected = false;
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => rx.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return,
        }
        if connected {
            rx.clear();
            continue;
        }
        if let Ok(Some(Packet::Connect(c))) =
            decode(&mut rx, ProtocolVersion::V311, &DecodeLimits::default())
        {
            let ack = ConnAck {
                session_present: false,
                reason_code: ReasonCode::Success,
                properties: Default::default(),
            };
            let mut out = BytesMut::new();
            let _ = encode(
                &Packet::ConnAck(Box::new(ack)),
                c.protocol_version,
                &mut out,
            );
            let _ = s.write_all(&out);
            connected = true;
            rx.clear();
        }
    }
}

struct DeafRunning {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl RunningBroker for DeafRunning {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn stop(self: Box<Self>) -> Result<(), Failure> {
        Ok(())
    }
}

impl Drop for DeafRunning {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
    }
}

#[test]
fn every_behaviour_fails_against_a_broker_that_ignores_everything() {
    let clients = adapters::clients();
    let all = behaviours::all();
    let passed: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = all
            .iter()
            .flat_map(|b| clients.iter().map(move |c| (b, c)))
            .map(|(b, c)| {
                let run = b.run;
                let handle = scope.spawn(move || run(&Deaf, c.as_ref()));
                (format!("{} with the {} client", b.name, c.name()), handle)
            })
            .collect();
        runs.into_iter()
            .filter_map(|(label, h)| match h.join() {
                Ok(Ok(())) => Some(label),
                Ok(Err(_)) | Err(_) => None,
            })
            .collect()
    });
    assert!(
        passed.is_empty(),
        "these behaviours passed against a broker that does nothing:\n  {}",
        passed.join("\n  ")
    );
}
