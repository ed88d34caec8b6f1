//! One received track: its codec found from what was negotiated, its packets counted and
//! reassembled into frames, each frame handed to the track's sinks; keyframe requests (PLI) sent
//! back when a sink needs one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::media::{self, EncodedFrame, MediaKind, TrackId, TrackSink, TrackSpec};
use crate::rtp::{FrameAssembler, TimestampUnwrapper};
use crate::sink::{ViewContext, ViewSink};

/// Keyframe requests go out at most this often.
const PLI_INTERVAL: Duration = Duration::from_millis(500);

/// Receives `track` (this viewer's track `id`) until it ends.
pub(super) async fn receive(
    track: Arc<dyn TrackRemote>,
    id: TrackId,
    factories: Arc<[Arc<dyn ViewSink>]>,
    ctx: ViewContext,
) {
    // The codec is known once the first packet names its SSRC.
    let (spec, first) = loop {
        match track.poll().await {
            Some(TrackRemoteEvent::OnRtpPacket(p)) => {
                let codec = track.codec(p.header.ssrc).await;
                let found = codec
                    .as_ref()
                    .and_then(|c| media::codec_for_mime(&c.mime_type));
                match found {
                    Some(codec) => break (TrackSpec { id, codec }, p),
                    None => {
                        tracing::warn!(
                            "a track in a codec this viewer does not handle ({:?}): ignored",
                            codec.map(|c| c.mime_type)
                        );
                        return;
                    }
                }
            }
            Some(_) => {}
            None => return,
        }
    };
    let mut sinks: Vec<Box<dyn TrackSink>> = factories
        .iter()
        .filter_map(|f| f.sink_for(&spec, &ctx))
        .collect();
    let video = spec.kind() == MediaKind::Video;
    // With no sink nothing is reassembled: the packets are only counted. Sound needs no
    // reassembly (a packet is a frame), and its jitter buffer deals with loss and reordering.
    let mut assembler =
        (!sinks.is_empty() && video).then(|| FrameAssembler::new(spec.codec, spec.id));
    let mut timestamps = TimestampUnwrapper::default();
    let mut last_seq: Option<u16> = None;
    let mut last_pli: Option<Instant> = None;
    let mut packet = Some(first);
    loop {
        let p = match packet.take() {
            Some(p) => p,
            None => match track.poll().await {
                Some(TrackRemoteEvent::OnRtpPacket(p)) => p,
                Some(TrackRemoteEvent::OnRtcpPacket(packets)) => {
                    for sr in packets
                        .iter()
                        .filter_map(|p| p.as_any().downcast_ref::<SenderReport>())
                    {
                        ctx.sync.sender_report(
                            spec.kind(),
                            sr.ntp_time,
                            sr.rtp_time,
                            spec.codec.clock_rate,
                        );
                    }
                    continue;
                }
                Some(_) => continue,
                None => return,
            },
        };
        let media_ssrc = p.header.ssrc;
        let seq = p.header.sequence_number;
        let gap = last_seq.map_or(0, |l| seq.wrapping_sub(l).wrapping_sub(1));
        if !video {
            last_seq = Some(seq);
            let lost = if gap < u16::MAX / 2 {
                u64::from(gap)
            } else {
                0
            };
            ctx.figures.audio_packet(p.payload.len() as u64, lost);
            if !p.payload.is_empty() {
                let frame = EncodedFrame {
                    track: spec.id,
                    timestamp: timestamps.unwrap(p.header.timestamp),
                    data: p.payload,
                    keyframe: true,
                    at: Instant::now(),
                };
                for sink in &mut sinks {
                    sink.accept(&frame);
                }
            }
            continue;
        } else {
            last_seq = Some(seq);
            let (marker, bytes) = (p.header.marker, p.payload.len() as u64);
            let at = ctx.started.elapsed().as_millis() as u64;
            let counting_losses = assembler.is_none();
            ctx.figures.update(|s| {
                s.timeline_ms.entry("5 first packet").or_insert(at);
                s.packets_received += 1;
                s.bytes_received += bytes;
                s.frames_received += u64::from(marker);
                // Reassembly counts losses itself, waiting for late packets first.
                if counting_losses && gap < u16::MAX / 2 {
                    s.packets_lost += u64::from(gap);
                }
            });
            if marker {
                ctx.figures.mark_frame_received();
            }
        }
        if let Some(assembler) = &mut assembler {
            assembler.push(p);
            while let Some((frame, lost)) = assembler.pop(Instant::now()) {
                if lost > 0 {
                    if video {
                        ctx.figures.update(|s| s.packets_lost += u64::from(lost));
                    }
                    for sink in &mut sinks {
                        sink.lost(u32::from(lost));
                    }
                }
                for sink in &mut sinks {
                    sink.accept(&frame);
                }
            }
        }
        if ctx.keyframe.is_requested() && last_pli.is_none_or(|t| t.elapsed() > PLI_INTERVAL) {
            ctx.keyframe.take();
            last_pli = Some(Instant::now());
            ctx.figures.update(|s| s.keyframe_requests += 1);
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            };
            if let Err(e) = track.write_rtcp(vec![Box::new(pli)]).await {
                tracing::debug!("PLI: {e}");
            }
        }
    }
}
