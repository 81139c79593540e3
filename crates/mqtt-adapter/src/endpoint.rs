//! Where a client connects, parsed from its URL: `mqtt://host[:1883]` or `mqtts://host[:8883]`.

use std::sync::Arc;

use rustls_pki_types::ServerName;

use crate::client::{Error, TlsOptions};
use crate::tls::client_config;

/// A parsed URL and, for `mqtts://`, the TLS client configuration. Each runtime opens it with
/// its own sockets.
#[derive(Clone)]
pub struct Endpoint {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// For `mqtts://`: the configuration and the name the server's certificate must carry.
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

impl Endpoint {
    /// Parses `url` and, for `mqtts://`, builds the TLS client configuration from `tls`.
    pub fn parse(url: &str, tls: &TlsOptions) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidUrl(format!("{url:?}: {reason}"));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected mqtt://host[:port] or mqtts://host[:port]"))?;
        let (secure, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" => (false, 1883),
            "mqtts" => (true, 8883),
            "ws" | "wss" => return Err(invalid("WebSocket is not supported yet")),
            _ => return Err(invalid("the scheme must be mqtt or mqtts")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(invalid(
                "only scheme://host[:port]; credentials go in ClientOptions",
            ));
        }
        // `[v6]:port`, `[v6]`, `host:port` or `host`.
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, tail) = v6.split_once(']').ok_or_else(|| invalid("unclosed '['"))?;
                match tail {
                    "" => (host, None),
                    _ => (
                        host,
                        Some(
                            tail.strip_prefix(':')
                                .ok_or_else(|| invalid("junk after ']'"))?,
                        ),
                    ),
                }
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let port = match port {
            Some(p) => p
                .parse()
                .map_err(|_| invalid("the port must be 0 to 65535"))?,
            None => default_port,
        };
        let tls = match secure {
            false => None,
            true => {
                let name = ServerName::try_from(host.to_owned())
                    .map_err(|_| invalid("the host is not a valid TLS server name"))?;
                Some((client_config(tls)?, name))
            }
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Endpoint, Error> {
        let insecure = TlsOptions {
            insecure: true,
            ..TlsOptions::default()
        };
        Endpoint::parse(url, &insecure)
    }

    #[test]
    fn urls_give_host_port_and_tls() {
        for (url, host, port, tls) in [
            ("mqtt://broker", "broker", 1883, false),
            ("mqtt://broker:1999/", "broker", 1999, false),
            ("MQTTS://broker", "broker", 8883, true),
            ("mqtts://127.0.0.1:9", "127.0.0.1", 9, true),
            ("mqtt://[::1]", "::1", 1883, false),
            ("mqtts://[::1]:8884", "::1", 8884, true),
        ] {
            let e = parse(url).unwrap();
            assert_eq!(
                (e.host.as_str(), e.port, e.tls.is_some()),
                (host, port, tls),
                "{url}"
            );
        }
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in [
            "broker:1883",
            "http://broker",
            "ws://broker",
            "mqtt://",
            "mqtt://:1883",
            "mqtt://broker:",
            "mqtt://broker:65536",
            "mqtt://user:pw@broker",
            "mqtt://broker/path",
            "mqtt://[::1",
            "mqtt://[::1]1883",
        ] {
            assert!(matches!(parse(url), Err(Error::InvalidUrl(_))), "{url}");
        }
    }

    #[test]
    fn client_certificate_needs_both_files() {
        let options = TlsOptions {
            cert_file: Some("/nonexistent/cert.pem".into()),
            insecure: true,
            ..TlsOptions::default()
        };
        let err = Endpoint::parse("mqtts://broker", &options).unwrap_err();
        assert!(matches!(err, Error::Tls(_)), "{err:?}");
    }
}
