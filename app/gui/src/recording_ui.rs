//! Recording in the window, either mode: a Record button showing the time and size recorded,
//! the folder beside it while not recording, and what stopped a recording said once.

use std::time::Duration;

use eframe::egui;
use omnicast_engine::record::{RecordRole, RecordStatus, Recorder};
use omnicast_engine::settings::Settings;

/// A session's recorder as the window sees it.
pub(crate) struct Recording {
    pub(crate) recorder: Recorder,
    /// Its figures at the last [`Recording::refresh`].
    status: RecordStatus,
    /// When it was started here: the clock shown runs from then.
    started: Option<std::time::Instant>,
}

impl Recording {
    /// A recorder for a session starting now, already recording if the settings say so
    /// (`--record`, a kiosk); an error says why it could not start.
    pub(crate) fn new(role: RecordRole, settings: &Settings) -> (Self, Option<String>) {
        let mut r = Self {
            recorder: Recorder::new(role),
            status: RecordStatus::default(),
            started: None,
        };
        let error = if settings.record_on_start {
            r.toggle(settings).err()
        } else {
            None
        };
        (r, error)
    }

    /// Takes the recorder's figures (from `logic`); returns why it stopped, once, if it stopped
    /// by itself.
    pub(crate) fn refresh(&mut self) -> Option<String> {
        let was = self.status.recording;
        self.status = self.recorder.status();
        if was && !self.status.recording {
            return self.status.error.clone();
        }
        None
    }

    /// Starts or stops recording.
    pub(crate) fn toggle(&mut self, settings: &Settings) -> Result<(), String> {
        if self.recorder.is_recording() {
            self.recorder.stop();
            return Ok(());
        }
        let record = settings.record()?;
        self.recorder
            .start(record)
            .map_err(|e| format!("Not recording: {e}"))?;
        self.status = self.recorder.status();
        self.started = Some(std::time::Instant::now());
        Ok(())
    }
}

/// The Record button; while recording, a red REC with the time and size recorded and a Stop
/// button. The folder is a field beside the button when `folder_inline`, else in the button's
/// right-click menu (a crowded bar). Returns what to say, if anything.
pub(crate) fn record_ui(
    ui: &mut egui::Ui,
    recording: &mut Recording,
    settings: &mut Settings,
    folder_inline: bool,
) -> Option<String> {
    let s = recording.status.clone();
    let mut said = None;
    if s.recording {
        // The clock runs on its own: one repaint as each second turns.
        let elapsed = recording.started.map_or(Duration::ZERO, |t| t.elapsed());
        let to_next_second = Duration::from_millis(1000 - elapsed.as_millis() as u64 % 1000);
        ui.ctx().request_repaint_after(to_next_second);
        ui.label(
            egui::RichText::new(format!(
                "REC {} · {}",
                clock(elapsed.as_secs_f64()),
                megabytes(s.bytes_written)
            ))
            .color(egui::Color32::from_rgb(230, 40, 40)),
        )
        .on_hover_text(match &s.file {
            Some(f) => format!("Recording to {}", f.display()),
            None => "Recording starts at the next keyframe".to_owned(),
        });
        if ui.button("Stop").on_hover_text("Stop recording").clicked() {
            said = recording.toggle(settings).err();
        }
        if s.fragments_dropped > 0 {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("disk behind: {} dropped", s.fragments_dropped),
            );
        }
        return said;
    }
    let hover = format!(
        "Record what this window {} as MP4 (H.264 and Opus, not re-encoded) into {}, a \
         fragment synced to disk every second{}",
        if recording.recorder.role() == RecordRole::Broadcast {
            "sends"
        } else {
            "receives"
        },
        settings.record_dir,
        if folder_inline {
            ""
        } else {
            " (right-click to choose the folder)"
        }
    );
    let start = ui.button("Record").on_hover_text(hover);
    if start.clicked() {
        said = recording.toggle(settings).err();
    }
    let folder_ui = |ui: &mut egui::Ui, settings: &mut Settings| {
        let label = ui.label("to");
        let folder = egui::TextEdit::singleline(&mut settings.record_dir).desired_width(140.0);
        ui.add(folder)
            .labelled_by(label.id)
            .on_hover_text("The folder recordings go into (made if missing)");
    };
    if folder_inline {
        folder_ui(ui, settings);
    } else {
        start.context_menu(|ui| {
            ui.horizontal(|ui| folder_ui(ui, settings));
        });
    }
    said
}

/// `1:02:03` or `2:03`.
fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_sizes_read_as_a_person_expects() {
        assert_eq!(clock(0.4), "0:00");
        assert_eq!(clock(125.0), "2:05");
        assert_eq!(clock(3723.0), "1:02:03");
        assert_eq!(megabytes(1_234_567), "1.2 MB");
    }
}
