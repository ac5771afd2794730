//! The `passportd` binary: parse the command line, run, map errors to exit codes.

use std::io::Write;

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = passportd::cli::Cli::parse();
    match passportd::cli::run(cli).await {
        Ok(()) | Err(passportd::cli::CliError::OutputClosed) => {}
        Err(e) => {
            // Not eprintln!, which panics when stderr is closed.
            let _ = writeln!(std::io::stderr(), "passportd: {e}");
            std::process::exit(e.exit_code());
        }
    }
}

/// jemalloc instead of the system allocator. The reader thread allocates every decoded
/// record and the writer's thread frees it; glibc's malloc returns each such block to the
/// reader's arena under its lock and consolidates fast bins as it goes, which was about a
/// tenth of a replay's CPU. With jemalloc a replay takes 13–17 % less CPU and wall time for
/// a few MB more peak RSS (BENCHMARKS.md, twelfth pass). SQLite keeps the system malloc:
/// jemalloc serving it too (its unprefixed build) was no faster and cost 20 MB of RSS.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
