//! One viewer's peer connection, as a task of its own: it sets the connection up (a local track
//! per session track, the data channels, an offer), then carries out the fan-out's commands in order (answer,
//! candidates, forwarding, figures) and reports back, tagged with its [`ConnId`]. Slow steps of
//! one connection (setting it up, gathering its statistics) never hold up the others or the
//! broadcaster's event loop.

use std::sync::Arc;
use std::time::Instant;

use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{
    PeerConnection, RTCPeerConnectionState, RTCStatsReportEntry, StatsSelector,
};

use super::network::{Forwarded, OutTrack, forward};
use crate::channels::{
    self,
    room::{Channels, DataRoom},
};
use crate::fanout::{ConnCommand, ConnId, ConnReport, ViewerId};
use crate::feedback::is_keyframe_request;
use crate::media::MediaKind;
use crate::peer::{self, PeerEvent, PeerSettings};
use crate::rtp::FramePackets;

/// Commands queued for one connection before it is considered stuck.
const COMMAND_QUEUE: usize = 64;

/// The broadcaster's handle on one connection task. Dropping it ends the task.
pub struct Connection {
    commands: mpsc::Sender<ConnCommand>,
    close: Option<oneshot::Sender<()>>,
}

/// Where connections report.
pub type Reports = mpsc::Sender<(ConnId, ConnReport)>;

impl Connection {
    /// Starts connection `conn` to `viewer` with `tracks` and the data channels of `room`;
    /// what it has to say goes to `reports`.
    pub fn open(
        conn: ConnId,
        viewer: ViewerId,
        peer: PeerSettings,
        tracks: Arc<[OutTrack]>,
        room: Arc<DataRoom>,
        reports: Reports,
    ) -> Self {
        let (commands, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let (close, close_rx) = oneshot::channel();
        let ends = Ends {
            reports,
            commands: commands_rx,
            close: close_rx,
        };
        tokio::spawn(run(conn, viewer, peer, tracks, room, ends));
        Self {
            commands,
            close: Some(close),
        }
    }

    /// Queues a command. Closing goes ahead of anything queued.
    pub fn send(&mut self, conn: ConnId, command: ConnCommand) {
        if command == ConnCommand::Close {
            if let Some(close) = self.close.take() {
                let _ = close.send(());
            }
            return;
        }
        match self.commands.try_send(command) {
            Ok(()) => {}
            // Figures are asked for every second; a busy connection skips a round.
            Err(mpsc::error::TrySendError::Full(ConnCommand::GatherStats)) => {}
            Err(e) => {
                let command = e.into_inner();
                tracing::warn!(%conn, "connection not keeping up: {} dropped", command.name());
            }
        }
    }
}

async fn report(reports: &Reports, conn: ConnId, r: ConnReport) {
    let _ = reports.send((conn, r)).await;
}

/// The connection task's ends of its channels.
struct Ends {
    reports: Reports,
    commands: mpsc::Receiver<ConnCommand>,
    close: oneshot::Receiver<()>,
}

async fn run(
    conn: ConnId,
    viewer: ViewerId,
    peer_settings: PeerSettings,
    tracks: Arc<[OutTrack]>,
    room: Arc<DataRoom>,
    ends: Ends,
) {
    let Ends {
        reports,
        mut commands,
        mut close,
    } = ends;
    let (events_tx, mut events) = mpsc::channel(64);
    let set_up = tokio::select! {
        r = set_up(conn, &peer_settings, &tracks, events_tx) => r,
        _ = &mut close => return,
    };
    let (pc, mut locals, channels) = match set_up {
        Ok(SetUp {
            pc,
            locals,
            channels,
            offer,
        }) => {
            report(&reports, conn, ConnReport::Offer(offer)).await;
            (pc, locals, channels)
        }
        Err(e) => {
            report(&reports, conn, ConnReport::Failed(e)).await;
            return;
        }
    };
    let mut forwarding = tokio::task::JoinSet::new();
    // What the viewer says on its data channels never holds up the media or this loop.
    let data = tokio::spawn(channels::room::serve(room, viewer, channels));
    let (mut bytes_sent, mut audio_bytes_sent) = (0, 0);
    loop {
        tokio::select! {
            biased;
            _ = &mut close => break,
            Some(command) = commands.recv() => match command {
                ConnCommand::Answer(answer) => {
                    let applied = match peer::description(answer) {
                        Ok(d) => pc.set_remote_description(d).await.map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    if let Err(e) = applied {
                        report(&reports, conn, ConnReport::Failed(format!("bad answer: {e}"))).await;
                    }
                }
                ConnCommand::Candidate(candidate) => {
                    let added = match peer::candidate(candidate) {
                        Ok(c) => pc.add_ice_candidate(c).await.map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    if let Err(e) = added {
                        tracing::debug!(%conn, "unusable candidate: {e}");
                    }
                }
                ConnCommand::Forward => {
                    if forwarding.is_empty() {
                        for local in &mut locals {
                            local.start(conn, &reports, &mut forwarding);
                        }
                    }
                }
                ConnCommand::GatherStats => {
                    let (sent, audio, rtt_ms) = figures(&*pc).await;
                    bytes_sent = sent.unwrap_or(bytes_sent);
                    audio_bytes_sent = audio.unwrap_or(audio_bytes_sent);
                    let stats = ConnReport::Stats { bytes_sent, audio_bytes_sent, rtt_ms };
                    report(&reports, conn, stats).await;
                }
                ConnCommand::Close => break,
            },
            Some((_, event)) = events.recv() => match event {
                PeerEvent::Candidate(c) => report(&reports, conn, ConnReport::LocalCandidate(c)).await,
                PeerEvent::State(state) => {
                    tracing::debug!(%conn, "connection {state}");
                    match state {
                        RTCPeerConnectionState::Connected => report(&reports, conn, ConnReport::Connected).await,
                        RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                            report(&reports, conn, ConnReport::Closed).await;
                        }
                        _ => {}
                    }
                }
                PeerEvent::Track(_) | PeerEvent::IceConnected | PeerEvent::DataChannel(_) => {}
            },
            Some(ended) = forwarding.join_next() => {
                if matches!(ended, Ok(Forwarded::WriteFailed)) {
                    report(&reports, conn, ConnReport::Closed).await;
                }
            }
            else => break,
        }
    }
    forwarding.abort_all();
    data.abort();
    if let Err(e) = pc.close().await {
        tracing::debug!(%conn, "closing: {e}");
    }
}

/// A connection's local track for one session track.
struct Local {
    out: OutTrack,
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    /// Subscribed when the connection was made, so the keyframe asked for when it connects
    /// is never missed; taken when forwarding starts.
    frames: Option<broadcast::Receiver<Arc<FramePackets>>>,
}

impl Local {
    /// Starts forwarding this track, and listening for the viewer's keyframe requests on it.
    fn start(
        &mut self,
        conn: ConnId,
        reports: &Reports,
        tasks: &mut tokio::task::JoinSet<Forwarded>,
    ) {
        let Some(frames) = self.frames.take() else {
            return;
        };
        let lagged = {
            let reports = reports.clone();
            move || {
                let _ = reports.try_send((conn, ConnReport::Lagged));
            }
        };
        tasks.spawn(forward(
            self.out.spec,
            self.track.clone(),
            self.ssrc,
            frames,
            lagged,
        ));
        let (track, reports) = (self.track.clone(), reports.clone());
        tasks.spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackLocalEvent::OnRtcpPacket(packets) = event
                    && packets.iter().any(|p| is_keyframe_request(p.as_ref()))
                {
                    report(&reports, conn, ConnReport::KeyframeRequest).await;
                }
            }
            Forwarded::Ended
        });
    }
}

struct SetUp {
    pc: Arc<dyn PeerConnection>,
    locals: Vec<Local>,
    channels: Channels,
    offer: serde_json::Value,
}

async fn set_up(
    conn: ConnId,
    settings: &PeerSettings,
    tracks: &[OutTrack],
    events: mpsc::Sender<(ConnId, PeerEvent)>,
) -> Result<SetUp, String> {
    let pc = peer::build(settings, false, conn, events)
        .await
        .map_err(|e| e.to_string())?;
    let result = async {
        let mut locals = Vec::with_capacity(tracks.len());
        for out in tracks {
            let ssrc = rand_ssrc();
            let codec = peer::codec_parameters(out.spec.codec).rtp_codec;
            let kind = match out.spec.kind() {
                MediaKind::Video => RtpCodecKind::Video,
                MediaKind::Audio => RtpCodecKind::Audio,
            };
            let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                "omnicast".to_owned(),
                format!("omnicast-{}-{ssrc}", out.spec.id.0),
                format!("omnicast {}", out.spec.codec.name),
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec,
                    ..Default::default()
                }],
            )));
            pc.add_track(track.clone() as Arc<dyn TrackLocal>).await?;
            locals.push(Local {
                out: out.clone(),
                track,
                ssrc,
                frames: Some(out.subscribe()),
            });
        }
        // The data channels, before the offer so it carries them.
        let channels = channels::room::open(&*pc).await?;
        let offer = pc.create_offer(None).await?;
        pc.set_local_description(offer.clone()).await?;
        Ok::<_, webrtc::error::Error>((locals, channels, peer::description_json(&offer)))
    }
    .await;
    match result {
        Ok((locals, channels, offer)) => Ok(SetUp {
            pc,
            locals,
            channels,
            offer,
        }),
        Err(e) => {
            let _ = pc.close().await;
            Err(e.to_string())
        }
    }
}

/// Bytes sent in all and the round-trip time, from the connection's selected candidate pair;
/// bytes of sound (RTP payloads and headers) from its outbound audio stream.
async fn figures(pc: &dyn PeerConnection) -> (Option<u64>, Option<u64>, Option<f64>) {
    let report = pc.get_stats(Instant::now(), StatsSelector::None).await;
    let audio = report.iter().find_map(|e| match e {
        RTCStatsReportEntry::OutboundRtp(o)
            if o.sent_rtp_stream_stats.rtp_stream_stats.kind == RtpCodecKind::Audio =>
        {
            Some(o.sent_rtp_stream_stats.bytes_sent + o.header_bytes_sent)
        }
        _ => None,
    });
    let pair = report.iter().find_map(|e| match e {
        RTCStatsReportEntry::IceCandidatePair(p) if p.bytes_sent > 0 => Some(p),
        _ => None,
    });
    pair.map_or((None, audio, None), |p| {
        let rtt = (p.current_round_trip_time > 0.0).then_some(p.current_round_trip_time * 1e3);
        (Some(p.bytes_sent), audio, rtt)
    })
}

fn rand_ssrc() -> u32 {
    use std::hash::{BuildHasher as _, RandomState};
    (RandomState::new().hash_one(Instant::now()) as u32).max(1)
}
