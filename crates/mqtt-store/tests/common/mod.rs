//! Helpers shared by the integration tests: scratch directories, a fixed clock, answers.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mqtt_core::broker::store::{StoreTicket, StoredState};
use mqtt_store::{Store, StoreAnswer, StoreHandle, StoreOptions};

/// A fresh, empty directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("mqtt-store")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A wall-clock time on a whole millisecond, so that stored times come back exactly.
pub fn wall() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_000)
}

/// Opens with the clock pair (`now`, [`wall`] + (`now` - `origin`)): a process that starts
/// later sees the same wall-clock times as the same instants.
pub fn open_at(options: StoreOptions, origin: Instant, now: Instant) -> (Store, StoredState) {
    Store::open_with_clock(options, now, wall() + (now - origin)).expect("open the store")
}

/// Starts the writer with the answers sent to a channel.
pub fn start(store: Store) -> (StoreHandle, Receiver<StoreAnswer>) {
    let (tx, rx) = mpsc::channel();
    let handle = store.start(move |a| {
        let _ = tx.send(a);
    });
    (handle, rx)
}

/// Waits until `ticket` is answered durable (panics on a failure or after 30 s).
pub fn wait_durable(rx: &Receiver<StoreAnswer>, ticket: StoreTicket) {
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(StoreAnswer::Durable(t)) if t >= ticket => return,
            Ok(StoreAnswer::Durable(_)) => {}
            Ok(other) => panic!("unexpected answer {other:?} waiting for {ticket:?}"),
            Err(e) => panic!("no answer for {ticket:?}: {e}"),
        }
    }
}

/// The state with QoS 2 ids in order (the broker keeps them as a set; the file loads them
/// sorted).
pub fn normalized(mut state: StoredState) -> StoredState {
    for s in state.sessions.values_mut() {
        s.incoming_qos2.sort();
    }
    state
}
