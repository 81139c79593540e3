//! The `mqtt broker --config FILE` format: TOML, one key per broker limit, unknown keys refused.
//!
//! Every key is optional; a missing one keeps the default of `BrokerConfig::default()`.
//! `docs/configuration.md` in the repository documents each key.

use std::fmt::Display;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context};
use mqtt_core::broker::{BrokerConfig, Limits, QueueFullPolicy};
use mqtt_core::codec::DecodeLimits;
use mqtt_core::QoS;
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address the listeners bind to.
    pub bind: Option<IpAddr>,
    /// Port of the plain TCP listener.
    pub port: Option<u16>,
    /// The TLS listener, if any.
    pub tls: Option<TlsSection>,
    /// `[limits]`: what a client can make the broker hold.
    #[serde(default)]
    pub limits: LimitsSection,
    /// `[broker]`: behaviour and protocol features.
    #[serde(default)]
    pub broker: BrokerSection,
    /// `[storage]`: where and how sessions and retained messages are kept.
    #[serde(default)]
    pub storage: StorageSection,
}

/// `[storage]`: the same keys as `--data-dir`, `--durability` and `--flush-interval-ms`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// Directory of the store; relative to the config file's directory.
    pub data_dir: Option<PathBuf>,
    /// `sync`, `periodic` or `none`.
    pub durability: Option<DurabilityMode>,
    /// With `periodic`: milliseconds between flushes.
    pub flush_interval_ms: Option<u64>,
}

/// How acknowledgements relate to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityMode {
    /// Acknowledge after the store's fsync (group commit): nothing acknowledged is lost.
    Sync,
    /// Acknowledge at once, flush every --flush-interval-ms: that long of acknowledged
    /// messages may be lost in a crash.
    Periodic,
    /// Keep everything in memory: a restart forgets sessions and retained messages.
    None,
}

/// `[tls]`: a TLS listener on the same `bind` address.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Port of the TLS listener.
    pub port: Option<u16>,
    /// PEM certificate chain; relative to the config file's directory.
    pub cert: Option<PathBuf>,
    /// PEM private key; relative to the config file's directory.
    pub key: Option<PathBuf>,
}

/// `[limits]`: one key per field of [`Limits`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct LimitsSection {
    pub max_packet_size: Option<u32>,
    pub receive_maximum: Option<u16>,
    pub max_inflight: Option<u16>,
    pub max_queued_messages: Option<usize>,
    pub max_queued_bytes: Option<usize>,
    pub queue_full: Option<QueueFull>,
    pub topic_alias_maximum: Option<u16>,
    pub max_topic_levels: Option<usize>,
    pub max_subscriptions_per_client: Option<usize>,
    pub max_client_id_len: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_retained_messages: Option<usize>,
    pub max_pending_write_bytes: Option<usize>,
}

/// `queue_full = "drop-newest" | "drop-oldest"`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)]
pub enum QueueFull {
    DropNewest,
    DropOldest,
}

/// `[broker]`: the other fields of [`BrokerConfig`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct BrokerSection {
    pub max_keep_alive: Option<u16>,
    pub connect_timeout_secs: Option<u64>,
    pub max_session_expiry: Option<u32>,
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<bool>,
    pub wildcard_subscriptions: Option<bool>,
    pub subscription_identifiers: Option<bool>,
    pub shared_subscriptions: Option<bool>,
    pub sys_interval_secs: Option<u64>,
}

/// Valid values of `max_packet_size` (and `--max-packet-size`): what MQTT can express.
pub const PACKET_SIZE_RANGE: RangeInclusive<u32> = 1..=DecodeLimits::PROTOCOL_MAX;

impl FileConfig {
    /// Reads and checks `path`: every error names the file, and the key when there is one.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut file = Self::parse(&text)
            .with_context(|| format!("invalid config file {}", path.display()))?;
        // Certificate paths are relative to the file that names them.
        let dir = path.parent().unwrap_or(Path::new(""));
        if let Some(tls) = &mut file.tls {
            for p in [&mut tls.cert, &mut tls.key].into_iter().flatten() {
                *p = dir.join(&*p);
            }
        }
        if let Some(data) = &mut file.storage.data_dir {
            *data = dir.join(&*data);
        }
        Ok(file)
    }

    /// Parses TOML text and checks every value, without applying it.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: Self = toml::from_str(text)?;
        file.apply(&mut BrokerConfig::default())?;
        Ok(file)
    }

    /// Sets in `config` every key the file gives; an out-of-range value is an error naming it.
    pub fn apply(&self, config: &mut BrokerConfig) -> anyhow::Result<()> {
        self.limits.apply(&mut config.limits)?;
        self.broker.apply(config)
    }
}

impl LimitsSection {
    fn apply(&self, l: &mut Limits) -> anyhow::Result<()> {
        const ANY: RangeInclusive<usize> = 0..=usize::MAX;
        const NONZERO: RangeInclusive<usize> = 1..=usize::MAX;
        set(
            &mut l.max_packet_size,
            self.max_packet_size,
            "limits",
            "max_packet_size",
            PACKET_SIZE_RANGE,
        )?;
        set(
            &mut l.receive_maximum,
            self.receive_maximum,
            "limits",
            "receive_maximum",
            1..=u16::MAX,
        )?;
        set(
            &mut l.max_inflight,
            self.max_inflight,
            "limits",
            "max_inflight",
            1..=u16::MAX,
        )?;
        set(
            &mut l.max_queued_messages,
            self.max_queued_messages,
            "limits",
            "max_queued_messages",
            ANY,
        )?;
        set(
            &mut l.max_queued_bytes,
            self.max_queued_bytes,
            "limits",
            "max_queued_bytes",
            ANY,
        )?;
        if let Some(policy) = self.queue_full {
            l.queue_full = match policy {
                QueueFull::DropNewest => QueueFullPolicy::DropNewest,
                QueueFull::DropOldest => QueueFullPolicy::DropOldest,
            };
        }
        set(
            &mut l.topic_alias_maximum,
            self.topic_alias_maximum,
            "limits",
            "topic_alias_maximum",
            0..=u16::MAX,
        )?;
        set(
            &mut l.max_topic_levels,
            self.max_topic_levels,
            "limits",
            "max_topic_levels",
            NONZERO,
        )?;
        set(
            &mut l.max_subscriptions_per_client,
            self.max_subscriptions_per_client,
            "limits",
            "max_subscriptions_per_client",
            ANY,
        )?;
        // [MQTT-3.1.3-5] a server must accept client ids of 1 to 23 bytes.
        set(
            &mut l.max_client_id_len,
            self.max_client_id_len,
            "limits",
            "max_client_id_len",
            23..=u16::MAX.into(),
        )?;
        set(
            &mut l.max_connections,
            self.max_connections,
            "limits",
            "max_connections",
            NONZERO,
        )?;
        set(
            &mut l.max_retained_messages,
            self.max_retained_messages,
            "limits",
            "max_retained_messages",
            ANY,
        )?;
        set(
            &mut l.max_pending_write_bytes,
            self.max_pending_write_bytes,
            "limits",
            "max_pending_write_bytes",
            NONZERO,
        )
    }
}

impl BrokerSection {
    fn apply(&self, c: &mut BrokerConfig) -> anyhow::Result<()> {
        set(
            &mut c.max_keep_alive,
            self.max_keep_alive,
            "broker",
            "max_keep_alive",
            0..=u16::MAX,
        )?;
        if let Some(secs) = self.connect_timeout_secs {
            let secs = checked(secs, "broker", "connect_timeout_secs", 1..=u64::MAX)?;
            c.connect_timeout = Duration::from_secs(secs);
        }
        set(
            &mut c.max_session_expiry,
            self.max_session_expiry,
            "broker",
            "max_session_expiry",
            0..=u32::MAX,
        )?;
        if let Some(qos) = self.maximum_qos {
            let qos = checked(qos, "broker", "maximum_qos", 0..=2)?;
            c.maximum_qos = QoS::from_u8(qos).unwrap_or(QoS::ExactlyOnce);
        }
        let flags = [
            (&mut c.retain_available, self.retain_available),
            (&mut c.wildcard_subscriptions, self.wildcard_subscriptions),
            (
                &mut c.subscription_identifiers,
                self.subscription_identifiers,
            ),
            (&mut c.shared_subscriptions, self.shared_subscriptions),
        ];
        for (slot, value) in flags {
            if let Some(v) = value {
                *slot = v;
            }
        }
        if let Some(secs) = self.sys_interval_secs {
            c.sys_interval = (secs > 0).then(|| Duration::from_secs(secs));
        }
        Ok(())
    }
}

/// Sets `slot` to `value` when given, if it is within `range`.
fn set<T: Copy + PartialOrd + Display>(
    slot: &mut T,
    value: Option<T>,
    section: &str,
    key: &str,
    range: RangeInclusive<T>,
) -> anyhow::Result<()> {
    if let Some(v) = value {
        *slot = checked(v, section, key, range)?;
    }
    Ok(())
}

fn checked<T: PartialOrd + Display>(
    value: T,
    section: &str,
    key: &str,
    range: RangeInclusive<T>,
) -> anyhow::Result<T> {
    if range.contains(&value) {
        return Ok(value);
    }
    Err(anyhow!(
        "[{section}] {key} = {value}: must be from {} to {}",
        range.start(),
        range.end()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_keeps_defaults() {
        let mut config = BrokerConfig::default();
        FileConfig::parse("").unwrap().apply(&mut config).unwrap();
        assert_eq!(config, BrokerConfig::default());
    }

    #[test]
    fn every_key_is_applied() {
        let text = r#"
            [limits]
            max_packet_size = 1000
            receive_maximum = 10
            max_inflight = 5
            max_queued_messages = 7
            max_queued_bytes = 70
            queue_full = "drop-oldest"
            topic_alias_maximum = 0
            max_topic_levels = 8
            max_subscriptions_per_client = 9
            max_client_id_len = 23
            max_connections = 11
            max_retained_messages = 12
            max_pending_write_bytes = 13
            [broker]
            max_keep_alive = 30
            connect_timeout_secs = 3
            max_session_expiry = 60
            maximum_qos = 1
            retain_available = false
            wildcard_subscriptions = false
            subscription_identifiers = false
            shared_subscriptions = false
            sys_interval_secs = 0
        "#;
        let mut c = BrokerConfig::default();
        FileConfig::parse(text).unwrap().apply(&mut c).unwrap();
        let l = &c.limits;
        assert_eq!(
            (l.max_packet_size, l.receive_maximum, l.max_inflight),
            (1000, 10, 5)
        );
        assert_eq!((l.max_queued_messages, l.max_queued_bytes), (7, 70));
        assert_eq!(l.queue_full, QueueFullPolicy::DropOldest);
        assert_eq!((l.topic_alias_maximum, l.max_topic_levels), (0, 8));
        assert_eq!(
            (l.max_subscriptions_per_client, l.max_client_id_len),
            (9, 23)
        );
        assert_eq!((l.max_connections, l.max_retained_messages), (11, 12));
        assert_eq!(l.max_pending_write_bytes, 13);
        assert_eq!(
            (c.max_keep_alive, c.connect_timeout),
            (30, Duration::from_secs(3))
        );
        assert_eq!(
            (c.max_session_expiry, c.maximum_qos),
            (60, QoS::AtLeastOnce)
        );
        assert!(!c.retain_available && !c.wildcard_subscriptions);
        assert!(!c.subscription_identifiers && !c.shared_subscriptions);
        assert_eq!(c.sys_interval, None);
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("[limits]\nmax_packet_size = 0", "max_packet_size"),
            ("[broker]\nmaximum_qos = 3", "maximum_qos"),
            ("[limits]\nreceive_maximum = 70000", "receive_maximum"),
            ("[limits]\nqueue_full = \"drop-all\"", "drop-all"),
            ("[broker]\nconnect_timeout_secs = 0", "connect_timeout_secs"),
            ("bogus = 1", "bogus"),
            ("[limits]\nmax_inflght = 1", "max_inflght"),
            ("bind = \"not an address\"", "bind"),
        ] {
            let err = format!("{:#}", FileConfig::parse(text).unwrap_err());
            assert!(err.contains(key), "{text:?}: {err}");
        }
    }
}
