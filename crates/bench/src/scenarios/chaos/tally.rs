//! What a chaos run comes to: the clients' records held against the rows PostgreSQL keeps,
//! per phase of the run (the phase an event was written in, an error or a disconnect
//! happened in). Pure, so that its verdicts are tested on records made up to be wrong.
//!
//! It counts room events: messages, and the edits, reactions and deletes senders make of
//! their own messages. An event is known by its cursor, which its ack names, its frame
//! carries to every reader, and its row keeps.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

/// An event a sender wrote: a message, or a change of one of its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub phase: usize,
    pub room: usize,
    /// The cursor its ack named, once acked.
    pub acked: Option<String>,
}

/// One sender's record. Its events are numbered 0, 1, … (`messages[seq]`).
#[derive(Debug, Default)]
pub struct SenderLog {
    pub messages: Vec<Written>,
    /// Sequence numbers in the order their acks came.
    pub ack_order: Vec<u64>,
    /// (phase, code) of each error: error frames, refused connections.
    pub errors: Vec<(usize, String)>,
    /// (phase it began in, length) of each time the sender was without a connection.
    pub gaps: Vec<(usize, Duration)>,
}

/// One reader's record: per room, the cursors of the events it got, in the order it got them.
#[derive(Debug, Default)]
pub struct ReaderLog {
    pub rooms: Vec<Vec<String>>,
    pub errors: Vec<(usize, String)>,
    /// (phase it began in, time from losing the connection to every room joined again).
    pub gaps: Vec<(usize, Duration)>,
}

/// A row of `messages` or `room_events`, per room in log order.
#[derive(Debug, Clone)]
pub struct StoredRow {
    /// The event's cursor.
    pub id: String,
    pub client_id: Option<String>,
    /// Its message was deleted since (and it is not the delete): a resume after it skips it,
    /// so a reader that was away then need not have got it.
    pub gone: bool,
}

/// The client id of a sender's message: the run, the sender and its sequence number.
pub fn client_id(run: &str, sender: usize, seq: u64) -> String {
    format!("{run}-s{sender}-{seq}")
}

/// (sender, seq) of one of this run's client ids.
pub fn parse_client_id(run: &str, client_id: &str) -> Option<(usize, u64)> {
    let rest = client_id.strip_prefix(run)?.strip_prefix("-s")?;
    let (sender, seq) = rest.split_once('-')?;
    Some((sender.parse().ok()?, seq.parse().ok()?))
}

/// Everything a run recorded.
#[derive(Debug)]
pub struct Input<'a> {
    pub run: &'a str,
    pub phases: &'a [String],
    pub senders: &'a [SenderLog],
    pub readers: &'a [ReaderLog],
    /// (phase, code) of failed logins.
    pub logins: &'a [(usize, String)],
    /// Per room, its rows in log order.
    pub stored: &'a [Vec<StoredRow>],
}

/// The figures of one phase (or of the whole run).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Line {
    pub phase: String,
    pub sent: u64,
    pub acked: u64,
    pub persisted: u64,
    /// Acked and not stored (or stored at another cursor than the ack said), and stored but
    /// not delivered to a reader (once per reader).
    pub lost: u64,
    /// Stored more than once, and delivered to a reader more than once.
    pub duplicated: u64,
    /// A sender's events stored in another order than they were acked in, and events a
    /// reader got in another order than the log's.
    pub out_of_order: u64,
    pub longest_gap: Duration,
    pub errors: BTreeMap<String, u64>,
}

impl Line {
    fn add(&mut self, other: &Line) {
        self.sent += other.sent;
        self.acked += other.acked;
        self.persisted += other.persisted;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.longest_gap = self.longest_gap.max(other.longest_gap);
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += n;
        }
    }
}

/// The verdict of a run.
#[derive(Debug)]
pub struct Tally {
    pub lines: Vec<Line>,
    pub total: Line,
    /// What went wrong, message by message (the first few of each kind).
    pub findings: Vec<String>,
}

impl Tally {
    /// Nothing lost, doubled, reordered or left unanswered, and no finding.
    pub fn clean(&self) -> bool {
        let t = &self.total;
        t.lost == 0
            && t.duplicated == 0
            && t.out_of_order == 0
            && t.acked == t.sent
            && t.persisted == t.acked
            && self.findings.is_empty()
    }

    /// The table, in markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| phase | sent | acked | persisted | lost | duplicated | out of order | \
             longest resume gap | errors by code |\n\
             |---|--:|--:|--:|--:|--:|--:|--:|---|\n",
        );
        let row = |out: &mut String, l: &Line, bold: bool| {
            let b = if bold { "**" } else { "" };
            let gap = match l.longest_gap {
                g if g.is_zero() => "–".to_owned(),
                g if g < Duration::from_secs(1) => format!("{} ms", g.as_millis()),
                g => format!("{:.1} s", g.as_secs_f64()),
            };
            let errors = if l.errors.is_empty() {
                "–".to_owned()
            } else {
                l.errors
                    .iter()
                    .map(|(code, n)| format!("{code} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                out,
                "| {b}{}{b} | {b}{}{b} | {b}{}{b} | {b}{}{b} | {b}{}{b} | {b}{}{b} | {b}{}{b} | {b}{gap}{b} | {errors} |",
                l.phase, l.sent, l.acked, l.persisted, l.lost, l.duplicated, l.out_of_order
            );
        };
        for l in &self.lines {
            row(&mut out, l, false);
        }
        row(&mut out, &self.total, true);
        out
    }
}

/// At most this many findings of one kind are kept, with a count of the rest.
const FINDINGS_PER_KIND: usize = 5;

#[derive(Default)]
struct Findings(BTreeMap<&'static str, (Vec<String>, usize)>);

impl Findings {
    fn add(&mut self, kind: &'static str, what: String) {
        let (kept, n) = self.0.entry(kind).or_default();
        *n += 1;
        if kept.len() < FINDINGS_PER_KIND {
            kept.push(what);
        }
    }

    fn into_list(self) -> Vec<String> {
        let mut list = Vec::new();
        for (kind, (kept, n)) in self.0 {
            list.push(format!("{kind}: {n}"));
            list.extend(kept.into_iter().map(|w| format!("  {w}")));
        }
        list
    }
}

pub fn tally(input: &Input<'_>) -> Tally {
    let mut lines: Vec<Line> = input
        .phases
        .iter()
        .map(|p| Line {
            phase: p.clone(),
            ..Line::default()
        })
        .collect();
    let last = lines.len().saturating_sub(1);
    // Anything after the last phase (the drain) belongs to it.
    let at = |phase: usize| phase.min(last);
    let mut findings = Findings::default();

    // What the senders wrote and were acked.
    for sender in input.senders {
        for m in &sender.messages {
            let p = at(m.phase);
            lines[p].sent += 1;
            if m.acked.is_some() {
                lines[p].acked += 1;
            }
        }
    }
    let ack_rank: Vec<HashMap<u64, usize>> = input
        .senders
        .iter()
        .map(|s| {
            s.ack_order
                .iter()
                .enumerate()
                .map(|(r, &seq)| (seq, r))
                .collect()
        })
        .collect();
    let written = |sender: usize, seq: u64| -> Option<&Written> {
        input
            .senders
            .get(sender)?
            .messages
            .get(usize::try_from(seq).ok()?)
    };

    // What PostgreSQL holds, against what was acked.
    let mut stored_once: HashSet<(usize, u64)> = HashSet::new();
    // Per room, cursor → (place in the log, the event's phase, gone).
    let mut log_place: Vec<HashMap<&str, (usize, usize, bool)>> = Vec::new();
    for (room, rows) in input.stored.iter().enumerate() {
        let mut places = HashMap::new();
        // Per sender, the highest ack rank stored so far in this room.
        let mut highest: HashMap<usize, usize> = HashMap::new();
        for (place, row) in rows.iter().enumerate() {
            let key = row
                .client_id
                .as_deref()
                .and_then(|c| parse_client_id(input.run, c));
            let Some((sender, seq)) = key else {
                findings.add("rows nobody sent", format!("room {room}: {}", row.id));
                continue;
            };
            let Some(m) = written(sender, seq) else {
                findings.add("rows nobody sent", format!("room {room}: {}", row.id));
                continue;
            };
            let p = at(m.phase);
            places.insert(row.id.as_str(), (place, p, row.gone));
            if !stored_once.insert((sender, seq)) {
                lines[p].duplicated += 1;
                findings.add(
                    "stored twice",
                    format!("s{sender} {seq} again as {}", row.id),
                );
                continue;
            }
            lines[p].persisted += 1;
            if m.room != room {
                findings.add("stored in another room", format!("s{sender} {seq}"));
            }
            if let Some(acked) = &m.acked {
                if *acked != row.id {
                    lines[p].lost += 1;
                    findings.add(
                        "stored at another cursor than acked",
                        format!("s{sender} {seq}: acked {acked}, stored {}", row.id),
                    );
                }
            }
            if let Some(&rank) = ack_rank[sender].get(&seq) {
                let top = highest.entry(sender).or_insert(rank);
                if rank < *top {
                    lines[p].out_of_order += 1;
                    findings.add(
                        "stored out of ack order",
                        format!("s{sender} {seq} in room {room}"),
                    );
                }
                *top = (*top).max(rank);
            }
        }
        log_place.push(places);
    }
    for (sender, s) in input.senders.iter().enumerate() {
        for (seq, m) in s.messages.iter().enumerate() {
            if m.acked.is_some() && !stored_once.contains(&(sender, seq as u64)) {
                let p = at(m.phase);
                lines[p].lost += 1;
                findings.add("acked, not stored", format!("s{sender} {seq}"));
            }
        }
    }

    // What each reader got, against the log.
    for (r, reader) in input.readers.iter().enumerate() {
        for (room, places) in log_place.iter().enumerate() {
            let got = reader
                .rooms
                .get(room)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let mut seen = HashSet::new();
            let mut highest = None;
            for id in got {
                let Some(&(place, p, _)) = places.get(id.as_str()) else {
                    findings.add(
                        "delivered, not stored",
                        format!("reader {r}, room {room}: {id}"),
                    );
                    continue;
                };
                if !seen.insert(id.as_str()) {
                    lines[p].duplicated += 1;
                    findings.add("delivered twice", format!("reader {r}, room {room}: {id}"));
                    continue;
                }
                if highest.is_some_and(|h| place < h) {
                    lines[p].out_of_order += 1;
                    findings.add(
                        "delivered out of order",
                        format!("reader {r}, room {room}: {id}"),
                    );
                }
                highest = highest.max(Some(place));
            }
            for (id, &(_, p, gone)) in places {
                if !gone && !seen.contains(id) {
                    lines[p].lost += 1;
                    findings.add(
                        "stored, not delivered",
                        format!("reader {r}, room {room}: {id}"),
                    );
                }
            }
        }
    }

    // Errors and time without a connection, by the phase they happened in.
    let errors = input
        .senders
        .iter()
        .flat_map(|s| &s.errors)
        .chain(input.readers.iter().flat_map(|r| &r.errors))
        .chain(input.logins);
    for (phase, code) in errors {
        let p = at(*phase);
        *lines[p].errors.entry(code.clone()).or_default() += 1;
    }
    let gaps = input
        .senders
        .iter()
        .flat_map(|s| &s.gaps)
        .chain(input.readers.iter().flat_map(|r| &r.gaps));
    for (phase, gap) in gaps {
        let p = at(*phase);
        lines[p].longest_gap = lines[p].longest_gap.max(*gap);
    }

    let mut total = Line {
        phase: "all".into(),
        ..Line::default()
    };
    for l in &lines {
        total.add(l);
    }
    let unacked = total.sent - total.acked;
    if unacked > 0 {
        findings.add("never acked", format!("{unacked} events"));
    }
    Tally {
        lines,
        total,
        findings: findings.into_list(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "chaos-t";

    /// Two phases; one sender writing 4 messages into 2 rooms (even seqs in room 0), all
    /// acked in order; one reader that got everything.
    fn clean() -> (Vec<SenderLog>, Vec<ReaderLog>, Vec<Vec<StoredRow>>) {
        let mut sender = SenderLog::default();
        let mut stored = vec![Vec::new(), Vec::new()];
        for seq in 0..4u64 {
            let id = format!("id{seq}");
            sender.messages.push(Written {
                phase: usize::from(seq >= 2),
                room: (seq % 2) as usize,
                acked: Some(id.clone()),
            });
            sender.ack_order.push(seq);
            stored[(seq % 2) as usize].push(StoredRow {
                id,
                client_id: Some(client_id(RUN, 0, seq)),
                gone: false,
            });
        }
        let reader = ReaderLog {
            rooms: stored
                .iter()
                .map(|rows| rows.iter().map(|r| r.id.clone()).collect())
                .collect(),
            ..ReaderLog::default()
        };
        (vec![sender], vec![reader], stored)
    }

    fn run(senders: &[SenderLog], readers: &[ReaderLog], stored: &[Vec<StoredRow>]) -> Tally {
        let phases = ["steady".to_owned(), "kill".to_owned()];
        tally(&Input {
            run: RUN,
            phases: &phases,
            senders,
            readers,
            logins: &[(1, "login: refused".into())],
            stored,
        })
    }

    #[test]
    fn client_ids_round_trip_and_foreign_ones_do_not_parse() {
        assert_eq!(parse_client_id(RUN, &client_id(RUN, 3, 17)), Some((3, 17)));
        assert_eq!(parse_client_id(RUN, "chaos-other-s3-17"), None);
        assert_eq!(parse_client_id(RUN, "chaos-t-s3"), None);
    }

    #[test]
    fn a_clean_run_is_clean_and_counted_per_phase() {
        let (s, r, stored) = clean();
        let t = run(&s, &r, &stored);
        assert!(t.clean(), "{:?}", t.findings);
        assert_eq!((t.lines[0].sent, t.lines[1].sent), (2, 2));
        assert_eq!((t.total.acked, t.total.persisted), (4, 4));
        assert_eq!(t.lines[1].errors.get("login: refused"), Some(&1));
        assert!(t
            .markdown()
            .contains("| **all** | **4** | **4** | **4** | **0** |"));
    }

    #[test]
    fn an_acked_message_missing_from_the_database_is_lost() {
        let (s, r, mut stored) = clean();
        stored[1].pop(); // seq 3
        let t = run(&s, &r, &stored);
        assert!(!t.clean());
        assert_eq!(t.lines[1].lost, 1);
        assert!(
            t.findings.iter().any(|f| f.contains("s0 3")),
            "{:?}",
            t.findings
        );
    }

    #[test]
    fn a_row_stored_twice_is_duplicated() {
        let (s, r, mut stored) = clean();
        let again = StoredRow {
            id: "other".into(),
            ..stored[0][0].clone()
        };
        stored[0].push(again);
        let t = run(&s, &r, &stored);
        assert_eq!(t.total.duplicated, 1);
        assert!(!t.clean());
    }

    #[test]
    fn stored_under_another_id_than_the_ack_said_is_lost() {
        let (s, r, mut stored) = clean();
        stored[0][1].id = "elsewhere".into();
        let t = run(&s, &r, &stored);
        assert!(t.total.lost >= 1);
        assert!(!t.clean());
    }

    #[test]
    fn log_order_against_ack_order() {
        let (mut s, r, stored) = clean();
        // Acks of 0 and 2 (both room 0) came the other way round.
        s[0].ack_order = vec![2, 1, 0, 3];
        let t = run(&s, &r, &stored);
        assert_eq!(t.total.out_of_order, 1);
        assert!(!t.clean());
    }

    #[test]
    fn a_reader_missing_doubling_or_reordering_messages_is_caught() {
        let (s, mut r, stored) = clean();
        r[0].rooms[0].reverse(); // out of order
        r[0].rooms[1].push("id1".into()); // twice
        r[0].rooms[1].retain(|id| id != "id3"); // missing
        let t = run(&s, &r, &stored);
        assert_eq!(
            (t.total.out_of_order, t.total.duplicated, t.total.lost),
            (1, 1, 1)
        );
    }

    #[test]
    fn an_event_of_a_deleted_message_may_be_missed_by_a_reader_that_resumed() {
        let (s, mut r, mut stored) = clean();
        stored[1][1].gone = true; // seq 3's message was deleted since
        r[0].rooms[1].retain(|id| id != "id3");
        let t = run(&s, &r, &stored);
        assert!(t.clean(), "{:?}", t.findings);
        // Not delivered twice or out of order for all that.
        r[0].rooms[1].push("id1".into());
        assert_eq!(run(&s, &r, &stored).total.duplicated, 1);
    }

    #[test]
    fn a_message_never_acked_is_not_clean() {
        let (mut s, r, stored) = clean();
        s[0].messages.push(Written {
            phase: 1,
            room: 0,
            acked: None,
        });
        let t = run(&s, &r, &stored);
        assert_eq!(t.total.sent, 5);
        assert!(!t.clean());
    }
}
