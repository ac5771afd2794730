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
