//! Omnicast's media engine and the runner of its sessions, independent of any window.
//!
//! A broadcast captures (camera or test pattern), encodes each frame once and hands the encoded
//! frames of each [track](media::TrackSpec) to its [sinks](media::TrackSink): the network
//! fan-out, which sends the same RTP to every viewer's own peer connection. A viewer hands what
//! arrives on each track to its sinks: the decoder and its latest-frame slot. The
//! [`service::Service`] runs either under supervision, with typed commands in and typed events
//! out; the window, kiosk mode and the headless command line all use it.

pub mod audio;
pub mod broadcaster;
pub mod capture;
pub mod channels;
pub mod codec;
pub mod convert;
pub mod fanout;
pub mod feedback;
pub mod figures;
pub mod file_source;
pub mod frame;
pub mod hosting;
pub mod lipsync;
pub mod media;
pub mod pattern;
pub mod peer;
pub mod record;
pub mod replay;
pub mod rtp;
pub mod service;
pub mod session;
pub mod settings;
pub mod signal;
pub mod sink;
pub mod slot;
pub mod stamp;
pub mod values;
pub mod viewer;
pub mod worker;
