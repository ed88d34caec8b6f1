//! Kiosk mode as a robot runs it: `omnicast --kiosk --config FILE --headless` processes that
//! keep going by themselves when the signal server is killed and started again, and a bad
//! configuration that stops with a message naming the field. Loopback only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use support::{Proc, headless_viewer, omnicast};

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

fn kiosk(config: &str, dir: &Path) -> Proc {
    let path = dir.join("omnicast.toml");
    std::fs::write(&path, config).unwrap();
    let mut command = omnicast();
    command
        .args(["--kiosk", "--config", path.to_str().unwrap(), "--headless"])
        .env("RUST_LOG", "info,rtc=error,webrtc=error");
    Proc::spawn(command)
}

fn serve(port: u16) -> Proc {
    let bind = format!("127.0.0.1:{port}");
    let mut command = omnicast();
    command.args(["serve", "--bind", &bind, "--stun-bind", "127.0.0.1:0"]);
    let server = Proc::spawn(command);
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
    let mut child = headless_viewer(url)
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
    let caster = kiosk(
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
    let viewer = kiosk(
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
    let said = String::from_utf8_lossy(&after.stdout);
    let decoded: u64 = said
        .split("decoded ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(decoded >= 20, "{said}");
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
        let out = omnicast()
            .args(["--kiosk", "--config", path.to_str().unwrap(), "--headless"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{config:?}");
        assert!(stderr.contains("robot.toml: "), "{stderr}");
        assert!(stderr.contains(says), "{config:?}: {stderr}");
    }
    let out = omnicast()
        .args(["--kiosk", "--config", "/nonexistent/omnicast.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/omnicast.toml")
    );
    let out = omnicast().args(["--kiosk"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}
