//! The tokio adapter: `mqtt_tokio`'s async broker and client, driven synchronously on one
//! shared multi-thread runtime with `Runtime::block_on`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use mqtt_core::broker::BrokerConfig;
use mqtt_core::client::ClientOptions;
use mqtt_tokio::broker::{RunningServer, Server};
use tokio::runtime::Runtime;

use super::async_client::{self, Exec};
use crate::harness::WAIT;
use crate::{BrokerAdapter, ClientAdapter, ConnectError, Connection, Failure, RunningBroker};

/// The tokio broker, `mqtt_tokio::broker::Server`.
#[derive(Debug, Clone, Copy)]
pub struct TokioBroker;

/// The tokio client, `mqtt_tokio::client::Client`.
#[derive(Debug, Clone, Copy)]
pub struct TokioClient;

/// Runs futures on the runtime every tokio broker and client of the process shares.
pub(crate) struct TokioExec;

impl Exec for TokioExec {
    const NAME: &'static str = "tokio";

    fn run<T>(limit: Duration, future: impl Future<Output = T>) -> Result<Option<T>, Failure> {
        static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
        let runtime = RUNTIME
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("conformance-tokio")
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| Failure::new(format!("cannot build the tokio runtime: {e}")))?;
        Ok(runtime
            .block_on(async { tokio::time::timeout(limit, future).await })
            .ok())
    }
}

impl BrokerAdapter for TokioBroker {
    fn name(&self) -> &'static str {
        "tokio"
    }

    fn start(&self, config: BrokerConfig) -> Result<Box<dyn RunningBroker>, Failure> {
        let server = Server::new(config).listen_tcp(([127, 0, 0, 1], 0).into());
        let running = TokioExec::must("broker start", WAIT, server.start())?
            .map_err(|e| Failure::new(format!("tokio broker start: {e}")))?;
        let addr = running
            .tcp_addr()
            .ok_or_else(|| Failure::new("tokio broker: no TCP listener"))?;
        Ok(Box::new(TokioRunning { running, addr }))
    }
}

struct TokioRunning {
    running: RunningServer,
    addr: SocketAddr,
}

impl RunningBroker for TokioRunning {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn stop(self: Box<Self>) -> Result<(), Failure> {
        TokioExec::must("broker shutdown", WAIT, self.running.shutdown())?
            .map_err(|e| Failure::new(format!("tokio broker shutdown: {e}")))
    }
}

impl ClientAdapter for TokioClient {
    fn name(&self) -> &'static str {
        "tokio"
    }

    fn connect(
        &self,
        addr: SocketAddr,
        options: ClientOptions,
    ) -> Result<Connection, ConnectError> {
        async_client::connect::<mqtt_tokio::client::Tokio, TokioExec>(addr, options)
    }
}
