//! `mqtt broker`: run an MQTT broker until Ctrl-C or SIGTERM.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use mqtt_adapter::broker::{Durability, StoreOptions};
use mqtt_core::broker::BrokerConfig;
use mqtt_tokio::broker::Server;
use mqtt_tokio::TlsConfig;
use tracing::info;

use crate::config::{DurabilityMode, FileConfig, TlsSection, PACKET_SIZE_RANGE};

/// Flags of `mqtt broker`; each overrides the same key of `--config`.
#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Address to listen on [default: 127.0.0.1]
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<IpAddr>,
    /// TCP port; 0 picks a free one (the bound address is logged) [default: 1883]
    #[arg(short, long, value_name = "N")]
    pub port: Option<u16>,
    /// TOML configuration file (see docs/configuration.md)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Largest packet accepted, in bytes [default: 1048576]
    #[arg(long, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(i64::from(*PACKET_SIZE_RANGE.start())..=i64::from(*PACKET_SIZE_RANGE.end())))]
    pub max_packet_size: Option<u32>,
    /// Port of a TLS listener (needs --tls-cert and --tls-key)
    #[arg(long, value_name = "N")]
    pub tls_port: Option<u16>,
    /// PEM certificate chain for the TLS listener
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for the TLS listener
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Which adapter runs the broker
    #[arg(long, value_enum, default_value_t = Runtime::Tokio)]
    pub runtime: Runtime,
    /// Directory of the store (sessions, queued messages, retained messages) [default: ./mqtt-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// When acknowledgements are sent relative to the disk [default: sync]
    #[arg(long, value_enum)]
    pub durability: Option<DurabilityMode>,
    /// --runtime tokio: worker threads [default: one per core but one, at least 1]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// With --durability periodic: milliseconds between flushes [default: 1000]
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub flush_interval_ms: Option<u64>,
}

/// The adapters `--runtime` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Runtime {
    /// mqtt-tokio: multi-threaded tokio
    Tokio,
    /// mqtt-smol: smol's executor
    Smol,
    /// mqtt-blocking: std::net and threads (two per connection)
    Blocking,
}

/// What the broker will run with: the file, then the flags, over the defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The broker's configuration.
    pub config: BrokerConfig,
    /// The plain TCP listener.
    pub tcp: SocketAddr,
    /// The TLS listener, if any.
    pub tls: Option<(SocketAddr, TlsConfig)>,
    /// The store; `None`: memory only.
    pub store: Option<StoreOptions>,
    /// Worker threads of the tokio runtime; `None`: [`default_threads`].
    pub threads: Option<usize>,
}

impl Settings {
    /// Reads `--config` (if given) and lays the flags over it.
    pub fn resolve(args: &BrokerArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        let mut config = BrokerConfig {
            version: format!("mqtt {}", env!("CARGO_PKG_VERSION")),
            seed: seed(),
            ..BrokerConfig::default()
        };
        file.apply(&mut config)?;
        if let Some(size) = args.max_packet_size {
            config.limits.max_packet_size = size;
        }
        let bind = args
            .bind
            .or(file.bind)
            .unwrap_or(Ipv4Addr::LOCALHOST.into());
        let port = args.port.or(file.port).unwrap_or(1883);
        let section = file.tls.unwrap_or_default();
        let tls = match (
            args.tls_port.or(section.port),
            args.tls_cert.clone().or(section.cert),
            args.tls_key.clone().or(section.key),
        ) {
            (None, None, None) => None,
            (Some(port), Some(cert_path), Some(key_path)) => Some((
                SocketAddr::new(bind, port),
                TlsConfig {
                    cert_path,
                    key_path,
                },
            )),
            (port, cert, key) => {
                let missing = TlsSection { port, cert, key };
                bail!(
                    "TLS needs a port, a certificate and a key: {}",
                    missing_tls(&missing, args.config.as_deref())
                );
            }
        };
        let storage = &file.storage;
        let durability = args
            .durability
            .or(storage.durability)
            .unwrap_or(DurabilityMode::Sync);
        let interval = args.flush_interval_ms.or(storage.flush_interval_ms);
        if interval.is_some() && durability != DurabilityMode::Periodic {
            bail!("--flush-interval-ms (flush_interval_ms) goes with --durability periodic");
        }
        let dir = args
            .data_dir
            .clone()
            .or_else(|| storage.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("mqtt-data"));
        let store = match durability {
            DurabilityMode::None => None,
            DurabilityMode::Sync => Some(StoreOptions {
                dir,
                durability: Durability::Sync,
            }),
            DurabilityMode::Periodic => Some(StoreOptions {
                dir,
                durability: Durability::Periodic {
                    interval: Duration::from_millis(interval.unwrap_or(1000)),
                },
            }),
        };
        Ok(Self {
            config,
            tcp: SocketAddr::new(bind, port),
            tls,
            store,
            threads: args.threads.map(usize::from),
        })
    }
}

/// A different seed each run, so that assigned client ids differ between runs.
fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}

/// Names what is missing for a TLS listener, and where it could be given.
fn missing_tls(given: &TlsSection, file: Option<&Path>) -> String {
    let place = |key: &str, flag: &str| match file {
        Some(f) => format!("{flag} (or [tls] {key} in {})", f.display()),
        None => flag.to_owned(),
    };
    let mut missing = Vec::new();
    if given.port.is_none() {
        missing.push(place("port", "--tls-port"));
    }
    if given.cert.is_none() {
        missing.push(place("cert", "--tls-cert"));
    }
    if given.key.is_none() {
        missing.push(place("key", "--tls-key"));
    }
    format!("missing {}", missing.join(", "))
}

/// Runs `mqtt broker` to the end.
pub fn run(args: &BrokerArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(args)?;
    match args.runtime {
        Runtime::Tokio => run_tokio(settings)?,
        Runtime::Smol => run_smol(settings)?,
        Runtime::Blocking => run_blocking(settings)?,
    }
    info!("bye");
    Ok(())
}

/// Worker threads when `--threads` is not given: one per core but one, and at least one.
/// Routing runs on one task whatever the count, so workers beyond it add parallel decoding
/// and socket writes, but also a cross-thread wake-up (and a steal) for most hand-offs
/// between a connection and the router. The core left over serves the store's writer
/// thread, the kernel's TCP work and whatever shares the machine. Measured on 2 cores with
/// the load generator beside the broker: 1 worker gave 20-40% more QoS 1 pairs throughput
/// and 5-10% more QoS 1 fan-in than 2, the same QoS 0 fan-in and fan-out.
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

fn run_tokio(settings: Settings) -> anyhow::Result<()> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(settings.threads.unwrap_or_else(default_threads));
    let rt = builder
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(async {
        let mut server = Server::new(settings.config).listen_tcp(settings.tcp);
        if let Some((addr, tls)) = settings.tls {
            server = server.listen_tls(addr, tls);
        }
        if let Some(store) = settings.store {
            server = server.persist(store);
        }
        server.run_until(stop_signal()).await
    })?;
    Ok(())
}

fn run_smol(settings: Settings) -> anyhow::Result<()> {
    use async_signal::{Signal, Signals};
    use futures_lite::StreamExt as _;
    let mut signals =
        Signals::new([Signal::Int, Signal::Term]).context("cannot watch for Ctrl-C and SIGTERM")?;
    smol::block_on(async {
        let mut server = mqtt_smol::broker::Server::new(settings.config).listen_tcp(settings.tcp);
        if let Some((addr, tls)) = settings.tls {
            server = server.listen_tls(addr, tls);
        }
        if let Some(store) = settings.store {
            server = server.persist(store);
        }
        server
            .run_until(async {
                signals.next().await;
                info!("stop signal received");
            })
            .await
    })?;
    Ok(())
}

fn run_blocking(settings: Settings) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("cannot watch for Ctrl-C and SIGTERM")?;
    let mut server = mqtt_blocking::broker::Server::new(settings.config).listen_tcp(settings.tcp);
    if let Some((addr, tls)) = settings.tls {
        server = server.listen_tls(addr, tls);
    }
    if let Some(store) = settings.store {
        server = server.persist(store);
    }
    server.run_until(|| {
        signals.forever().next();
        info!("stop signal received");
    })?;
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix. If no handler can be installed, never.
async fn stop_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    info!("stop signal received");
}
