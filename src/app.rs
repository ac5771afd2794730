//! The service as a value: `Application::build` opens the store, loads the catalogue,
//! binds the listener; `run` drives ingest and HTTP until the shutdown future
//! completes, then drains in phases (stop reading, commit the batch in flight, close).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use notify::Watcher;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, AppState, SourceHealth};
use crate::classify::{Catalogue, CatalogueError, SharedClassifier};
use crate::config::Settings;
use crate::event::Category;
use crate::ingest::tail;
use crate::metrics::{Metrics, MetricsError};
use crate::pipeline::{run_writer, BatchLimits, Normalizer, Privacy, SourceDefaults, Writer};
use crate::store::{Store, StoreError};

/// Start-up and run failures.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The catalogue is invalid.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    /// Metrics could not be registered.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    /// The configuration is unusable (already validated, so rare).
    #[error("configuration: {0}")]
    Config(String),
    /// The writer stopped on an error: the daemon stopped with it.
    #[error("the writer stopped: {0}")]
    Writer(String),
    /// SIGINT/SIGTERM could not drain within `server.shutdown_timeout` (the store was
    /// locked, a commit hung): what was not committed is read again at the next start.
    #[error("shutdown timed out after {0:?}: records not yet committed will be read again at the next start")]
    ShutdownTimedOut(Duration),
}

/// Everything built from the settings, shared by `serve` and `replay`.
pub struct Core {
    /// The settings.
    pub settings: Arc<Settings>,
    /// The store.
    pub store: Store,
    /// The live classifier.
    pub classifier: Arc<SharedClassifier>,
    /// Metrics.
    pub metrics: Metrics,
    /// Normalizer.
    pub normalizer: Normalizer,
    /// The writer.
    pub writer: Writer,
    /// The configuration file the settings came from (`None`: the embedded default, or
    /// settings built in code). A catalogue reload reads its `[catalogue]` section again.
    pub config_file: Option<PathBuf>,
}

/// Every (category, code) failure series the catalogue can give, so that each starts at 0:
/// all its failure entries (conditional ones too, such as a federated 50126), not only the
/// Passport-relevant, since any code can reach Entra's logs (a few hundred series per source).
fn failure_pairs(catalogue: &Catalogue) -> Vec<(Category, u32)> {
    catalogue
        .entries()
        .iter()
        .filter(|e| Category::failure_categories().any(|c| c == e.category))
        .flat_map(|e| e.codes.iter().map(move |c| (e.category, *c)))
        .collect()
}

fn known_codes(catalogue: &Catalogue) -> Vec<u32> {
    catalogue.entries().iter().flat_map(|e| e.codes.iter().copied()).collect()
}

impl Core {
    /// Opens the store and loads the catalogue. `sources` are the metric source names
    /// to pre-initialise.
    pub async fn build(settings: Settings, sources: Vec<String>) -> Result<Core, AppError> {
        let (classifier, _) = crate::classify::reload::load_checked(
            &settings.catalogue.extra_paths,
            settings.catalogue.federated_domains.clone(),
            false,
        )?;
        let catalogue = classifier.catalogue();
        let metrics = Metrics::new(&sources, &known_codes(catalogue), &failure_pairs(catalogue))?;
        metrics.catalogue_entries.set(catalogue.len() as i64);
        let classifier = Arc::new(SharedClassifier::new(classifier));
        let store = Store::open(&settings.storage.path).await?;
        let secret = store.secret().await?;
        let privacy = Privacy::new(&settings.privacy, &secret);
        let defaults = settings
            .sources
            .iter()
            .map(|s| (s.name.clone(), SourceDefaults { app_id: s.app_id.clone(), tenant_id: s.tenant_id.clone() }))
            .collect();
        let normalizer = Normalizer::new(classifier.clone(), privacy).with_source_defaults(defaults);
        let writer = Writer::new(store.clone(), metrics.clone(), settings.incident_policy());
        writer.refresh_incident_gauge().await?;
        metrics.store_size.set(store.size_bytes() as i64);
        Ok(Core { settings: Arc::new(settings), store, classifier, metrics, normalizer, writer, config_file: None })
    }

    /// Batch limits from the settings.
    pub fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_records: self.settings.storage.batch_max_records,
            max_wait: self.settings.storage.batch_max_wait.get(),
            fill: false,
            commit_records: self.settings.storage.batch_max_records,
            commit_after: self.settings.storage.batch_max_wait.get(),
        }
    }

    /// Reloads the catalogue (SIGHUP or a changed file): the configuration file's
    /// `[catalogue]` section read again (`extra_paths`, `federated_domains`), then its
    /// files, validated first, swapped atomically; an invalid file (or configuration) keeps
    /// the old catalogue. Open incidents take the new texts of their entries; stored events
    /// keep their classification.
    pub async fn reload_catalogue(&self) {
        let reread = match &self.config_file {
            Some(path) => match crate::config::load(Some(path)) {
                Ok(loaded) => Some(loaded.settings.catalogue),
                Err(e) => {
                    self.metrics.catalogue_reloads.with_label_values(&["error"]).inc();
                    tracing::error!(error = %e, "catalogue reload failed: the configuration does not load; keeping the previous catalogue");
                    return;
                }
            },
            None => None,
        };
        let s = reread.as_ref().unwrap_or(&self.settings.catalogue);
        match self.classifier.reload(&s.extra_paths, s.federated_domains.clone()) {
            Ok(n) => {
                self.metrics.catalogue_entries.set(n as i64);
                let current = self.classifier.current();
                self.metrics.set_known_codes(&known_codes(current.catalogue()));
                self.metrics.init_catalogue_series(&failure_pairs(current.catalogue()));
                let texts: Vec<(String, String, String, String)> = current
                    .catalogue()
                    .entries()
                    .iter()
                    .map(|e| (e.id.clone(), e.title.clone(), e.severity.as_str().to_string(), e.remediation.clone()))
                    .collect();
                match self.store.refresh_incident_texts(&texts).await {
                    Ok(changed) => tracing::info!(entries = n, incidents_updated = changed, "catalogue reloaded"),
                    Err(e) => tracing::warn!(error = %e, "catalogue reloaded; refreshing incident texts failed"),
                }
                self.retarget_incidents_of_removed_entries(current.catalogue()).await;
                // Counted once everything the reload does is done, so that a reload the
                // counter shows has also reached the metrics and the stored incidents.
                self.metrics.catalogue_reloads.with_label_values(&["success"]).inc();
            }
            Err(e) => {
                self.metrics.catalogue_reloads.with_label_values(&["error"]).inc();
                tracing::error!(error = %e, "catalogue reload failed; keeping the previous catalogue");
            }
        }
    }
}

impl Core {
    /// An incident whose entry the reload removed (an operator override taken out) would
    /// go on showing that entry's title and fix, and gather new failures under them: it
    /// is handed to the entry that now serves its code, when that entry groups its
    /// failures under the same category (else its failures now open an incident of
    /// their own, and it keeps what it had, as an `unclassified` one does).
    async fn retarget_incidents_of_removed_entries(&self, catalogue: &crate::classify::catalogue::Catalogue) {
        let known: std::collections::HashSet<&str> = catalogue.entries().iter().map(|e| e.id.as_str()).collect();
        let orphans = match self.store.incidents_of_removed_entries(&known).await {
            Ok(orphans) => orphans,
            Err(e) => {
                tracing::warn!(error = %e, "catalogue reloaded; finding incidents of removed entries failed");
                return;
            }
        };
        let moves: Vec<(i64, String, String, String, String)> = orphans
            .into_iter()
            .filter_map(|(id, code, category)| {
                let entry = catalogue.entry_for_code(u32::try_from(code?).ok()?)?;
                (entry.category.as_str() == category).then(|| {
                    (
                        id,
                        entry.id.clone(),
                        entry.title.clone(),
                        entry.severity.as_str().to_string(),
                        entry.remediation.clone(),
                    )
                })
            })
            .collect();
        if moves.is_empty() {
            return;
        }
        match self.store.retarget_incidents(&moves).await {
            Ok(changed) => tracing::info!(
                incidents_updated = changed,
                "incidents of removed catalogue entries handed to their code's entry"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "catalogue reloaded; handing over incidents of removed entries failed")
            }
        }
    }
}

/// The daemon, built and bound, ready to run.
pub struct Application {
    core: Core,
    listener: TcpListener,
    addr: SocketAddr,
}

impl Application {
    /// Builds everything and binds the listener (port 0 picks a free port).
    pub async fn build(settings: Settings) -> Result<Application, AppError> {
        let mut sources: Vec<String> = settings.sources.iter().map(|s| s.name.clone()).collect();
        sources.push(api::HTTP_SOURCE.to_string());
        let listen = settings.listen_addr().map_err(AppError::Config)?;
        // A replay takes the shipped patterns as the test suite checked them. The daemon
        // checks them again (a build may have skipped the tests) and compiles the pattern
        // set before it serves, so that no request pays for the compile.
        crate::classify::Catalogue::check_shipped()?;
        let core = Core::build(settings, sources).await?;
        core.classifier.current().prepare();
        let listener =
            TcpListener::bind(listen).await.map_err(|source| AppError::Bind { addr: listen.to_string(), source })?;
        let addr = listener.local_addr().map_err(|source| AppError::Bind { addr: listen.to_string(), source })?;
        Ok(Application { core, listener, addr })
    }

    /// Names the configuration file the settings came from: a catalogue reload (SIGHUP,
    /// a changed catalogue file) reads its `[catalogue]` section again.
    pub fn set_config_file(&mut self, path: PathBuf) {
        self.core.config_file = Some(path);
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The store (for tests).
    pub fn store(&self) -> &Store {
        &self.core.store
    }

    /// Runs until `shutdown` completes, then drains and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), AppError> {
        let Application { core, listener, addr } = self;
        let core = Arc::new(core);
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let health: SourceHealth = Arc::new(RwLock::new(BTreeMap::new()));
        // A few chunks in flight are enough to keep the writer busy; more only hold memory
        // (the files are the buffer when the writer lags).
        let (tx, rx) = mpsc::channel(8);

        let mut writer_task = tokio::spawn(run_writer(rx, core.writer.clone(), core.limits(), None));

        let mut wakers = Vec::new();
        let mut tail_threads = Vec::new();
        let mut earlier: Vec<(String, crate::ingest::discover::PathMatcher)> = Vec::new();
        for source in core.settings.sources.clone() {
            let checkpoints = core.store.checkpoints(&source.name).await?;
            let first_run = core.store.first_start_of(&source.name).await?;
            let (wake_tx, wake_rx) = std_mpsc::channel();
            wakers.push(wake_tx.clone());
            let ctx = tail::TailContext {
                source: source.clone(),
                checkpoints,
                normalizer: core.normalizer.clone(),
                tx: tx.clone(),
                metrics: core.metrics.clone(),
                cancel: cancel.clone(),
                wake_rx,
                wake_tx,
                earlier: earlier.clone(),
                first_run,
            };
            if let Ok(matcher) = crate::ingest::discover::PathMatcher::new(&source.paths, &source.exclude) {
                earlier.push((source.name.clone(), matcher));
            }
            if let Ok(mut h) = health.write() {
                h.insert(source.name.clone(), Ok(()));
            }
            core.metrics.source_up.with_label_values(&[&source.name]).set(1);
            let health = health.clone();
            let metrics = core.metrics.clone();
            let name = source.name.clone();
            tail_threads.push(tokio::task::spawn_blocking(move || {
                let result = tail::run(ctx);
                if let Err(e) = &result {
                    tracing::error!(source = %name, error = %e, "source stopped");
                    metrics.source_up.with_label_values(&[&name]).set(0);
                    if let Ok(mut h) = health.write() {
                        h.insert(name.clone(), Err(e.to_string()));
                    }
                }
            }));
        }
        drop(tx);

        // Shutdown must not wait for a poll interval to pass.
        {
            let cancel = cancel.clone();
            tracker.spawn(async move {
                cancel.cancelled().await;
                for w in wakers {
                    let _ = w.send(());
                }
            });
        }
        spawn_reloader(&tracker, core.clone(), cancel.clone());
        {
            let core = core.clone();
            let cancel = cancel.clone();
            tracker.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(15));
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tick.tick() => {
                            if let Err(e) = core.writer.refresh_incident_gauge().await {
                                tracing::warn!(error = %e, "cannot refresh incident gauge");
                            }
                            core.metrics.store_size.set(core.store.size_bytes() as i64);
                        }
                    }
                }
            });
        }

        {
            // The incident clock runs on while no input arrives (`Writer::resolve_quiet`),
            // checked a few times per shortest quiet period so that a resolution is late
            // by a fraction of it at most.
            let policy = core.settings.incident_policy();
            let shortest = policy.quiet_by_category.values().copied().fold(policy.quiet_period, Duration::min);
            let every = (shortest / 4).clamp(Duration::from_secs(1), Duration::from_secs(15));
            let core = core.clone();
            let cancel = cancel.clone();
            tracker.spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tick.tick() => {
                            match core.writer.resolve_quiet(every).await {
                                Ok(0) => {}
                                Ok(n) => tracing::info!(incidents = n, "quiet incidents resolved while no input arrived"),
                                Err(e) => tracing::warn!(error = %e, "cannot resolve quiet incidents; will retry"),
                            }
                        }
                    }
                }
            });
        }

        spawn_checkpoint_hygiene(&tracker, core.clone(), cancel.clone());
        {
            let core = core.clone();
            let cancel = cancel.clone();
            tracker.spawn(async move {
                let r = &core.settings.retention;
                let mut tick = tokio::time::interval(r.interval.get());
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tick.tick() => {
                            // A prune of a large store takes seconds, in batches that each
                            // commit on their own: a stop does not wait for the rest (the
                            // next start prunes on), or it would run past shutdown_timeout.
                            let pruned = tokio::select! {
                                _ = cancel.cancelled() => break,
                                p = core.store.prune(r.events.get(), r.incidents.get(), 1000) => p,
                            };
                            match pruned {
                                Ok(p) if p.events + p.incidents > 0 => {
                                    tracing::info!(events = p.events, incidents = p.incidents, "retention pruned old data");
                                    if let Err(e) = core.writer.refresh_incident_gauge().await {
                                        tracing::warn!(error = %e, "cannot refresh incident gauge");
                                    }
                                }
                                Ok(_) => {}
                                Err(e) => tracing::warn!(error = %e, "retention pruning failed; will retry"),
                            }
                        }
                    }
                }
            });
        }

        let state = AppState {
            store: core.store.clone(),
            writer: core.writer.clone(),
            classifier: core.classifier.clone(),
            normalizer: core.normalizer.clone(),
            settings: core.settings.clone(),
            health,
        };
        let server = {
            let cancel = cancel.clone();
            let limits = HttpLimits {
                header_read_timeout: core.settings.server.request_timeout.get(),
                // Requests in flight (a push committing) finish well within this; a
                // half-sent request must not hold up the final commit.
                drain: (core.settings.server.shutdown_timeout.get() / 2).min(Duration::from_secs(2)),
            };
            tokio::spawn(serve_http(listener, api::router(state), cancel, limits))
        };
        // Poll the shutdown future once before announcing readiness: signal handlers
        // are installed on first poll, and a SIGTERM right after "serving" must drain.
        let mut shutdown = std::pin::pin!(shutdown);
        let already = tokio::select! {
            biased;
            _ = &mut shutdown => true,
            _ = std::future::ready(()) => false,
        };
        tracing::info!(%addr, sources = core.settings.sources.len(), "passportd serving");
        // The writer ends early only on an error (it waits out a locked store): then the
        // daemon stops with exit 1, for its supervisor to restart it, instead of running
        // on without storing what it reads. (With no file sources it ends at once, fine.)
        let mut writer_done = None;
        if !already {
            tokio::select! {
                _ = &mut shutdown => {}
                r = &mut writer_task => writer_done = Some(r),
            }
        }
        let writer_error = match &writer_done {
            Some(Ok(Err(e))) => Some(e.to_string()),
            Some(Err(e)) => Some(e.to_string()),
            Some(Ok(Ok(_))) | None => None,
        };
        match &writer_error {
            Some(e) => tracing::error!(
                error = %e,
                "the writer stopped; shutting down (file positions commit with their records: a restart reads on from the last commit)"
            ),
            None if writer_done.is_some() && !already => shutdown.await,
            None => {}
        }
        tracing::info!("shutting down: stopping readers, committing the batch in flight");
        cancel.cancel();
        tracker.close();
        let deadline = core.settings.server.shutdown_timeout.get();
        let drain = async {
            for t in tail_threads {
                let _ = t.await;
            }
            // All senders are gone once the readers stop: the writer commits what it
            // holds and returns.
            if writer_done.is_none() {
                match writer_task.await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "final commit failed"),
                    Err(e) => tracing::error!(error = %e, "writer task failed"),
                }
            }
            tracker.wait().await;
            server.await
        };
        match tokio::time::timeout(deadline, drain).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(AppError::Serve(e)),
            Ok(Err(e)) => tracing::error!(error = %e, "HTTP task failed"),
            Err(_) => {
                // Not a clean stop, and a supervisor must be able to tell: exit 1, without
                // waiting on the store (a connection stuck in SQLite's busy wait would
                // hold the exit another 10 s past the deadline).
                return Err(AppError::ShutdownTimedOut(deadline));
            }
        }
        core.store.close().await;
        tracing::info!("stopped");
        match writer_error {
            // Named with the store it could not write: a full disk or a lock is that file's.
            Some(e) => Err(AppError::Writer(format!("{e} (store {})", core.store.path().display()))),
            None => Ok(()),
        }
    }
}

/// Connections served at once; more wait to be accepted (the kernel's backlog holds
/// them), so idle or half-sent ones cannot use up the process's file descriptors.
const MAX_HTTP_CONNECTIONS: usize = 256;

/// What bounds the HTTP server's connections.
#[derive(Debug, Clone, Copy)]
struct HttpLimits {
    /// A client must send a request's whole header within this (slowloris), and an idle
    /// keep-alive connection is closed after it.
    header_read_timeout: Duration,
    /// At shutdown, how long requests in flight may take to finish; connections left
    /// after it (a half-sent request) are dropped rather than delaying the final commit.
    drain: Duration,
}

/// The HTTP server: hyper's HTTP/1 connections over `router`, each bounded by `limits`,
/// until `cancel`.
async fn serve_http(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    cancel: CancellationToken,
    limits: HttpLimits,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // Ends the connections still open after the drain: their tasks are detached, and a
    // handler must not reach the store once it is closing.
    let abandon = CancellationToken::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_HTTP_CONNECTIONS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was taken:
                    // the listener itself is fine; try again shortly.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Small answers (/healthz, an API page) go out at once, not after Nagle's wait for an
        // acknowledgement.
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let abandoned = abandon.clone();
        tokio::spawn(async move {
            tokio::select! {
                ended = connection => {
                    if let Err(e) = ended {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                    }
                }
                _ = abandoned.cancelled() => {}
            }
            drop(permit);
        });
    }
    if tokio::time::timeout(limits.drain, graceful.shutdown()).await.is_err() {
        tracing::info!(after = ?limits.drain, "closing HTTP connections still open at shutdown");
        abandon.cancel();
    }
    Ok(())
}

/// Forgets the checkpoints of file generations unseen for the source's `forget_after`,
/// including files that vanished while the daemon was down. The tailer re-commits the
/// checkpoint of every file it follows well within that time, so a sweep only meets
/// vanished ones; the first sweep waits until the tailers have had time to do so.
fn spawn_checkpoint_hygiene(tracker: &TaskTracker, core: Arc<Core>, cancel: CancellationToken) {
    let sources: Vec<(String, Duration)> =
        core.settings.sources.iter().map(|s| (s.name.clone(), s.forget_after.get())).collect();
    let Some(shortest) = sources.iter().map(|(_, d)| *d).min() else {
        return;
    };
    let every = (shortest / 4).clamp(Duration::from_secs(15), Duration::from_secs(3600));
    tracker.spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {
                    for (name, after) in &sources {
                        // Checked: a forget_after longer than the calendar reaches forgets nothing.
                        let Some(cutoff) = chrono::Duration::from_std(*after)
                            .ok()
                            .and_then(|after| chrono::Utc::now().checked_sub_signed(after))
                        else {
                            continue;
                        };
                        match core.store.forget_stale_checkpoints(name, cutoff).await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(source = %name, forgotten = n, "forgot checkpoints of files unseen for forget_after"),
                            Err(e) => tracing::warn!(source = %name, error = %e, "cannot forget stale checkpoints; will retry"),
                        }
                    }
                }
            }
        }
    });
}

/// Reloads the catalogue on SIGHUP and when an operator catalogue file changes.
fn spawn_reloader(tracker: &TaskTracker, core: Arc<Core>, cancel: CancellationToken) {
    // A reload is asked for by a change in a watched folder or by SIGHUP (which always
    // reloads). A burst of requests is one wake-up, so that a busy folder (the store's own
    // files beside the catalogue's) can never crowd out a SIGHUP.
    #[derive(Default)]
    struct Asked {
        hangup: std::sync::atomic::AtomicBool,
        wake: tokio::sync::Notify,
    }
    let asked = Arc::new(Asked::default());
    let paths: Vec<PathBuf> = core.settings.catalogue.extra_paths.clone();
    let watcher = if paths.is_empty() {
        None
    } else {
        let asked = Arc::clone(&asked);
        match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                // Only changes: the reload's own read of the file is an event too, and
                // reloading on it would reload again, forever. Any change in the folder,
                // not only one naming the file: a Kubernetes ConfigMap changes its files
                // by swapping the `..data` link they point through. The reload compares
                // the files' contents first.
                if crate::ingest::tail::is_change(&ev.kind) {
                    asked.wake.notify_one();
                }
            }
        }) {
            Ok(mut w) => {
                for p in &paths {
                    // Watch the folder: editors replace files by rename, which a watch on
                    // the file itself would miss.
                    let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
                    if let Err(e) = w.watch(dir, notify::RecursiveMode::NonRecursive) {
                        tracing::warn!(folder = %dir.display(), error = %e, "cannot watch catalogue folder; SIGHUP still reloads");
                    }
                }
                Some(w)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch catalogue files; SIGHUP still reloads");
                None
            }
        }
    };
    #[cfg(unix)]
    {
        let asked = Arc::clone(&asked);
        let cancel = cancel.clone();
        // Installed here, before the daemon says it is serving: a SIGHUP that arrives
        // before a spawned task first runs would otherwise kill the process.
        use tokio::signal::unix::{signal, SignalKind};
        let hup = signal(SignalKind::hangup());
        if hup.is_err() {
            tracing::warn!("cannot install the SIGHUP handler; file changes still reload the catalogue");
        }
        tracker.spawn(async move {
            let Ok(mut hup) = hup else {
                return;
            };
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    got = hup.recv() => {
                        if got.is_none() { break; }
                        asked.hangup.store(true, std::sync::atomic::Ordering::SeqCst);
                        asked.wake.notify_one();
                    }
                }
            }
        });
    }
    // The operator files' contents (through any links) as last loaded: a folder change
    // that left them as they were reloads nothing.
    let contents = |paths: &[PathBuf]| paths.iter().map(|p| std::fs::read(p).ok()).collect::<Vec<_>>();
    tracker.spawn(async move {
        let _keep = watcher;
        let mut loaded = contents(&paths);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                () = asked.wake.notified() => {
                    // Editors write in several steps: let them finish before reading.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let hangup = asked.hangup.swap(false, std::sync::atomic::Ordering::SeqCst);
                    let now = contents(&paths);
                    if hangup || now != loaded {
                        loaded = now;
                        core.reload_catalogue().await;
                    }
                }
            }
        }
    });
}
