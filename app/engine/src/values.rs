//! The values people give Omnicast (on the command line, in a kiosk file, in the window), each
//! checked in one place with the same limits everywhere. Each parses with `FromStr` (clap and
//! the kiosk file use that) and is made from numbers with `new` (the window); the error says
//! what was wrong and what is expected.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use crate::codec;

/// A picture size to encode: from 16×16 up to what openh264 encodes (H.264 level 5.2:
/// 3840×2160 either way up), rounded down to even numbers (4:2:0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSize {
    pub width: u32,
    pub height: u32,
}

impl FrameSize {
    pub const MIN: u32 = 16;

    pub fn new(width: u32, height: u32) -> Result<Self, String> {
        Self::checked(width, height).map_err(|why| format!("{width}x{height}: {why}"))
    }

    fn checked(width: u32, height: u32) -> Result<Self, &'static str> {
        if width < Self::MIN
            || height < Self::MIN
            || !codec::size_supported(width as usize, height as usize)
        {
            return Err(
                "from 16x16 up to 3840x2160 (or 2160x3840), the most H.264 level 5.2 allows",
            );
        }
        Ok(Self {
            width: width & !1,
            height: height & !1,
        })
    }
}

impl FromStr for FrameSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (w, h) = s
            .split_once(['x', 'X', '×'])
            .ok_or_else(|| format!("{s:?}: expected WIDTHxHEIGHT, e.g. 1920x960"))?;
        let (w, h): (u32, u32) = (
            w.trim().parse().map_err(|_| format!("{s:?}: bad width"))?,
            h.trim().parse().map_err(|_| format!("{s:?}: bad height"))?,
        );
        Self::checked(w, h).map_err(|why| format!("{s:?}: {why}"))
    }
}

impl fmt::Display for FrameSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// Frames per second sent: 1 to 60.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fps(f32);

impl Fps {
    pub const RANGE: RangeInclusive<f32> = 1.0..=60.0;

    pub fn new(fps: f32) -> Result<Self, String> {
        if !Self::RANGE.contains(&fps) {
            return Err(format!("{fps}: expected 1 to 60 frames per second"));
        }
        Ok(Self(fps))
    }

    pub fn get(self) -> f32 {
        self.0
    }
}

impl FromStr for Fps {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::new(
            s.trim()
                .parse()
                .map_err(|_| format!("{s:?}: not a number"))?,
        )
    }
}

/// `n` if it is in `range`, else what is expected.
fn in_range(n: u32, range: &RangeInclusive<u32>, what: &str) -> Result<u32, String> {
    if range.contains(&n) {
        return Ok(n);
    }
    Err(format!(
        "{n}: expected a whole number of {what}, {} to {}",
        range.start(),
        range.end()
    ))
}

/// A whole number in `range`, given as text (a TOML float such as `2000.0` counts if whole).
fn whole(s: &str, range: &RangeInclusive<u32>, what: &str) -> Result<u32, String> {
    let n: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: not a number"))?;
    if n.fract() != 0.0 || !(0.0..=f64::from(u32::MAX)).contains(&n) {
        return Err(format!("{s}: expected a whole number of {what}"));
    }
    in_range(n as u32, range, what)
}

/// How long each recording file runs before the next begins: `30s`, `10m`, `1h` (humantime);
/// 5 s to 24 h.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSegment(std::time::Duration);

impl RecordSegment {
    const MIN_S: u64 = 5;
    const MAX_S: u64 = 24 * 3600;

    pub fn get(self) -> std::time::Duration {
        self.0
    }
}

impl FromStr for RecordSegment {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let d = humantime::parse_duration(s.trim())
            .map_err(|e| format!("{s:?}: {e} (expected a duration such as 30s, 10m or 1h)"))?;
        if !(Self::MIN_S..=Self::MAX_S).contains(&d.as_secs()) {
            return Err(format!("{s}: expected 5s to 24h"));
        }
        Ok(Self(d))
    }
}

/// Free space, in MB, a recording always leaves on its disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinFreeMb(u32);

impl MinFreeMb {
    pub const RANGE: RangeInclusive<u32> = 0..=1_000_000;

    pub fn mb(self) -> u32 {
        self.0
    }

    pub fn bytes(self) -> u64 {
        u64::from(self.0) * 1_000_000
    }
}

impl FromStr for MinFreeMb {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        whole(s, &Self::RANGE, "MB").map(Self)
    }
}

/// The encoder's target bitrate in kbit/s: 100 to 50,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitrateKbps(u32);

impl BitrateKbps {
    pub const RANGE: RangeInclusive<u32> = 100..=50_000;

    pub fn new(kbps: u32) -> Result<Self, String> {
        in_range(kbps, &Self::RANGE, "kbit/s").map(Self)
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl FromStr for BitrateKbps {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        whole(s, &Self::RANGE, "kbit/s").map(Self)
    }
}

/// Frames between scheduled keyframes: 1 to 3,600 (viewers that join or ask get one sooner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyframeInterval(u32);

impl KeyframeInterval {
    pub const RANGE: RangeInclusive<u32> = 1..=3_600;

    pub fn new(frames: u32) -> Result<Self, String> {
        in_range(frames, &Self::RANGE, "frames").map(Self)
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl FromStr for KeyframeInterval {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        whole(s, &Self::RANGE, "frames").map(Self)
    }
}

/// Encoder threads: 1 to 4 (openh264's most), or 0 to choose by picture size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeThreads(u16);

impl EncodeThreads {
    pub fn new(threads: u16) -> Result<Self, String> {
        if threads > codec::MAX_ENCODER_THREADS {
            return Err(format!(
                "{threads}: expected 1 to {} threads, or 0 to choose by picture size",
                codec::MAX_ENCODER_THREADS
            ));
        }
        Ok(Self(threads))
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl FromStr for EncodeThreads {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let range = 0..=u32::from(codec::MAX_ENCODER_THREADS);
        whole(s, &range, "threads (0 chooses by picture size)").map(|n| Self(n as u16))
    }
}

/// A signal server's address: an `http://` or `https://` URL with a host, no trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl(String);

impl ServerUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ServerUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let rest = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"))
            .ok_or_else(|| format!("{s:?}: expected an http:// or https:// URL"))?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() {
            return Err(format!("{s:?}: the URL has no host"));
        }
        if rest.contains(char::is_whitespace) {
            return Err(format!("{s:?}: a URL has no spaces"));
        }
        if let Some((_, port)) = host.rsplit_once(':')
            && !host.ends_with(']')
            && port.parse::<u16>().is_err()
        {
            return Err(format!("{s:?}: {port:?} is not a port number"));
        }
        Ok(Self(s.trim_end_matches('/').to_owned()))
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the broadcaster's picture is: flat, or a 360° equirectangular panorama (2:1, yaw 0
/// at the centre column), which viewers show as a view to look around in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Projection {
    #[default]
    Flat,
    Equirect,
}

impl Projection {
    /// The projection a picture of this size most likely has: 2:1 is equirectangular.
    pub fn for_size(width: u32, height: u32) -> Self {
        if height > 0 && width == height * 2 {
            Self::Equirect
        } else {
            Self::Flat
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Flat => "flat",
            Self::Equirect => "equirect",
        }
    }
}

impl FromStr for Projection {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "flat" => Ok(Self::Flat),
            "equirect" | "equirectangular" | "360" => Ok(Self::Equirect),
            other => Err(format!("{other:?}: expected flat or equirect")),
        }
    }
}

impl fmt::Display for Projection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a 360° view starts looking (`--yaw`, `--pitch`, `--fov`, the pages' `?yaw=&pitch=&fov=`):
/// yaw in degrees, 0 at the picture's centre column, positive right (any value, wrapped);
/// pitch in degrees, positive up, −89 to 89; the vertical field of view, 30° to 120°.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Look {
    pub yaw_deg: f32,
    pub pitch_deg: f32,
    pub fov_deg: f32,
}

impl Default for Look {
    fn default() -> Self {
        Self {
            yaw_deg: 0.0,
            pitch_deg: 0.0,
            fov_deg: 90.0,
        }
    }
}

/// A yaw in degrees (any finite value; wrapped where it is used).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YawDeg(pub f32);

/// A pitch in degrees, −89 to 89.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PitchDeg(pub f32);

/// A vertical field of view in degrees, 30 to 120.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FovDeg(pub f32);

fn degrees(s: &str, range: RangeInclusive<f32>, what: &str) -> Result<f32, String> {
    let v: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: {what} is a number of degrees"))?;
    if v.is_finite() && range.contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "{s:?}: {what} is {} to {} degrees",
            range.start(),
            range.end()
        ))
    }
}

impl FromStr for YawDeg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        degrees(s, -3600.0..=3600.0, "yaw").map(Self)
    }
}

impl FromStr for PitchDeg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        degrees(s, -89.0..=89.0, "pitch").map(Self)
    }
}

impl FromStr for FovDeg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        degrees(s, 30.0..=120.0, "the field of view").map(Self)
    }
}

/// The robot software's bridge address: `tcp://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeAddr {
    host: String,
    port: u16,
}

impl BridgeAddr {
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl FromStr for BridgeAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let rest = s
            .strip_prefix("tcp://")
            .ok_or_else(|| format!("{s:?}: expected tcp://HOST:PORT"))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?}: expected tcp://HOST:PORT (no port)"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(['/', ' ']) {
            return Err(format!("{s:?}: expected tcp://HOST:PORT (bad host)"));
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{s:?}: {port:?} is not a port number (1 to 65535)"))?;
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for BridgeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "tcp://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "tcp://{}:{}", self.host, self.port)
        }
    }
}

/// The key that lets a viewer send messages to the robot: 1 to 256 printable characters.
#[derive(Clone, PartialEq, Eq)]
pub struct ControlKey(String);

impl ControlKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Does `given` match, compared in time independent of where they differ?
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for ControlKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ControlKey(…)")
    }
}

impl FromStr for ControlKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.chars().count() > 256 || s.chars().any(char::is_control) {
            return Err("a control key is 1 to 256 printable characters".to_owned());
        }
        Ok(Self(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_segments_and_floors_are_read_as_people_write_them() {
        assert_eq!(
            "10m".parse::<RecordSegment>().map(RecordSegment::get),
            Ok(std::time::Duration::from_secs(600))
        );
        assert_eq!(
            "1h 30m".parse::<RecordSegment>().map(RecordSegment::get),
            Ok(std::time::Duration::from_secs(5400))
        );
        assert!(
            "2s".parse::<RecordSegment>()
                .unwrap_err()
                .contains("5s to 24h")
        );
        assert!(
            "ten"
                .parse::<RecordSegment>()
                .unwrap_err()
                .contains("30s, 10m")
        );
        assert_eq!(
            "500".parse::<MinFreeMb>().map(MinFreeMb::bytes),
            Ok(500_000_000)
        );
        assert!("-1".parse::<MinFreeMb>().is_err());
    }

    #[test]
    fn sizes_parse_within_what_h264_allows() {
        assert_eq!(
            "1920x960".parse::<FrameSize>(),
            Ok(FrameSize {
                width: 1920,
                height: 960
            })
        );
        assert_eq!(
            "641X361".parse::<FrameSize>().unwrap().to_string(),
            "640x360"
        );
        let err = "12by7".parse::<FrameSize>().unwrap_err();
        assert!(err.contains("expected WIDTHxHEIGHT"), "{err}");
        let err = "7680x3840".parse::<FrameSize>().unwrap_err();
        assert!(
            err.starts_with("\"7680x3840\": from 16x16 up to 3840x2160"),
            "{err}"
        );
        assert!("8x8".parse::<FrameSize>().is_err());
        assert!(FrameSize::new(2160, 3840).is_ok());
    }

    #[test]
    fn rates_and_counts_have_one_range_each() {
        assert_eq!("30".parse::<Fps>().unwrap().get(), 30.0);
        assert!("0".parse::<Fps>().unwrap_err().contains("1 to 60"));
        assert!("61".parse::<Fps>().is_err() && "x".parse::<Fps>().is_err());
        assert!(
            Fps::new(120.0).is_err(),
            "the same limit as the window and kiosk"
        );
        assert_eq!("2000".parse::<BitrateKbps>().unwrap().get(), 2000);
        assert_eq!("2000.0".parse::<BitrateKbps>().unwrap().get(), 2000);
        let err = "99".parse::<BitrateKbps>().unwrap_err();
        assert!(err.contains("100 to 50000"), "{err}");
        assert!(
            "150.5"
                .parse::<BitrateKbps>()
                .unwrap_err()
                .contains("whole number")
        );
        assert!("-5".parse::<BitrateKbps>().is_err());
        assert!(BitrateKbps::new(60_000).is_err());
        assert!("0".parse::<KeyframeInterval>().is_err());
        assert_eq!("60".parse::<KeyframeInterval>().unwrap().get(), 60);
        assert_eq!("0".parse::<EncodeThreads>().unwrap().get(), 0);
        assert!(
            "9".parse::<EncodeThreads>()
                .unwrap_err()
                .contains("0 chooses")
        );
    }

    #[test]
    fn server_urls_need_a_scheme_and_a_host() {
        assert_eq!(
            " http://robot.local:4000/ "
                .parse::<ServerUrl>()
                .unwrap()
                .as_str(),
            "http://robot.local:4000"
        );
        assert!("https://[::1]:4000".parse::<ServerUrl>().is_ok());
        for (bad, says) in [
            ("robot:4000", "http:// or https://"),
            ("http://", "no host"),
            ("http:///x", "no host"),
            ("http://robot:port", "not a port number"),
            ("http://ro bot", "no spaces"),
        ] {
            let err = bad.parse::<ServerUrl>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn bridge_addresses_are_tcp_host_and_port() {
        let a: BridgeAddr = "tcp://127.0.0.1:9000".parse().unwrap();
        assert_eq!((a.host(), a.port()), ("127.0.0.1", 9000));
        assert_eq!(a.to_string(), "tcp://127.0.0.1:9000");
        let a: BridgeAddr = "tcp://[::1]:9000".parse().unwrap();
        assert_eq!(
            (a.host(), a.to_string().as_str()),
            ("::1", "tcp://[::1]:9000")
        );
        for (bad, says) in [
            ("127.0.0.1:9000", "expected tcp://"),
            ("tcp://robot", "no port"),
            ("tcp://:9000", "bad host"),
            ("tcp://robot:0", "not a port"),
            ("tcp://robot:http", "not a port"),
        ] {
            let err = bad.parse::<BridgeAddr>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn control_keys_match_exactly_and_never_print() {
        let k: ControlKey = "s3cret".parse().unwrap();
        assert!(k.matches("s3cret"));
        assert!(!k.matches("s3cre") && !k.matches("s3cret!") && !k.matches("S3cret"));
        assert!(!format!("{k:?}").contains("s3cret"));
        assert!("".parse::<ControlKey>().is_err());
        assert!("a\nb".parse::<ControlKey>().is_err());
    }

    #[test]
    fn projections_parse_and_2_to_1_pictures_are_360() {
        assert_eq!("equirect".parse::<Projection>(), Ok(Projection::Equirect));
        assert_eq!("flat".parse::<Projection>(), Ok(Projection::Flat));
        assert!(
            "sphere"
                .parse::<Projection>()
                .unwrap_err()
                .contains("flat or equirect")
        );
        assert_eq!(Projection::for_size(3840, 1920), Projection::Equirect);
        assert_eq!(Projection::for_size(1280, 720), Projection::Flat);
        assert_eq!(Projection::for_size(0, 0), Projection::Flat);
    }

    #[test]
    fn view_angles_have_their_ranges() {
        assert_eq!("-45".parse::<YawDeg>(), Ok(YawDeg(-45.0)));
        assert_eq!("89".parse::<PitchDeg>(), Ok(PitchDeg(89.0)));
        assert!("90".parse::<PitchDeg>().unwrap_err().contains("-89 to 89"));
        assert!("20".parse::<FovDeg>().unwrap_err().contains("30 to 120"));
        assert!(
            "left"
                .parse::<YawDeg>()
                .unwrap_err()
                .contains("number of degrees")
        );
        assert!("NaN".parse::<FovDeg>().is_err());
    }
}
