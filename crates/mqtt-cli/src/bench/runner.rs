//! The coordinator of the message scenarios: connects and subscribes every subscriber, then
//! connects the publishers, starts the clock and lets them go; once the publishers are done,
//! waits for what is still on its way (while it keeps coming, and for the grace period after
//! the last), ends the subscribers and gathers what they heard.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use mqtt_core::packet::{SubscribeProperties, Subscription, SubscriptionOptions};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::counters::Counters;
use super::dial::{self, Role};
use super::latency::Latency;
use super::plan::Plan;
use super::progress::{Progress, Unit};
use super::publisher::{Publisher, Sent};
use super::report::Figures;
use super::scenario::{Scenario, Topology};
use super::subscriber::{Heard, Subscriber};
use super::verify::{Received, Verdict};
use crate::run;

/// How often the coordinator looks at the counters while it waits.
const POLL: Duration = Duration::from_millis(5);

/// Runs a message scenario (every one but `conn`).
pub async fn run(plan: Arc<Plan>, run_id: u32) -> anyhow::Result<Figures> {
    let topology = Topology::new(
        plan.scenario,
        &plan.topic,
        plan.publishers,
        plan.subscribers,
        plan.clients,
    )?;
    let publishers = topology.publishers.len();
    let subscribers = topology.subscribers();
    let counters = Arc::new(Counters::new(publishers, subscribers));
    let stopping = Arc::new(AtomicBool::new(false));

    // Subscribers first, each subscribed before anyone publishes.
    let mut sub_clients = Vec::with_capacity(subscribers);
    let mut sub_events = Vec::with_capacity(subscribers);
    for group in &topology.groups {
        for _ in 0..group.members {
            let index = sub_clients.len();
            let (client, mut events) = dial::connect(&plan, Role::Subscriber, index).await?;
            let subscription = Subscription {
                filter: group.filter.clone(),
                options: SubscriptionOptions {
                    qos: plan.qos,
                    ..SubscriptionOptions::default()
                },
            };
            let request = client.subscribe(vec![subscription], SubscribeProperties::default());
            let codes = run::while_draining(&mut events, request)
                .await?
                .map_err(|e| run::client_error(&e))
                .with_context(|| format!("subscriber {index}: cannot subscribe"))?;
            if let Some(code) = codes.iter().find(|c| c.is_error()) {
                bail!(
                    "subscriber {index}: the server refused {}: {code}",
                    group.filter
                );
            }
            sub_clients.push(client);
            sub_events.push(events);
        }
    }
    let mut pub_clients = Vec::with_capacity(publishers);
    for index in 0..publishers {
        // The publishers' events are not needed: dropping them never blocks the driver.
        let (client, _events) = dial::connect(&plan, Role::Publisher, index).await?;
        pub_clients.push(client);
    }

    let progress = match plan.scenario {
        Scenario::Sub => Progress::start(
            plan.progress,
            Unit::Received,
            plan.count * subscribers as u64,
            counters.clone(),
        ),
        _ => Progress::start(
            plan.progress,
            Unit::Sent,
            plan.count * publishers as u64,
            counters.clone(),
        ),
    };

    let t0 = Instant::now();
    let deadline = t0 + plan.duration;
    let heard: Vec<JoinHandle<Heard>> = sub_events
        .into_iter()
        .enumerate()
        .map(|(index, events)| {
            let subscriber = Subscriber {
                index,
                events,
                received: Received::new(run_id, publishers),
                t0,
                stopping: stopping.clone(),
                counters: counters.clone(),
            };
            tokio::spawn(subscriber.run())
        })
        .collect();
    let sent: Vec<JoinHandle<Sent>> = pub_clients
        .into_iter()
        .zip(&topology.publishers)
        .enumerate()
        .map(|(index, (client, topic))| {
            let publisher = Publisher {
                index,
                of: publishers,
                client,
                topic: topic.clone(),
                qos: plan.qos,
                size: plan.size,
                count: plan.count,
                load: plan.load,
                run: run_id,
                t0,
                deadline,
                counters: counters.clone(),
            };
            publisher.spawn()
        })
        .collect();

    let mut errors = Vec::new();
    let mut sent_by = vec![0u64; publishers];
    let mut send_ns = 0u64;
    for (index, handle) in sent.into_iter().enumerate() {
        match handle.await {
            Ok(s) => {
                if let Some(slot) = sent_by.get_mut(index) {
                    *slot = s.sent;
                }
                send_ns = send_ns.max(s.last_ns);
                errors.extend(s.error);
            }
            Err(e) => errors.push(format!("publisher {index}: {e}")),
        }
    }

    // Wait for stragglers: until every expected message came, or none came for the grace
    // period (capped at `duration` more), or, in `sub`, until `count` came or time is up.
    let expected: u64 = topology
        .groups
        .iter()
        .map(|g| g.from.iter().filter_map(|&p| sent_by.get(p)).sum::<u64>())
        .sum();
    let cap = match plan.scenario {
        Scenario::Sub => deadline,
        _ => Instant::now() + plan.duration.max(plan.grace),
    };
    let mut heard_so_far = Counters::total(&counters.fresh);
    let mut quiet_since = Instant::now();
    loop {
        let now = Instant::now();
        let fresh = Counters::total(&counters.fresh);
        if fresh != heard_so_far {
            heard_so_far = fresh;
            quiet_since = now;
        }
        let done = match plan.scenario {
            Scenario::Sub => counters.received.iter().all(|s| s.get() >= plan.count),
            _ => fresh >= expected || now - quiet_since >= plan.grace,
        };
        if done || now >= cap {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let elapsed = t0.elapsed();
    progress.finish();

    stopping.store(true, Ordering::Relaxed);
    let mut closing = JoinSet::new();
    for client in sub_clients {
        closing.spawn(async move { client.disconnect().await });
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while closing.join_next().await.is_some() {}
    })
    .await;

    let mut members = Vec::with_capacity(subscribers);
    let mut latency = Latency::new();
    let mut receive_ns = 0u64;
    let mut received = 0u64;
    for (index, handle) in heard.into_iter().enumerate() {
        match tokio::time::timeout(Duration::from_secs(10), handle).await {
            Ok(Ok(h)) => {
                latency.merge(&h.latency);
                receive_ns = receive_ns.max(h.last_ns);
                received += h.received.total;
                errors.extend(h.error);
                members.push(h.received);
            }
            Ok(Err(e)) => {
                errors.push(format!("subscriber {index}: {e}"));
                members.push(Received::new(run_id, publishers));
            }
            Err(_) => {
                errors.push(format!("subscriber {index}: did not end"));
                members.push(Received::new(run_id, publishers));
            }
        }
    }

    let mut verdict = Verdict::default();
    let mut first = 0;
    for group in &topology.groups {
        let end = first + group.members;
        let of_group = members.get(first..end).unwrap_or_default();
        verdict.add(&Verdict::of_group(of_group, &group.from, &sent_by));
        first = end;
    }

    Ok(Figures {
        publishers,
        subscribers,
        elapsed_s: elapsed.as_secs_f64(),
        sent: sent_by.iter().sum(),
        send_s: secs(send_ns),
        received,
        receive_s: secs(receive_ns),
        verdict,
        latency: latency.summary(),
        conn: None,
        errors,
    })
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}
