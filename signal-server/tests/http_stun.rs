//! The HTTP endpoints and the embedded STUN server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;

use omnicast_signal::{IceServer, ServerConfig};
use stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Getter as _, Message, Setter};
use stun::xoraddr::XorMappedAddress;
use support::{loopback_server, server};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};

/// A bare HTTP/1.1 GET, so the test exercises the server rather than a client library.
async fn get(addr: SocketAddr, path: &str, host: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

#[tokio::test]
async fn stun_binding_request_gets_the_senders_address() {
    let server = loopback_server().await;
    let stun_addr = server.stun_addr().unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut req = Message::new();
    req.build(&[
        Box::new(stun::agent::TransactionId::new()) as Box<dyn Setter>,
        Box::new(BINDING_REQUEST),
    ])
    .unwrap();
    client.send_to(&req.raw, stun_addr).await.unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = tokio::time::timeout(support::WAIT, client.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from, stun_addr);
    let mut res = Message::new();
    res.raw = buf[..n].to_vec();
    res.decode().unwrap();
    assert_eq!(res.typ, BINDING_SUCCESS);
    assert_eq!(res.transaction_id, req.transaction_id);
    let mut mapped = XorMappedAddress::default();
    mapped.get_from(&res).unwrap();
    assert_eq!(
        SocketAddr::new(mapped.ip, mapped.port),
        client.local_addr().unwrap()
    );

    // Junk is ignored and the server keeps answering.
    client
        .send_to(b"GET / HTTP/1.1\r\n\r\n", stun_addr)
        .await
        .unwrap();
    client.send_to(&req.raw, stun_addr).await.unwrap();
    let (n, _) = tokio::time::timeout(support::WAIT, client.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(n >= 20);
}

#[tokio::test]
async fn pages_client_health_and_ice_servers() {
    let config = ServerConfig {
        extra_ice_servers: vec![IceServer {
            urls: vec!["turn:turn.example.org:3478".to_owned()],
            username: Some("u".to_owned()),
            credential: Some("p".to_owned()),
        }],
        ..ServerConfig::loopback_ephemeral()
    };
    let server = server(config).await;
    let addr = server.http_addr();

    let (status, head, body) = get(addr, "/socket.io/socket.io.js", "localhost").await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/javascript")
    );
    assert!(String::from_utf8_lossy(&body[..200]).contains("Socket.IO v4"));

    for page in ["/", "/broadcast.html", "/index.html"] {
        let (status, _, body) = get(addr, page, "localhost").await;
        assert_eq!(status, 200, "{page}");
        assert!(
            String::from_utf8_lossy(&body).contains("/socket.io/socket.io.js"),
            "{page}"
        );
    }
    assert_eq!(get(addr, "/healthz", "localhost").await.0, 200);
    assert_eq!(get(addr, "/nope", "localhost").await.0, 404);

    let (status, _, body) = get(addr, "/ice-servers", "192.168.7.9:4000").await;
    assert_eq!(status, 200);
    let ice: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let stun_port = server.stun_addr().unwrap().port();
    assert_eq!(
        ice,
        serde_json::json!({"iceServers": [
            {"urls": [format!("stun:192.168.7.9:{stun_port}")]},
            {"urls": ["turn:turn.example.org:3478"], "username": "u", "credential": "p"},
        ]})
    );
    // A forged Host header does not end up in the URLs.
    let (_, _, body) = get(addr, "/ice-servers", "evil\"host").await;
    let ice: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(ice["iceServers"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_clients_are_told_the_ice_servers_on_connect() {
    let server = loopback_server().await;
    let client = support::TestClient::connect(&server, support::room("ice")).await;
    let port = server.stun_addr().unwrap().port();
    assert_eq!(
        client.ice_servers,
        serde_json::json!([{ "urls": [format!("stun:127.0.0.1:{port}")] }])
    );
}

#[tokio::test]
async fn web_root_replaces_the_built_in_pages() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/classic");
    let config = ServerConfig {
        web_root: Some(dir),
        ..ServerConfig::loopback_ephemeral()
    };
    let server = server(config).await;
    let (status, _, body) = get(server.http_addr(), "/broadcast.html", "localhost").await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("<title>Broadcaster</title>"));
    // The Socket.IO client is still served at the classic path.
    assert_eq!(
        get(server.http_addr(), "/socket.io/socket.io.js", "localhost")
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn shutdown_disconnects_clients_and_frees_the_port() {
    let mut server = loopback_server().await;
    let addr = server.http_addr();
    let client = support::TestClient::connect(&server, support::room("x")).await;
    tokio::time::timeout(support::WAIT, server.shutdown())
        .await
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "nothing listens after shutdown"
    );
    drop(client);
}
