//! A minimal STUN server (RFC 5389 Binding only) so browsers and apps on a LAN with no internet
//! learn their server-reflexive address from the signalling host itself.

use std::net::SocketAddr;

use stun::agent::TransactionId;
use stun::attributes::ATTR_SOFTWARE;
use stun::fingerprint::FINGERPRINT;
use stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Message, Setter};
use stun::textattrs::TextAttribute;
use stun::xoraddr::XorMappedAddress;
use tokio::net::UdpSocket;
use tokio::sync::watch;

const SOFTWARE: &str = concat!("omnicast-signal ", env!("CARGO_PKG_VERSION"));

/// Answers Binding requests until `shutdown` turns true. Anything else is ignored.
pub(crate) async fn serve(socket: UdpSocket, mut shutdown: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 1500];
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (len, from) = match received {
            Ok(r) => r,
            Err(e) => {
                // ICMP port unreachable from an earlier reply surfaces here on some systems.
                tracing::debug!("stun: receive failed: {e}");
                continue;
            }
        };
        let Some(reply) = binding_response(&buf[..len], from) else {
            continue;
        };
        if let Err(e) = socket.send_to(&reply, from).await {
            tracing::debug!(%from, "stun: reply failed: {e}");
        }
    }
}

/// The success response to a Binding request from `from`, or `None` if `request` is not one.
pub fn binding_response(request: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    if !stun::message::is_message(request) {
        return None;
    }
    let mut req = Message::new();
    req.raw = request.to_vec();
    req.decode().ok()?;
    if req.typ != BINDING_REQUEST {
        return None;
    }
    let mut res = Message::new();
    let setters: [Box<dyn Setter>; 5] = [
        Box::new(TransactionId(req.transaction_id.0)),
        Box::new(BINDING_SUCCESS),
        Box::new(XorMappedAddress {
            ip: from.ip(),
            port: from.port(),
        }),
        Box::new(TextAttribute::new(ATTR_SOFTWARE, SOFTWARE.to_owned())),
        Box::new(FINGERPRINT),
    ];
    res.build(&setters).ok()?;
    Some(res.raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun::message::Getter as _;

    #[test]
    fn garbage_gets_no_answer() {
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert!(binding_response(b"hello, this is not stun at all", from).is_none());
        assert!(binding_response(&[], from).is_none());
    }

    #[test]
    fn binding_request_is_answered_with_sender_address() {
        let from: SocketAddr = "[2001:db8::7]:40000".parse().unwrap();
        let mut req = Message::new();
        req.build(&[
            Box::new(TransactionId::new()) as Box<dyn Setter>,
            Box::new(BINDING_REQUEST),
        ])
        .unwrap();
        let reply = binding_response(&req.raw, from).unwrap();
        let mut res = Message::new();
        res.raw = reply;
        res.decode().unwrap();
        assert_eq!(res.typ, BINDING_SUCCESS);
        assert_eq!(res.transaction_id, req.transaction_id);
        let mut addr = XorMappedAddress::default();
        addr.get_from(&res).unwrap();
        assert_eq!(SocketAddr::new(addr.ip, addr.port), from);
    }
}
