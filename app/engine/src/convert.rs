//! Camera pictures to I420, the encoder's input. MJPEG (what cameras are asked for) is decoded
//! straight to its Y, Cb and Cr planes, skipping libjpeg's colour conversion and the way back
//! from RGB; other formats go through RGB.

use std::panic::{AssertUnwindSafe, catch_unwind};

use mozjpeg::CompInfoExt as _;
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::FrameFormat;
use openh264::formats::YUVBuffer;

use super::frame::I420;

/// Buffers kept between frames, so a steady stream allocates nothing.
#[derive(Default)]
pub struct Scratch {
    planes: [Vec<u8>; 3],
    rgb: Vec<u8>,
    yuv: Option<YUVBuffer>,
}

/// Converts one camera buffer to I420, into `reuse` when that has the size. Odd sizes lose their
/// last column or row (4:2:0 needs even sizes).
pub fn camera_buffer_to_i420(
    buffer: &nokhwa::Buffer,
    scratch: &mut Scratch,
    reuse: Option<I420>,
) -> Result<I420, nokhwa::NokhwaError> {
    let format = buffer.source_frame_format();
    let fail = |error: String| nokhwa::NokhwaError::ProcessFrameError {
        src: format,
        destination: "I420".to_owned(),
        error,
    };
    if format == FrameFormat::MJPEG {
        // mozjpeg reports a corrupt JPEG by unwinding; here that is an error like any other.
        let decoded = catch_unwind(AssertUnwindSafe(|| {
            decode_ycbcr(buffer.buffer(), &mut scratch.planes)
        }))
        .map_err(|panic| fail(panic_message(&*panic)))?
        .map_err(|e| fail(e.to_string()))?;
        if let Some(layout) = decoded {
            return Ok(ycbcr_to_i420(&scratch.planes, &layout, reuse));
        }
        // Not three-component YCbCr (greyscale, CMYK): through RGB below.
    }
    let res = buffer.resolution();
    let (w, h) = (res.width() as usize, res.height() as usize);
    scratch.rgb.resize(w * h * 3, 0);
    catch_unwind(AssertUnwindSafe(|| {
        buffer.decode_image_to_buffer::<RgbFormat>(&mut scratch.rgb)
    }))
    .map_err(|panic| fail(panic_message(&*panic)))??;
    let mut out = sized(reuse, w, h);
    out.fill_from_rgb(w, h, &scratch.rgb, &mut scratch.yuv);
    Ok(out)
}

fn sized(reuse: Option<I420>, width: usize, height: usize) -> I420 {
    match reuse {
        Some(f) if (f.width(), f.height()) == (width & !1, height & !1) => f,
        _ => I420::new(width, height),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "corrupt picture".to_owned())
}

/// Where the decoded planes are: picture size, and each plane's row stride and sampling
/// relative to the picture (`h_div`, `v_div`: picture pixels per sample).
struct Layout {
    width: usize,
    height: usize,
    planes: [(usize, usize, usize); 3],
}

/// Decodes a JPEG to its raw planes in `planes`; `None` if it is not three-component YCbCr.
fn decode_ycbcr(jpeg: &[u8], planes: &mut [Vec<u8>; 3]) -> std::io::Result<Option<Layout>> {
    let decompress = mozjpeg::Decompress::new_mem(jpeg)?;
    let (width, height) = decompress.size();
    let components = decompress.components();
    if decompress.color_space() != mozjpeg::ColorSpace::JCS_YCbCr || components.len() != 3 {
        return Ok(None);
    }
    let (h_max, v_max) = components.iter().fold((1, 1), |(h, v), c| {
        let (ch, cv) = c.sampling();
        (h.max(ch), v.max(cv))
    });
    let mut layout = Layout {
        width,
        height,
        planes: [(0, 1, 1); 3],
    };
    for (slot, c) in layout.planes.iter_mut().zip(components) {
        let (ch, cv) = c.sampling();
        // Only whole ratios (4:2:0, 4:2:2, 4:4:4, 4:1:1...); anything odder goes through RGB.
        if ch == 0 || cv == 0 || h_max % ch != 0 || v_max % cv != 0 {
            return Ok(None);
        }
        *slot = (
            c.row_stride(),
            usize::from(h_max / ch),
            usize::from(v_max / cv),
        );
    }
    if layout.planes[0].1 != 1 || layout.planes[0].2 != 1 {
        return Ok(None); // Luma at less than full resolution: not for the straight path.
    }
    let mut started = decompress.raw()?;
    for p in planes.iter_mut() {
        p.clear();
    }
    let [y, cb, cr] = planes;
    started.read_raw_data(&mut [y, cb, cr]);
    started.finish()?;
    Ok(Some(layout))
}

/// JPEG's full-range luma to the studio range H.264 decoders assume (BT.601): 0..=255 →
/// 16..=235, in fixed point so the loop vectorizes.
fn studio_luma(v: u8) -> u8 {
    ((u32::from(v) * 56_284 + 1_081_344) >> 16) as u8
}

/// Full-range chroma to studio range: 0..=255 → 16..=240, 128 stays 128.
fn studio_chroma(v: u8) -> u8 {
    ((u32::from(v) * 57_570 + 1_052_638) >> 16) as u8
}

fn ycbcr_to_i420(planes: &[Vec<u8>; 3], layout: &Layout, reuse: Option<I420>) -> I420 {
    let mut out = sized(reuse, layout.width, layout.height);
    let (w, h) = (out.width(), out.height());
    let (y_out, u_out, v_out) = out.planes_mut();
    let (stride, _, _) = layout.planes[0];
    for (dst, src) in y_out
        .chunks_exact_mut(w)
        .zip(planes[0].chunks_exact(stride))
    {
        for (d, s) in dst.iter_mut().zip(&src[..w]) {
            *d = studio_luma(*s);
        }
    }
    let (cw, ch) = (w / 2, h / 2);
    for (src, dst, (stride, h_div, v_div)) in [
        (&planes[1], u_out, layout.planes[1]),
        (&planes[2], v_out, layout.planes[2]),
    ] {
        let rows = dst.chunks_exact_mut(cw).take(ch).enumerate();
        match (h_div, v_div) {
            // 4:2:0, as I420: one to one.
            (2, 2) => {
                for ((_, d), s) in rows.zip(src.chunks_exact(stride)) {
                    for (d, s) in d.iter_mut().zip(&s[..cw]) {
                        *d = studio_chroma(*s);
                    }
                }
            }
            // 4:2:2, what most USB cameras send: the mean of each pair of rows.
            (2, 1) => {
                for ((_, d), pair) in rows.zip(src.chunks_exact(2 * stride)) {
                    let (a, b) = pair.split_at(stride);
                    for ((d, a), b) in d.iter_mut().zip(&a[..cw]).zip(&b[..cw]) {
                        *d = studio_chroma((u16::from(*a) + u16::from(*b)).div_ceil(2) as u8);
                    }
                }
            }
            // Anything else (4:4:4, 4:1:1, ...): the sample nearest each I420 one.
            _ => {
                for (row, d) in rows {
                    let s = &src[(2 * row / v_div) * stride..];
                    for (col, d) in d.iter_mut().enumerate() {
                        *d = studio_chroma(s[2 * col / h_div]);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use nokhwa::utils::Resolution;
    use openh264::formats::YUVSource as _;

    fn jpeg(rgb: &[u8], (w, h): (usize, usize), subsampling: (u8, u8)) -> Vec<u8> {
        let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
        c.set_size(w, h);
        c.set_quality(95.0);
        c.set_chroma_sampling_pixel_sizes(subsampling, subsampling);
        let mut c = c.start_compress(Vec::new()).unwrap();
        c.write_scanlines(rgb).unwrap();
        c.finish().unwrap()
    }

    fn mean(p: &[u8]) -> f64 {
        p.iter().map(|&v| f64::from(v)).sum::<f64>() / p.len() as f64
    }

    /// Left half red, right half blue; what the encoder gets should say so.
    fn two_colours(w: usize, h: usize) -> Vec<u8> {
        (0..w * h)
            .flat_map(|i| {
                if i % w < w / 2 {
                    [220u8, 30, 30]
                } else {
                    [30, 30, 220]
                }
            })
            .collect()
    }

    #[test]
    fn mjpeg_in_every_common_subsampling_becomes_the_same_i420() {
        let (w, h) = (96, 64);
        let rgb = two_colours(w, h);
        let mut scratch = Scratch::default();
        for (name, sampling) in [("4:2:0", (2, 2)), ("4:2:2", (2, 1)), ("4:4:4", (1, 1))] {
            let data = jpeg(&rgb, (w, h), sampling);
            let mut planes = Default::default();
            let layout = decode_ycbcr(&data, &mut planes).unwrap();
            assert!(
                layout.is_some(),
                "{name}: straight from YCbCr, not through RGB"
            );
            let buffer = nokhwa::Buffer::new(
                Resolution::new(w as u32, h as u32),
                &data,
                FrameFormat::MJPEG,
            );
            let out = camera_buffer_to_i420(&buffer, &mut scratch, None).unwrap();
            assert_eq!((out.width(), out.height()), (w, h), "{name}");
            let (cw, ch) = (w / 2, h / 2);
            let left = |p: &[u8]| -> Vec<u8> {
                p.chunks_exact(cw)
                    .take(ch)
                    .flat_map(|r| r[..cw / 2 - 2].to_vec())
                    .collect()
            };
            let right = |p: &[u8]| -> Vec<u8> {
                p.chunks_exact(cw)
                    .take(ch)
                    .flat_map(|r| r[cw / 2 + 2..].to_vec())
                    .collect()
            };
            // Red: Cr high, Cb low. Blue: Cb high, Cr low. Luma in the studio range.
            assert!(
                mean(&left(out.v())) > 190.0,
                "{name} red Cr {}",
                mean(&left(out.v()))
            );
            assert!(mean(&left(out.u())) < 110.0, "{name} red Cb");
            assert!(mean(&right(out.u())) > 190.0, "{name} blue Cb");
            assert!(mean(&right(out.v())) < 140.0, "{name} blue Cr");
            assert!(out.y().iter().all(|&y| (16..=235).contains(&y)), "{name}");
            // Red (BT.601 luma ≈ 0.3·220 + 0.59·30 + 0.11·30 ≈ 87 full range → ≈ 91 studio).
            let y_left: Vec<u8> = out
                .y()
                .chunks_exact(w)
                .flat_map(|r| r[..8].to_vec())
                .collect();
            assert!(
                (86.0..=97.0).contains(&mean(&y_left)),
                "{name} {}",
                mean(&y_left)
            );
        }
    }

    #[test]
    fn full_range_becomes_studio_range() {
        assert_eq!((studio_luma(0), studio_luma(255)), (16, 235));
        assert_eq!(studio_luma(128), 126);
        assert_eq!(
            (studio_chroma(0), studio_chroma(128), studio_chroma(255)),
            (16, 128, 240)
        );
        // Monotonic, so no banding from the conversion itself.
        assert!((1..=255u8).all(|v| studio_luma(v) >= studio_luma(v - 1)));
        assert!((1..=255u8).all(|v| studio_chroma(v) >= studio_chroma(v - 1)));
    }

    #[test]
    fn odd_sizes_and_other_formats_convert_too() {
        let mut scratch = Scratch::default();
        // MJPEG 37×21 → 36×20.
        let (w, h) = (37, 21);
        let data = jpeg(&two_colours(w, h), (w, h), (2, 1));
        let buffer = nokhwa::Buffer::new(
            Resolution::new(w as u32, h as u32),
            &data,
            FrameFormat::MJPEG,
        );
        let out = camera_buffer_to_i420(&buffer, &mut scratch, None).unwrap();
        assert_eq!((out.width(), out.height()), (36, 20));
        // Mid-grey YUYV 8×5 → 8×4, through RGB.
        let yuyv = vec![128u8; 8 * 5 * 2];
        let buffer = nokhwa::Buffer::new(Resolution::new(8, 5), &yuyv, FrameFormat::YUYV);
        let reuse = Some(I420::new(8, 4));
        let out = camera_buffer_to_i420(&buffer, &mut scratch, reuse).unwrap();
        assert_eq!((out.width(), out.height()), (8, 4));
        assert!(
            out.y().iter().all(|&v| v.abs_diff(126) <= 3),
            "{:?}",
            out.y()
        );
        assert!(out.u().iter().chain(out.v()).all(|&v| v.abs_diff(128) <= 3));
    }

    #[test]
    fn a_corrupt_frame_is_an_error_not_a_panic() {
        let mut scratch = Scratch::default();
        let (w, h) = (64, 32);
        let good = jpeg(&two_colours(w, h), (w, h), (2, 2));
        let res = Resolution::new(w as u32, h as u32);
        for bad in [&[1u8, 2, 3][..], &good[..good.len() / 3], &[]] {
            let buffer = nokhwa::Buffer::new(res, bad, FrameFormat::MJPEG);
            // A truncated JPEG may decode (libjpeg fills the rest with grey): no panic either way.
            if let Err(e) = camera_buffer_to_i420(&buffer, &mut scratch, None) {
                assert!(e.to_string().contains("I420"), "{e}");
            }
        }
        let junk = nokhwa::Buffer::new(res, &[1, 2, 3], FrameFormat::MJPEG);
        assert!(camera_buffer_to_i420(&junk, &mut scratch, None).is_err());
        // And the next good frame still converts.
        let buffer = nokhwa::Buffer::new(res, &good, FrameFormat::MJPEG);
        assert!(camera_buffer_to_i420(&buffer, &mut scratch, None).is_ok());
    }
}
