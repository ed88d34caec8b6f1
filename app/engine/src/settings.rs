//! What the app remembers between runs (persisted by eframe; a kiosk configuration gives them
//! instead), the choices it offers, and the engine settings they make.

use serde::{Deserialize, Serialize};

use crate::audio::AudioSource;
use crate::broadcaster::BroadcastSettings;
use crate::broadcaster::video::VideoSettings;
use crate::capture::SourceSpec;
use crate::channels::room::DataSettings;
use crate::codec::EncoderSettings;
use crate::peer::PeerSettings;
use crate::record::RecordSettings;
use crate::values::{
    BitrateKbps, BridgeAddr, ControlKey, EncodeThreads, Fps, FrameSize, KeyframeInterval,
    MinFreeMb, Projection, RecordSegment, ServerUrl,
};
use crate::viewer::ViewSettings;

/// What the broadcaster says its picture is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProjectionSetting {
    /// Equirectangular (360°) when the size is 2:1, else flat.
    #[default]
    Auto,
    Flat,
    Equirect,
}

impl ProjectionSetting {
    /// What it means for a picture `width`×`height`.
    pub fn resolve(self, width: u32, height: u32) -> Projection {
        match self {
            Self::Auto => Projection::for_size(width, height),
            Self::Flat => Projection::Flat,
            Self::Equirect => Projection::Equirect,
        }
    }
}

impl From<Projection> for ProjectionSetting {
    fn from(p: Projection) -> Self {
        match p {
            Projection::Flat => Self::Flat,
            Projection::Equirect => Self::Equirect,
        }
    }
}

/// Which screen the app shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Mode {
    #[default]
    Broadcaster,
    Viewer,
}

/// Everything the user chose. Runtime handles live in the app, never here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub mode: Mode,
    /// What to broadcast: `test-pattern`, `camera`, `camera:INDEX` or `camera:NAME`.
    pub source: String,
    pub width: u32,
    pub height: u32,
    pub fps: f32,
    pub bitrate_kbps: u32,
    /// Frames between scheduled keyframes.
    pub keyframe_interval: u32,
    /// Encoder threads; 0 chooses by picture size.
    pub encode_threads: u16,
    /// Host the signal server in this app (broadcaster), or use `server_url`.
    pub host_server: bool,
    /// The signal server a viewer watches through, or a broadcaster uses when not hosting.
    pub server_url: String,
    pub room: String,
    /// Broadcaster key for a room on a remote server.
    pub key: String,
    /// Show the video as an interactive 360° view.
    pub sphere: bool,
    /// Statistics drawn over the video.
    pub overlay: bool,
    /// Broadcaster: the room's control key (viewers saying it may send messages to the robot);
    /// viewer: the key it says. Empty: none.
    pub control_key: String,
    /// Broadcaster: append every viewer's viewport samples to `viewport_log_path`.
    pub viewport_log: bool,
    pub viewport_log_path: String,
    /// Broadcaster: the robot software's bridge, `tcp://HOST:PORT`; empty: none.
    pub bridge: String,
    /// Broadcaster: send viewport samples to the bridge too.
    pub bridge_viewport: bool,
    /// Broadcaster: draw where viewers look on the preview, and the heat map of the last minute.
    pub show_views: bool,
    pub show_heatmap: bool,
    /// Broadcaster: what the picture is, as announced to viewers.
    pub projection: ProjectionSetting,
    /// Broadcaster: what is heard: `none`, `default` (microphone), a microphone's name, or
    /// `test-tone`.
    pub audio: String,
    /// Broadcaster: silence goes out instead of the microphone.
    pub audio_muted: bool,
    /// Viewer: how loud the broadcast plays (0–2), and whether it is muted.
    pub volume: f32,
    pub playback_muted: bool,
    /// Both modes: where recordings go; a new file every `record_segment` (`10m`; empty: one
    /// file); recording stops before the disk's free space falls below `record_min_free_mb`.
    pub record_dir: String,
    pub record_segment: String,
    pub record_min_free_mb: u32,
    /// Record from the start of each session (kiosk, `--record`); never remembered.
    #[serde(skip)]
    pub record_on_start: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mode: Mode::Broadcaster,
            source: "camera".to_owned(),
            width: 1280,
            height: 720,
            fps: 30.0,
            bitrate_kbps: 2_000,
            keyframe_interval: EncoderSettings::default().keyframe_interval,
            encode_threads: 0,
            host_server: true,
            server_url: "http://127.0.0.1:4000".to_owned(),
            room: String::new(),
            key: String::new(),
            sphere: false,
            overlay: false,
            control_key: String::new(),
            viewport_log: false,
            viewport_log_path: "omnicast-viewports.jsonl".to_owned(),
            bridge: String::new(),
            bridge_viewport: false,
            show_views: true,
            show_heatmap: false,
            projection: ProjectionSetting::Auto,
            audio: "default".to_owned(),
            audio_muted: false,
            volume: 1.0,
            playback_muted: false,
            record_dir: "omnicast-recordings".to_owned(),
            record_segment: String::new(),
            record_min_free_mb: 500,
            record_on_start: false,
        }
    }
}

impl Settings {
    /// The broadcast these settings describe (its server URL is replaced when hosting), or
    /// what is wrong with them: checked as the command line and kiosk files are.
    pub fn broadcast(&self, peer: &PeerSettings) -> Result<BroadcastSettings, String> {
        let size = FrameSize::new(self.width, self.height)?;
        let server_url = if self.host_server {
            String::new()
        } else {
            self.server_url.parse::<ServerUrl>()?.to_string()
        };
        Ok(BroadcastSettings {
            server_url,
            room: self.room.clone(),
            key: (!self.key.is_empty()).then(|| self.key.clone()),
            video: VideoSettings {
                source: self.source.parse::<SourceSpec>()?,
                width: size.width,
                height: size.height,
                encoder: EncoderSettings {
                    fps: Fps::new(self.fps)?.get(),
                    bitrate_kbps: BitrateKbps::new(self.bitrate_kbps)?.get(),
                    keyframe_interval: KeyframeInterval::new(self.keyframe_interval)?.get(),
                    threads: EncodeThreads::new(self.encode_threads)?.get(),
                },
            },
            peer: peer.clone(),
            data: DataSettings {
                control_key: self.control_key()?,
                viewport_log: if self.viewport_log {
                    let path = self.viewport_log_path.trim();
                    if path.is_empty() {
                        return Err("choose a file for the viewport log".to_owned());
                    }
                    Some(path.into())
                } else {
                    None
                },
                bridge: match self.bridge.trim() {
                    "" => None,
                    b => Some(b.parse::<BridgeAddr>()?),
                },
                bridge_viewport: self.bridge_viewport,
                projection: self.projection.resolve(size.width, size.height),
            },
            audio: self.audio.parse::<AudioSource>()?,
            audio_muted: self.audio_muted,
        })
    }

    fn control_key(&self) -> Result<Option<ControlKey>, String> {
        match self.control_key.as_str() {
            "" => Ok(None),
            k => k.parse().map(Some),
        }
    }

    /// Where and how to record, or what is wrong with it.
    pub fn record(&self) -> Result<RecordSettings, String> {
        let dir = self.record_dir.trim();
        if dir.is_empty() {
            return Err("choose a folder for recordings".to_owned());
        }
        let mut r = RecordSettings::new(dir, &self.room);
        r.segment = match self.record_segment.trim() {
            "" => None,
            s => Some(s.parse::<RecordSegment>()?.get()),
        };
        r.min_free_bytes = u64::from(self.record_min_free_mb) * 1_000_000;
        Ok(r)
    }

    /// The viewer these settings describe, or what is wrong with them.
    pub fn view(&self, peer: &PeerSettings) -> Result<ViewSettings, String> {
        Ok(ViewSettings {
            server_url: self.server_url.parse::<ServerUrl>()?.to_string(),
            room: self.room.clone(),
            peer: peer.clone(),
            control_key: self.control_key()?,
            viewport_trace: None,
        })
    }
}

/// Settings given on the command line, each replacing the remembered (or default) one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsPatch {
    pub mode: Option<Mode>,
    pub source: Option<SourceSpec>,
    pub size: Option<FrameSize>,
    pub fps: Option<Fps>,
    pub bitrate_kbps: Option<BitrateKbps>,
    pub keyframe_interval: Option<KeyframeInterval>,
    pub encode_threads: Option<EncodeThreads>,
    /// Host the signal server here (`Some(true)`), or use `server_url`.
    pub host_server: Option<bool>,
    pub server_url: Option<ServerUrl>,
    pub room: Option<String>,
    pub key: Option<String>,
    /// Show the picture as a 360° view (`Some(true)`) or flat.
    pub sphere: Option<bool>,
    pub control_key: Option<ControlKey>,
    /// Log viewport samples here (turns the log on).
    pub viewport_log: Option<std::path::PathBuf>,
    pub bridge: Option<BridgeAddr>,
    pub bridge_viewport: Option<bool>,
    pub projection: Option<Projection>,
    pub audio: Option<AudioSource>,
    /// Record from the start, into this folder.
    pub record_dir: Option<std::path::PathBuf>,
    pub record_segment: Option<RecordSegment>,
    pub record_min_free_mb: Option<MinFreeMb>,
}

impl SettingsPatch {
    pub fn apply(&self, s: &mut Settings) {
        if let Some(mode) = self.mode {
            s.mode = mode;
        }
        if let Some(source) = &self.source {
            s.source = source.to_string();
        }
        if let Some(size) = self.size {
            (s.width, s.height) = (size.width, size.height);
        }
        if let Some(fps) = self.fps {
            s.fps = fps.get();
        }
        if let Some(kbps) = self.bitrate_kbps {
            s.bitrate_kbps = kbps.get();
        }
        if let Some(k) = self.keyframe_interval {
            s.keyframe_interval = k.get();
        }
        if let Some(t) = self.encode_threads {
            s.encode_threads = t.get();
        }
        if let Some(host) = self.host_server {
            s.host_server = host;
        }
        if let Some(url) = &self.server_url {
            s.server_url = url.to_string();
        }
        if let Some(room) = &self.room {
            s.room.clone_from(room);
        }
        if let Some(key) = &self.key {
            s.key.clone_from(key);
        }
        if let Some(sphere) = self.sphere {
            s.sphere = sphere;
        }
        if let Some(key) = &self.control_key {
            s.control_key = key.as_str().to_owned();
        }
        if let Some(path) = &self.viewport_log {
            s.viewport_log = true;
            s.viewport_log_path = path.display().to_string();
        }
        if let Some(bridge) = &self.bridge {
            s.bridge = bridge.to_string();
        }
        if let Some(on) = self.bridge_viewport {
            s.bridge_viewport = on;
        }
        if let Some(p) = self.projection {
            s.projection = p.into();
        }
        if let Some(a) = &self.audio {
            s.audio = a.to_string();
        }
        if let Some(dir) = &self.record_dir {
            s.record_dir = dir.display().to_string();
            s.record_on_start = true;
        }
        if let Some(segment) = self.record_segment {
            s.record_segment = humantime::format_duration(segment.get()).to_string();
        }
        if let Some(floor) = self.record_min_free_mb {
            s.record_min_free_mb = floor.mb();
        }
    }
}

/// Picture sizes offered, the 2:1 ones for 360° cameras (equirectangular).
pub const SIZE_PRESETS: &[(u32, u32, &str)] = &[
    (640, 360, "640×360"),
    (1280, 720, "1280×720 (720p)"),
    (1920, 1080, "1920×1080 (1080p)"),
    (1920, 960, "1920×960 (360°)"),
    (2880, 1440, "2880×1440 (360°)"),
    (3840, 1920, "3840×1920 (360° 4K)"),
];

/// The label of a size, preset or not.
pub fn size_label(width: u32, height: u32) -> String {
    SIZE_PRESETS
        .iter()
        .find(|(w, h, _)| (*w, *h) == (width, height))
        .map_or_else(|| format!("{width}×{height}"), |(_, _, l)| (*l).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_survive_a_round_trip_and_missing_fields_take_defaults() {
        let s = Settings {
            mode: Mode::Viewer,
            sphere: true,
            room: "lab".into(),
            ..Settings::default()
        };
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Settings>(&text).unwrap(), s);
        // Settings saved by an older version lack newer fields.
        let old: Settings = serde_json::from_str(r#"{"mode":"Viewer","room":"x"}"#).unwrap();
        assert_eq!(old.mode, Mode::Viewer);
        assert_eq!(old.fps, 30.0);
        assert!(old.host_server);
    }

    #[test]
    fn settings_are_checked_as_the_command_line_checks_them() {
        let peer = PeerSettings::loopback();
        let ok = Settings::default().broadcast(&peer).unwrap();
        assert_eq!((ok.video.width, ok.video.height), (1280, 720));
        assert!(
            ok.server_url.is_empty(),
            "hosting: the hosted server's URL comes later"
        );
        let bad = |s: Settings| s.broadcast(&peer).unwrap_err();
        assert!(
            bad(Settings {
                fps: 90.0,
                ..Settings::default()
            })
            .contains("1 to 60")
        );
        assert!(
            bad(Settings {
                width: 8000,
                ..Settings::default()
            })
            .contains("3840x2160")
        );
        assert!(
            bad(Settings {
                bitrate_kbps: 5,
                ..Settings::default()
            })
            .contains("100 to 50000")
        );
        assert!(
            bad(Settings {
                source: "webcam".into(),
                ..Settings::default()
            })
            .contains("unknown source")
        );
        let remote = Settings {
            host_server: false,
            server_url: "robot:4000".into(),
            ..Settings::default()
        };
        assert!(bad(remote.clone()).contains("http://"));
        assert!(remote.view(&peer).unwrap_err().contains("http://"));
        let remote = Settings {
            server_url: " http://robot:4000/ ".into(),
            ..remote
        };
        assert_eq!(remote.view(&peer).unwrap().server_url, "http://robot:4000");
        // The data-channel settings are checked the same way.
        assert!(
            bad(Settings {
                bridge: "robot:9000".into(),
                ..Settings::default()
            })
            .contains("tcp://")
        );
        assert!(
            bad(Settings {
                viewport_log: true,
                viewport_log_path: " ".into(),
                ..Settings::default()
            })
            .contains("viewport log")
        );
        let data = Settings {
            viewport_log: true,
            bridge: "tcp://127.0.0.1:9000".into(),
            control_key: "k".into(),
            ..Settings::default()
        }
        .broadcast(&peer)
        .unwrap()
        .data;
        assert_eq!(
            data.viewport_log.as_deref(),
            Some(std::path::Path::new("omnicast-viewports.jsonl"))
        );
        assert!(data.control_key.unwrap().matches("k"));
        assert_eq!(data.bridge.unwrap().port(), 9000);
        // The projection follows the size unless it is chosen.
        let at = |width, height, projection| {
            Settings {
                width,
                height,
                projection,
                ..Settings::default()
            }
            .broadcast(&peer)
            .unwrap()
            .data
            .projection
        };
        assert_eq!(at(1920, 960, ProjectionSetting::Auto), Projection::Equirect);
        assert_eq!(at(1280, 720, ProjectionSetting::Auto), Projection::Flat);
        assert_eq!(at(1920, 960, ProjectionSetting::Flat), Projection::Flat);
        assert_eq!(
            at(1280, 720, ProjectionSetting::Equirect),
            Projection::Equirect
        );
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let remembered = Settings {
            sphere: true,
            room: "lab".into(),
            fps: 15.0,
            ..Settings::default()
        };
        let mut s = remembered.clone();
        SettingsPatch {
            mode: Some(Mode::Viewer),
            server_url: Some("http://robot:4000".parse().unwrap()),
            ..SettingsPatch::default()
        }
        .apply(&mut s);
        assert_eq!(s.mode, Mode::Viewer);
        assert_eq!(s.server_url, "http://robot:4000");
        assert_eq!((s.room.as_str(), s.fps, s.sphere), ("lab", 15.0, true));
        SettingsPatch {
            size: Some("3840x1920".parse().unwrap()),
            source: Some(SourceSpec::TestPattern),
            ..SettingsPatch::default()
        }
        .apply(&mut s);
        assert_eq!(
            (s.width, s.height, s.source.as_str()),
            (3840, 1920, "test-pattern")
        );
    }

    #[test]
    fn sizes_have_labels() {
        assert_eq!(size_label(3840, 1920), "3840×1920 (360° 4K)");
        assert_eq!(size_label(800, 600), "800×600");
    }
}
