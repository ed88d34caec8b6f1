//! A microphone through cpal: opened at 48 kHz when the device can, otherwise at its own rate
//! and resampled (rubato); mono or stereo as the device gives (more channels are mixed down to
//! two). The device's callback only copies samples into a bounded queue; the audio thread takes
//! them in 20 ms frames.
//!
//! A cpal stream must stay on the thread that opened it, so a [`Microphone`] lives and dies on
//! the audio thread.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};
use parking_lot::Mutex;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, FixedAsync, PolynomialDegree, Resampler};

use super::{AudioSource, FRAME_SAMPLES, SAMPLE_RATE};

/// Why there is no microphone sound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MicError {
    #[error("no microphone: {0}")]
    NoDevice(String),
    #[error("no microphone named like {0:?} (there is: {1})")]
    NotFound(String, String),
    #[error("the microphone {name:?} could not be opened: {reason}")]
    Open { name: String, reason: String },
    #[error("the microphone {name:?} failed: {reason}")]
    Failed { name: String, reason: String },
    #[error("the microphone {0:?} sends nothing")]
    Silent(String),
}

/// The names of the input devices there are, the default first.
pub fn input_names() -> Result<Vec<String>, MicError> {
    let host = cpal::default_host();
    let default = host.default_input_device().map(|d| d.to_string());
    let mut names: Vec<String> = host
        .input_devices()
        .map_err(|e| MicError::NoDevice(e.to_string()))?
        .map(|d| d.to_string())
        .collect();
    names.dedup();
    if let Some(d) = default {
        names.retain(|n| *n != d);
        names.insert(0, d);
    }
    Ok(names)
}

/// Samples as the device's callback delivers them, with when they arrived.
struct Chunk {
    samples: Vec<f32>,
    at: Instant,
}

/// Up to ~1 s of 10 ms callbacks queued while the audio thread is busy; more are dropped.
const CHUNKS: usize = 100;

/// An open microphone.
pub struct Microphone {
    pub name: String,
    /// Channels in each frame (1 or 2).
    pub channels: usize,
    _stream: cpal::Stream,
    chunks: Receiver<Chunk>,
    failure: Arc<Mutex<Option<String>>>,
    device_channels: usize,
    resampler: Option<Resample>,
    /// 48 kHz interleaved samples not yet handed out, and when the first was captured.
    pending: Vec<f32>,
    pending_at: Option<Instant>,
    last_chunk: Instant,
}

impl Microphone {
    /// Opens the microphone `source` names (`Default` or `Named`).
    pub fn open(source: &AudioSource) -> Result<Self, MicError> {
        let host = cpal::default_host();
        let device = match source {
            AudioSource::Named(want) => {
                let want_lower = want.to_lowercase();
                let mut all = Vec::new();
                let found = host
                    .input_devices()
                    .map_err(|e| MicError::NoDevice(e.to_string()))?
                    .find(|d| {
                        let name = d.to_string();
                        let hit = name.to_lowercase().contains(&want_lower);
                        all.push(name);
                        hit
                    });
                found.ok_or_else(|| MicError::NotFound(want.clone(), list_or_none(&all)))?
            }
            _ => host
                .default_input_device()
                .ok_or_else(|| MicError::NoDevice("the system has no default input".into()))?,
        };
        let name = device.to_string();
        let open_err = |reason: String| MicError::Open {
            name: name.clone(),
            reason,
        };
        let default = device
            .default_input_config()
            .map_err(|e| open_err(e.to_string()))?;
        // 48 kHz if the device does it in its default format and channels; its default if not.
        let at_48k = device.supported_input_configs().ok().and_then(|mut c| {
            c.find(|r| {
                r.channels() == default.channels()
                    && r.sample_format() == default.sample_format()
                    && (r.min_sample_rate()..=r.max_sample_rate()).contains(&SAMPLE_RATE)
            })
            .map(|r| r.with_sample_rate(SAMPLE_RATE))
        });
        let config = at_48k.unwrap_or(default);
        let device_channels = usize::from(config.channels()).max(1);
        let channels = device_channels.min(2);
        let rate = config.sample_rate();
        let (tx, chunks) = sync_channel(CHUNKS);
        let failure = Arc::new(Mutex::new(None));
        let stream_config: cpal::StreamConfig = config.config();
        let stream = match config.sample_format() {
            SampleFormat::F32 => build::<f32>(&device, stream_config, tx, failure.clone()),
            SampleFormat::I16 => build::<i16>(&device, stream_config, tx, failure.clone()),
            SampleFormat::I32 => build::<i32>(&device, stream_config, tx, failure.clone()),
            SampleFormat::U16 => build::<u16>(&device, stream_config, tx, failure.clone()),
            SampleFormat::U8 => build::<u8>(&device, stream_config, tx, failure.clone()),
            other => return Err(open_err(format!("unsupported sample format {other}"))),
        }
        .map_err(open_err)?;
        stream.play().map_err(|e| open_err(e.to_string()))?;
        let resampler = if rate == SAMPLE_RATE {
            None
        } else {
            Some(Resample::new(rate, channels).map_err(open_err)?)
        };
        tracing::info!(
            "microphone {name:?}: {rate} Hz, {device_channels} channel(s){}",
            if resampler.is_some() {
                ", resampled to 48 kHz"
            } else {
                ""
            }
        );
        Ok(Self {
            name,
            channels,
            _stream: stream,
            chunks,
            failure,
            device_channels,
            resampler,
            pending: Vec::new(),
            pending_at: None,
            last_chunk: Instant::now(),
        })
    }

    /// The next 20 ms at 48 kHz (channels interleaved) into `frame`, and when its first sample
    /// was captured; `None` when nothing came within `wait`. An error when the device failed or
    /// has sent nothing for two seconds.
    pub fn next_frame(
        &mut self,
        frame: &mut Vec<f32>,
        wait: Duration,
    ) -> Result<Option<Instant>, MicError> {
        let want = FRAME_SAMPLES * self.channels;
        let deadline = Instant::now() + wait;
        while self.pending.len() < want {
            if let Some(reason) = self.failure.lock().take() {
                return Err(MicError::Failed {
                    name: self.name.clone(),
                    reason,
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => {
                    self.last_chunk = chunk.at;
                    self.take_chunk(chunk);
                }
                Err(_) if self.last_chunk.elapsed() > Duration::from_secs(2) => {
                    return Err(MicError::Silent(self.name.clone()));
                }
                Err(_) => return Ok(None),
            }
        }
        frame.clear();
        frame.extend(self.pending.drain(..want));
        let at = self.pending_at.unwrap_or_else(Instant::now);
        // The rest starts 20 ms later.
        self.pending_at = Some(at + super::FRAME);
        Ok(Some(at))
    }

    fn take_chunk(&mut self, chunk: Chunk) {
        let frames = chunk.samples.len() / self.device_channels;
        if self.pending.is_empty() {
            // Its first sample was captured a chunk's length before it arrived.
            let rate = self.resampler.as_ref().map_or(SAMPLE_RATE, |r| r.rate);
            self.pending_at = Some(
                chunk
                    .at
                    .checked_sub(Duration::from_secs_f64(frames as f64 / f64::from(rate)))
                    .unwrap_or(chunk.at),
            );
        }
        // Down to one or two channels.
        let mut mixed = Vec::with_capacity(frames * self.channels);
        for f in chunk.samples.chunks_exact(self.device_channels) {
            match (self.device_channels, self.channels) {
                (1, _) => mixed.push(f[0]),
                (2, 2) => mixed.extend_from_slice(f),
                (n, _) => {
                    // Odd channels to the left, even to the right.
                    let (mut l, mut r) = (0.0, 0.0);
                    for (i, s) in f.iter().enumerate() {
                        if i % 2 == 0 { l += s } else { r += s }
                    }
                    let half = (n as f32 / 2.0).max(1.0);
                    mixed.extend_from_slice(&[l / half, r / half]);
                }
            }
        }
        match &mut self.resampler {
            None => self.pending.extend_from_slice(&mixed),
            Some(r) => r.push(&mixed, &mut self.pending),
        }
    }
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn build<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    tx: SyncSender<Chunk>,
    failure: Arc<Mutex<Option<String>>>,
) -> Result<cpal::Stream, String>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    device
        .build_input_stream::<T, _, _>(
            config,
            move |data: &[T], _| {
                let chunk = Chunk {
                    samples: data.iter().map(|s| s.to_sample::<f32>()).collect(),
                    at: Instant::now(),
                };
                // A full queue means the audio thread is stuck; dropping is all a callback can do.
                if let Err(TrySendError::Full(_)) = tx.try_send(chunk) {
                    tracing::trace!("microphone samples dropped: the audio thread is behind");
                }
            },
            move |e| {
                *failure.lock() = Some(e.to_string());
            },
            Some(Duration::from_secs(2)),
        )
        .map_err(|e| e.to_string())
}

/// Another rate to 48 kHz, 10 ms of input at a time (rubato, polynomial: cheap, good enough for
/// speech).
struct Resample {
    rate: u32,
    channels: usize,
    inner: Async<f32>,
    input: Vec<f32>,
    output: Vec<f32>,
}

impl Resample {
    fn new(rate: u32, channels: usize) -> Result<Self, String> {
        let chunk = (rate as usize / 100).max(1);
        let inner = Async::<f32>::new_poly(
            f64::from(SAMPLE_RATE) / f64::from(rate),
            1.1,
            PolynomialDegree::Cubic,
            chunk,
            channels,
            FixedAsync::Input,
        )
        .map_err(|e| format!("resampling from {rate} Hz: {e}"))?;
        let output = vec![0.0; inner.output_frames_max() * channels];
        Ok(Self {
            rate,
            channels,
            inner,
            input: Vec::new(),
            output,
        })
    }

    fn push(&mut self, samples: &[f32], out: &mut Vec<f32>) {
        self.input.extend_from_slice(samples);
        loop {
            let need = self.inner.input_frames_next();
            if self.input.len() < need * self.channels {
                return;
            }
            let frames_out = self.inner.output_frames_max();
            let result =
                InterleavedSlice::new(&self.input[..need * self.channels], self.channels, need)
                    .map_err(|e| e.to_string())
                    .and_then(|input| {
                        let mut output =
                            InterleavedSlice::new_mut(&mut self.output, self.channels, frames_out)
                                .map_err(|e| e.to_string())?;
                        self.inner
                            .process_into_buffer(&input, &mut output, None)
                            .map_err(|e| e.to_string())
                    });
            self.input.drain(..need * self.channels);
            match result {
                Ok((_, written)) => out.extend_from_slice(&self.output[..written * self.channels]),
                Err(e) => {
                    tracing::warn!("resampling: {e}");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_44100_to_48000_keeps_the_duration_and_the_tone() {
        let mut r = Resample::new(44_100, 1).unwrap();
        let input: Vec<f32> = (0..44_100)
            .map(|i| (std::f32::consts::TAU * 440.0 * i as f32 / 44_100.0).sin() * 0.5)
            .collect();
        let mut out = Vec::new();
        for chunk in input.chunks(441) {
            r.push(chunk, &mut out);
        }
        // One second in, one second out (less the resampler's short delay).
        assert!((47_500..=48_000).contains(&out.len()), "{}", out.len());
        // Still a 440 Hz tone: ~880 zero crossings a second.
        let crossings = out
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        assert!((860..=885).contains(&crossings), "{crossings}");
        assert!(out.iter().all(|s| s.abs() < 0.6));
    }
}
