//! The media engine: capture or test pattern, H.264 encoded once, RTP fanned out to every viewer;
//! on the viewing side, depacketized, decoded and kept as the latest frame.

pub mod broadcaster;
pub mod capture;
pub mod codec;
pub mod convert;
pub mod feedback;
pub mod frame;
pub mod pattern;
pub mod peer;
pub mod rtp;
pub mod session;
pub mod signal;
pub mod slot;
pub mod stamp;
pub mod viewer;
