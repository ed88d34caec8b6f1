//! RTCPeerConnection set-up shared by the broadcaster and the viewer (webrtc 0.21).

use std::sync::Arc;
use std::time::Duration;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::Slot;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use serde_json::Value;
use tokio::sync::mpsc;
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceConnectionState, RTCIceServer, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, Registry, SettingEngineBuilder, register_default_interceptors,
};

use crate::media::{CODECS, Codec, MediaKind};

/// A STUN or TURN server, as the signal server hands them out.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(default)]
pub struct IceServerSpec {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

/// Network settings for peer connections.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    /// STUN/TURN servers; the signal server's (its `iceServers` event) replace these.
    pub ice_servers: Vec<IceServerSpec>,
    /// Local UDP addresses to gather host candidates on. `0.0.0.0:0` means every interface but
    /// loopback, so the default adds loopback too: viewers on the same machine connect even
    /// when it has no network at all.
    pub udp_addrs: Vec<String>,
    /// Resolve browsers' `.local` (mDNS) candidates. Off for loopback-only use.
    pub mdns: bool,
}

impl Default for PeerSettings {
    fn default() -> Self {
        Self {
            ice_servers: Vec::new(),
            udp_addrs: vec!["0.0.0.0:0".to_owned(), "127.0.0.1:0".to_owned()],
            mdns: true,
        }
    }
}

impl PeerSettings {
    /// Loopback only: for tests and benchmarks.
    pub fn loopback() -> Self {
        Self {
            ice_servers: Vec::new(),
            udp_addrs: vec!["127.0.0.1:0".to_owned()],
            mdns: false,
        }
    }
}

/// One peer connection, among all a session makes: events are tagged with it, so a late event
/// of a connection that was replaced is never taken for its successor's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What a peer connection reports.
pub enum PeerEvent {
    Candidate(Value),
    /// ICE found a working path (DTLS comes next).
    IceConnected,
    State(RTCPeerConnectionState),
    Track(Arc<dyn TrackRemote>),
    /// The remote peer opened a data channel.
    DataChannel(Arc<dyn DataChannel>),
}

struct Handler {
    conn: ConnId,
    events: mpsc::Sender<(ConnId, PeerEvent)>,
}

impl Handler {
    async fn send(&self, event: PeerEvent) {
        let _ = self.events.send((self.conn, event)).await;
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(mut init) => {
                // Only one m-line is ever negotiated; an empty mid would not match it in browsers.
                if init.sdp_mid.as_deref() == Some("") {
                    init.sdp_mid = None;
                }
                if let Ok(v) = serde_json::to_value(init) {
                    self.send(PeerEvent::Candidate(v)).await;
                }
            }
            Err(e) => tracing::debug!("unusable local candidate: {e}"),
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        if state == RTCIceConnectionState::Connected {
            self.send(PeerEvent::IceConnected).await;
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.send(PeerEvent::State(state)).await;
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        self.send(PeerEvent::Track(track)).await;
    }

    async fn on_data_channel(&self, data_channel: Arc<dyn DataChannel>) {
        self.send(PeerEvent::DataChannel(data_channel)).await;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("WebRTC: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    #[error("malformed {what} from the remote peer: {source}")]
    Malformed {
        what: &'static str,
        source: serde_json::Error,
    },
}

/// The negotiation parameters of `codec`.
pub fn codec_parameters(codec: &Codec) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: codec.mime_type.to_owned(),
            clock_rate: codec.clock_rate,
            channels: codec.channels,
            sdp_fmtp_line: codec.fmtp.to_owned(),
            rtcp_feedback: codec
                .rtcp_feedback
                .iter()
                .map(|(typ, parameter)| RTCPFeedback {
                    typ: (*typ).to_owned(),
                    parameter: (*parameter).to_owned(),
                })
                .collect(),
        },
        payload_type: codec.payload_type,
    }
}

/// Every codec in [`CODECS`] to receive; to send, only those marked for sending (H.264
/// Constrained Baseline). A browser offering VP8 first still gets an answer with H.264.
fn media_engine(receive: bool) -> Result<MediaEngine, PeerError> {
    let mut engine = MediaEngine::default();
    for codec in CODECS.iter().filter(|c| receive || c.send) {
        let kind = match codec.kind {
            MediaKind::Video => RtpCodecKind::Video,
            MediaKind::Audio => RtpCodecKind::Audio,
        };
        engine.register_codec(codec_parameters(codec), kind)?;
    }
    Ok(engine)
}

/// Builds peer connection `conn`, whose events go to `events` tagged with it.
///
/// mDNS resolution is on (browsers hide LAN addresses behind `.local` names) unless the host has
/// no multicast-capable interface, where it is turned off rather than failing.
pub async fn build(
    settings: &PeerSettings,
    receive: bool,
    conn: ConnId,
    events: mpsc::Sender<(ConnId, PeerEvent)>,
) -> Result<Arc<dyn PeerConnection>, PeerError> {
    let mdns = if settings.mdns && multicast_available() {
        MulticastDnsMode::QueryOnly
    } else {
        MulticastDnsMode::Disabled
    };
    build_with(settings, receive, Handler { conn, events }, mdns).await
}

/// Can this host join the mDNS multicast group? (Not in a network namespace with only loopback,
/// for example.) Checked once.
fn multicast_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let probe = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| {
            s.join_multicast_v4(
                &std::net::Ipv4Addr::new(224, 0, 0, 251),
                &std::net::Ipv4Addr::UNSPECIFIED,
            )
        });
        if let Err(e) = &probe {
            tracing::info!("no multicast here ({e}): mDNS candidates will not be resolved");
        }
        probe.is_ok()
    })
}

async fn build_with(
    settings: &PeerSettings,
    receive: bool,
    handler: Handler,
    mdns: MulticastDnsMode,
) -> Result<Arc<dyn PeerConnection>, PeerError> {
    let mut engine = media_engine(receive)?;
    let registry = register_default_interceptors(Registry::new(), &mut engine)?
        // Last, after the interceptors that act on RTCP themselves.
        .with(
            Slot::from(14_000),
            super::feedback::KeyframeRequests::default(),
        );
    let config = RTCConfigurationBuilder::new()
        .with_ice_servers(
            settings
                .ice_servers
                .iter()
                .map(|server| RTCIceServer {
                    urls: server.urls.clone(),
                    username: server.username.clone(),
                    credential: server.credential.clone(),
                })
                .collect(),
        )
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(config)
        .with_media_engine(engine)
        .with_setting_engine(
            SettingEngineBuilder::new()
                .with_multicast_dns_mode(mdns)
                // RFC 8445's 50 ms pacing instead of 200 ms: connections (and a joining
                // viewer's first frame) come up sooner; same 1.4 s of attempts per pair.
                .with_ice_connection_attempts(Some(Duration::from_millis(50)), Some(28))
                // A check that arrives before the peer's candidate (trickle over signalling
                // loses that race now and then) makes a peer-reflexive pair, which webrtc would
                // wait 1 s to nominate: the slow joins. Accept it at once, as browsers do.
                .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
                .build(),
        )
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(handler) as Arc<dyn PeerConnectionEventHandler>)
        .with_udp_addrs(settings.udp_addrs.clone())
        .build()
        .await?;
    Ok(Arc::new(pc))
}

/// A session description as browsers take it (`{type, sdp}`).
pub fn description_json(d: &webrtc::peer_connection::RTCSessionDescription) -> Value {
    serde_json::json!({ "type": d.sdp_type.to_string(), "sdp": d.sdp })
}

/// Parses a session description as browsers send it (`{type, sdp}`).
pub fn description(v: Value) -> Result<webrtc::peer_connection::RTCSessionDescription, PeerError> {
    serde_json::from_value(v).map_err(|source| PeerError::Malformed {
        what: "session description",
        source,
    })
}

/// Parses an ICE candidate as browsers send it (`{candidate, sdpMid, sdpMLineIndex}`).
pub fn candidate(v: Value) -> Result<webrtc::peer_connection::RTCIceCandidateInit, PeerError> {
    serde_json::from_value(v).map_err(|source| PeerError::Malformed {
        what: "ICE candidate",
        source,
    })
}
