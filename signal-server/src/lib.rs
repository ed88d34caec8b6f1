//! Omnicast's signalling server: a drop-in replacement for the classic Node/Socket.IO WebRTC
//! broadcast server, with rooms, broadcaster keys, input limits, STUN and browser pages.
//!
//! Host it in-process with [`SignalServer::start`], or run the `omnicast-signal` binary.

pub mod config;
mod http;
pub mod hub;
mod metrics;
mod relay;
pub mod stun_server;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::RustlsConfig;
use parking_lot::Mutex;
use socketioxide::SocketIo;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{IceServer, ServerConfig, TlsFiles};
pub use hub::HubConfig;

use crate::hub::Hub;
use crate::relay::Shared;

/// How long open HTTP connections get to finish when the server stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen for HTTP on {addr}: {source}")]
    HttpBind { addr: SocketAddr, source: io::Error },
    #[error("cannot listen for STUN on udp {addr}: {source}")]
    StunBind { addr: SocketAddr, source: io::Error },
    #[error("cannot load TLS certificate {cert} / key {key}: {source}")]
    Tls {
        cert: String,
        key: String,
        source: io::Error,
    },
}

/// A running server. Dropping it leaves the server running until the runtime ends; call
/// [`SignalServer::shutdown`] to stop it cleanly.
pub struct SignalServer {
    http_addr: SocketAddr,
    stun_addr: Option<SocketAddr>,
    tls: bool,
    io: SocketIo,
    handle: Handle<SocketAddr>,
    stop_stun: watch::Sender<bool>,
    http_task: JoinHandle<io::Result<()>>,
    stun_task: Option<JoinHandle<()>>,
}

impl SignalServer {
    pub async fn start(config: ServerConfig) -> Result<Self, StartError> {
        let (stop_stun, stop_rx) = watch::channel(false);
        let (stun_addr, stun_task) = match config.stun_bind {
            Some(addr) => {
                let socket = UdpSocket::bind(addr)
                    .await
                    .map_err(|source| StartError::StunBind { addr, source })?;
                let bound = socket
                    .local_addr()
                    .map_err(|source| StartError::StunBind { addr, source })?;
                let task = tokio::spawn(stun_server::serve(socket, stop_rx));
                (Some(bound), Some(task))
            }
            None => (None, None),
        };

        let shared = Arc::new(Shared {
            hub: Mutex::new(Hub::new(config.hub.clone())),
            max_payload_bytes: config.hub.max_payload_bytes,
            ice: config::IcePlan {
                stun_port: stun_addr.map(|a| a.port()),
                extra: config.extra_ice_servers.clone(),
            },
        });
        // The engine closes connections that send more than this; messages between the hub's
        // limit and this one get a clear `error` event instead.
        let engine_max_payload = u64::try_from(config.hub.max_payload_bytes)
            .unwrap_or(u64::MAX)
            .saturating_mul(4)
            .max(1 << 20);
        let (socket_io, io) = SocketIo::builder()
            .with_state(shared.clone())
            .max_payload(engine_max_payload)
            .max_buffer_size(1024)
            // Signalling messages are small; a 1 KiB read buffer (default 4 KiB) saves 3 KiB
            // per socket and costs a few more reads for a 5 KiB SDP.
            .ws_read_buffer_size(1024)
            .build_svc();
        relay::attach(&io);

        let http_bind = config.http_bind;
        let bind_err = |source| StartError::HttpBind {
            addr: http_bind,
            source,
        };
        let listener = std::net::TcpListener::bind(http_bind).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let http_addr = listener.local_addr().map_err(bind_err)?;

        // Signalling is many small messages: Nagle's algorithm would hold them back ~40 ms.
        let app = http::router(shared, socket_io, config.web_root.as_deref())
            .into_make_service_with_connect_info::<SocketAddr>();
        let handle = Handle::new();
        let http_task = match &config.tls {
            None => {
                let server = axum_server::from_tcp(listener)
                    .map_err(bind_err)?
                    .acceptor(NoDelayAcceptor::new())
                    .handle(handle.clone());
                tokio::spawn(server.serve(app))
            }
            Some(files) => {
                // Both may already be installed by the hosting app; either is fine.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let tls = RustlsConfig::from_pem_file(&files.cert, &files.key)
                    .await
                    .map_err(|source| StartError::Tls {
                        cert: files.cert.display().to_string(),
                        key: files.key.display().to_string(),
                        source,
                    })?;
                let server = axum_server::from_tcp_rustls(listener, tls)
                    .map_err(bind_err)?
                    .map(|tls| tls.acceptor(NoDelayAcceptor::new()))
                    .handle(handle.clone());
                tokio::spawn(server.serve(app))
            }
        };

        Ok(Self {
            http_addr,
            stun_addr,
            tls: config.tls.is_some(),
            io,
            handle,
            stop_stun,
            http_task,
            stun_task,
        })
    }

    /// Where HTTP and Socket.IO listen.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where the embedded STUN server listens, if enabled.
    pub fn stun_addr(&self) -> Option<SocketAddr> {
        self.stun_addr
    }

    /// A URL for this server on this machine (`localhost` when bound to every interface).
    pub fn local_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let host = match self.http_addr {
            a if a.ip().is_unspecified() => "localhost".to_owned(),
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        format!("{scheme}://{host}:{}", self.http_addr.port())
    }

    /// Runs until `signal` completes or the HTTP server fails, then shuts down cleanly.
    pub async fn serve_until(mut self, signal: impl Future<Output = ()>) -> io::Result<()> {
        tokio::select! {
            () = signal => {
                self.shutdown().await;
                Ok(())
            }
            r = &mut self.http_task => {
                let _ = self.stop_stun.send(true);
                r.map_err(io::Error::other)?
            }
        }
    }

    /// Disconnects every client, stops accepting, and waits (briefly) for connections to close.
    pub async fn shutdown(&mut self) {
        let _ = self.stop_stun.send(true);
        if let Err(e) = self.io.broadcast().disconnect().await {
            tracing::debug!("disconnecting clients: {e}");
        }
        self.handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
        match (&mut self.http_task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("http server ended with an error: {e}"),
            Err(e) => tracing::warn!("http server task failed: {e}"),
        }
        if let Some(task) = self.stun_task.take() {
            let _ = task.await;
        }
    }
}

/// Completes on Ctrl-C or SIGTERM: the usual way to end [`SignalServer::serve_until`].
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
