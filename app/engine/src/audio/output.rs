//! Where a viewer's decoded sound goes: the default output device (cpal, 48 kHz stereo when it
//! can, otherwise resampled and mapped to its channels), or, with no device (a headless viewer,
//! a machine with no sound card), a clock alone that consumes sound in real time as a device
//! would. Either way the playout thread asks how much is queued and hands over 20 ms at a time.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};
use parking_lot::Mutex;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, FixedAsync, PolynomialDegree, Resampler};

use super::{FRAME_SAMPLES, SAMPLE_RATE};

/// Channels the playout thread hands over (interleaved).
pub const CHANNELS: usize = 2;

pub enum Output {
    Device(Box<DeviceOut>),
    Clock(ClockOut),
}

impl Output {
    /// The system's default output device.
    pub fn open_device() -> Result<Self, String> {
        DeviceOut::open().map(|d| Self::Device(Box::new(d)))
    }

    /// No device: sound is consumed by the clock.
    pub fn clock() -> Self {
        Self::Clock(ClockOut::default())
    }

    /// For people: the device's name, or that there is none.
    pub fn label(&self) -> String {
        match self {
            Self::Device(d) => d.name.clone(),
            Self::Clock(_) => "no output device".into(),
        }
    }

    /// Sound handed over and not yet played.
    pub fn queued(&self, now: Instant) -> Duration {
        match self {
            Self::Device(d) => d.queued(),
            Self::Clock(c) => c.queued(now),
        }
    }

    /// How much to keep queued so the device never runs dry.
    pub fn low_water(&self) -> Duration {
        match self {
            Self::Device(d) => d.period + Duration::from_millis(20),
            Self::Clock(_) => Duration::from_millis(10),
        }
    }

    /// Hands over 48 kHz stereo, interleaved.
    pub fn push(&mut self, pcm: &[f32], now: Instant) {
        match self {
            Self::Device(d) => d.push(pcm),
            Self::Clock(c) => c.push(pcm.len() / CHANNELS, now),
        }
    }

    /// Why the device stopped, once.
    pub fn failure(&self) -> Option<String> {
        match self {
            Self::Device(d) => d.failure.lock().take(),
            Self::Clock(_) => None,
        }
    }
}

/// A clock standing in for a device.
#[derive(Debug, Default)]
pub struct ClockOut {
    /// When the first sample played, and samples handed over since.
    start: Option<Instant>,
    pushed: u64,
}

impl ClockOut {
    fn played_until(&self) -> Option<Instant> {
        let start = self.start?;
        Some(start + Duration::from_secs_f64(self.pushed as f64 / f64::from(SAMPLE_RATE)))
    }

    fn queued(&self, now: Instant) -> Duration {
        self.played_until()
            .map_or(Duration::ZERO, |end| end.saturating_duration_since(now))
    }

    fn push(&mut self, frames: usize, now: Instant) {
        // Ran dry (the thread was held up): play on from now, as a device would.
        if self.played_until().is_none_or(|end| end < now) {
            self.start = Some(now);
            self.pushed = 0;
        }
        self.pushed += frames as u64;
    }
}

/// Samples queued for the device's callback: at most a second.
type Ring = Arc<Mutex<VecDeque<f32>>>;

pub struct DeviceOut {
    name: String,
    _stream: cpal::Stream,
    ring: Ring,
    channels: usize,
    rate: u32,
    period: Duration,
    failure: Arc<Mutex<Option<String>>>,
    resampler: Option<Async<f32>>,
    resampled: Vec<f32>,
    mapped: Vec<f32>,
}

impl DeviceOut {
    fn open() -> Result<Self, String> {
        let host = cpal::default_host();
        let device = host
            .default_output_device()
            .ok_or("the system has no default output device")?;
        let name = device.to_string();
        let default = device.default_output_config().map_err(|e| e.to_string())?;
        let at_48k = device.supported_output_configs().ok().and_then(|mut c| {
            c.find(|r| {
                r.sample_format() == default.sample_format()
                    && (r.min_sample_rate()..=r.max_sample_rate()).contains(&SAMPLE_RATE)
                    && r.channels() == default.channels()
            })
            .map(|r| r.with_sample_rate(SAMPLE_RATE))
        });
        let config = at_48k.unwrap_or(default);
        let channels = usize::from(config.channels()).max(1);
        let rate = config.sample_rate();
        let ring: Ring = Arc::new(Mutex::new(VecDeque::with_capacity(
            rate as usize * channels,
        )));
        let failure = Arc::new(Mutex::new(None));
        let stream_config: cpal::StreamConfig = config.config();
        let (r, f) = (ring.clone(), failure.clone());
        let stream = match config.sample_format() {
            SampleFormat::F32 => build::<f32>(&device, stream_config, r, f),
            SampleFormat::I16 => build::<i16>(&device, stream_config, r, f),
            SampleFormat::I32 => build::<i32>(&device, stream_config, r, f),
            SampleFormat::U16 => build::<u16>(&device, stream_config, r, f),
            other => return Err(format!("unsupported sample format {other}")),
        }?;
        stream.play().map_err(|e| e.to_string())?;
        let resampler = if rate == SAMPLE_RATE {
            None
        } else {
            Some(
                Async::<f32>::new_poly(
                    f64::from(rate) / f64::from(SAMPLE_RATE),
                    1.1,
                    PolynomialDegree::Cubic,
                    FRAME_SAMPLES,
                    CHANNELS,
                    FixedAsync::Input,
                )
                .map_err(|e| e.to_string())?,
            )
        };
        tracing::info!("sound plays on {name:?}: {rate} Hz, {channels} channel(s)");
        Ok(Self {
            name,
            _stream: stream,
            ring,
            channels,
            rate,
            period: Duration::from_millis(20),
            failure,
            resampled: resampler
                .as_ref()
                .map_or(Vec::new(), |r| vec![0.0; r.output_frames_max() * CHANNELS]),
            resampler,
            mapped: Vec::new(),
        })
    }

    fn queued(&self) -> Duration {
        let samples = self.ring.lock().len() / self.channels;
        Duration::from_secs_f64(samples as f64 / f64::from(self.rate))
    }

    fn push(&mut self, pcm: &[f32]) {
        let mut stereo: &[f32] = pcm;
        if let Some(r) = &mut self.resampler {
            let frames = pcm.len() / CHANNELS;
            let out_max = r.output_frames_max();
            let done = InterleavedSlice::new(pcm, CHANNELS, frames)
                .map_err(|e| e.to_string())
                .and_then(|input| {
                    let mut output =
                        InterleavedSlice::new_mut(&mut self.resampled, CHANNELS, out_max)
                            .map_err(|e| e.to_string())?;
                    r.process_into_buffer(&input, &mut output, None)
                        .map_err(|e| e.to_string())
                });
            match done {
                Ok((_, written)) => stereo = &self.resampled[..written * CHANNELS],
                Err(e) => {
                    tracing::debug!("resampling for the device: {e}");
                    return;
                }
            }
        }
        self.mapped.clear();
        for f in stereo.chunks_exact(CHANNELS) {
            match self.channels {
                1 => self.mapped.push((f[0] + f[1]) / 2.0),
                n => {
                    self.mapped.extend_from_slice(f);
                    self.mapped.extend(std::iter::repeat_n(0.0, n - 2));
                }
            }
        }
        let mut ring = self.ring.lock();
        let cap = self.rate as usize * self.channels;
        ring.extend(self.mapped.iter().copied());
        while ring.len() > cap {
            ring.pop_front();
        }
    }
}

fn build<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    ring: Ring,
    failure: Arc<Mutex<Option<String>>>,
) -> Result<cpal::Stream, String>
where
    T: SizedSample + FromSample<f32>,
{
    device
        .build_output_stream::<T, _, _>(
            config,
            move |data: &mut [T], _| {
                let mut ring = ring.lock();
                for s in data.iter_mut() {
                    *s = T::from_sample(ring.pop_front().unwrap_or(0.0));
                }
            },
            move |e| *failure.lock() = Some(e.to_string()),
            Some(Duration::from_secs(2)),
        )
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_consumes_in_real_time_and_plays_on_after_running_dry() {
        let t0 = Instant::now();
        let mut out = Output::clock();
        assert_eq!(out.queued(t0), Duration::ZERO);
        let frame = vec![0.0; FRAME_SAMPLES * CHANNELS];
        out.push(&frame, t0);
        out.push(&frame, t0);
        assert_eq!(out.queued(t0), Duration::from_millis(40));
        assert_eq!(
            out.queued(t0 + Duration::from_millis(30)),
            Duration::from_millis(10)
        );
        // Dry for a while: what comes next plays from then, not in the past.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(out.queued(later), Duration::ZERO);
        out.push(&frame, later);
        assert_eq!(out.queued(later), Duration::from_millis(20));
    }
}
