//! Video on the GPU. Each picture is uploaded as it was decoded, its Y plane and its
//! interleaved UV plane (NV12: 1.5 bytes a pixel), into textures made once per picture size and
//! written in place after that; one shader turns them into RGB while drawing, flat (the picture
//! fitted to a rectangle) or as an interactive 360° view (the equirectangular picture sampled
//! along each pixel's view ray). No colour conversion happens on the CPU.

use eframe::egui;
use eframe::egui_wgpu::{self, wgpu};
use omnicast_engine::channels::protocol::Viewport;
use omnicast_engine::frame::VideoFrame;

/// One video's textures (Y, and UV interleaved), made once per picture size and written in place
/// after that, with the uniforms and bind group its draws use.
pub struct VideoTexture {
    planes: [wgpu::Texture; 2],
    size: [usize; 2],
    uniforms: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    /// Bytes written to the GPU for the last picture.
    pub bytes_uploaded: usize,
}

impl VideoTexture {
    /// Writes `frame` into `slot`'s textures, making them first (or again, at a new size).
    /// Needs [`VideoPipeline::install`] first.
    pub fn upload(
        render_state: &egui_wgpu::RenderState,
        slot: &mut Option<VideoTexture>,
        frame: &VideoFrame,
    ) {
        let picture = &frame.picture;
        let size = [picture.width(), picture.height()];
        if size[0] == 0 || size[1] == 0 {
            return;
        }
        if slot.as_ref().is_none_or(|t| t.size != size) {
            *slot = Self::create(render_state, size);
        }
        let Some(texture) = slot.as_mut() else {
            return;
        };
        let (cw, ch) = picture.chroma_size();
        let (y, uv) = picture.planes();
        // (width, height, bytes a texel)
        let dims = [(size[0], size[1], 1), (cw, ch, 2)];
        for ((plane, data), (w, h, texel)) in texture.planes.iter().zip([y, uv]).zip(dims) {
            render_state.queue.write_texture(
                wgpu::TexelCopyTextureInfo {
                    texture: plane,
                    mip_level: 0,
                    origin: wgpu::Origin3d::ZERO,
                    aspect: wgpu::TextureAspect::All,
                },
                data,
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some((w * texel) as u32),
                    rows_per_image: Some(h as u32),
                },
                wgpu::Extent3d {
                    width: w as u32,
                    height: h as u32,
                    depth_or_array_layers: 1,
                },
            );
        }
        texture.bytes_uploaded = picture.byte_len();
    }

    /// The picture's size in pixels.
    pub fn size(&self) -> [usize; 2] {
        self.size
    }

    fn create(render_state: &egui_wgpu::RenderState, size: [usize; 2]) -> Option<Self> {
        let device = &render_state.device;
        let renderer = render_state.renderer.read();
        let pipeline = renderer.callback_resources.get::<VideoPipeline>()?;
        // As I420 lays them out: half size, rounded up.
        let (cw, ch) = (size[0].div_ceil(2), size[1].div_ceil(2));
        let plane = |label, w: usize, h: usize, format| {
            device.create_texture(&wgpu::TextureDescriptor {
                label: Some(label),
                size: wgpu::Extent3d {
                    width: w as u32,
                    height: h as u32,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format,
                usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            })
        };
        let planes = [
            plane(
                "omnicast video Y",
                size[0],
                size[1],
                wgpu::TextureFormat::R8Unorm,
            ),
            plane("omnicast video UV", cw, ch, wgpu::TextureFormat::Rg8Unorm),
        ];
        let views = planes
            .each_ref()
            .map(|p| p.create_view(&wgpu::TextureViewDescriptor::default()));
        let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("omnicast video"),
            size: std::mem::size_of::<Uniforms>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let texture = |binding, view| wgpu::BindGroupEntry {
            binding,
            resource: wgpu::BindingResource::TextureView(view),
        };
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("omnicast video"),
            layout: &pipeline.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: uniforms.as_entire_binding(),
                },
                texture(1, &views[0]),
                texture(2, &views[1]),
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: wgpu::BindingResource::Sampler(&pipeline.wrapping),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: wgpu::BindingResource::Sampler(&pipeline.clamping),
                },
            ],
        });
        Some(Self {
            planes,
            size,
            uniforms,
            bind_group,
            bytes_uploaded: 0,
        })
    }

    /// Draws the picture stretched over `rect` (fit it first to keep its aspect).
    pub fn flat_shape(&self, rect: egui::Rect) -> egui::Shape {
        self.shape(rect, None)
    }

    /// Draws the 360° view of the picture into `rect`, looking where `view` says.
    pub fn sphere_shape(&self, rect: egui::Rect, view: SphereView) -> egui::Shape {
        self.shape(rect, Some(view))
    }

    fn shape(&self, rect: egui::Rect, view: Option<SphereView>) -> egui::Shape {
        egui::Shape::Callback(egui_wgpu::Callback::new_paint_callback(
            rect,
            VideoCallback {
                view,
                aspect: rect.width() / rect.height().max(1.0),
                uniforms: self.uniforms.clone(),
                bind_group: self.bind_group.clone(),
            },
        ))
    }
}

/// Where a 360° viewer looks: yaw and pitch in degrees, vertical field of view in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SphereView {
    pub yaw_deg: f32,
    pub pitch_deg: f32,
    pub fov_deg: f32,
}

impl Default for SphereView {
    fn default() -> Self {
        Self {
            yaw_deg: 0.0,
            pitch_deg: 0.0,
            fov_deg: 90.0,
        }
    }
}

impl From<omnicast_engine::values::Look> for SphereView {
    fn from(look: omnicast_engine::values::Look) -> Self {
        Self {
            yaw_deg: look.yaw_deg.rem_euclid(360.0),
            pitch_deg: look.pitch_deg.clamp(-89.0, 89.0),
            fov_deg: look.fov_deg.clamp(Self::MIN_FOV_DEG, Self::MAX_FOV_DEG),
        }
    }
}

impl SphereView {
    pub const MIN_FOV_DEG: f32 = 30.0;
    pub const MAX_FOV_DEG: f32 = 120.0;

    /// Drags the picture: a drag across the whole view height turns by the field of view, so
    /// what is under the pointer stays under it.
    pub fn drag(&mut self, delta: egui::Vec2, view_height: f32) {
        let per_point = self.fov_deg / view_height.max(1.0);
        self.yaw_deg = (self.yaw_deg - delta.x * per_point).rem_euclid(360.0);
        self.pitch_deg = (self.pitch_deg + delta.y * per_point).clamp(-89.0, 89.0);
    }

    /// Turns by whole steps (arrow keys): degrees right and up.
    pub fn turn(&mut self, right_deg: f32, up_deg: f32) {
        self.yaw_deg = (self.yaw_deg + right_deg).rem_euclid(360.0);
        self.pitch_deg = (self.pitch_deg + up_deg).clamp(-89.0, 89.0);
    }

    /// Zooms with the scroll wheel: scrolling up (positive) narrows the view.
    pub fn zoom(&mut self, scroll: f32) {
        self.fov_deg =
            (self.fov_deg * (-scroll * 0.002).exp()).clamp(Self::MIN_FOV_DEG, Self::MAX_FOV_DEG);
    }

    /// This view in the data-channel protocol's terms (yaw in [-180, 180), the horizontal field
    /// of view of a window `aspect` wide per unit of height), as it is sent to the broadcaster.
    pub fn viewport(&self, aspect: f32) -> Viewport {
        let half_v = f64::from(self.fov_deg).to_radians() / 2.0;
        let hfov = 2.0 * (half_v.tan() * f64::from(aspect.max(0.01))).atan();
        Viewport::new(
            f64::from(self.yaw_deg),
            f64::from(self.pitch_deg),
            0.0,
            Some(hfov.to_degrees()),
        )
    }

    /// The direction (x right, y up, z towards the viewer) seen at `ndc` (−1..1 both ways, y
    /// up) of a view `aspect` wide per unit of height: what the shader computes per pixel.
    pub fn ray(&self, ndc: [f32; 2], aspect: f32) -> [f32; 3] {
        let t = (self.fov_deg.to_radians() / 2.0).tan();
        let v = [ndc[0] * t * aspect, ndc[1] * t, -1.0];
        let m = self.view_to_world();
        let d = [
            m[0][0] * v[0] + m[1][0] * v[1] + m[2][0] * v[2],
            m[0][1] * v[0] + m[1][1] * v[1] + m[2][1] * v[2],
            m[0][2] * v[0] + m[1][2] * v[1] + m[2][2] * v[2],
        ];
        let n = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        [d[0] / n, d[1] / n, d[2] / n]
    }

    /// Where in the equirectangular picture (0..1 both ways, v down) a direction lands:
    /// straight ahead (−z) is the middle, yaw turns right.
    pub fn equirect_uv(dir: [f32; 3]) -> [f32; 2] {
        let lon = dir[0].atan2(-dir[2]);
        let lat = dir[1].clamp(-1.0, 1.0).asin();
        [
            0.5 + lon / std::f32::consts::TAU,
            0.5 - lat / std::f32::consts::PI,
        ]
    }

    /// Columns of the rotation from view to world, R = Ry(−yaw) · Rx(pitch): positive pitch
    /// looks up, positive yaw looks right (towards +x).
    fn view_to_world(&self) -> [[f32; 3]; 3] {
        let (sy, cy) = self.yaw_deg.to_radians().sin_cos();
        let (sp, cp) = self.pitch_deg.to_radians().sin_cos();
        [
            [cy, 0.0, sy],
            [-sy * sp, cp, cy * sp],
            [-sy * cp, -sp, cy * cp],
        ]
    }

    fn uniforms(view: Option<&Self>, aspect: f32, srgb_target: bool) -> Uniforms {
        let sphere = view.copied().unwrap_or_default();
        let m = sphere.view_to_world();
        let t = (sphere.fov_deg.to_radians() / 2.0).tan();
        Uniforms {
            col0: [m[0][0], m[0][1], m[0][2], 0.0],
            col1: [m[1][0], m[1][1], m[1][2], 0.0],
            col2: [m[2][0], m[2][1], m[2][2], 0.0],
            params: [
                t * aspect,
                t,
                if srgb_target { 1.0 } else { 0.0 },
                if view.is_some() { 1.0 } else { 0.0 },
            ],
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniforms {
    col0: [f32; 4],
    col1: [f32; 4],
    col2: [f32; 4],
    /// tan(half fov) × aspect, tan(half fov), output is an sRGB target (0/1), 360° (1) or
    /// flat (0).
    params: [f32; 4],
}

const SHADER: &str = r"
struct Uniforms {
    col0: vec4<f32>,
    col1: vec4<f32>,
    col2: vec4<f32>,
    params: vec4<f32>,
};

@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var plane_y: texture_2d<f32>;
@group(0) @binding(2) var plane_uv: texture_2d<f32>;
// Longitude wraps around (360°); a flat picture stops at its edges.
@group(0) @binding(3) var wrapping: sampler;
@group(0) @binding(4) var clamping: sampler;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) ndc: vec2<f32>,
};

// One triangle covering the callback's viewport.
@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> VertexOut {
    let xy = vec2<f32>(f32((i << 1u) & 2u) * 2.0 - 1.0, f32(i & 2u) * 2.0 - 1.0);
    var out: VertexOut;
    out.position = vec4<f32>(xy, 0.0, 1.0);
    out.ndc = xy;
    return out;
}

const TAU: f32 = 6.28318530718;
const PI: f32 = 3.14159265359;

fn linear_from_gamma(c: vec3<f32>) -> vec3<f32> {
    let low = c / 12.92;
    let high = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
    return select(high, low, c < vec3<f32>(0.04045));
}

// Chroma by the nearest sample instead of filtered: on a software renderer, where each filtered
// sample costs as much as the rest of the pixel, that is what keeps up (set per pipeline).
override nearest_chroma: bool = false;

fn chroma(uv: vec2<f32>, s: sampler) -> vec2<f32> {
    if (nearest_chroma) {
        let size = vec2<f32>(textureDimensions(plane_uv));
        let at = vec2<f32>(fract(uv.x), clamp(uv.y, 0.0, 1.0)) * size;
        return textureLoad(plane_uv, min(vec2<i32>(at), vec2<i32>(size) - 1), 0).rg;
    }
    return textureSampleLevel(plane_uv, s, uv, 0.0).rg;
}

// BT.601 studio range, as the encoder takes it and browsers send it (the same numbers as
// Nv12::to_rgba on the CPU).
fn rgb_from_yuv(y: f32, cbcr: vec2<f32>) -> vec3<f32> {
    let l = (y - 16.0 / 255.0) * 1.1641;
    let b = cbcr.x - 128.0 / 255.0;
    let r = cbcr.y - 128.0 / 255.0;
    return clamp(
        vec3<f32>(l + 1.5977 * r, l - 0.3906 * b - 0.8125 * r, l + 2.0156 * b),
        vec3<f32>(0.0),
        vec3<f32>(1.0),
    );
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    var c: vec3<f32>;
    // No mipmaps, and an explicit level: no derivative seam where longitude wraps.
    if (u.params.w > 0.5) {
        let v = vec3<f32>(in.ndc.x * u.params.x, in.ndc.y * u.params.y, -1.0);
        let d = normalize(u.col0.xyz * v.x + u.col1.xyz * v.y + u.col2.xyz * v.z);
        let lon = atan2(d.x, -d.z);
        let lat = asin(clamp(d.y, -1.0, 1.0));
        let uv = vec2<f32>(0.5 + lon / TAU, 0.5 - lat / PI);
        c = rgb_from_yuv(textureSampleLevel(plane_y, wrapping, uv, 0.0).r, chroma(uv, wrapping));
    } else {
        let uv = vec2<f32>(in.ndc.x * 0.5 + 0.5, 0.5 - in.ndc.y * 0.5);
        c = rgb_from_yuv(textureSampleLevel(plane_y, clamping, uv, 0.0).r, chroma(uv, clamping));
    }
    // egui's own colours are gamma-space; so are these.
    if (u.params.z > 0.5) {
        c = linear_from_gamma(c);
    }
    return vec4<f32>(c, 1.0);
}
";

/// The video shader and what every video's bind group shares, kept in egui_wgpu's callback
/// resources.
pub struct VideoPipeline {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    wrapping: wgpu::Sampler,
    clamping: wgpu::Sampler,
    srgb_target: bool,
}

/// How the shader samples chroma.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chroma {
    /// Filtered, like luma: what a GPU does for free.
    Filtered,
    /// The nearest sample: one filtered sample a pixel instead of two, for software renderers
    /// (lavapipe), where sampling is most of the cost. Chroma is half resolution anyway.
    Nearest,
}

impl VideoPipeline {
    /// Makes the pipeline for `render_state`'s target and registers it with egui_wgpu;
    /// chroma filtered on a GPU, nearest on a software renderer.
    pub fn install(render_state: &egui_wgpu::RenderState) {
        let software = render_state.adapter.get_info().device_type == wgpu::DeviceType::Cpu;
        let chroma = if software {
            Chroma::Nearest
        } else {
            Chroma::Filtered
        };
        tracing::debug!("video shader: chroma {chroma:?}");
        Self::install_with(render_state, chroma);
    }

    /// [`install`](Self::install) with the chroma sampling given.
    pub fn install_with(render_state: &egui_wgpu::RenderState, chroma: Chroma) {
        let device = &render_state.device;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("omnicast video"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let texture = |binding| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Texture {
                multisampled: false,
                sample_type: wgpu::TextureSampleType::Float { filterable: true },
                view_dimension: wgpu::TextureViewDimension::D2,
            },
            count: None,
        };
        let sampler = |binding| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("omnicast video"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                texture(1),
                texture(2),
                sampler(3),
                sampler(4),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("omnicast video"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let format = render_state.target_format;
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("omnicast video"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs_main"),
                buffers: &[],
                compilation_options: wgpu::PipelineCompilationOptions::default(),
            },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs_main"),
                targets: &[Some(wgpu::ColorTargetState {
                    format,
                    blend: None,
                    write_mask: wgpu::ColorWrites::ALL,
                })],
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &[(
                        "nearest_chroma",
                        if chroma == Chroma::Nearest { 1.0 } else { 0.0 },
                    )],
                    ..Default::default()
                },
            }),
            multiview_mask: None,
            cache: None,
        });
        let sampler = |address_mode_u, label| {
            device.create_sampler(&wgpu::SamplerDescriptor {
                label: Some(label),
                address_mode_u,
                address_mode_v: wgpu::AddressMode::ClampToEdge,
                mag_filter: wgpu::FilterMode::Linear,
                min_filter: wgpu::FilterMode::Linear,
                ..Default::default()
            })
        };
        render_state
            .renderer
            .write()
            .callback_resources
            .insert(VideoPipeline {
                pipeline,
                layout,
                wrapping: sampler(wgpu::AddressMode::Repeat, "omnicast video (360°)"),
                clamping: sampler(wgpu::AddressMode::ClampToEdge, "omnicast video (flat)"),
                srgb_target: format.is_srgb(),
            });
    }
}

/// One draw of one video: flat, or the 360° view of `view`.
struct VideoCallback {
    view: Option<SphereView>,
    aspect: f32,
    uniforms: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

impl egui_wgpu::CallbackTrait for VideoCallback {
    fn prepare(
        &self,
        _device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &egui_wgpu::ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if let Some(p) = resources.get::<VideoPipeline>() {
            let u = SphereView::uniforms(self.view.as_ref(), self.aspect, p.srgb_target);
            queue.write_buffer(&self.uniforms, 0, bytemuck::bytes_of(&u));
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        let Some(p) = resources.get::<VideoPipeline>() else {
            return;
        };
        render_pass.set_pipeline(&p.pipeline);
        render_pass.set_bind_group(0, &self.bind_group, &[]);
        render_pass.draw(0..3, 0..1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: [f32; 2], b: [f32; 2]) -> bool {
        (a[0] - b[0]).abs() < 1e-3 && (a[1] - b[1]).abs() < 1e-3
    }

    #[test]
    fn the_view_sent_to_the_broadcaster_is_the_one_on_screen() {
        use omnicast_engine::channels::views::{outline, to_picture};
        for (yaw, pitch) in [(0.0, 0.0), (90.0, 20.0), (200.0, -45.0), (359.0, 80.0)] {
            let mut v = SphereView::default();
            v.turn(yaw, pitch);
            let sent = v.viewport(16.0 / 9.0);
            let [x, y] = to_picture(sent.yaw_deg, sent.pitch_deg);
            let centre = SphereView::equirect_uv(v.ray([0.0, 0.0], 16.0 / 9.0));
            assert!(
                close([x, y], centre),
                "{yaw},{pitch}: {:?} vs {centre:?}",
                [x, y]
            );
            assert!((-180.0..180.0).contains(&sent.yaw_deg));
            // The outline the broadcaster draws passes through the screen's right edge.
            let edge = SphereView::equirect_uv(v.ray([1.0, 0.0], 16.0 / 9.0));
            let nearest = outline(&sent, 16.0 / 9.0)
                .into_iter()
                .flatten()
                .map(|p| {
                    (p[0] - edge[0]).abs().min(1.0 - (p[0] - edge[0]).abs())
                        + (p[1] - edge[1]).abs()
                })
                .fold(f32::MAX, f32::min);
            assert!(nearest < 0.01, "{yaw},{pitch}: {nearest}");
        }
        // A 90° tall view in a 16:9 window is about 121° wide.
        let fov = SphereView::default().viewport(16.0 / 9.0).fov_deg.unwrap();
        assert!((fov - 121.3).abs() < 0.5, "{fov}");
    }

    #[test]
    fn straight_ahead_is_the_middle_of_the_picture_and_yaw_turns_right() {
        let mut v = SphereView::default();
        let centre = |v: &SphereView| SphereView::equirect_uv(v.ray([0.0, 0.0], 2.0));
        assert!(close(centre(&v), [0.5, 0.5]), "{:?}", centre(&v));
        v.turn(90.0, 0.0);
        assert!(close(centre(&v), [0.75, 0.5]), "{:?}", centre(&v));
        v.turn(180.0, 0.0);
        assert!(close(centre(&v), [0.25, 0.5]), "{:?}", centre(&v));
        let mut up = SphereView::default();
        up.turn(0.0, 45.0);
        assert!(close(centre(&up), [0.5, 0.25]), "{:?}", centre(&up));
        // The right edge of a 90° view is 45° right of the centre.
        let edge = SphereView::equirect_uv(SphereView::default().ray([1.0, 0.0], 1.0));
        assert!(close(edge, [0.625, 0.5]), "{edge:?}");
    }

    #[test]
    fn dragging_keeps_the_picture_under_the_pointer_and_stops_at_the_poles() {
        let mut v = SphereView::default();
        // Dragging right by half the view height pulls the picture right: we look left.
        v.drag(egui::vec2(300.0, 0.0), 600.0);
        assert!((v.yaw_deg - 315.0).abs() < 1e-3, "{v:?}");
        v.drag(egui::vec2(0.0, 10_000.0), 600.0);
        assert_eq!(v.pitch_deg, 89.0);
    }

    #[test]
    fn zoom_stays_within_its_limits() {
        let mut v = SphereView::default();
        v.zoom(100.0);
        assert!(v.fov_deg < 90.0);
        v.zoom(1e6);
        assert_eq!(v.fov_deg, SphereView::MIN_FOV_DEG);
        v.zoom(-1e6);
        assert_eq!(v.fov_deg, SphereView::MAX_FOV_DEG);
    }
}
