//! `banter-bench`: see the library's docs, or `banter-bench --help`.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = banter_bench::Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(banter_bench::run(cli))
}
