//! What the app remembers between runs (persisted by eframe; a kiosk configuration gives them
//! instead), the choices it offers, and the engine settings they make.

use serde::{Deserialize, Serialize};

use crate::engine::broadcaster::BroadcastSettings;
use crate::engine::capture::SourceSpec;
use crate::engine::codec::EncoderSettings;
use crate::engine::peer::PeerSettings;
use crate::engine::viewer::ViewSettings;

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
            host_server: true,
            server_url: "http://127.0.0.1:4000".to_owned(),
            room: String::new(),
            key: String::new(),
            sphere: false,
            overlay: false,
        }
    }
}

impl Settings {
    /// The broadcast these settings describe (its server URL is replaced when hosting).
    pub fn broadcast(&self, peer: &PeerSettings) -> Result<BroadcastSettings, String> {
        Ok(BroadcastSettings {
            server_url: self.server_url.trim().to_owned(),
            room: self.room.clone(),
            key: (!self.key.is_empty()).then(|| self.key.clone()),
            source: self.source.parse::<SourceSpec>()?,
            width: self.width,
            height: self.height,
            encoder: EncoderSettings {
                fps: self.fps,
                bitrate_kbps: self.bitrate_kbps,
                ..EncoderSettings::default()
            },
            peer: peer.clone(),
        })
    }

    pub fn view(&self, peer: &PeerSettings) -> ViewSettings {
        ViewSettings {
            server_url: self.server_url.trim().to_owned(),
            room: self.room.clone(),
            peer: peer.clone(),
            decode: true,
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
    fn sizes_have_labels() {
        assert_eq!(size_label(3840, 1920), "3840×1920 (360° 4K)");
        assert_eq!(size_label(800, 600), "800×600");
    }
}
