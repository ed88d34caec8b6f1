//! The broadcaster screen: source, size, rate, where the signal server is, start/stop; the
//! preview, the links viewers use, and every connected viewer with its figures.

use std::collections::BTreeMap;
use std::sync::Arc;

use eframe::egui;
use omnicast_engine::audio::AudioSource;
use omnicast_engine::broadcaster::{AudioStatus, BroadcastCommand, BroadcastStatus};
use omnicast_engine::capture::SourceSpec;
use omnicast_engine::channels::protocol::Viewport;
use omnicast_engine::channels::room::DataStatus;
use omnicast_engine::channels::views::{DEFAULT_ASPECT, Heatmap, outline, to_picture};
use omnicast_engine::frame::FrameSlot;
use omnicast_engine::record::RecordRole;
use omnicast_engine::service::{BroadcastPlan, Plan, SessionCommand};
use omnicast_engine::session::{Retry, SessionState};
use omnicast_engine::settings::{ProjectionSetting, SIZE_PRESETS, size_label};
use omnicast_engine::values::{BitrateKbps, Fps};

use super::recording_ui::{Recording, record_ui};
use super::{Broadcasting, OmnicastApp, describe};

impl OmnicastApp {
    pub(super) fn start_broadcast(&mut self) {
        let settings = match self.settings.broadcast(&self.options.peer) {
            Ok(settings) => settings,
            Err(e) => {
                self.say(format!("Cannot broadcast: {e}"));
                return;
            }
        };
        let preview_slot = Arc::new(FrameSlot::default());
        let wake = self.ctx.clone();
        preview_slot.set_waker(move || wake.request_repaint());
        let (recording, not_recording) = Recording::new(RecordRole::Broadcast, &self.settings);
        if let Some(e) = not_recording {
            self.say(e);
        }
        let plan = BroadcastPlan {
            settings,
            host: self.settings.host_server.then_some(self.options.host_bind),
            preview: Some(preview_slot.clone()),
            recorder: Some(recording.recorder.clone()),
            retry: Retry::Forever,
        };
        match self.service.start_session(Plan::Broadcast(Box::new(plan))) {
            Ok(id) => {
                self.broadcasting = Some(Broadcasting {
                    id,
                    state: SessionState::Running,
                    hosted: None,
                    status: None,
                    preview_slot,
                    preview: None,
                    preview_on: false,
                    views: Default::default(),
                    heatmap: Heatmap::new(),
                    started: std::time::Instant::now(),
                    messages: Default::default(),
                    telemetry_draft: String::new(),
                    recording,
                });
            }
            Err(e) => self.say(format!("Cannot broadcast: {e}")),
        }
    }

    pub(super) fn stop_broadcast(&mut self) {
        if let Some(b) = self.broadcasting.take() {
            b.recording.recorder.stop();
            self.stop_session(b.id);
        }
    }

    pub(super) fn broadcaster_ui(&mut self, ui: &mut egui::Ui) {
        if !self.options.kiosk {
            egui::Panel::left("broadcast settings")
                .resizable(false)
                .default_size(280.0)
                .show(ui, |ui| self.broadcast_settings_ui(ui));
        }
        egui::CentralPanel::default().show(ui, |ui| self.broadcast_status_ui(ui));
    }

    fn broadcast_settings_ui(&mut self, ui: &mut egui::Ui) {
        let running = self.broadcasting.is_some();
        ui.add_space(6.0);
        if running {
            if ui.button("Stop broadcast").clicked() {
                self.stop_broadcast();
            }
        } else if ui.button("Start broadcast").clicked() {
            self.start_broadcast();
        }
        ui.add_space(6.0);
        ui.add_enabled_ui(!running, |ui| {
            egui::Grid::new("broadcast grid")
                .num_columns(2)
                .spacing([8.0, 6.0])
                .show(ui, |ui| {
                    let label = ui.label("Source");
                    ui.horizontal(|ui| {
                        self.source_picker_ui(ui, label.id);
                        if ui
                            .button("Refresh")
                            .on_hover_text("Look for cameras again")
                            .clicked()
                            && let Err(e) = self.service.list_cameras()
                        {
                            self.say(e.to_string());
                        }
                    });
                    ui.end_row();
                    self.source_file_ui(ui);

                    let label = ui.label("Sound");
                    ui.horizontal(|ui| {
                        self.microphone_picker_ui(ui, label.id);
                        if ui
                            .button("Refresh")
                            .on_hover_text("Look for microphones again")
                            .clicked()
                            && let Err(e) = self.service.list_microphones()
                        {
                            self.say(e.to_string());
                        }
                    });
                    ui.end_row();

                    let label = ui.label("Size");
                    let s = &mut self.settings;
                    egui::ComboBox::from_id_salt("size")
                        .selected_text(size_label(s.width, s.height))
                        .show_ui(ui, |ui| {
                            for (w, h, label) in SIZE_PRESETS {
                                let chosen = (s.width, s.height) == (*w, *h);
                                if ui.selectable_label(chosen, *label).clicked() {
                                    (s.width, s.height) = (*w, *h);
                                }
                            }
                        })
                        .response
                        .labelled_by(label.id);
                    ui.end_row();

                    ui.label("Frame rate");
                    ui.add(
                        egui::DragValue::new(&mut s.fps)
                            .range(Fps::RANGE)
                            .suffix(" fps"),
                    );
                    ui.end_row();

                    ui.label("Bitrate");
                    ui.add(
                        egui::DragValue::new(&mut s.bitrate_kbps)
                            .range(BitrateKbps::RANGE)
                            .speed(50)
                            .suffix(" kbit/s"),
                    );
                    ui.end_row();
                });
            ui.add_space(6.0);
            let s = &mut self.settings;
            ui.checkbox(&mut s.host_server, "Host the server here");
            if !s.host_server {
                egui::Grid::new("remote server grid")
                    .num_columns(2)
                    .spacing([8.0, 6.0])
                    .show(ui, |ui| {
                        let label = ui.label("Server");
                        ui.text_edit_singleline(&mut s.server_url)
                            .labelled_by(label.id);
                        ui.end_row();
                        let label = ui.label("Room");
                        ui.text_edit_singleline(&mut s.room).labelled_by(label.id);
                        ui.end_row();
                        let label = ui.label("Key");
                        let key = egui::TextEdit::singleline(&mut s.key).password(true);
                        ui.add(key).labelled_by(label.id);
                        ui.end_row();
                    });
            }
            ui.add_space(6.0);
            ui.separator();
            ui.strong("Viewers' data channels");
            egui::Grid::new("data grid")
                .num_columns(2)
                .spacing([8.0, 6.0])
                .show(ui, |ui| {
                    let label = ui.label("Control key");
                    let key = egui::TextEdit::singleline(&mut s.control_key).password(true);
                    ui.add(key).labelled_by(label.id).on_hover_text(
                        "Viewers whose hello carries this key may send messages to the robot; \
                         with none, nobody may",
                    );
                    ui.end_row();
                    let label = ui.label("Robot bridge");
                    let bridge =
                        egui::TextEdit::singleline(&mut s.bridge).hint_text("tcp://127.0.0.1:9000");
                    ui.add(bridge).labelled_by(label.id).on_hover_text(
                        "The robot software's TCP server: viewers' messages go to it, its \
                         telemetry to every viewer (one JSON object a line)",
                    );
                    ui.end_row();
                });
            ui.checkbox(&mut s.bridge_viewport, "Viewport samples to the bridge too");
            ui.checkbox(&mut s.viewport_log, "Log every viewer's view");
            ui.horizontal(|ui| {
                let label = ui.label("to");
                let path = egui::TextEdit::singleline(&mut s.viewport_log_path);
                ui.add_enabled(s.viewport_log, path).labelled_by(label.id);
            });
        });
        ui.add_space(6.0);
        self.projection_ui(ui);
        ui.checkbox(&mut self.settings.show_views, "Show where viewers look");
        ui.checkbox(
            &mut self.settings.show_heatmap,
            "Heat map of the last minute",
        );
    }

    fn microphone_picker_ui(&mut self, ui: &mut egui::Ui, label_id: egui::Id) {
        let label = |choice: &str| -> String {
            match choice.parse::<AudioSource>() {
                Ok(AudioSource::None) => "No sound".to_owned(),
                Ok(AudioSource::Default) => "Default microphone".to_owned(),
                Ok(AudioSource::TestTone) => "Test tone (a beep each second)".to_owned(),
                _ => choice.to_owned(),
            }
        };
        let mut choices = vec![
            "none".to_owned(),
            "default".to_owned(),
            "test-tone".to_owned(),
        ];
        choices.extend(self.microphones.iter().cloned());
        if !choices.contains(&self.settings.audio) {
            choices.push(self.settings.audio.clone());
        }
        let audio = &mut self.settings.audio;
        egui::ComboBox::from_id_salt("microphone")
            .selected_text(label(audio))
            .width(180.0)
            .show_ui(ui, |ui| {
                for choice in choices {
                    let text = label(&choice);
                    ui.selectable_value(audio, choice, text);
                }
            })
            .response
            .labelled_by(label_id);
    }

    /// Mute and the microphone's level, while broadcasting (mute works at once).
    fn sound_ui(&mut self, ui: &mut egui::Ui, status: Option<&AudioStatus>) {
        let Some(a) = status else { return };
        ui.horizontal(|ui| {
            if ui
                .checkbox(&mut self.settings.audio_muted, "Mute")
                .changed()
                && let Some(b) = &self.broadcasting
            {
                let command = SessionCommand::Broadcast(BroadcastCommand::MuteAudio(
                    self.settings.audio_muted,
                ));
                if let Err(e) = self.service.command(b.id, command) {
                    self.say(format!("Not muted: {e}"));
                }
            }
            level_meter_ui(ui, a.level, 160.0);
            ui.label(format!(
                "{} · {:.0} kbit/s{}",
                a.source,
                a.bitrate_kbps,
                if a.muted {
                    " · muted: silence goes out"
                } else {
                    ""
                }
            ));
        });
    }

    fn source_picker_ui(&mut self, ui: &mut egui::Ui, label_id: egui::Id) {
        let label = |source: &str| -> String {
            match source.parse::<SourceSpec>() {
                Ok(SourceSpec::TestPattern) => "Test pattern".to_owned(),
                Ok(SourceSpec::Camera(_)) if source == "camera" => "First camera".to_owned(),
                Ok(SourceSpec::Image(_) | SourceSpec::Y4m(_) | SourceSpec::Mp4(_)) => {
                    "Picture, video or recording".to_owned()
                }
                _ if is_file_source(source) => "Picture, video or recording".to_owned(),
                _ => source.strip_prefix("camera:").unwrap_or(source).to_owned(),
            }
        };
        let mut choices = vec!["test-pattern".to_owned(), "camera".to_owned()];
        choices.extend(self.cameras.iter().map(|c| format!("camera:{}", c.name)));
        let file_choice = if is_file_source(&self.settings.source) {
            self.settings.source.clone()
        } else {
            "image:".to_owned()
        };
        choices.push(file_choice);
        if !choices.contains(&self.settings.source) {
            choices.push(self.settings.source.clone());
        }
        let source = &mut self.settings.source;
        egui::ComboBox::from_id_salt("source")
            .selected_text(label(source))
            .width(180.0)
            .show_ui(ui, |ui| {
                for choice in choices {
                    let text = label(&choice);
                    ui.selectable_value(source, choice, text);
                }
            })
            .response
            .labelled_by(label_id);
    }

    /// What viewers are told the picture is; changed while broadcasting, they are told at once.
    fn projection_ui(&mut self, ui: &mut egui::Ui) {
        let before = self.settings.projection;
        ui.horizontal(|ui| {
            let label = ui.label("Picture");
            let p = &mut self.settings.projection;
            egui::ComboBox::from_id_salt("projection")
                .selected_text(projection_label(*p))
                .show_ui(ui, |ui| {
                    for choice in [
                        ProjectionSetting::Auto,
                        ProjectionSetting::Flat,
                        ProjectionSetting::Equirect,
                    ] {
                        ui.selectable_value(p, choice, projection_label(choice));
                    }
                })
                .response
                .labelled_by(label.id)
                .on_hover_text("Viewers show a 360° picture as a view to look around in");
        });
        if self.settings.projection != before
            && let Some(b) = &self.broadcasting
        {
            let s = &self.settings;
            let projection = s.projection.resolve(s.width, s.height);
            let command = SessionCommand::Broadcast(BroadcastCommand::Projection(projection));
            if let Err(e) = self.service.command(b.id, command) {
                self.say(format!("Viewers not told: {e}"));
            }
        }
    }

    /// The file of a picture or video source: PNG/JPEG (scaled to the size), YUV4MPEG2, or a
    /// recording (MP4).
    fn source_file_ui(&mut self, ui: &mut egui::Ui) {
        if !is_file_source(&self.settings.source) {
            return;
        }
        let mut path = self
            .settings
            .source
            .split_once(':')
            .map_or_else(String::new, |(_, p)| p.to_owned());
        let label = ui.label("File");
        let edit = egui::TextEdit::singleline(&mut path)
            .hint_text("picture.png, video.y4m, recording.mp4");
        if ui
            .add(edit)
            .labelled_by(label.id)
            .on_hover_text(
                "A PNG or JPEG picture (scaled to the size), a YUV4MPEG2 video (.y4m, looped) or a \
                 recording (.mp4, looped; sent as recorded when its H.264 is Constrained \
                 Baseline, as Omnicast's recordings are)",
            )
            .changed()
        {
            let lower = path.to_ascii_lowercase();
            let kind = if lower.ends_with(".y4m") {
                "y4m"
            } else if lower.ends_with(".mp4") || lower.ends_with(".m4v") {
                "mp4"
            } else {
                "image"
            };
            self.settings.source = format!("{kind}:{path}");
        }
        ui.end_row();
    }

    fn broadcast_status_ui(&mut self, ui: &mut egui::Ui) {
        let audio = self
            .broadcasting
            .as_ref()
            .and_then(|b| b.status.as_ref()?.audio.clone());
        if let Some(b) = &mut self.broadcasting {
            let said = ui
                .horizontal(|ui| record_ui(ui, &mut b.recording, &mut self.settings, true))
                .inner;
            if let Some(e) = said {
                self.say(e);
            }
        }
        self.sound_ui(ui, audio.as_ref());
        if let Some(data) = self.broadcast_screen_ui(ui)
            && let Some(b) = &self.broadcasting
        {
            let id = b.id;
            let command = SessionCommand::Broadcast(BroadcastCommand::Telemetry(data));
            if let Err(e) = self.service.command(id, command) {
                self.say(format!("Telemetry not sent: {e}"));
            }
        }
    }

    /// Draws the broadcast; returns telemetry the person typed, to send.
    fn broadcast_screen_ui(&mut self, ui: &mut egui::Ui) -> Option<serde_json::Value> {
        let Some(b) = &mut self.broadcasting else {
            ui.centered_and_justified(|ui| {
                ui.label(if self.cameras.is_empty() {
                    "Not broadcasting. No camera found: a broadcast sends the test pattern."
                } else {
                    "Not broadcasting."
                });
            });
            return None;
        };
        let none_yet = BroadcastStatus::default();
        let status = b.status.as_deref().unwrap_or(&none_yet);
        let viewers = &status.viewers;
        ui.horizontal(|ui| {
            let state = match &b.state {
                SessionState::Running if status.signal_connected => "Live".to_owned(),
                SessionState::Running => "Connecting to the signal server…".to_owned(),
                other => describe(other),
            };
            ui.strong(state);
            ui.separator();
            ui.label(format!("Sending {}", status.source));
            ui.separator();
            ui.label(format!(
                "{} viewer{}",
                viewers.len(),
                if viewers.len() == 1 { "" } else { "s" }
            ));
        });
        if let Some(h) = &b.hosted {
            ui.horizontal_wrapped(|ui| {
                ui.label("Watch in a browser:");
                for link in &h.viewer_links {
                    ui.hyperlink(link);
                }
            });
            ui.horizontal(|ui| {
                ui.label("or");
                ui.code(h.view_command());
            });
        } else if !self.settings.host_server {
            ui.label(format!("Signal server: {}", self.settings.server_url));
        }
        ui.separator();
        let threads = status.encoder_threads;
        ui.label(if status.sent_as_recorded {
            format!(
                "{} frames sent as recorded ({:.1} fps), {} keyframes; nothing encoded",
                status.frames_encoded, status.fps, status.keyframes,
            )
        } else {
            format!(
                "{} frames encoded ({:.1} fps), {} keyframes, {:.1} ms a frame on {threads} thread{}",
                status.frames_encoded,
                status.fps,
                status.keyframes,
                status.encode_ms_avg,
                if threads == 1 { "" } else { "s" },
            )
        });
        data_line_ui(ui, &status.data);
        let preview_height = (ui.available_height() - 200.0).max(120.0);
        if let Some(p) = &b.preview {
            let size = fit(p.size(), egui::vec2(ui.available_width(), preview_height));
            let (rect, response) = ui.allocate_exact_size(size, egui::Sense::hover());
            ui.painter().add(p.flat_shape(rect));
            let [w, h] = p.size();
            // Where viewers look means something on a 2:1 (equirectangular) picture only.
            let equirect = h > 0 && (w as f32 / h as f32 - 2.0).abs() < 0.05;
            if equirect && self.settings.show_heatmap {
                heatmap_ui(
                    ui.painter(),
                    rect,
                    &b.heatmap,
                    b.started.elapsed().as_secs(),
                );
            }
            if equirect && self.settings.show_views {
                views_ui(ui.painter(), rect, &b.views);
            }
            response.on_hover_text("Preview of what goes out");
        }
        let mut telemetry = None;
        ui.horizontal(|ui| {
            let label = ui.label("Telemetry to viewers");
            let edit = egui::TextEdit::singleline(&mut b.telemetry_draft)
                .hint_text(r#"{"battery": 0.8} or text"#)
                .desired_width(280.0);
            let response = ui.add(edit).labelled_by(label.id);
            let enter = response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if (enter || ui.button("Send").clicked()) && !b.telemetry_draft.trim().is_empty() {
                let text = std::mem::take(&mut b.telemetry_draft);
                telemetry =
                    Some(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)));
            }
        });
        for (viewer, data) in &b.messages {
            ui.label(format!("{viewer}: {data}"));
        }
        ui.separator();
        if viewers.is_empty() {
            ui.weak("No viewers yet: each one is listed here as it connects.");
            return telemetry;
        }
        egui::Grid::new("viewers")
            .striped(true)
            .num_columns(5)
            .show(ui, |ui| {
                ui.strong("Viewer");
                ui.strong("Connection");
                ui.strong("RTT");
                ui.strong("Sending");
                ui.strong("Looking at");
                ui.end_row();
                for v in viewers {
                    ui.label(&v.id);
                    ui.label(if v.connected {
                        format!("up {} s", v.connected_for_s)
                    } else {
                        "connecting".to_owned()
                    });
                    ui.label(
                        v.rtt_ms
                            .map_or_else(|| "—".to_owned(), |r| format!("{r:.1} ms")),
                    );
                    ui.label(if v.audio_sent_kbps > 0.0 {
                        format!("{:.0} kbit/s ({:.0} sound)", v.sent_kbps, v.audio_sent_kbps)
                    } else {
                        format!("{:.0} kbit/s", v.sent_kbps)
                    });
                    let data = v.data.clone().unwrap_or_default();
                    ui.label(match data.viewport {
                        Some(view) => format!(
                            "yaw {:.0}°, pitch {:.0}°{}",
                            view.yaw_deg,
                            view.pitch_deg,
                            if data.control { " · control" } else { "" }
                        ),
                        None if data.control => "control".to_owned(),
                        None => "—".to_owned(),
                    });
                    ui.end_row();
                }
            });
        telemetry
    }
}

/// What the data channels are doing, in a line.
fn data_line_ui(ui: &mut egui::Ui, d: &DataStatus) {
    let mut parts = vec![format!(
        "{} viewer{} sending views, {} samples, {} message{} ({} refused)",
        d.viewers_sending_views,
        if d.viewers_sending_views == 1 {
            ""
        } else {
            "s"
        },
        d.viewport_samples,
        d.messages_accepted,
        if d.messages_accepted == 1 { "" } else { "s" },
        d.messages_refused,
    )];
    if let Some(log) = &d.log {
        parts.push(match &log.error {
            Some(e) => format!("log: {e} ({} dropped)", log.dropped),
            None if log.dropped > 0 => {
                format!("log: {} written, {} dropped", log.written, log.dropped)
            }
            None => format!("log: {} written", log.written),
        });
    }
    if let Some(bridge) = &d.bridge {
        parts.push(if bridge.connected {
            format!(
                "robot: connected ({} sent, {} received)",
                bridge.sent, bridge.received
            )
        } else {
            format!(
                "robot: away ({})",
                bridge.last_error.as_deref().unwrap_or("connecting")
            )
        });
    }
    ui.label(parts.join(" · "));
}

/// Colours for viewers' outlines, by their place in the list.
const VIEW_COLOURS: [egui::Color32; 6] = [
    egui::Color32::from_rgb(255, 210, 0),
    egui::Color32::from_rgb(0, 220, 255),
    egui::Color32::from_rgb(255, 80, 200),
    egui::Color32::from_rgb(120, 255, 80),
    egui::Color32::from_rgb(255, 140, 40),
    egui::Color32::from_rgb(180, 140, 255),
];

/// Each viewer's view outlined on the equirectangular preview in `rect`.
fn views_ui(painter: &egui::Painter, rect: egui::Rect, views: &BTreeMap<String, Viewport>) {
    let at = |p: [f32; 2]| rect.min + egui::vec2(p[0] * rect.width(), p[1] * rect.height());
    for (i, view) in views.values().enumerate() {
        let colour = VIEW_COLOURS[i % VIEW_COLOURS.len()];
        for line in outline(view, DEFAULT_ASPECT) {
            let points: Vec<egui::Pos2> = line.into_iter().map(at).collect();
            painter.add(egui::Shape::line(points, egui::Stroke::new(2.0, colour)));
        }
        painter.circle_filled(at(to_picture(view.yaw_deg, view.pitch_deg)), 3.0, colour);
    }
}

/// Where viewers looked over the last minute, as translucent red over the preview.
fn heatmap_ui(painter: &egui::Painter, rect: egui::Rect, heatmap: &Heatmap, now_s: u64) {
    let (grid, max) = heatmap.grid(now_s);
    if max <= 0.0 {
        return;
    }
    let cell = egui::vec2(
        rect.width() / Heatmap::COLUMNS as f32,
        rect.height() / Heatmap::ROWS as f32,
    );
    for (i, v) in grid.iter().enumerate() {
        if *v <= 0.0 {
            continue;
        }
        let (row, col) = (i / Heatmap::COLUMNS, i % Heatmap::COLUMNS);
        let min = rect.min + egui::vec2(col as f32 * cell.x, row as f32 * cell.y);
        let alpha = (40.0 + 160.0 * (v / max)) as u8;
        painter.rect_filled(
            egui::Rect::from_min_size(min, cell),
            0.0,
            egui::Color32::from_rgba_unmultiplied(255, 40, 0, alpha),
        );
    }
}

/// The largest size of aspect `size` that fits `space`.
pub(super) fn fit(size: [usize; 2], space: egui::Vec2) -> egui::Vec2 {
    let (w, h) = (size[0].max(1) as f32, size[1].max(1) as f32);
    let scale = (space.x / w).min(space.y / h).max(0.0);
    egui::vec2(w * scale, h * scale)
}

/// Is `source` a picture or video file (chosen, perhaps with no file yet)?
fn is_file_source(source: &str) -> bool {
    ["image:", "y4m:", "mp4:"]
        .iter()
        .any(|kind| source.starts_with(kind))
}

fn projection_label(p: ProjectionSetting) -> &'static str {
    match p {
        ProjectionSetting::Auto => "Automatic (2:1 is 360°)",
        ProjectionSetting::Flat => "Flat",
        ProjectionSetting::Equirect => "360° camera (equirectangular)",
    }
}

/// A level meter: the peak of the last moments, green to red, with its dBFS.
pub(crate) fn level_meter_ui(ui: &mut egui::Ui, level: f32, width: f32) {
    let db = omnicast_engine::audio::dbfs(level);
    // −60 dBFS to 0 across the bar.
    let fill = ((db + 60.0) / 60.0).clamp(0.0, 1.0);
    let colour = if db > -3.0 {
        egui::Color32::from_rgb(220, 60, 50)
    } else if db > -12.0 {
        egui::Color32::from_rgb(220, 180, 40)
    } else {
        egui::Color32::from_rgb(60, 180, 90)
    };
    ui.add(
        egui::ProgressBar::new(fill)
            .desired_width(width)
            .fill(colour)
            .text(format!("{db:.0} dBFS")),
    )
    .on_hover_text("Sound level (peak)");
}
