//! mqtt-smol (being built).
