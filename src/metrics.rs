//! Prometheus metrics: one owned registry, passed by value; no global state.
//!
//! Label values come only from configuration (source names), the catalogue (codes,
//! categories) and fixed enums. Codes the catalogue does not know are reported as
//! `code="other"` so that no input can create unbounded series.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::event::{Category, Outcome};
use crate::ingest::formats::ParseErrorReason;
use crate::store::BatchResult;

/// Failures to build the registry (a programming error: duplicate or invalid metric).
#[derive(Debug, thiserror::Error)]
#[error("metrics registry: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// All of passportd's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    known_codes: Arc<RwLock<Arc<HashSet<u32>>>>,
    /// The sources whose series were created at start, for a reloaded catalogue's new ones.
    sources: Arc<Vec<String>>,
    /// `passportd_signin_events_total{source,outcome}`
    pub signin_events: IntCounterVec,
    /// `passportd_signin_failures_total{source,category,code}`
    pub signin_failures: IntCounterVec,
    /// `passportd_incidents_open{category}`
    pub incidents_open: IntGaugeVec,
    /// `passportd_incidents_opened_total{category}`
    pub incidents_opened: IntCounterVec,
    /// `passportd_detections_total{detector}`
    pub detections: IntCounterVec,
    /// `passportd_parse_errors_total{source,reason}`
    pub parse_errors: IntCounterVec,
    /// `passportd_ingest_lines_total{source}`
    pub ingest_lines: IntCounterVec,
    /// `passportd_ingest_lag_seconds{source}`
    pub ingest_lag: HistogramVec,
    /// `passportd_skipped_total{source}`: decoded, not sign-in related.
    pub skipped: IntCounterVec,
    /// `passportd_redacted_total{source}`: `<private>` Passport messages.
    pub redacted: IntCounterVec,
    /// `passportd_duplicates_total{source}`
    pub duplicates: IntCounterVec,
    /// `passportd_expired_total{source}`: records older than the retention horizon.
    pub expired: IntCounterVec,
    /// `passportd_source_up{source}`
    pub source_up: IntGaugeVec,
    /// `passportd_last_ingest_timestamp_seconds{source}`
    pub last_ingest: GaugeVec,
    /// `passportd_catalogue_entries`
    pub catalogue_entries: IntGauge,
    /// `passportd_catalogue_reloads_total{result}`
    pub catalogue_reloads: IntCounterVec,
    /// `passportd_http_requests_total{route,method,status}`
    pub http_requests: IntCounterVec,
    /// `passportd_http_request_duration_seconds{route,method}`
    pub http_duration: HistogramVec,
    /// `passportd_store_size_bytes`
    pub store_size: IntGauge,
    /// `passportd_batch_commit_duration_seconds`
    pub batch_commit: Histogram,
    /// `passportd_batch_records`
    pub batch_records: Histogram,
    /// `passportd_tail_bytes_read_total{source}`
    pub tail_bytes_read: IntCounterVec,
    /// `passportd_tail_lag_bytes{source}`
    pub tail_lag_bytes: IntGaugeVec,
    /// `passportd_tail_rotations_total{source}`
    pub tail_rotations: IntCounterVec,
    /// `passportd_tail_truncations_total{source}`
    pub tail_truncations: IntCounterVec,
    /// `passportd_tail_open_files{source}`: descriptors held by the tailer.
    pub tail_open_files: IntGaugeVec,
    /// `passportd_tail_files{source}`: file generations being followed (open or not).
    pub tail_files: IntGaugeVec,
    /// `passportd_tail_generation_resets_total{source}`: same file, new content (read from 0).
    pub tail_generation_resets: IntCounterVec,
    /// `passportd_tail_files_closed_total{source}`: rotated-away or deleted files drained and closed.
    pub tail_files_closed: IntCounterVec,
    /// `passportd_tail_recovered_total{source}`: generations found again by content
    /// (copies after copytruncate, files renamed while stopped).
    pub tail_recovered: IntCounterVec,
    /// `passportd_watcher_poll_fallback{source}`: 1 when file events failed and only polling runs.
    pub watcher_poll_fallback: IntGaugeVec,
    /// `passportd_uptime_seconds`-style start time.
    pub start_time: Gauge,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec, MetricsError> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec, MetricsError> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> Result<HistogramVec, MetricsError> {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    /// Builds the registry and pre-initialises every known series to 0, so that
    /// `rate()` sees the first failure after a restart.
    pub fn new(
        sources: &[String],
        known_codes: &[u32],
        failure_codes: &[(Category, u32)],
    ) -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let m = Metrics {
            known_codes: Arc::new(RwLock::new(Arc::new(known_codes.iter().copied().collect()))),
            sources: Arc::new(sources.to_vec()),
            signin_events: counter(&registry, "passportd_signin_events_total", "Sign-in events stored, by source and outcome.", &["source", "outcome"])?,
            signin_failures: counter(&registry, "passportd_signin_failures_total", "Sign-in failures stored, by source, category and primary AADSTS code (\"none\" without a code, \"other\" for codes outside the catalogue).", &["source", "category", "code"])?,
            incidents_open: gauge_vec(&registry, "passportd_incidents_open", "Incidents currently open or acknowledged, by category.", &["category"])?,
            incidents_opened: counter(&registry, "passportd_incidents_opened_total", "Incidents opened or reopened, by category.", &["category"])?,
            detections: counter(
                &registry,
                "passportd_detections_total",
                "Detector findings (password_spray, brute_force, lockout_wave) that opened or reopened an incident.",
                &["detector"],
            )?,
            parse_errors: counter(&registry, "passportd_parse_errors_total", "Input records that could not be decoded, by source and reason.", &["source", "reason"])?,
            ingest_lines: counter(&registry, "passportd_ingest_lines_total", "Records (lines or JSON values) read, whatever they turned out to be, by source.", &["source"])?,
            ingest_lag: histogram_vec(&registry, "passportd_ingest_lag_seconds", "Time from an event's own timestamp to its ingestion, by source.", &["source"],
                vec![0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0])?,
            skipped: counter(&registry, "passportd_skipped_total", "Records decoded but not sign-in related (banners, chatter, other processes), by source.", &["source"])?,
            redacted: counter(&registry, "passportd_redacted_total", "Passport records whose message was <private> (unified-log redaction), by source.", &["source"])?,
            duplicates: counter(&registry, "passportd_duplicates_total", "Records skipped because their idempotency key was already stored, by source.", &["source"])?,
            expired: counter(&registry, "passportd_expired_total", "Records skipped because they are older than what retention keeps (they may have been stored and pruned), by source.", &["source"])?,
            source_up: gauge_vec(&registry, "passportd_source_up", "1 while the source is running, 0 when it failed.", &["source"])?,
            last_ingest: {
                let g = GaugeVec::new(Opts::new("passportd_last_ingest_timestamp_seconds", "Unix time the source last produced a record (0 = never since start)."), &["source"])?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            catalogue_entries: {
                let g = IntGauge::new("passportd_catalogue_entries", "Entries in the loaded (merged) catalogue.")?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            catalogue_reloads: counter(&registry, "passportd_catalogue_reloads_total", "Catalogue reload attempts, by result.", &["result"])?,
            http_requests: counter(&registry, "passportd_http_requests_total", "HTTP requests, by route template, method and status.", &["route", "method", "status"])?,
            http_duration: histogram_vec(&registry, "passportd_http_request_duration_seconds", "HTTP request latency, by route template and method.", &["route", "method"],
                vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])?,
            store_size: {
                let g = IntGauge::new("passportd_store_size_bytes", "Size of the SQLite database and its WAL.")?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            batch_commit: {
                let h = Histogram::with_opts(HistogramOpts::new("passportd_batch_commit_duration_seconds", "Time to commit one batch (events, incidents, checkpoints) to the store.")
                    .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]))?;
                registry.register(Box::new(h.clone()))?;
                h
            },
            batch_records: {
                let h = Histogram::with_opts(HistogramOpts::new("passportd_batch_records", "Records per committed batch.")
                    .buckets(vec![1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0]))?;
                registry.register(Box::new(h.clone()))?;
                h
            },
            tail_bytes_read: counter(&registry, "passportd_tail_bytes_read_total", "Bytes read from tailed files, by source.", &["source"])?,
            tail_lag_bytes: gauge_vec(&registry, "passportd_tail_lag_bytes", "Bytes on disk not yet committed (file size minus committed offset), by source.", &["source"])?,
            tail_rotations: counter(&registry, "passportd_tail_rotations_total", "File rotations detected (renamed or replaced), by source.", &["source"])?,
            tail_truncations: counter(&registry, "passportd_tail_truncations_total", "File truncations detected (copytruncate or rewrite), by source.", &["source"])?,
            tail_open_files: gauge_vec(&registry, "passportd_tail_open_files", "Files currently held open by the tailer, by source.", &["source"])?,
            tail_files: gauge_vec(&registry, "passportd_tail_files", "File generations followed by the tailer (open or closed while idle), by source.", &["source"])?,
            tail_generation_resets: counter(&registry, "passportd_tail_generation_resets_total", "Files whose content was replaced in place (truncated or rewritten) and read again from the start, by source.", &["source"])?,
            tail_files_closed: counter(&registry, "passportd_tail_files_closed_total", "Rotated-away or deleted files drained to their end and closed, by source.", &["source"])?,
            tail_recovered: counter(&registry, "passportd_tail_recovered_total", "File generations found again by content under another inode or name (copytruncate copies, files rotated while stopped), by source.", &["source"])?,
            watcher_poll_fallback: gauge_vec(&registry, "passportd_watcher_poll_fallback", "1 when file-system events are unavailable for the source and only polling runs.", &["source"])?,
            start_time: {
                let g = Gauge::new("passportd_start_time_seconds", "Unix time the process started.")?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            registry,
        };
        let build = gauge_vec(
            &m.registry,
            "passportd_build_info",
            "Always 1; the version label says which build runs.",
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        #[cfg(target_os = "linux")]
        m.registry.register(Box::new(ProcessMetrics(prometheus::process_collector::ProcessCollector::for_self())))?;
        m.start_time.set(chrono::Utc::now().timestamp() as f64);

        for source in sources {
            m.init_source(source);
            m.init_failure_codes(source, failure_codes);
        }
        for category in Category::failure_categories() {
            m.incidents_open.with_label_values(&[category.as_str()]).set(0);
            m.incidents_opened.with_label_values(&[category.as_str()]).inc_by(0);
        }
        for detector in crate::incidents::Detector::ALL {
            m.detections.with_label_values(&[detector.as_str()]).inc_by(0);
        }
        for result in ["success", "error"] {
            m.catalogue_reloads.with_label_values(&[result]).inc_by(0);
        }
        Ok(m)
    }

    /// Creates every series of one source at 0.
    pub fn init_source(&self, source: &str) {
        for outcome in Outcome::ALL {
            self.signin_events.with_label_values(&[source, outcome.as_str()]).inc_by(0);
        }
        for category in Category::failure_categories() {
            self.signin_failures.with_label_values(&[source, category.as_str(), "none"]).inc_by(0);
        }
        // A code the catalogue does not know.
        self.signin_failures.with_label_values(&[source, Category::Unclassified.as_str(), "other"]).inc_by(0);
        for reason in ParseErrorReason::ALL {
            self.parse_errors.with_label_values(&[source, reason.as_str()]).inc_by(0);
        }
        self.ingest_lines.with_label_values(&[source]).inc_by(0);
        self.skipped.with_label_values(&[source]).inc_by(0);
        self.redacted.with_label_values(&[source]).inc_by(0);
        self.duplicates.with_label_values(&[source]).inc_by(0);
        self.expired.with_label_values(&[source]).inc_by(0);
        self.last_ingest.with_label_values(&[source]).set(0.0);
        self.tail_bytes_read.with_label_values(&[source]).inc_by(0);
        self.tail_lag_bytes.with_label_values(&[source]).set(0);
        self.tail_rotations.with_label_values(&[source]).inc_by(0);
        self.tail_truncations.with_label_values(&[source]).inc_by(0);
        self.watcher_poll_fallback.with_label_values(&[source]).set(0);
        self.tail_open_files.with_label_values(&[source]).set(0);
        self.tail_files.with_label_values(&[source]).set(0);
        self.tail_generation_resets.with_label_values(&[source]).inc_by(0);
        self.tail_files_closed.with_label_values(&[source]).inc_by(0);
        self.tail_recovered.with_label_values(&[source]).inc_by(0);
        let _ = self.ingest_lag.with_label_values(&[source]);
    }

    /// After a catalogue reload: its (category, code) failure series, for every source the
    /// metrics were built for, start at 0 too (existing ones keep their counts).
    pub fn init_catalogue_series(&self, pairs: &[(Category, u32)]) {
        for source in self.sources.iter() {
            self.init_failure_codes(source, pairs);
        }
    }

    /// Pre-initialises the (category, code) failure series the catalogue can give.
    pub fn init_failure_codes(&self, source: &str, pairs: &[(Category, u32)]) {
        for (category, code) in pairs {
            self.signin_failures.with_label_values(&[source, category.as_str(), &code.to_string()]).inc_by(0);
        }
    }

    /// The bounded `code` label value for a primary code.
    pub fn code_label(&self, code: Option<u32>) -> String {
        let known = match self.known_codes.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        match code {
            None => "none".into(),
            Some(c) if known.contains(&c) => c.to_string(),
            Some(_) => "other".into(),
        }
    }

    /// Replaces the set of codes that may appear as labels (after a catalogue reload);
    /// every clone of these metrics sees the new set.
    pub fn set_known_codes(&self, codes: &[u32]) {
        let fresh = Arc::new(codes.iter().copied().collect());
        match self.known_codes.write() {
            Ok(mut k) => *k = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
    }

    /// Records what a committed batch stored.
    pub fn record_batch(&self, result: &BatchResult) {
        for ((source, outcome), n) in &result.stored {
            self.signin_events.with_label_values(&[source, outcome.as_str()]).inc_by(*n);
        }
        for ((source, category, code), n) in &result.failures {
            self.signin_failures.with_label_values(&[source, category.as_str(), &self.code_label(*code)]).inc_by(*n);
        }
        for (detector, n) in &result.detections {
            self.detections.with_label_values(&[detector]).inc_by(*n);
        }
        for (category, n) in &result.incidents_opened {
            self.incidents_opened.with_label_values(&[category.as_str()]).inc_by(*n);
        }
        for (source, n) in &result.expired_by_source {
            self.expired.with_label_values(&[source]).inc_by(*n);
        }
    }

    /// The registry (for tests and custom collectors).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Renders the text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// prometheus' process collector, with `process_cpu_seconds_total` to the clock tick: it
/// keeps whole seconds (an integer counter), so a daemon using less than a second of CPU
/// a minute read 0 in `rate()` and the dashboard's CPU panel moved in 1 s steps.
#[cfg(target_os = "linux")]
struct ProcessMetrics(prometheus::process_collector::ProcessCollector);

#[cfg(target_os = "linux")]
impl prometheus::core::Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let mut families = self.0.collect();
        let stat = procfs::process::Process::myself().and_then(|p| p.stat());
        let ticks = procfs::ticks_per_second();
        if let (Ok(stat), true) = (stat, ticks > 0) {
            let seconds = (stat.utime + stat.stime) as f64 / ticks as f64;
            for family in families.iter_mut().filter(|f| f.name() == "process_cpu_seconds_total") {
                for metric in family.mut_metric() {
                    let mut counter = prometheus::proto::Counter::default();
                    counter.set_value(seconds);
                    metric.set_counter(counter);
                }
            }
        }
        families
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn cpu_seconds() -> f64 {
        let stat = procfs::process::Process::myself().and_then(|p| p.stat()).unwrap();
        (stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64
    }

    /// The process's CPU time is exposed to the clock tick, not cut to whole seconds:
    /// read when the fraction is large, a whole-second counter is off by more than half
    /// a second.
    /// The shipped `PassportdIngestLagging` alert compares the p99 lag with 900 s: that must
    /// be a bucket boundary, or a lag just over 600 s reads as about 1,800 s (the quantile
    /// is interpolated across the bucket) and the alert fires at 10 minutes, not 15.
    #[test]
    fn the_ingest_lag_alerts_threshold_is_a_bucket_boundary() {
        let metrics = Metrics::new(&["s".to_owned()], &[], &[]).unwrap();
        metrics.ingest_lag.with_label_values(&["s"]).observe(720.0);
        let text = metrics.render();
        let bucket = |le: &str| {
            let series = format!("passportd_ingest_lag_seconds_bucket{{source=\"s\",le=\"{le}\"}} ");
            text.lines().find_map(|l| l.strip_prefix(series.as_str())).map(str::to_owned)
        };
        assert_eq!(bucket("600").as_deref(), Some("0"));
        assert_eq!(bucket("900").as_deref(), Some("1"), "{text}");
        let rules = include_str!("../deploy/prometheus/passportd.rules.yml");
        assert!(rules.contains("passportd:ingest_lag_seconds:p99_10m > 900"), "the alert's threshold moved");
    }

    #[test]
    fn process_cpu_seconds_keep_their_fraction() {
        let metrics = Metrics::new(&[], &[], &[]).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut spin = 0u64;
        while !(0.6..0.9).contains(&cpu_seconds().fract()) {
            assert!(std::time::Instant::now() < deadline, "the CPU time never reached a large fraction");
            for i in 0..100_000u64 {
                spin = spin.wrapping_mul(31).wrapping_add(i);
            }
        }
        std::hint::black_box(spin);
        let before = cpu_seconds();
        let text = metrics.render();
        let after = cpu_seconds();
        let shown: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("process_cpu_seconds_total "))
            .and_then(|v| v.trim().parse().ok())
            .expect("process_cpu_seconds_total");
        assert!(shown >= before - 0.02 && shown <= after + 0.02, "{shown} not within [{before}, {after}]");
    }
}
