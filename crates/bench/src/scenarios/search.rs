//! Search speed (issue 18): a store of `--messages` messages over `--rooms` rooms, written
//! through the store's own projection (`serve`'s log on SQLite, the external log's on
//! PostgreSQL, as persist writes it), and queries by a user who is a member of `--member-of`
//! of the rooms, timed at the store ([`Store::search`]: the statement and the rows it
//! returns, without HTTP).
//!
//! The text is made up but shaped like chat: words of a vocabulary of 20,000 drawn with a
//! Zipf distribution (a few words are everywhere, most are rare), 4 to 20 to a message. The
//! queries are what someone looks for in their own rooms:
//! - one word: a word of a message the user can read, but none of the 100 commonest (nobody
//!   searches for "the");
//! - three words: three words of one such message (the commonest 20 left out), so each
//!   finds at least that message;
//! - the commonest word, alone: the worst case, reported apart.
//!
//! Everything is drawn from a fixed seed, so a run on the same store asks the same queries;
//! a store already loaded (its searcher exists) is reused as it is.

use std::time::{Duration, Instant};

use anyhow::Context;
use banter_core::search::SearchQuery;
use banter_core::{
    Cursor, NewMessage, NewRoomChange, RoomChange, RoomEvent, RoomKind, RoomName, Topic, User,
    UserRef, Username,
};
use banter_store::{DynStore, Search, SearchScope};
use hdrhistogram::Histogram;
use rand::distributions::{Distribution, WeightedIndex};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cli::SearchArgs;

const VOCABULARY: usize = 20_000;
const ZIPF_S: f64 = 1.0;
const SEED: u64 = 18;
const SEARCHER: &str = "bench-searcher";
/// Events per projection transaction while loading.
const BATCH: usize = 5_000;
/// Partitions of the made-up external log (PostgreSQL).
const PARTITIONS: u32 = 16;

/// The made-up language.
struct Words {
    words: Vec<String>,
    zipf: WeightedIndex<f64>,
}

impl Words {
    fn new() -> Self {
        const SYLLABLES: [&str; 40] = [
            "ka", "to", "ri", "mo", "la", "ne", "su", "vi", "do", "pe", "ga", "hu", "zo", "fi",
            "ba", "ke", "lu", "mi", "no", "ra", "se", "ti", "wa", "yo", "ch", "en", "or", "il",
            "an", "us", "et", "ob", "ap", "im", "ul", "ex", "on", "ar", "is", "ed",
        ];
        let words = (0..VOCABULARY)
            .map(|i| {
                // Rank i spelled in base 40, two syllables at least: distinct words.
                let (mut n, mut w) = (i + 40, String::new());
                while n > 0 {
                    w.push_str(SYLLABLES[n % 40]);
                    n /= 40;
                }
                w
            })
            .collect();
        let weights = (1..=VOCABULARY).map(|r| 1.0 / (r as f64).powf(ZIPF_S));
        Self {
            words,
            zipf: WeightedIndex::new(weights).expect("weights"),
        }
    }

    /// A message's words, as ranks (0 is the commonest).
    fn message(&self, rng: &mut StdRng) -> Vec<usize> {
        let n = rng.gen_range(4..=20);
        (0..n).map(|_| self.zipf.sample(rng)).collect()
    }

    fn text(&self, ranks: &[usize]) -> String {
        ranks
            .iter()
            .map(|&r| self.words[r].as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn user_ref(u: &User) -> UserRef {
    UserRef {
        id: u.id,
        name: u.username.clone(),
    }
}

fn room_name(i: usize) -> RoomName {
    RoomName::parse(&format!("bench-{i}")).expect("a room name")
}

async fn user(store: &DynStore, name: &str) -> anyhow::Result<User> {
    if let Some(c) = store.credentials(name).await? {
        return Ok(c.user);
    }
    Ok(store
        .create_user(
            &Username::parse(name).expect("a username"),
            "x",
            banter_store::now(),
        )
        .await?)
}

/// Writes through the projection: `serve`'s own log on SQLite, an external log's places on
/// PostgreSQL (as persist does).
struct Loader {
    store: DynStore,
    external: bool,
    offsets: Vec<u64>,
    pending: Vec<RoomEvent>,
}

impl Loader {
    async fn push(&mut self, event: RoomEvent) -> anyhow::Result<()> {
        self.pending.push(event);
        if self.pending.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        let batch = std::mem::take(&mut self.pending);
        if batch.is_empty() {
            return Ok(());
        }
        if self.external {
            let logged: Vec<_> = batch
                .into_iter()
                .map(|e| {
                    let i: usize = e.room().as_str()[6..].parse().expect("bench-N");
                    let p = i as u32 % PARTITIONS;
                    self.offsets[p as usize] += 1;
                    e.at_cursor(Cursor::new(p, self.offsets[p as usize]))
                })
                .collect();
            self.store.apply_logged(&logged).await?;
        } else {
            self.store.append_events(&batch).await?;
        }
        Ok(())
    }
}

/// The queries, drawn from what the searcher can read.
struct Queries {
    one_word: Vec<String>,
    three_words: Vec<String>,
    commonest: String,
}

pub async fn run(args: &SearchArgs) -> anyhow::Result<()> {
    let store = banter_store::connect(&args.database_url, 4)
        .await
        .context("connecting to the store")?;
    store.migrate().await.context("migrating")?;
    let external = store.backend() == banter_store::Backend::Postgres;
    let words = Words::new();
    let mut rng = StdRng::seed_from_u64(SEED);
    let readable: Vec<usize> = (0..args.member_of)
        .map(|k| k * args.rooms / args.member_of)
        .collect();
    let loaded = store.credentials(SEARCHER).await?.is_some();
    // The same draws whether or not the store is written, so a reused store gets the queries
    // of its own messages.
    let mut loader = Loader {
        store: store.clone(),
        external,
        offsets: vec![0; PARTITIONS as usize],
        pending: Vec::with_capacity(BATCH),
    };
    let authors = if loaded {
        Vec::new()
    } else {
        let mut authors = Vec::new();
        for a in 0..20 {
            authors.push(user(&store, &format!("bench-author-{a}")).await?);
        }
        for r in 0..args.rooms {
            let owner = &authors[r % authors.len()];
            loader
                .push(RoomEvent::Room(NewRoomChange {
                    id: uuid::Uuid::now_v7(),
                    room: room_name(r),
                    user_id: owner.id,
                    user: owner.username.clone(),
                    at: banter_store::now(),
                    client_id: None,
                    change: RoomChange::Created {
                        kind: RoomKind::Public,
                        topic: Topic::default(),
                        members: vec![user_ref(owner)],
                    },
                }))
                .await?;
        }
        authors
    };
    let started = Instant::now();
    let span = chrono::Duration::days(30);
    let first = banter_store::now() - span;
    let mut samples: Vec<Vec<usize>> = Vec::new();
    for k in 0..args.messages {
        let room = k % args.rooms;
        let ranks = words.message(&mut rng);
        if readable.binary_search(&room).is_ok() && rng.gen_ratio(1, 20) {
            samples.push(ranks.clone());
        }
        if loaded {
            continue;
        }
        let author = &authors[(k / args.rooms + room) % authors.len()];
        let at = first + span * (k as i32) / (args.messages as i32);
        loader
            .push(RoomEvent::Message(NewMessage {
                id: uuid::Uuid::now_v7(),
                room: room_name(room),
                author_id: author.id,
                author: author.username.clone(),
                body: words.text(&ranks),
                created_at: at,
                client_id: None,
                reply_to: None,
                thread_root: None,
                mentions: Vec::new(),
                attachments: Vec::new(),
                bot: None,
            }))
            .await?;
        if (k + 1) % 100_000 == 0 {
            eprintln!(
                "search bench: {} messages written in {:.0?}",
                k + 1,
                started.elapsed()
            );
        }
    }
    let searcher = user(&store, SEARCHER).await?;
    if !loaded {
        for &r in &readable {
            loader
                .push(RoomEvent::Room(NewRoomChange {
                    id: uuid::Uuid::now_v7(),
                    room: room_name(r),
                    user_id: searcher.id,
                    user: searcher.username.clone(),
                    at: banter_store::now(),
                    client_id: None,
                    change: RoomChange::Joined,
                }))
                .await?;
        }
        loader.flush().await?;
        eprintln!(
            "search bench: loaded {} messages over {} rooms in {:.1?}",
            args.messages,
            args.rooms,
            started.elapsed()
        );
    } else {
        eprintln!("search bench: reusing the loaded store");
    }
    anyhow::ensure!(!samples.is_empty(), "no messages in the searcher's rooms");

    let pick = |rng: &mut StdRng, n: usize, skip: usize| -> Option<String> {
        let m = &samples[rng.gen_range(0..samples.len())];
        let mut ranks: Vec<usize> = m.iter().copied().filter(|&r| r >= skip).collect();
        ranks.sort_unstable();
        ranks.dedup();
        if ranks.len() < n {
            return None;
        }
        let mut chosen = Vec::new();
        while chosen.len() < n {
            let r = ranks.swap_remove(rng.gen_range(0..ranks.len()));
            chosen.push(words.words[r].clone());
        }
        Some(chosen.join(" "))
    };
    let mut draw = |n: usize, skip: usize| {
        let mut out = Vec::new();
        // A store too small to have such messages gives up rather than looping.
        for _ in 0..args.queries * 1000 {
            if out.len() == args.queries {
                break;
            }
            if let Some(q) = pick(&mut rng, n, skip) {
                out.push(q);
            }
        }
        anyhow::ensure!(
            out.len() == args.queries,
            "too few messages in the searcher's rooms for {n}-word queries: load more"
        );
        Ok::<_, anyhow::Error>(out)
    };
    let queries = Queries {
        one_word: draw(1, 100)?,
        three_words: draw(3, 20)?,
        commonest: words.words[0].clone(),
    };
    let scope = SearchScope::Member {
        user: searcher.id,
        also: Vec::new(),
        except: Vec::new(),
    };
    // Warm the caches the way a running server has them.
    for q in queries.one_word.iter().take(20) {
        timed(&store, &scope, q).await?;
    }
    println!(
        "search on {} ({} messages, {} rooms, the searcher in {}; {} queries a kind, limit 21)",
        store.backend().as_str(),
        args.messages,
        args.rooms,
        args.member_of,
        args.queries
    );
    println!("| query | p50 ms | p99 ms | max ms | results (mean) |");
    println!("|---|---:|---:|---:|---:|");
    let commonest = vec![queries.commonest.clone(); args.queries.min(50)];
    for (label, list) in [
        ("one word", &queries.one_word),
        ("three words", &queries.three_words),
        ("the commonest word", &commonest),
    ] {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
        let mut found = 0usize;
        for q in list {
            let (took, n) = timed(&store, &scope, q).await?;
            h.record(took.as_micros().max(1) as u64).expect("in bounds");
            found += n;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        println!(
            "| {label} | {:.1} | {:.1} | {:.1} | {:.1} |",
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.max()),
            found as f64 / list.len() as f64
        );
    }
    store.close().await;
    Ok(())
}

async fn timed(
    store: &DynStore,
    scope: &SearchScope,
    q: &str,
) -> anyhow::Result<(Duration, usize)> {
    let search = Search {
        query: SearchQuery::parse(q).context("a query")?,
        scope: scope.clone(),
        from: None,
        before: None,
        limit: 21,
    };
    let t = Instant::now();
    let found = store.search(&search).await?;
    Ok((t.elapsed(), found.len()))
}
