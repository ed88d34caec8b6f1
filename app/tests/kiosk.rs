//! Kiosk mode as a robot runs it: `omnicast --kiosk --config FILE --headless` processes that
//! keep going by themselves when the signal server is killed and started again, and a bad
//! configuration that stops with a message naming the field. Loopback only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_omnicast");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("omnicast-kiosk-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A process with its output lines on a channel; killed when dropped.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info,rtc=error,webrtc=error")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::sync_channel(4096);
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::Builder::new()
                .name("proc-output".into())
                .spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        let _ = tx.try_send(line);
                    }
                })
                .unwrap();
        }
        Self { child, lines }
    }

    fn kiosk(config: &str, dir: &Path) -> Self {
        let path = dir.join("omnicast.toml");
        std::fs::write(&path, config).unwrap();
        Self::start(&["--kiosk", "--config", path.to_str().unwrap(), "--headless"])
    }

    /// Waits for an output line containing `needle`.
    fn wait_for(&self, needle: &str, within: Duration) -> String {
        let until = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            match self
                .lines
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!(
                    "no {needle:?} within {within:?}; output:\n{}",
                    seen.join("\n")
                ),
            }
        }
    }

    /// SIGTERM, then the exit status within `within`.
    fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
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

fn serve(port: u16) -> Proc {
    let bind = format!("127.0.0.1:{port}");
    let server = Proc::start(&["--bind", &bind, "--stun-bind", "127.0.0.1:0", "serve"]);
    let until = Instant::now() + Duration::from_secs(30);
    let addr: SocketAddr = bind.parse().unwrap();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < until, "the signal server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// A headless viewer process decoding `frames` frames; its output when done.
fn watch(url: &str, frames: u32) -> Output {
    let mut child = Command::new(BIN)
        .args([
            "--media-bind",
            "127.0.0.1",
            "view",
            "--headless",
            "--server",
            url,
        ])
        .args(["--frames", &frames.to_string()])
        .env("RUST_LOG", "warn,rtc=error,webrtc=error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn kiosk_mode_comes_back_by_itself_after_the_signal_server_is_killed_and_restarted() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = serve(port);
    let caster = Proc::kiosk(
        &format!(
            r#"
                mode = "broadcaster"
                media_bind = "127.0.0.1:0"
                [broadcast]
                source = "test-pattern"
                size = "320x240"
                host_server = false
                [server]
                url = "{url}"
            "#
        ),
        &dir("caster"),
    );
    caster.wait_for("connected to the signal server", Duration::from_secs(30));
    let viewer = Proc::kiosk(
        &format!(
            r#"
                mode = "viewer"
                media_bind = "127.0.0.1:0"
                [server]
                url = "{url}"
            "#
        ),
        &dir("viewer"),
    );
    viewer.wait_for("connected to the broadcaster", Duration::from_secs(30));
    let before = watch(&url, 20);
    assert!(
        before.status.success(),
        "{}",
        String::from_utf8_lossy(&before.stderr)
    );

    // The signal server dies without a word, and comes back on the same port.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    caster.wait_for("reconnecting to the signal server", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    let _server = serve(port);

    // The broadcaster announced itself again: a new viewer watches; the kiosk viewer is live
    // again on a fresh connection.
    caster.wait_for("connected to the signal server", Duration::from_secs(30));
    let after = watch(&url, 20);
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
    assert!(String::from_utf8_lossy(&after.stdout).contains("decoded 20 frames"));
    viewer.wait_for("connected to the broadcaster", Duration::from_secs(30));

    // And both stop cleanly when told to.
    assert!(viewer.terminate(Duration::from_secs(10)).success());
    assert!(caster.terminate(Duration::from_secs(10)).success());
}

#[test]
fn a_bad_configuration_names_the_field_and_exits_non_zero() {
    let d = dir("bad");
    let path = d.join("robot.toml");
    for (config, says) in [
        (
            "[broadcast]\nsize = \"12by7\"\n",
            "broadcast.size: \"12by7\": expected WIDTHxHEIGHT",
        ),
        ("mode = \"camera\"\n", "mode: unknown variant `camera`"),
        (
            "[server]\nurl = \"ftp://robot\"\n",
            "server.url: \"ftp://robot\": expected an http",
        ),
    ] {
        std::fs::write(&path, config).unwrap();
        let out = Command::new(BIN)
            .args(["--kiosk", "--config", path.to_str().unwrap(), "--headless"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{config:?}");
        assert!(stderr.contains("robot.toml: "), "{stderr}");
        assert!(stderr.contains(says), "{config:?}: {stderr}");
    }
    let out = Command::new(BIN)
        .args(["--kiosk", "--config", "/nonexistent/omnicast.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/omnicast.toml")
    );
    let out = Command::new(BIN).args(["--kiosk"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}
