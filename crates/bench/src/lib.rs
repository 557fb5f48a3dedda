//! A load generator for banter and for the servers it is compared with, so the same workload
//! drives each.
//!
//! It opens WebSocket connections from many loopback source addresses (127.0.0.2, .3, …, so
//! that tens of thousands of connections do not run out of ports), sends messages whose body
//! carries the sender, a sequence number and the send time, and checks every delivery: lost,
//! duplicated, out of order. Latency (send to delivery, one clock: the generator's) goes into
//! an HdrHistogram. It prints progress every second and can write a JSON summary.
//!
//! It speaks banter's protocol, the Go seed's, Socket.IO's (the room chat of
//! `bench/peers/socketio`) and Centrifugo's (`--protocol centrifugo`, its connection tokens
//! signed with `--token-secret`): the peers banter is compared with. Their codecs are in
//! [`peers`].
//!
//! Scenarios: [`scenarios::fanout`] (rooms × members at a send rate), [`scenarios::idle`]
//! (connections held; server memory per connection; drops), [`scenarios::reconnect`]
//! (a storm of reconnects that resume with `since`), [`scenarios::login`] (logins beside a
//! fanout), [`scenarios::chaos`] (faults on a local cluster under steady traffic).

pub mod chart;
pub mod cli;
pub mod client;
pub mod peers;
pub mod report;
pub mod scenarios;
pub mod track;

pub use cli::Cli;

/// Runs the chosen scenario and reports.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let summary = match &cli.scenario {
        cli::Scenario::Fanout(args) => scenarios::fanout::run(&cli.common, args).await?,
        cli::Scenario::Idle(args) => scenarios::idle::run(&cli.common, args).await?,
        cli::Scenario::Reconnect(args) => scenarios::reconnect::run(&cli.common, args).await?,
        cli::Scenario::Login(args) => scenarios::login::run(&cli.common, args).await?,
        cli::Scenario::Persist(args) => scenarios::persist::run(args).await?,
        cli::Scenario::Report(args) => return chart::write(&args.results, &args.out),
        cli::Scenario::Search(args) => return scenarios::search::run(args).await,
        cli::Scenario::Chaos(args) => return scenarios::chaos::run(&cli.common, args).await,
    };
    report::finish(&cli.common, &summary)
}
