//! What the client commands share at run time: the tokio runtime, connecting, awaiting a
//! request while the events keep flowing, and the exit statuses scripts rely on.
//!
//! Exit statuses, as mosquitto's clients have them: 0 success; 1 any error (cannot connect,
//! connection lost, bad arguments found after parsing); 2 command-line syntax (clap); 27
//! timed out (`-W`); a refused connection exits with the CONNACK code (1 to 5 in MQTT 3.x,
//! 128 and above in 5.0).

use core::fmt;
use std::future::Future;
use std::io::{ErrorKind, Write as _};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use mqtt_core::{ProtocolVersion, Publish, ReasonCode};
use mqtt_tokio::client::{Client, ConnectOptions, Event, Events, TlsOptions};
use tracing::debug;

use crate::connect::Settings;
use crate::format::Printer;

/// The exit status of `-W` running out (mosquitto's `MOSQ_ERR_TIMEOUT`).
pub const EXIT_TIMEOUT: u8 = 27;

/// An error with its own exit status; any other error exits with 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The process exit status.
    pub code: u8,
    message: String,
}

impl Exit {
    /// `-W` ran out.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_TIMEOUT,
            message: message.into(),
        }
    }

    /// The server refused the connection: the status is the CONNACK code, as 3.x numbers
    /// it when that is the version spoken.
    pub fn refused(reason_code: ReasonCode, version: ProtocolVersion) -> Self {
        let code = if version.is_v5() {
            reason_code.as_u8()
        } else {
            match reason_code {
                ReasonCode::UnsupportedProtocolVersion => 1,
                ReasonCode::ClientIdentifierNotValid => 2,
                ReasonCode::ServerUnavailable => 3,
                ReasonCode::BadUserNameOrPassword => 4,
                ReasonCode::NotAuthorized => 5,
                other => other.as_u8(),
            }
        };
        Self {
            code,
            message: format!("connection refused: {reason_code}"),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// A single-threaded runtime: a client command is one connection.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

/// Connects as `settings` say and waits for CONNACK.
pub async fn connect(settings: &Settings, reconnect: bool) -> anyhow::Result<(Client, Events)> {
    let mut options = ConnectOptions::new(settings.url.clone(), settings.client.clone());
    options.tls = TlsOptions {
        ca_file: settings.tls.ca_file.clone(),
        cert_file: settings.tls.cert_file.clone(),
        key_file: settings.tls.key_file.clone(),
        insecure: settings.tls.insecure,
    };
    options.reconnect = reconnect;
    options.connect_timeout = settings.connect_timeout;
    let version = settings.client.version;
    debug!(url = %settings.url, %version, "connecting");
    let (client, mut events) = Client::connect(options)
        .await
        .map_err(|e| refusal(&e, version).unwrap_or_else(|| client_error(&e)))
        .with_context(|| format!("cannot connect to {}", settings.url))?;
    let deadline = tokio::time::sleep(settings.connect_timeout + Duration::from_secs(1));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::Connected { session_present }) => {
                    debug!(session_present, "connected");
                    return Ok((client, events));
                }
                Some(Event::ConnectionRefused { reason_code }) => {
                    return Err(Exit::refused(reason_code, version).into());
                }
                Some(Event::Disconnected { reason, will_reconnect: false }) => {
                    bail!("cannot connect to {}: {reason}", settings.url);
                }
                Some(other) => debug!(?other, "event before CONNACK"),
                None => bail!("cannot connect to {}: the client stopped", settings.url),
            },
            () = &mut deadline => bail!("cannot connect to {}: no CONNACK in time", settings.url),
        }
    }
}

/// The exit status of a connection the server refused, when `error` says so.
fn refusal(error: &mqtt_tokio::client::Error, version: ProtocolVersion) -> Option<anyhow::Error> {
    match error {
        mqtt_tokio::client::Error::Refused(code) => Some(Exit::refused(*code, version).into()),
        _ => None,
    }
}

/// A client error as one message: its `Display` already says what its source says.
pub fn client_error(e: &mqtt_tokio::client::Error) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Awaits `request` while draining `events`, so the client never waits on a full event
/// queue; messages that arrive meanwhile are dropped. Fails if the connection is lost for
/// good.
pub async fn while_draining<T>(
    events: &mut Events,
    request: impl Future<Output = T>,
) -> anyhow::Result<T> {
    tokio::pin!(request);
    loop {
        tokio::select! {
            out = &mut request => return Ok(out),
            event = events.recv() => match event {
                Some(Event::Disconnected { reason, will_reconnect: false }) => {
                    bail!("connection lost: {reason}");
                }
                Some(Event::Disconnected { reason, will_reconnect: true }) => {
                    warning(format_args!("connection lost: {reason}; reconnecting"));
                }
                Some(Event::ConnectionRefused { reason_code }) => {
                    bail!("reconnection refused: {reason_code}");
                }
                Some(other) => debug!(?other, "event ignored"),
                None => bail!("the client stopped"),
            },
        }
    }
}

/// Ends the connection: DISCONNECT (with the session expiry of `-D disconnect`, if given),
/// once the messages in flight are through. The events that follow are drained.
pub async fn disconnect(
    client: &Client,
    events: &mut Events,
    session_expiry: Option<u32>,
) -> anyhow::Result<()> {
    let request = client.disconnect_with(ReasonCode::Success, session_expiry);
    tokio::pin!(request);
    loop {
        tokio::select! {
            done = &mut request => {
                return done.map_err(|e| client_error(&e)).context("cannot disconnect");
            }
            // `Disconnected` comes before the answer; the rest is of no interest now.
            event = events.recv() => if event.is_none() {
                return Ok(());
            },
        }
    }
}

/// Prints `publish` on stdout as `printer` says, reusing `buf`. `Ok(false)` when stdout is
/// closed (its reader, `head -1` say, went away): time to stop.
pub fn print(printer: &Printer, publish: &Publish, buf: &mut Vec<u8>) -> anyhow::Result<bool> {
    buf.clear();
    if let Some(w) = printer.render(publish, SystemTime::now(), buf) {
        warning(w);
    }
    if buf.is_empty() {
        return Ok(true);
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(buf).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).context("cannot write to stdout"),
    }
}

/// A problem worth telling but not worth stopping for, on stderr.
pub fn warning(message: impl fmt::Display) {
    eprintln!("mqtt: warning: {message}");
}

/// Awaits the future in `slot`, or never when there is none: for a `select!` branch that is
/// not always armed.
pub async fn maybe<F: Future + Unpin>(slot: &mut Option<F>) -> F::Output {
    match slot {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}
