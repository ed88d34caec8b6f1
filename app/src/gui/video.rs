//! Video on the GPU: one texture per picture size, updated in place with each new frame, shown
//! flat as an egui image or as an interactive 360° view drawn by a wgpu paint callback (the
//! equirectangular picture sampled per pixel on the GPU along each view ray).

use eframe::egui;
use eframe::egui_wgpu::{self, wgpu};

use crate::engine::frame::VideoFrame;

/// The video texture, made once per picture size and written in place after that.
pub struct VideoTexture {
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    /// How egui refers to it (for the flat view).
    pub id: egui::TextureId,
    pub size: [usize; 2],
    /// Changes whenever the texture is made anew (the 360° view rebinds it then).
    generation: u64,
}

impl VideoTexture {
    /// Writes `frame` into `slot`'s texture, making it first (or again, at a new size).
    pub fn upload(
        render_state: &egui_wgpu::RenderState,
        slot: &mut Option<VideoTexture>,
        frame: &VideoFrame,
    ) {
        let size = [frame.width, frame.height];
        if frame.rgba.len() != frame.width * frame.height * 4 || frame.width == 0 {
            return;
        }
        if slot.as_ref().is_none_or(|t| t.size != size) {
            let generation = slot.as_ref().map_or(0, |t| t.generation + 1);
            if let Some(old) = slot.take() {
                render_state.renderer.write().free_texture(&old.id);
            }
            *slot = Some(Self::create(render_state, size, generation));
        }
        let Some(texture) = slot.as_ref() else {
            return;
        };
        let (w, h) = (frame.width as u32, frame.height as u32);
        render_state.queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &texture.texture,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            &frame.rgba,
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(4 * w),
                rows_per_image: Some(h),
            },
            wgpu::Extent3d {
                width: w,
                height: h,
                depth_or_array_layers: 1,
            },
        );
        let mut renderer = render_state.renderer.write();
        if let Some(sphere) = renderer.callback_resources.get_mut::<SphereResources>()
            && sphere.bound != Some(texture.generation)
        {
            sphere.bind(&render_state.device, &texture.view, texture.generation);
        }
    }

    fn create(render_state: &egui_wgpu::RenderState, size: [usize; 2], generation: u64) -> Self {
        let device = &render_state.device;
        // What egui's own textures are: gamma-space RGBA.
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("omnicast video"),
            size: wgpu::Extent3d {
                width: size[0] as u32,
                height: size[1] as u32,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba8Unorm,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        let id = render_state.renderer.write().register_native_texture(
            device,
            &view,
            wgpu::FilterMode::Linear,
        );
        Self {
            texture,
            view,
            id,
            size,
            generation,
        }
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

    fn uniforms(&self, aspect: f32, srgb_target: bool) -> SphereUniforms {
        let m = self.view_to_world();
        let t = (self.fov_deg.to_radians() / 2.0).tan();
        SphereUniforms {
            col0: [m[0][0], m[0][1], m[0][2], 0.0],
            col1: [m[1][0], m[1][1], m[1][2], 0.0],
            col2: [m[2][0], m[2][1], m[2][2], 0.0],
            params: [t * aspect, t, if srgb_target { 1.0 } else { 0.0 }, 0.0],
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SphereUniforms {
    col0: [f32; 4],
    col1: [f32; 4],
    col2: [f32; 4],
    /// tan(half fov) × aspect, tan(half fov), output is an sRGB target (0/1), unused.
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
@group(0) @binding(1) var picture: texture_2d<f32>;
@group(0) @binding(2) var picture_sampler: sampler;

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

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let v = vec3<f32>(in.ndc.x * u.params.x, in.ndc.y * u.params.y, -1.0);
    let d = normalize(u.col0.xyz * v.x + u.col1.xyz * v.y + u.col2.xyz * v.z);
    let lon = atan2(d.x, -d.z);
    let lat = asin(clamp(d.y, -1.0, 1.0));
    let uv = vec2<f32>(0.5 + lon / TAU, 0.5 - lat / PI);
    // No mipmaps, and an explicit level: no derivative seam where longitude wraps.
    var c = textureSampleLevel(picture, picture_sampler, uv, 0.0).rgb;
    if (u.params.z > 0.5) {
        c = linear_from_gamma(c);
    }
    return vec4<f32>(c, 1.0);
}
";

/// The 360° view's GPU objects, kept in egui_wgpu's callback resources.
pub struct SphereResources {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    uniforms: wgpu::Buffer,
    sampler: wgpu::Sampler,
    bind_group: Option<wgpu::BindGroup>,
    /// Generation of the video texture `bind_group` samples.
    bound: Option<u64>,
    srgb_target: bool,
}

impl SphereResources {
    /// Makes the pipeline for `render_state`'s target and registers it with egui_wgpu.
    pub fn install(render_state: &egui_wgpu::RenderState) {
        let device = &render_state.device;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("omnicast 360"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("omnicast 360"),
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
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Texture {
                        multisampled: false,
                        sample_type: wgpu::TextureSampleType::Float { filterable: true },
                        view_dimension: wgpu::TextureViewDimension::D2,
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 2,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("omnicast 360"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let format = render_state.target_format;
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("omnicast 360"),
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
                compilation_options: wgpu::PipelineCompilationOptions::default(),
            }),
            multiview_mask: None,
            cache: None,
        });
        let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("omnicast 360"),
            size: std::mem::size_of::<SphereUniforms>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("omnicast 360"),
            // Longitude wraps around; latitude stops at the poles.
            address_mode_u: wgpu::AddressMode::Repeat,
            address_mode_v: wgpu::AddressMode::ClampToEdge,
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            ..Default::default()
        });
        render_state
            .renderer
            .write()
            .callback_resources
            .insert(SphereResources {
                pipeline,
                layout,
                uniforms,
                sampler,
                bind_group: None,
                bound: None,
                srgb_target: format.is_srgb(),
            });
    }

    fn bind(&mut self, device: &wgpu::Device, view: &wgpu::TextureView, generation: u64) {
        self.bind_group = Some(device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("omnicast 360"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: self.uniforms.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::TextureView(view),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::Sampler(&self.sampler),
                },
            ],
        }));
        self.bound = Some(generation);
    }
}

/// Paints the 360° view into `rect`.
pub fn sphere_shape(rect: egui::Rect, view: SphereView) -> egui::Shape {
    egui::Shape::Callback(egui_wgpu::Callback::new_paint_callback(
        rect,
        SphereCallback {
            view,
            aspect: rect.width() / rect.height().max(1.0),
        },
    ))
}

struct SphereCallback {
    view: SphereView,
    aspect: f32,
}

impl egui_wgpu::CallbackTrait for SphereCallback {
    fn prepare(
        &self,
        _device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &egui_wgpu::ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if let Some(r) = resources.get::<SphereResources>() {
            let u = self.view.uniforms(self.aspect, r.srgb_target);
            queue.write_buffer(&r.uniforms, 0, bytemuck::bytes_of(&u));
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        let Some(r) = resources.get::<SphereResources>() else {
            return;
        };
        let Some(bind_group) = &r.bind_group else {
            return;
        };
        render_pass.set_pipeline(&r.pipeline);
        render_pass.set_bind_group(0, bind_group, &[]);
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
