//! Where viewers look, on the broadcaster's 2:1 equirectangular picture: each view's outline
//! and a heat map of the last minute. Positions are fractions of the picture (0..1, x to the
//! right, y down); yaw 0 is the centre column, pitch +90 the top row. Pure: time is passed in.

use super::protocol::Viewport;

/// A view's aspect ratio (width / height) when the viewer does not say: a 16:9 window.
pub const DEFAULT_ASPECT: f64 = 16.0 / 9.0;
/// A view's horizontal field of view when the viewer does not say.
pub const DEFAULT_FOV_DEG: f64 = 90.0;

/// Where `yaw`, `pitch` are on the picture.
pub fn to_picture(yaw_deg: f64, pitch_deg: f64) -> [f32; 2] {
    [
        ((yaw_deg + 180.0) / 360.0).rem_euclid(1.0) as f32,
        ((90.0 - pitch_deg) / 180.0).clamp(0.0, 1.0) as f32,
    ]
}

/// The outline of what `view` shows, as polylines on the picture (split where it crosses the
/// picture's left/right edge).
pub fn outline(view: &Viewport, aspect: f64) -> Vec<Vec<[f32; 2]>> {
    const STEPS: usize = 16;
    let hfov = view
        .fov_deg
        .unwrap_or(DEFAULT_FOV_DEG)
        .clamp(1.0, 179.0)
        .to_radians();
    let tx = (hfov / 2.0).tan();
    let ty = tx / aspect.max(0.1);
    let q = view.quaternion();
    let mut corners = Vec::with_capacity(STEPS * 4 + 1);
    let edge = |from: [f64; 2], to: [f64; 2], out: &mut Vec<[f64; 2]>| {
        for i in 0..STEPS {
            let f = i as f64 / STEPS as f64;
            out.push([
                from[0] + (to[0] - from[0]) * f,
                from[1] + (to[1] - from[1]) * f,
            ]);
        }
    };
    edge([-1.0, 1.0], [1.0, 1.0], &mut corners);
    edge([1.0, 1.0], [1.0, -1.0], &mut corners);
    edge([1.0, -1.0], [-1.0, -1.0], &mut corners);
    edge([-1.0, -1.0], [-1.0, 1.0], &mut corners);
    corners.push([-1.0, 1.0]);
    let mut lines: Vec<Vec<[f32; 2]>> = vec![Vec::new()];
    let mut last: Option<[f32; 2]> = None;
    for [sx, sy] in corners {
        let d = rotate(q, [sx * tx, sy * ty, -1.0]);
        let yaw = d[0].atan2(-d[2]).to_degrees();
        let pitch = (d[1] / (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt())
            .asin()
            .to_degrees();
        let p = to_picture(yaw, pitch);
        if let Some(l) = last
            && (p[0] - l[0]).abs() > 0.5
        {
            lines.push(Vec::new());
        }
        if let Some(line) = lines.last_mut() {
            line.push(p);
        }
        last = Some(p);
    }
    lines.retain(|l| l.len() > 1);
    lines
}

fn rotate(q: [f64; 4], v: [f64; 3]) -> [f64; 3] {
    let [x, y, z, w] = q;
    let u = [x, y, z];
    let cross = |a: [f64; 3], b: [f64; 3]| {
        [
            a[1] * b[2] - a[2] * b[1],
            a[2] * b[0] - a[0] * b[2],
            a[0] * b[1] - a[1] * b[0],
        ]
    };
    let c1 = cross(u, v);
    let c2 = cross(u, c1);
    [
        v[0] + 2.0 * (w * c1[0] + c2[0]),
        v[1] + 2.0 * (w * c1[1] + c2[1]),
        v[2] + 2.0 * (w * c1[2] + c2[2]),
    ]
}

/// Where viewers looked over the last minute: a grid of bins over the picture, each counting
/// the samples whose centre fell near it, kept per second.
#[derive(Debug, Clone)]
pub struct Heatmap {
    seconds: Vec<(u64, Vec<f32>)>,
}

impl Heatmap {
    pub const COLUMNS: usize = 64;
    pub const ROWS: usize = 32;
    /// How far back it remembers.
    pub const WINDOW_S: u64 = 60;

    pub fn new() -> Self {
        Self {
            seconds: (0..Self::WINDOW_S)
                .map(|_| (u64::MAX, vec![0.0; Self::COLUMNS * Self::ROWS]))
                .collect(),
        }
    }

    /// Counts a view at `now_s` (whole seconds on any clock).
    pub fn add(&mut self, now_s: u64, view: &Viewport) {
        let slot = &mut self.seconds[(now_s % Self::WINDOW_S) as usize];
        if slot.0 != now_s {
            slot.0 = now_s;
            slot.1.fill(0.0);
        }
        let [x, y] = to_picture(view.yaw_deg, view.pitch_deg);
        let cx = ((x * Self::COLUMNS as f32) as isize).min(Self::COLUMNS as isize - 1);
        let cy = ((y * Self::ROWS as f32) as isize).min(Self::ROWS as isize - 1);
        // The bin and, at half weight, its neighbours (wrapping left to right).
        for dy in -1..=1isize {
            let row = cy + dy;
            if !(0..Self::ROWS as isize).contains(&row) {
                continue;
            }
            for dx in -1..=1isize {
                let col = (cx + dx).rem_euclid(Self::COLUMNS as isize);
                let w = if dx == 0 && dy == 0 { 1.0 } else { 0.5 };
                slot.1[row as usize * Self::COLUMNS + col as usize] += w;
            }
        }
    }

    /// The bins summed over the last minute before `now_s`, row by row, and the largest.
    pub fn grid(&self, now_s: u64) -> (Vec<f32>, f32) {
        let mut sum = vec![0.0; Self::COLUMNS * Self::ROWS];
        for (at, bins) in &self.seconds {
            if *at != u64::MAX && *at <= now_s && now_s - *at < Self::WINDOW_S {
                for (s, b) in sum.iter_mut().zip(bins) {
                    *s += b;
                }
            }
        }
        let max = sum.iter().copied().fold(0.0, f32::max);
        (sum, max)
    }
}

impl Default for Heatmap {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-3
    }

    #[test]
    fn a_view_straight_ahead_outlines_the_middle_quarter() {
        let view = Viewport::new(0.0, 0.0, 0.0, Some(90.0));
        let lines = outline(&view, 2.0);
        assert_eq!(lines.len(), 1);
        let xs: Vec<f32> = lines[0].iter().map(|p| p[0]).collect();
        let min = xs.iter().copied().fold(1.0, f32::min);
        let max = xs.iter().copied().fold(0.0, f32::max);
        // 90° wide around the centre column: from 3/8 to 5/8 of the width.
        assert!(close(min, 0.375) && close(max, 0.625), "{min} {max}");
        assert_eq!(to_picture(0.0, 0.0), [0.5, 0.5]);
        assert_eq!(to_picture(-180.0, 90.0), [0.0, 0.0]);
    }

    #[test]
    fn a_view_across_the_back_seam_is_split_in_two() {
        let view = Viewport::new(180.0, 10.0, 0.0, Some(60.0));
        let lines = outline(&view, 16.0 / 9.0);
        assert_eq!(
            lines.len(),
            3,
            "left part, right part, closing back: {lines:?}"
        );
        assert!(lines.iter().flatten().all(|p| p[0] < 0.1 || p[0] > 0.9));
        // Looking up 10°: the outline's middle is above the picture's middle.
        let ys: Vec<f32> = lines.iter().flatten().map(|p| p[1]).collect();
        assert!(ys.iter().sum::<f32>() / (ys.len() as f32) < 0.5);
    }

    #[test]
    fn the_heatmap_forgets_after_a_minute() {
        let mut h = Heatmap::new();
        let right = Viewport::new(90.0, 0.0, 0.0, None);
        for s in 0..10 {
            h.add(s, &right);
        }
        let (grid, max) = h.grid(9);
        let [x, y] = to_picture(90.0, 0.0);
        let at = (y * Heatmap::ROWS as f32) as usize * Heatmap::COLUMNS
            + (x * Heatmap::COLUMNS as f32) as usize;
        assert_eq!(grid[at], max);
        assert_eq!(max, 10.0);
        // 65 s later only what came after second 5 + 60 - 60… nothing is left.
        assert_eq!(h.grid(75).1, 0.0);
        // At second 65 the samples of seconds 6..=9 are still inside the minute.
        assert_eq!(h.grid(65).1, 4.0);
        // A bin on the left edge spreads to the right edge.
        let mut h = Heatmap::new();
        h.add(0, &Viewport::new(-180.0, 0.0, 0.0, None));
        let (grid, _) = h.grid(0);
        assert!(grid[16 * Heatmap::COLUMNS + Heatmap::COLUMNS - 1] > 0.0);
    }
}
