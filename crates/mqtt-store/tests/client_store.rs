//! A client's store: what the file loads after any sequence of operations equals what
//! `ClientMemoryStore` gives; a damaged file is a clear error.

mod common;

use std::time::Instant;

use bytes::Bytes;
use mqtt_core::client::store::{
    ClientMemoryStore, ClientStoreOp, ClientStoredSession, StoreTicket, StoredFlow, StoredOutgoing,
};
use mqtt_core::packet::{PublishProperties, UserProperty};
use mqtt_core::topic::TopicName;
use mqtt_core::{PacketId, QoS};
use mqtt_store::{ClientStore, ClientStoreOptions, StoreError};
use proptest::prelude::*;

use common::*;

fn outgoing(n: u16, inflight: Option<(u16, bool)>) -> StoredOutgoing {
    let mut properties = PublishProperties::default();
    if n.is_multiple_of(2) {
        properties.user_properties.push(UserProperty {
            name: "k".into(),
            value: format!("v{n}").into(),
        });
        properties.message_expiry_interval = Some(u32::from(n));
    }
    StoredOutgoing {
        topic: TopicName::new(format!("t/{n}")).unwrap(),
        payload: Bytes::from(format!("payload {n}")),
        qos: if n.is_multiple_of(3) {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        },
        retain: n.is_multiple_of(5),
        properties,
        inflight: inflight.map(|(id, released)| {
            (
                PacketId::new(id.max(1)).unwrap(),
                if released {
                    StoredFlow::Released
                } else {
                    StoredFlow::Published
                },
            )
        }),
    }
}

fn op() -> impl Strategy<Value = ClientStoreOp> {
    prop_oneof![
        1 => Just(ClientStoreOp::Clear),
        1 => "[a-z]{0,8}".prop_map(|id| ClientStoreOp::PutSession {
            session: ClientStoredSession { client_id: id.into() }
        }),
        6 => (0u64..8, 0u16..50, proptest::option::of((1u16..20, any::<bool>())))
            .prop_map(|(seq, n, inflight)| ClientStoreOp::PutOutgoing {
                seq,
                message: outgoing(n, inflight),
            }),
        3 => (0u64..8).prop_map(|seq| ClientStoreOp::DeleteOutgoing { seq }),
        3 => (1u16..10).prop_map(|id| ClientStoreOp::PutIncomingQos2 {
            packet_id: PacketId::new(id).unwrap()
        }),
        2 => (1u16..10).prop_map(|id| ClientStoreOp::DeleteIncomingQos2 {
            packet_id: PacketId::new(id).unwrap()
        }),
    ]
}

/// Writes `batches` for `client_id` through the writer thread and waits for the answers.
fn write(options: &ClientStoreOptions, client_id: &str, batches: Vec<Vec<ClientStoreOp>>) {
    let (store, _) = ClientStore::open(options, client_id, Instant::now()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = store.start(move |a| {
        let _ = tx.send(a);
    });
    let n = batches.len() as u64;
    for (i, ops) in batches.into_iter().enumerate() {
        handle.submit(StoreTicket(i as u64 + 1), ops);
    }
    if n > 0 {
        wait_durable(&rx, StoreTicket(n));
    }
    handle.close().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_file_equals_the_memory_store(
        batches in proptest::collection::vec(proptest::collection::vec(op(), 0..6), 1..8),
        other in proptest::collection::vec(op(), 0..6),
    ) {
        let dir = scratch("client-roundtrip");
        let options = ClientStoreOptions::new(&dir);
        let mut memory = ClientMemoryStore::new();
        for op in batches.iter().flatten() {
            memory.apply(op.clone());
        }
        write(&options, "c", batches);
        // Another client id in the same file is kept apart.
        write(&options, "other", vec![other]);
        let (_, state) = ClientStore::open(&options, "c", Instant::now()).unwrap();
        prop_assert_eq!(&state, memory.state());
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[test]
fn a_named_file_is_used_as_is_and_a_restart_loads_it() {
    let dir = scratch("client-file");
    let options = ClientStoreOptions::new(dir.join("session.redb"));
    let ops = vec![
        ClientStoreOp::PutSession {
            session: ClientStoredSession {
                client_id: "assigned-1".into(),
            },
        },
        ClientStoreOp::PutOutgoing {
            seq: 3,
            message: outgoing(4, Some((7, true))),
        },
        ClientStoreOp::PutIncomingQos2 {
            packet_id: PacketId::new(9).unwrap(),
        },
    ];
    write(&options, "", vec![ops.clone()]);
    assert!(dir.join("session.redb").exists());
    let (_, state) = ClientStore::open(&options, "", Instant::now()).unwrap();
    let mut memory = ClientMemoryStore::new();
    ops.into_iter().for_each(|op| memory.apply(op));
    assert_eq!(&state, memory.state());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_damaged_file_is_an_error_naming_the_file() {
    let dir = scratch("client-damaged");
    let options = ClientStoreOptions::new(&dir);
    let batch: Vec<_> = (0..200)
        .map(|i| ClientStoreOp::PutOutgoing {
            seq: i,
            message: outgoing(i as u16, None),
        })
        .collect();
    write(&options, "c", vec![batch]);
    let file = options.file();
    let len = std::fs::metadata(&file).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let err = ClientStore::open(&options, "c", Instant::now()).expect_err("truncated");
    let text = err.to_string();
    assert!(
        matches!(err, StoreError::Damaged { .. } | StoreError::Corrupt { .. }),
        "{err:?}"
    );
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert!(text.contains("move it aside"), "{text}");

    std::fs::write(&file, b"not a database at all, just some text").unwrap();
    let err = ClientStore::open(&options, "c", Instant::now()).expect_err("foreign");
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
