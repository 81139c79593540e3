//! The `Server` builder every adapter offers, written once: a macro, because each adapter's
//! `Server` is its own type (its `start` is async or blocking, its `RunningServer` its own).

/// Defines `pub struct Server` (a broker configuration, its listeners and its store) with
/// `new`, `listen_tcp`, `listen_tls` and `persist`, in the adapter module that invokes it; the
/// adapter adds `start` and `run_until`, which read `self.config`, `self.listeners` and
/// `self.store`.
#[macro_export]
macro_rules! server_builder {
    () => {
        /// A broker server to be started: its configuration, what to listen on, and where
        /// to keep what must survive a restart.
        #[derive(Debug, Clone)]
        pub struct Server {
            config: ::mqtt_core::broker::BrokerConfig,
            listeners: ::std::vec::Vec<(
                ::std::net::SocketAddr,
                ::std::option::Option<$crate::tls::TlsConfig>,
            )>,
            store: ::std::option::Option<$crate::broker::StoreOptions>,
        }

        impl Server {
            /// A server for `config`, with no listener yet, keeping everything in memory.
            pub fn new(config: ::mqtt_core::broker::BrokerConfig) -> Self {
                Self {
                    config,
                    listeners: ::std::vec::Vec::new(),
                    store: ::std::option::Option::None,
                }
            }

            /// Keeps sessions, their messages and retained messages in the store `options`
            /// names (created if missing; recovered from at start), and acknowledges what
            /// promises durability only once it is stored.
            pub fn persist(mut self, options: $crate::broker::StoreOptions) -> Self {
                self.store = ::std::option::Option::Some(options);
                self
            }

            /// Adds a plain TCP listener (`mqtt://`). Port 0 picks a free port: see
            /// `RunningServer::local_addrs`.
            pub fn listen_tcp(mut self, addr: ::std::net::SocketAddr) -> Self {
                self.listeners.push((addr, ::std::option::Option::None));
                self
            }

            /// Adds a TLS listener (`mqtts://`) with the certificate and key in `tls`.
            pub fn listen_tls(
                mut self,
                addr: ::std::net::SocketAddr,
                tls: $crate::tls::TlsConfig,
            ) -> Self {
                self.listeners
                    .push((addr, ::std::option::Option::Some(tls)));
                self
            }
        }
    };
}
