//! The viewer's decisions as a pure state machine: no sockets, no tasks, no clock.
//!
//! The viewer's I/O loop ([`super::run`]) feeds it what the signal server, the connection to the
//! broadcaster and its data channels report, and what the viewer is told, with the current
//! time; it carries out the [`Output`]s: ask for an offer, answer one, pass candidates both
//! ways, close a connection, measure its round trip, send the view, start a trace, and report
//! [`ViewEvent`]s, in the order they were decided. Tests drive it with fake time.
//!
//! Each offer gets a new connection ([`ConnId`]) and the one before is closed; whatever an
//! old connection still reports (its data channels' messages included) is ignored, so it can
//! never disturb its successor.

use std::collections::VecDeque;
use std::time::Instant;

use serde_json::Value;

use super::{ViewEvent, ViewState};
use crate::channels::link::ViewportPacer;
use crate::channels::protocol::{BroadcasterMessage, Viewport};
use crate::peer::ConnId;
use crate::values::Projection;

/// Something that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Connected (again) to the signal server.
    SignalUp,
    /// The server says there is no broadcaster in the room.
    NoBroadcaster,
    /// A broadcaster (a new one, or the same one back) is in the room.
    BroadcasterArrived,
    /// The broadcaster left the room.
    BroadcasterLeft,
    /// A peer left (`disconnectPeer`/`bye`): the broadcaster, if it is ours.
    PeerLeft(String),
    /// The broadcaster's offer.
    Offer { from: String, offer: Value },
    /// One of the broadcaster's ICE candidates.
    Candidate { from: String, candidate: Value },
    /// What one of our connections reported.
    Conn(ConnId, ConnReport),
    /// What the broadcaster said on one of a connection's data channels.
    Said(ConnId, BroadcasterMessage),
    /// The viewer looks here now (a 360° view).
    Look(Viewport),
    /// The viewer no longer looks around (a flat view).
    StopLooking,
    /// The first frame was decoded (for a viewer that does not decode: received whole).
    FirstFrame,
}

/// What the connection to the broadcaster reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnReport {
    /// Set up from the offer, with this answer for the broadcaster.
    Answered(Value),
    /// Could not be set up (an unusable offer).
    Failed(String),
    /// A local ICE candidate for the broadcaster.
    LocalCandidate(Value),
    /// ICE found a path.
    IceConnected,
    /// Media can flow.
    Connected,
    /// The connection failed.
    Lost,
}

/// Something to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Ask the broadcaster for an offer (`watcher`).
    Watch,
    /// Set up connection `conn` from the broadcaster's offer, then report
    /// [`ConnReport::Answered`] or [`ConnReport::Failed`].
    Answer { conn: ConnId, offer: Value },
    /// Send the broadcaster our answer.
    SendAnswer { to: String, answer: Value },
    /// Send the broadcaster one of our ICE candidates.
    SendCandidate { to: String, candidate: Value },
    /// Add one of the broadcaster's candidates to connection `conn`.
    AddCandidate { conn: ConnId, candidate: Value },
    /// Close connection `conn` and forget its data channels.
    Close(ConnId),
    /// Measure connection `conn`'s round trip until it is closed.
    MeasureRtt(ConnId),
    /// Send this view to the broadcaster (a viewport sample).
    SendView(Viewport),
    /// Start replaying the head-motion trace.
    StartTrace,
    /// Note when a step of the first connection happened (the timeline).
    Mark(&'static str),
    /// Report this, in this order.
    Event(ViewEvent),
}

/// The connection to the broadcaster being made or in use.
#[derive(Debug)]
struct Current {
    conn: ConnId,
    broadcaster: String,
    measuring: bool,
}

/// One attempt at watching, as decisions.
#[derive(Debug)]
pub struct ViewerMachine {
    state: Option<ViewState>,
    current: Option<Current>,
    next_conn: u64,
    /// What the broadcaster said its picture is, last.
    projection: Option<Projection>,
    pacer: ViewportPacer,
    /// A trace to replay from the first frame on, not yet started.
    trace_pending: bool,
    out: VecDeque<Output>,
}

impl ViewerMachine {
    /// A viewer about to connect to the signal server; `trace`: it has a trace to replay.
    pub fn new(trace: bool) -> Self {
        let mut machine = Self {
            state: None,
            current: None,
            next_conn: 1,
            projection: None,
            pacer: ViewportPacer::default(),
            trace_pending: trace,
            out: VecDeque::new(),
        };
        machine.set(ViewState::Connecting);
        machine
    }

    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::SignalUp => {
                self.push(Output::Mark("1 signalling"));
                self.set(ViewState::WaitingForBroadcaster);
                self.push(Output::Watch);
            }
            Input::NoBroadcaster => self.set(ViewState::WaitingForBroadcaster),
            Input::BroadcasterArrived => {
                self.close();
                self.push(Output::Watch);
            }
            Input::BroadcasterLeft => {
                self.close();
                self.set(ViewState::BroadcasterLeft);
            }
            Input::PeerLeft(id) => {
                if self.current.as_ref().is_some_and(|c| c.broadcaster == id) {
                    self.close();
                    self.set(ViewState::BroadcasterLeft);
                }
            }
            Input::Offer { from, offer } => {
                self.close();
                self.push(Output::Mark("2 offer"));
                self.set(ViewState::Negotiating);
                let conn = ConnId(self.next_conn);
                self.next_conn += 1;
                self.current = Some(Current {
                    conn,
                    broadcaster: from,
                    measuring: false,
                });
                self.push(Output::Answer { conn, offer });
            }
            Input::Candidate { from, candidate } => {
                if let Some(c) = self.current.as_ref().filter(|c| c.broadcaster == from) {
                    let conn = c.conn;
                    self.push(Output::AddCandidate { conn, candidate });
                }
            }
            Input::Conn(conn, report) => self.conn_report(conn, report),
            Input::Said(conn, message) => {
                if self.is_current(conn) {
                    self.said(message);
                }
            }
            Input::Look(view) => self.pacer.update(view),
            Input::StopLooking => self.pacer.clear(),
            Input::FirstFrame => {
                if std::mem::take(&mut self.trace_pending) {
                    self.push(Output::StartTrace);
                }
            }
        }
        // A view due at once (a new one after a pause) goes now, not at the next timeout.
        if self.pacer.next_at(now).is_some_and(|at| at <= now) {
            self.handle_timeout(now);
        }
    }

    fn conn_report(&mut self, conn: ConnId, report: ConnReport) {
        // A connection that was replaced has nothing more to say.
        let Some(current) = self.current.as_mut().filter(|c| c.conn == conn) else {
            return;
        };
        match report {
            ConnReport::Answered(answer) => {
                let to = current.broadcaster.clone();
                self.push(Output::SendAnswer { to, answer });
                self.push(Output::Mark("3 answered"));
            }
            ConnReport::Failed(why) => {
                tracing::warn!("cannot answer the broadcaster's offer: {why}");
                self.close();
            }
            ConnReport::LocalCandidate(candidate) => {
                let to = current.broadcaster.clone();
                self.push(Output::SendCandidate { to, candidate });
            }
            ConnReport::IceConnected => self.push(Output::Mark("4a ICE connected")),
            ConnReport::Connected => {
                tracing::info!("connected to the broadcaster ({})", current.broadcaster);
                let measure = !std::mem::replace(&mut current.measuring, true);
                self.push(Output::Mark("4b connected (DTLS)"));
                // The new connection hears the view at once.
                self.pacer.reset();
                if measure {
                    self.push(Output::MeasureRtt(conn));
                }
                self.set(ViewState::Live);
            }
            ConnReport::Lost => {
                // Ask again: the broadcaster offers a fresh connection.
                self.close();
                self.set(ViewState::WaitingForBroadcaster);
                self.push(Output::Watch);
            }
        }
    }

    fn said(&mut self, message: BroadcasterMessage) {
        let event = match message {
            BroadcasterMessage::Welcome { control } => ViewEvent::Control(control),
            BroadcasterMessage::Projection(p) => {
                // Said on every connection; reported when it is news.
                if self.projection.replace(p) == Some(p) {
                    return;
                }
                ViewEvent::Projection(p)
            }
            BroadcasterMessage::Telemetry { t_ms, data } => ViewEvent::Telemetry { t_ms, data },
            BroadcasterMessage::Error { message } => ViewEvent::Refused(message),
        };
        self.push(Output::Event(event));
    }

    /// When [`ViewerMachine::handle_timeout`] next has something to do, if ever.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        self.pacer.next_at(now)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(view) = self.pacer.poll(now) {
            self.push(Output::SendView(view));
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Ends the attempt: the connection in use is closed.
    pub fn close_all(&mut self) {
        self.close();
    }

    /// What the broadcaster said its picture is, last.
    pub fn projection(&self) -> Option<Projection> {
        self.projection
    }

    /// The connection in use or being made.
    pub fn conn(&self) -> Option<ConnId> {
        self.current.as_ref().map(|c| c.conn)
    }

    fn is_current(&self, conn: ConnId) -> bool {
        self.conn() == Some(conn)
    }

    fn close(&mut self) {
        if let Some(c) = self.current.take() {
            self.push(Output::Close(c.conn));
        }
    }

    fn set(&mut self, state: ViewState) {
        if self.state != Some(state) {
            self.state = Some(state);
            self.push(Output::Event(ViewEvent::State(state)));
        }
    }

    fn push(&mut self, output: Output) {
        self.out.push_back(output);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    /// The machine at a fake time.
    struct Clock {
        m: ViewerMachine,
        t0: Instant,
        now: Instant,
    }

    impl Clock {
        fn new(trace: bool) -> Self {
            let t0 = Instant::now();
            let mut c = Self {
                m: ViewerMachine::new(trace),
                t0,
                now: t0,
            };
            c.drain();
            c
        }

        fn at_ms(&mut self, ms: u64) -> &mut Self {
            self.now = self.t0 + Duration::from_millis(ms);
            self
        }

        fn input(&mut self, input: Input) -> Vec<Output> {
            self.m.handle_input(self.now, input);
            self.drain()
        }

        fn timeout(&mut self) -> Vec<Output> {
            if self
                .m
                .poll_timeout(self.now)
                .is_some_and(|at| at <= self.now)
            {
                self.m.handle_timeout(self.now);
            }
            self.drain()
        }

        fn drain(&mut self) -> Vec<Output> {
            std::iter::from_fn(|| self.m.poll_output()).collect()
        }

        /// Signalling up, an offer from `from`, answered and connected: the connection.
        fn connect(&mut self, from: &str) -> ConnId {
            self.input(Input::SignalUp);
            self.offer(from)
        }

        fn offer(&mut self, from: &str) -> ConnId {
            let out = self.input(Input::Offer {
                from: from.into(),
                offer: json!({"sdp": from}),
            });
            let conn = out
                .iter()
                .find_map(|o| match o {
                    Output::Answer { conn, .. } => Some(*conn),
                    _ => None,
                })
                .expect("an answer is made");
            self.input(Input::Conn(conn, ConnReport::Answered(json!("answer"))));
            self.input(Input::Conn(conn, ConnReport::Connected));
            conn
        }
    }

    fn states(out: &[Output]) -> Vec<ViewState> {
        out.iter()
            .filter_map(|o| match o {
                Output::Event(ViewEvent::State(s)) => Some(*s),
                _ => None,
            })
            .collect()
    }

    fn events(out: &[Output]) -> Vec<ViewEvent> {
        out.iter()
            .filter_map(|o| match o {
                Output::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_viewer_asks_answers_passes_candidates_and_goes_live() {
        let mut c = Clock::new(false);
        let out = c.input(Input::SignalUp);
        assert_eq!(
            out,
            [
                Output::Mark("1 signalling"),
                Output::Event(ViewEvent::State(ViewState::WaitingForBroadcaster)),
                Output::Watch,
            ]
        );
        let out = c.input(Input::Offer {
            from: "b".into(),
            offer: json!("offer"),
        });
        assert_eq!(states(&out), [ViewState::Negotiating]);
        let conn = ConnId(1);
        assert!(out.contains(&Output::Answer {
            conn,
            offer: json!("offer")
        }));
        let out = c.input(Input::Conn(conn, ConnReport::Answered(json!("a"))));
        assert_eq!(
            out[0],
            Output::SendAnswer {
                to: "b".into(),
                answer: json!("a")
            }
        );
        // Candidates both ways; a stranger's are not ours.
        let out = c.input(Input::Candidate {
            from: "b".into(),
            candidate: json!(1),
        });
        assert_eq!(
            out,
            [Output::AddCandidate {
                conn,
                candidate: json!(1)
            }]
        );
        assert_eq!(
            c.input(Input::Candidate {
                from: "x".into(),
                candidate: json!(2)
            }),
            []
        );
        let out = c.input(Input::Conn(conn, ConnReport::LocalCandidate(json!(3))));
        assert_eq!(
            out,
            [Output::SendCandidate {
                to: "b".into(),
                candidate: json!(3)
            }]
        );
        let out = c.input(Input::Conn(conn, ConnReport::Connected));
        assert!(out.contains(&Output::MeasureRtt(conn)));
        assert_eq!(states(&out), [ViewState::Live]);
    }

    #[test]
    fn an_offer_while_connected_replaces_the_connection_and_the_old_one_is_ignored() {
        let mut c = Clock::new(false);
        let first = c.connect("b");
        let out = c.input(Input::Offer {
            from: "b".into(),
            offer: json!("again"),
        });
        assert_eq!(
            out[0],
            Output::Close(first),
            "the old connection closes first"
        );
        let second = c.m.conn().expect("a new connection");
        assert_ne!(first, second);
        // Whatever the old one still says changes nothing.
        assert_eq!(c.input(Input::Conn(first, ConnReport::Lost)), []);
        assert_eq!(
            c.input(Input::Conn(first, ConnReport::LocalCandidate(json!(1)))),
            []
        );
        assert_eq!(
            c.input(Input::Said(
                first,
                BroadcasterMessage::Welcome { control: true }
            )),
            []
        );
        assert_eq!(c.m.conn(), Some(second));
        let out = c.input(Input::Conn(second, ConnReport::Connected));
        assert_eq!(states(&out), [ViewState::Live]);
    }

    #[test]
    fn a_lost_connection_asks_for_a_new_offer() {
        let mut c = Clock::new(false);
        let conn = c.connect("b");
        let out = c.input(Input::Conn(conn, ConnReport::Lost));
        assert_eq!(
            out,
            [
                Output::Close(conn),
                Output::Event(ViewEvent::State(ViewState::WaitingForBroadcaster)),
                Output::Watch,
            ]
        );
        // An offer that cannot be answered closes its connection and waits.
        let out = c.input(Input::Offer {
            from: "b".into(),
            offer: json!("bad"),
        });
        let conn = c.m.conn().unwrap();
        assert!(out.contains(&Output::Answer {
            conn,
            offer: json!("bad")
        }));
        assert_eq!(
            c.input(Input::Conn(conn, ConnReport::Failed("bogus".into()))),
            [Output::Close(conn)]
        );
        assert_eq!(c.m.conn(), None);
    }

    #[test]
    fn the_broadcaster_leaving_closes_and_its_return_asks_again() {
        let mut c = Clock::new(false);
        let conn = c.connect("b");
        // Another peer leaving is not our broadcaster leaving.
        assert_eq!(c.input(Input::PeerLeft("someone".into())), []);
        let out = c.input(Input::PeerLeft("b".into()));
        assert_eq!(
            out,
            [
                Output::Close(conn),
                Output::Event(ViewEvent::State(ViewState::BroadcasterLeft))
            ]
        );
        // Said twice (bye, then the room's broadcasterLeft): one state change.
        assert_eq!(c.input(Input::BroadcasterLeft), []);
        assert_eq!(c.input(Input::BroadcasterArrived), [Output::Watch]);
        let again = c.offer("b2");
        assert_ne!(again, conn);
        assert_eq!(c.input(Input::NoBroadcaster).len(), 1);
    }

    #[test]
    fn what_the_broadcaster_says_is_reported_in_order_and_the_projection_when_it_changes() {
        let mut c = Clock::new(false);
        let conn = c.connect("b");
        let said = |m| Input::Said(conn, m);
        let mut out = c.input(said(BroadcasterMessage::Projection(Projection::Equirect)));
        out.extend(c.input(said(BroadcasterMessage::Welcome { control: true })));
        out.extend(c.input(said(BroadcasterMessage::Telemetry {
            t_ms: 1.0,
            data: json!({"v": 1}),
        })));
        out.extend(c.input(said(BroadcasterMessage::Projection(Projection::Equirect))));
        out.extend(c.input(said(BroadcasterMessage::Error {
            message: "no".into(),
        })));
        out.extend(c.input(said(BroadcasterMessage::Projection(Projection::Flat))));
        assert_eq!(
            events(&out),
            [
                ViewEvent::Projection(Projection::Equirect),
                ViewEvent::Control(true),
                ViewEvent::Telemetry {
                    t_ms: 1.0,
                    data: json!({"v": 1})
                },
                ViewEvent::Refused("no".into()),
                ViewEvent::Projection(Projection::Flat),
            ]
        );
        assert_eq!(c.m.projection(), Some(Projection::Flat));
        // A new connection saying the same picture again is no news; a welcome is.
        let next = c.offer("b");
        let mut out = c.input(Input::Said(
            next,
            BroadcasterMessage::Projection(Projection::Flat),
        ));
        out.extend(c.input(Input::Said(
            next,
            BroadcasterMessage::Welcome { control: false },
        )));
        assert_eq!(events(&out), [ViewEvent::Control(false)]);
    }

    #[test]
    fn views_go_out_paced_and_a_new_connection_hears_the_view_at_once() {
        let mut c = Clock::new(false);
        let conn = c.connect("b");
        let view = |yaw| Viewport::new(yaw, 0.0, 0.0, Some(90.0));
        assert_eq!(
            c.input(Input::Look(view(10.0))),
            [Output::SendView(view(10.0))]
        );
        // Within 33 ms the latest waits for its turn.
        assert_eq!(c.at_ms(10).input(Input::Look(view(20.0))), []);
        assert_eq!(c.at_ms(20).timeout(), []);
        assert_eq!(c.at_ms(33).timeout(), [Output::SendView(view(20.0))]);
        // Standing still: once a second.
        assert_eq!(c.at_ms(500).timeout(), []);
        assert_eq!(c.at_ms(1033).timeout(), [Output::SendView(view(20.0))]);
        // Reconnected: at once, not a second later.
        c.at_ms(1100).input(Input::Conn(conn, ConnReport::Lost));
        c.input(Input::Offer {
            from: "b".into(),
            offer: json!("again"),
        });
        let next = c.m.conn().unwrap();
        let out = c
            .at_ms(1101)
            .input(Input::Conn(next, ConnReport::Connected));
        assert!(out.contains(&Output::SendView(view(20.0))), "{out:?}");
        // A flat view sends nothing more.
        c.input(Input::StopLooking);
        assert_eq!(c.m.poll_timeout(c.now), None);
        assert_eq!(c.at_ms(5000).timeout(), []);
    }

    #[test]
    fn a_trace_starts_at_the_first_frame_once() {
        let mut c = Clock::new(true);
        c.connect("b");
        assert_eq!(c.input(Input::FirstFrame), [Output::StartTrace]);
        assert_eq!(c.input(Input::FirstFrame), []);
        // Without a trace there is nothing to start.
        let mut c = Clock::new(false);
        assert_eq!(c.input(Input::FirstFrame), []);
    }

    #[test]
    fn a_new_viewer_says_it_is_connecting_and_closing_ends_the_connection() {
        let mut m = ViewerMachine::new(false);
        assert_eq!(
            m.poll_output(),
            Some(Output::Event(ViewEvent::State(ViewState::Connecting)))
        );
        let mut c = Clock::new(false);
        let conn = c.connect("b");
        c.m.close_all();
        assert_eq!(c.drain(), [Output::Close(conn)]);
        c.m.close_all();
        assert_eq!(c.drain(), []);
    }
}
