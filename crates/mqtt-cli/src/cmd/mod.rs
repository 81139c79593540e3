//! One module per subcommand (`publish`, `subscribe`, `rr` and `bench` will join `broker`).

pub mod broker;
