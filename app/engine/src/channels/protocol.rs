//! The data-channel protocol, as the README documents it: JSON text, one object per message, at
//! most [`MAX_MESSAGE_BYTES`]. Parsing and building only: no I/O, no clock.
//!
//! Viewer → broadcaster: `viewport` (on `omnicast-viewport`), `hello` and `message` (on
//! `omnicast`). Broadcaster → viewers (on `omnicast`): `welcome`, `telemetry`, `error`.
//! Either side accepts any of its messages on either channel; the channel only decides how it
//! travels (reliable and ordered, or neither).

use serde::Serialize;
use serde_json::Value;

use crate::values::Projection;

/// The reliable, ordered channel: control and messages.
pub const CONTROL_LABEL: &str = "omnicast";
/// The unordered channel with no retransmissions: viewport samples.
pub const VIEWPORT_LABEL: &str = "omnicast-viewport";
/// The largest message either side takes, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Where a viewer looks, in the protocol's conventions: yaw 0 at the picture's centre column,
/// positive to the right, in [-180, 180); pitch positive up, in [-90, 90]; roll positive when
/// the view's top leans to the right; `fov_deg` the horizontal field of view, when known.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Viewport {
    pub yaw_deg: f64,
    pub pitch_deg: f64,
    pub roll_deg: f64,
    pub fov_deg: Option<f64>,
}

impl Viewport {
    /// A viewport from angles in any range: yaw and roll wrapped into [-180, 180), pitch
    /// clamped to [-90, 90].
    pub fn new(yaw_deg: f64, pitch_deg: f64, roll_deg: f64, fov_deg: Option<f64>) -> Self {
        Self {
            yaw_deg: wrap_deg(yaw_deg),
            pitch_deg: pitch_deg.clamp(-90.0, 90.0),
            roll_deg: wrap_deg(roll_deg),
            fov_deg,
        }
    }

    /// The view of a rotation `q = [x, y, z, w]` from the viewer's camera to the world. World
    /// axes: x to the right of the picture's centre, y up, z backwards (the centre is −z); the
    /// camera looks along its −z with +y up (WebGL's and the desktop view's convention).
    pub fn from_quaternion(q: [f64; 4], fov_deg: Option<f64>) -> Option<Self> {
        let norm = q.iter().map(|c| c * c).sum::<f64>().sqrt();
        if !norm.is_finite() || norm < 1e-9 {
            return None;
        }
        let [x, y, z, w] = q.map(|c| c / norm);
        let rotate = |v: [f64; 3]| -> [f64; 3] {
            // v' = v + 2w(u×v) + 2u×(u×v), u = (x, y, z)
            let u = [x, y, z];
            let c1 = cross(u, v);
            let c2 = cross(u, c1);
            [
                v[0] + 2.0 * (w * c1[0] + c2[0]),
                v[1] + 2.0 * (w * c1[1] + c2[1]),
                v[2] + 2.0 * (w * c1[2] + c2[2]),
            ]
        };
        let f = rotate([0.0, 0.0, -1.0]);
        let up = rotate([0.0, 1.0, 0.0]);
        let pitch = f[1].clamp(-1.0, 1.0).asin();
        // Looking straight up or down, yaw is where the top of the view points.
        let yaw = if f[0].hypot(f[2]) > 1e-9 {
            f[0].atan2(-f[2])
        } else {
            (-f[1].signum() * up[0]).atan2(f[1].signum() * up[2])
        };
        let (sy, cy) = yaw.sin_cos();
        let (sp, cp) = pitch.sin_cos();
        let forward = [sy * cp, sp, -cy * cp];
        let right = [cy, 0.0, sy];
        let level_up = cross(right, forward);
        let roll = dot(up, right).atan2(dot(up, level_up));
        Some(Self::new(
            yaw.to_degrees(),
            pitch.to_degrees(),
            roll.to_degrees(),
            fov_deg,
        ))
    }

    /// The rotation this view stands for (the inverse of [`Viewport::from_quaternion`]).
    pub fn quaternion(&self) -> [f64; 4] {
        // R = Ry(−yaw) · Rx(pitch) · Rz(−roll)
        let half = |deg: f64| (deg.to_radians() / 2.0).sin_cos();
        let (sy, cy) = half(-self.yaw_deg);
        let (sp, cp) = half(self.pitch_deg);
        let (sr, cr) = half(-self.roll_deg);
        let qy = [0.0, sy, 0.0, cy];
        let qx = [sp, 0.0, 0.0, cp];
        let qz = [0.0, 0.0, sr, cr];
        mul(mul(qy, qx), qz)
    }
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn mul(a: [f64; 4], b: [f64; 4]) -> [f64; 4] {
    let [ax, ay, az, aw] = a;
    let [bx, by, bz, bw] = b;
    [
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ]
}

/// `deg` wrapped into [-180, 180).
pub fn wrap_deg(deg: f64) -> f64 {
    (deg + 180.0).rem_euclid(360.0) - 180.0
}

/// A viewport sample: the view, and when the viewer sent it (its clock, ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewportSample {
    pub t_ms: f64,
    pub view: Viewport,
}

/// What a viewer says.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewerMessage {
    Viewport(ViewportSample),
    Hello { control: Option<String> },
    Message { t_ms: f64, data: Value },
}

/// What the broadcaster says.
#[derive(Debug, Clone, PartialEq)]
pub enum BroadcasterMessage {
    Welcome {
        control: bool,
    },
    /// What its picture is: sent when the channel opens and whenever it changes.
    Projection(Projection),
    Telemetry {
        t_ms: f64,
        data: Value,
    },
    Error {
        message: String,
    },
}

/// Why a message was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("message of {bytes} bytes is over the limit of {MAX_MESSAGE_BYTES}")]
    TooLarge { bytes: usize },
    #[error("binary messages are not part of the protocol: send JSON text")]
    Binary,
    #[error("not a JSON object: {0}")]
    Malformed(String),
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("bad {kind} message: {reason}")]
    Invalid { kind: &'static str, reason: String },
}

impl ProtocolError {
    /// The counter this error goes to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::TooLarge { .. } => ErrorKind::TooLarge,
            Self::UnknownType(_) => ErrorKind::Unknown,
            Self::Binary | Self::Malformed(_) | Self::Invalid { .. } => ErrorKind::Malformed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    TooLarge,
    Unknown,
    Malformed,
}

/// The `type` of a message and the rest of it.
fn split(
    text: &[u8],
    is_text: bool,
) -> Result<(String, serde_json::Map<String, Value>), ProtocolError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ProtocolError::TooLarge { bytes: text.len() });
    }
    if !is_text {
        return Err(ProtocolError::Binary);
    }
    let value: Value =
        serde_json::from_slice(text).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    let Value::Object(mut object) = value else {
        return Err(ProtocolError::Malformed(format!(
            "expected an object, got {}",
            kind_of(&value)
        )));
    };
    match object.remove("type") {
        Some(Value::String(t)) => Ok((t, object)),
        Some(other) => Err(ProtocolError::Malformed(format!(
            "\"type\" must be a string, got {}",
            kind_of(&other)
        ))),
        None => Err(ProtocolError::Malformed("no \"type\"".to_owned())),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

struct Fields {
    kind: &'static str,
    object: serde_json::Map<String, Value>,
}

impl Fields {
    fn invalid(&self, reason: impl Into<String>) -> ProtocolError {
        ProtocolError::Invalid {
            kind: self.kind,
            reason: reason.into(),
        }
    }

    fn number(&self, name: &str) -> Result<Option<f64>, ProtocolError> {
        match self.object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(v) if v.is_finite() => Ok(Some(v)),
                _ => Err(self.invalid(format!("\"{name}\" is out of range"))),
            },
            Some(other) => Err(self.invalid(format!(
                "\"{name}\" must be a number, got {}",
                kind_of(other)
            ))),
        }
    }

    fn required(&self, name: &str) -> Result<f64, ProtocolError> {
        self.number(name)?
            .ok_or_else(|| self.invalid(format!("\"{name}\" is missing")))
    }

    /// `t`: ms since the Unix epoch, a number (not a date string).
    fn time(&self) -> Result<f64, ProtocolError> {
        let t = self.required("t")?;
        if t < 0.0 {
            return Err(self.invalid("\"t\" must be ms since the Unix epoch, not negative"));
        }
        Ok(t)
    }

    fn in_range(&self, name: &str, v: f64, lo: f64, hi: f64) -> Result<f64, ProtocolError> {
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(self.invalid(format!("\"{name}\" {v} is outside [{lo}, {hi}]")))
        }
    }
}

fn viewport(fields: &Fields) -> Result<ViewportSample, ProtocolError> {
    let t_ms = fields.time()?;
    let fov = match fields.number("fov")? {
        Some(f) => Some(fields.in_range("fov", f, 1.0, 360.0)?),
        None => None,
    };
    let view = match fields.object.get("q") {
        Some(Value::Array(q)) if q.len() == 4 => {
            let mut c = [0.0; 4];
            for (slot, v) in c.iter_mut().zip(q) {
                *slot = v
                    .as_f64()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| fields.invalid("\"q\" must hold four numbers"))?;
            }
            Viewport::from_quaternion(c, fov)
                .ok_or_else(|| fields.invalid("\"q\" is not a rotation (zero length)"))?
        }
        Some(_) => return Err(fields.invalid("\"q\" must be [x, y, z, w]")),
        None => {
            let yaw = fields.in_range("yaw", fields.required("yaw")?, -360.0, 360.0)?;
            let pitch = fields.in_range("pitch", fields.required("pitch")?, -90.0, 90.0)?;
            let roll =
                fields.in_range("roll", fields.number("roll")?.unwrap_or(0.0), -360.0, 360.0)?;
            Viewport::new(yaw, pitch, roll, fov)
        }
    };
    Ok(ViewportSample { t_ms, view })
}

/// `t` and `data` of a `message` or `telemetry`.
fn timed_data(
    kind: &'static str,
    object: serde_json::Map<String, Value>,
) -> Result<(f64, Value), ProtocolError> {
    let mut fields = Fields { kind, object };
    let t_ms = fields.time()?;
    let data = fields
        .object
        .remove("data")
        .ok_or_else(|| fields.invalid("\"data\" is missing"))?;
    Ok((t_ms, data))
}

/// Parses what a viewer sent; `is_text` says whether it came as a text message.
pub fn parse_viewer(data: &[u8], is_text: bool) -> Result<ViewerMessage, ProtocolError> {
    let (kind, object) = split(data, is_text)?;
    match kind.as_str() {
        "viewport" => viewport(&Fields {
            kind: "viewport",
            object,
        })
        .map(ViewerMessage::Viewport),
        "hello" => {
            let fields = Fields {
                kind: "hello",
                object,
            };
            match fields.object.get("control") {
                None | Some(Value::Null) => Ok(ViewerMessage::Hello { control: None }),
                Some(Value::String(k)) => Ok(ViewerMessage::Hello {
                    control: Some(k.clone()),
                }),
                Some(other) => Err(fields.invalid(format!(
                    "\"control\" must be a string, got {}",
                    kind_of(other)
                ))),
            }
        }
        "message" => {
            let (t_ms, data) = timed_data("message", object)?;
            Ok(ViewerMessage::Message { t_ms, data })
        }
        _ => Err(ProtocolError::UnknownType(truncate(kind))),
    }
}

/// Parses what the broadcaster sent.
pub fn parse_broadcaster(data: &[u8], is_text: bool) -> Result<BroadcasterMessage, ProtocolError> {
    let (kind, object) = split(data, is_text)?;
    match kind.as_str() {
        "welcome" => match object.get("control") {
            Some(Value::Bool(control)) => Ok(BroadcasterMessage::Welcome { control: *control }),
            _ => Err(ProtocolError::Invalid {
                kind: "welcome",
                reason: "\"control\" must be true or false".to_owned(),
            }),
        },
        "telemetry" => {
            let (t_ms, data) = timed_data("telemetry", object)?;
            Ok(BroadcasterMessage::Telemetry { t_ms, data })
        }
        "projection" => match object.get("projection").and_then(Value::as_str) {
            Some(p) => p
                .parse()
                .map(BroadcasterMessage::Projection)
                .map_err(|reason| ProtocolError::Invalid {
                    kind: "projection",
                    reason,
                }),
            None => Err(ProtocolError::Invalid {
                kind: "projection",
                reason: "\"projection\" must be \"flat\" or \"equirect\"".to_owned(),
            }),
        },
        "error" => match object.get("message") {
            Some(Value::String(m)) => Ok(BroadcasterMessage::Error { message: m.clone() }),
            _ => Err(ProtocolError::Invalid {
                kind: "error",
                reason: "\"message\" must be a string".to_owned(),
            }),
        },
        _ => Err(ProtocolError::UnknownType(truncate(kind))),
    }
}

/// An unknown type as it is repeated back: at most 64 characters.
fn truncate(mut s: String) -> String {
    if let Some((at, _)) = s.char_indices().nth(64) {
        s.truncate(at);
        s.push('…');
    }
    s
}

impl ViewportSample {
    /// The message a viewer sends.
    pub fn to_json(&self) -> String {
        let v = &self.view;
        let mut m = serde_json::json!({
            "type": "viewport",
            "t": self.t_ms,
            "yaw": round3(v.yaw_deg),
            "pitch": round3(v.pitch_deg),
            "roll": round3(v.roll_deg),
        });
        if let Some(fov) = v.fov_deg {
            m["fov"] = round3(fov).into();
        }
        m.to_string()
    }
}

/// Degrees to a thousandth: what a head tracker can tell apart, and short lines.
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl ViewerMessage {
    pub fn to_json(&self) -> String {
        match self {
            Self::Viewport(s) => s.to_json(),
            Self::Hello { control } => {
                serde_json::json!({"type": "hello", "control": control}).to_string()
            }
            Self::Message { t_ms, data } => {
                serde_json::json!({"type": "message", "t": t_ms, "data": data}).to_string()
            }
        }
    }
}

impl BroadcasterMessage {
    pub fn to_json(&self) -> String {
        match self {
            Self::Welcome { control } => {
                serde_json::json!({"type": "welcome", "control": control}).to_string()
            }
            Self::Projection(p) => {
                serde_json::json!({"type": "projection", "projection": p.as_str()}).to_string()
            }
            Self::Telemetry { t_ms, data } => {
                serde_json::json!({"type": "telemetry", "t": t_ms, "data": data}).to_string()
            }
            Self::Error { message } => {
                serde_json::json!({"type": "error", "message": message}).to_string()
            }
        }
    }
}

/// Lets one `error` a second go back to a sender, whatever it sends.
#[derive(Debug, Default, Clone)]
pub struct ErrorLimiter {
    last_ms: Option<u64>,
}

impl ErrorLimiter {
    /// May an error go back at `now_ms` (any monotonic clock in ms)?
    pub fn allow(&mut self, now_ms: u64) -> bool {
        match self.last_ms {
            Some(last) if now_ms.saturating_sub(last) < 1000 => false,
            _ => {
                self.last_ms = Some(now_ms);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn viewer(v: Value) -> Result<ViewerMessage, ProtocolError> {
        parse_viewer(v.to_string().as_bytes(), true)
    }

    fn sample(v: Value) -> ViewportSample {
        match viewer(v) {
            Ok(ViewerMessage::Viewport(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6 || (wrap_deg(a - b)).abs() < 1e-6
    }

    #[test]
    fn a_viewport_sample_reads_as_documented() {
        let s = sample(
            json!({"type":"viewport","t":1700000000123.5,"yaw":-30,"pitch":12.5,"roll":2,"fov":90}),
        );
        assert_eq!(s.t_ms, 1700000000123.5);
        assert_eq!(s.view, Viewport::new(-30.0, 12.5, 2.0, Some(90.0)));
        // Roll and fov may be left out; yaw is wrapped into [-180, 180).
        let s = sample(json!({"type":"viewport","t":1,"yaw":180,"pitch":0}));
        assert_eq!(s.view, Viewport::new(-180.0, 0.0, 0.0, None));
        assert_eq!(s.view.yaw_deg, -180.0);
        // Unknown extra fields are ignored (newer clients).
        sample(json!({"type":"viewport","t":1,"yaw":0,"pitch":0,"extra":[1,2]}));
    }

    #[test]
    fn bad_viewport_samples_say_what_is_wrong() {
        let cases = [
            (
                json!({"type":"viewport","yaw":0,"pitch":0}),
                "\"t\" is missing",
            ),
            (
                json!({"type":"viewport","t":"2024-01-01T00:00:00Z","yaw":0,"pitch":0}),
                "\"t\" must be a number",
            ),
            (
                json!({"type":"viewport","t":1,"pitch":0}),
                "\"yaw\" is missing",
            ),
            (
                json!({"type":"viewport","t":1,"yaw":0,"pitch":91}),
                "outside [-90, 90]",
            ),
            (
                json!({"type":"viewport","t":1,"yaw":"left","pitch":0}),
                "must be a number",
            ),
            (
                json!({"type":"viewport","t":1,"q":[0,0,0],"pitch":0}),
                "[x, y, z, w]",
            ),
            (
                json!({"type":"viewport","t":1,"q":[0,0,0,0]}),
                "zero length",
            ),
            (
                json!({"type":"viewport","t":-5,"yaw":0,"pitch":0}),
                "not negative",
            ),
        ];
        for (msg, expected) in cases {
            let e = viewer(msg.clone()).expect_err(&msg.to_string()).to_string();
            assert!(e.contains(expected), "{msg}: {e}");
        }
    }

    #[test]
    fn envelopes_that_are_not_messages_are_refused_by_kind() {
        let big = format!(
            "{{\"type\":\"message\",\"t\":1,\"data\":\"{}\"}}",
            "x".repeat(MAX_MESSAGE_BYTES)
        );
        let cases: [(&[u8], bool, ErrorKind); 7] = [
            (big.as_bytes(), true, ErrorKind::TooLarge),
            (b"{\"type\":\"viewport\"", true, ErrorKind::Malformed),
            (b"[1,2,3]", true, ErrorKind::Malformed),
            (b"{\"yaw\":1}", true, ErrorKind::Malformed),
            (b"{\"type\":7}", true, ErrorKind::Malformed),
            (b"{\"type\":\"dance\"}", true, ErrorKind::Unknown),
            (b"{\"type\":\"hello\"}", false, ErrorKind::Malformed),
        ];
        for (data, text, kind) in cases {
            let e = parse_viewer(data, text).expect_err("refused");
            assert_eq!(e.kind(), kind, "{e}");
        }
        // A message exactly at the limit is taken.
        let pad = MAX_MESSAGE_BYTES - r#"{"type":"message","t":1,"data":""}"#.len();
        let exact = format!(
            "{{\"type\":\"message\",\"t\":1,\"data\":\"{}\"}}",
            "x".repeat(pad)
        );
        assert_eq!(exact.len(), MAX_MESSAGE_BYTES);
        assert!(parse_viewer(exact.as_bytes(), true).is_ok());
    }

    #[test]
    fn hello_message_and_the_broadcasters_replies_round_trip() {
        let msgs = [
            ViewerMessage::Hello {
                control: Some("k3y".into()),
            },
            ViewerMessage::Hello { control: None },
            ViewerMessage::Message {
                t_ms: 5.0,
                data: json!({"drive": [1, -1]}),
            },
        ];
        for m in msgs {
            assert_eq!(parse_viewer(m.to_json().as_bytes(), true), Ok(m));
        }
        let replies = [
            BroadcasterMessage::Welcome { control: true },
            BroadcasterMessage::Projection(Projection::Equirect),
            BroadcasterMessage::Projection(Projection::Flat),
            BroadcasterMessage::Telemetry {
                t_ms: 9.0,
                data: json!({"battery": 0.8}),
            },
            BroadcasterMessage::Error {
                message: "no".into(),
            },
        ];
        for m in replies {
            assert_eq!(parse_broadcaster(m.to_json().as_bytes(), true), Ok(m));
        }
        assert!(
            viewer(json!({"type":"message","t":1})).is_err(),
            "data is required"
        );
        assert!(viewer(json!({"type":"hello","control":5})).is_err());
    }

    #[test]
    fn quaternions_turn_into_the_same_angles() {
        // The identity looks at the picture's centre.
        let v = Viewport::from_quaternion([0.0, 0.0, 0.0, 1.0], None).unwrap();
        assert!(
            close(v.yaw_deg, 0.0) && close(v.pitch_deg, 0.0) && close(v.roll_deg, 0.0),
            "{v:?}"
        );
        // A quarter turn about −y (clockwise seen from above) looks right: yaw +90.
        let h = std::f64::consts::FRAC_1_SQRT_2;
        let v = Viewport::from_quaternion([0.0, -h, 0.0, h], None).unwrap();
        assert!(close(v.yaw_deg, 90.0) && close(v.pitch_deg, 0.0), "{v:?}");
        // A quarter turn about +x looks up.
        let v = Viewport::from_quaternion([h, 0.0, 0.0, h], None).unwrap();
        assert!(close(v.pitch_deg, 90.0), "{v:?}");
        // Unnormalised quaternions are normalised.
        let v = Viewport::from_quaternion([0.0, -2.0, 0.0, 2.0], Some(70.0)).unwrap();
        assert!(close(v.yaw_deg, 90.0), "{v:?}");
        assert_eq!(v.fov_deg, Some(70.0));
        // Any yaw, pitch and roll survive the round trip through a quaternion.
        for yaw in (-180..180).step_by(25) {
            for pitch in (-85..=85).step_by(17) {
                for roll in (-170..180).step_by(40) {
                    let want = Viewport::new(yaw as f64, pitch as f64, roll as f64, None);
                    let got = Viewport::from_quaternion(want.quaternion(), None).unwrap();
                    assert!(
                        close(got.yaw_deg, want.yaw_deg)
                            && close(got.pitch_deg, want.pitch_deg)
                            && close(got.roll_deg, want.roll_deg),
                        "{want:?} → {got:?}"
                    );
                }
            }
        }
        // And through the message.
        let s = sample(
            json!({"type":"viewport","t":1,"q":Viewport::new(40.0, -20.0, 0.0, None).quaternion()}),
        );
        assert!(
            close(s.view.yaw_deg, 40.0) && close(s.view.pitch_deg, -20.0),
            "{s:?}"
        );
    }

    #[test]
    fn errors_go_back_at_most_once_a_second() {
        let mut l = ErrorLimiter::default();
        assert!(l.allow(10_000));
        assert!(!l.allow(10_001));
        assert!(!l.allow(10_999));
        assert!(l.allow(11_000));
        assert!(!l.allow(11_500));
    }

    #[test]
    fn unknown_types_are_repeated_back_short() {
        let e = viewer(json!({"type": "x".repeat(500)}))
            .unwrap_err()
            .to_string();
        assert!(e.len() < 120, "{e}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any bytes: an answer, never a panic.
        #[test]
        fn any_bytes_get_an_answer(data in proptest::collection::vec(proptest::num::u8::ANY, 0..600), text: bool) {
            let _ = parse_viewer(&data, text);
            let _ = parse_broadcaster(&data, text);
        }

        /// Messages that are nearly right: every field of every type with any JSON value.
        #[test]
        fn nearly_right_messages_get_an_answer(
            kind in proptest::sample::select(vec!["viewport", "hello", "message", "welcome", "telemetry", "error", ""]),
            field in proptest::sample::select(vec!["t", "yaw", "pitch", "roll", "fov", "q", "control", "data", "message"]),
            value in json_value(),
        ) {
            let mut m = json!({"type": kind, "t": 1, "yaw": 0, "pitch": 0});
            m[field] = value;
            let text = m.to_string();
            if let Ok(ViewerMessage::Viewport(s)) = parse_viewer(text.as_bytes(), true) {
                let v = s.view;
                proptest::prop_assert!((-180.0..180.0).contains(&v.yaw_deg), "{v:?}");
                proptest::prop_assert!((-90.0..=90.0).contains(&v.pitch_deg), "{v:?}");
                proptest::prop_assert!((-180.0..180.0).contains(&v.roll_deg), "{v:?}");
            }
            let _ = parse_broadcaster(text.as_bytes(), true);
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            any::<i64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map(".{0,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
