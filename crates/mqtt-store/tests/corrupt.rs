//! A damaged file is a clear error from `open` that names the file and says what to do:
//! never a panic, never a silent start from empty.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use mqtt_core::broker::store::{StoreOp, StoreTicket, StoredMessage};
use mqtt_core::packet::PublishProperties;
use mqtt_core::topic::TopicName;
use mqtt_core::QoS;
use mqtt_store::{Store, StoreError, StoreOptions};

use common::*;

const MARKER: &[u8] = b"<<mqtt-store-test-payload>>";

/// A store holding 200 retained messages whose payloads carry [`MARKER`].
fn filled(name: &str) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let (store, _) = Store::open(StoreOptions::new(&dir), Instant::now()).unwrap();
    let file = store.path().to_owned();
    let (handle, answers) = start(store);
    for i in 1..=200u64 {
        let mut payload = MARKER.repeat(8);
        payload.extend_from_slice(format!("{i}").as_bytes());
        handle.submit(
            StoreTicket(i),
            vec![StoreOp::PutRetained {
                message: Box::new(StoredMessage {
                    topic: TopicName::new(format!("t/{i}")).unwrap(),
                    payload: Bytes::from(payload),
                    qos: QoS::AtLeastOnce,
                    retain: true,
                    properties: PublishProperties::default(),
                    expires_at: None,
                    origin: None,
                }),
            }],
        );
    }
    wait_durable(&answers, StoreTicket(200));
    handle.close().unwrap();
    let (_, state) = Store::open(StoreOptions::new(&dir), Instant::now()).unwrap();
    assert_eq!(state.retained.len(), 200, "the intact file loads");
    (dir, file)
}

fn assert_clear(err: &StoreError, file: &Path) {
    let text = err.to_string();
    println!("{text}");
    assert!(
        matches!(err, StoreError::Damaged { .. } | StoreError::Corrupt { .. }),
        "{err:?}"
    );
    assert!(
        text.contains(&file.display().to_string()),
        "names the file: {text}"
    );
    assert!(text.contains("move it aside"), "says what to do: {text}");
}

#[test]
fn bytes_overwritten_in_the_middle_are_an_error_naming_the_file() {
    let (dir, file) = filled("overwritten");
    let mut bytes = std::fs::read(&file).unwrap();
    // The live copy of a payload nearest the middle of the file.
    let middle = bytes.len() / 2;
    let at = bytes
        .windows(MARKER.len())
        .enumerate()
        .filter(|(_, w)| *w == MARKER)
        .map(|(i, _)| i)
        .min_by_key(|i| i.abs_diff(middle))
        .expect("the payload is in the file");
    for b in &mut bytes[at..at + 64] {
        *b = 0xA5;
    }
    std::fs::write(&file, &bytes).unwrap();
    let err = Store::open(StoreOptions::new(&dir), Instant::now()).expect_err("corrupt");
    assert_clear(&err, &file);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_page_of_garbage_in_the_middle_is_an_error_naming_the_file() {
    let (dir, file) = filled("garbage-page");
    let mut bytes = std::fs::read(&file).unwrap();
    // Every other page of the middle half: whatever it holds, something live is hit.
    let (from, to) = (bytes.len() / 4, bytes.len() * 3 / 4);
    for (i, b) in bytes[from..to].iter_mut().enumerate() {
        if (i / 4096) % 2 == 0 {
            *b = (i % 251) as u8;
        }
    }
    std::fs::write(&file, &bytes).unwrap();
    let err = Store::open(StoreOptions::new(&dir), Instant::now()).expect_err("corrupt");
    assert_clear(&err, &file);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_file_truncated_to_half_is_an_error_naming_the_file() {
    let (dir, file) = filled("truncated");
    let len = std::fs::metadata(&file).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let err = Store::open(StoreOptions::new(&dir), Instant::now()).expect_err("truncated");
    assert_clear(&err, &file);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_file_that_is_not_a_store_is_an_error_naming_the_file() {
    let dir = scratch("foreign");
    let file = dir.join("mqtt.redb");
    std::fs::write(
        &file,
        b"this is not a database, just some text that someone put here\n",
    )
    .unwrap();
    let err = Store::open(StoreOptions::new(&dir), Instant::now()).expect_err("foreign");
    assert_clear(&err, &file);
    // And it was left alone: nothing is started from empty behind the operator's back.
    assert!(std::fs::read(&file).unwrap().starts_with(b"this is not"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_second_open_of_a_file_in_use_says_so() {
    let dir = scratch("locked");
    let (store, _) = Store::open(StoreOptions::new(&dir), Instant::now()).unwrap();
    let err = Store::open(StoreOptions::new(&dir), Instant::now()).expect_err("locked");
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    println!("{err}");
    drop(store);
    Store::open(StoreOptions::new(&dir), Instant::now()).expect("free again");
    std::fs::remove_dir_all(&dir).ok();
}
