//! The `passportd` binary: parse the command line, run, map errors to exit codes.

use std::io::Write;

use clap::{CommandFactory, Parser};

#[tokio::main]
async fn main() {
    let cli = match passportd::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => usage_error(e),
    };
    match passportd::cli::run(cli).await {
        Ok(()) | Err(passportd::cli::CliError::OutputClosed) => {}
        Err(e) => {
            // Not eprintln!, which panics when stderr is closed.
            let _ = writeln!(std::io::stderr(), "passportd: {e}");
            std::process::exit(e.exit_code());
        }
    }
}

/// `--help` and `--version` as clap prints them; a usage mistake as one line like every
/// other error (`passportd: …`), naming where to read more, exit 2.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let rendered = e.render().to_string();
    let mut lines = rendered.lines();
    let mut what = lines.next().unwrap_or("invalid usage").trim_start_matches("error: ").trim().to_string();
    // "the following required arguments were not provided:" lists them on the lines after.
    if what.ends_with(':') {
        let listed: Vec<&str> = lines.take_while(|l| l.starts_with(' ')).map(str::trim).collect();
        what = format!("{} {}", what, listed.join(", "));
    }
    // "Usage: passportd classify [OPTIONS] …" names the command whose help answers it.
    let command = rendered
        .lines()
        .find_map(|l| l.trim().strip_prefix("Usage: "))
        .map(|u| u.split_whitespace().take_while(|w| !w.starts_with(['[', '<', '-'])).collect::<Vec<_>>().join(" "))
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let sub = std::env::args().nth(1)?;
            passportd::cli::Cli::command().find_subcommand(&sub).map(|_| format!("passportd {sub}"))
        })
        .unwrap_or_else(|| "passportd".to_string());
    let _ = writeln!(std::io::stderr(), "passportd: {what}; see `{command} --help`");
    std::process::exit(2);
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
