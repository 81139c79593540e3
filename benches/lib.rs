//! Shared workloads for the criterion benches in this folder: see `codec.rs`.
