//! The viewer's audio sink: Opus packets from the network go to the `omnicast-audio-out`
//! thread, which keeps the output fed 20 ms at a time from the jitter buffer: decoded, concealed
//! (Opus PLC or FEC) or silent; volume and mute applied; written to the WAV file if asked
//! (exactly what is played); the A/V offset measured from sender reports and, when the sender
//! plays the test tone, from its beeps.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use super::jitter::{JitterBuffer, Pop};
use super::output::{CHANNELS, Output};
use super::tone::BeepDetector;
use super::{FRAME_SAMPLES, Level, SAMPLE_RATE};
use crate::figures::{Figures, MAX_LATENCY_SAMPLES};
use crate::lipsync::{SyncClock, unix_now_s};
use crate::media::{EncodedFrame, MediaKind, TrackSink, TrackSpec};
use crate::sink::{ViewContext, ViewSink};

/// Packets queued for the audio thread (2 s).
const QUEUE: usize = 100;
/// How often the thread looks at the output when it has nothing to do.
const POLL: Duration = Duration::from_millis(5);

/// Volume and mute, set by the window while sound plays.
#[derive(Debug)]
pub struct AudioControls {
    volume: AtomicU32,
    muted: AtomicBool,
}

impl Default for AudioControls {
    fn default() -> Self {
        Self {
            volume: AtomicU32::new(1f32.to_bits()),
            muted: AtomicBool::new(false),
        }
    }
}

impl AudioControls {
    /// 0.0 (silent) to 2.0 (twice as loud).
    pub fn set_volume(&self, volume: f32) {
        self.volume
            .store(volume.clamp(0.0, 2.0).to_bits(), Ordering::Relaxed);
    }

    pub fn volume(&self) -> f32 {
        f32::from_bits(self.volume.load(Ordering::Relaxed))
    }

    pub fn set_muted(&self, muted: bool) {
        self.muted.store(muted, Ordering::Relaxed);
    }

    pub fn muted(&self) -> bool {
        self.muted.load(Ordering::Relaxed)
    }

    /// What each sample is multiplied by now.
    fn gain(&self) -> f32 {
        if self.muted() { 0.0 } else { self.volume() }
    }
}

type Wav = hound::WavWriter<BufWriter<File>>;

#[derive(Debug, thiserror::Error)]
#[error("cannot write the WAV file {path}: {source}")]
pub struct WavError {
    path: PathBuf,
    source: hound::Error,
}

/// Plays each audio track a viewer receives.
pub struct AudioOut {
    /// Play on the default output device (otherwise the clock alone: a headless viewer).
    device: bool,
    controls: Arc<AudioControls>,
    /// What is played, as 16-bit 48 kHz stereo; one file for the session.
    wav: Option<Arc<Mutex<Wav>>>,
    /// The level of what plays, for a meter.
    pub level: Arc<Level>,
}

impl AudioOut {
    /// `wav`: a file to write what is played to (created now, so a bad path is said at once).
    pub fn new(
        device: bool,
        controls: Arc<AudioControls>,
        wav: Option<&Path>,
    ) -> Result<Self, WavError> {
        let wav = match wav {
            Some(path) => {
                let spec = hound::WavSpec {
                    channels: CHANNELS as u16,
                    sample_rate: SAMPLE_RATE,
                    bits_per_sample: 16,
                    sample_format: hound::SampleFormat::Int,
                };
                let w = hound::WavWriter::create(path, spec).map_err(|source| WavError {
                    path: path.to_owned(),
                    source,
                })?;
                Some(Arc::new(Mutex::new(w)))
            }
            None => None,
        };
        Ok(Self {
            device,
            controls,
            wav,
            level: Arc::new(Level::default()),
        })
    }

    /// Writes the WAV file's header for what was written so far (also done every second).
    pub fn finish(&self) {
        if let Some(w) = &self.wav
            && let Err(e) = w.lock().flush()
        {
            tracing::warn!("WAV file: {e}");
        }
    }
}

impl Drop for AudioOut {
    fn drop(&mut self) {
        self.finish();
    }
}

impl ViewSink for AudioOut {
    fn sink_for(&self, track: &TrackSpec, ctx: &ViewContext) -> Option<Box<dyn TrackSink>> {
        if track.kind() != MediaKind::Audio {
            return None;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let playout = Playout {
            device: self.device,
            controls: self.controls.clone(),
            wav: self.wav.clone(),
            level: self.level.clone(),
            figures: ctx.figures.clone(),
            sync: ctx.sync.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("omnicast-audio-out".into())
            .spawn(move || playout.run(&rx));
        if let Err(e) = spawned {
            tracing::error!("cannot start the audio thread: {e}");
            return None;
        }
        Some(Box::new(AudioSink {
            packets: tx,
            figures: ctx.figures.clone(),
        }))
    }
}

/// Hands packets to the audio thread; ends it when dropped.
struct AudioSink {
    packets: SyncSender<(u64, Bytes, Instant)>,
    figures: Arc<Figures>,
}

impl TrackSink for AudioSink {
    fn accept(&mut self, frame: &EncodedFrame) {
        if let Err(TrySendError::Full(_)) =
            self.packets
                .try_send((frame.timestamp, frame.data.clone(), frame.at))
        {
            self.figures.update(|s| s.audio.dropped_queue_full += 1);
        }
    }
}

struct Playout {
    device: bool,
    controls: Arc<AudioControls>,
    wav: Option<Arc<Mutex<Wav>>>,
    level: Arc<Level>,
    figures: Arc<Figures>,
    sync: Arc<SyncClock>,
}

impl Playout {
    fn run(self, packets: &Receiver<(u64, Bytes, Instant)>) {
        let mut output = if self.device {
            match Output::open_device() {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!("no sound output ({e}): decoding anyway");
                    self.figures
                        .update(|s| s.audio.output = Some(format!("none: {e}")));
                    Output::clock()
                }
            }
        } else {
            Output::clock()
        };
        if matches!(output, Output::Device(_)) || !self.device {
            let label = output.label();
            self.figures.update(|s| s.audio.output = Some(label));
        }
        let mut decoder = match opus::Decoder::new(SAMPLE_RATE, opus::Channels::Stereo) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("Opus decoder: {e}");
                return;
            }
        };
        let mut jitter = JitterBuffer::default();
        let mut pcm = vec![0f32; FRAME_SAMPLES * CHANNELS];
        let mut pcm16 = Vec::with_capacity(FRAME_SAMPLES * CHANNELS);
        let mut left = vec![0f32; FRAME_SAMPLES];
        let mut beeps = BeepDetector::new(SAMPLE_RATE);
        let mut last_flush = Instant::now();
        let mut decode_errors = 0u64;
        loop {
            // Everything that arrived, then as much sound as the output needs.
            let mut ended = false;
            loop {
                match packets.try_recv() {
                    Ok((ts, data, at)) => jitter.push(ts, data, at),
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        ended = true;
                        break;
                    }
                }
            }
            if ended {
                break;
            }
            if let Some(e) = output.failure() {
                tracing::warn!("the sound output failed ({e}): decoding anyway");
                self.figures
                    .update(|s| s.audio.output = Some(format!("none: {e}")));
                output = Output::clock();
            }
            // Sound ahead of the picture waits in the jitter buffer (beyond its own target).
            if let Some(a) = self.sync.delay_ms(MediaKind::Audio) {
                let own = a - jitter.extra().as_secs_f64() * 1e3;
                jitter.set_extra(self.sync.audio_wait_for(own));
            }
            let now = Instant::now();
            while output.queued(now) < output.low_water() {
                let pop = jitter.pop(now);
                let decoded = match &pop {
                    Pop::Frame(data) => decoder.decode_float(data, &mut pcm, false),
                    Pop::Conceal { fec: Some(next) } => decoder.decode_float(next, &mut pcm, true),
                    Pop::Conceal { fec: None } => decoder.decode_float(&[], &mut pcm, false),
                    Pop::Silence => {
                        pcm.fill(0.0);
                        Ok(FRAME_SAMPLES)
                    }
                };
                match decoded {
                    Ok(n) if n == FRAME_SAMPLES => {}
                    Ok(n) => {
                        // Another frame length: play what was decoded, padded to 20 ms.
                        pcm[n.min(FRAME_SAMPLES) * CHANNELS..].fill(0.0);
                    }
                    Err(e) => {
                        decode_errors += 1;
                        if decode_errors == 1 {
                            tracing::warn!("Opus: {e}");
                        }
                        pcm.fill(0.0);
                    }
                }
                let gain = self.controls.gain();
                if gain != 1.0 {
                    pcm.iter_mut().for_each(|s| *s *= gain);
                }
                self.level.observe(&pcm);
                // When this frame will be heard.
                let plays_at_s = unix_now_s() + output.queued(now).as_secs_f64();
                if let Pop::Frame(_) = pop
                    && let Some(capture) = jitter
                        .last_played()
                        .and_then(|t| self.sync.capture_s(MediaKind::Audio, t))
                {
                    self.sync.set_delay(
                        MediaKind::Audio,
                        (plays_at_s - capture) * 1e3,
                        jitter.extra().as_secs_f64() * 1e3,
                    );
                }
                for (l, f) in left.iter_mut().zip(pcm.chunks_exact(CHANNELS)) {
                    *l = f[0];
                }
                for at in beeps.feed(&left) {
                    self.beep(plays_at_s + at as f64 / f64::from(SAMPLE_RATE));
                }
                if let Some(wav) = &self.wav {
                    pcm16.clear();
                    pcm16.extend(pcm.iter().map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16));
                    let mut w = wav.lock();
                    let mut i16w = w.get_i16_writer(pcm16.len() as u32);
                    for s in &pcm16 {
                        i16w.write_sample(*s);
                    }
                    if let Err(e) = i16w.flush() {
                        tracing::warn!("WAV file: {e}");
                    }
                }
                output.push(&pcm, now);
                self.figures.update(|s| {
                    let a = &mut s.audio;
                    a.frames_played = jitter.stats.played;
                    a.frames_concealed = jitter.stats.concealed + jitter.stats.inserted;
                    a.packets_late = jitter.stats.late;
                    a.underruns = jitter.stats.underruns;
                    a.jitter_buffer_ms = jitter.delay().as_secs_f64() * 1e3;
                    a.jitter_target_ms = jitter.target().as_secs_f64() * 1e3;
                    a.jitter_ms = jitter.jitter_ms();
                    a.av_offset_ms = self.sync.av_offset_ms();
                    a.level = self.level.get();
                    a.decode_errors = decode_errors;
                });
            }
            if last_flush.elapsed() >= Duration::from_secs(1) {
                last_flush = Instant::now();
                if let Some(w) = &self.wav
                    && let Err(e) = w.lock().flush()
                {
                    tracing::warn!("WAV file: {e}");
                }
            }
            match packets.recv_timeout(POLL) {
                Ok((ts, data, at)) => jitter.push(ts, data, at),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    /// A beep started playing at `heard_s` (Unix seconds): the test tone beeps at each whole
    /// second of capture, so its age is the audio's glass-to-glass latency; against the latest
    /// picture's it is the A/V offset.
    fn beep(&self, heard_s: f64) {
        let latency_ms = (heard_s - heard_s.floor()) * 1e3;
        self.figures.update(|s| {
            let video = s.latency_ms.back().copied();
            let a = &mut s.audio;
            a.beeps += 1;
            if a.beep_latency_ms.len() >= MAX_LATENCY_SAMPLES {
                a.beep_latency_ms.pop_front();
                a.beep_av_offset_ms.pop_front();
            }
            a.beep_latency_ms.push_back(latency_ms);
            a.beep_av_offset_ms
                .push_back(video.map(|v| latency_ms - f64::from(v)));
        });
    }
}
