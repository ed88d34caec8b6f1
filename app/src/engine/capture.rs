//! Video sources: a camera (nokhwa) or the built-in test pattern. A camera that is missing or
//! fails falls back to the test pattern with a clear message, and is retried.

use std::fmt;
use std::str::FromStr;

use nokhwa::Camera;
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
    Resolution,
};
use openh264::formats::{RgbSliceU8, YUVBuffer, YUVSource};

use super::frame::I420;
use super::pattern::TestPattern;
use super::stamp::Stamp;

/// Which camera, as the user named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraSelector {
    First,
    Index(u32),
    Name(String),
}

/// What to broadcast: `test-pattern`, `camera`, `camera:INDEX` or `camera:NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    TestPattern,
    Camera(CameraSelector),
}

impl FromStr for SourceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            None if s == "test-pattern" => Ok(Self::TestPattern),
            None if s == "camera" => Ok(Self::Camera(CameraSelector::First)),
            Some(("camera", "")) => Err("camera: needs an index or a name after the colon".into()),
            Some(("camera", sel)) => Ok(Self::Camera(match sel.parse() {
                Ok(i) => CameraSelector::Index(i),
                Err(_) => CameraSelector::Name(sel.to_owned()),
            })),
            _ => Err(format!(
                "unknown source {s:?}: expected test-pattern, camera, camera:INDEX or camera:NAME"
            )),
        }
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TestPattern => f.write_str("test-pattern"),
            Self::Camera(CameraSelector::First) => f.write_str("camera"),
            Self::Camera(CameraSelector::Index(i)) => write!(f, "camera:{i}"),
            Self::Camera(CameraSelector::Name(n)) => write!(f, "camera:{n}"),
        }
    }
}

/// A camera the system reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraInfo {
    pub index: u32,
    pub name: String,
}

/// The cameras present now (empty when there are none or the system cannot list them).
pub fn list_cameras() -> Vec<CameraInfo> {
    match nokhwa::query(ApiBackend::Auto) {
        Ok(cams) => cams
            .iter()
            .filter_map(|c| match c.index() {
                CameraIndex::Index(i) => Some(CameraInfo {
                    index: *i,
                    name: c.human_name(),
                }),
                CameraIndex::String(_) => None,
            })
            .collect(),
        Err(e) => {
            tracing::debug!("cannot list cameras: {e}");
            Vec::new()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("no camera found")]
    NoCamera,
    #[error("no camera named {0:?} (found: {1})")]
    NoSuchCamera(String, String),
    #[error("camera {0}: {1}")]
    Camera(String, nokhwa::NokhwaError),
}

/// An open camera delivering frames converted to I420.
pub struct CameraSource {
    name: String,
    camera: Camera,
    yuv: Option<YUVBuffer>,
}

impl CameraSource {
    pub fn open(
        selector: &CameraSelector,
        width: u32,
        height: u32,
        fps: u32,
    ) -> Result<Self, CaptureError> {
        let cameras = list_cameras();
        let info = match selector {
            CameraSelector::First => cameras.first().cloned(),
            CameraSelector::Index(i) => cameras.iter().find(|c| c.index == *i).cloned(),
            CameraSelector::Name(n) => {
                let found = cameras.iter().find(|c| c.name == *n).cloned();
                if found.is_none() && !cameras.is_empty() {
                    let names: Vec<_> = cameras.iter().map(|c| c.name.as_str()).collect();
                    return Err(CaptureError::NoSuchCamera(n.clone(), names.join(", ")));
                }
                found
            }
        }
        .ok_or(CaptureError::NoCamera)?;
        let format = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(
            CameraFormat::new(Resolution::new(width, height), FrameFormat::MJPEG, fps),
        ));
        let err = |e| CaptureError::Camera(info.name.clone(), e);
        let mut camera = Camera::new(CameraIndex::Index(info.index), format).map_err(err)?;
        camera.open_stream().map_err(err)?;
        Ok(Self {
            name: info.name,
            camera,
            yuv: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next camera frame (blocks until the camera delivers one).
    pub fn frame(&mut self) -> Result<&YUVBuffer, CaptureError> {
        let name = self.name.clone();
        let err = |e| CaptureError::Camera(name.clone(), e);
        let buffer = self.camera.frame().map_err(err)?;
        let rgb = buffer.decode_image::<RgbFormat>().map_err(err)?;
        let dims = (rgb.width() as usize & !1, rgb.height() as usize & !1);
        if self.yuv.as_ref().is_none_or(|y| y.dimensions() != dims) {
            self.yuv = Some(YUVBuffer::new(dims.0, dims.1));
        }
        let yuv = self
            .yuv
            .get_or_insert_with(|| YUVBuffer::new(dims.0, dims.1));
        yuv.read_rgb8(RgbSliceU8::new(
            rgb.as_raw(),
            (rgb.width() as usize, rgb.height() as usize),
        ));
        Ok(yuv)
    }
}

/// A frame source: the camera while it works, else the test pattern.
pub struct Source {
    pattern: TestPattern,
    camera: Option<CameraSource>,
}

impl Source {
    pub fn test_pattern(width: u32, height: u32) -> Self {
        Self {
            pattern: TestPattern::new(width as usize, height as usize),
            camera: None,
        }
    }

    pub fn camera(camera: CameraSource, width: u32, height: u32) -> Self {
        Self {
            pattern: TestPattern::new(width as usize, height as usize),
            camera: Some(camera),
        }
    }

    pub fn is_camera(&self) -> bool {
        self.camera.is_some()
    }

    /// The next frame. A camera error drops back to the test pattern (returned in the error so
    /// the caller can say so and retry later).
    pub fn frame(&mut self, stamp: Stamp) -> Result<Frame<'_>, CaptureError> {
        if let Some(camera) = &mut self.camera {
            match camera.frame() {
                Ok(_) => {}
                Err(e) => {
                    self.camera = None;
                    return Err(e);
                }
            }
        }
        Ok(match &self.camera {
            Some(c) => match &c.yuv {
                Some(yuv) => Frame::Camera(yuv),
                None => Frame::Pattern(self.pattern.render(stamp)),
            },
            None => Frame::Pattern(self.pattern.render(stamp)),
        })
    }
}

/// A borrowed frame of either kind, as the encoder takes it.
pub enum Frame<'a> {
    Pattern(&'a I420),
    Camera(&'a YUVBuffer),
}

impl YUVSource for Frame<'_> {
    fn dimensions(&self) -> (usize, usize) {
        match self {
            Frame::Pattern(f) => f.dimensions(),
            Frame::Camera(f) => f.dimensions(),
        }
    }

    fn strides(&self) -> (usize, usize, usize) {
        match self {
            Frame::Pattern(f) => f.strides(),
            Frame::Camera(f) => f.strides(),
        }
    }

    fn y(&self) -> &[u8] {
        match self {
            Frame::Pattern(f) => f.y(),
            Frame::Camera(f) => f.y(),
        }
    }

    fn u(&self) -> &[u8] {
        match self {
            Frame::Pattern(f) => f.u(),
            Frame::Camera(f) => f.u(),
        }
    }

    fn v(&self) -> &[u8] {
        match self {
            Frame::Pattern(f) => f.v(),
            Frame::Camera(f) => f.v(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_specs_parse_and_print() {
        for s in ["test-pattern", "camera", "camera:2", "camera:Front Cam"] {
            assert_eq!(s.parse::<SourceSpec>().unwrap().to_string(), s);
        }
        assert_eq!(
            "camera:1".parse::<SourceSpec>(),
            Ok(SourceSpec::Camera(CameraSelector::Index(1)))
        );
        assert!(
            "webcam"
                .parse::<SourceSpec>()
                .unwrap_err()
                .contains("unknown source")
        );
        assert!("camera:".parse::<SourceSpec>().is_err());
    }

    #[test]
    fn without_a_camera_opening_one_is_a_clear_error() {
        // The test machines have no camera; where one exists this checks a bogus name instead.
        let selector = if list_cameras().is_empty() {
            CameraSelector::First
        } else {
            CameraSelector::Name("no such camera, surely".into())
        };
        let err = CameraSource::open(&selector, 640, 480, 30)
            .err()
            .expect("no camera");
        let msg = err.to_string();
        assert!(msg.contains("no camera"), "{msg}");
    }
}
