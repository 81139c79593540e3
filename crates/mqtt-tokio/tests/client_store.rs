//! A tokio client with a durable session store survives a process "crash": QoS 1/2 messages
//! accepted by the first process, stuck at a relay that is then cut, are sent by a second
//! process started from the same store directory, and arrive once.

use std::future::Future;
use std::time::Duration;

use mqtt_core::broker::BrokerConfig;
use mqtt_core::client::{ClientOptions, PublishRequest};
use mqtt_core::packet::{SubscribeProperties, Subscription, SubscriptionOptions};
use mqtt_core::topic::{TopicFilter, TopicName};
use mqtt_core::{ProtocolVersion, QoS};
use mqtt_store::ClientStoreOptions;
use mqtt_tokio::broker::Server;
use mqtt_tokio::client::{Client, ConnectOptions, Error, Event, Events};
use tokio::time::timeout;

use support::Proxy;

mod support;

const WAIT: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

fn options(url: &str, id: &str, store: Option<ClientStoreOptions>) -> ConnectOptions {
    let mut client = ClientOptions::new(id);
    client.version = ProtocolVersion::V5;
    client.connect_properties.session_expiry_interval = Some(300);
    client.backoff_initial = Duration::from_millis(10);
    client.backoff_jitter = 0.0;
    let mut o = ConnectOptions::new(url, client);
    o.store = store;
    // A lost link ends the client: the test plays the process that died.
    o.reconnect = false;
    o
}

/// Connects, retrying while the last process's writer still holds the store file.
async fn connect(options: ConnectOptions) -> (Client, Events, bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match within("connect", Client::connect(options.clone())).await {
            Ok((client, mut events)) => match within("connected", events.recv()).await {
                Some(Event::Connected { session_present }) => {
                    return (client, events, session_present)
                }
                other => panic!("expected Connected, got {other:?}"),
            },
            Err(Error::Store(e)) if tokio::time::Instant::now() < deadline => {
                eprintln!("store not yet free: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("connect: {e}"),
        }
    }
}

fn msg(payload: &str, qos: QoS) -> PublishRequest {
    PublishRequest::new(TopicName::new("s/t").unwrap(), payload.to_owned()).with_qos(qos)
}

async fn payload(events: &mut Events) -> String {
    match within("message", events.recv()).await {
        Some(Event::Message { publish, .. }) => {
            String::from_utf8_lossy(&publish.payload).into_owned()
        }
        other => panic!("expected a message, got {other:?}"),
    }
}

#[tokio::test]
async fn a_restarted_client_sends_what_its_store_kept_once() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("client-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server = Server::new(BrokerConfig::default()).listen_tcp(([127, 0, 0, 1], 0).into());
    let server = within("start", server.start()).await.unwrap();
    let addr = server.tcp_addr().unwrap();
    let proxy = Proxy::start(addr).await;

    let (subscriber, mut inbox, _) = connect(options(&format!("mqtt://{addr}"), "sub", None)).await;
    let sub = Subscription {
        filter: TopicFilter::new("s/#").unwrap(),
        options: SubscriptionOptions {
            qos: QoS::ExactlyOnce,
            ..Default::default()
        },
    };
    within(
        "subscribe",
        subscriber.subscribe(vec![sub], SubscribeProperties::default()),
    )
    .await
    .unwrap();

    // The first process: its PUBLISHes (each sent once its record is durable) reach the
    // relay, which holds them; then the relay is cut and the process is gone.
    let store = Some(ClientStoreOptions::new(&dir));
    let relay = format!("mqtt://{}", proxy.addr);
    let (first, events, present) = connect(options(&relay, "pub", store.clone())).await;
    assert!(!present);
    proxy.hold_up(true);
    let before = proxy.bytes_from_clients();
    let pending: Vec<_> = [
        ("one", QoS::AtLeastOnce),
        ("two", QoS::ExactlyOnce),
        ("three", QoS::ExactlyOnce),
    ]
    .into_iter()
    .map(|(p, qos)| {
        let first = first.clone();
        tokio::spawn(async move { first.publish(msg(p, qos)).await })
    })
    .collect();
    // Three PUBLISHes: 13, 13 and 15 bytes.
    proxy.wait_from_clients(before + 38).await;
    proxy.kill().await;
    proxy.hold_up(false);
    for p in pending {
        let result = within("first process ends", p).await.unwrap();
        assert!(matches!(result, Err(Error::Closed)), "{result:?}");
    }
    drop((first, events));

    // The second process: same store, resumes the session and resends with DUP.
    let (second, mut events, present) = connect(options(&relay, "pub", store)).await;
    assert!(present, "the server kept the session");
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(payload(&mut inbox).await);
    }
    got.sort();
    assert_eq!(got, vec!["one", "three", "two"]);
    // Nothing more of them: the next message is one published after.
    within("publish", second.publish(msg("end", QoS::AtLeastOnce)))
        .await
        .unwrap();
    assert_eq!(payload(&mut inbox).await, "end");
    assert!(events.try_recv().is_err(), "no event but Connected");
    within("disconnect", second.disconnect()).await.unwrap();
    within("disconnect", subscriber.disconnect()).await.unwrap();
    within("shutdown", server.shutdown()).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
