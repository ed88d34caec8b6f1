//! Embeds the official Socket.IO browser client, installed from npm by `npm ci` at the
//! workspace root (never copied into the repository).

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let js = manifest.join("../node_modules/socket.io-client/dist/socket.io.min.js");
    println!("cargo:rerun-if-changed={}", js.display());
    if !js.is_file() {
        println!(
            "cargo::error=socket.io-client is not installed: run `npm ci` in the workspace root \
             (expected {})",
            js.display()
        );
        return;
    }
    println!("cargo:rustc-env=OMNICAST_SOCKET_IO_JS={}", js.display());
}
