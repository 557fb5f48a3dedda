//! `banter-bench`: see the library's docs, or `banter-bench --help`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = banter_bench::Cli::parse();
    let ran = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(banter_bench::run(cli)));
    match ran {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // What went wrong, and its causes, in one line: an expected refusal is no crash, and
        // gets no backtrace.
        Err(e) => {
            eprintln!("banter-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
