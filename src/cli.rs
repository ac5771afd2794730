//! The command line: `serve`, `replay`, `classify`, `check-config`, `catalogue`.
//! Exit codes: 0 success, 2 usage or configuration error, 1 any other failure.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio::sync::mpsc;

use crate::app::{AppError, Application, Core};
use crate::classify::Classifier;
use crate::config::{self, ConfigError, Loaded, SourceSettings};
use crate::ingest::formats::Format;
use crate::ingest::reader::{self, Chunk};
use crate::pipeline::{run_writer, BatchLimits, EventBudget, IngestSummary};

/// passportd: classify Kandji Passport and Microsoft Entra sign-in failures, keep
/// incidents, export Prometheus metrics.
#[derive(Debug, Parser)]
#[command(name = "passportd", version, about, long_about = None, propagate_version = true)]
#[command(
    after_help = "Configuration: --config PATH, else $PASSPORTD_CONFIG, else ./config/passportd.toml if it exists, \
else the embedded default (listen 127.0.0.1:9477, database ./passportd.db, no file sources). \
Any key can be overridden as PASSPORTD_<SECTION>__<KEY> (deeper keys with more __, a configured source's \
as PASSPORTD_SOURCES__<NAME>__<KEY>), e.g. PASSPORTD_SERVER__LISTEN=0.0.0.0:9477.\n\
Exit codes: 0 success, 2 usage or configuration error, 1 other failure, 130 a replay stopped by SIGINT/SIGTERM \
(what it read is kept)."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--config`
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Configuration file (TOML). See config/passportd.toml for every key. Default:
    /// $PASSPORTD_CONFIG, else ./config/passportd.toml if it exists, else the embedded
    /// default (listen 127.0.0.1:9477, store ./passportd.db, no sources). Any key can be
    /// overridden with PASSPORTD_SECTION__KEY (e.g. PASSPORTD_STORAGE__PATH).
    #[arg(long, short = 'c', value_name = "PATH")]
    pub config: Option<PathBuf>,
}

const SERVE_EXAMPLES: &str = "Examples:
  passportd serve --config /etc/passportd/passportd.toml
  PASSPORTD_SERVER__LISTEN=0.0.0.0:9477 passportd serve
  curl -s localhost:9477/api/v1/incidents?status=open

Exit codes: 0 stopped cleanly, 1 runtime failure (also a SIGINT/SIGTERM that could not commit
within server.shutdown_timeout: what was not committed is read again at the next start),
2 usage or configuration error.";

const REPLAY_EXAMPLES: &str = "Examples:
  passportd replay --json PT1H.json
  passportd replay --source entra --json exports/*.json
  passportd replay --format passport passport.ndjson
  zcat PT1H.json.gz | passportd replay -
  passportd replay <(zcat PT1H.json.gz)

SIGINT or SIGTERM stops reading: what was read is committed and summarized (a second
signal ends it at once).

Exit codes: 0 done, 1 runtime failure, 2 usage or configuration error, 130 stopped by a signal.";

const CLASSIFY_EXAMPLES: &str = "Examples:
  passportd classify 'AADSTS50076: Due to a configuration change ...'
  passportd classify --json < messages.txt
  log show --last 1h --style ndjson \\
      --predicate 'subsystem BEGINSWITH \"io.kandji\"' | passportd classify --json

Output: one verdict per message (per record, when a line holds several: an Event Hubs
envelope, a Graph page, a JSON array; piped text whose records span lines, such as a
pretty-printed JSON export or a CSV export under its header, known by its first line after
any `log` banner, is read record by record, as replay reads it; a `log show` text export is
answered record by record, each once the next record's line begins, its Trace ID and body
lines with it; anything else is answered line by line as it comes). Text: `category (code): title [outcome]`, then the
fix and Microsoft's page for the code. --json: outcome (failure, interrupt, success),
category, code (the primary AADSTS code, or null), codes (all, primary first), title,
remediation, entry (the catalogue entry's id), matched_by (code, pattern, condition, or
null when nothing matched), doc_url, reason, severity, and not_counted (redacted, chatter,
not_signin, invalid_timestamp or invalid_json) when the line is a whole log record the
daemon would not count; a JSON record it rejects (not_signin, invalid_timestamp,
invalid_json) is classified as text.

Exit codes: 0 classified (whatever the verdicts), 2 usage or configuration error.";

const CHECK_CONFIG_EXAMPLES: &str = "Examples:
  passportd check-config --config /etc/passportd/passportd.toml
  PASSPORTD_SERVER__LISTEN=0.0.0.0:9477 passportd check-config

Checks the file and every PASSPORTD_* override, the store's path, operator catalogue files
(regexes compile, codes unique, every entry's examples classify to it), then prints the
sources, globs and settings that would run.

Exit codes: 0 valid, 2 the first problem found, as one line naming the file, key or line.";

const CATALOGUE_EXAMPLES: &str = "Examples:
  passportd catalogue | grep -i mfa
  passportd catalogue --json | python3 -m json.tool
  passportd catalogue --config ours.toml   # with catalogue.extra_paths merged

Exit codes: 0 listed, 2 usage or configuration error (an operator catalogue file that does
not load).";

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: tail every configured source, classify, keep incidents, serve the
    /// HTTP API and /metrics until SIGINT/SIGTERM, then commit what is in flight and exit 0.
    /// SIGHUP reloads the catalogue, with the configuration file's `[catalogue]` section.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ConfigArg),
    /// Ingest whole files (or - for stdin) once through the same pipeline into the same
    /// store, print a summary and exit. Replaying a file twice does not double-count.
    #[command(after_help = REPLAY_EXAMPLES)]
    Replay {
        /// Configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// Use this configured source's settings and name. Default: the configured source
        /// whose paths take in the files (so a file the daemon tails counts nothing twice),
        /// else name "replay", format auto.
        #[arg(long, value_name = "NAME")]
        source: Option<String>,
        /// Decoder: auto, azure-diagnostic, azure-loganalytics, graph or passport
        /// (default: the source's format; auto sniffs every file and line).
        #[arg(long, value_name = "F", value_parser = parse_format)]
        format: Option<Format>,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
        /// Files to read; - reads standard input; a pipe or device is read as a stream.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Classify error messages or raw log lines (arguments, or one per line on stdin)
    /// against the catalogue. Stores nothing. A whole Entra sign-in record or Passport log
    /// line is decoded first, so its result code, status and token issuer count.
    #[command(after_help = CLASSIFY_EXAMPLES)]
    Classify {
        /// Configuration (for operator catalogue files and federated domains).
        #[command(flatten)]
        config: ConfigArg,
        /// Print one JSON object per message.
        #[arg(long)]
        json: bool,
        /// Classify records as this configured source reads them: its `app_id` stands in
        /// for a record that names no app (a Passport line), so catalogue conditions on the
        /// app hold as in the daemon.
        #[arg(long, value_name = "NAME")]
        source: Option<String>,
        /// Messages; none reads stdin: one per line, or one per record when it starts as
        /// an export whose records span lines (a pretty-printed JSON export, a CSV export
        /// under its header).
        #[arg(value_name = "MESSAGE")]
        messages: Vec<String>,
    },
    /// Validate the configuration and the catalogue, print what would run, exit 0 or 2.
    #[command(after_help = CHECK_CONFIG_EXAMPLES)]
    CheckConfig(ConfigArg),
    /// List the loaded (merged) catalogue.
    #[command(after_help = CATALOGUE_EXAMPLES)]
    Catalogue {
        /// Configuration (for operator catalogue files).
        #[command(flatten)]
        config: ConfigArg,
        /// Print the entries as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn parse_format(s: &str) -> Result<Format, String> {
    Format::parse(s)
        .ok_or_else(|| format!("unknown format {s:?} (auto, azure-diagnostic, azure-loganalytics, graph, passport)"))
}

/// A command failure with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Usage or configuration: exit 2.
    #[error("{0}")]
    Usage(String),
    /// Anything else: exit 1.
    #[error("{0}")]
    Failed(String),
    /// Standard output was closed by its reader (`passportd catalogue | head`): stop
    /// quietly with exit 0, as command-line tools do.
    #[error("standard output closed")]
    OutputClosed,
    /// SIGINT or SIGTERM stopped a replay after it committed what it had read: exit 130,
    /// as a shell reports a process ended by SIGINT.
    #[error("{0}")]
    Interrupted(String),
}

impl CliError {
    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed(_) => 1,
            CliError::OutputClosed => 0,
            CliError::Interrupted(_) => 130,
        }
    }

    /// A failed write to standard output.
    fn written(e: std::io::Error) -> CliError {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CliError::OutputClosed
        } else {
            CliError::Failed(format!("writing to standard output: {e}"))
        }
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::Usage(e.to_string())
    }
}

impl From<AppError> for CliError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Catalogue(c) => CliError::Usage(c.to_string()),
            AppError::Config(c) => CliError::Usage(c),
            // A newer store or an unusable key file: a restart cannot mend it (exit 2 stops
            // a supervisor's restart loop, as a configuration error does).
            AppError::Store(s) if s.needs_the_operator() => CliError::Usage(s.to_string()),
            other => CliError::Failed(other.to_string()),
        }
    }
}

fn load(arg: &ConfigArg) -> Result<Loaded, CliError> {
    Ok(config::load(arg.config.as_deref())?)
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(arg) => serve(arg).await,
        Command::Replay { config, source, format, json, files } => replay(config, source, format, json, files).await,
        Command::Classify { config, json, source, messages } => classify(config, json, source, messages),
        Command::CheckConfig(arg) => check_config(arg).await,
        Command::Catalogue { config, json } => catalogue(config, json),
    }
}

async fn serve(arg: ConfigArg) -> Result<(), CliError> {
    // SIGHUP's default action ends the process, and the reload handler is installed only
    // once the store is open: `systemctl reload` right after a start killed the daemon.
    // Once taken over, a signal stays handled for the life of the process.
    #[cfg(unix)]
    drop(tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()));
    let stop = shutdown_signal();
    let loaded = load(&arg)?;
    loaded.settings.storage.check_path(&loaded.origin_of("storage.path"))?;
    crate::telemetry::init(&loaded.settings.log);
    tracing::info!(config = %loaded.origin, overrides = ?loaded.overrides, "configuration loaded");
    let mut app = Application::build(loaded.settings).await?;
    if let config::ConfigOrigin::File(path) = loaded.origin {
        app.set_config_file(path);
    }
    app.run(stop).await?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled: a signal that comes while the daemon is still starting
/// (opening and migrating its store) is kept, and stops it cleanly once it runs, instead of
/// killing the process (exit 143).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (term, int) = (signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok());
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {}
                _ = wait(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The configured source whose paths take in the files to replay, when one does; a usage
/// error when they belong to several, or only some of them to one: each source's files
/// are replayed apart (or `--source` says which one they are).
fn owning_source<'s>(sources: &'s [SourceSettings], files: &[PathBuf]) -> Result<Option<&'s SourceSettings>, CliError> {
    use crate::ingest::identity::file_id;
    // Files as the tailer knows them: by inode, whatever path names them (relative,
    // `./x`, through a linked folder). Standard input and pipes are no source's files.
    let ids: Vec<Option<(u64, u64)>> = files
        .iter()
        .map(|f| {
            let meta = (f.as_os_str() != "-").then(|| std::fs::metadata(f).ok()).flatten()?;
            meta.is_file().then(|| file_id(&meta))
        })
        .collect();
    if ids.iter().all(Option::is_none) {
        return Ok(None);
    }
    // What each source's tailer would follow now.
    let followed: Vec<(&SourceSettings, std::collections::HashSet<(u64, u64)>)> = sources
        .iter()
        .filter_map(|s| {
            let matcher = crate::ingest::discover::PathMatcher::new(&s.paths, &s.exclude).ok()?;
            let inodes = matcher.scan().iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| file_id(&m)).collect();
            Some((s, inodes))
        })
        .collect();
    let owner_of = |id: &Option<(u64, u64)>| {
        id.and_then(|id| followed.iter().find(|(_, inodes)| inodes.contains(&id)).map(|(source, _)| *source))
    };
    let owners: Vec<(&PathBuf, Option<&SourceSettings>)> =
        files.iter().zip(&ids).map(|(f, id)| (f, owner_of(id))).collect();
    let Some((_, Some(first))) = owners.iter().find(|(_, o)| o.is_some()) else {
        return Ok(None);
    };
    match owners.iter().find(|(_, o)| o.map(|o| o.name.as_str()) != Some(first.name.as_str())) {
        None => Ok(Some(first)),
        Some((file, other)) => Err(CliError::Usage(format!(
            "{} is {}, but other files are among source {:?}'s paths: replay each source's files apart, \
             or say which source they are with --source",
            file.display(),
            other.map_or("among no source's paths".to_string(), |o| format!("among source {:?}'s paths", o.name)),
            first.name
        ))),
    }
}

async fn replay(
    arg: ConfigArg,
    source: Option<String>,
    format: Option<Format>,
    json: bool,
    files: Vec<PathBuf>,
) -> Result<(), CliError> {
    let loaded = load(&arg)?;
    loaded.settings.storage.check_path(&loaded.origin_of("storage.path"))?;
    crate::telemetry::init(&loaded.settings.log);
    let mut source_settings = match &source {
        Some(name) => loaded
            .settings
            .source(name)
            .cloned()
            .ok_or_else(|| CliError::Usage(format!("--source {name:?}: no such source in {}", loaded.origin)))?,
        // A file the daemon tails is that source's: replayed under another name, its
        // records with no id of their own (keyed by file position) would count again.
        None => match owning_source(&loaded.settings.sources, &files)? {
            Some(owner) => {
                tracing::info!(source = %owner.name, "the files are among this source's paths: replaying them as its own");
                owner.clone()
            }
            None => SourceSettings::replay_default(),
        },
    };
    if let Some(f) = format {
        source_settings.format = f;
    }
    for f in &files {
        if f.as_os_str() != "-" && !f.exists() {
            // `exists` follows links: a link whose target is missing, or a loop of links,
            // is there but leads nowhere, which "no such file" would hide.
            let why = match std::fs::metadata(f) {
                Err(e) if f.symlink_metadata().is_ok() => format!("is a symbolic link that leads nowhere ({e})"),
                _ => "no such file".to_string(),
            };
            return Err(CliError::Usage(format!("{}: {why}", f.display())));
        }
        if f.is_dir() {
            return Err(CliError::Usage(format!("{}: is a folder; pass its files (e.g. folder/*)", f.display())));
        }
        // Every regular file must open before anything is stored: one that cannot, found
        // half-way, left the earlier files committed, no summary and exit 1.
        if f.is_file() {
            let mut file =
                std::fs::File::open(f).map_err(|e| CliError::Usage(format!("{}: cannot be read: {e}", f.display())))?;
            // A compressed file (a rotated generation newsyslog or logrotate gzipped) is not
            // text: its bytes read as garbage records. Said so, before anything is stored.
            let mut head = [0u8; 8];
            let n = std::io::Read::read(&mut file, &mut head).unwrap_or(0);
            if let Some(kind) = crate::ingest::tail::compression_of(&head[..n]) {
                let tool = match kind {
                    "bzip2" => "bzcat",
                    "xz" => "xzcat",
                    "zstd" => "zstdcat",
                    _ => "zcat",
                };
                return Err(CliError::Usage(format!(
                    "{}: is {kind}-compressed; replay what it holds: `passportd replay <({tool} {})`",
                    f.display(),
                    f.display()
                )));
            }
        }
    }
    let core = Core::build(loaded.settings, vec![source_settings.name.clone()]).await?;
    let store_error =
        |e: &dyn std::fmt::Display| CliError::Failed(format!("{e} (store {})", core.store.path().display()));
    let mut checkpoints = core.store.checkpoints(&source_settings.name).await.map_err(|e| store_error(&e))?;
    // Reading and committing share the two cores: the reader fills the next batch while
    // the writer commits this one. The budget (two batches of events) is what bounds
    // memory; the channel only needs room for the chunks that budget allows (a chunk is
    // one ~1 MB read: ~400 Azure records, or a handful of Passport failures).
    let batch_records = core.settings.storage.replay_batch_records;
    let budget = EventBudget::new(batch_records.saturating_mul(2));
    let (tx, rx) = mpsc::channel::<Chunk>(256);
    let normalizer = core.normalizer.clone();
    let reader_budget = budget.clone();
    // SIGINT or SIGTERM stops the reading; what was read is committed and summarized. A
    // second signal ends the process at once (a read from an idle pipe cannot be cut short).
    let stop = Arc::new(AtomicBool::new(false));
    let stop_on_signal = stop.clone();
    let signals = tokio::spawn(async move {
        shutdown_signal().await;
        stop_on_signal.store(true, Ordering::Relaxed);
        tracing::warn!("stopping: committing what was read (a second signal ends the replay at once)");
        shutdown_signal().await;
        std::process::exit(130);
    });
    let reader_stop = stop.clone();
    let reader_task = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let stop = &*reader_stop;
        for f in &files {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let result = if f.as_os_str() == "-" {
                reader::replay_stdin(&source_settings, &normalizer, &tx, &reader_budget, stop)
            } else if f.is_file() {
                reader::replay_file(&source_settings, f, &mut checkpoints, &normalizer, &tx, &reader_budget, stop)
            } else {
                // A pipe (`<(zcat PT1H.json.gz)`) or a device: read as a stream, like stdin.
                std::fs::File::open(f).map_err(|e| reader::ReadError::Io { path: f.clone(), source: e }).and_then(
                    |file| reader::replay_stream(&source_settings, file, f, &normalizer, &tx, &reader_budget, stop),
                )
            };
            result.map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    // Replay is about throughput, not latency: let batches fill.
    let limits = BatchLimits {
        max_records: batch_records,
        max_wait: Duration::from_secs(1),
        fill: true,
        commit_records: core.settings.storage.replay_commit_records,
        commit_after: Duration::from_secs(2),
    };
    let summary: IngestSummary =
        run_writer(rx, core.writer.clone(), limits, Some(budget)).await.map_err(|e| store_error(&e))?;
    reader_task.await.map_err(|e| CliError::Failed(e.to_string()))?.map_err(CliError::Failed)?;
    signals.abort();
    core.store.close().await;
    let mut out = std::io::stdout().lock();
    let written = if json {
        serde_json::to_string(&summary)
            .map_err(|e| CliError::Failed(e.to_string()))
            .and_then(|s| writeln!(out, "{s}").map_err(CliError::written))
    } else {
        writeln!(out, "{}", render_summary(&summary)).map_err(CliError::written)
    };
    written?;
    if stop.load(Ordering::Relaxed) {
        return Err(CliError::Interrupted(
            "interrupted: the summary above is what was read and committed before the signal".into(),
        ));
    }
    Ok(())
}

fn render_summary(s: &IngestSummary) -> String {
    let mut text = format!(
        "records {} (successes {}, failures {}, interrupts {}), duplicates {}, parse errors {}, skipped {}, incidents opened {}",
        s.records, s.successes, s.failures, s.interrupts, s.duplicates, s.parse_errors, s.skipped, s.incidents_opened
    );
    if s.expired > 0 {
        text.push_str(&format!(", expired {} (older than retention keeps)", s.expired));
    }
    if !s.by_category.is_empty() {
        text.push_str("\nfailures by category:");
        for (k, v) in &s.by_category {
            text.push_str(&format!("\n  {k:<26} {v}"));
        }
    }
    if !s.by_code.is_empty() {
        text.push_str("\nfailures by code:");
        for (k, v) in &s.by_code {
            text.push_str(&format!("\n  {k:<26} {v}"));
        }
    }
    text
}

fn classifier_for(loaded: &Loaded) -> Result<Classifier, CliError> {
    Ok(checked_classifier(loaded, false)?.0)
}

/// The classifier `loaded` describes, validated as the daemon validates it, with (when
/// `with_shipped`) the shipped examples that now classify to operator entries.
fn checked_classifier(
    loaded: &Loaded,
    with_shipped: bool,
) -> Result<(Classifier, Vec<crate::classify::ExampleMismatch>), CliError> {
    crate::classify::reload::load_checked(
        &loaded.settings.catalogue.extra_paths,
        loaded.settings.catalogue.federated_domains.clone(),
        with_shipped,
    )
    .map_err(|e| CliError::Usage(e.to_string()))
}

fn classify(arg: ConfigArg, json: bool, source: Option<String>, messages: Vec<String>) -> Result<(), CliError> {
    let loaded = load(&arg)?;
    let classifier = classifier_for(&loaded)?;
    let source_app_id = match &source {
        Some(name) => match loaded.settings.source(name) {
            Some(s) => s.app_id.clone(),
            None => return Err(CliError::Usage(format!("no source named {name:?} in {}", loaded.origin))),
        },
        None => None,
    };
    let mut out = std::io::stdout().lock();
    let mut emit = |msg: &str| -> Result<(), CliError> {
        for c in crate::classify::classify_records_of(&classifier, msg, source_app_id.as_deref()) {
            emit_one(&mut out, &c, json)?;
        }
        Ok(())
    };
    if messages.is_empty() {
        use std::io::Read;
        let mut stdin = std::io::stdin().lock();
        // A pretty-printed JSON export or a CSV export under its header, known by its first
        // line, gets one verdict per record, as `replay` reads it: read line by line, its
        // lines were judged apart (a header, a row with no header, an object's fields).
        // Anything else is answered line by line as it comes (a live `log stream`, typed
        // messages).
        // A `log` export's banner and header lines come first (`log show` prints what it
        // filters on): the first line after them tells what the export is.
        let mut line = Vec::new();
        let mut first_at;
        loop {
            first_at = line.len();
            let n = stdin.read_until(b'\n', &mut line).map_err(|e| CliError::Failed(format!("reading stdin: {e}")))?;
            if n == 0 {
                if line.iter().all(u8::is_ascii_whitespace) {
                    return Ok(());
                }
                break;
            }
            let read = String::from_utf8_lossy(&line[first_at..]);
            if !read.trim().is_empty() && !crate::ingest::formats::is_log_banner(&read) {
                break;
            }
        }
        let first = String::from_utf8_lossy(&line[first_at..]).into_owned();
        // A `log show` text export (syslog, default, compact styles): a record's message may
        // span lines (its Trace ID, a token body), so the lines up to the next record's are
        // judged together, each record once its next one begins (or the input ends).
        if crate::ingest::formats::starts_passport_text_record(&first) {
            let mut input = std::io::Cursor::new(std::mem::take(&mut line)).chain(stdin);
            let mut record = String::new();
            let mut next = Vec::new();
            loop {
                next.clear();
                let n =
                    input.read_until(b'\n', &mut next).map_err(|e| CliError::Failed(format!("reading stdin: {e}")))?;
                let text = String::from_utf8_lossy(&next);
                let text = text.trim_end_matches(['\n', '\r']);
                let starts_another = n == 0
                    || crate::ingest::formats::starts_passport_text_record(text)
                    || crate::ingest::formats::is_log_banner(text);
                if starts_another && !record.trim().is_empty() {
                    emit(&record)?;
                    record.clear();
                }
                if n == 0 {
                    return Ok(());
                }
                if text.trim().is_empty() {
                    continue;
                }
                if crate::ingest::formats::is_log_banner(text) {
                    emit(text)?;
                    continue;
                }
                if !record.is_empty() {
                    record.push('\n');
                }
                record.push_str(text);
            }
        }
        if starts_a_multi_line_export(&first) {
            let mut whole = std::mem::take(&mut line);
            (&mut stdin)
                .take(WHOLE_STDIN_MAX as u64)
                .read_to_end(&mut whole)
                .map_err(|e| CliError::Failed(format!("reading stdin: {e}")))?;
            let text = String::from_utf8_lossy(&whole);
            emit(&text)?;
            // Past the limit: the rest line by line.
            line.clear();
        }
        let mut pending = std::io::Cursor::new(std::mem::take(&mut line));
        let mut input = (&mut pending).chain(stdin);
        for number in 1.. {
            line.clear();
            let n = input
                .read_until(b'\n', &mut line)
                .map_err(|e| CliError::Failed(format!("reading stdin at line {number}: {e}")))?;
            if n == 0 {
                break;
            }
            // A byte that is not UTF-8 (a binary fragment in a pasted export) shows as
            // U+FFFD and the line is classified: the daemon, too, goes on past such a line.
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            if !text.trim().is_empty() {
                emit(text)?;
            }
        }
    } else {
        for m in &messages {
            emit(m)?;
        }
    }
    Ok(())
}

/// Most piped input `classify` reads whole to see whether it holds multi-line records;
/// more is classified line by line.
const WHOLE_STDIN_MAX: usize = 64 << 20;

/// Whether `first`, the first line of piped input, starts an export whose records span
/// lines: a pretty-printed JSON array or object (the line opens it and ends with an
/// opening `[` or `{`: `[`, `{`, `{"value": [`), or a CSV export's header as `replay`
/// knows one. A line that merely starts with a bracket (`[auth] …`, a cut-off token
/// body) is a message.
fn starts_a_multi_line_export(first: &str) -> bool {
    let line = first.trim().trim_start_matches('\u{feff}');
    if line.starts_with(['[', '{']) {
        return line.ends_with(['[', '{']);
    }
    crate::ingest::formats::is_csv_export_header(line)
}

/// One verdict of `classify`, as text or as one JSON object.
fn emit_one(out: &mut impl Write, c: &crate::classify::Classification, json: bool) -> Result<(), CliError> {
    let text = if json {
        serde_json::to_string(c).map_err(|e| CliError::Failed(e.to_string()))?
    } else {
        let code = c.code.map(|c| format!("AADSTS{c}")).unwrap_or_else(|| "no code".into());
        let mut t = format!("{} ({}): {} [{}]", c.category, code, c.title, c.outcome);
        if let Some(why) = &c.not_counted {
            t.push_str(&format!(" (the daemon does not count this line: {why})"));
        }
        if !c.remediation.is_empty() {
            t.push_str(&format!("\n  fix: {}", c.remediation));
        }
        if let Some(u) = &c.doc_url {
            t.push_str(&format!("\n  doc: {u}"));
        }
        t
    };
    writeln!(out, "{text}").map_err(CliError::written)
}

async fn check_config(arg: ConfigArg) -> Result<(), CliError> {
    let loaded = load(&arg)?;
    loaded.settings.storage.check_path(&loaded.origin_of("storage.path"))?;
    // An existing store this binary cannot use (written by a newer passportd, a key file
    // it did not write) fails `serve` and `replay` as surely as a bad path does.
    crate::store::check_existing(&loaded.settings.storage.path).await.map_err(|e| CliError::Usage(e.to_string()))?;
    // An example in an operator's file that does not classify to its own entry means the
    // file says something other than its author meant: an error (as for the daemon). A
    // shipped example that now goes to an operator entry is what overriding a shipped
    // entry does: a note.
    let (classifier, shadowed) = checked_classifier(&loaded, true)?;
    let s = &loaded.settings;
    let mut out = String::new();
    out.push_str(&format!("configuration: {} — valid\n", loaded.origin));
    if !loaded.overrides.is_empty() {
        out.push_str(&format!("environment overrides: {}\n", loaded.overrides.join(", ")));
    }
    out.push_str(&format!("listen: {}\n", s.server.listen));
    // As this process resolves it: a relative path is relative to the working directory.
    let database = std::path::absolute(&s.storage.path).unwrap_or_else(|_| s.storage.path.clone());
    out.push_str(&format!("database: {}\n", database.display()));
    out.push_str(&format!(
        "catalogue: {} entries (shipped{})\n",
        classifier.catalogue().len(),
        s.catalogue.extra_paths.iter().map(|p| format!(" + {}", p.display())).collect::<String>()
    ));
    if !shadowed.is_empty() {
        out.push_str(&format!(
            "note: {} shipped example(s) now classify to operator entries, as overriding them intends:\n",
            shadowed.len()
        ));
        for m in &shadowed {
            out.push_str(&format!("  {m}\n"));
        }
    }
    out.push_str(&format!(
        "incidents: quiet period {}, reopen window {}\n",
        s.incidents.quiet_period, s.incidents.reopen_window
    ));
    out.push_str(&format!(
        "privacy: users {}, ips {}; api token {}\n",
        serde_json::to_value(s.privacy.users).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
        serde_json::to_value(s.privacy.ips).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
        if s.api.token.is_empty() { "not required" } else { "required" }
    ));
    if s.sources.is_empty() {
        out.push_str("sources: none (push to POST /api/v1/ingest/http, or add [[sources]])\n");
    }
    for src in &s.sources {
        let matcher = crate::ingest::discover::PathMatcher::new(&src.paths, &src.exclude)
            .map_err(|e| CliError::Usage(format!("sources {:?}: {e}", src.name)))?;
        let files = matcher.scan();
        out.push_str(&format!(
            "source {:?}: format {}, start at {}, poll {}, {} file(s) match now\n",
            src.name,
            src.format.as_str(),
            serde_json::to_value(src.start_at).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
            src.poll_interval,
            files.len()
        ));
        for p in &src.paths {
            out.push_str(&format!("  path {p}\n"));
        }
    }
    std::io::stdout().lock().write_all(out.as_bytes()).map_err(CliError::written)
}

fn catalogue(arg: ConfigArg, json: bool) -> Result<(), CliError> {
    let loaded = load(&arg)?;
    let classifier = classifier_for(&loaded)?;
    let entries = classifier.catalogue().entries();
    let mut out = std::io::stdout().lock();
    let r = if json {
        serde_json::to_string_pretty(entries)
            .map_err(|e| CliError::Failed(e.to_string()))
            .and_then(|s| writeln!(out, "{s}").map_err(CliError::written))
    } else {
        let mut text = String::new();
        for e in entries {
            let codes = e.codes.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",");
            text.push_str(&format!(
                "{:<28} {:<10} {:<26} {}{}\n",
                e.id,
                if codes.is_empty() { "-".to_string() } else { codes },
                e.category.as_str(),
                e.title,
                if e.passport_relevant { "  [passport]" } else { "" }
            ));
        }
        text.push_str(&format!("{} entries\n", entries.len()));
        out.write_all(text.as_bytes()).map_err(CliError::written)
    };
    r
}
