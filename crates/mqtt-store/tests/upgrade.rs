//! A file of the previous layout (format 1: deliveries in their table only, no delivery log)
//! opens as it is, is marked as the current format, and goes on.

mod common;

use std::time::Instant;

use mqtt_core::broker::store::{
    StoreOp, StoreTicket, StoredDelivery, StoredMessage, StoredSession,
};
use mqtt_core::packet::PublishProperties;
use mqtt_core::topic::TopicName;
use mqtt_core::{ProtocolVersion, QoS};
use mqtt_store::{Store, StoreOptions};
use redb::{ReadableDatabase, TableDefinition, TableHandle};

use common::*;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

fn put(seq: u64, payload: &'static str) -> StoreOp {
    StoreOp::PutDelivery {
        client_id: "c".into(),
        seq,
        delivery: Box::new(StoredDelivery {
            message: StoredMessage {
                topic: TopicName::new("t").expect("topic"),
                payload: payload.into(),
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: PublishProperties::default(),
                expires_at: None,
                origin: None,
            },
            qos: QoS::AtLeastOnce,
            retain: false,
            sub_ids: Vec::new(),
            inflight: None,
        }),
    }
}

#[test]
fn a_format_1_file_is_upgraded_in_place() {
    let dir = scratch("upgrade");
    let options = StoreOptions::new(&dir);
    let session = StoredSession {
        version: ProtocolVersion::V311,
        expiry_interval: u32::MAX,
        expires_at: None,
        subscriptions: Vec::new(),
        pending_will: None,
    };
    // A log of one byte moves every delivery into the table at the next commit: the file
    // then holds what a format 1 file holds, plus the log.
    let (store, _) = Store::open(options.clone(), Instant::now()).expect("open");
    let (handle, answers) = start(store.with_delivery_log_limit(1));
    let batches = [
        vec![
            StoreOp::PutSession {
                client_id: "c".into(),
                session: Box::new(session),
            },
            put(1, "old"),
        ],
        vec![put(2, "moves 1 out")],
    ];
    for (i, ops) in batches.into_iter().enumerate() {
        handle.submit(StoreTicket(i as u64 + 1), ops);
        wait_durable(&answers, StoreTicket(i as u64 + 1));
    }
    handle.close().expect("close");

    // Back to format 1: no log table, the version says 1.
    let file = dir.join("mqtt.redb");
    {
        let db = redb::Database::open(&file).expect("redb open");
        let txn = db.begin_write().expect("write");
        let log = txn
            .list_tables()
            .expect("tables")
            .find(|t| t.name() == "delivery_log")
            .expect("the log table");
        assert!(txn.delete_table(log).expect("delete the log"));
        txn.open_table(META)
            .expect("meta")
            .insert("format", 1)
            .expect("format 1");
        txn.commit().expect("commit");
    }

    let (store, state) =
        Store::open(options.clone(), Instant::now()).expect("a format 1 file opens");
    let deliveries = &state.sessions["c"].deliveries;
    assert_eq!(
        deliveries.len(),
        1,
        "the delivery of the table, not the dropped log's"
    );
    assert_eq!(deliveries[&1].message.payload, "old");
    let (handle, answers) = start(store);
    handle.submit(StoreTicket(1), vec![put(3, "new")]);
    wait_durable(&answers, StoreTicket(1));
    handle.close().expect("close");

    let (store, state) = Store::open(options, Instant::now()).expect("reopen");
    drop(store);
    let payloads: Vec<_> = state.sessions["c"]
        .deliveries
        .values()
        .map(|d| d.message.payload.clone())
        .collect();
    assert_eq!(payloads, ["old", "new"]);
    let db = redb::Database::open(&file).expect("redb open");
    let txn = db.begin_read().expect("read");
    let format = txn
        .open_table(META)
        .expect("meta")
        .get("format")
        .expect("get");
    assert_eq!(format.map(|v| v.value()), Some(2));
    std::fs::remove_dir_all(&dir).ok();
}
