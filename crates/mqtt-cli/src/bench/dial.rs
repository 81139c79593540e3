//! Opening the load clients: the connection `Settings` the other commands use, with a
//! client id per client and queue sizes tuned for throughput.

use std::time::Duration;

use anyhow::Context;
use mqtt_tokio::client::{Client, ConnectOptions, Events, TlsOptions};

use super::plan::Plan;
use super::window::Sizes;
use crate::run::{self, Exit};

/// What a client is for: it decides its queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Publishes: queues sized to its window ([`Sizes`]).
    Publisher,
    /// Receives: a deep event queue, so the driver rarely stops reading.
    Subscriber,
    /// Connects and idles (`conn`): the defaults.
    Idle,
}

impl Role {
    fn tag(self) -> &'static str {
        match self {
            Self::Publisher => "p",
            Self::Subscriber => "s",
            Self::Idle => "c",
        }
    }
}

/// Connects client `index` of `role` and returns once the server accepted it. No
/// reconnection: a lost connection is an error of the run.
pub async fn connect(plan: &Plan, role: Role, index: usize) -> anyhow::Result<(Client, Events)> {
    let settings = &plan.settings;
    let mut client = settings.client.clone();
    client.client_id = format!("{}{}{index}", plan.id_prefix, role.tag()).into();
    let mut options = ConnectOptions::new(settings.url.clone(), client);
    options.tls = TlsOptions {
        ca_file: settings.tls.ca_file.clone(),
        cert_file: settings.tls.cert_file.clone(),
        key_file: settings.tls.key_file.clone(),
        insecure: settings.tls.insecure,
    };
    options.reconnect = false;
    options.connect_timeout = settings.connect_timeout;
    // A publisher that is done waits this long for its last acknowledgements.
    options.drain_timeout = plan.grace.max(Duration::from_secs(1));
    match role {
        Role::Publisher => {
            let sizes = Sizes::for_load(plan.load);
            options.client.max_inflight = sizes.wire;
            options.client.max_queued = sizes.queue();
            options.request_queue = sizes.queue();
        }
        Role::Subscriber => {
            options.event_queue = 4096;
            if plan.persistent_subscribers {
                options.client.clean_start = false;
                if options.client.version.is_v5() {
                    options.client.connect_properties.session_expiry_interval = Some(3600);
                }
            }
        }
        Role::Idle => {}
    }
    let version = options.client.version;
    Client::connect(options)
        .await
        .map_err(|e| match e {
            mqtt_tokio::client::Error::Refused(code) => Exit::refused(code, version).into(),
            other => run::client_error(&other),
        })
        .with_context(|| format!("cannot connect to {}", settings.url))
}
