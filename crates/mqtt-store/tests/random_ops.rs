//! Random sequences of store operations, applied to a `MemoryStore` and to the file: after a
//! reopen the file gives back exactly the `MemoryStore`'s state, in both durability modes.

mod common;

use std::num::{NonZeroU16, NonZeroU32};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_core::broker::store::{
    MemoryStore, StoreOp, StoreTicket, StoredDelivery, StoredFlow, StoredMessage, StoredSession,
    StoredSubscription,
};
use mqtt_core::packet::{
    PublishProperties, RetainHandling, SubscriptionOptions, UserProperty, Will, WillProperties,
};
use mqtt_core::topic::TopicName;
use mqtt_core::{PacketId, ProtocolVersion, QoS};
use mqtt_store::{Durability, StoreOptions};
use proptest::prelude::*;

use common::*;

fn origin() -> Instant {
    use std::sync::OnceLock;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(|| Instant::now() + Duration::from_secs(60))
}

/// An instant on a whole millisecond from the origin, up to a second before it.
fn instant() -> impl Strategy<Value = Instant> {
    (-1_000i64..10_000_000).prop_map(|ms| {
        if ms >= 0 {
            origin() + Duration::from_millis(ms as u64)
        } else {
            origin() - Duration::from_millis(ms.unsigned_abs())
        }
    })
}

fn client() -> impl Strategy<Value = bytestring::ByteString> {
    prop_oneof![Just("a"), Just("c/é"), Just("")].prop_map(Into::into)
}

fn topic() -> impl Strategy<Value = TopicName> {
    prop_oneof![Just("t/1"), Just("t/2"), Just("$SYS/x"), Just("ü/ñ")]
        .prop_map(|t| TopicName::new(t).expect("valid"))
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn text() -> impl Strategy<Value = bytestring::ByteString> {
    "[a-zé]{0,6}".prop_map(Into::into)
}

fn bytes() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from)
}

fn user_properties() -> impl Strategy<Value = Vec<UserProperty>> {
    proptest::collection::vec(
        (text(), text()).prop_map(|(n, v)| UserProperty::new(n, v)),
        0..3,
    )
}

fn message() -> impl Strategy<Value = StoredMessage> {
    let properties = (
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(1u16..),
        proptest::option::of(topic()),
        proptest::option::of(bytes()),
        user_properties(),
        proptest::collection::vec(1u32..268_435_456, 0..3),
        proptest::option::of(text()),
    )
        .prop_map(|(pfi, mei, alias, rt, cd, up, ids, ct)| PublishProperties {
            payload_format_indicator: pfi,
            message_expiry_interval: mei,
            topic_alias: alias.and_then(NonZeroU16::new),
            response_topic: rt,
            correlation_data: cd,
            user_properties: up,
            subscription_identifiers: ids.into_iter().filter_map(NonZeroU32::new).collect(),
            content_type: ct,
        });
    (
        topic(),
        bytes(),
        qos(),
        any::<bool>(),
        properties,
        proptest::option::of(instant()),
        proptest::option::of(text()),
    )
        .prop_map(
            |(topic, payload, qos, retain, properties, expires_at, origin)| StoredMessage {
                topic,
                payload,
                qos,
                retain,
                properties,
                expires_at,
                origin,
            },
        )
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    (1u16..5).prop_map(|n| PacketId::new(n).expect("non-zero"))
}

fn inflight() -> impl Strategy<Value = Option<(PacketId, StoredFlow)>> {
    let flow = prop_oneof![Just(StoredFlow::Published), Just(StoredFlow::Released)];
    proptest::option::of((packet_id(), flow))
}

fn delivery() -> BoxedStrategy<StoredDelivery> {
    (
        message(),
        qos(),
        any::<bool>(),
        proptest::collection::vec(1u32..1000, 0..3),
        inflight(),
    )
        .prop_map(|(message, qos, retain, ids, inflight)| StoredDelivery {
            message,
            qos,
            retain,
            sub_ids: ids.into_iter().filter_map(NonZeroU32::new).collect(),
            inflight,
        })
        .boxed()
}

fn session() -> impl Strategy<Value = StoredSession> {
    let version = prop_oneof![
        Just(ProtocolVersion::V31),
        Just(ProtocolVersion::V311),
        Just(ProtocolVersion::V5)
    ];
    let subscription = (
        "[a-z/+#]{1,8}",
        qos(),
        any::<bool>(),
        any::<bool>(),
        0u8..3,
        proptest::option::of(1u32..1000),
    )
        .prop_map(|(filter, qos, nl, rap, rh, id)| StoredSubscription {
            filter: filter.into(),
            options: SubscriptionOptions {
                qos,
                no_local: nl,
                retain_as_published: rap,
                retain_handling: RetainHandling::from_u8(rh).expect("0..3"),
            },
            id: id.and_then(NonZeroU32::new),
        });
    let will = (
        topic(),
        bytes(),
        qos(),
        any::<bool>(),
        proptest::option::of(any::<u32>()),
        proptest::option::of(text()),
        user_properties(),
    )
        .prop_map(|(topic, payload, qos, retain, delay, ct, up)| Will {
            topic,
            payload,
            qos,
            retain,
            properties: WillProperties {
                will_delay_interval: delay,
                content_type: ct,
                user_properties: up,
                ..WillProperties::default()
            },
        });
    (
        version,
        any::<u32>(),
        proptest::option::of(instant()),
        proptest::collection::vec(subscription, 0..3),
        proptest::option::of((instant(), will)),
    )
        .prop_map(
            |(version, expiry_interval, expires_at, subscriptions, pending_will)| StoredSession {
                version,
                expiry_interval,
                expires_at,
                subscriptions,
                pending_will,
            },
        )
}

fn op() -> BoxedStrategy<StoreOp> {
    let seq = 0u64..6;
    prop_oneof![
        3 => (client(), session())
            .prop_map(|(client_id, session)| StoreOp::PutSession { client_id, session: Box::new(session) }),
        2 => client().prop_map(|client_id| StoreOp::DeleteSession { client_id }),
        4 => (client(), seq.clone(), delivery()).prop_map(|(client_id, seq, delivery)| {
            StoreOp::PutDelivery { client_id, seq, delivery: Box::new(delivery) }
        }),
        2 => (client(), seq.clone()).prop_map(|(client_id, seq)| StoreOp::DeleteDelivery {
            client_id,
            seq
        }),
        2 => (client(), seq, inflight()).prop_map(|(client_id, seq, inflight)| {
            StoreOp::SetFlow { client_id, seq, inflight }
        }),
        2 => (client(), packet_id()).prop_map(|(client_id, packet_id)| {
            StoreOp::PutIncomingQos2 { client_id, packet_id }
        }),
        1 => (client(), packet_id()).prop_map(|(client_id, packet_id)| {
            StoreOp::DeleteIncomingQos2 { client_id, packet_id }
        }),
        2 => message().prop_map(|message| StoreOp::PutRetained { message: Box::new(message) }),
        1 => topic().prop_map(|topic| StoreOp::DeleteRetained { topic }),
    ]
    .boxed()
}

/// Batches of operations.
fn batches() -> impl Strategy<Value = Vec<Vec<StoreOp>>> {
    proptest::collection::vec(proptest::collection::vec(op(), 0..8), 1..16)
}

fn check(batches: Vec<Vec<StoreOp>>, durability: Durability) -> Result<(), TestCaseError> {
    static CASE: AtomicU64 = AtomicU64::new(0);
    let dir = scratch(&format!("random-{}", CASE.fetch_add(1, Ordering::Relaxed)));
    let options = StoreOptions {
        dir: dir.clone(),
        durability,
    };
    let mut reference = MemoryStore::new();
    let (store, _) = open_at(options.clone(), origin(), origin());
    let (handle, answers) = start(store);
    let mut ticket = StoreTicket(0);
    for ops in batches {
        for op in &ops {
            reference.apply(op.clone());
        }
        ticket = StoreTicket(ticket.0 + 1);
        handle.submit(ticket, ops);
    }
    wait_durable(&answers, ticket);
    handle.close().expect("close");
    reloads_as(options, &reference)
}

/// Reopened by a process whose clock started 3 s later, the file gives back `reference`'s
/// state. Removes the directory.
fn reloads_as(options: StoreOptions, reference: &MemoryStore) -> Result<(), TestCaseError> {
    let dir = options.dir.clone();
    let (_, loaded) = open_at(options, origin(), origin() + Duration::from_secs(3));
    std::fs::remove_dir_all(&dir).ok();
    prop_assert_eq!(normalized(loaded), normalized(reference.state().clone()));
    Ok(())
}

/// One commit per batch, a delivery log of `limit` bytes (so that entries are deleted and
/// deliveries move into the table all the time), and a restart before batch `restart_at`:
/// the restarted writer reads the log's index back from the file and goes on.
fn check_log(
    batches: Vec<Vec<StoreOp>>,
    limit: usize,
    restart_at: usize,
) -> Result<(), TestCaseError> {
    static CASE: AtomicU64 = AtomicU64::new(0);
    let dir = scratch(&format!("log-{}", CASE.fetch_add(1, Ordering::Relaxed)));
    let options = StoreOptions::new(&dir);
    let mut reference = MemoryStore::new();
    let (store, _) = open_at(options.clone(), origin(), origin());
    let (mut handle, mut answers) = start(store.with_delivery_log_limit(limit));
    for (i, ops) in batches.into_iter().enumerate() {
        if i == restart_at {
            handle.close().expect("close");
            let (store, loaded) = open_at(options.clone(), origin(), origin());
            prop_assert_eq!(normalized(loaded), normalized(reference.state().clone()));
            (handle, answers) = start(store.with_delivery_log_limit(limit));
        }
        for op in &ops {
            reference.apply(op.clone());
        }
        let ticket = StoreTicket(i as u64 + 1);
        handle.submit(ticket, ops);
        wait_durable(&answers, ticket);
    }
    handle.close().expect("close");
    reloads_as(options, &reference)
}

/// Operations on the deliveries of one session mostly, as a broker makes them.
fn delivery_op() -> BoxedStrategy<StoreOp> {
    let seq = 0u64..10;
    prop_oneof![
        1 => session().prop_map(|session| StoreOp::PutSession { client_id: "a".into(), session: Box::new(session) }),
        1 => Just(StoreOp::DeleteSession { client_id: "a".into() }),
        8 => (seq.clone(), delivery()).prop_map(|(seq, delivery)| {
            StoreOp::PutDelivery { client_id: "a".into(), seq, delivery: Box::new(delivery) }
        }),
        6 => seq.clone().prop_map(|seq| StoreOp::DeleteDelivery { client_id: "a".into(), seq }),
        6 => (seq, inflight()).prop_map(|(seq, inflight)| {
            StoreOp::SetFlow { client_id: "a".into(), seq, inflight }
        }),
        2 => op(),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_delivery_log_reloads_as_the_memory_store_at_any_limit_and_restart(
        batches in proptest::collection::vec(proptest::collection::vec(delivery_op(), 0..6), 1..24),
        limit in 1usize..3000,
        restart_at in 0usize..24,
    ) {
        check_log(batches, limit, restart_at)?;
    }

    #[test]
    fn random_operations_reload_as_the_memory_store_applies_them(batches in batches()) {
        check(batches, Durability::Sync)?;
    }

    #[test]
    fn random_operations_reload_the_same_with_periodic_sync(batches in batches()) {
        check(batches, Durability::Periodic { interval: Duration::from_millis(5) })?;
    }
}
