//! What the broadcaster sends as sound, as people name it: `none`, `default`, a device name, or
//! `test-tone`.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AudioSource {
    /// No audio track at all (a classic silent broadcast).
    #[default]
    None,
    /// The system's default microphone.
    Default,
    /// The microphone whose name contains this (case-insensitive).
    Named(String),
    /// A quiet 440 Hz tone with a 1 kHz beep at each whole second of the capture clock.
    TestTone,
}

impl AudioSource {
    pub fn is_none(&self) -> bool {
        *self == Self::None
    }
}

impl FromStr for AudioSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "" => Err("--audio needs none, default, test-tone or a microphone's name".into()),
            "none" | "off" => Ok(Self::None),
            "default" => Ok(Self::Default),
            "test-tone" => Ok(Self::TestTone),
            name => Ok(Self::Named(name.to_owned())),
        }
    }
}

impl fmt::Display for AudioSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Default => f.write_str("default"),
            Self::Named(n) => f.write_str(n),
            Self::TestTone => f.write_str("test-tone"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_print_back() {
        for s in ["none", "default", "test-tone", "USB Audio Device"] {
            assert_eq!(s.parse::<AudioSource>().unwrap().to_string(), s);
        }
        assert_eq!("off".parse::<AudioSource>(), Ok(AudioSource::None));
        assert!("  ".parse::<AudioSource>().is_err());
    }
}
