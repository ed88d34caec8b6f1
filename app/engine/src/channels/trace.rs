//! Head-motion traces that scripted viewers replay: CSV with a header naming `t`, `yaw`,
//! `pitch` and `roll` (seconds, degrees; other columns ignored, `roll` and `fov` optional) or JSON
//! lines of viewport messages (`t` in ms). Times count from the trace's first sample.

use std::path::Path;
use std::time::Duration;

use super::protocol::{ViewerMessage, Viewport, parse_viewer};

/// One sample of a trace: when, after the first, and the view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TracePoint {
    pub at: Duration,
    pub view: Viewport,
}

/// A parsed trace, in time order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trace {
    pub points: Vec<TracePoint>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{path}:{line}: {reason}")]
pub struct TraceError {
    pub path: String,
    pub line: usize,
    pub reason: String,
}

/// Traces longer than this many samples are refused (a day at 60 Hz).
const MAX_POINTS: usize = 5_184_000;

impl Trace {
    /// Reads the trace at `path`.
    pub fn load(path: &Path) -> Result<Self, TraceError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| TraceError {
            path: name.clone(),
            line: 0,
            reason: e.to_string(),
        })?;
        Self::parse(&text).map_err(|(line, reason)| TraceError {
            path: name,
            line,
            reason,
        })
    }

    /// Parses a trace; an error names the line (1-based) and what is wrong.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        let Some((first_no, first)) = lines.next() else {
            return Err((0, "the trace is empty".to_owned()));
        };
        let mut raw: Vec<(f64, Viewport)> = Vec::new();
        if first.starts_with('{') {
            for (no, line) in std::iter::once((first_no, first)).chain(lines) {
                match parse_viewer(line.as_bytes(), true) {
                    Ok(ViewerMessage::Viewport(s)) => raw.push((s.t_ms / 1e3, s.view)),
                    Ok(_) => return Err((no, "not a viewport message".to_owned())),
                    Err(e) => return Err((no, e.to_string())),
                }
                check_len(&raw, no)?;
            }
        } else {
            let columns: Vec<String> = first.split(',').map(|c| c.trim().to_lowercase()).collect();
            let find = |name: &str| columns.iter().position(|c| c == name);
            let (Some(t), Some(yaw), Some(pitch)) = (find("t"), find("yaw"), find("pitch")) else {
                return Err((
                    first_no,
                    format!("expected a header naming t, yaw, pitch (and roll), got {first:?}"),
                ));
            };
            let (roll, fov) = (find("roll"), find("fov"));
            for (no, line) in lines {
                let cells: Vec<&str> = line.split(',').map(str::trim).collect();
                let number = |i: usize, name: &str| -> Result<f64, (usize, String)> {
                    let cell = cells
                        .get(i)
                        .ok_or_else(|| (no, format!("no {name} column")))?;
                    cell.parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| (no, format!("{name} {cell:?} is not a number")))
                };
                let pitch = number(pitch, "pitch")?;
                if !(-90.0..=90.0).contains(&pitch) {
                    return Err((no, format!("pitch {pitch} is outside [-90, 90]")));
                }
                let roll = roll.map(|i| number(i, "roll")).transpose()?.unwrap_or(0.0);
                let fov = fov.map(|i| number(i, "fov")).transpose()?;
                raw.push((
                    number(t, "t")?,
                    Viewport::new(number(yaw, "yaw")?, pitch, roll, fov),
                ));
                check_len(&raw, no)?;
            }
        }
        let Some(&(t0, _)) = raw.first() else {
            return Err((first_no, "the trace has a header but no samples".to_owned()));
        };
        let mut points = Vec::with_capacity(raw.len());
        let mut last = t0;
        for (i, (t, view)) in raw.into_iter().enumerate() {
            if t < last {
                return Err((
                    0,
                    format!("sample {} goes back in time ({t} after {last})", i + 1),
                ));
            }
            last = t;
            points.push(TracePoint {
                at: Duration::from_secs_f64(t - t0),
                view,
            });
        }
        Ok(Self { points })
    }

    pub fn duration(&self) -> Duration {
        self.points.last().map_or(Duration::ZERO, |p| p.at)
    }
}

fn check_len<T>(raw: &[T], line: usize) -> Result<(), (usize, String)> {
    if raw.len() > MAX_POINTS {
        return Err((line, format!("more than {MAX_POINTS} samples")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_traces_read_in_seconds_and_degrees_with_extra_columns_ignored() {
        let t = Trace::parse("frame,t,yaw,pitch,roll,notes\n0,10.0,0,0,0,x\n1,10.5,200,-10,5,y\n\n2,11.25,-30,89.5,0,z\n")
            .unwrap();
        assert_eq!(t.points.len(), 3);
        assert_eq!(t.points[1].at, Duration::from_millis(500));
        assert_eq!(t.points[1].view, Viewport::new(-160.0, -10.0, 5.0, None));
        assert_eq!(t.duration(), Duration::from_millis(1250));
        // Roll is optional.
        let t = Trace::parse("t,yaw,pitch\n0,1,2\n").unwrap();
        assert_eq!(t.points[0].view, Viewport::new(1.0, 2.0, 0.0, None));
    }

    #[test]
    fn json_line_traces_are_viewport_messages() {
        let t = Trace::parse(concat!(
            r#"{"type":"viewport","t":1000,"yaw":5,"pitch":0,"roll":0,"fov":90}"#,
            "\n",
            r#"{"type":"viewport","t":1016.5,"yaw":6,"pitch":1}"#,
            "\n"
        ))
        .unwrap();
        assert_eq!(t.points[1].at, Duration::from_micros(16_500));
        assert_eq!(t.points[0].view.fov_deg, Some(90.0));
    }

    #[test]
    fn bad_traces_name_the_line_and_the_problem() {
        for (text, line, says) in [
            ("", 0, "empty"),
            ("time,x,y\n1,2,3\n", 1, "expected a header"),
            (
                "t,yaw,pitch\n0,1,2\n0.1,left,2\n",
                3,
                "yaw \"left\" is not a number",
            ),
            ("t,yaw,pitch\n0,1,95\n", 2, "outside [-90, 90]"),
            ("t,yaw,pitch\n0,1\n", 2, "no pitch column"),
            ("t,yaw,pitch\n", 1, "no samples"),
            ("t,yaw,pitch\n1,0,0\n0.5,0,0\n", 0, "back in time"),
            ("{\"type\":\"hello\"}\n", 1, "not a viewport"),
            ("{\"type\":\"viewport\",\"t\":1}\n", 1, "\"yaw\" is missing"),
        ] {
            let (got_line, reason) = Trace::parse(text).unwrap_err();
            assert_eq!(got_line, line, "{text:?}: {reason}");
            assert!(reason.contains(says), "{text:?}: {reason}");
        }
        let e = Trace::load(Path::new("/nonexistent/trace.csv")).unwrap_err();
        assert!(
            e.to_string().starts_with("/nonexistent/trace.csv:0: "),
            "{e}"
        );
    }
}
