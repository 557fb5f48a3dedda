//! What the receivers saw: each delivery checked against what was sent, and timed.
//!
//! A message body starts `<sender>:<seq>:<sent at, µs since the run began>:`; one sender per
//! room sends seq 0, 1, 2, … . A receiver keeps, per sender, which sequence numbers it got (a
//! bitset), so a second copy is a duplicate, one below the highest seen is out of order, and
//! at the end what was acked but never got is lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use hdrhistogram::Histogram;

/// The clock every timestamp is on: microseconds since the run began.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Self {
        Self(Instant::now())
    }

    pub fn micros(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// A body of `len` bytes (at least the header) that says who sent it, which, and when.
pub fn body(sender: usize, seq: u64, sent_us: u64, len: usize) -> String {
    let mut b = format!("{sender}:{seq}:{sent_us}:");
    while b.len() < len {
        b.push('x');
    }
    b
}

/// Reads back what [`body`] wrote.
pub fn parse_body(body: &str) -> Option<(usize, u64, u64)> {
    let mut parts = body.splitn(4, ':');
    let sender = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let sent = parts.next()?.parse().ok()?;
    Some((sender, seq, sent))
}

/// One receiver's view of one sender.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    bits: Vec<u64>,
    highest: Option<u64>,
    pub unique: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
}

impl Seen {
    pub fn record(&mut self, seq: u64) {
        let word = usize::try_from(seq / 64).unwrap_or(usize::MAX);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        let bit = 1u64 << (seq % 64);
        if self.bits[word] & bit != 0 {
            self.duplicated += 1;
            return;
        }
        self.bits[word] |= bit;
        self.unique += 1;
        match self.highest {
            Some(h) if seq < h => self.out_of_order += 1,
            _ => self.highest = Some(seq),
        }
    }

    /// How many of `0..upto` were never received.
    pub fn missing_below(&self, upto: u64) -> u64 {
        (0..upto)
            .filter(|seq| {
                let word = usize::try_from(seq / 64).unwrap_or(usize::MAX);
                self.bits
                    .get(word)
                    .is_none_or(|w| w & (1 << (seq % 64)) == 0)
            })
            .count() as u64
    }
}

/// Totals over every receiver, and the latency histogram of the measured window.
#[derive(Debug)]
pub struct Totals {
    pub delivered: AtomicU64,
    pub delivered_in_window: AtomicU64,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub errors: AtomicU64,
    pub drops: AtomicU64,
    pub reconnects: AtomicU64,
    latency: Mutex<Histogram<u64>>,
}

impl Default for Totals {
    fn default() -> Self {
        Self {
            delivered: AtomicU64::new(0),
            delivered_in_window: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            latency: Mutex::new(new_histogram()),
        }
    }
}

/// Microseconds from 1 µs to 10 minutes, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant, valid bounds")
}

impl Totals {
    pub fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Merges a receiver's latencies (recorded locally to keep the hot path lock-free).
    pub fn merge_latency(&self, local: &Histogram<u64>) {
        let mut h = self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = h.add(local);
    }

    pub fn latency(&self) -> Histogram<u64> {
        self.latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_says_who_which_and_when_at_the_asked_length() {
        let b = body(7, 42, 123_456, 200);
        assert_eq!(b.len(), 200);
        assert_eq!(parse_body(&b), Some((7, 42, 123_456)));
        assert_eq!(parse_body("hello"), None);
    }

    #[test]
    fn duplicates_disorder_and_gaps_are_told_apart() {
        let mut s = Seen::default();
        for seq in [0, 1, 3, 2, 3, 5] {
            s.record(seq);
        }
        assert_eq!(s.unique, 5);
        assert_eq!(s.duplicated, 1);
        assert_eq!(s.out_of_order, 1, "2 came after 3");
        assert_eq!(s.missing_below(6), 1, "4 never came");
        assert_eq!(s.missing_below(200), 195);
    }
}
