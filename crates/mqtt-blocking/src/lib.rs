//! mqtt-blocking (being built).
