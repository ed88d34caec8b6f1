//! Pictures from files as the broadcaster's source, read on the capture thread like a camera:
//! a PNG or JPEG picture (`image:FILE`), sent at the chosen rate and scaled to the chosen size,
//! or a YUV4MPEG2 video (`y4m:FILE`, 8-bit 4:2:0), looped, one file frame for each frame sent,
//! at the file's own size. A file that cannot be used is an error naming it and the problem.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::capture::{CameraFrame, CaptureError, SourceSpec, VideoInput, file_error, file_name};
use crate::frame::I420;

/// Hands out frames at most every `interval`, sleeping until the next is due.
struct Clock {
    interval: Duration,
    next: Option<Instant>,
}

impl Clock {
    fn new(fps: f32) -> Self {
        Self {
            interval: Duration::from_secs_f32(1.0 / fps.clamp(1.0, 120.0)),
            next: None,
        }
    }

    /// Waits for the next frame's turn; returns when it is.
    fn tick(&mut self) -> Instant {
        let now = Instant::now();
        if let Some(next) = self.next
            && next > now
        {
            std::thread::sleep(next - now);
        }
        let at = Instant::now();
        // On schedule, but never catching up on a backlog.
        self.next = Some(self.next.map_or(at, |n| n.max(at - self.interval)) + self.interval);
        at
    }
}

/// A still picture.
pub struct ImageSource {
    name: String,
    picture: I420,
    clock: Clock,
}

impl ImageSource {
    /// Decodes `path` (PNG or JPEG) and scales it to `width`×`height` if it differs.
    pub fn open(path: &Path, width: u32, height: u32, fps: f32) -> Result<Self, CaptureError> {
        let decoded = image::ImageReader::open(path)
            .map_err(|e| file_error(path, e))?
            .with_guessed_format()
            .map_err(|e| file_error(path, e))?
            .decode()
            .map_err(|e| file_error(path, format!("not a picture Omnicast can read: {e}")))?;
        let mut rgb = decoded.to_rgb8();
        if (rgb.width(), rgb.height()) != (width, height) {
            tracing::info!(
                "{}: {}×{} scaled to {width}×{height}",
                path.display(),
                rgb.width(),
                rgb.height()
            );
            rgb =
                image::imageops::resize(&rgb, width, height, image::imageops::FilterType::Triangle);
        }
        Ok(Self {
            name: file_name(path),
            picture: I420::from_rgb(width as usize, height as usize, rgb.as_raw()),
            clock: Clock::new(fps),
        })
    }
}

impl VideoInput for ImageSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn label(&self) -> String {
        format!("image {}", self.name)
    }

    fn read(&mut self, reuse: Option<I420>) -> Result<CameraFrame, CaptureError> {
        let captured = self.clock.tick();
        let image = match reuse {
            Some(mut buffer)
                if (buffer.width(), buffer.height())
                    == (self.picture.width(), self.picture.height()) =>
            {
                let (y, u, v) = buffer.planes_mut();
                let (sy, su, sv) = self.picture.planes();
                y.copy_from_slice(sy);
                u.copy_from_slice(su);
                v.copy_from_slice(sv);
                buffer
            }
            _ => self.picture.clone(),
        };
        Ok(CameraFrame { image, captured })
    }
}

/// A YUV4MPEG2 video, looped.
pub struct Y4mSource {
    name: String,
    path: PathBuf,
    decoder: y4m::Decoder<BufReader<File>>,
    clock: Clock,
}

impl Y4mSource {
    pub fn open(path: &Path, fps: f32) -> Result<Self, CaptureError> {
        Ok(Self {
            name: file_name(path),
            path: path.to_owned(),
            decoder: Self::decoder(path)?,
            clock: Clock::new(fps),
        })
    }

    fn decoder(path: &Path) -> Result<y4m::Decoder<BufReader<File>>, CaptureError> {
        let file = File::open(path).map_err(|e| file_error(path, e))?;
        let decoder = y4m::decode(BufReader::new(file))
            .map_err(|e| file_error(path, format!("not a YUV4MPEG2 video: {e:?}")))?;
        let colorspace = decoder.get_colorspace();
        let is_420_8bit = matches!(
            colorspace,
            y4m::Colorspace::C420
                | y4m::Colorspace::C420jpeg
                | y4m::Colorspace::C420paldv
                | y4m::Colorspace::C420mpeg2
        );
        if !is_420_8bit {
            return Err(file_error(
                path,
                format!("only 8-bit 4:2:0 video can be sent (this file is {colorspace:?})"),
            ));
        }
        let (w, h) = (decoder.get_width(), decoder.get_height());
        if w < 16 || h < 16 || w % 2 != 0 || h % 2 != 0 || w > 3840 * 2 || h > 3840 * 2 {
            return Err(file_error(
                path,
                format!("{w}×{h}: the picture must be even-sized, from 16×16 up to 3840×2160"),
            ));
        }
        Ok(decoder)
    }

    /// The next frame's planes into `image`, starting over at the end of the file.
    fn next_into(&mut self, image: &mut I420) -> Result<(), CaptureError> {
        for attempt in 0..2 {
            match self.decoder.read_frame() {
                Ok(frame) => {
                    let (y, u, v) = image.planes_mut();
                    let (fy, fu, fv) = (
                        frame.get_y_plane(),
                        frame.get_u_plane(),
                        frame.get_v_plane(),
                    );
                    if (fy.len(), fu.len(), fv.len()) != (y.len(), u.len(), v.len()) {
                        return Err(file_error(&self.path, "a frame of the wrong size"));
                    }
                    y.copy_from_slice(fy);
                    u.copy_from_slice(fu);
                    v.copy_from_slice(fv);
                    return Ok(());
                }
                Err(y4m::Error::EOF) if attempt == 0 => {
                    self.decoder = Self::decoder(&self.path)?;
                }
                Err(y4m::Error::EOF) => {
                    return Err(file_error(&self.path, "the video has no frames"));
                }
                Err(e) => {
                    return Err(file_error(
                        &self.path,
                        format!("a frame does not read: {e:?}"),
                    ));
                }
            }
        }
        Err(file_error(&self.path, "the video has no frames"))
    }
}

impl VideoInput for Y4mSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn label(&self) -> String {
        format!("video {}", self.name)
    }

    fn read(&mut self, reuse: Option<I420>) -> Result<CameraFrame, CaptureError> {
        let (w, h) = (self.decoder.get_width(), self.decoder.get_height());
        let mut image = reuse
            .filter(|b| (b.width(), b.height()) == (w, h))
            .unwrap_or_else(|| I420::new(w, h));
        let captured = self.clock.tick();
        self.next_into(&mut image)?;
        Ok(CameraFrame { image, captured })
    }
}

/// Opens a file source the way the broadcast will, so a bad file is said before anything
/// starts; other sources need no check.
pub fn check(spec: &SourceSpec, width: u32, height: u32, fps: f32) -> Result<(), CaptureError> {
    match spec {
        SourceSpec::Image(path) => ImageSource::open(path, width, height, fps).map(drop),
        SourceSpec::Y4m(path) => {
            let mut source = Y4mSource::open(path, fps)?;
            let (w, h) = (source.decoder.get_width(), source.decoder.get_height());
            source.next_into(&mut I420::new(w, h))
        }
        SourceSpec::Mp4(path) => crate::replay::probe(path).map(drop).map_err(Into::into),
        SourceSpec::TestPattern | SourceSpec::Camera(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("omnicast-files-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A y4m file of `frames` frames, each filled with its index as luma.
    fn y4m_file(name: &str, header: &str, frames: u8, (w, h): (usize, usize)) -> PathBuf {
        let path = dir().join(name);
        let mut bytes = format!("{header}\n").into_bytes();
        for i in 0..frames {
            bytes.extend_from_slice(b"FRAME\n");
            bytes.extend(std::iter::repeat_n(i * 10, w * h));
            bytes.extend(std::iter::repeat_n(128, w * h / 2));
        }
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn a_picture_is_scaled_to_the_chosen_size_and_sent_at_the_chosen_rate() {
        let path = dir().join("red.png");
        image::RgbImage::from_pixel(64, 32, image::Rgb([255, 0, 0]))
            .save(&path)
            .unwrap();
        let mut source = ImageSource::open(&path, 128, 64, 20.0).unwrap();
        assert_eq!(source.label(), "image red.png");
        let started = Instant::now();
        let mut last = None;
        for _ in 0..5 {
            let f = source.read(last.take()).unwrap();
            assert_eq!((f.image.width(), f.image.height()), (128, 64));
            // Studio-range red: Y about 81, V high.
            let (y, _, v) = f.image.planes();
            assert!((70..95).contains(&y[0]) && v[0] > 200, "{} {}", y[0], v[0]);
            last = Some(f.image);
        }
        // Five frames at 20 fps: four intervals.
        assert!(
            started.elapsed() >= Duration::from_millis(190),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_y4m_video_plays_its_frames_in_order_and_loops() {
        let path = y4m_file(
            "three.y4m",
            "YUV4MPEG2 W32 H16 F30:1 Ip A1:1 C420jpeg",
            3,
            (32, 16),
        );
        let mut source = Y4mSource::open(&path, 120.0).unwrap();
        let lumas: Vec<u8> = (0..7)
            .map(|_| source.read(None).unwrap().image.planes().0[0])
            .collect();
        assert_eq!(lumas, [0, 10, 20, 0, 10, 20, 0]);
        assert!(check(&SourceSpec::Y4m(path), 0, 0, 30.0).is_ok());
    }

    #[test]
    fn bad_files_name_the_file_and_the_problem() {
        let not_png = dir().join("not.png");
        std::fs::write(&not_png, b"hello").unwrap();
        let cases = [
            (
                SourceSpec::Image(dir().join("missing.png")),
                "missing.png: ",
            ),
            (SourceSpec::Image(not_png), "not a picture"),
            (
                SourceSpec::Y4m(dir().join("not.png")),
                "not a YUV4MPEG2 video",
            ),
            (
                SourceSpec::Y4m(y4m_file(
                    "444.y4m",
                    "YUV4MPEG2 W32 H16 F30:1 C444",
                    1,
                    (32, 16),
                )),
                "only 8-bit 4:2:0",
            ),
            (
                SourceSpec::Y4m(y4m_file(
                    "empty.y4m",
                    "YUV4MPEG2 W32 H16 F30:1 C420",
                    0,
                    (32, 16),
                )),
                "no frames",
            ),
            (
                SourceSpec::Y4m(y4m_file(
                    "odd.y4m",
                    "YUV4MPEG2 W33 H16 F30:1 C420",
                    0,
                    (33, 16),
                )),
                "even-sized",
            ),
        ];
        for (spec, says) in cases {
            let e = check(&spec, 64, 32, 30.0)
                .expect_err(&spec.to_string())
                .to_string();
            assert!(e.contains(says), "{spec}: {e}");
            let file = match &spec {
                SourceSpec::Image(p) | SourceSpec::Y4m(p) => {
                    p.file_name().unwrap().to_string_lossy().into_owned()
                }
                _ => unreachable!(),
            };
            assert!(e.contains(&file), "names the file: {e}");
        }
    }

    #[test]
    fn file_sources_parse_and_print() {
        for s in ["image:/tmp/a b.png", "y4m:clip.y4m"] {
            assert_eq!(s.parse::<SourceSpec>().unwrap().to_string(), s);
        }
        assert!(
            "image:"
                .parse::<SourceSpec>()
                .unwrap_err()
                .contains("needs a file")
        );
    }
}
