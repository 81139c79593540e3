//! The smol adapter: `mqtt_smol`'s async broker and client, driven with `smol::block_on`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures_lite::future;
use mqtt_core::broker::BrokerConfig;
use mqtt_core::client::ClientOptions;
use mqtt_smol::broker::{RunningServer, Server};

use super::async_client::{self, Exec};
use crate::harness::WAIT;
use crate::{BrokerAdapter, ClientAdapter, ConnectError, Connection, Failure, RunningBroker};

/// The smol broker, `mqtt_smol::broker::Server`.
#[derive(Debug, Clone, Copy)]
pub struct SmolBroker;

/// The smol client, `mqtt_smol::client::Client`.
#[derive(Debug, Clone, Copy)]
pub struct SmolClient;

/// Blocks on futures with `smol::block_on`; their tasks run on smol's global executor.
pub(crate) struct SmolExec;

impl Exec for SmolExec {
    const NAME: &'static str = "smol";

    fn run<T>(limit: Duration, fut: impl Future<Output = T>) -> Result<Option<T>, Failure> {
        Ok(smol::block_on(future::or(
            async { Some(fut.await) },
            async {
                async_io::Timer::after(limit).await;
                None
            },
        )))
    }
}

impl BrokerAdapter for SmolBroker {
    fn name(&self) -> &'static str {
        "smol"
    }

    fn start(&self, config: BrokerConfig) -> Result<Box<dyn RunningBroker>, Failure> {
        let server = Server::new(config).listen_tcp(([127, 0, 0, 1], 0).into());
        let running = SmolExec::must("broker start", WAIT, server.start())?
            .map_err(|e| Failure::new(format!("smol broker start: {e}")))?;
        let addr = running
            .tcp_addr()
            .ok_or_else(|| Failure::new("smol broker: no TCP listener"))?;
        Ok(Box::new(SmolRunning { running, addr }))
    }
}

struct SmolRunning {
    running: RunningServer,
    addr: SocketAddr,
}

impl RunningBroker for SmolRunning {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn stop(self: Box<Self>) -> Result<(), Failure> {
        SmolExec::must("broker shutdown", WAIT, self.running.shutdown())?
            .map_err(|e| Failure::new(format!("smol broker shutdown: {e}")))
    }
}

impl ClientAdapter for SmolClient {
    fn name(&self) -> &'static str {
        "smol"
    }

    fn connect(
        &self,
        addr: SocketAddr,
        options: ClientOptions,
    ) -> Result<Connection, ConnectError> {
        async_client::connect::<mqtt_smol::client::Smol, SmolExec>(addr, options)
    }
}
