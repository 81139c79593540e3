//! `mqtt sub`: subscribe and print what arrives, until `-C` messages, `-W` seconds, `-E`
//! (the SUBACK), or Ctrl-C; mosquitto_sub's flags.
//!
//! The connection comes back by itself when lost (as mosquitto_sub's does), subscribing
//! again when the server kept no session.

use std::num::NonZeroU32;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use mqtt_core::client::PublishRequest;
use mqtt_core::packet::{
    RetainHandling, SubscribeProperties, Subscription, SubscriptionOptions, UnsubscribeProperties,
};
use mqtt_core::topic::TopicFilter;
use mqtt_core::{ProtocolVersion, Publish, QoS};
use mqtt_tokio::client::{Client, Event, Events};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::debug;

use crate::connect::{parse_count, parse_qos, parse_seconds, ConnArgs, Settings};
use crate::format::{OutputArgs, Printer};
use crate::props::PacketKind;
use crate::run::{self, Exit};

/// Flags of `mqtt sub`.
#[derive(Debug, Clone, Args)]
pub struct SubArgs {
    /// Topic filter to subscribe to; repeatable
    #[arg(short = 't', long = "topic", value_name = "FILTER",
          required_unless_present_any = ["url", "unsubscribe"])]
    pub topics: Vec<String>,
    /// Do not print messages whose topic matches this filter; repeatable
    #[arg(short = 'T', long = "filter-out", value_name = "FILTER")]
    pub filter_out: Vec<String>,
    /// Unsubscribe from this filter (after subscribing to -t); repeatable
    #[arg(short = 'U', long = "unsubscribe", value_name = "FILTER")]
    pub unsubscribe: Vec<String>,
    /// QoS of the subscriptions
    #[arg(short = 'q', long = "qos", value_name = "QOS", default_value = "0", value_parser = parse_qos)]
    pub qos: QoS,
    /// Exit after COUNT messages have been printed
    #[arg(short = 'C', value_name = "COUNT", value_parser = parse_count)]
    pub count: Option<NonZeroU32>,
    /// Exit with status 27 after SECONDS (counted from the connection)
    #[arg(short = 'W', value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Option<f64>,
    /// Exit once the subscriptions are acknowledged
    #[arg(short = 'E')]
    pub exit_after_subscribe: bool,
    /// Do not print retained (stale) messages; in 5.0 the server is asked not to send them
    #[arg(short = 'R')]
    pub no_retained: bool,
    /// Print only retained messages; exit at the first message that is not retained
    #[arg(long)]
    pub retained_only: bool,
    /// Clear each retained message received (except those filtered out by -T)
    #[arg(long)]
    pub remove_retained: bool,
    /// Keep the RETAIN flag as published (MQTT 5.0)
    #[arg(long)]
    pub retain_as_published: bool,
    /// Output flags.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Everything `mqtt sub` will do, checked.
#[derive(Debug, Clone)]
struct Plan {
    settings: Settings,
    subscriptions: Vec<Subscription>,
    properties: SubscribeProperties,
    unsubscribe: Vec<TopicFilter>,
    unsubscribe_properties: UnsubscribeProperties,
    filter_out: Vec<TopicFilter>,
    printer: Printer,
    count: Option<u32>,
    timeout: Option<Duration>,
    exit_after_subscribe: bool,
    no_retained: bool,
    retained_only: bool,
    remove_retained: bool,
}

/// How the run ended.
enum Ending {
    /// `-C`, `-E`, `--retained-only`, Ctrl-C, or stdout closed: disconnect, exit 0.
    Done,
    /// A failure (`-W`, a refused subscription...): disconnect, then report it.
    Failed(anyhow::Error),
    /// The connection is gone: nothing to disconnect.
    Lost(anyhow::Error),
}

impl Plan {
    fn resolve(args: &SubArgs) -> anyhow::Result<Self> {
        let settings = Settings::resolve(
            &args.conn,
            ProtocolVersion::V311,
            &[
                PacketKind::Connect,
                PacketKind::Subscribe,
                PacketKind::Unsubscribe,
                PacketKind::Disconnect,
                PacketKind::Will,
            ],
        )?;
        if args.retain_as_published && !settings.client.version.is_v5() {
            bail!("--retain-as-published needs MQTT 5.0 (-V 5)");
        }
        let options = SubscriptionOptions {
            qos: args.qos,
            no_local: false,
            retain_as_published: args.retain_as_published,
            retain_handling: if args.no_retained {
                RetainHandling::DoNotSend
            } else {
                RetainHandling::SendAtSubscribe
            },
        };
        let subscriptions = settings
            .url_topic
            .iter()
            .chain(&args.topics)
            .map(|t| {
                let filter = filter("-t", t)?;
                Ok(Subscription { filter, options })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            properties: settings.properties.subscribe.clone(),
            unsubscribe_properties: settings.properties.unsubscribe.clone(),
            settings,
            subscriptions,
            unsubscribe: args
                .unsubscribe
                .iter()
                .map(|t| filter("-U", t))
                .collect::<anyhow::Result<_>>()?,
            filter_out: args
                .filter_out
                .iter()
                .map(|t| filter("-T", t))
                .collect::<anyhow::Result<_>>()?,
            printer: args.output.printer()?,
            count: args.count.map(NonZeroU32::get),
            timeout: args.timeout.map(Duration::from_secs_f64),
            exit_after_subscribe: args.exit_after_subscribe,
            no_retained: args.no_retained,
            retained_only: args.retained_only,
            remove_retained: args.remove_retained,
        })
    }

    async fn execute(self) -> anyhow::Result<()> {
        let (client, mut events) = run::connect(&self.settings, true).await?;
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let mut requests = Some(self.spawn_requests(&client, true));
        let mut clears = JoinSet::new();
        let mut printed = 0u32;
        let mut buf = Vec::new();
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        let sleep = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now));
        tokio::pin!(sleep);

        let ending = loop {
            tokio::select! {
                done = run::maybe(&mut requests) => {
                    requests = None;
                    match done {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => break Ending::Failed(e),
                        Err(e) => break Ending::Failed(anyhow::Error::new(e).context("the subscribe task failed")),
                    }
                    if self.exit_after_subscribe {
                        break Ending::Done;
                    }
                }
                event = events.recv() => match event {
                    Some(Event::Message { publish, .. }) => {
                        match self.on_message(&client, &publish, &mut clears, &mut buf) {
                            Ok(Step::Printed) => {
                                printed += 1;
                                if self.count == Some(printed) {
                                    break Ending::Done;
                                }
                            }
                            Ok(Step::Skipped) => {}
                            Ok(Step::Stop) => break Ending::Done,
                            Err(e) => break Ending::Failed(e),
                        }
                    }
                    Some(Event::Connected { session_present }) => {
                        debug!(session_present, "reconnected");
                        if !session_present && requests.is_none() {
                            requests = Some(self.spawn_requests(&client, false));
                        }
                    }
                    Some(Event::Disconnected { reason, will_reconnect: true }) => {
                        run::warning(format_args!("connection lost: {reason}; reconnecting"));
                    }
                    Some(Event::Disconnected { reason, will_reconnect: false }) => {
                        break Ending::Lost(anyhow::anyhow!("connection lost: {reason}"));
                    }
                    Some(Event::ConnectionRefused { reason_code }) => {
                        let version = self.settings.client.version;
                        break Ending::Lost(Exit::refused(reason_code, version).into());
                    }
                    Some(other) => debug!(?other, "event ignored"),
                    None => break Ending::Lost(anyhow::anyhow!("the client stopped")),
                },
                () = &mut sleep, if deadline.is_some() => {
                    let secs = self.timeout.unwrap_or_default().as_secs_f64();
                    break Ending::Failed(Exit::timeout(format!("timed out after {secs} s")).into());
                }
                _ = &mut ctrl_c => break Ending::Done,
            }
        };
        if let Some(r) = requests {
            r.abort();
        }
        let failure = match ending {
            Ending::Lost(e) => return Err(e),
            Ending::Failed(e) => Some(e),
            Ending::Done => None,
        };
        self.finish(&mut events, clears).await;
        let disconnected = run::disconnect(
            &client,
            &mut events,
            self.settings.properties.disconnect_session_expiry,
        )
        .await;
        match failure {
            Some(e) => Err(e),
            None => disconnected,
        }
    }

    /// Waits (a bounded time) for the retained messages being cleared to go out, so that
    /// DISCONNECT follows them.
    async fn finish(&self, events: &mut Events, mut clears: JoinSet<anyhow::Result<()>>) {
        let all = async {
            while let Some(done) = clears.join_next().await {
                let failed = match done {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => e,
                    Err(e) => e.into(),
                };
                run::warning(format_args!("cannot clear a retained message: {failed:#}"));
            }
        };
        let bounded = tokio::time::timeout(self.settings.connect_timeout, all);
        match run::while_draining(events, bounded).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => run::warning("gave up waiting for retained messages to be cleared"),
            Err(e) => run::warning(format_args!("{e:#}")),
        }
    }

    /// SUBSCRIBE, then UNSUBSCRIBE (`-U`, on the first connection only), as a task so
    /// that messages keep being printed while they are answered.
    fn spawn_requests(&self, client: &Client, first: bool) -> JoinHandle<anyhow::Result<()>> {
        let client = client.clone();
        let subscriptions = self.subscriptions.clone();
        let properties = self.properties.clone();
        let unsubscribe = if first {
            self.unsubscribe.clone()
        } else {
            Vec::new()
        };
        let unsubscribe_properties = self.unsubscribe_properties.clone();
        tokio::spawn(async move {
            if !subscriptions.is_empty() {
                let filters: Vec<String> =
                    subscriptions.iter().map(|s| s.filter.to_string()).collect();
                let codes = client
                    .subscribe(subscriptions, properties)
                    .await
                    .map_err(|e| run::client_error(&e))
                    .context("cannot subscribe")?;
                let mut refused = 0;
                for (filter, code) in filters.iter().zip(&codes) {
                    if code.is_error() {
                        refused += 1;
                        run::warning(format_args!("subscription to {filter} refused: {code}"));
                    } else {
                        debug!(%filter, %code, "subscribed");
                    }
                }
                if refused == filters.len() {
                    bail!("every subscription was refused");
                }
            }
            if !unsubscribe.is_empty() {
                let filters: Vec<String> = unsubscribe.iter().map(ToString::to_string).collect();
                let codes = client
                    .unsubscribe_with(unsubscribe, unsubscribe_properties)
                    .await
                    .map_err(|e| run::client_error(&e))
                    .context("cannot unsubscribe")?;
                for (filter, code) in filters.iter().zip(&codes) {
                    if code.is_error() {
                        run::warning(format_args!("unsubscribe from {filter}: {code}"));
                    } else {
                        debug!(%filter, %code, "unsubscribed");
                    }
                }
            }
            Ok(())
        })
    }

    /// What to do with one message, in mosquitto_sub's order: `-T` first, then
    /// `--retained-only`, `--remove-retained`, `-R`, then print.
    fn on_message(
        &self,
        client: &Client,
        publish: &Publish,
        clears: &mut JoinSet<anyhow::Result<()>>,
        buf: &mut Vec<u8>,
    ) -> anyhow::Result<Step> {
        if self.filter_out.iter().any(|f| f.matches(&publish.topic)) {
            return Ok(Step::Skipped);
        }
        if self.retained_only && !publish.retain {
            return Ok(Step::Stop);
        }
        if self.remove_retained && publish.retain && !publish.payload.is_empty() {
            let client = client.clone();
            let clear = PublishRequest::new(publish.topic.clone(), bytes::Bytes::new())
                .with_qos(QoS::AtLeastOnce)
                .with_retain(true);
            clears.spawn(async move {
                client
                    .publish(clear)
                    .await
                    .map_err(|e| run::client_error(&e))?;
                Ok(())
            });
        }
        if self.no_retained && publish.retain {
            return Ok(Step::Skipped);
        }
        if run::print(&self.printer, publish, buf)? {
            Ok(Step::Printed)
        } else {
            Ok(Step::Stop)
        }
    }
}

/// What became of one message.
enum Step {
    Printed,
    Skipped,
    Stop,
}

fn filter(flag: &str, text: &str) -> anyhow::Result<TopicFilter> {
    TopicFilter::new(text).with_context(|| format!("{flag} {text:?}"))
}

/// Runs `mqtt sub` to the end.
pub fn run(args: &SubArgs) -> anyhow::Result<()> {
    let plan = Plan::resolve(args)?;
    run::runtime()?.block_on(plan.execute())
}
