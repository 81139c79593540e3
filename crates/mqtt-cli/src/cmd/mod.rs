//! One module per subcommand: [`broker`] runs a broker; [`publish`], [`subscribe`] and [`rr`]
//! are the clients, with mosquitto_pub's, mosquitto_sub's and mosquitto_rr's flags; [`bench`]
//! loads a broker with many clients and measures it.

pub mod bench;
pub mod broker;
pub mod publish;
pub mod rr;
pub mod subscribe;
