//! An operator's look into a data directory: sessions with their queued and in-flight
//! messages, and retained topics.
//!
//! ```text
//! cargo run -p mqtt-store --example inspect -- /var/lib/mqtt
//! ```
//!
//! It opens the store as the broker does (checking every page), so it fails with a clear
//! message while a broker has the file open, and writes nothing but what opening an
//! unclosed file repairs.

use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use mqtt_store::{Store, StoreOptions};

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: inspect <data directory>");
        return ExitCode::from(2);
    };
    let options = StoreOptions::new(dir);
    let file = options.dir.join("mqtt.redb");
    if !file.exists() {
        eprintln!("{}: no store file here", file.display());
        return ExitCode::FAILURE;
    }
    let now = Instant::now();
    let (store, state) = match Store::open(options, now) {
        Ok(opened) => opened,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let wall = |t: Instant| {
        let wall = if t >= now {
            SystemTime::now() + (t - now)
        } else {
            SystemTime::now() - (now - t)
        };
        let secs = wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        format!("unix {secs} ({})", relative(t, now))
    };

    println!("{}", store.path().display());
    println!("sessions: {}", state.sessions.len());
    for (client, s) in &state.sessions {
        let inflight = s
            .deliveries
            .values()
            .filter(|d| d.inflight.is_some())
            .count();
        let expiry = match (s.session.expiry_interval, s.session.expires_at) {
            (u32::MAX, _) => "never expires".to_owned(),
            (_, Some(at)) => format!("expires {}", wall(at)),
            (secs, None) => format!("expiry {secs} s after it disconnects"),
        };
        println!(
            "  {client:?} (MQTT {}): {} subscriptions, {} queued, {} in flight, {} QoS 2 ids \
             received, {expiry}",
            s.session.version,
            s.session.subscriptions.len(),
            s.deliveries.len() - inflight,
            inflight,
            s.incoming_qos2.len(),
        );
        for sub in &s.session.subscriptions {
            println!("    {} (QoS {})", sub.filter, sub.options.qos.as_u8());
        }
        if let Some((at, will)) = &s.session.pending_will {
            println!("    will to {} due {}", will.topic.as_str(), wall(*at));
        }
    }
    println!("retained: {}", state.retained.len());
    for (topic, m) in &state.retained {
        println!(
            "  {topic} ({} bytes, QoS {})",
            m.payload.len(),
            m.qos.as_u8()
        );
    }
    ExitCode::SUCCESS
}

fn relative(t: Instant, now: Instant) -> String {
    if t >= now {
        format!("in {} s", (t - now).as_secs())
    } else {
        format!("{} s ago", (now - t).as_secs())
    }
}
