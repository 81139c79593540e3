//! `mqtt pub`: publish a message (`-m`, `-f`, `-s`, `-n`) or each line of stdin (`-l`), then
//! disconnect; mosquitto_pub's flags.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{ArgGroup, Args};
use mqtt_core::client::PublishRequest;
use mqtt_core::topic::TopicName;
use mqtt_core::{ProtocolVersion, QoS};
use mqtt_tokio::client::{Client, Events};
use tokio::io::AsyncBufReadExt as _;
use tracing::debug;

use crate::connect::{parse_count, parse_delay, parse_qos, ConnArgs, Settings};
use crate::props::PacketKind;
use crate::{payload, run};

/// Flags of `mqtt pub`.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("payload").required(true)
    .args(["message", "file", "stdin_line", "stdin_file", "null_message"])))]
pub struct PubArgs {
    /// Topic to publish to
    #[arg(
        short = 't',
        long = "topic",
        value_name = "TOPIC",
        required_unless_present = "url",
        conflicts_with = "url"
    )]
    pub topic: Option<String>,
    /// The message
    #[arg(
        short = 'm',
        long = "message",
        value_name = "MESSAGE",
        allow_hyphen_values = true
    )]
    pub message: Option<String>,
    /// Send the contents of a file as the message
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Read stdin, sending each line as a message
    #[arg(short = 'l', long = "stdin-line")]
    pub stdin_line: bool,
    /// Read stdin to its end, sending it all as one message
    #[arg(short = 's', long = "stdin-file")]
    pub stdin_file: bool,
    /// Send an empty message
    #[arg(short = 'n', long = "null-message")]
    pub null_message: bool,
    /// QoS of the messages
    #[arg(short = 'q', long = "qos", value_name = "QOS", default_value = "0", value_parser = parse_qos)]
    pub qos: QoS,
    /// Retain the messages
    #[arg(short = 'r', long = "retain")]
    pub retain: bool,
    /// Publish the message N times (not with -l)
    #[arg(long, value_name = "N", value_parser = parse_count, conflicts_with = "stdin_line")]
    pub repeat: Option<NonZeroU32>,
    /// Seconds to wait after each repeated message is delivered before the next
    #[arg(long, value_name = "SECONDS", requires = "repeat", value_parser = parse_delay)]
    pub repeat_delay: Option<f64>,
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Where the messages come from, read as far as can be before connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// One message (from `-m`, `-f`, `-s` or `-n`), sent `repeat` times.
    Once(Bytes),
    /// Each line of stdin (`-l`).
    Lines,
}

/// Everything `mqtt pub` will do, checked.
#[derive(Debug, Clone)]
struct Plan {
    settings: Settings,
    topic: TopicName,
    source: Source,
    qos: QoS,
    retain: bool,
    repeat: u32,
    delay: Duration,
}

impl Plan {
    fn resolve(args: &PubArgs) -> anyhow::Result<Self> {
        let settings = Settings::resolve(
            &args.conn,
            ProtocolVersion::V311,
            &[
                PacketKind::Connect,
                PacketKind::Publish,
                PacketKind::Disconnect,
                PacketKind::Will,
            ],
        )?;
        let topic = settings.publish_topic(args.topic.as_ref())?;
        let given = payload::read(
            args.message.as_deref(),
            args.file.as_deref(),
            args.stdin_file,
        )?;
        let source = if let Some(data) = given {
            Source::Once(data)
        } else if args.stdin_line {
            Source::Lines
        } else {
            Source::Once(Bytes::new())
        };
        Ok(Self {
            settings,
            topic,
            source,
            qos: args.qos,
            retain: args.retain,
            repeat: args.repeat.map_or(1, NonZeroU32::get),
            delay: Duration::from_secs_f64(args.repeat_delay.unwrap_or(0.0)),
        })
    }

    fn request(&self, payload: Bytes) -> PublishRequest {
        PublishRequest::new(self.topic.clone(), payload)
            .with_qos(self.qos)
            .with_retain(self.retain)
            .with_properties(self.settings.properties.publish.clone())
    }

    async fn execute(self) -> anyhow::Result<()> {
        let (client, mut events) = run::connect(&self.settings, false).await?;
        match &self.source {
            Source::Once(payload) => {
                for i in 0..self.repeat {
                    if i > 0 && !self.delay.is_zero() {
                        run::while_draining(&mut events, tokio::time::sleep(self.delay)).await?;
                    }
                    self.publish(&client, &mut events, payload.clone()).await?;
                }
            }
            Source::Lines => {
                let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
                let mut line = Vec::new();
                loop {
                    line.clear();
                    let n = run::while_draining(&mut events, stdin.read_until(b'\n', &mut line))
                        .await?
                        .context("-l: cannot read stdin")?;
                    if n == 0 {
                        break;
                    }
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    self.publish(&client, &mut events, Bytes::copy_from_slice(&line))
                        .await?;
                }
            }
        }
        run::disconnect(
            &client,
            &mut events,
            self.settings.properties.disconnect_session_expiry,
        )
        .await
    }

    /// Publishes one message and waits for its QoS flow to complete.
    async fn publish(
        &self,
        client: &Client,
        events: &mut Events,
        payload: Bytes,
    ) -> anyhow::Result<()> {
        let len = payload.len();
        let code = run::while_draining(events, client.publish(self.request(payload)))
            .await?
            .map_err(|e| run::client_error(&e))
            .with_context(|| format!("cannot publish to {}", self.topic))?;
        if code.is_error() {
            bail!("the server refused the message to {}: {code}", self.topic);
        }
        debug!(topic = %self.topic, len, %code, "published");
        Ok(())
    }
}

/// Runs `mqtt pub` to the end.
pub fn run(args: &PubArgs) -> anyhow::Result<()> {
    let plan = Plan::resolve(args)?;
    run::runtime()?.block_on(plan.execute())
}
