//! Omnicast's desktop app as a library: the media engine, shared by the binary, its tests and
//! benchmarks.

pub mod engine;
