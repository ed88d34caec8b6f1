//! The broadcaster screen: source, size, rate, where the signal server is, start/stop; the
//! preview, the links viewers use, and every connected viewer with its figures.

use std::sync::Arc;

use eframe::egui;
use omnicast_engine::broadcaster::BroadcastStatus;
use omnicast_engine::capture::SourceSpec;
use omnicast_engine::frame::FrameSlot;
use omnicast_engine::service::{BroadcastPlan, Plan};
use omnicast_engine::session::{Retry, SessionState};
use omnicast_engine::settings::{SIZE_PRESETS, size_label};
use omnicast_engine::values::{BitrateKbps, Fps};

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
        let plan = BroadcastPlan {
            settings,
            host: self.settings.host_server.then_some(self.options.host_bind),
            preview: Some(preview_slot.clone()),
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
                });
            }
            Err(e) => self.say(format!("Cannot broadcast: {e}")),
        }
    }

    pub(super) fn stop_broadcast(&mut self) {
        if let Some(b) = self.broadcasting.take() {
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
        });
    }

    fn source_picker_ui(&mut self, ui: &mut egui::Ui, label_id: egui::Id) {
        let label = |source: &str| -> String {
            match source.parse::<SourceSpec>() {
                Ok(SourceSpec::TestPattern) => "Test pattern".to_owned(),
                Ok(SourceSpec::Camera(_)) if source == "camera" => "First camera".to_owned(),
                _ => source.strip_prefix("camera:").unwrap_or(source).to_owned(),
            }
        };
        let mut choices = vec!["test-pattern".to_owned(), "camera".to_owned()];
        choices.extend(self.cameras.iter().map(|c| format!("camera:{}", c.name)));
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

    fn broadcast_status_ui(&mut self, ui: &mut egui::Ui) {
        let Some(b) = &self.broadcasting else {
            ui.centered_and_justified(|ui| {
                ui.label(if self.cameras.is_empty() {
                    "Not broadcasting. No camera found: a broadcast sends the test pattern."
                } else {
                    "Not broadcasting."
                });
            });
            return;
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
        ui.label(format!(
            "{} frames encoded ({:.1} fps), {} keyframes, {:.1} ms a frame on {threads} thread{}",
            status.frames_encoded,
            status.fps,
            status.keyframes,
            status.encode_ms_avg,
            if threads == 1 { "" } else { "s" },
        ));
        let preview_height = (ui.available_height() - 140.0).max(120.0);
        if let Some(p) = &b.preview {
            let size = fit(p.size(), egui::vec2(ui.available_width(), preview_height));
            let (rect, response) = ui.allocate_exact_size(size, egui::Sense::hover());
            ui.painter().add(p.flat_shape(rect));
            response.on_hover_text("Preview of what goes out");
        }
        ui.separator();
        if viewers.is_empty() {
            ui.weak("No viewers yet: each one is listed here as it connects.");
            return;
        }
        egui::Grid::new("viewers")
            .striped(true)
            .num_columns(4)
            .show(ui, |ui| {
                ui.strong("Viewer");
                ui.strong("Connection");
                ui.strong("RTT");
                ui.strong("Sending");
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
                    ui.label(format!("{:.0} kbit/s", v.sent_kbps));
                    ui.end_row();
                }
            });
    }
}

/// The largest size of aspect `size` that fits `space`.
pub(super) fn fit(size: [usize; 2], space: egui::Vec2) -> egui::Vec2 {
    let (w, h) = (size[0].max(1) as f32, size[1].max(1) as f32);
    let scale = (space.x / w).min(space.y / h).max(0.0);
    egui::vec2(w * scale, h * scale)
}
