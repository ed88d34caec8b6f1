//! The broadcaster's audio track on the `omnicast-audio` thread: the microphone (retried every
//! 5 s while missing or failed, as cameras are) or the test tone, a level meter, mute, and each
//! 20 ms frame encoded once as Opus and handed to the track's sinks (the network fan-out).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;

use super::microphone::Microphone;
use super::{AudioSource, BITRATE_BPS, FRAME, FRAME_SAMPLES, Level, SAMPLE_RATE, tone};
use crate::media::{EncodedFrame, TrackSink, TrackSpec};
use crate::worker::Worker;

/// How often a missing or failed microphone is tried again.
pub const MIC_RETRY: Duration = Duration::from_secs(5);

/// Figures and controls the audio thread shares with the broadcast (it outlasts each attempt,
/// so mute holds across reconnections).
#[derive(Debug, Default)]
pub struct AudioFigures {
    /// What is heard: the microphone's name, the test tone, or why there is no sound.
    pub source: Mutex<String>,
    pub frames_encoded: AtomicU64,
    pub bytes_encoded: AtomicU64,
    /// The source's level (shown even while muted, so people see the microphone works).
    pub level: Level,
    /// Silence goes out instead of the source.
    pub muted: AtomicBool,
    /// Frames the thread could not make in time (it was held up) and skipped.
    pub frames_skipped: AtomicU64,
}

/// The running audio track.
pub struct AudioTrack {
    worker: Worker,
}

impl AudioTrack {
    /// Starts sending `source` on `track`; every Opus frame goes to each of `sinks`.
    pub fn start(
        track: TrackSpec,
        source: AudioSource,
        sinks: Vec<Box<dyn TrackSink>>,
        figures: Arc<AudioFigures>,
    ) -> std::io::Result<Self> {
        let worker = Worker::spawn("omnicast-audio", move |stop| {
            audio_loop(track, &source, sinks, &figures, stop);
        })?;
        Ok(Self { worker })
    }

    /// Stops the thread and waits for it (off the async threads).
    pub async fn stop(self) {
        self.worker.stop().await;
    }
}

/// Opus for `channels` (1 or 2): voice, 48 kbit/s, in-band FEC against a few percent of loss.
fn encoder(channels: usize) -> Result<opus::Encoder, opus::Error> {
    let ch = if channels == 2 {
        opus::Channels::Stereo
    } else {
        opus::Channels::Mono
    };
    let mut e = opus::Encoder::new(SAMPLE_RATE, ch, opus::Application::Voip)?;
    e.set_bitrate(opus::Bitrate::Bits(BITRATE_BPS))?;
    e.set_inband_fec(true)?;
    e.set_packet_loss_perc(5)?;
    Ok(e)
}

/// Where frames come from.
enum Input {
    Tone(ToneClock),
    Mic(Box<Microphone>),
    /// No microphone now; tried again at this moment.
    Missing(Instant),
}

/// The test tone's clock: frame `k` starts at `unix_ns0 + k·20 ms` and is ready when it ends.
struct ToneClock {
    instant0: Instant,
    unix_ns0: u64,
    k: u64,
}

impl ToneClock {
    fn new() -> Self {
        let unix_ns0 = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self {
            instant0: Instant::now(),
            unix_ns0,
            k: 0,
        }
    }

    /// Waits for the next frame, fills it and says when it began. Frames it was too late for
    /// (held up for more than 100 ms) are skipped, counted in `skipped`.
    fn next(&mut self, frame: &mut Vec<f32>, skipped: &AtomicU64) -> Instant {
        let frame_ns = FRAME.as_nanos() as u64;
        let mut start = self.instant0 + FRAME * self.k as u32;
        let now = Instant::now();
        if now > start + FRAME * 6 {
            let behind = ((now - start).as_nanos() as u64 / frame_ns).saturating_sub(1);
            skipped.fetch_add(behind, Ordering::Relaxed);
            self.k += behind;
            start = self.instant0 + Duration::from_nanos(self.k * frame_ns);
        }
        let ready = start + FRAME;
        if let Some(wait) = ready.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        frame.resize(FRAME_SAMPLES, 0.0);
        tone::fill(frame, self.unix_ns0 + self.k * frame_ns, SAMPLE_RATE);
        self.k += 1;
        start
    }
}

fn audio_loop(
    track: TrackSpec,
    source: &AudioSource,
    mut sinks: Vec<Box<dyn TrackSink>>,
    figures: &AudioFigures,
    stop: &AtomicBool,
) {
    let say = |s: String| {
        let mut said = figures.source.lock();
        if *said != s {
            *said = s;
        }
    };
    let open_mic = || match Microphone::open(source) {
        Ok(mic) => {
            say(mic.name.clone());
            Input::Mic(Box::new(mic))
        }
        Err(e) => {
            tracing::warn!("{e}: no sound goes out; trying again every {MIC_RETRY:?}");
            say(format!("no sound: {e} (retrying every 5 s)"));
            Input::Missing(Instant::now() + MIC_RETRY)
        }
    };
    let mut input = match source {
        AudioSource::None => return,
        AudioSource::TestTone => {
            say("test tone".into());
            Input::Tone(ToneClock::new())
        }
        _ => open_mic(),
    };
    let mut encoders: [Option<opus::Encoder>; 2] = [None, None];
    let mut frame = Vec::with_capacity(FRAME_SAMPLES * 2);
    let mut silence = Vec::new();
    let mut packet = vec![0u8; 4000];
    let mut first: Option<Instant> = None;
    let mut last_timestamp: Option<u64> = None;
    let mut failing: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        let (at, channels) = match &mut input {
            Input::Tone(clock) => (clock.next(&mut frame, &figures.frames_skipped), 1),
            Input::Missing(retry_at) => {
                if Instant::now() >= *retry_at {
                    input = open_mic();
                } else {
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
            Input::Mic(mic) => match mic.next_frame(&mut frame, Duration::from_millis(100)) {
                Ok(Some(at)) => (at, mic.channels),
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!("{e}; trying again every {MIC_RETRY:?}");
                    say(format!("no sound: {e} (retrying every 5 s)"));
                    figures.level.clear();
                    input = Input::Missing(Instant::now() + MIC_RETRY);
                    continue;
                }
            },
        };
        figures.level.observe(&frame);
        let pcm: &[f32] = if figures.muted.load(Ordering::Relaxed) {
            silence.resize(frame.len(), 0.0);
            &silence
        } else {
            &frame
        };
        let slot = &mut encoders[channels - 1];
        let encoded = match slot {
            Some(e) => Ok(e),
            None => encoder(channels).map(|e| slot.insert(e)),
        }
        .and_then(|e| e.encode_float(pcm, &mut packet));
        let len = match encoded {
            Ok(len) => len,
            Err(e) => {
                let e = format!("Opus: {e}");
                if failing.as_ref() != Some(&e) {
                    tracing::error!("{e}");
                    failing = Some(e);
                }
                continue;
            }
        };
        failing = None;
        // Media time: one frame after the last, unless the source paused (a microphone that
        // came back): then from the capture clock, so the gap is kept.
        let first = *first.get_or_insert(at);
        let by_clock =
            (at.saturating_duration_since(first).as_secs_f64() * f64::from(SAMPLE_RATE)) as u64;
        let timestamp = match last_timestamp {
            Some(last) if by_clock < last + 2 * FRAME_SAMPLES as u64 => last + FRAME_SAMPLES as u64,
            Some(last) => by_clock.max(last + FRAME_SAMPLES as u64),
            None => 0,
        };
        last_timestamp = Some(timestamp);
        figures.frames_encoded.fetch_add(1, Ordering::Relaxed);
        figures
            .bytes_encoded
            .fetch_add(len as u64, Ordering::Relaxed);
        let encoded = EncodedFrame {
            track: track.id,
            data: Bytes::copy_from_slice(&packet[..len]),
            timestamp,
            keyframe: true,
            at,
        };
        for sink in &mut sinks {
            sink.accept(&encoded);
        }
    }
}
