//! Data channels between viewers and the broadcaster: the public protocol ([`protocol`]), the
//! broadcaster's side ([`room`]: every viewer connection's channels, the control key, telemetry
//! out), what it keeps ([`viewport_log`]) and where messages go ([`bridge`] to the robot), the
//! viewer's side ([`link`]), head-motion traces to replay ([`trace`]) and where viewers look on
//! the picture ([`views`]).

pub mod bridge;
pub mod link;
pub mod protocol;
pub mod room;
pub mod trace;
pub mod viewport_log;
pub mod views;
