//! The flags `mqtt pub`, `mqtt sub` and `mqtt rr` share, named as mosquitto's clients name
//! them (`-h -p -L -i -I -k -u -P -c -x -V -D`, the will, TLS), and what they resolve to: the
//! URL, the client options and the TLS files of one connection ([`Settings`]).

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use mqtt_core::client::ClientOptions;
use mqtt_core::packet::Will;
use mqtt_core::topic::TopicName;
use mqtt_core::{ProtocolVersion, QoS};

use crate::props::{PacketKind, Properties};

/// Flags of every client command: where to connect, as whom, with which session, will and
/// TLS files.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// Host to connect to [default: localhost]
    #[arg(short = 'h', long, value_name = "HOST", help_heading = "Connection")]
    pub host: Option<String>,
    /// Port [default: 1883, or 8883 with TLS]
    #[arg(short, long, value_name = "PORT", help_heading = "Connection")]
    pub port: Option<u16>,
    /// Host, port, credentials and topic as one URL: `mqtt(s)://[USER[:PASS]@]HOST[:PORT]/TOPIC`
    #[arg(short = 'L', long = "url", value_name = "URL", conflicts_with_all = ["host", "port"],
          help_heading = "Connection")]
    pub url: Option<String>,
    /// Client identifier [default: 3.x: mqtt- and random characters; 5.0: assigned by the
    /// server]
    #[arg(
        short = 'i',
        long = "id",
        value_name = "ID",
        help_heading = "Connection"
    )]
    pub id: Option<String>,
    /// Client identifier: this prefix followed by the process id
    #[arg(
        short = 'I',
        long = "id-prefix",
        value_name = "PREFIX",
        conflicts_with = "id",
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
    /// Persistent session: no Clean Session / Clean Start (needs -i); in 5.0 the session
    /// never expires unless -x says otherwise
    #[arg(
        short = 'c',
        long = "disable-clean-session",
        help_heading = "Connection"
    )]
    pub persistent: bool,
    /// Session Expiry Interval in seconds (MQTT 5.0): 0 to 4294967294, or -1 / 4294967295 / ∞
    /// for never [default: 0, or never with -c]
    #[arg(short = 'x', long = "session-expiry-interval", value_name = "SECONDS",
          allow_hyphen_values = true, value_parser = parse_session_expiry,
          help_heading = "Connection")]
    pub session_expiry: Option<u32>,
    /// MQTT version: 5, 311 or 31 (also mqttv5, mqttv311, mqttv31) [default: 311, or 5 with
    /// -D or -x; mqtt rr: 5]
    #[arg(short = 'V', long = "protocol-version", value_name = "VERSION",
          value_parser = parse_version, help_heading = "Connection")]
    pub version: Option<ProtocolVersion>,
    /// `-D`.
    #[command(flatten)]
    pub properties: PropertyFlags,
    /// How long to wait for the connection and CONNACK, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = parse_seconds,
          help_heading = "Connection")]
    pub connect_timeout: f64,

    /// Topic of the will message, published by the broker if this client disappears
    #[arg(long, value_name = "TOPIC", help_heading = "Will")]
    pub will_topic: Option<String>,
    /// Payload of the will message [default: empty]
    #[arg(
        long,
        value_name = "PAYLOAD",
        requires = "will_topic",
        allow_hyphen_values = true,
        help_heading = "Will"
    )]
    pub will_payload: Option<String>,
    /// QoS of the will message
    #[arg(long, value_name = "QOS", requires = "will_topic", value_parser = parse_qos,
          help_heading = "Will")]
    pub will_qos: Option<QoS>,
    /// Retain the will message
    #[arg(long, requires = "will_topic", help_heading = "Will")]
    pub will_retain: bool,

    /// TLS files and checks.
    #[command(flatten)]
    pub tls: TlsArgs,

    /// Debug log on stderr (-dd: trace)
    #[arg(short = 'd', long = "debug", action = ArgAction::Count)]
    pub debug: u8,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
}

/// The TLS flags of every client command (and of `mqtt bench`).
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// PEM file of the CA certificates to trust; turns TLS on
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    pub cafile: Option<PathBuf>,
    /// PEM client certificate (with --key); turns TLS on
    #[arg(long, value_name = "FILE", requires = "key", help_heading = "TLS")]
    pub cert: Option<PathBuf>,
    /// PEM private key of --cert
    #[arg(long, value_name = "FILE", requires = "cert", help_heading = "TLS")]
    pub key: Option<PathBuf>,
    /// Do not verify the server's certificate at all (tests only); turns TLS on
    #[arg(long, help_heading = "TLS")]
    pub insecure: bool,
    /// TLS, trusting the system's CA certificates
    #[arg(long, help_heading = "TLS")]
    pub tls_use_os_certs: bool,
}

/// Every `-D COMMAND PROPERTY VALUE` (or `-D COMMAND user-property NAME VALUE`), each as
/// its words. Written by hand because clap's derive cannot keep the values of each
/// occurrence apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertyFlags(pub Vec<Vec<String>>);

impl FromArgMatches for PropertyFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let occurrences = matches
            .get_occurrences::<String>(Self::ID)
            .map(|o| o.map(|values| values.cloned().collect()).collect())
            .unwrap_or_default();
        Ok(Self(occurrences))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for PropertyFlags {
    fn augment_args(cmd: Command) -> Command {
        cmd.arg(
            Arg::new(Self::ID)
                .short('D')
                .long("property")
                .num_args(3..=4)
                .action(ArgAction::Append)
                .value_names(["COMMAND", "PROPERTY", "VALUE"])
                .help_heading("Connection")
                .help(
                    "MQTT 5.0 property of a packet: -D COMMAND PROPERTY VALUE, or -D COMMAND \
                     user-property NAME VALUE (COMMAND: connect, publish, subscribe, \
                     unsubscribe, disconnect, will); repeatable",
                ),
        )
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl PropertyFlags {
    const ID: &'static str = "property";
}

/// The TLS files and switches of a connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// `--cafile`.
    pub ca_file: Option<PathBuf>,
    /// `--cert`.
    pub cert_file: Option<PathBuf>,
    /// `--key`.
    pub key_file: Option<PathBuf>,
    /// `--insecure`.
    pub insecure: bool,
}

/// One connection, resolved from the flags: nothing left to check.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `mqtt://host:port` or `mqtts://host:port`.
    pub url: String,
    /// The client's options: version, identifier, session, will, CONNECT properties.
    pub client: ClientOptions,
    /// TLS files, used with `mqtts://`.
    pub tls: TlsFiles,
    /// How long to wait for the connection.
    pub connect_timeout: Duration,
    /// The topic of `-L`, if it had one.
    pub url_topic: Option<String>,
    /// Every `-D`, by packet.
    pub properties: Properties,
}

impl Settings {
    /// The topic to publish to: `-t`, else the one in the `-L` URL.
    pub fn publish_topic(&self, flag: Option<&String>) -> anyhow::Result<TopicName> {
        let Some(topic) = flag.or(self.url_topic.as_ref()) else {
            bail!("no topic: give -t TOPIC");
        };
        TopicName::new(topic.as_str()).with_context(|| format!("-t {topic:?}"))
    }

    /// Checks the flags and resolves them. `default_version` is the command's default;
    /// `sends` lists the packets it sends (a `-D` for any other is refused).
    pub fn resolve(
        args: &ConnArgs,
        default_version: ProtocolVersion,
        sends: &[PacketKind],
    ) -> anyhow::Result<Self> {
        let properties = Properties::parse(&args.properties.0, sends)?;
        let version = match args.version {
            Some(v) => {
                if !v.is_v5() {
                    if properties.any {
                        bail!(
                            "-D sets MQTT 5.0 properties: it needs -V 5, not -V {}",
                            version_flag(v)
                        );
                    }
                    if args.session_expiry.is_some() {
                        bail!(
                            "-x sets an MQTT 5.0 property: it needs -V 5, not -V {}",
                            version_flag(v)
                        );
                    }
                }
                v
            }
            None if properties.any || args.session_expiry.is_some() => ProtocolVersion::V5,
            None => default_version,
        };

        let url = args.url.as_deref().map(Url::parse).transpose()?;
        let tls_asked = args.tls.cafile.is_some()
            || args.tls.cert.is_some()
            || args.tls.insecure
            || args.tls.tls_use_os_certs
            || url.as_ref().is_some_and(|u| u.tls)
            || (url.is_none() && args.port == Some(8883));
        let scheme = if tls_asked { "mqtts" } else { "mqtt" };
        let host = args
            .host
            .clone()
            .or_else(|| url.as_ref().map(|u| u.host.clone()))
            .unwrap_or_else(|| "localhost".to_owned());
        let port = args
            .port
            .or_else(|| url.as_ref().and_then(|u| u.port))
            .unwrap_or(if tls_asked { 8883 } else { 1883 });
        let host_part = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host
        };

        let explicit_id = args.id.clone();
        let client_id = match (&args.id, &args.id_prefix) {
            (Some(id), _) => id.clone(),
            (None, Some(prefix)) => format!("{prefix}{}", std::process::id()),
            (None, None) if version.is_v5() => String::new(),
            (None, None) => random_id(),
        };
        let mut client = ClientOptions::new(client_id);
        client.version = version;
        client.clean_start = !args.persistent;
        client.keep_alive = Duration::from_secs(u64::from(args.keepalive));
        client.connect_timeout = Duration::from_secs_f64(args.connect_timeout);
        client.seed = seed();
        client.connect_properties = properties.connect.clone();
        if version.is_v5() {
            let expiry = match (args.session_expiry, args.persistent) {
                (Some(x), _) => Some(x),
                (None, true) => Some(u32::MAX),
                (None, false) => None,
            };
            if let Some(expiry) = expiry {
                if client.connect_properties.session_expiry_interval.is_some() {
                    bail!("the session expiry interval is given twice (-x or -c, and -D connect session-expiry-interval)");
                }
                client.connect_properties.session_expiry_interval = Some(expiry);
            }
            let never_expires = client.connect_properties.session_expiry_interval == Some(u32::MAX);
            if never_expires && explicit_id.is_none() {
                bail!("a session that never expires (-c, or -x -1) needs a client id (-i)");
            }
        } else if args.persistent && explicit_id.is_none() {
            bail!("-c needs a client id (-i)");
        }

        let username = args
            .username
            .clone()
            .or_else(|| url.as_ref().and_then(|u| u.username.clone()));
        let password = args
            .password
            .clone()
            .or_else(|| url.as_ref().and_then(|u| u.password.clone()));
        if password.is_some() && username.is_none() && !version.is_v5() {
            bail!("a password (-P) needs a user name (-u) in MQTT 3.1 and 3.1.1");
        }
        client.username = username.map(Into::into);
        client.password = password.map(|p| p.into_bytes().into());

        if let Some(topic) = &args.will_topic {
            let topic = TopicName::new(topic.as_str())
                .with_context(|| format!("--will-topic {topic:?}"))?;
            client.will = Some(Will {
                topic,
                payload: args
                    .will_payload
                    .clone()
                    .unwrap_or_default()
                    .into_bytes()
                    .into(),
                qos: args.will_qos.unwrap_or_default(),
                retain: args.will_retain,
                properties: properties.will.clone(),
            });
        } else if properties.will != Default::default() {
            bail!("-D will ...: there is no will (--will-topic)");
        }

        Ok(Self {
            url: format!("{scheme}://{host_part}:{port}"),
            client,
            tls: TlsFiles {
                ca_file: args.tls.cafile.clone(),
                cert_file: args.tls.cert.clone(),
                key_file: args.tls.key.clone(),
                insecure: args.tls.insecure,
            },
            connect_timeout: Duration::from_secs_f64(args.connect_timeout),
            url_topic: url.map(|u| u.topic),
            properties,
        })
    }
}

/// The parts of a `-L` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Url {
    tls: bool,
    username: Option<String>,
    password: Option<String>,
    host: String,
    port: Option<u16>,
    topic: String,
}

impl Url {
    /// `mqtt(s)://[user[:pass]@]host[:port]/topic`.
    fn parse(url: &str) -> anyhow::Result<Self> {
        let bad = |why: &str| anyhow::anyhow!("-L {url}: {why}");
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected mqtt://[USER[:PASS]@]HOST[:PORT]/TOPIC"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" => false,
            "mqtts" => true,
            _ => return Err(bad("the scheme must be mqtt:// or mqtts://")),
        };
        let (authority, topic) = rest.split_once('/').ok_or_else(|| bad("no topic"))?;
        let (credentials, address) = match authority.rsplit_once('@') {
            Some((c, a)) => (Some(c), a),
            None => (None, authority),
        };
        let (username, password) = match credentials {
            Some(c) => match c.split_once(':') {
                Some((u, p)) => (Some(u.to_owned()), Some(p.to_owned())),
                None => (Some(c.to_owned()), None),
            },
            None => (None, None),
        };
        let (host, port) = match address.strip_prefix('[') {
            Some(v6) => {
                let (host, tail) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
                (host, tail.strip_prefix(':'))
            }
            None => match address.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (address, None),
            },
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .map_err(|_| bad("the port must be 0 to 65535"))
            })
            .transpose()?;
        Ok(Self {
            tls,
            username,
            password,
            host: host.to_owned(),
            port,
            topic: topic.to_owned(),
        })
    }
}

/// `-q`, `--will-qos`: 0, 1 or 2.
pub fn parse_qos(s: &str) -> Result<QoS, String> {
    s.parse::<u8>()
        .ok()
        .and_then(QoS::from_u8)
        .ok_or_else(|| format!("`{s}` is not a QoS: use 0, 1 or 2"))
}

/// `-V`: 5, 311, 31, mqttv5, mqttv311, mqttv31.
pub fn parse_version(s: &str) -> Result<ProtocolVersion, String> {
    match s.to_ascii_lowercase().as_str() {
        "5" | "mqttv5" | "50" | "5.0" => Ok(ProtocolVersion::V5),
        "311" | "mqttv311" | "3.1.1" => Ok(ProtocolVersion::V311),
        "31" | "mqttv31" | "3.1" => Ok(ProtocolVersion::V31),
        _ => Err(format!("`{s}` is not an MQTT version: use 5, 311 or 31")),
    }
}

/// `-x`: 0 to 4294967295; -1 and ∞ mean 4294967295 (never expires).
pub fn parse_session_expiry(s: &str) -> Result<u32, String> {
    match s {
        "-1" | "∞" => Ok(u32::MAX),
        _ => s.parse().map_err(|_| {
            format!("`{s}` is not a session expiry interval: use 0 to 4294967295, or -1 for never")
        }),
    }
}

/// A positive number of seconds, possibly fractional.
pub fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1e9 => Ok(v),
        _ => Err(format!("`{s}` is not a number of seconds greater than 0")),
    }
}

/// `--repeat-delay`: a number of seconds, 0 or more, possibly fractional.
pub fn parse_delay(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1e9).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a number of seconds, 0 or more")),
    }
}

/// `-C`, `--repeat`: 1 or more.
pub fn parse_count(s: &str) -> Result<NonZeroU32, String> {
    s.parse()
        .map_err(|_| format!("`{s}` is not a count from 1 to 4294967295"))
}

/// The spelling of `-V` for a version, for messages.
fn version_flag(v: ProtocolVersion) -> &'static str {
    match v {
        ProtocolVersion::V31 => "31",
        ProtocolVersion::V311 => "311",
        ProtocolVersion::V5 => "5",
    }
}

/// Some entropy for ids and the reconnect jitter: the clock and the process id.
fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}

/// `mqtt-` and 18 random letters and digits: 23 characters, the longest id every 3.x server
/// must accept [MQTT-3.1.3-5].
fn random_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut x = seed();
    let mut id = String::from("mqtt-");
    for _ in 0..18 {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        id.push(char::from(ALPHABET[(x % ALPHABET.len() as u64) as usize]));
    }
    id
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    #[command(disable_help_flag = true)]
    struct Cli {
        #[command(flatten)]
        conn: ConnArgs,
    }

    const SENDS: &[PacketKind] = &[
        PacketKind::Connect,
        PacketKind::Publish,
        PacketKind::Disconnect,
        PacketKind::Will,
    ];

    fn resolve(args: &[&str]) -> anyhow::Result<Settings> {
        let cli = Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied()))?;
        Settings::resolve(&cli.conn, ProtocolVersion::V311, SENDS)
    }

    fn refused(args: &[&str], needle: &str) {
        let err = format!("{:#}", resolve(args).unwrap_err());
        assert!(err.contains(needle), "{args:?}: {err}");
    }

    #[test]
    fn defaults_are_mosquittos() {
        let s = resolve(&[]).unwrap();
        assert_eq!(s.url, "mqtt://localhost:1883");
        assert_eq!(s.client.version, ProtocolVersion::V311);
        assert!(s.client.clean_start);
        assert_eq!(s.client.keep_alive, Duration::from_secs(60));
        assert!(s.client.client_id.starts_with("mqtt-"));
        assert_eq!(s.client.client_id.len(), 23);
        assert!(s.client.will.is_none());
    }

    #[test]
    fn host_port_and_tls() {
        assert_eq!(
            resolve(&["-h", "example", "-p", "1884"]).unwrap().url,
            "mqtt://example:1884"
        );
        assert_eq!(resolve(&["-h", "::1"]).unwrap().url, "mqtt://[::1]:1883");
        assert_eq!(
            resolve(&["--cafile", "ca.pem"]).unwrap().url,
            "mqtts://localhost:8883"
        );
        assert_eq!(
            resolve(&["-p", "8883"]).unwrap().url,
            "mqtts://localhost:8883"
        );
        assert_eq!(
            resolve(&["--insecure", "-p", "9"]).unwrap().url,
            "mqtts://localhost:9"
        );
    }

    #[test]
    fn url_gives_host_port_credentials_and_topic() {
        let s = resolve(&["-L", "mqtts://me:secret@broker:1999/a/b"]).unwrap();
        assert_eq!(s.url, "mqtts://broker:1999");
        assert_eq!(s.url_topic.as_deref(), Some("a/b"));
        assert_eq!(s.client.username.as_deref(), Some("me"));
        assert_eq!(s.client.password.as_deref(), Some(&b"secret"[..]));
        let s = resolve(&["-L", "mqtt://[::1]/t"]).unwrap();
        assert_eq!(s.url, "mqtt://[::1]:1883");
        refused(&["-L", "http://x/t"], "scheme");
        refused(&["-L", "mqtt://x"], "no topic");
        refused(&["-L", "mqtt://x:99999/t"], "port");
    }

    #[test]
    fn versions_and_v5_only_flags() {
        for (flag, version) in [
            ("5", ProtocolVersion::V5),
            ("mqttv5", ProtocolVersion::V5),
            ("311", ProtocolVersion::V311),
            ("mqttv311", ProtocolVersion::V311),
            ("31", ProtocolVersion::V31),
            ("mqttv31", ProtocolVersion::V31),
        ] {
            assert_eq!(resolve(&["-V", flag]).unwrap().client.version, version);
        }
        assert!(resolve(&["-V", "4"]).is_err());
        // -x and -D ask for 5.0 when -V is not given, and are refused with -V 3.x.
        let s = resolve(&["-x", "60"]).unwrap();
        assert_eq!(s.client.version, ProtocolVersion::V5);
        assert_eq!(
            s.client.connect_properties.session_expiry_interval,
            Some(60)
        );
        assert!(s.client.client_id.is_empty());
        let s = resolve(&["-D", "publish", "user-property", "k", "v"]).unwrap();
        assert_eq!(s.client.version, ProtocolVersion::V5);
        refused(&["-x", "60", "-V", "311"], "-x sets an MQTT 5.0 property");
        refused(
            &["-D", "publish", "content-type", "a", "-V", "mqttv311"],
            "-D sets",
        );
    }

    #[test]
    fn sessions() {
        let s = resolve(&["-c", "-i", "me"]).unwrap();
        assert!(!s.client.clean_start);
        assert_eq!(s.client.connect_properties.session_expiry_interval, None);
        let s = resolve(&["-c", "-i", "me", "-V", "5"]).unwrap();
        assert_eq!(
            s.client.connect_properties.session_expiry_interval,
            Some(u32::MAX)
        );
        let s = resolve(&["-c", "-i", "me", "-x", "30"]).unwrap();
        assert_eq!(
            s.client.connect_properties.session_expiry_interval,
            Some(30)
        );
        let s = resolve(&["-x", "-1", "-i", "me"]).unwrap();
        assert_eq!(
            s.client.connect_properties.session_expiry_interval,
            Some(u32::MAX)
        );
        refused(&["-c"], "needs a client id");
        refused(&["-c", "-V", "5"], "needs a client id");
        refused(&["-c", "-I", "p", "-V", "5"], "needs a client id");
        refused(
            &["-x", "5", "-D", "connect", "session-expiry-interval", "5"],
            "twice",
        );
        let s = resolve(&["-I", "pre-"]).unwrap();
        assert_eq!(
            s.client.client_id,
            format!("pre-{}", std::process::id()).as_str()
        );
    }

    #[test]
    fn credentials_and_will() {
        refused(&["-P", "secret"], "needs a user name");
        assert!(resolve(&["-P", "secret", "-V", "5"]).is_ok());
        let s = resolve(&[
            "--will-topic",
            "gone",
            "--will-payload",
            "bye",
            "--will-qos",
            "1",
            "--will-retain",
            "-D",
            "will",
            "will-delay-interval",
            "2",
        ])
        .unwrap();
        let will = s.client.will.unwrap();
        assert_eq!(will.topic.as_str(), "gone");
        assert_eq!(&will.payload[..], b"bye");
        assert_eq!(will.qos, QoS::AtLeastOnce);
        assert!(will.retain);
        assert_eq!(will.properties.will_delay_interval, Some(2));
        refused(&["--will-topic", "a/#"], "--will-topic");
        refused(&["-D", "will", "content-type", "x"], "no will");
        assert!(resolve(&["--will-payload", "x"]).is_err());
        assert!(resolve(&["--will-qos", "3", "--will-topic", "t"]).is_err());
    }

    #[test]
    fn number_flags() {
        assert!(resolve(&["-k", "4"]).is_err());
        assert_eq!(
            resolve(&["-k", "5"]).unwrap().client.keep_alive,
            Duration::from_secs(5)
        );
        assert!(resolve(&["--cert", "c.pem"]).is_err());
        assert_eq!(parse_session_expiry("∞"), Ok(u32::MAX));
        assert!(parse_session_expiry("-2").is_err());
        assert!(parse_qos("3").is_err());
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("nan").is_err());
        assert_eq!(parse_delay("0"), Ok(0.0));
        assert!(parse_delay("-1").is_err());
        assert!(parse_count("0").is_err());
    }
}
