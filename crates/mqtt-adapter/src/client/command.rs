//! What a client handle asks of its driver, each command with the channel its answer goes to.

use mqtt_core::client::{AckToken, PublishRequest};
use mqtt_core::packet::{AuthProperties, SubscribeProperties, Subscription, UnsubscribeProperties};
use mqtt_core::topic::TopicFilter;
use mqtt_core::ReasonCode;
use tokio::sync::oneshot;

use super::Error;

/// Where the driver answers one command.
pub type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// One request of a client handle.
#[derive(Debug)]
pub enum Command {
    /// Publish; answered at the end of the QoS flow.
    Publish {
        /// The message.
        request: PublishRequest,
        /// `None` for `try_publish`.
        done: Option<Reply<ReasonCode>>,
    },
    /// Subscribe; answered with the SUBACK's reason codes.
    Subscribe {
        /// The filters and their options.
        subscriptions: Vec<Subscription>,
        /// 5.0 properties.
        properties: SubscribeProperties,
        /// The answer.
        done: Reply<Vec<ReasonCode>>,
    },
    /// Unsubscribe; answered with the UNSUBACK's reason codes.
    Unsubscribe {
        /// The filters.
        filters: Vec<TopicFilter>,
        /// 5.0 properties.
        properties: UnsubscribeProperties,
        /// The answer.
        done: Reply<Vec<ReasonCode>>,
    },
    /// Acknowledge a message received with manual acks.
    Ack {
        /// From the message's event.
        token: AckToken,
        /// The answer.
        done: Reply<()>,
    },
    /// Send AUTH (5.0).
    Auth {
        /// Method and data.
        properties: AuthProperties,
        /// 0x18 or 0x19.
        reason_code: ReasonCode,
        /// The answer.
        done: Reply<()>,
    },
    /// Disconnect gracefully once what is in flight completes.
    Disconnect {
        /// For the DISCONNECT packet (5.0).
        reason_code: ReasonCode,
        /// A new Session Expiry Interval (5.0).
        session_expiry: Option<u32>,
        /// `None` when every handle was dropped.
        done: Option<Reply<()>>,
    },
}
