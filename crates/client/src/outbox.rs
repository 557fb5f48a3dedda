//! The send window: what a client has to send, what is in flight, and what its answers do.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

/// After `unavailable`, before sending again.
pub const UNAVAILABLE_PAUSE: Duration = Duration::from_millis(500);
/// `rate_limited` without a `retry_after_ms` (a server that does not say) waits this long.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The slowest pace a backlog is sent at after refusals.
const MAX_GAP: Duration = Duration::from_secs(1);

/// What an answer from the server did to the outbox.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The frame numbered `seq` is durable: its `ack`.
    Acked { seq: u64, ack: Value },
    /// Refused for now (`unavailable`, `rate_limited`): it goes again after a pause, with
    /// the same client id.
    Retry { seq: u64, code: String },
    /// Refused for good (`forbidden`, `not_found`, `validation_failed`, …): not sent again.
    Refused {
        seq: u64,
        code: String,
        error: Value,
    },
}

/// One frame to send, with its client id.
#[derive(Debug, Clone)]
struct Item {
    client_id: String,
    frame: String,
}

/// See the module docs. Frames are numbered by the caller (`seq`, any increasing numbers);
/// they go out in that order, retries first, and an ack names its frame by client id.
#[derive(Debug)]
pub struct Outbox {
    window: usize,
    /// Not sent on the current connection: new ones, refused ones, and those a lost
    /// connection left unanswered; sent in `seq` order.
    queue: BTreeMap<u64, Item>,
    /// Sent and unanswered, with when each was sent.
    in_flight: Vec<(u64, Instant, Item)>,
    /// Nothing is sent before this (after a refusal).
    pause_until: Instant,
    /// Time between two sends while catching up after a `rate_limited`: each refusal says how
    /// much too early its send was (`retry_after_ms`), and the gap grows by that, so a
    /// backlog meets the limit a few times rather than once per send. Zero once nothing is
    /// waiting.
    gap: Duration,
    next_send: Instant,
    /// When the gap last grew: refusals of sends from before then are already counted in it.
    gap_grown: Instant,
}

impl Outbox {
    pub fn new(window: usize, now: Instant) -> Self {
        Self {
            window: window.max(1),
            queue: BTreeMap::new(),
            in_flight: Vec::new(),
            pause_until: now,
            gap: Duration::ZERO,
            next_send: now,
            gap_grown: now,
        }
    }

    /// Adds a frame to send; `client_id` is the one inside `frame`.
    pub fn push(&mut self, seq: u64, client_id: impl Into<String>, frame: impl Into<String>) {
        self.queue.insert(
            seq,
            Item {
                client_id: client_id.into(),
                frame: frame.into(),
            },
        );
    }

    /// The next frame to send now, if the window, a pause and the pace allow; it counts as
    /// in flight from here.
    pub fn next_to_send(&mut self, now: Instant) -> Option<(u64, String)> {
        if self.in_flight.len() >= self.window || now < self.pause_until.max(self.next_send) {
            return None;
        }
        let (seq, item) = self.queue.pop_first()?;
        let frame = item.frame.clone();
        self.in_flight.push((seq, now, item));
        self.next_send = now + self.gap;
        Some((seq, frame))
    }

    /// Puts a frame that could not be written back at the front.
    pub fn unsent(&mut self, seq: u64) {
        if let Some(i) = self.in_flight.iter().position(|(s, ..)| *s == seq) {
            let (_, _, item) = self.in_flight.remove(i);
            self.queue.insert(seq, item);
        }
    }

    /// What a frame from the server does: `None` when it answers nothing in flight (another
    /// kind of frame, or an answer to something sent on an earlier connection).
    pub fn answer(&mut self, frame: &Value, now: Instant) -> Option<Answer> {
        let kind = frame["type"].as_str()?;
        if kind != "ack" && kind != "error" {
            return None;
        }
        let client_id = frame["client_id"].as_str()?;
        let i = self
            .in_flight
            .iter()
            .position(|(_, _, item)| item.client_id == client_id)?;
        let (seq, sent_at, item) = self.in_flight.remove(i);
        if kind == "ack" {
            if self.queue.is_empty() && self.in_flight.is_empty() {
                self.gap = Duration::ZERO;
            }
            return Some(Answer::Acked {
                seq,
                ack: frame.clone(),
            });
        }
        let code = frame["code"].as_str().unwrap_or("?").to_owned();
        let pause = match code.as_str() {
            "unavailable" => UNAVAILABLE_PAUSE,
            "rate_limited" => {
                let wait = frame["retry_after_ms"]
                    .as_u64()
                    .map_or(DEFAULT_RETRY_AFTER, Duration::from_millis);
                if sent_at >= self.gap_grown {
                    self.gap = (self.gap + wait).min(MAX_GAP);
                    self.gap_grown = now;
                }
                wait
            }
            _ => {
                return Some(Answer::Refused {
                    seq,
                    code,
                    error: frame.clone(),
                })
            }
        };
        self.queue.insert(seq, item);
        self.pause_until = self.pause_until.max(now + pause);
        Some(Answer::Retry { seq, code })
    }

    /// The connection is gone: everything unanswered goes again, first, in order.
    pub fn disconnected(&mut self) {
        for (seq, _, item) in self.in_flight.drain(..) {
            self.queue.insert(seq, item);
        }
    }

    /// Nothing to send and nothing in flight.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.in_flight.is_empty()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// When something waiting may be sent, if a pause or the pace holds it back now.
    pub fn blocked_until(&self, now: Instant) -> Option<Instant> {
        let until = self.pause_until.max(self.next_send);
        (until > now && !self.queue.is_empty()).then_some(until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ack(cid: &str) -> Value {
        json!({"type":"ack","client_id":cid,"id":"m","cursor":"c"})
    }

    fn error(cid: &str, code: &str) -> Value {
        json!({"type":"error","client_id":cid,"code":code,"retry_after_ms":200})
    }

    fn outbox(window: usize, n: u64, now: Instant) -> Outbox {
        let mut o = Outbox::new(window, now);
        for seq in 0..n {
            o.push(seq, format!("c{seq}"), format!("f{seq}"));
        }
        o
    }

    fn drain(o: &mut Outbox, now: Instant) -> Vec<u64> {
        std::iter::from_fn(|| o.next_to_send(now).map(|(s, _)| s)).collect()
    }

    #[test]
    fn a_window_of_frames_goes_out_in_order_and_acks_settle_them() {
        let now = Instant::now();
        let mut o = outbox(2, 4, now);
        assert_eq!(drain(&mut o, now), [0, 1], "two at most in flight");
        assert_eq!(
            o.answer(&ack("c1"), now),
            Some(Answer::Acked {
                seq: 1,
                ack: ack("c1")
            })
        );
        assert_eq!(drain(&mut o, now), [2]);
        assert_eq!(
            o.answer(&json!({"type":"message","client_id":"c0"}), now),
            None
        );
        assert_eq!(o.answer(&ack("nobody"), now), None);
        assert!(matches!(
            o.answer(&ack("c0"), now),
            Some(Answer::Acked { seq: 0, .. })
        ));
        assert!(matches!(
            o.answer(&ack("c2"), now),
            Some(Answer::Acked { seq: 2, .. })
        ));
        assert_eq!(drain(&mut o, now), [3]);
        o.answer(&ack("c3"), now);
        assert!(o.is_empty());
    }

    #[test]
    fn unavailable_goes_again_with_the_same_client_id_after_a_pause_and_first() {
        let now = Instant::now();
        let mut o = outbox(4, 3, now);
        assert_eq!(drain(&mut o, now), [0, 1, 2]);
        assert_eq!(
            o.answer(&error("c1", "unavailable"), now),
            Some(Answer::Retry {
                seq: 1,
                code: "unavailable".into()
            })
        );
        o.push(3, "c3", "f3");
        assert_eq!(o.next_to_send(now), None, "paused");
        assert_eq!(o.blocked_until(now), Some(now + UNAVAILABLE_PAUSE));
        let later = now + UNAVAILABLE_PAUSE;
        assert_eq!(
            o.next_to_send(later),
            Some((1, "f1".into())),
            "the retry first"
        );
        assert_eq!(o.next_to_send(later), Some((3, "f3".into())));
    }

    #[test]
    fn rate_limited_waits_as_told_and_slows_the_backlog_down() {
        let now = Instant::now();
        let mut o = outbox(8, 4, now);
        drain(&mut o, now);
        let refused_at = now + Duration::from_millis(1);
        o.answer(&error("c0", "rate_limited"), refused_at);
        // A second refusal of a send from before the first adds nothing to the pace.
        o.answer(&error("c1", "rate_limited"), refused_at);
        let t = refused_at + Duration::from_millis(200);
        assert_eq!(o.next_to_send(t).map(|(s, _)| s), Some(0));
        assert_eq!(o.next_to_send(t), None, "paced by the wait it was told");
        let t = t + Duration::from_millis(200);
        assert_eq!(o.next_to_send(t).map(|(s, _)| s), Some(1));
    }

    #[test]
    fn a_refusal_for_good_is_not_sent_again() {
        let now = Instant::now();
        let mut o = outbox(8, 1, now);
        drain(&mut o, now);
        let refused = o.answer(&error("c0", "not_found"), now);
        assert!(
            matches!(refused, Some(Answer::Refused { seq: 0, ref code, .. }) if code == "not_found")
        );
        assert!(o.is_empty());
    }

    #[test]
    fn a_lost_connection_puts_everything_unanswered_back_in_order() {
        let now = Instant::now();
        let mut o = outbox(3, 5, now);
        assert_eq!(drain(&mut o, now), [0, 1, 2]);
        o.answer(&ack("c1"), now);
        o.disconnected();
        assert_eq!((o.in_flight(), o.waiting()), (0, 4));
        assert_eq!(drain(&mut o, now), [0, 2, 3]);
        // A frame the socket did not take goes back to the front.
        o.unsent(3);
        o.answer(&ack("c0"), now);
        assert_eq!(drain(&mut o, now), [3, 4]);
    }
}
