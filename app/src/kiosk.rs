//! Kiosk mode, for robots: `omnicast --kiosk --config omnicast.toml` starts the configured mode
//! at once and keeps it going unattended (full screen, or with `--headless` no window at all),
//! reconnecting for ever. The configuration is checked whole before anything starts; a mistake
//! gets a message naming the field, its line and the problem.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use omnicast_engine::audio::AudioSource;
use serde::Deserialize;

use omnicast_engine::capture::{CameraSelector, SourceSpec};
use omnicast_engine::record::DEFAULT_MIN_FREE_MB;
use omnicast_engine::settings::{Mode, ProjectionSetting, Settings};
use omnicast_engine::values::{
    BitrateKbps, BridgeAddr, ControlKey, Fps, FrameSize, MinFreeMb, RecordSegment, ServerUrl,
};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KioskConfig {
    /// `broadcaster` or `viewer`.
    pub mode: KioskMode,
    /// Full screen (else an ordinary window); ignored with `--headless`.
    pub fullscreen: bool,
    pub broadcast: BroadcastSection,
    pub server: ServerSection,
    pub view: ViewSection,
    pub data: DataSection,
    pub record: RecordSection,
    /// Local address for WebRTC media; default every interface and loopback.
    pub media_bind: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KioskMode {
    #[default]
    Broadcaster,
    Viewer,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BroadcastSection {
    pub source: Checked<SourceSpec>,
    pub size: Checked<FrameSize>,
    pub fps: Checked<Fps>,
    pub bitrate_kbps: Checked<BitrateKbps>,
    /// What viewers are told the picture is: `auto` (360° for 2:1 sizes), `flat` or
    /// `equirect`.
    pub projection: ProjectionSetting,
    /// What is heard: `none`, `default` (microphone), a microphone's name, or `test-tone`.
    pub audio: Checked<AudioSource>,
    /// Host the signal server here (else use `server.url`).
    pub host_server: bool,
    pub bind: SocketAddr,
    pub stun_bind: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub url: Checked<ServerUrl>,
    pub room: String,
    /// Broadcaster key; `OMNICAST_KEY` in the environment is used when this is empty.
    pub key: String,
}

/// The data channels: what viewers send, and the robot bridge.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    /// Broadcaster: viewers saying this key may send messages to the robot. Viewer: the key it
    /// says. `OMNICAST_CONTROL_KEY` in the environment is used when this is missing.
    pub control_key: Option<Checked<ControlKey>>,
    /// Broadcaster: append every viewport sample here (JSON lines).
    pub viewport_log: Option<PathBuf>,
    /// Broadcaster: the robot software's TCP server, `tcp://HOST:PORT`.
    pub bridge: Option<Checked<BridgeAddr>>,
    /// Broadcaster: send viewport samples to the bridge too.
    pub bridge_viewport: bool,
}

/// Recording what is sent (broadcaster) or received (viewer), from the start.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordSection {
    /// The folder; no recording when missing.
    pub dir: Option<PathBuf>,
    /// A new file every this long: `30s`, `10m`, `1h`; one file when missing.
    pub segment: Option<Checked<RecordSegment>>,
    /// Recording stops before the disk's free space falls below this.
    pub min_free_mb: Checked<MinFreeMb>,
}

impl Default for RecordSection {
    fn default() -> Self {
        Self {
            dir: None,
            segment: None,
            min_free_mb: Checked(
                DEFAULT_MIN_FREE_MB
                    .to_string()
                    .parse()
                    .expect("the default is in range"),
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ViewSection {
    pub sphere: bool,
    pub overlay: bool,
}

impl Default for KioskConfig {
    fn default() -> Self {
        Self {
            mode: KioskMode::Broadcaster,
            fullscreen: true,
            broadcast: BroadcastSection::default(),
            server: ServerSection::default(),
            view: ViewSection::default(),
            data: DataSection::default(),
            record: RecordSection::default(),
            media_bind: None,
        }
    }
}

impl Default for BroadcastSection {
    fn default() -> Self {
        use omnicast_signal::config::{DEFAULT_HTTP_PORT, DEFAULT_STUN_PORT};
        Self {
            source: Checked(SourceSpec::Camera(CameraSelector::First)),
            size: Checked(FrameSize {
                width: 1280,
                height: 720,
            }),
            fps: Checked(Fps::new(30.0).expect("in range")),
            bitrate_kbps: Checked(BitrateKbps::new(2_000).expect("in range")),
            projection: ProjectionSetting::Auto,
            audio: Checked(AudioSource::None),
            host_server: true,
            bind: SocketAddr::from(([0, 0, 0, 0], DEFAULT_HTTP_PORT)),
            stun_bind: SocketAddr::from(([0, 0, 0, 0], DEFAULT_STUN_PORT)),
        }
    }
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            url: Checked("http://127.0.0.1:4000".parse().expect("a URL")),
            room: String::new(),
            key: String::new(),
        }
    }
}

/// A value given as a string and checked by its `FromStr`, whose message says what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked<T>(pub T);

impl<'de, T> Deserialize<'de> for Checked<T>
where
    T: FromStr<Err = String>,
{
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = String;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E>(self, v: &str) -> Result<String, E> {
                Ok(v.to_owned())
            }
            fn visit_i64<E>(self, v: i64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_u64<E>(self, v: u64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_f64<E>(self, v: f64) -> Result<String, E> {
                Ok(v.to_string())
            }
        }
        let text = d.deserialize_any(Text)?;
        text.parse().map(Checked).map_err(serde::de::Error::custom)
    }
}

/// A configuration that does not hold, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {field}{message} (line {line})")]
    Invalid {
        path: String,
        /// `broadcast.size: ` and the like; empty for problems with the file as a whole.
        field: String,
        message: String,
        line: usize,
    },
}

impl KioskConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses a configuration; `path` names it in messages.
    pub fn parse(text: &str, path: &str) -> Result<Self, ConfigError> {
        let invalid = |field: String, e: &toml::de::Error| {
            let line = e.span().map_or(1, |s| {
                text[..s.start.min(text.len())].lines().count().max(1)
            });
            ConfigError::Invalid {
                path: path.to_owned(),
                field,
                message: e.message().trim().to_owned(),
                line,
            }
        };
        let deserializer =
            toml::Deserializer::parse(text).map_err(|e| invalid(String::new(), &e))?;
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let field = e.path().to_string();
            let field = if field == "." {
                String::new()
            } else {
                format!("{field}: ")
            };
            invalid(field, e.inner())
        })
    }

    /// The app's settings for this configuration.
    pub fn settings(&self) -> Settings {
        let b = &self.broadcast;
        let key = if self.server.key.is_empty() {
            std::env::var("OMNICAST_KEY").unwrap_or_default()
        } else {
            self.server.key.clone()
        };
        Settings {
            mode: match self.mode {
                KioskMode::Broadcaster => Mode::Broadcaster,
                KioskMode::Viewer => Mode::Viewer,
            },
            source: b.source.0.to_string(),
            width: b.size.0.width,
            height: b.size.0.height,
            fps: b.fps.0.get(),
            bitrate_kbps: b.bitrate_kbps.0.get(),
            projection: b.projection,
            audio: b.audio.0.to_string(),
            host_server: b.host_server,
            server_url: self.server.url.0.to_string(),
            room: self.server.room.clone(),
            key,
            sphere: self.view.sphere,
            overlay: self.view.overlay,
            control_key: match &self.data.control_key {
                Some(k) => k.0.as_str().to_owned(),
                None => std::env::var("OMNICAST_CONTROL_KEY").unwrap_or_default(),
            },
            viewport_log: self.data.viewport_log.is_some(),
            viewport_log_path: self
                .data
                .viewport_log
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            bridge: self
                .data
                .bridge
                .as_ref()
                .map(|b| b.0.to_string())
                .unwrap_or_default(),
            bridge_viewport: self.data.bridge_viewport,
            record_on_start: self.record.dir.is_some(),
            record_dir: self.record.dir.as_ref().map_or_else(
                || Settings::default().record_dir,
                |d| d.display().to_string(),
            ),
            record_segment: self
                .record
                .segment
                .as_ref()
                .map(|s| humantime::format_duration(s.0.get()).to_string())
                .unwrap_or_default(),
            record_min_free_mb: self.record.min_free_mb.0.mb(),
            ..Settings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_is_valid_and_means_what_it_says() {
        let text = include_str!("../../assets/omnicast.example.toml");
        let c = KioskConfig::parse(text, "omnicast.example.toml").unwrap();
        assert_eq!(c.mode, KioskMode::Broadcaster);
        let s = c.settings();
        assert_eq!((s.width, s.height), (1920, 960));
        assert!(s.host_server);
        assert_eq!(s.source, "camera");
        assert_eq!(s.bridge, "");
        assert!(!s.viewport_log);
    }

    #[test]
    fn the_record_section_records_from_the_start() {
        let c = KioskConfig::parse(
            "[record]\ndir = \"/var/lib/omnicast\"\nsegment = \"10m\"\nmin_free_mb = 2000\n",
            "x.toml",
        )
        .unwrap();
        let s = c.settings();
        assert!(s.record_on_start);
        let r = s.record().unwrap();
        assert_eq!(r.dir, PathBuf::from("/var/lib/omnicast"));
        assert_eq!(r.segment, Some(std::time::Duration::from_secs(600)));
        assert_eq!(r.min_free_bytes, 2_000_000_000);
        assert!(!KioskConfig::default().settings().record_on_start);
        let e = KioskConfig::parse("[record]\nsegment = \"soon\"\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("record.segment: ") && e.contains("(line 2)"),
            "{e}"
        );
    }

    #[test]
    fn the_data_section_reaches_the_broadcast() {
        let c = KioskConfig::parse(
            "[data]\ncontrol_key = \"k\"\nviewport_log = \"/var/log/views.jsonl\"\n\
             bridge = \"tcp://127.0.0.1:9000\"\nbridge_viewport = true\n",
            "x.toml",
        )
        .unwrap();
        let data = c
            .settings()
            .broadcast(&omnicast_engine::peer::PeerSettings::loopback())
            .unwrap()
            .data;
        assert!(data.control_key.unwrap().matches("k"));
        assert_eq!(
            data.viewport_log.as_deref(),
            Some(Path::new("/var/log/views.jsonl"))
        );
        assert_eq!(data.bridge.unwrap().to_string(), "tcp://127.0.0.1:9000");
        assert!(data.bridge_viewport);
    }

    #[test]
    fn an_empty_config_broadcasts_the_first_camera_hosting_the_server() {
        let c = KioskConfig::parse("", "x.toml").unwrap();
        assert_eq!(c, KioskConfig::default());
        assert!(c.fullscreen && c.broadcast.host_server);
    }

    #[test]
    fn mistakes_name_the_field_its_line_and_the_problem() {
        let cases = [
            ("mode = \"viewr\"", "mode: ", "unknown variant `viewr`", 1),
            (
                "[broadcast]\nsize = \"12by7\"",
                "broadcast.size: ",
                "expected WIDTHxHEIGHT",
                2,
            ),
            (
                "[broadcast]\n\nsize = \"7680x3840\"",
                "broadcast.size: ",
                "up to 3840x2160",
                3,
            ),
            ("[broadcast]\nfps = 500", "broadcast.fps: ", "1 to 60", 2),
            (
                "[broadcast]\nsource = \"webcam\"",
                "broadcast.source: ",
                "unknown source",
                2,
            ),
            (
                "[server]\nurl = \"robot:4000\"",
                "server.url: ",
                "http:// or https://",
                2,
            ),
            (
                "[broadcast]\nbind = \"nowhere\"",
                "broadcast.bind: ",
                "invalid socket address",
                2,
            ),
            (
                "[view]\nsphere = \"yes\"",
                "view.sphere: ",
                "invalid type",
                2,
            ),
            (
                "[broadcast]\nfps = true",
                "broadcast.fps: ",
                "a string or a number",
                2,
            ),
            ("colour = \"red\"", "colour: ", "unknown field `colour`", 1),
            (
                "[data]\nbridge = \"robot:9000\"",
                "data.bridge: ",
                "expected tcp://HOST:PORT",
                2,
            ),
            (
                "[data]\ncontrol_key = \"\"",
                "data.control_key: ",
                "1 to 256",
                2,
            ),
            ("[broadcast\nfps = 30", "", "", 1),
        ];
        for (text, field, says, line) in cases {
            let err = KioskConfig::parse(text, "robot.toml").unwrap_err();
            let ConfigError::Invalid {
                field: f,
                message,
                line: l,
                ..
            } = &err
            else {
                panic!("{err}");
            };
            assert_eq!(f, field, "{text:?}: {err}");
            assert!(message.contains(says), "{text:?}: {err}");
            assert_eq!(*l, line, "{text:?}: {err}");
            assert!(err.to_string().starts_with("robot.toml: "), "{err}");
        }
    }

    #[test]
    fn a_missing_file_says_which() {
        let err = KioskConfig::load(Path::new("/nonexistent/omnicast.toml")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/omnicast.toml"),
            "{err}"
        );
    }
}
