//! Shared by the process tests: the `omnicast` binary as a child process whose output lines
//! (stdout and stderr) arrive on a channel, killed when dropped.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead as _, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `omnicast` binary, with plain (uncoloured) logs.
pub fn omnicast() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_omnicast"));
    command.env("NO_COLOR", "1");
    command
}

/// `omnicast view --headless` on loopback watching the server at `url`; callers add the rest.
pub fn headless_viewer(url: &str) -> Command {
    let mut command = omnicast();
    command.args([
        "view",
        "--headless",
        "--media-bind",
        "127.0.0.1:0",
        "--server",
        url,
    ]);
    command
}

/// `omnicast broadcast --headless` hosting its server on loopback with `args` added; returns it
/// and its server's URL.
pub fn headless_broadcaster(args: &[&str]) -> (Proc, String) {
    let mut command = omnicast();
    command
        .args(["broadcast", "--headless", "--bind", "127.0.0.1:0"])
        .args(["--stun-bind", "127.0.0.1:0", "--media-bind", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info,webrtc=error,rtc=error");
    let proc = Proc::spawn(command);
    let url = proc.server_url(Duration::from_secs(20));
    (proc, url)
}

pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// Lines read while waiting for another, not yet handed out by `said`.
    passed: std::cell::RefCell<Vec<String>>,
}

impl Proc {
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("omnicast starts");
        let (tx, lines) = mpsc::sync_channel(4096);
        let streams: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for stream in streams {
            let tx = tx.clone();
            std::thread::Builder::new()
                .name("proc-output".into())
                .spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        // Never block the process on its own output.
                        let _ = tx.try_send(line);
                    }
                })
                .unwrap();
        }
        Self {
            child,
            lines,
            passed: Default::default(),
        }
    }

    /// Waits for an output line containing `needle` and returns it; panics with what it did
    /// say after `within`. The lines before it are kept for [`said`](Self::said).
    pub fn wait_for(&self, needle: &str, within: Duration) -> String {
        let until = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            match self
                .lines
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                Ok(line) if line.contains(needle) => {
                    self.passed.borrow_mut().extend(seen);
                    return line;
                }
                Ok(line) => seen.push(line),
                Err(_) => panic!(
                    "no {needle:?} within {within:?}; output:\n{}",
                    seen.join("\n")
                ),
            }
        }
    }

    /// The lines printed so far that no `wait_for` returned and `said` did not hand out yet.
    pub fn said(&self) -> Vec<String> {
        let mut lines = std::mem::take(&mut *self.passed.borrow_mut());
        lines.extend(self.lines.try_iter());
        lines
    }

    /// The URL after `--server ` in the first line that has one (the hosted server's).
    pub fn server_url(&self, within: Duration) -> String {
        let line = self.wait_for("--server ", within);
        line.split("--server ")
            .nth(1)
            .and_then(|rest| rest.split([',', ' ']).next())
            .expect("a URL after --server")
            .trim()
            .to_owned()
    }

    /// SIGTERM, then its exit status within `within`.
    pub fn terminate(mut self, within: Duration) -> ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let until = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < until, "did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
