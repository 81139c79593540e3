//! mqtt-conformance (being built).
