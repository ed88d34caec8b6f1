//! The network fan-out: a sink that packetizes each encoded frame of a track once and publishes
//! the packets to every viewer connection, and the per-connection forwarder that copies them to
//! that connection's own RTP track (webrtc 0.21 cannot bind one local track to several
//! connections), starting at a keyframe.

use std::sync::Arc;

use tokio::sync::broadcast;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;

use crate::media::{EncodedFrame, MediaKind, TrackSink, TrackSpec};
use crate::rtp::{FramePacketizer, FramePackets};

/// Encoded frames buffered for a connection that falls behind, before it skips to a keyframe.
const FRAME_BUFFER: usize = 16;

/// One track as the network sends it: packets published once for every connection.
#[derive(Clone)]
pub struct OutTrack {
    pub spec: TrackSpec,
    frames: broadcast::Sender<Arc<FramePackets>>,
}

impl OutTrack {
    pub fn new(spec: TrackSpec) -> Self {
        Self {
            spec,
            frames: broadcast::channel(FRAME_BUFFER).0,
        }
    }

    /// The sink the track's source feeds.
    pub fn sink(&self) -> NetworkSink {
        NetworkSink {
            packetizer: FramePacketizer::new(self.spec.codec),
            frames: self.frames.clone(),
        }
    }

    /// A connection's view of the packets, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FramePackets>> {
        self.frames.subscribe()
    }
}

/// Packetizes each frame once and publishes it to every connection.
pub struct NetworkSink {
    packetizer: FramePacketizer,
    frames: broadcast::Sender<Arc<FramePackets>>,
}

impl TrackSink for NetworkSink {
    fn accept(&mut self, frame: &EncodedFrame) {
        match self.packetizer.packetize(frame) {
            // No receivers is fine: nobody is watching yet.
            Ok(packets) => drop(self.frames.send(Arc::new(packets))),
            Err(e) => tracing::error!("packetizing: {e}"),
        }
    }
}

/// Why forwarding stopped.
pub enum Forwarded {
    /// The broadcast ended.
    Ended,
    /// Writing to the connection failed (it closed).
    WriteFailed,
}

/// Copies `track`'s packets to one connection's `local` track with its SSRC, from a keyframe
/// on (video); `lagged` is called when it fell behind and skipped to the next keyframe.
pub async fn forward(
    spec: TrackSpec,
    local: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    mut frames: broadcast::Receiver<Arc<FramePackets>>,
    lagged: impl Fn(),
) -> Forwarded {
    let mut synced = spec.kind() != MediaKind::Video;
    loop {
        let frame = match frames.recv().await {
            Ok(f) => f,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::debug!(ssrc, "fell {n} frames behind; resyncing on a keyframe");
                synced = spec.kind() != MediaKind::Video;
                lagged();
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return Forwarded::Ended,
        };
        if !synced {
            if !frame.keyframe {
                continue;
            }
            synced = true;
        }
        for p in &frame.packets {
            let mut p = p.clone();
            p.header.ssrc = ssrc;
            p.header.payload_type = spec.codec.payload_type;
            if let Err(e) = local.write_rtp(p).await {
                tracing::debug!(ssrc, "forwarding stopped: {e}");
                return Forwarded::WriteFailed;
            }
        }
    }
}
