//! `GET /metrics` in the Prometheus text format, rendered from a hub snapshot at scrape time.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::hub::{RELAY_EVENTS, Rejection, Snapshot};

type Labels = Vec<(&'static str, &'static str)>;

pub(crate) fn render(snapshot: &Snapshot) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("omnicast_signal");
    let gauge = |v: usize| ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
    registry.register(
        "sockets",
        "Connected Socket.IO sockets",
        gauge(snapshot.sockets),
    );
    registry.register(
        "rooms",
        "Rooms with at least one socket",
        gauge(snapshot.rooms),
    );
    registry.register(
        "broadcasters",
        "Rooms with a broadcaster",
        gauge(snapshot.broadcasters),
    );
    registry.register(
        "viewers",
        "Sockets that asked to watch",
        gauge(snapshot.viewers),
    );

    let relayed = Family::<Labels, Counter>::default();
    for event in RELAY_EVENTS {
        let n = snapshot.counters.relayed.get(event).copied().unwrap_or(0);
        relayed.get_or_create(&vec![("event", event)]).inc_by(n);
    }
    registry.register(
        "relayed_messages",
        "Signalling messages relayed to their target",
        relayed,
    );

    let rejected = Family::<Labels, Counter>::default();
    for r in Rejection::ALL {
        let n = snapshot.counters.rejected.get(&r).copied().unwrap_or(0);
        rejected
            .get_or_create(&vec![("reason", r.code())])
            .inc_by(n);
    }
    registry.register(
        "rejected_messages",
        "Messages refused with an error event",
        rejected,
    );

    let mut out = String::new();
    encode(&mut out, &registry)?;
    Ok(out)
}
