//! `mqtt rr`: request / response, as mosquitto_rr. Subscribes to the response topic (`-e`),
//! publishes the request (`-t`) carrying the MQTT 5.0 Response Topic and Correlation Data,
//! prints the first response and exits.
//!
//! A response is a message on the response topic whose Correlation Data is the request's, or
//! that has none (a responder that does not echo it); messages carrying another request's
//! Correlation Data are someone else's and are skipped. In 3.1.1 (`-V 311`), which has no
//! properties, the first message on the response topic is the response.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{ArgGroup, Args};
use mqtt_core::client::PublishRequest;
use mqtt_core::packet::{RetainHandling, Subscription, SubscriptionOptions};
use mqtt_core::topic::{TopicFilter, TopicName};
use mqtt_core::{ProtocolVersion, Publish, QoS};
use mqtt_tokio::client::Event;
use tokio::time::Instant;
use tracing::debug;

use crate::connect::{parse_qos, parse_seconds, ConnArgs, Settings};
use crate::format::{OutputArgs, Printer};
use crate::payload;
use crate::props::PacketKind;
use crate::run::{self, Exit};

/// Flags of `mqtt rr`.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("payload").required(true)
    .args(["message", "file", "stdin_file", "null_message"])))]
pub struct RrArgs {
    /// Topic the request is published to
    #[arg(
        short = 't',
        long = "topic",
        value_name = "TOPIC",
        required_unless_present = "url",
        conflicts_with = "url"
    )]
    pub topic: Option<String>,
    /// Response topic: subscribed to, and sent in the request
    #[arg(
        short = 'e',
        long = "response-topic",
        value_name = "TOPIC",
        required = true
    )]
    pub response_topic: String,
    /// The request message
    #[arg(
        short = 'm',
        long = "message",
        value_name = "MESSAGE",
        allow_hyphen_values = true
    )]
    pub message: Option<String>,
    /// Send the contents of a file as the request
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Read stdin to its end, sending it all as the request
    #[arg(short = 's', long = "stdin-file")]
    pub stdin_file: bool,
    /// Send an empty request
    #[arg(short = 'n', long = "null-message")]
    pub null_message: bool,
    /// QoS of the request and of the subscription
    #[arg(short = 'q', long = "qos", value_name = "QOS", default_value = "0", value_parser = parse_qos)]
    pub qos: QoS,
    /// Skip retained messages on the response topic (5.0: the server is asked not to send them)
    #[arg(short = 'R')]
    pub no_retained: bool,
    /// Exit with status 27 if no response came within SECONDS
    #[arg(short = 'W', value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Option<f64>,
    /// Output flags.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Everything `mqtt rr` will do, checked.
#[derive(Debug, Clone)]
struct Plan {
    settings: Settings,
    request: PublishRequest,
    response_topic: TopicName,
    /// The Correlation Data a response must carry, if it carries any (5.0).
    correlation: Option<Bytes>,
    qos: QoS,
    no_retained: bool,
    printer: Printer,
    timeout: Option<Duration>,
}

impl Plan {
    fn resolve(args: &RrArgs) -> anyhow::Result<Self> {
        let settings = Settings::resolve(
            &args.conn,
            ProtocolVersion::V5,
            &[
                PacketKind::Connect,
                PacketKind::Publish,
                PacketKind::Subscribe,
                PacketKind::Disconnect,
                PacketKind::Will,
            ],
        )?;
        let topic = settings.publish_topic(args.topic.as_ref())?;
        let response_topic = TopicName::new(args.response_topic.as_str())
            .with_context(|| format!("-e {:?}", args.response_topic))?;
        // `-n`, or nothing: an empty request.
        let payload = payload::read(
            args.message.as_deref(),
            args.file.as_deref(),
            args.stdin_file,
        )?
        .unwrap_or_default();
        let mut properties = settings.properties.publish.clone();
        let correlation = if settings.client.version.is_v5() {
            if properties.response_topic.is_some() {
                bail!("-D publish response-topic: the response topic is -e");
            }
            properties.response_topic = Some(response_topic.clone());
            let data = properties
                .correlation_data
                .get_or_insert_with(|| Bytes::from(correlation_data()))
                .clone();
            Some(data)
        } else {
            None
        };
        let request = PublishRequest::new(topic, payload)
            .with_qos(args.qos)
            .with_properties(properties);
        Ok(Self {
            printer: args.output.printer()?,
            settings,
            request,
            response_topic,
            correlation,
            qos: args.qos,
            no_retained: args.no_retained,
            timeout: args.timeout.map(Duration::from_secs_f64),
        })
    }

    async fn execute(self) -> anyhow::Result<()> {
        let (client, mut events) = run::connect(&self.settings, false).await?;
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let sleep = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now));
        tokio::pin!(sleep);
        let timed_out = || {
            let secs = self.timeout.unwrap_or_default().as_secs_f64();
            anyhow::Error::new(Exit::timeout(format!("no response in {secs} s")))
        };

        // Subscribe first, so that the response cannot come before the subscription.
        let subscription = Subscription {
            filter: TopicFilter::new(self.response_topic.as_str())
                .with_context(|| format!("-e {}", self.response_topic))?,
            options: SubscriptionOptions {
                qos: self.qos,
                retain_handling: if self.no_retained {
                    RetainHandling::DoNotSend
                } else {
                    RetainHandling::SendAtSubscribe
                },
                ..SubscriptionOptions::default()
            },
        };
        let subscribe = client.subscribe(
            vec![subscription],
            self.settings.properties.subscribe.clone(),
        );
        let codes = tokio::select! {
            codes = run::while_draining(&mut events, subscribe) => codes?.map_err(|e| run::client_error(&e)).context("cannot subscribe")?,
            () = &mut sleep, if deadline.is_some() => return Err(timed_out()),
        };
        if let Some(code) = codes.iter().find(|c| c.is_error()) {
            bail!("subscription to {} refused: {code}", self.response_topic);
        }

        let publisher = client.clone();
        let request = self.request.clone();
        let mut sent = Some(tokio::spawn(
            async move { publisher.publish(request).await },
        ));
        let mut buf = Vec::new();
        let outcome = loop {
            tokio::select! {
                done = run::maybe(&mut sent) => {
                    sent = None;
                    match done {
                        Ok(Ok(code)) if !code.is_error() => debug!(%code, "request published"),
                        Ok(Ok(code)) => break Err(anyhow::anyhow!("the server refused the request: {code}")),
                        Ok(Err(e)) => break Err(run::client_error(&e).context("cannot publish the request")),
                        Err(e) => break Err(anyhow::Error::new(e).context("the publish task failed")),
                    }
                }
                event = events.recv() => match event {
                    Some(Event::Message { publish, .. }) => {
                        if self.is_response(&publish) {
                            run::print(&self.printer, &publish, &mut buf)?;
                            break Ok(());
                        }
                    }
                    Some(Event::Disconnected { reason, .. }) => {
                        return Err(anyhow::anyhow!("connection lost: {reason}"));
                    }
                    Some(other) => debug!(?other, "event ignored"),
                    None => return Err(anyhow::anyhow!("the client stopped")),
                },
                () = &mut sleep, if deadline.is_some() => break Err(timed_out()),
            }
        };
        if let Some(task) = sent {
            task.abort();
        }
        let disconnected = run::disconnect(
            &client,
            &mut events,
            self.settings.properties.disconnect_session_expiry,
        )
        .await;
        outcome?;
        disconnected
    }

    /// Whether `publish` answers this request.
    fn is_response(&self, publish: &Publish) -> bool {
        if publish.topic != self.response_topic {
            return false;
        }
        if self.no_retained && publish.retain {
            debug!("retained message on the response topic skipped");
            return false;
        }
        match (&publish.properties.correlation_data, &self.correlation) {
            (Some(theirs), Some(ours)) if theirs != ours => {
                debug!("response to another request skipped");
                false
            }
            _ => true,
        }
    }
}

/// 16 hex digits that name this request: the clock and the process id.
fn correlation_data() -> Vec<u8> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let id = nanos ^ u64::from(std::process::id()).rotate_left(40);
    format!("{id:016x}").into_bytes()
}

/// Runs `mqtt rr` to the end.
pub fn run(args: &RrArgs) -> anyhow::Result<()> {
    let plan = Plan::resolve(args)?;
    run::runtime()?.block_on(plan.execute())
}
