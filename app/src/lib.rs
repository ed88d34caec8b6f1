//! Omnicast's desktop app as a library, shared by the binary, its tests and benchmarks: the
//! media engine, the service that runs sessions for the window and kiosk mode, the window.

pub mod engine;
pub mod gui;
pub mod kiosk;
pub mod service;
pub mod settings;
