//! `mqtt bench`: the flags of the benchmark (connection flags named as the other client
//! commands name them), resolved into a [`Plan`], run on a multi-threaded runtime, reported.
//! What a run does is in [`crate::bench`]; `docs/bench.md` is the user's guide.

use std::io::IsTerminal as _;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{ArgAction, Args};
use mqtt_core::{ProtocolVersion, QoS};

use crate::bench::plan::{Load, Plan};
use crate::bench::scenario::{Scenario, TopicPattern};
use crate::bench::stamp::Stamp;
use crate::connect::{
    parse_qos, parse_seconds, parse_version, ConnArgs, PropertyFlags, Settings, TlsArgs,
};
use crate::props::PacketKind;

/// Flags of `mqtt bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// What to run
    #[arg(value_enum)]
    pub scenario: Scenario,

    /// Publishers (pub, fan-in, shared) [default: pub 1, fan-in 4, shared 4]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000),
          help_heading = "Load")]
    pub publishers: Option<u32>,
    /// Subscribers (sub, fan-out, shared) [default: sub 1, fan-out 10, shared 4]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000),
          help_heading = "Load")]
    pub subscribers: Option<u32>,
    /// Pairs (pairs), or connections (conn) [default: pairs 10, conn 1000]
    #[arg(short = 'n', long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000), help_heading = "Load")]
    pub clients: Option<u32>,
    /// Messages per publisher (sub: per subscriber)
    #[arg(short = 'c', long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..), help_heading = "Load")]
    pub count: u64,
    /// QoS of the messages and subscriptions
    #[arg(short = 'q', long = "qos", value_name = "QOS", default_value = "0",
          value_parser = parse_qos, help_heading = "Load")]
    pub qos: QoS,
    /// Payload bytes (at least 28, the stamp)
    #[arg(short = 's', long, value_name = "BYTES", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(Stamp::LEN as i64..=268_435_000),
          help_heading = "Load")]
    pub size: u32,
    /// Topic of each publisher; %i is its index (or the pair's)
    #[arg(
        short = 't',
        long = "topic",
        value_name = "PATTERN",
        help_heading = "Load"
    )]
    pub topic: Option<String>,
    /// Closed loop: QoS 1/2 messages each publisher may have unacknowledged
    #[arg(long, value_name = "N", default_value_t = 100, conflicts_with = "rate",
          value_parser = clap::value_parser!(u16).range(1..), help_heading = "Load")]
    pub inflight: u16,
    /// Subscribers keep persistent sessions (3.1.1 clean session off; 5.0 session expiry
    /// 3600 s): with a durable broker their QoS 1/2 messages are stored before they are
    /// acknowledged
    #[arg(long, help_heading = "Load")]
    pub persistent_subscribers: bool,
    /// Open loop: messages per second, all publishers together, on a fixed schedule
    /// (latency counts from each message's scheduled time)
    #[arg(long, value_name = "MSGS_PER_SEC", value_parser = parse_rate, help_heading = "Load")]
    pub rate: Option<f64>,
    /// Longest time to publish (conn: to connect), in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0, value_parser = parse_seconds,
          help_heading = "Load")]
    pub duration: f64,
    /// Once publishing is over, how long to wait for more messages after the last one came
    /// (the wait ends anyway after --duration more)
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, value_parser = parse_seconds,
          help_heading = "Load")]
    pub grace: f64,
    /// conn: new connections per second [default: as fast as they complete, 64 at a time]
    #[arg(long, value_name = "PER_SEC", value_parser = parse_rate, help_heading = "Load")]
    pub conn_rate: Option<f64>,
    /// conn: seconds to hold the connections open once all are up
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, value_parser = parse_seconds,
          help_heading = "Load")]
    pub hold: f64,
    /// conn: the broker's process id, to report its memory (VmRSS) per connection
    #[arg(long, value_name = "PID", help_heading = "Load")]
    pub broker_pid: Option<u32>,

    /// Host to connect to [default: localhost]
    #[arg(short = 'h', long, value_name = "HOST", help_heading = "Connection")]
    pub host: Option<String>,
    /// Port [default: 1883, or 8883 with TLS]
    #[arg(short, long, value_name = "PORT", help_heading = "Connection")]
    pub port: Option<u16>,
    /// Host, port, credentials and topic pattern as one URL:
    /// `mqtt(s)://[USER[:PASS]@]HOST[:PORT]/PATTERN`
    #[arg(short = 'L', long = "url", value_name = "URL", conflicts_with_all = ["host", "port"],
          help_heading = "Connection")]
    pub url: Option<String>,
    /// MQTT version: 5, 311 or 31 (also mqttv5, mqttv311, mqttv31)
    #[arg(short = 'V', long = "protocol-version", value_name = "VERSION", default_value = "311",
          value_parser = parse_version, help_heading = "Connection")]
    pub version: ProtocolVersion,
    /// Client identifiers start with this, then p, s or c and the index [default:
    /// bench and the process id]
    #[arg(
        short = 'I',
        long = "id-prefix",
        value_name = "PREFIX",
        help_heading = "Connection"
    )]
    pub id_prefix: Option<String>,
    /// Keep alive in seconds
    #[arg(short = 'k', long = "keepalive", value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u16).range(5..), help_heading = "Connection")]
    pub keepalive: u16,
    /// User name
    #[arg(
        short = 'u',
        long = "username",
        value_name = "USER",
        help_heading = "Connection"
    )]
    pub username: Option<String>,
    /// Password
    #[arg(
        short = 'P',
        long = "pw",
        value_name = "PASSWORD",
        help_heading = "Connection"
    )]
    pub password: Option<String>,
    /// How long to wait for each connection and CONNACK, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = parse_seconds,
          help_heading = "Connection")]
    pub connect_timeout: f64,
    /// TLS files and checks, as for the other client commands.
    #[command(flatten)]
    pub tls: TlsArgs,

    /// Print the report as one JSON object (schema in docs/bench.md)
    #[arg(long, help_heading = "Output")]
    pub json: bool,
    /// No progress bar
    #[arg(long, help_heading = "Output")]
    pub quiet: bool,
    /// Debug log on stderr (-dd: trace)
    #[arg(short = 'd', long = "debug", action = ArgAction::Count, help_heading = "Output")]
    pub debug: u8,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
}

impl BenchArgs {
    /// The connection flags, as the other client commands have them.
    fn conn_args(&self) -> ConnArgs {
        ConnArgs {
            host: self.host.clone(),
            port: self.port,
            url: self.url.clone(),
            id: None,
            id_prefix: None,
            keepalive: self.keepalive,
            username: self.username.clone(),
            password: self.password.clone(),
            persistent: false,
            session_expiry: None,
            version: Some(self.version),
            properties: PropertyFlags::default(),
            connect_timeout: self.connect_timeout,
            will_topic: None,
            will_payload: None,
            will_qos: None,
            will_retain: false,
            tls: self.tls.clone(),
            debug: self.debug,
            help: None,
        }
    }

    /// Checks the flags against the scenario and resolves them.
    pub fn plan(&self, progress: bool) -> anyhow::Result<Plan> {
        let scenario = self.scenario;
        let settings = Settings::resolve(
            &self.conn_args(),
            ProtocolVersion::V311,
            &[
                PacketKind::Connect,
                PacketKind::Publish,
                PacketKind::Subscribe,
                PacketKind::Disconnect,
            ],
        )?;
        let uses = |flag: &str, given: bool, allowed: &[Scenario]| {
            if given && !allowed.contains(&scenario) {
                bail!("{flag} does not apply to the {} scenario", scenario.name());
            }
            Ok(())
        };
        use Scenario::*;
        uses(
            "--publishers",
            self.publishers.is_some(),
            &[Pub, FanIn, Shared],
        )?;
        uses(
            "--subscribers",
            self.subscribers.is_some(),
            &[Sub, FanOut, Shared],
        )?;
        uses("-n", self.clients.is_some(), &[Pairs, Conn])?;
        uses(
            "--rate",
            self.rate.is_some(),
            &[Pub, FanIn, FanOut, Pairs, Shared],
        )?;
        uses("--conn-rate", self.conn_rate.is_some(), &[Conn])?;
        uses("--broker-pid", self.broker_pid.is_some(), &[Conn])?;

        let pattern = self
            .topic
            .clone()
            .or_else(|| settings.url_topic.clone())
            .unwrap_or_else(|| "bench/%i".to_owned());
        let topic = TopicPattern::new(&pattern)?;
        let publishers = self.publishers.map_or(
            match scenario {
                FanIn | Shared => 4,
                _ => 1,
            },
            |n| n as usize,
        );
        let subscribers = self.subscribers.map_or(
            match scenario {
                FanOut => 10,
                Shared => 4,
                _ => 1,
            },
            |n| n as usize,
        );
        let clients = self.clients.map_or(
            match scenario {
                Conn => 1000,
                _ => 10,
            },
            |n| n as usize,
        );
        let load = match self.rate {
            Some(rate) => Load::Open { rate },
            None => Load::Closed {
                inflight: self.inflight,
            },
        };
        Ok(Plan {
            scenario,
            settings,
            id_prefix: self
                .id_prefix
                .clone()
                .unwrap_or_else(|| format!("bench{}-", std::process::id())),
            qos: self.qos,
            size: self.size as usize,
            topic,
            publishers,
            subscribers,
            clients,
            count: self.count,
            load,
            duration: Duration::from_secs_f64(self.duration),
            grace: Duration::from_secs_f64(self.grace),
            conn_rate: self.conn_rate,
            hold: Duration::from_secs_f64(self.hold),
            broker_pid: self.broker_pid,
            progress,
            persistent_subscribers: self.persistent_subscribers,
        })
    }
}

/// A positive rate, per second.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1e9 => Ok(v),
        _ => Err(format!(
            "`{s}` is not a rate: give a number per second greater than 0"
        )),
    }
}

/// Runs `mqtt bench`: the report on stdout (table or JSON), exit status 1 if the run failed.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let progress = !args.quiet && std::io::stdout().is_terminal();
    let plan = args.plan(progress)?;
    // Many clients, one process: every core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let report = runtime.block_on(crate::bench::run(plan));
    // Connections still closing are not waited for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    let report = report?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    if !report.passed {
        bail!("benchmark failed: {}", report.failures.join("; "));
    }
    Ok(())
}
