//! The viewer screen: server and room, connect/disconnect; the video filling the area (flat,
//! keeping its aspect, or as an interactive 360° view), a statistics overlay, snapshots, full
//! screen, and what is going on when there is no picture.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use eframe::egui;
use omnicast_engine::audio::playout::AudioOut;
use omnicast_engine::frame::FrameSlot;
use omnicast_engine::record::{RecordRole, RecordView};
use omnicast_engine::service::{Plan, SessionCommand, ViewPlan};
use omnicast_engine::session::{Retry, SessionState};
use omnicast_engine::viewer::display::Display;
use omnicast_engine::viewer::{AudioStats, ViewCommand, ViewState, ViewerStats};

use super::broadcaster_ui::fit;
use super::recording_ui::{Recording, record_ui};
use super::{OmnicastApp, Shown, Viewing, describe};

/// How fast a held arrow key turns the 360° view, degrees a second.
const KEY_TURN_DEG_PER_S: f32 = 90.0;

impl OmnicastApp {
    pub(super) fn start_viewing(&mut self) {
        let settings = match self.settings.view(&self.options.peer) {
            Ok(settings) => settings,
            Err(e) => {
                self.say(format!("Cannot connect: {e}"));
                return;
            }
        };
        let slot = Arc::new(FrameSlot::default());
        let wake = self.ctx.clone();
        slot.set_waker(move || wake.request_repaint());
        // Sound plays on the default output device (with none, it is decoded anyway and the
        // overlay says so).
        let audio = match AudioOut::new(true, self.playback.clone(), None) {
            Ok(a) => Arc::new(a),
            Err(e) => {
                self.say(e.to_string());
                return;
            }
        };
        let level = audio.level.clone();
        let (recording, not_recording) = Recording::new(RecordRole::View, &self.settings);
        if let Some(e) = not_recording {
            self.say(e);
        }
        let plan = ViewPlan {
            settings,
            sinks: vec![
                Arc::new(Display::new(slot.clone())),
                audio,
                Arc::new(RecordView(recording.recorder.clone())),
            ],
            retry: Retry::Forever,
        };
        match self.service.start_session(Plan::View(Box::new(plan))) {
            Ok(id) => {
                self.viewing = Some(Viewing {
                    id,
                    state: SessionState::Running,
                    view: None,
                    stats: None,
                    slot,
                    control: None,
                    telemetry: None,
                    looked: None,
                    message_draft: String::new(),
                    level,
                    recording,
                });
            }
            Err(e) => self.say(format!("Cannot connect: {e}")),
        }
    }

    pub(super) fn stop_viewing(&mut self) {
        if let Some(v) = self.viewing.take() {
            v.recording.recorder.stop();
            self.stop_session(v.id);
        }
        self.latest = None;
    }

    fn save_snapshot(&mut self) {
        let Some(frame) = self.latest.clone() else {
            self.say("No picture to save yet");
            return;
        };
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let path = self
            .options
            .snapshot_dir
            .join(format!("omnicast-snapshot-{ms}.png"));
        if let Err(e) = self.service.save_snapshot(frame, path) {
            self.say(format!("Snapshot not saved: {e}"));
        }
    }

    pub(super) fn viewer_ui(&mut self, ui: &mut egui::Ui, bare: bool) {
        if !bare && !self.options.kiosk {
            egui::Panel::top("viewer controls").show(ui, |ui| self.viewer_controls_ui(ui));
        }
        // The background is painted only where the picture does not cover it (video_ui): under
        // a 360° view it would cost a whole extra pass over the window for nothing.
        egui::CentralPanel::no_frame().show(ui, |ui| self.video_ui(ui));
    }

    fn viewer_controls_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let viewing = self.viewing.is_some();
            ui.add_enabled_ui(!viewing, |ui| {
                let label = ui.label("Server");
                let edit = egui::TextEdit::singleline(&mut self.settings.server_url);
                ui.add(edit.desired_width(170.0)).labelled_by(label.id);
                let label = ui.label("Room");
                let edit = egui::TextEdit::singleline(&mut self.settings.room);
                ui.add(edit.desired_width(70.0)).labelled_by(label.id);
                let label = ui.label("Control key");
                let edit = egui::TextEdit::singleline(&mut self.settings.control_key)
                    .password(true)
                    .desired_width(60.0);
                ui.add(edit).labelled_by(label.id).on_hover_text(
                    "The broadcast's control key lets you send messages to the robot",
                );
            });
            if viewing {
                if ui.button("Disconnect").clicked() {
                    self.stop_viewing();
                }
            } else if ui.button("Connect").clicked() {
                self.start_viewing();
            }
            ui.separator();
            ui.add_enabled(
                self.has_gpu,
                egui::Checkbox::new(&mut self.settings.sphere, "360° view"),
            );
            if self.settings.sphere && ui.button("Reset view").clicked() {
                self.sphere = Default::default();
            }
            ui.checkbox(&mut self.settings.overlay, "Statistics");
            ui.separator();
            if ui
                .checkbox(&mut self.settings.playback_muted, "Mute")
                .changed()
            {
                self.playback.set_muted(self.settings.playback_muted);
            }
            let volume = ui
                .add(
                    egui::Slider::new(&mut self.settings.volume, 0.0..=2.0)
                        .text("Volume")
                        .show_value(false),
                )
                .on_hover_text("Sound volume (1 is as sent)");
            if volume.changed() {
                self.playback.set_volume(self.settings.volume);
            }
            if let Some(v) = &self.viewing
                && v.stats
                    .as_ref()
                    .is_some_and(|s| s.audio.packets_received > 0)
            {
                crate::broadcaster_ui::level_meter_ui(ui, v.level.get(), 90.0);
            }
            if ui
                .add_enabled(self.latest.is_some(), egui::Button::new("Snapshot"))
                .clicked()
            {
                self.save_snapshot();
            }
            if let Some(v) = &mut self.viewing
                && let Some(e) = record_ui(ui, &mut v.recording, &mut self.settings, false)
            {
                self.say(e);
            }
        });
        if self.viewing.is_some() && !self.settings.control_key.is_empty() {
            self.message_ui(ui);
        }
    }

    /// The message box: JSON (or plain text, sent as a string) for the robot.
    fn message_ui(&mut self, ui: &mut egui::Ui) {
        let Some(v) = &mut self.viewing else { return };
        let mut send = false;
        ui.horizontal(|ui| {
            let label = ui.label("Message to the robot");
            let edit = egui::TextEdit::singleline(&mut v.message_draft)
                .hint_text(r#"{"drive": [1, 0]} or text"#)
                .desired_width(320.0);
            let response = ui.add(edit).labelled_by(label.id);
            send = response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            send |= ui.button("Send").clicked();
            ui.label(match v.control {
                Some(true) => "control: yes",
                Some(false) => "control: refused (wrong key?)",
                None => "control: waiting for the broadcaster",
            });
        });
        if send && !v.message_draft.trim().is_empty() {
            let text = std::mem::take(&mut v.message_draft);
            let data = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
            let id = v.id;
            if let Err(e) = self
                .service
                .command(id, SessionCommand::View(ViewCommand::Message(data)))
            {
                self.say(format!("Message not sent: {e}"));
            }
        }
    }

    /// Tells the session the view is no longer a 360° one, if it had been.
    fn stop_looking(&mut self) {
        let Some(v) = &mut self.viewing else { return };
        if v.looked.is_some()
            && self
                .service
                .command(v.id, SessionCommand::View(ViewCommand::StopLooking))
                .is_ok()
        {
            v.looked = None;
        }
    }

    /// Tells the session where the 360° view looks, when it changed (the session paces what
    /// goes to the broadcaster).
    fn send_look(&mut self, area: egui::Rect) {
        let Some(v) = &mut self.viewing else { return };
        let view = self.sphere.viewport(area.width() / area.height().max(1.0));
        if v.looked == Some(view) {
            return;
        }
        match self
            .service
            .command(v.id, SessionCommand::View(ViewCommand::Look(view)))
        {
            Ok(()) => v.looked = Some(view),
            Err(e) => tracing::debug!("view not sent: {e}"),
        }
    }

    fn video_ui(&mut self, ui: &mut egui::Ui) {
        let area = ui.available_rect_before_wrap();
        let response = ui.allocate_rect(area, egui::Sense::click_and_drag());
        if response.double_clicked() {
            self.toggle_fullscreen(ui.ctx());
        }
        let state = self.viewing.as_ref().and_then(|v| v.view);
        let showing =
            self.latest.is_some() && self.video.is_some() && state == Some(ViewState::Live);
        if showing && self.settings.sphere {
            self.sphere_input(ui, &response, area);
            self.send_look(area);
        } else {
            self.stop_looking();
        }
        if showing && let Some(video) = &self.video {
            if self.settings.sphere {
                ui.painter().add(video.sphere_shape(area, self.sphere));
            } else {
                let rect =
                    egui::Rect::from_center_size(area.center(), fit(video.size(), area.size()));
                for bar in bars(area, rect) {
                    ui.painter().rect_filled(bar, 0.0, BACKGROUND);
                }
                ui.painter().add(video.flat_shape(rect));
            }
        } else {
            ui.painter().rect_filled(area, 0.0, BACKGROUND);
            let message = self.status_message(state);
            let text = egui::RichText::new(message)
                .size(20.0)
                .color(egui::Color32::from_gray(200));
            ui.put(area, egui::Label::new(text));
        }
        if self.settings.overlay
            && let Some(v) = &self.viewing
            && let Some(stats) = v.stats.as_deref()
        {
            overlay_ui(ui, area, stats, self.shown, v.telemetry.as_ref());
        }
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Video, true, "video"));
    }

    fn status_message(&self, state: Option<ViewState>) -> String {
        let Some(v) = &self.viewing else {
            return "Not connected. Enter the signal server and press Connect.".to_owned();
        };
        if let SessionState::Retrying { .. } = &v.state {
            return format!("Reconnecting: {}", describe(&v.state));
        }
        match state {
            None | Some(ViewState::Connecting) => "Connecting…".to_owned(),
            Some(ViewState::WaitingForBroadcaster) => "Waiting for the broadcaster…".to_owned(),
            Some(ViewState::Negotiating) => "Connecting to the broadcaster…".to_owned(),
            Some(ViewState::Live) => "Waiting for the first picture…".to_owned(),
            Some(ViewState::BroadcasterLeft) => {
                "The broadcaster left. Waiting for it to come back…".to_owned()
            }
        }
    }

    /// Drag and arrow keys look around, the wheel zooms.
    fn sphere_input(&mut self, ui: &egui::Ui, response: &egui::Response, area: egui::Rect) {
        if response.dragged() {
            self.sphere.drag(response.drag_delta(), area.height());
        }
        let (scroll, dt, keys) = ui.input(|i| {
            (
                i.smooth_scroll_delta.y,
                i.stable_dt.min(0.1),
                [
                    i.key_down(egui::Key::ArrowLeft),
                    i.key_down(egui::Key::ArrowRight),
                    i.key_down(egui::Key::ArrowUp),
                    i.key_down(egui::Key::ArrowDown),
                ],
            )
        });
        if response.hovered() && scroll != 0.0 {
            self.sphere.zoom(scroll);
        }
        let [left, right, up, down] = keys.map(f32::from);
        if left + right + up + down > 0.0 {
            let step = KEY_TURN_DEG_PER_S * dt;
            self.sphere.turn((right - left) * step, (up - down) * step);
            ui.ctx().request_repaint();
        }
    }
}

/// Behind and around the picture.
const BACKGROUND: egui::Color32 = egui::Color32::from_gray(12);

/// The parts of `area` that `picture` (centred in it) leaves uncovered: bars left and right, or
/// above and below.
fn bars(area: egui::Rect, picture: egui::Rect) -> [egui::Rect; 2] {
    if picture.width() < area.width() {
        [
            egui::Rect::from_min_max(area.min, egui::pos2(picture.left(), area.bottom())),
            egui::Rect::from_min_max(egui::pos2(picture.right(), area.top()), area.max),
        ]
    } else {
        [
            egui::Rect::from_min_max(area.min, egui::pos2(area.right(), picture.top())),
            egui::Rect::from_min_max(egui::pos2(area.left(), picture.bottom()), area.max),
        ]
    }
}

/// The statistics shown over the video's top-left corner.
fn overlay_ui(
    ui: &egui::Ui,
    area: egui::Rect,
    s: &ViewerStats,
    shown: Shown,
    telemetry: Option<&(serde_json::Value, std::time::Instant)>,
) {
    let mut latency: Vec<u32> = s.latency_ms.iter().rev().take(90).copied().collect();
    latency.sort_unstable();
    let median = latency.get(latency.len() / 2);
    let telemetry = telemetry.map_or_else(
        || "telemetry —".to_owned(),
        |(data, at)| {
            let mut text = data.to_string();
            if let Some((cut, _)) = text.char_indices().nth(60) {
                text.truncate(cut);
                text.push('…');
            }
            format!("telemetry {text} ({:.0} s ago)", at.elapsed().as_secs_f32())
        },
    );
    let lines = [
        format!("{}×{}", s.width, s.height),
        format!(
            "{:.1} fps shown, {:.1} decoded, {:.1} received",
            shown.fps(),
            s.fps_decoded,
            s.fps_received
        ),
        format!("{:.0} kbit/s", s.bitrate_kbps),
        format!(
            "RTT {}",
            s.rtt_ms
                .map_or_else(|| "—".to_owned(), |r| format!("{r:.1} ms"))
        ),
        format!("loss: {} packets, {} frames", s.packets_lost, s.frames_lost),
        format!(
            "latency {}",
            median.map_or_else(|| "— (no stamp)".to_owned(), |m| format!("{m} ms"))
        ),
        format!("decode {:.1} ms", s.decode_ms_avg),
        audio_line(&s.audio),
        format!(
            "picture {}, {} views sent",
            match s.projection {
                Some(omnicast_engine::values::Projection::Equirect) => "360°",
                Some(omnicast_engine::values::Projection::Flat) => "flat",
                None => "—",
            },
            s.viewport_samples_sent
        ),
        telemetry,
    ];
    egui::Area::new(egui::Id::unique("statistics overlay"))
        .fixed_pos(area.min + egui::vec2(12.0, 12.0))
        .order(egui::Order::Foreground)
        .interactable(false)
        .show(ui.ctx(), |ui| {
            egui::Frame::NONE
                .fill(egui::Color32::from_black_alpha(170))
                .corner_radius(6.0)
                .inner_margin(8.0)
                .show(ui, |ui| {
                    let text = egui::RichText::new(lines.join("\n"))
                        .monospace()
                        .color(egui::Color32::from_gray(230));
                    ui.add(egui::Label::new(text).wrap_mode(egui::TextWrapMode::Extend));
                });
        });
}

/// The sound's line in the overlay.
fn audio_line(a: &AudioStats) -> String {
    if a.packets_received == 0 {
        return "sound —".to_owned();
    }
    format!(
        "sound {:.0} kbit/s, level {:.0} dBFS, buffer {:.0} ms, {} lost, {} concealed, A/V {}{}",
        a.bitrate_kbps,
        omnicast_engine::audio::dbfs(a.level),
        a.jitter_buffer_ms,
        a.packets_lost,
        a.frames_concealed,
        a.av_offset_ms
            .map_or_else(|| "—".to_owned(), |o| format!("{o:+.0} ms")),
        match a.output.as_deref() {
            Some(o) if o.starts_with("none") => format!(" ({o})"),
            _ => String::new(),
        }
    )
}
