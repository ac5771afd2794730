//! The SQLite store: every SQL statement of passportd lives here.
//!
//! A batch (events, the incident updates they cause, and the read positions of the
//! files they came from) commits in ONE transaction, so a crash at any instant keeps
//! the whole batch or none of it, and a restart resumes exactly where the last commit
//! ended.

mod cache;
mod checkpointer;
mod commit;
mod correlations;
pub mod queries;
mod recent;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::event::{Category, Outcome, SignInEvent};
use crate::incidents;

pub use commit::WriteTx;
pub use queries::{EventQuery, EventRow, IncidentQuery, IncidentSort, Page, Summary};

/// Store failures. Messages name the database file where it helps.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The folder for the database could not be created.
    #[error("cannot create the folder for the database {path}: {source}")]
    CreateDir {
        /// The database path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Opening or migrating the database failed.
    #[error("cannot open the database {path}: {source}")]
    Open {
        /// The database path.
        path: PathBuf,
        /// sqlx's error.
        source: sqlx::Error,
    },
    /// Applying the schema migrations failed.
    #[error("cannot migrate the database {path}: {source}")]
    Migrate {
        /// The database path.
        path: PathBuf,
        /// sqlx's error.
        source: sqlx::migrate::MigrateError,
    },
    /// The database's schema is newer than this binary's: a newer passportd wrote it.
    #[error(
        "the database {path} was written by a newer passportd (schema version {version}, this one knows up to \
         {known}): run that version or a newer one, or point storage.path at another file"
    )]
    Newer {
        /// The database path.
        path: PathBuf,
        /// The newest schema version the database holds.
        version: i64,
        /// The newest this binary knows.
        known: i64,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    /// The key file (`Store::key_file`) could not be read or written.
    #[error("cannot use the store's key file {path}: {source}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A stored value could not be read back (a bug or a hand-edited database).
    #[error("corrupt value in column {column}: {value:?}")]
    Corrupt {
        /// The column.
        column: &'static str,
        /// The value found.
        value: String,
    },
    /// The database skipped rows of a batch that the write path had checked to be new
    /// and complete (a bug): the batch is rolled back rather than stored in part.
    #[error("{table}: {stored} of {sent} rows stored; the batch was rolled back")]
    RowsSkipped {
        /// The table.
        table: &'static str,
        /// Rows sent.
        sent: u64,
        /// Rows stored.
        stored: u64,
    },
}

impl StoreError {
    /// True when another connection held the database's write lock past the busy timeout
    /// (SQLITE_BUSY or SQLITE_LOCKED, any extended code): the same work may succeed later.
    pub fn is_busy(&self) -> bool {
        match self {
            StoreError::Query(sqlx::Error::Database(e)) => {
                e.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| matches!(c & 0xff, 5 | 6))
            }
            _ => false,
        }
    }
}

/// The read position of one file generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Identity key of the generation (stable across renames).
    pub file_key: String,
    /// The source that reads it.
    pub source: String,
    /// The path it was last seen at.
    pub path: String,
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// What identifies the file's first bytes (up to the fingerprint size), extended as it
    /// grows: digests, never the bytes.
    pub fingerprint: crate::ingest::identity::HeadPrint,
    /// Offset just past the last record committed.
    pub offset: u64,
    /// Decoder framing state at that offset.
    pub state: String,
}

/// An event ready to store, with what the incident engine needs from the catalogue.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// The event (privacy already applied).
    pub event: SignInEvent,
    /// Catalogue title (for a new incident).
    pub title: String,
    /// Catalogue remediation (for a new incident).
    pub remediation: String,
    /// Catalogue severity name.
    pub severity: String,
    /// Keyed hash of the user, for an exact `users_affected` (never the raw name).
    pub user_key: Option<String>,
    /// Keyed hash of the client IP, for the spray detector (never the raw address).
    pub ip_key: Option<String>,
    /// [`SignInEvent::dedup_key`] of `event`, worked out once by [`StoredEvent::new`].
    /// Private, so only `new` sets it: to change `event`, make a new `StoredEvent`.
    dedup_key: Option<String>,
    /// The incident fingerprint of a failure ([`crate::incidents::fingerprint`]), made
    /// like `dedup_key`.
    fingerprint: Option<String>,
}

impl StoredEvent {
    /// Wraps `event` with its catalogue texts and keyed hashes. The idempotency key and
    /// the incident fingerprint are worked out here, on the reader's thread: the writer's
    /// thread takes turns with SQLite's, so whatever it does lengthens every commit,
    /// while the reader has time to spare (BENCHMARKS.md, eighth pass).
    pub fn new(
        event: SignInEvent,
        title: String,
        remediation: String,
        severity: String,
        user_key: Option<String>,
        ip_key: Option<String>,
    ) -> StoredEvent {
        let dedup_key = event.dedup_key();
        let fingerprint = (event.outcome == Outcome::Failure).then(|| {
            incidents::fingerprint(
                event.category.unwrap_or(Category::Unclassified),
                event.primary_code(),
                event.entry_id.as_deref(),
                event.app_id.as_deref().or(event.app_name.as_deref()),
                event.tenant_id.as_deref(),
            )
        });
        StoredEvent { event, title, remediation, severity, user_key, ip_key, dedup_key, fingerprint }
    }

    /// The same event keyed by `key` instead of its record id or position: a Passport log
    /// entry, which has no id, is keyed by its content (`Privacy::entry_key`).
    pub fn keyed_by(mut self, key: String) -> StoredEvent {
        self.dedup_key = Some(key);
        self
    }

    /// The idempotency key ([`SignInEvent::dedup_key`], or the one given to
    /// [`StoredEvent::keyed_by`]); none when the event has neither a record id nor a
    /// position, and then it is not stored.
    pub fn dedup_key(&self) -> Option<&str> {
        self.dedup_key.as_deref()
    }

    /// The incident fingerprint: set for failures only.
    pub fn fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }
}

/// A successful sign-in as the store keeps it. Successes are only counted and
/// de-duplicated, never listed or read by the incident engine, and they are most of the
/// records: this is all of one that travels from the reader to the store (56 bytes and
/// one allocation, against a full [`StoredEvent`]'s ~570 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSuccess {
    /// The source name (shared by every success of a chunk).
    pub source: Arc<str>,
    /// When the sign-in happened (Unix ms): the record's time, else when it was read.
    pub occurred_at_ms: i64,
    /// The de-duplication time, as [`SignInEvent::dedup_at`].
    pub dedup_at: i64,
    /// As [`SignInEvent::time_is_logged`].
    pub time_is_logged: bool,
    /// The idempotency key, as [`SignInEvent::dedup_key`].
    pub key: String,
}

/// One unit of commit.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Events to insert (duplicates are skipped by their idempotency key). A success may
    /// come here too; the readers send successes as `successes` instead.
    pub events: Vec<StoredEvent>,
    /// Successes to count (duplicates are skipped by their idempotency key).
    pub successes: Vec<StoredSuccess>,
    /// Positions to record for the files the events came from.
    pub checkpoints: Vec<Checkpoint>,
}

impl Batch {
    /// True when there is nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.successes.is_empty() && self.checkpoints.is_empty()
    }

    /// How many records the batch holds.
    pub fn records(&self) -> usize {
        self.events.len() + self.successes.len()
    }
}

/// What a committed batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchResult {
    /// Newly stored events per (source, outcome).
    pub stored: BTreeMap<(String, Outcome), u64>,
    /// Newly stored failures per (source, category, primary code).
    pub failures: BTreeMap<(String, Category, Option<u32>), u64>,
    /// Events skipped because their key was already stored.
    pub duplicates: u64,
    /// Records skipped because they are older than the retention horizon (pruning may
    /// have removed them, keys and all, so they cannot be told from duplicates), per source.
    pub expired_by_source: BTreeMap<String, u64>,
    /// The same, per source.
    pub duplicates_by_source: BTreeMap<String, u64>,
    /// Incidents opened or reopened, per category.
    pub incidents_opened: BTreeMap<Category, u64>,
    /// Incidents resolved by the quiet-period sweep.
    pub incidents_auto_resolved: u64,
    /// Detector findings that opened or reopened an incident, per detector name.
    pub detections: BTreeMap<&'static str, u64>,
    /// Failure incidents this batch opened (not reopened) and still holds, by id.
    pub opened_ids: Vec<i64>,
    /// Incidents opened before this batch and removed by it, because the one failure
    /// they held was a Passport line that its Entra record showed to be another problem
    /// (`superseded`). One this batch opened and removed is in neither list nor in
    /// `incidents_opened`.
    pub incidents_withdrawn: Vec<i64>,
    /// Passport lines that their Entra record, classified otherwise, superseded.
    pub superseded: u64,
    /// Resolved incidents that a later event joined, which may have made them active
    /// again (see `flush` in the commit path).
    pub incidents_reactivated: u64,
}

impl BatchResult {
    /// True when the batch opened, reopened or resolved an incident (what the open
    /// incidents gauge is read back for).
    pub fn changed_incidents(&self) -> bool {
        !self.incidents_opened.is_empty()
            || self.incidents_auto_resolved > 0
            || self.superseded > 0
            || self.incidents_reactivated > 0
    }
}

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    /// One connection for `commit_batch`, the write path, with the large page cache.
    /// Every pooled connection keeps its own cache, and sqlx hands idle connections
    /// out in turn: with one pool, each connection that ever committed warmed a 16 MB
    /// cache (peak RSS 112 MB on a 1M-record replay, 68 MB with one connection).
    writer: SqlitePool,
    path: PathBuf,
    /// The detectors' recent past, as the write path last stored it (`recent`).
    recent: recent::SharedRecent,
    /// The correlation ids the store may hold a counted failure for (`correlations`).
    correlations: correlations::SharedCorrelations,
    /// Checkpoints the write-ahead log off the write path (`checkpointer`); stopped by
    /// [`Store::close`].
    checkpointer: Arc<checkpointer::Checkpointer>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The newest schema version this binary knows.
fn newest_migration() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Whether an error concerns the store's files themselves (a newer schema, an unusable key
/// file): a restart cannot mend it, the operator must.
impl StoreError {
    /// True for errors only the operator can mend (see the type's variants).
    pub fn needs_the_operator(&self) -> bool {
        matches!(self, StoreError::Newer { .. } | StoreError::KeyFile { .. })
    }
}

/// Checks, changing nothing, that an existing store at `path` is one this binary can open:
/// its key file (if any) is one passportd wrote, and its schema is not newer than this
/// binary's. A store not created yet passes (`check-config`).
pub async fn check_existing(path: &Path) -> Result<(), StoreError> {
    use sqlx::Connection;
    let key = key_file_of(path);
    read_key_file(&key).map_err(|source| StoreError::KeyFile { path: key.clone(), source })?;
    if !path.is_file() {
        return Ok(());
    }
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
    // No migrations table yet: an empty file, which the daemon sets up.
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(&mut conn).await.unwrap_or(None);
    let _ = conn.close().await;
    let known = newest_migration();
    match applied {
        Some(version) if version > known => Err(StoreError::Newer { path: path.to_path_buf(), version, known }),
        _ => Ok(()),
    }
}

/// The key file beside the database `path` (`<path>.key`).
fn key_file_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// How often opening a store tries again after losing a race to set it up.
const SETUP_ATTEMPTS: u32 = 20;
/// The pause between those tries.
const SETUP_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Tries again only this long after the first.
const SETUP_RETRY_WITHIN: Duration = Duration::from_secs(3);

/// Whether an error opening or migrating a store is another process setting it up at the
/// same moment, rather than something wrong with it.
fn lost_a_setup_race(error: &str) -> bool {
    ["already exists", "duplicate column", "UNIQUE constraint failed: _sqlx_migrations", "database is locked"]
        .iter()
        .any(|sign| error.contains(sign))
}

/// Whether `v` is a secret as this program makes them: 64 lower-case hex digits.
fn is_secret(v: &str) -> bool {
    v.len() == 64 && v.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// How `write_key_file` treats a key file already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyWrite {
    /// It is replaced (the database's own secret is moved out).
    Replace,
    /// It is kept: another process made it first.
    IfAbsent,
}

/// Writes the key file readable by its owner alone, whole or not at all: a temporary file
/// of this process's own (created exclusively, so no file or link planted under its name
/// is followed or keeps its mode), then linked (`IfAbsent`) or renamed (`Replace`) into
/// place. Given to `owner` (the database's), so that a `replay` run as root leaves the
/// service a key it can read.
fn write_key_file(path: &Path, secret: &str, owner: Option<(u32, u32)>, how: KeyWrite) -> std::io::Result<()> {
    use std::io::Write;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.{nanos}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(format!("{secret}\n").as_bytes())?;
        file.sync_all()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
            if let Some((uid, gid)) = owner {
                // Only root may give a file away; anyone else already owns it as wanted.
                let _ = std::os::unix::fs::chown(&tmp, Some(uid), Some(gid));
            }
        }
        #[cfg(not(unix))]
        let _ = owner;
        match how {
            KeyWrite::Replace => std::fs::rename(&tmp, path),
            KeyWrite::IfAbsent => match std::fs::hard_link(&tmp, path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                // A file system without hard links: a rename, unless one appeared.
                Err(_) if !path.exists() => std::fs::rename(&tmp, path),
                Err(_) => Ok(()),
            },
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    written
}

/// The key file's secret; `None` when there is no key file.
fn read_key_file(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) if is_secret(text.trim()) => Ok(Some(text.trim().to_owned())),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a key this program wrote (64 hexadecimal digits)",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The database file's owner and group.
fn database_owner(path: &Path) -> Option<(u32, u32)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.uid(), m.gid()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// The event-time clock: the newest event time the store has seen (Unix ms), if any.
const WATERMARK: &str = "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'watermark_ms'";

/// Replaces the file heads that versions before digested heads stored as bytes (the first
/// 4 KiB of each followed file, user names and all) with their prints, once, at open: a
/// checkpoint is otherwise rewritten only when its file is read again.
async fn digest_legacy_heads(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    use crate::ingest::identity::HeadPrint;
    let rows: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT file_key, fingerprint FROM checkpoints").fetch_all(pool).await?;
    let legacy: Vec<(String, Vec<u8>)> = rows
        .into_iter()
        .filter(|(_, head)| !HeadPrint::is_stored_print(head))
        .map(|(key, head)| (key, HeadPrint::from_bytes(&head).to_bytes()))
        .collect();
    if legacy.is_empty() {
        return Ok(());
    }
    // secure_delete: the replaced bytes are zeroed in their pages, not left in free space.
    let mut conn = pool.acquire().await?;
    sqlx::query("PRAGMA secure_delete = ON").execute(&mut *conn).await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    for (key, print) in &legacy {
        sqlx::query("UPDATE checkpoints SET fingerprint = ? WHERE file_key = ?")
            .bind(print)
            .bind(key)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    sqlx::query("PRAGMA secure_delete = OFF").execute(&mut *conn).await?;
    // The zeroed pages are in the WAL; until they are copied back, the database file still
    // holds the old bytes. Copy them now rather than at some later close (which another
    // open connection can defer): a busy checkpoint is retried by SQLite's next one.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut *conn).await?;
    tracing::info!(checkpoints = legacy.len(), "replaced stored file heads with their digests");
    Ok(())
}

/// Numbers the writer connections this process opens (see `Store::open`).
static WRITER_CONNECTIONS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1);

/// Page cache of the writer's connection (KiB, as `PRAGMA cache_size` takes it). 12 MB,
/// not 16: since the detectors keep their windows in memory, a 3 M-record replay peaked at
/// 64–66 MB with 16; with 12 it peaks at 60–62 MB, and a replay into a store already
/// holding 3 M records is no slower (the hot index pages are the current time buckets;
/// BENCHMARKS.md, twelfth pass).
const WRITER_CACHE: &str = "-12000";
/// The log's size (pages) at which the writer's connection checkpoints at a commit: twice
/// the other connections' bound. The background checkpointer (`checkpointer`) copies a
/// commit's pages after it, but by then the writer has usually written to the log again,
/// and the log restarts only when the writer next writes and finds it all copied, in
/// practice after a checkpoint of its own. At 8,000 that was at nearly every
/// commit of a replay, each time copying that commit's pages on the write path; at 16,000
/// it is every second one, and the log peaks at 80–90 MB in a 1 M-record replay
/// (BENCHMARKS.md, twenty-first pass).
const WRITER_AUTOCHECKPOINT: &str = "16000";
/// Result rows the writer's connection may queue ahead of the writer.
const WRITER_ROW_BUFFER: usize = 4096;
/// Page cache of each reader connection.
const READER_CACHE: &str = "-4000";

pub(crate) fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Milliseconds since the epoch back to a UTC time (out-of-range values clamp to the epoch).
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

impl Store {
    /// Opens (creating if needed) the database and applies pending migrations. Must run
    /// inside a Tokio runtime: it starts the store's background checkpointer there.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|source| StoreError::CreateDir { path: path.to_path_buf(), source })?;
        }
        let url = format!("sqlite://{}", path.display());
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL survives a process crash (kill -9) without losing a commit;
            // only a power loss can drop the last transactions, which then replay from
            // the files because their checkpoints were dropped with them.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory")
            // Readers (the API, summaries, acknowledgements) need little cache; the
            // writer's connection gets WRITER_CACHE below.
            .pragma("cache_size", READER_CACHE)
            // Checkpoint every ~32 MB of WAL instead of every 4 MB: a hot index page that
            // many commits touch is copied back to the database once per checkpoint, and
            // each checkpoint costs an fsync (a quarter of the write path's time at 4 MB).
            .pragma("wal_autocheckpoint", "8000")
            // …and give the disk back afterwards: the WAL never stays larger than this.
            .pragma("journal_size_limit", "67108864");
        // Two processes opening a new store together (a `serve` and a `replay`) race to
        // set it up: one switches the journal mode or applies a migration while the other
        // does too, and fails ("table … already exists", "database is locked"). What
        // failed was rolled back, so the loser tries again and finds the work done.
        let (mut attempt, started) = (0, std::time::Instant::now());
        // A lock held for long (an operator's `sqlite3` session) is not such a race: it is
        // reported once SQLite's own busy wait is over, not waited out again and again.
        let may_retry = |attempt: u32, error: &str| {
            attempt < SETUP_ATTEMPTS && started.elapsed() < SETUP_RETRY_WITHIN && lost_a_setup_race(error)
        };
        let pool = loop {
            attempt += 1;
            let opened = SqlitePoolOptions::new()
                .max_connections(4)
                .min_connections(1)
                .before_acquire(|conn, _| Box::pin(outside_any_transaction(conn)))
                .connect_with(options.clone())
                .await
                .map_err(|source| StoreError::Open { path: path.to_path_buf(), source });
            let pool = match opened {
                Ok(pool) => pool,
                Err(e) if may_retry(attempt, &e.to_string()) => {
                    tokio::time::sleep(SETUP_RETRY_PAUSE).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match MIGRATOR.run(&pool).await {
                Ok(()) => break pool,
                Err(source) if may_retry(attempt, &source.to_string()) => {
                    pool.close().await;
                    tokio::time::sleep(SETUP_RETRY_PAUSE).await;
                }
                Err(sqlx::migrate::MigrateError::VersionMissing(version)) => {
                    return Err(StoreError::Newer { path: path.to_path_buf(), version, known: newest_migration() })
                }
                Err(source) => return Err(StoreError::Migrate { path: path.to_path_buf(), source }),
            }
        };
        digest_legacy_heads(&pool).await.map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .before_acquire(|conn, _| Box::pin(outside_any_transaction(conn)))
            // Each writer connection numbers itself (the pool replaces connections as they
            // age), so the write path knows when its copy of the detectors' recent past
            // was made on another connection, whose `data_version` counts differently.
            .after_connect(|conn, _| {
                Box::pin(async move {
                    let number = WRITER_CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    sqlx::query(&format!("CREATE TEMP TABLE writer_connection AS SELECT {number} AS number"))
                        .execute(conn)
                        .await?;
                    Ok(())
                })
            })
            // The write path sets every incident id itself, from incidents it just read or
            // inserted, and never deletes an incident (retention does, on the other pool,
            // where ON DELETE SET NULL still applies). Checking the reference on every
            // event row cost a lookup per row and, worse, made each multi-row INSERT keep
            // a statement journal: a copy of every page it touched, kept in case a
            // violation had to undo the statement alone (BENCHMARKS.md, sixth pass).
            .connect_with(
                options
                    .clone()
                    .pragma("cache_size", WRITER_CACHE)
                    .pragma("wal_autocheckpoint", WRITER_AUTOCHECKPOINT)
                    .foreign_keys(false)
                    // Rows a statement returns (the incident users an INSERT adds, up to
                    // 512; a lookup's rows, up to a few thousand) queue for the writer
                    // instead of stopping SQLite's thread every 50 rows (sqlx's default)
                    // until the writer, which takes turns with it, wakes up and drains them.
                    .row_buffer_size(WRITER_ROW_BUFFER),
            )
            .await
            .map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
        // Its own connection, opened when first needed: a checkpoint reads the log into a
        // buffer of its own, so the connection's page cache stays small.
        let checkpoints = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .connect_lazy_with(options.pragma("cache_size", "-256"));
        Ok(Store {
            pool,
            writer,
            path: path.to_path_buf(),
            recent: Default::default(),
            correlations: Default::default(),
            checkpointer: Arc::new(checkpointer::Checkpointer::start(checkpoints)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many credential failures the write path holds in memory for the detectors'
    /// windows (a diagnostic; 0 when it holds none it may answer from).
    pub fn detector_rows_in_memory(&self) -> usize {
        cache::lock(&self.recent).entries()
    }

    /// How many correlation ids the write path's filter holds (a diagnostic; 0 when it
    /// answers for nothing, and every correlation lookup goes to the store).
    pub fn correlation_ids_in_memory(&self) -> usize {
        cache::lock(&self.correlations).entries()
    }

    /// How many checkpoints the background checkpointer has run to the end of the log (a
    /// diagnostic).
    pub fn background_checkpoints(&self) -> u64 {
        self.checkpointer.completed()
    }

    /// Closes the pools (after the last commit), first moving everything committed from
    /// the write-ahead log into the database file: a copy of the file (and its key file)
    /// taken after a one-shot command then holds the whole store.
    pub async fn close(&self) {
        self.checkpointer.stop().await;
        // Best effort: a reader elsewhere (an operator's `sqlite3`) may keep the log busy;
        // its content is then still in `-wal` beside the file, as before.
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.writer).await {
            tracing::debug!(error = %e, "the write-ahead log was not checkpointed at close");
        }
        self.writer.close().await;
        self.pool.close().await;
    }

    /// True when a trivial query answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Size of the database and its WAL on disk.
    pub fn size_bytes(&self) -> u64 {
        let mut total = 0;
        for suffix in ["", "-wal"] {
            let mut p = self.path.as_os_str().to_owned();
            p.push(suffix);
            total += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        }
        total
    }

    /// All checkpoints of a source.
    pub async fn checkpoints(&self, source: &str) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT file_key, source, path, dev, ino, fingerprint, file_offset, state
             FROM checkpoints WHERE source = ? ORDER BY file_key",
        )
        .bind(source)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Checkpoint {
                    file_key: r.try_get("file_key")?,
                    source: r.try_get("source")?,
                    path: r.try_get("path")?,
                    dev: r.try_get::<i64, _>("dev")? as u64,
                    ino: r.try_get::<i64, _>("ino")? as u64,
                    fingerprint: crate::ingest::identity::HeadPrint::from_bytes(
                        &r.try_get::<Vec<u8>, _>("fingerprint")?,
                    ),
                    offset: r.try_get::<i64, _>("file_offset")?.max(0) as u64,
                    state: r.try_get("state")?,
                })
            })
            .collect()
    }

    /// Forgets checkpoints of a source that were not updated since `before`.
    pub async fn forget_checkpoints(&self, source: &str, keep: &[String]) -> Result<u64, StoreError> {
        let existing = self.checkpoints(source).await?;
        let mut removed = 0;
        for cp in existing.iter().filter(|c| !keep.contains(&c.file_key)) {
            removed += sqlx::query("DELETE FROM checkpoints WHERE file_key = ?")
                .bind(&cp.file_key)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(removed)
    }

    /// Forgets the checkpoints of a source whose generation has not been seen since
    /// `before` (the tailer re-commits the checkpoint of every file it follows well
    /// within that time, so only vanished files age out). Returns how many were removed.
    pub async fn forget_stale_checkpoints(&self, source: &str, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let removed = sqlx::query("DELETE FROM checkpoints WHERE source = ? AND updated_at < ?")
            .bind(source)
            .bind(to_ms(before))
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(removed)
    }

    /// Open (open + acknowledged) incidents per category; with `source`, those holding an
    /// event of that source.
    pub async fn open_incidents_by_category(
        &self,
        source: Option<&str>,
    ) -> Result<BTreeMap<Category, i64>, StoreError> {
        // `sources` is a comma-separated list of names, which never hold a comma.
        let rows = sqlx::query(
            "SELECT category, COUNT(*) AS n FROM incidents WHERE status IN ('open', 'acknowledged')
                AND (?1 IS NULL OR instr(',' || sources || ',', ',' || ?1 || ',') > 0)
              GROUP BY category",
        )
        .bind(source)
        .fetch_all(&self.pool)
        .await?;
        let mut out = BTreeMap::new();
        for r in rows {
            let name: String = r.try_get("category")?;
            let category =
                Category::parse(&name).ok_or(StoreError::Corrupt { column: "incidents.category", value: name })?;
            out.insert(category, r.try_get::<i64, _>("n")?);
        }
        Ok(out)
    }

    /// The newest event time stored (the event-time clock), if any.
    pub async fn watermark(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let v: Option<i64> = sqlx::query_scalar(WATERMARK).fetch_optional(&self.pool).await?;
        Ok(v.map(from_ms))
    }

    /// Acknowledges an open incident; a resolved one is returned unchanged. `Ok(None)` when
    /// there is no such incident.
    pub async fn acknowledge(
        &self,
        id: i64,
        by: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<incidents::Incident>, StoreError> {
        // A resolved incident stays as it was, who resolved it and when included: there
        // is nothing left to acknowledge (a recurrence reopens it, and clears the mark).
        sqlx::query(
            "UPDATE incidents SET status = 'acknowledged', acknowledged_by = ?, acknowledged_at = ?
             WHERE id = ? AND status != 'resolved'",
        )
        .bind(by)
        .bind(to_ms(now))
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.incident(id).await
    }

    /// Resolves an incident by hand, at the current event-time clock (so that a later
    /// failure reopens it and an older, late one does not).
    pub async fn resolve(&self, id: i64, now: DateTime<Utc>) -> Result<Option<incidents::Incident>, StoreError> {
        // On the clock the quiet-period sweep reads: a failure that happened before the
        // resolve but arrives after it (Entra's records come minutes late) joins the
        // resolved incident instead of reopening it.
        let at = self.incident_clock_at(to_ms(now)).await?.unwrap_or(to_ms(now));
        let changed = sqlx::query(
            "UPDATE incidents SET status = 'resolved', resolved_at = COALESCE(resolved_at, MAX(?, last_seen)) WHERE id = ?",
        )
        .bind(at)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(None);
        }
        self.incident(id).await
    }

    /// A random secret kept in the store's key file ([`Store::key_file`], readable by its
    /// owner alone), created on first use. It keys the user and IP hashes the incidents
    /// and detectors count with when no `privacy.hash_key` is configured, and the content
    /// keys of Passport entries. Kept out of the database: with it, a copy of the database
    /// could check guessed user names and recover IP addresses from their hashes.
    pub async fn secret(&self) -> Result<Vec<u8>, StoreError> {
        let key_file = self.key_file();
        let key_err = |source| StoreError::KeyFile { path: key_file.clone(), source };
        let owner = database_owner(&self.path);
        // A store from before the key file kept its secret in the database, and that secret
        // keyed every hash it holds: it is moved out with its value, and wins over a key
        // file already there (an older backup restored beside a newer store's key).
        let stored: Option<String> =
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'secret'").fetch_optional(&self.pool).await?;
        if let Some(secret) = stored.filter(|v| is_secret(v)) {
            write_key_file(&key_file, &secret, owner, KeyWrite::Replace).map_err(key_err)?;
            self.forget_stored_secret().await?;
            return Ok(secret.into_bytes());
        }
        if let Some(secret) = read_key_file(&key_file).map_err(key_err)? {
            return Ok(secret.into_bytes());
        }
        // No RNG crate: SQLite's randomblob() is a CSPRNG-backed source.
        let fresh: String = sqlx::query_scalar("SELECT lower(hex(randomblob(32)))").fetch_one(&self.pool).await?;
        // Created only where none is: two processes starting on a new store both use the
        // one that got there first.
        write_key_file(&key_file, &fresh, owner, KeyWrite::IfAbsent).map_err(key_err)?;
        match read_key_file(&key_file).map_err(key_err)? {
            Some(secret) => Ok(secret.into_bytes()),
            None => Err(key_err(std::io::Error::new(std::io::ErrorKind::NotFound, "written, then gone"))),
        }
    }

    /// The file holding the secret that keys the store's hashes: the database's path
    /// with `.key` added, so that a copy of the database alone cannot check a guessed user
    /// name or IP address against them.
    pub fn key_file(&self) -> PathBuf {
        key_file_of(&self.path)
    }

    /// Removes the secret a version before the key file kept in the database (the caller
    /// read it there), zeroing its bytes (secure_delete) and copying the zeroed pages back
    /// from the WAL at once.
    async fn forget_stored_secret(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("PRAGMA secure_delete = ON").execute(&mut *conn).await?;
        sqlx::query("DELETE FROM meta WHERE key = 'secret'").execute(&mut *conn).await?;
        sqlx::query("PRAGMA secure_delete = OFF").execute(&mut *conn).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut *conn).await?;
        tracing::info!(key_file = %self.key_file().display(), "moved the store's secret out of the database into its key file");
        Ok(())
    }

    /// Notes that `source` starts, and says whether this is its first start ever (when
    /// `start_at = "end"` applies). A source that had checkpoints before starts were noted
    /// has started before; one whose first start found no file has too.
    pub async fn first_start_of(&self, source: &str) -> Result<bool, StoreError> {
        let noted = sqlx::query("INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) DO NOTHING")
            .bind(format!("source_started:{source}"))
            .execute(&self.pool)
            .await?
            .rows_affected();
        if noted == 0 {
            return Ok(false);
        }
        let had_checkpoints: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM checkpoints WHERE source = ?)")
            .bind(source)
            .fetch_one(&self.pool)
            .await?;
        Ok(!had_checkpoints)
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The write path's own connection (see `Store::writer`).
    pub(crate) fn writer_pool(&self) -> &SqlitePool {
        &self.writer
    }
}

/// What one pruning pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Events deleted.
    pub events: u64,
    /// Resolved incidents deleted.
    pub incidents: u64,
}

impl Store {
    /// Deletes events older than `events_age` and resolved incidents whose resolution is
    /// older than `incidents_age`, both measured back from the newest event time. Works
    /// in batches of `batch` rows, each its own short transaction, yielding in between so
    /// ingest commits are never held up for long.
    pub async fn prune(
        &self,
        events_age: std::time::Duration,
        incidents_age: std::time::Duration,
        batch: u32,
    ) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        let Some(now) = self.watermark().await? else {
            return Ok(pruned);
        };
        let now = to_ms(now);
        let age = |d: std::time::Duration| now.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let (events_before, incidents_before) = (age(events_age), age(incidents_age));
        // First the promise, then the deletes: from now on records older than this are
        // not stored again (their keys go with them, so a re-sent one would count twice).
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('retention_horizon_ms', ?1)
             ON CONFLICT (key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
        )
        .bind(events_before)
        .execute(&self.pool)
        .await?;
        pruned.events = self
            .delete_in_batches(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE occurred_at < ? LIMIT ?)",
                events_before,
                batch,
            )
            .await?;
        // WITHOUT ROWID: delete by key slices of at most `batch` rows. The key starts with
        // dedup_at (= occurred_at, or 0 for the few records without a time of their own).
        pruned.events += self
            .delete_in_batches(
                "DELETE FROM successes WHERE dedup_at = 0 AND dedup_key IN
                    (SELECT dedup_key FROM successes WHERE dedup_at = 0 AND occurred_at < ?1 LIMIT ?2)",
                events_before,
                batch,
            )
            .await?;
        pruned.events += self
            .delete_in_batches(
                "DELETE FROM successes WHERE dedup_at > 0 AND dedup_at <= (SELECT MAX(dedup_at) FROM
                    (SELECT dedup_at FROM successes WHERE dedup_at > 0 AND dedup_at < ?1 ORDER BY dedup_at LIMIT ?2))",
                events_before,
                batch,
            )
            .await?;
        // The ids stored under a logged time go with their rows (not counted: no sign-ins).
        self.delete_in_batches(
            "DELETE FROM logged_time_keys WHERE dedup_key IN
                (SELECT dedup_key FROM logged_time_keys WHERE dedup_at < ?1 LIMIT ?2)",
            events_before,
            batch,
        )
        .await?;
        // The ids of removed incidents are never given again (see `open_incident`).
        let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM incidents").fetch_one(&self.pool).await?;
        sqlx::query(commit::RAISE_INCIDENT_ID_FLOOR).bind(newest.unwrap_or(0)).execute(&self.pool).await?;
        pruned.incidents = self
            .delete_in_batches(
                "DELETE FROM incidents WHERE id IN
                    (SELECT id FROM incidents WHERE status = 'resolved' AND resolved_at < ? LIMIT ?)",
                incidents_before,
                batch,
            )
            .await?;
        Ok(pruned)
    }

    /// Runs `sql` (binding a cutoff and a batch size) until it deletes less than a batch,
    /// yielding between batches so the writer gets the database in between.
    async fn delete_in_batches(&self, sql: &str, cutoff: i64, batch: u32) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let n = sqlx::query(sql).bind(cutoff).bind(i64::from(batch)).execute(&self.pool).await?.rows_affected();
            total += n;
            if n < u64::from(batch) {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }

    /// Active (open or acknowledged) incidents whose catalogue entry is none of `known`
    /// (an operator entry removed by a reload): `(id, primary code, category)`.
    pub async fn incidents_of_removed_entries(
        &self,
        known: &HashSet<&str>,
    ) -> Result<Vec<(i64, Option<i64>, String)>, StoreError> {
        let rows: Vec<(i64, String, Option<i64>, String)> = sqlx::query_as(
            "SELECT id, entry_id, code, category FROM incidents
             WHERE status IN ('open', 'acknowledged') AND entry_id IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter(|(_, entry, _, _)| !known.contains(entry.as_str()))
            .map(|(id, _, code, category)| (id, code, category))
            .collect())
    }

    /// Points each incident `(id, entry, title, severity, remediation)` at another
    /// catalogue entry, with its texts (an incident whose entry a reload removed, taken
    /// over by the entry now serving its code).
    pub async fn retarget_incidents(&self, moves: &[(i64, String, String, String, String)]) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut changed = 0;
        for (id, entry, title, severity, remediation) in moves {
            changed += sqlx::query(
                "UPDATE incidents SET entry_id = ?, title = ?, severity = ?, remediation = ?
                 WHERE id = ? AND status IN ('open', 'acknowledged')",
            )
            .bind(entry)
            .bind(title)
            .bind(severity)
            .bind(remediation)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// After a catalogue reload: active incidents take the new title, severity and
    /// remediation of their entry. Stored events keep their classification.
    pub async fn refresh_incident_texts(&self, texts: &[(String, String, String, String)]) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut changed = 0;
        for (entry, title, severity, remediation) in texts {
            changed += sqlx::query(
                "UPDATE incidents SET title = ?, severity = ?, remediation = ?
                 WHERE entry_id = ? AND status IN ('open', 'acknowledged')
                   AND (title != ? OR severity != ? OR remediation != ?)",
            )
            .bind(title)
            .bind(severity)
            .bind(remediation)
            .bind(entry)
            .bind(title)
            .bind(severity)
            .bind(remediation)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(changed)
    }
}

/// Whether a pooled connection may be handed out again: not while sqlx counts a
/// transaction open on it. SQLite rolls a transaction back by itself on some errors (a
/// full disk); sqlx's rollback of it then fails and its count stays at one, and every
/// BEGIN on that connection would fail until a restart. Such a connection is closed and
/// replaced instead.
async fn outside_any_transaction(conn: &mut sqlx::SqliteConnection) -> Result<bool, sqlx::Error> {
    use sqlx::{Connection, TransactionManager};
    // A round trip through the connection's worker first: the rollback a dropped
    // transaction queued has then run, and the count is settled.
    conn.ping().await?;
    Ok(<sqlx::Sqlite as sqlx::Database>::TransactionManager::get_transaction_depth(conn) == 0)
}

#[cfg(test)]
pub(crate) mod tests {

    #[tokio::test]
    async fn a_write_lock_held_elsewhere_is_busy_and_other_errors_are_not() {
        use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
        let dir = tempfile::tempdir().expect("tempdir");
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("b.db"))
            .create_if_missing(true)
            .busy_timeout(Duration::from_millis(0));
        let pool = SqlitePoolOptions::new().max_connections(2).connect_with(options).await.expect("pool");
        sqlx::query("CREATE TABLE t (x)").execute(&pool).await.expect("create");
        let mut holder = pool.acquire().await.expect("conn");
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *holder).await.expect("lock");
        let mut other = pool.acquire().await.expect("conn");
        let locked = sqlx::query("INSERT INTO t VALUES (1)").execute(&mut *other).await.expect_err("locked");
        assert!(StoreError::from(locked).is_busy());
        let wrong = sqlx::query("SELECT nope FROM t").execute(&mut *other).await.expect_err("no column");
        assert!(!StoreError::from(wrong).is_busy());
        sqlx::query("ROLLBACK").execute(&mut *holder).await.expect("unlock");
    }

    use super::*;
    use crate::event::Position;

    /// An AADSTS50076 failure from `entra` at `at_ms`, with record id `r-1` and nothing
    /// else: tests set what they need on top.
    pub(crate) fn failure_event(at_ms: i64) -> SignInEvent {
        let t = from_ms(at_ms);
        SignInEvent {
            received_at: t,
            occurred_at: t,
            occurred_from_record: true,
            time_is_logged: false,
            source: "entra".into(),
            format: "azure-diagnostic".into(),
            outcome: Outcome::Failure,
            category: Some(Category::MfaRequired),
            codes: vec![50076],
            entry_id: None,
            message: None,
            user: None,
            app_id: None,
            app_name: None,
            tenant_id: None,
            client_app: None,
            auth_protocol: None,
            token_issuer_type: None,
            ip: None,
            correlation_id: None,
            record_id: Some("r-1".into()),
            device: None,
            position: None,
        }
    }

    fn event(outcome: Outcome, app_id: Option<&str>, app_name: Option<&str>) -> SignInEvent {
        let mut e = failure_event(1_772_640_000_000);
        e.outcome = outcome;
        e.app_id = app_id.map(String::from);
        e.app_name = app_name.map(String::from);
        e.tenant_id = Some("Tenant".into());
        e.record_id = Some("ABC-1".into());
        e.position = Some(Position { file_key: "f".into(), offset: 7 });
        e
    }

    /// The key and fingerprint worked out on the reader's side are exactly what the
    /// event itself gives, and only a failure has a fingerprint.
    #[test]
    fn a_stored_event_carries_its_own_key_and_fingerprint() {
        let s = |e: SignInEvent| StoredEvent::new(e, String::new(), String::new(), String::new(), None, None);
        let failure = s(event(Outcome::Failure, Some("app-1"), Some("Name")));
        assert_eq!(failure.dedup_key(), Some("id:abc-1"));
        assert_eq!(failure.dedup_key().map(String::from), failure.event.dedup_key());
        let expected = incidents::fingerprint(Category::MfaRequired, Some(50076), None, Some("app-1"), Some("Tenant"));
        assert_eq!(failure.fingerprint(), Some(expected.as_str()));
        // Without an app id, the app's name stands in for it.
        let by_name = s(event(Outcome::Failure, None, Some("Name")));
        let expected = incidents::fingerprint(Category::MfaRequired, Some(50076), None, Some("Name"), Some("Tenant"));
        assert_eq!(by_name.fingerprint(), Some(expected.as_str()));
        assert_eq!(s(event(Outcome::Interrupt, Some("app-1"), None)).fingerprint(), None);
        let mut anonymous = event(Outcome::Failure, None, None);
        (anonymous.record_id, anonymous.position) = (None, None);
        assert_eq!(s(anonymous).dedup_key(), None);
    }
}
