//! What the process benchmarks share: the broadcaster as a child process, its CPU time.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

/// A benchmark setting from the environment (`OMNICAST_BENCH_SECONDS=10`), else `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User+system CPU seconds of a process.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0 // USER_HZ is 100 on Linux
}

/// `omnicast broadcast --headless` hosting its server on loopback, sending the test pattern,
/// with `args` added; returns it and its server's URL.
pub fn start_broadcaster(args: &[&std::ffi::OsStr]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_omnicast"))
        .args(["broadcast", "--headless", "--bind", "127.0.0.1:0"])
        .args(["--stun-bind", "127.0.0.1:0", "--media-bind", "127.0.0.1:0"])
        .args(["--source", "test-pattern"])
        .args(args)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("omnicast starts");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let url = loop {
        let line = lines.next().expect("broadcaster output").expect("utf-8");
        if let Some(url) = line
            .split("--server ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
        {
            break url.to_owned();
        }
    };
    std::thread::Builder::new()
        .name("broadcaster-output".into())
        .spawn(move || lines.for_each(drop))
        .expect("a thread");
    (child, url)
}

/// Waits (up to a minute) until every viewer has received 30 frames, then two seconds more;
/// returns the broadcaster `pid`'s CPU over the next `seconds`, in % of a core.
#[allow(dead_code)] // not every benchmark measures this way
pub async fn cpu_while_watched(pid: u32, viewers: &[crate::support::Session], seconds: u64) -> f64 {
    let all = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while viewers
            .iter()
            .any(|v| v.seen().stats().frames_received < 30)
        {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    if all.is_err() {
        println!("not every viewer received video within 60 s");
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let cpu0 = cpu_secs(pid);
    let t0 = std::time::Instant::now();
    tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
    (cpu_secs(pid) - cpu0) / t0.elapsed().as_secs_f64() * 100.0
}
