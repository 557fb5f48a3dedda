//! The `banter` binary: parse the command line, set up logging, hand over to the library.

use clap::Parser;

/// mimalloc gives memory back to the system: with glibc's allocator, each password hash's
/// 19 MiB stayed in a per-thread arena after a login storm (≈400 MiB held for nothing), and
/// its per-allocation cost is lower on the fan-out path (docs/benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = banter::config::Cli::parse();
    banter::telemetry::init(cli.log_format);
    match banter::run(cli.command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
