//! Writes that fail (a full disk): the writer answers `Failed` for the batches of the failed
//! transaction, keeps running, and later batches succeed once there is space again; the
//! file still opens with everything that was answered durable.
//!
//! Two ways to make writes really fail:
//! - a 4 MiB tmpfs, when this process may mount one (root on Linux): ENOSPC, then space
//!   again once a filler file is removed;
//! - a file-size limit (`RLIMIT_FSIZE`, set with `prlimit` on a child process that runs
//!   this same binary, with SIGXFSZ ignored so that the write returns EFBIG): this needs
//!   no privilege and runs in CI.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_core::broker::store::{MemoryStore, StoreOp, StoreTicket, StoredMessage};
use mqtt_core::packet::PublishProperties;
use mqtt_core::topic::TopicName;
use mqtt_core::QoS;
use mqtt_store::{Store, StoreAnswer, StoreOptions};

use common::*;

fn retained(topic: &str, payload: Vec<u8>) -> Vec<StoreOp> {
    vec![StoreOp::PutRetained {
        message: Box::new(StoredMessage {
            topic: TopicName::new(topic.to_owned()).unwrap(),
            payload: Bytes::from(payload),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: PublishProperties::default(),
            expires_at: None,
            origin: None,
        }),
    }]
}

fn answer(rx: &Receiver<StoreAnswer>) -> StoreAnswer {
    rx.recv_timeout(Duration::from_secs(60)).expect("an answer")
}

/// A mounted tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Self, String> {
        if !cfg!(target_os = "linux") {
            return Err("not Linux".into());
        }
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Self(dir.to_owned()))
        } else {
            Err(format!(
                "mount -t tmpfs failed (not root, or not allowed here): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` until a write fails.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0x55u8; 16 * 1024];
    while f.write_all(&chunk).and_then(|()| f.sync_data()).is_ok() {}
    path
}

#[test]
fn a_full_tmpfs_fails_the_batch_and_later_batches_succeed_after_space_is_freed() {
    let mount_point = scratch("tmpfs");
    let _tmpfs = match Tmpfs::mount(&mount_point, "4m") {
        Ok(t) => t,
        Err(reason) => {
            println!("SKIPPED: {reason}; the RLIMIT_FSIZE test covers failed writes");
            return;
        }
    };
    let dir = mount_point.join("data");
    let mut reference = MemoryStore::new();
    let (store, _) = Store::open(StoreOptions::new(&dir), Instant::now()).unwrap();
    let (handle, answers) = start(store);

    let first = retained("kept/1", b"before".to_vec());
    reference.apply(first[0].clone());
    handle.submit(StoreTicket(1), first);
    assert_eq!(answer(&answers), StoreAnswer::Durable(StoreTicket(1)));

    let filler = fill(&mount_point);
    handle.submit(StoreTicket(2), retained("lost/2", vec![7; 512 * 1024]));
    match answer(&answers) {
        StoreAnswer::Failed { ticket, error } => {
            assert_eq!(ticket, StoreTicket(2));
            println!("failed as expected: {error}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    // Still full: the writer is alive and answers (a failure again).
    handle.submit(StoreTicket(3), retained("lost/3", vec![8; 512 * 1024]));
    assert!(matches!(
        answer(&answers),
        StoreAnswer::Failed {
            ticket: StoreTicket(3),
            ..
        }
    ));

    std::fs::remove_file(filler).unwrap();
    let fourth = retained("kept/4", b"after".to_vec());
    reference.apply(fourth[0].clone());
    handle.submit(StoreTicket(4), fourth);
    assert_eq!(answer(&answers), StoreAnswer::Durable(StoreTicket(4)));
    let stats = handle.stats();
    assert_eq!(stats.failed_batches, 2);
    handle.close().unwrap();

    let (_, state) = Store::open(StoreOptions::new(&dir), Instant::now()).unwrap();
    assert_eq!(state, reference.state().clone());
}

/// Set in the child that runs under the file-size limit: the data directory.
const CHILD_DIR: &str = "MQTT_STORE_TEST_FSIZE_DIR";

#[test]
fn a_file_size_limit_fails_the_batch_and_the_writer_goes_on() {
    if std::env::var_os(CHILD_DIR).is_some() {
        return; // Inside the child: only `fsize_child` runs.
    }
    if Command::new("prlimit").arg("--version").output().is_err() {
        println!("SKIPPED: prlimit (util-linux) is not installed");
        return;
    }
    let dir = scratch("fsize");
    let (store, _) = Store::open(StoreOptions::new(&dir), Instant::now()).unwrap();
    let file = store.path().to_owned();
    let (handle, answers) = start(store);
    handle.submit(StoreTicket(1), retained("kept/1", b"before".to_vec()));
    wait_durable(&answers, StoreTicket(1));
    handle.close().unwrap();
    let size = std::fs::metadata(&file).unwrap().len();
    // Room for small commits, not for a 4 MiB payload.
    let limit = size + 1024 * 1024;

    let exe = std::env::current_exe().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        // An ignored signal stays ignored across exec: the write fails with EFBIG instead
        // of SIGXFSZ killing the process.
        .arg(r#"trap '' XFSZ; exec prlimit --fsize="$LIMIT" -- "$@""#)
        .arg("sh")
        .arg(&exe)
        .args(["--exact", "fsize_child", "--nocapture", "--test-threads=1"])
        .env("LIMIT", limit.to_string())
        .env(CHILD_DIR, &dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("child (limit {limit} bytes):\n{stdout}");
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("CHILD-DONE"), "the child ran: {stdout}");

    // Without the limit: what was answered durable is there, the failed batch is not.
    let (_, state) = Store::open(StoreOptions::new(&dir), Instant::now()).unwrap();
    assert!(state.retained.contains_key("kept/1"));
    assert!(!state.retained.contains_key("lost/2"));
    // The batch after the failure, small enough for the limit, was written.
    assert!(stdout.contains("ticket 3 durable"), "{stdout}");
    assert!(state.retained.contains_key("kept/3"));
    std::fs::remove_dir_all(&dir).ok();
}

/// Runs only as the child of `a_file_size_limit_fails_the_batch_and_the_writer_goes_on`.
#[test]
fn fsize_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let (store, state) = Store::open(StoreOptions::new(PathBuf::from(dir)), Instant::now())
        .expect("opens under the limit");
    assert!(state.retained.contains_key("kept/1"));
    let (handle, answers) = start(store);
    handle.submit(StoreTicket(2), retained("lost/2", vec![7; 4 * 1024 * 1024]));
    match answer(&answers) {
        StoreAnswer::Failed { ticket, error } => {
            assert_eq!(ticket, StoreTicket(2));
            println!("ticket 2 failed: {error}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    // The writer goes on: a small batch is answered (durable if the file has room).
    handle.submit(StoreTicket(3), retained("kept/3", b"after".to_vec()));
    match answer(&answers) {
        StoreAnswer::Durable(StoreTicket(3)) => println!("ticket 3 durable"),
        StoreAnswer::Failed { ticket, error } => {
            assert_eq!(ticket, StoreTicket(3));
            println!("ticket 3 failed too: {error}");
        }
        other => panic!("unexpected {other:?}"),
    }
    handle.close().expect("close");
    println!("CHILD-DONE");
}
