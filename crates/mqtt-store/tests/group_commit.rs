//! Group commit: batches that queue up while a commit runs share the next one; every batch
//! is answered, in order; a lone batch is committed at once (no fixed delay).

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_core::broker::store::{StoreOp, StoreTicket, StoredMessage};
use mqtt_core::packet::PublishProperties;
use mqtt_core::topic::TopicName;
use mqtt_core::QoS;
use mqtt_store::{Durability, StoreAnswer, StoreOptions};

use common::*;

fn retain(n: u64) -> Vec<StoreOp> {
    vec![StoreOp::PutRetained {
        message: Box::new(StoredMessage {
            topic: TopicName::new(format!("load/{}", n % 100)).expect("topic"),
            payload: Bytes::from(format!("payload {n}")),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: PublishProperties::default(),
            expires_at: None,
            origin: None,
        }),
    }]
}

/// Collects answers until `last` is durable: they must increase and never fail.
fn answers_until(rx: &std::sync::mpsc::Receiver<StoreAnswer>, last: StoreTicket) -> usize {
    let mut seen = 0;
    let mut previous = StoreTicket(0);
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(StoreAnswer::Durable(t)) => {
                assert!(t > previous, "answers in order: {t:?} after {previous:?}");
                previous = t;
                seen += 1;
                if t == last {
                    return seen;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn batches_submitted_quickly_share_commits_and_are_all_answered() {
    let dir = scratch("group");
    let (store, _) = mqtt_store::Store::open(StoreOptions::new(&dir), Instant::now()).unwrap();
    let (handle, answers) = start(store);
    let n = 3_000u64;
    let started = Instant::now();
    for i in 1..=n {
        handle.submit(StoreTicket(i), retain(i));
    }
    let answered = answers_until(&answers, StoreTicket(n));
    let elapsed = started.elapsed();
    let stats = handle.stats();
    handle.close().unwrap();
    println!(
        "burst: {n} batches, {} commits ({} answers), {:.3} commits per batch, {elapsed:?}",
        stats.commits,
        answered,
        stats.commits as f64 / n as f64
    );
    assert_eq!(stats.batches, n);
    assert_eq!(stats.failed_batches, 0);
    assert_eq!(stats.commits, stats.syncs, "every Sync commit is synced");
    assert!(stats.commits < n / 2, "{stats:?}");
    assert_eq!(answered as u64, stats.commits, "one answer per commit");

    let (_, state) = mqtt_store::Store::open(StoreOptions::new(&dir), Instant::now()).unwrap();
    assert_eq!(state.retained.len(), 100);
    assert_eq!(state.retained["load/0"].payload, format!("payload {n}"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_paced_stream_still_groups_what_arrives_during_a_sync() {
    let dir = scratch("paced");
    let (store, _) = mqtt_store::Store::open(StoreOptions::new(&dir), Instant::now()).unwrap();
    let (handle, answers) = start(store);
    // One batch every 50 µs for about half a second, as a busy broker would emit them.
    let n = 10_000u64;
    let started = Instant::now();
    for i in 1..=n {
        handle.submit(StoreTicket(i), retain(i));
        let due = started + Duration::from_micros(50 * i);
        while Instant::now() < due {
            std::hint::spin_loop();
        }
    }
    answers_until(&answers, StoreTicket(n));
    let stats = handle.stats();
    handle.close().unwrap();
    println!(
        "paced: {n} batches over {:?}, {} commits, {:.3} commits per batch",
        started.elapsed(),
        stats.commits,
        stats.commits as f64 / n as f64
    );
    assert!(stats.commits < n, "{stats:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_lone_batch_is_committed_without_waiting_for_company() {
    let dir = scratch("lone");
    let (store, _) = mqtt_store::Store::open(StoreOptions::new(&dir), Instant::now()).unwrap();
    let (handle, answers) = start(store);
    for i in 1..=3 {
        handle.submit(StoreTicket(i), retain(i));
        wait_durable(&answers, StoreTicket(i));
        assert_eq!(handle.stats().commits, i, "one commit per lone batch");
    }
    handle.close().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn periodic_answers_on_receipt_and_syncs_by_the_interval_and_at_close() {
    let dir = scratch("periodic");
    let options = StoreOptions {
        dir: dir.clone(),
        durability: Durability::Periodic {
            interval: Duration::from_millis(50),
        },
    };
    let (store, _) = mqtt_store::Store::open(options.clone(), Instant::now()).unwrap();
    let (handle, answers) = start(store);
    handle.submit(StoreTicket(1), retain(1));
    wait_durable(&answers, StoreTicket(1));
    // Synced by the interval without another batch.
    let deadline = Instant::now() + Duration::from_secs(10);
    while handle.stats().syncs == 0 {
        assert!(Instant::now() < deadline, "no sync within the interval");
        std::thread::sleep(Duration::from_millis(5));
    }
    let syncs = handle.stats().syncs;
    handle.submit(StoreTicket(2), retain(2));
    wait_durable(&answers, StoreTicket(2));
    handle.close().unwrap();
    let (_, state) = mqtt_store::Store::open(options, Instant::now()).unwrap();
    assert_eq!(state.retained["load/2"].payload, "payload 2");
    assert!(syncs >= 1);
    std::fs::remove_dir_all(&dir).ok();
}
