//! What a viewer hands its tracks to: a [`ViewSink`] makes a [`TrackSink`] for each track it
//! wants (the decoder, the audio output, the recorder), given the [`ViewContext`].

use std::sync::Arc;
use std::time::Instant;

use crate::figures::Figures;
use crate::lipsync::SyncClock;
use crate::media::{KeyframeRequest, TrackSink, TrackSpec};

/// What a viewer's sinks get to work with.
#[derive(Clone)]
pub struct ViewContext {
    pub figures: Arc<Figures>,
    /// When the viewer started (timelines count from here).
    pub started: Instant,
    /// Set to ask the sender for a keyframe (a PLI goes out, at most every half second).
    pub keyframe: KeyframeRequest,
    /// The connection's sender clock and the tracks' delays (lip sync).
    pub sync: Arc<SyncClock>,
}

/// A kind of sink a viewer hands its tracks to: makes one for each track it wants.
pub trait ViewSink: Send + Sync {
    fn sink_for(&self, track: &TrackSpec, ctx: &ViewContext) -> Option<Box<dyn TrackSink>>;
}
