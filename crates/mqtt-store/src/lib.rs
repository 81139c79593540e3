//! mqtt-store (being built).
