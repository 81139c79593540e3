//! Client throughput: QoS 1 publishes from the tokio client to a local broker, next to rumqttc
//! doing the same against the same broker in the same run.
//!
//! Each iteration publishes `MESSAGES` QoS 1 messages of 64 bytes, pipelined as each library
//! allows (ours: `try_publish`, yielding to the driver while the request queue is full;
//! rumqttc: `publish().await` into its request channel), and ends when the last PUBACK has come back. Both use an
//! in-flight window of 100 and MQTT 3.1.1, against our tokio broker on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mqtt_core::broker::BrokerConfig;
use mqtt_core::client::{ClientOptions, PublishRequest};
use mqtt_core::topic::TopicName;
use mqtt_core::{ProtocolVersion, QoS};
use mqtt_tokio::broker::Server;
use mqtt_tokio::client::{Client, ConnectOptions, Error};

const MESSAGES: u64 = 2_000;
const INFLIGHT: u16 = 100;
/// Each connection gets its own client id, so no run takes over the session of the last.
static RUN: AtomicU64 = AtomicU64::new(0);

fn payload() -> Vec<u8> {
    vec![0x5a; 64]
}

async fn ours(addr: SocketAddr, iters: u64) -> Duration {
    let mut options = ClientOptions::new(format!(
        "bench-ours-{}",
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    options.version = ProtocolVersion::V311;
    options.max_inflight = INFLIGHT;
    let url = format!("mqtt://{addr}");
    let (client, mut events) = Client::connect(ConnectOptions::new(url, options))
        .await
        .expect("connect");
    let drain = tokio::spawn(async move { while events.recv().await.is_some() {} });
    let topic = TopicName::new("bench/ours").expect("topic");
    let request = || PublishRequest::new(topic.clone(), payload()).with_qos(QoS::AtLeastOnce);
    let start = Instant::now();
    for _ in 0..iters {
        for _ in 1..MESSAGES {
            loop {
                match client.try_publish(request()) {
                    Ok(()) => break,
                    // Back-pressure: let the driver make room, then queue again.
                    Err(Error::QueueFull) => tokio::task::yield_now().await,
                    Err(e) => panic!("try_publish: {e}"),
                }
            }
        }
        // Acknowledgements come in order: the last one completing means all did.
        client.publish(request()).await.expect("publish");
    }
    let elapsed = start.elapsed();
    client.disconnect().await.expect("disconnect");
    drain.abort();
    elapsed
}

async fn rumqttc_peer(addr: SocketAddr, iters: u64) -> Duration {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
    let id = format!("bench-rumqttc-{}", RUN.fetch_add(1, Ordering::Relaxed));
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_inflight(INFLIGHT);
    options.set_keep_alive(Duration::from_secs(60));
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut acked = 0u64;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acked += 1;
                    if acked.is_multiple_of(MESSAGES) && done_tx.send(()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                // The measurement is over (the run aborts this task) or the broker went away.
                Err(_) => return,
            }
        }
    });
    let start = Instant::now();
    for _ in 0..iters {
        for _ in 0..MESSAGES {
            client
                .publish("bench/rumqttc", rumqttc::QoS::AtLeastOnce, false, payload())
                .await
                .expect("publish");
        }
        done_rx.recv().await.expect("acks");
    }
    let elapsed = start.elapsed();
    driver.abort();
    elapsed
}

fn client_publish(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt
        .block_on(
            Server::new(BrokerConfig::default())
                .listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)))
                .start(),
        )
        .expect("broker");
    let addr = server.tcp_addr().expect("tcp address");
    let mut group = c.benchmark_group("client/qos1_publish_64B");
    group.throughput(Throughput::Elements(MESSAGES));
    group.sample_size(10);
    group.bench_function("ours", |b| {
        b.iter_custom(|iters| rt.block_on(ours(addr, iters)))
    });
    group.bench_function("rumqttc", |b| {
        b.iter_custom(|iters| rt.block_on(rumqttc_peer(addr, iters)))
    });
    group.finish();
    rt.block_on(server.shutdown()).expect("shutdown");
}

criterion_group!(benches, client_publish);
criterion_main!(benches);
