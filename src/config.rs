//! Typed settings: the embedded default, an optional TOML file, `PASSPORTD_<SECTION>__<KEY>`
//! environment overrides, then `validate()` before anything binds or opens.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ingest::formats::{Format, PassportFilter};

/// The default configuration file, every key documented; also the embedded default.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../config/passportd.toml");

/// Where the configuration comes from, for messages and `check-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// A file given by `--config`, `$PASSPORTD_CONFIG` or found at `config/passportd.toml`.
    File(PathBuf),
    /// No file: the embedded default.
    Embedded,
}

impl fmt::Display for ConfigOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigOrigin::File(p) => write!(f, "{}", p.display()),
            ConfigOrigin::Embedded => f.write_str("the embedded default configuration"),
        }
    }
}

/// Why the configuration could not be used. Each message names the file, key or
/// variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a wrongly typed value.
    #[error("config {origin}: {message}")]
    Parse {
        /// Where it came from.
        origin: String,
        /// toml's message (it names the key and the line).
        message: String,
    },
    /// An environment override could not be applied.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong.
        message: String,
    },
    /// A value that parses but cannot work.
    #[error("config {origin}: `{key}`: {message}")]
    Invalid {
        /// Where it came from.
        origin: String,
        /// Dotted key path, e.g. `sources[1].paths`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// A human duration such as `100ms`, `30s`, `30m`, `7d` or `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// The wrapped duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.is_empty() {
            return Err("empty duration (use e.g. \"30s\", \"30m\", \"7d\")".into());
        }
        let mut total = Duration::ZERO;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            if digits == 0 {
                return Err(format!("invalid duration {s:?} (use e.g. \"100ms\", \"30s\", \"30m\", \"7d\")"));
            }
            let number: u64 =
                rest[..digits].parse().map_err(|_| format!("invalid duration {s:?}: number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let millis_per_unit: u64 = match unit {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "w" => 7 * 86_400_000,
                "" => return Err(format!("invalid duration {s:?}: missing unit (ms, s, m, h, d, w)")),
                other => return Err(format!("invalid duration {s:?}: unknown unit {other:?} (ms, s, m, h, d, w)")),
            };
            let millis =
                number.checked_mul(millis_per_unit).ok_or_else(|| format!("invalid duration {s:?}: too large"))?;
            total += Duration::from_millis(millis);
        }
        Ok(HumanDuration(total))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let (n, unit) = if ms == 0 {
            (0, "s")
        } else if ms % 86_400_000 == 0 {
            (ms / 86_400_000, "d")
        } else if ms % 3_600_000 == 0 {
            (ms / 3_600_000, "h")
        } else if ms % 60_000 == 0 {
            (ms / 60_000, "m")
        } else if ms % 1_000 == 0 {
            (ms / 1_000, "s")
        } else {
            (ms, "ms")
        };
        write!(f, "{n}{unit}")
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A secret string: never printed by `Debug`, `Display` or `check-config`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no secret is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"<redacted>\"" })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `[server]`
    pub server: ServerSettings,
    /// `[storage]`
    pub storage: StorageSettings,
    /// `[[sources]]`
    pub sources: Vec<SourceSettings>,
    /// `[catalogue]`
    pub catalogue: CatalogueSettings,
    /// `[incidents]`
    pub incidents: IncidentSettings,
    /// `[privacy]`
    pub privacy: PrivacySettings,
    /// `[api]`
    pub api: ApiSettings,
    /// `[detectors]`
    pub detectors: DetectorSettings,
    /// `[retention]`
    pub retention: RetentionSettings,
    /// `[log]`
    pub log: LogSettings,
}

/// `[server]`: the HTTP listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address for the API and `/metrics`.
    pub listen: String,
    /// How long shutdown may take before in-flight work is abandoned.
    pub shutdown_timeout: HumanDuration,
    /// Largest accepted request body (bytes), for push ingestion.
    pub max_body_bytes: usize,
    /// Per-request timeout.
    pub request_timeout: HumanDuration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9477".into(),
            shutdown_timeout: HumanDuration(Duration::from_secs(10)),
            max_body_bytes: 16 * 1024 * 1024,
            request_timeout: HumanDuration(Duration::from_secs(30)),
        }
    }
}

/// `[storage]`: the SQLite store and batching.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// The SQLite file (its folder is created if missing).
    pub path: PathBuf,
    /// A batch commits when it holds this many records…
    pub batch_max_records: usize,
    /// …or when its oldest record has waited this long.
    pub batch_max_wait: HumanDuration,
    /// `replay` commits in larger batches (throughput over latency).
    pub replay_batch_records: usize,
    /// `replay` applies its batches in one transaction until it holds this many records
    /// (fewer commits write far fewer pages); memory stays bounded by the batches.
    pub replay_commit_records: usize,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            path: PathBuf::from("passportd.db"),
            batch_max_records: 1000,
            batch_max_wait: HumanDuration(Duration::from_millis(100)),
            replay_batch_records: 8000,
            replay_commit_records: 1_000_000,
        }
    }
}

/// Where to start reading a file found at start-up that has no checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// Read it whole.
    #[default]
    Beginning,
    /// Only what is appended from now on.
    End,
}

/// One `[[sources]]` entry: a set of files read with one decoder.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceSettings {
    /// Unique name: the `source` label and the events' source.
    pub name: String,
    /// Glob patterns (`*`, `?`, `[..]`, `**`).
    pub paths: Vec<String>,
    /// Glob patterns of files to leave out.
    pub exclude: Vec<String>,
    /// Decoder (`auto` sniffs).
    pub format: Format,
    /// Start position for files without a checkpoint found at start-up.
    pub start_at: StartAt,
    /// How often files are stat-ed (the source of truth; notify events only hasten it).
    pub poll_interval: HumanDuration,
    /// Longer records are skipped and counted as `line_too_long`.
    pub max_line_bytes: usize,
    /// Files without a checkpoint whose modification time is older than this are not
    /// read (until they change). `None` reads every file.
    pub ignore_older: Option<HumanDuration>,
    /// Checkpoints of file generations not seen for this long are forgotten.
    pub forget_after: HumanDuration,
    /// At most this many files of the source are held open; idle ones are closed first
    /// and reopened (with an identity check) when they grow.
    pub max_open_files: usize,
    /// A rotated-away or deleted file is closed only after it has been at its end for
    /// this long; then an unterminated last record is emitted too.
    pub read_grace: HumanDuration,
    /// Use file-system events to notice changes early (`false` = stat polling only).
    pub watch: bool,
    /// IANA zone for timestamps that carry no offset.
    pub timezone: String,
    /// Which unified-log records are Passport's.
    pub passport: PassportFilter,
    /// Application (client) id for records that carry none (Passport lines), so that
    /// Mac-side failures group with their Entra records.
    pub app_id: Option<String>,
    /// Tenant id for records that carry none.
    pub tenant_id: Option<String>,
}

impl Default for SourceSettings {
    fn default() -> Self {
        Self {
            name: String::new(),
            paths: Vec::new(),
            exclude: Vec::new(),
            format: Format::Auto,
            start_at: StartAt::Beginning,
            poll_interval: HumanDuration(Duration::from_secs(1)),
            max_line_bytes: 1024 * 1024,
            ignore_older: None,
            forget_after: HumanDuration(Duration::from_secs(24 * 3600)),
            max_open_files: 256,
            read_grace: HumanDuration(Duration::from_secs(2)),
            watch: true,
            timezone: "UTC".into(),
            passport: PassportFilter::default(),
            app_id: None,
            tenant_id: None,
        }
    }
}

impl SourceSettings {
    /// Settings for an ad-hoc `replay` without `--source`.
    pub fn replay_default() -> Self {
        Self { name: "replay".into(), ..Self::default() }
    }

    /// The parsed time zone (validated by `Settings::validate`; UTC if somehow invalid).
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::UTC)
    }
}

/// `[catalogue]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogueSettings {
    /// Operator catalogue files merged over the shipped one, in order.
    pub extra_paths: Vec<PathBuf>,
    /// Domains known to be federated: a 50126 from them is `federation_unsupported`.
    pub federated_domains: Vec<String>,
}

/// An opening gate: `{ events = 3, users = 2, within = "10m" }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpenThreshold {
    /// Open once this many failures gathered (0 = not used)…
    #[serde(default)]
    pub events: u32,
    /// …or this many distinct users (0 = not used)…
    #[serde(default)]
    pub users: u32,
    /// …within this window (default 10 minutes).
    #[serde(default = "OpenThreshold::default_within")]
    pub within: HumanDuration,
}

impl OpenThreshold {
    /// The window when a gate names only its counts, as an environment variable setting
    /// one key of it does.
    fn default_within() -> HumanDuration {
        HumanDuration(Duration::from_secs(10 * 60))
    }
}

/// `[incidents]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentSettings {
    /// Auto-resolve an incident after this long (event time) without events.
    pub quiet_period: HumanDuration,
    /// Per-category quiet periods, e.g. `invalid_credentials = "10m"`.
    pub quiet_period_by_category: BTreeMap<String, HumanDuration>,
    /// A recurrence within this long after resolution reopens the same incident.
    pub reopen_window: HumanDuration,
    /// Per-category opening gates for noisy categories.
    pub open_threshold: BTreeMap<String, OpenThreshold>,
}

impl Default for IncidentSettings {
    fn default() -> Self {
        Self {
            quiet_period: HumanDuration(Duration::from_secs(30 * 60)),
            quiet_period_by_category: BTreeMap::new(),
            reopen_window: HumanDuration(Duration::from_secs(7 * 86_400)),
            open_threshold: BTreeMap::new(),
        }
    }
}

/// `[detectors]`: built-in detectors that need per-user / per-IP keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorSettings {
    /// Turn all detectors on or off.
    pub enabled: bool,
    /// Password spray: distinct users failing credentials (50126/50053) from one IP.
    pub spray_users: u32,
    /// Brute force: credential failures for one user.
    pub brute_force_failures: u32,
    /// Lockout wave: distinct users locked out (50053).
    pub lockout_users: u32,
    /// The window all three count in.
    pub window: HumanDuration,
}

impl Default for DetectorSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            spray_users: 10,
            brute_force_failures: 10,
            lockout_users: 5,
            window: HumanDuration(Duration::from_secs(600)),
        }
    }
}

/// `[retention]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// Events older than this (behind the newest event time) are pruned.
    pub events: HumanDuration,
    /// Resolved incidents older than this are pruned.
    pub incidents: HumanDuration,
    /// How often pruning runs.
    pub interval: HumanDuration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            events: HumanDuration(Duration::from_secs(30 * 86_400)),
            incidents: HumanDuration(Duration::from_secs(180 * 86_400)),
            interval: HumanDuration(Duration::from_secs(300)),
        }
    }
}

/// What to store of a personal value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PrivacyMode {
    /// Store it as it is.
    #[default]
    Keep,
    /// Store an HMAC-SHA256 of it (keyed by `privacy.hash_key`).
    Hash,
    /// Store nothing.
    Drop,
    /// IPs only: keep the network, drop the host part (/24 for IPv4, /48 for IPv6).
    Truncate,
}

/// `[privacy]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacySettings {
    /// User principal names (and e-mail addresses inside messages).
    pub users: PrivacyMode,
    /// Client IP addresses.
    pub ips: PrivacyMode,
    /// HMAC key for `hash` mode (or `PASSPORTD_PRIVACY__HASH_KEY`). Required for `hash`.
    pub hash_key: Secret,
}

/// `[api]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Bearer token for the write endpoints; empty = none required.
    pub token: Secret,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`: passportd's own diagnostics (stderr).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// A tracing filter (`info`, `passportd=debug`, …); `RUST_LOG` overrides it.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Text }
    }
}

/// The loaded configuration and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The settings after layering and validation.
    pub settings: Settings,
    /// The file (or the embedded default) it came from.
    pub origin: ConfigOrigin,
    /// The environment variables that overrode it.
    pub overrides: Vec<String>,
}

impl Loaded {
    /// Where `key` (`section.key`) got its value: the environment variable that set it,
    /// else the file (or the embedded default).
    pub fn origin_of(&self, key: &str) -> String {
        match self.overrides.iter().find(|var| env_key(var).as_deref() == Some(key)) {
            Some(var) => format!("environment variable {var}"),
            None => self.origin.to_string(),
        }
    }
}

/// Finds the configuration: `--config`, then `$PASSPORTD_CONFIG`, then
/// `config/passportd.toml` if it exists, else the embedded default.
pub fn locate(explicit: Option<&Path>) -> ConfigOrigin {
    if let Some(p) = explicit {
        return ConfigOrigin::File(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("PASSPORTD_CONFIG").filter(|v| !v.is_empty()) {
        return ConfigOrigin::File(PathBuf::from(p));
    }
    let local = PathBuf::from("config/passportd.toml");
    if local.is_file() {
        return ConfigOrigin::File(local);
    }
    ConfigOrigin::Embedded
}

/// Loads, layers and validates the configuration, reading the process environment.
pub fn load(explicit: Option<&Path>) -> Result<Loaded, ConfigError> {
    let origin = locate(explicit);
    let text = match &origin {
        ConfigOrigin::File(path) => {
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.clone(), source })?
        }
        ConfigOrigin::Embedded => DEFAULT_CONFIG_TOML.to_string(),
    };
    // `vars()` panics on a variable that is not UTF-8 (anyone's, not only ours): ours must
    // be text, the others are none of our business.
    let mut env: Vec<(String, String)> = Vec::new();
    for (key, value) in std::env::vars_os() {
        let Some(key) = key.to_str().filter(|k| k.starts_with("PASSPORTD_")) else {
            continue;
        };
        let value = value
            .into_string()
            .map_err(|_| ConfigError::Env { var: key.to_string(), message: "its value is not UTF-8 text".into() })?;
        env.push((key.to_string(), value));
    }
    let (settings, overrides) = from_parts(&text, &origin.to_string(), &env)?;
    Ok(Loaded { settings, origin, overrides })
}

/// Builds settings from TOML text plus environment pairs (testable without touching
/// the process environment).
pub fn from_parts(text: &str, origin: &str, env: &[(String, String)]) -> Result<(Settings, Vec<String>), ConfigError> {
    let located = |e: toml::de::Error| {
        let key = e.span().and_then(|span| key_at(text, span.start));
        let mut message = one_line(text, &e);
        // serde's message quotes the value it could not take (`invalid type: integer
        // `98765…``): a secret's is never repeated into a log, nor a value of a table
        // that holds one (`api = { token = 98765… }`).
        let holds_a_secret = |key: &str| SECRET_KEYS.iter().any(|s| *s == key || s.split('.').next() == Some(key));
        if key.as_deref().map_or(true, holds_a_secret) {
            message = without_quoted_values(&message);
        }
        if let Some(key) = key {
            message = message.replacen(": ", &format!(": `{key}`: "), 1);
        }
        ConfigError::Parse { origin: origin.to_string(), message }
    };
    let mut doc: toml::Table = text.parse().map_err(located)?;
    // The file alone first: its own mistakes (an unknown key, a wrong type) are reported
    // with the line they are on, which the merged document below no longer knows.
    if let Err(e) = toml::from_str::<Settings>(text) {
        return Err(located(e));
    }
    let mut applied = Vec::new();
    // A variable of the form `PASSPORTD_<SECTION>__…` is an override; one that names a
    // section but not in that form (`PASSPORTD_SERVER_LISTEN`, `PASSPORTD_SOURCES`) is a
    // mistake, reported rather than silently ignored. Others are not ours: Kubernetes
    // writes `PASSPORTD_SERVICE_HOST`, `PASSPORTD_PORT_9477_TCP`, … for a Service named
    // `passportd`, and Docker links write similar ones.
    // The sections the embedded default names (it documents every key), and `sources`,
    // which it leaves to the operator.
    let mut sections: Vec<String> = DEFAULT_CONFIG_TOML
        .parse::<toml::Table>()
        .map(|t| t.keys().map(|k| k.to_ascii_uppercase()).collect())
        .unwrap_or_default();
    sections.push("SOURCES".into());
    let names_a_section = |rest: &str| {
        sections.iter().any(|s| rest.eq_ignore_ascii_case(s) || rest.to_ascii_uppercase().starts_with(&format!("{s}_")))
    };
    let mut vars: Vec<&(String, String)> = env
        .iter()
        .filter(|(k, _)| {
            k.strip_prefix("PASSPORTD_").is_some_and(|rest| {
                k != "PASSPORTD_CONFIG"
                    && !kubernetes_service_variable(rest)
                    && (rest.contains("__") || names_a_section(rest))
            })
        })
        .collect();
    vars.sort();
    for (var, value) in vars {
        let (path, typed) = parse_env_override(var, value)?;
        // A text key's value may look like a number or a boolean (an API token of digits,
        // a hash key): when only the text fits the key, it is text.
        let value = if !typed.is_str()
            && !override_fits(&doc, &path, typed.clone())
            && override_fits(&doc, &path, toml::Value::String(value.clone()))
        {
            toml::Value::String(value.clone())
        } else {
            typed
        };
        set_path(&mut doc, var, &path, value)?;
        applied.push(var.clone());
    }
    // The file alone was fine: what fails now came from the environment.
    let settings: Settings = Settings::deserialize(toml::Value::Table(doc)).map_err(|e| ConfigError::Parse {
        origin: format!("environment overrides {} (over {origin})", applied.join(", ")),
        message: e.to_string().split_whitespace().collect::<Vec<_>>().join(" "),
    })?;
    settings.validate(origin).map_err(|e| match e {
        // A key the environment set is the environment's fault, not the file's, which
        // names the line the key is on.
        ConfigError::Invalid { key, message, origin } => {
            // `sources[1].timezone` is `sources.<name>.timezone` to the environment.
            let as_env = source_key_by_name(&key, &settings.sources).unwrap_or_else(|| key.clone());
            // The key itself, a key below it, or an element of it (`exclude[0]`).
            let set_it = |var: &&String| {
                env_key(var).is_some_and(|k| {
                    as_env == k || as_env.starts_with(&format!("{k}.")) || as_env.starts_with(&format!("{k}["))
                })
            };
            let origin = match applied.iter().find(set_it) {
                Some(var) => format!("environment variable {var}"),
                None => match line_of_key(text, &key) {
                    Some(line) => format!("{origin}: line {line}"),
                    None => origin,
                },
            };
            ConfigError::Invalid { origin, key, message }
        }
        other => other,
    })?;
    Ok((settings, applied))
}

/// `sources.<name>.key` (the name lower-cased, as [`env_key`] gives it) for a validation
/// key `sources[i].key`.
fn source_key_by_name(key: &str, sources: &[SourceSettings]) -> Option<String> {
    let (index, rest) = key.strip_prefix("sources[")?.split_once(']')?;
    let source = sources.get(index.parse::<usize>().ok()?)?;
    // As the variable spells it (`entra-eu` is `ENTRA_EU`).
    Some(format!("sources.{}{rest}", env_name(&source.name)))
}

/// `section.key` (or a deeper `section.key.subkey`) of a `PASSPORTD_<SECTION>__<KEY>`
/// variable.
fn env_key(var: &str) -> Option<String> {
    let path = var.strip_prefix("PASSPORTD_")?;
    path.contains("__").then(|| path.split("__").map(str::to_ascii_lowercase).collect::<Vec<_>>().join("."))
}

/// What a line of a TOML file is, as the configuration errors name keys: a table header
/// (its table, as validation names it: `sources[1]`, `sources[1].passport`), a `key = …`
/// (its full key), or neither (a value continued from a line above, a comment, a blank).
#[derive(Debug, Clone, PartialEq)]
enum TomlLine {
    Header(String),
    Key(String),
    Other,
}

/// Each line of `text`, classified (see [`TomlLine`]). A line inside a value that spans
/// lines (an array written one element per line) is no header and no key, even when it
/// starts with `[`.
fn toml_lines(text: &str) -> Vec<TomlLine> {
    let bare = |name: &str| name.chars().filter(|c| !matches!(c, '"' | '\'' | ' ' | '\t')).collect::<String>();
    let (mut depth, mut table) = (0i32, String::new());
    let mut arrays: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        let (kind, value) = if depth > 0 || t.is_empty() || t.starts_with('#') {
            (TomlLine::Other, t)
        } else if let Some(rest) = t.strip_prefix("[[") {
            let name = bare(rest.split("]]").next().unwrap_or(""));
            let n = arrays.entry(name.clone()).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
            (TomlLine::Header(table.clone()), "")
        } else if let Some(rest) = t.strip_prefix('[') {
            let name = bare(rest.split(']').next().unwrap_or(""));
            // `[sources.passport]` after `[[sources]]` belongs to the last source.
            table = match name.split_once('.') {
                Some((head, rest)) if arrays.contains_key(head) => {
                    format!("{head}[{}].{rest}", arrays[head].saturating_sub(1))
                }
                _ => name,
            };
            (TomlLine::Header(table.clone()), "")
        } else if let Some((name, value)) = t.split_once('=') {
            let name = bare(name);
            let full = if table.is_empty() { name } else { format!("{table}.{name}") };
            (TomlLine::Key(full), value)
        } else {
            (TomlLine::Other, t)
        };
        depth = (depth + bracket_balance(value)).max(0);
        out.push(kind);
    }
    out
}

/// Brackets and braces opened minus closed in a value's text, outside strings and a
/// trailing comment.
fn bracket_balance(value: &str) -> i32 {
    let (mut depth, mut quote, mut escaped) = (0, None, false);
    for c in value.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '#' => break,
                '[' | '{' => depth += 1,
                ']' | '}' => depth -= 1,
                _ => {}
            },
        }
    }
    depth
}

/// `message` without the value serde quotes after `invalid type: integer` or `invalid
/// value: …` (`invalid type: integer `98…`, expected a string` → `invalid type: integer,
/// expected a string`); other messages (a syntax error, an unknown field or variant, which
/// name no value of the secret's) are kept as they are.
fn without_quoted_values(message: &str) -> String {
    let Some(at) = ["invalid type: ", "invalid value: "].iter().find_map(|p| message.find(p).map(|i| i + p.len()))
    else {
        return message.to_owned();
    };
    let (head, rest) = message.split_at(at);
    match (rest.find('`'), rest.find(", expected")) {
        (Some(open), Some(expected)) if open < expected => {
            let kind = rest[..open].trim_end();
            format!("{head}{kind}{}", &rest[expected..])
        }
        _ => message.to_owned(),
    }
}

/// The keys whose values are secrets (`Secret`): never quoted back in an error.
const SECRET_KEYS: [&str; 2] = ["api.token", "privacy.hash_key"];

/// The key written at byte `at` of `text`: a table header's table, a `key = …` line's
/// key, or for a line inside a value spanning lines, the key whose value it is.
fn key_at(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    let line = text[..at].matches('\n').count();
    let lines = toml_lines(text);
    lines.get(..=line.min(lines.len().checked_sub(1)?))?.iter().rev().find_map(|l| match l {
        TomlLine::Header(name) | TomlLine::Key(name) => Some(name.clone()),
        TomlLine::Other => None,
    })
}

/// The line (from 1) of the file `text` that sets the validation key `key`
/// (`server.listen`, `sources[1].timezone`, `incidents.open_threshold.x.within`): the line
/// of its `key = …`, else of a key written below it (a dotted key or a table of its own),
/// else of the nearest enclosing key or table. `None` when the file does not say (a
/// default).
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let written: Vec<(String, usize)> = toml_lines(text)
        .into_iter()
        .enumerate()
        .filter_map(|(i, l)| match l {
            TomlLine::Header(name) | TomlLine::Key(name) => Some((name, i + 1)),
            TomlLine::Other => None,
        })
        .collect();
    let mut wanted = key;
    loop {
        let below = |k: &String| k.strip_prefix(wanted).is_some_and(|rest| rest.starts_with(['.', '[']));
        if let Some((_, line)) =
            written.iter().find(|(k, _)| k == wanted).or_else(|| written.iter().find(|(k, _)| below(k)))
        {
            return Some(*line);
        }
        wanted = &wanted[..wanted.rfind(['.', '['])?];
    }
}

/// A TOML error on one line: `line N, column M: what`, without the quoted source (as the
/// catalogue reports its files' syntax errors).
fn one_line(text: &str, e: &toml::de::Error) -> String {
    use crate::classify::catalogue::{line_col, one_line as joined};
    match e.span() {
        Some(span) => {
            let (line, column) = line_col(text, span.start);
            format!("line {line}, column {column}: {}", joined(e.message()))
        }
        None => joined(e.message()),
    }
}

/// Splits `PASSPORTD_<SECTION>__<KEY>` (or a deeper `…__<KEY>__<SUBKEY>`, for a table's
/// entry such as `PASSPORTD_INCIDENTS__QUIET_PERIOD_BY_CATEGORY__INVALID_CREDENTIALS`, and
/// `PASSPORTD_SOURCES__<NAME>__<KEY>` for a configured source's key) into its lower-cased
/// path, and reads its value: a TOML literal (number, bool, array, inline table) keeps its
/// type, so PASSPORTD_CATALOGUE__EXTRA_PATHS='["a.toml"]' works; anything else is a string.
fn parse_env_override(var: &str, value: &str) -> Result<(Vec<String>, toml::Value), ConfigError> {
    let path: Vec<String> = var["PASSPORTD_".len()..].split("__").map(str::to_ascii_lowercase).collect();
    let min = if path.first().is_some_and(|s| s == "sources") { 3 } else { 2 };
    if path.len() < min || path.iter().any(String::is_empty) {
        let hint = var["PASSPORTD_".len()..]
            .split_once('_')
            .filter(|_| !var.contains("__"))
            .map(|(section, key)| format!(" (PASSPORTD_{section}__{key}?)"))
            .unwrap_or_default();
        return Err(ConfigError::Env {
            var: var.to_string(),
            message: if min == 3 {
                "expected the form PASSPORTD_SOURCES__<NAME>__<KEY>, for a source the config file defines".into()
            } else {
                format!("expected the form PASSPORTD_<SECTION>__<KEY>{hint}")
            },
        });
    }
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    Ok((path, parsed))
}

/// Whether the settings still deserialize with `path = value` set in `doc`.
fn override_fits(doc: &toml::Table, path: &[String], value: toml::Value) -> bool {
    let mut probe = doc.clone();
    set_path(&mut probe, "", path, value).is_ok() && Settings::deserialize(toml::Value::Table(probe)).is_ok()
}

/// Whether `rest` (a variable's name after `PASSPORTD_`) is one Kubernetes writes into
/// every pod for a Service whose name starts `passportd-` (`passportd-api` gives
/// `PASSPORTD_API_SERVICE_HOST`, `PASSPORTD_API_PORT_9477_TCP_ADDR`, …): not ours.
fn kubernetes_service_variable(rest: &str) -> bool {
    // An override (`PASSPORTD_SERVER__PORT`, a mistyped key) is never one: a Service's
    // name cannot end in `-`.
    if rest.contains("__") {
        return false;
    }
    let parts: Vec<&str> = rest.split('_').collect();
    let is_port = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let is_proto = |p: &str| matches!(p, "TCP" | "UDP" | "SCTP");
    (0..parts.len()).any(|i| match &parts[i..] {
        ["SERVICE", "HOST"] | ["SERVICE", "PORT", ..] | ["PORT"] => i > 0,
        ["PORT", port, proto] | ["PORT", port, proto, "PROTO" | "PORT" | "ADDR"] => {
            i > 0 && is_port(port) && is_proto(proto)
        }
        _ => false,
    })
}

/// A source's name as an environment variable spells it: lower-cased here, with `_` for
/// the `-` and `.` a variable's name cannot hold.
fn env_name(name: &str) -> String {
    name.chars().map(|c| if matches!(c, '-' | '.') { '_' } else { c.to_ascii_lowercase() }).collect()
}

/// Sets `path` (tables created as needed) to `value` in `doc`. `sources.<name>.…` walks into
/// the `[[sources]]` entry of that name (compared without case: variable names are
/// upper-case by habit).
fn set_path(doc: &mut toml::Table, var: &str, path: &[String], value: toml::Value) -> Result<(), ConfigError> {
    let env_err = |message: String| ConfigError::Env { var: var.to_string(), message };
    let (mut table, rest) = match path {
        [first, name, rest @ ..] if first == "sources" => {
            let sources = doc.get_mut("sources").and_then(toml::Value::as_array_mut);
            let mut matching =
                sources.into_iter().flatten().filter_map(toml::Value::as_table_mut).filter(|t| {
                    t.get("name").and_then(toml::Value::as_str).is_some_and(|n| env_name(n) == env_name(name))
                });
            let Some(source) = matching.next() else {
                return Err(env_err(format!(
                    "the config defines no source named {name:?}; sources are added in a config file, not from the environment"
                )));
            };
            if matching.next().is_some() {
                return Err(env_err(format!(
                    "more than one source is named {name:?} (as the environment spells names)"
                )));
            }
            (source, rest)
        }
        _ => (doc, path),
    };
    let Some((key, parents)) = rest.split_last() else {
        return Err(env_err("names no key".into()));
    };
    let mut walked = Vec::new();
    for part in parents {
        walked.push(part.as_str());
        let entry = table.entry(part.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(next) = entry else {
            return Err(env_err(format!("`{}` is not a table", walked.join("."))));
        };
        table = next;
    }
    table.insert(key.clone(), value);
    Ok(())
}

impl StorageSettings {
    /// Whether `path` can be the store, as far as can be told without creating anything:
    /// not a folder, not some other file, under a folder that exists or can be made.
    /// `serve`, `replay` and `check-config` ask before they open it, so a wrong path is a
    /// configuration error (exit 2) naming the key, not a failure to open a database.
    pub fn check_path(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid =
            |message: String| ConfigError::Invalid { origin: origin.to_string(), key: "storage.path".into(), message };
        let path = &self.path;
        let folder_writable = |dir: &Path| {
            can_write_in(dir).map_err(|e| invalid(format!("cannot write in folder {}: {e}", dir.display())))
        };
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => return Err(invalid(format!("{} is a folder, not a database file", path.display()))),
            Ok(m) if m.len() > 0 => {
                let mut head = [0u8; 16];
                let not_sqlite = || invalid(format!("{} exists and is not a SQLite database", path.display()));
                if m.len() < head.len() as u64 {
                    return Err(not_sqlite());
                }
                // Opened for writing, as the store will: the permission bits alone do not
                // say whether this user may.
                let read = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head));
                match read {
                    Ok(()) if &head == b"SQLite format 3\0" => {}
                    Ok(()) => return Err(not_sqlite()),
                    Err(e) => return Err(invalid(format!("cannot open {} for writing: {e}", path.display()))),
                }
                // SQLite keeps its write-ahead log and shared-memory files beside it.
                return match path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    Some(dir) => folder_writable(dir),
                    None => folder_writable(Path::new(".")),
                };
            }
            Ok(_) => {}
            Err(_) => {}
        }
        // The nearest folder that exists must be one, and writable by this user: the store
        // creates the rest.
        let mut ancestor = path.parent();
        while let Some(dir) = ancestor.filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(m) = std::fs::metadata(dir) {
                if !m.is_dir() {
                    return Err(invalid(format!("{} is not a folder", dir.display())));
                }
                return folder_writable(dir);
            }
            ancestor = dir.parent();
        }
        folder_writable(Path::new("."))
    }
}

/// Whether this process may create files in `dir`: tried, with a probe file removed at
/// once (permission bits say nothing of ACLs, read-only mounts or which user runs).
fn can_write_in(dir: &Path) -> std::io::Result<()> {
    // Unique per attempt (in a container every start is PID 1, and a probe a kill left
    // behind must not block the next start).
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let probe = dir.join(format!(".passportd-write-check-{}-{nanos}", std::process::id()));
    std::fs::OpenOptions::new().write(true).create_new(true).open(&probe)?;
    std::fs::remove_file(&probe)
}

impl Settings {
    /// Checks everything that parses but cannot work. Errors name the key.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid { origin: origin.to_string(), key, message };
        self.listen_addr().map_err(|m| invalid("server.listen".into(), m))?;
        if self.server.max_body_bytes == 0 {
            return Err(invalid("server.max_body_bytes".into(), "must be greater than 0".into()));
        }
        if self.storage.path.as_os_str().is_empty() {
            return Err(invalid("storage.path".into(), "must not be empty".into()));
        }
        if self.storage.replay_batch_records == 0 {
            return Err(invalid("storage.replay_batch_records".into(), "must be greater than 0".into()));
        }
        if self.storage.replay_commit_records == 0 {
            return Err(invalid("storage.replay_commit_records".into(), "must be greater than 0".into()));
        }
        if self.storage.batch_max_records == 0 {
            return Err(invalid("storage.batch_max_records".into(), "must be greater than 0".into()));
        }
        let mut names = BTreeSet::new();
        for (i, source) in self.sources.iter().enumerate() {
            let key = |field: &str| format!("sources[{i}].{field}");
            if source.name.trim().is_empty() {
                return Err(invalid(key("name"), "every source needs a name".into()));
            }
            if !source.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
                return Err(invalid(key("name"), format!("{:?}: use letters, digits, '-', '_' or '.'", source.name)));
            }
            if !names.insert(source.name.as_str()) {
                return Err(invalid(key("name"), format!("duplicate source name {:?}", source.name)));
            }
            // `PASSPORTD_SOURCES__<NAME>__…` must name one source: a variable is written in
            // capitals with `_` for `-` and `.`, and `__` separates its parts.
            let spelled = env_name(&source.name);
            if spelled.contains("__") || spelled.starts_with('_') || spelled.ends_with('_') {
                return Err(invalid(
                    key("name"),
                    format!(
                        "{:?} cannot be named by an environment variable (PASSPORTD_SOURCES__{}__… is ambiguous): begin and end it with a letter or digit, and use no two of '-', '_', '.' in a row",
                        source.name,
                        spelled.to_ascii_uppercase()
                    ),
                ));
            }
            if let Some(other) = self.sources[..i].iter().find(|o| env_name(&o.name) == env_name(&source.name)) {
                return Err(invalid(
                    key("name"),
                    format!(
                        "{:?} and {:?} are one name to the environment (PASSPORTD_SOURCES__{}__…): rename one",
                        other.name,
                        source.name,
                        env_name(&source.name).to_ascii_uppercase()
                    ),
                ));
            }
            if source.paths.is_empty() {
                return Err(invalid(key("paths"), format!("source {:?} has no paths", source.name)));
            }
            for (j, pattern) in source.paths.iter().chain(source.exclude.iter()).enumerate() {
                let field = if j < source.paths.len() {
                    format!("paths[{j}]")
                } else {
                    format!("exclude[{}]", j - source.paths.len())
                };
                if pattern.trim().is_empty() {
                    return Err(invalid(key(&field), "empty pattern".into()));
                }
                globset::Glob::new(pattern)
                    .map_err(|e| invalid(key(&field), format!("invalid glob {pattern:?}: {e}")))?;
                // A folder matches no file: the source would read nothing (or exclude
                // nothing), and say nothing.
                if Path::new(pattern).is_dir() {
                    let dir = pattern.trim_end_matches('/');
                    return Err(invalid(
                        key(&field),
                        format!("{pattern:?} is a folder; name its files, e.g. \"{dir}/*\" (or \"{dir}/**\" for all below it)"),
                    ));
                }
            }
            if source.poll_interval.get() < Duration::from_millis(10) {
                return Err(invalid(key("poll_interval"), "must be at least 10ms".into()));
            }
            if source.max_line_bytes < 1024 {
                return Err(invalid(key("max_line_bytes"), "must be at least 1024".into()));
            }
            if source.max_open_files < 1 {
                return Err(invalid(key("max_open_files"), "must be at least 1".into()));
            }
            if source.forget_after.get() < Duration::from_secs(60) {
                return Err(invalid(key("forget_after"), "must be at least 1m".into()));
            }
            source
                .timezone
                .parse::<chrono_tz::Tz>()
                .map_err(|_| invalid(key("timezone"), format!("unknown IANA time zone {:?}", source.timezone)))?;
        }
        for (i, p) in self.catalogue.extra_paths.iter().enumerate() {
            if p.as_os_str().is_empty() {
                return Err(invalid(format!("catalogue.extra_paths[{i}]"), "empty path".into()));
            }
        }
        if self.incidents.quiet_period.get().is_zero() {
            return Err(invalid("incidents.quiet_period".into(), "must be greater than 0".into()));
        }
        for (name, d) in &self.incidents.quiet_period_by_category {
            let key = format!("incidents.quiet_period_by_category.{name}");
            category_name(name).map_err(|m| invalid(key.clone(), m))?;
            if d.get().is_zero() {
                return Err(invalid(key, "must be greater than 0".into()));
            }
        }
        for (name, t) in &self.incidents.open_threshold {
            let key = format!("incidents.open_threshold.{name}");
            category_name(name).map_err(|m| invalid(key.clone(), m))?;
            if t.events == 0 && t.users == 0 {
                return Err(invalid(key, "set events or users (or both) above 0".into()));
            }
            if t.within.get().is_zero() {
                return Err(invalid(format!("{key}.within"), "must be greater than 0".into()));
            }
        }
        if self.privacy.users == PrivacyMode::Truncate {
            return Err(invalid("privacy.users".into(), "truncate applies to IPs only; use keep, hash or drop".into()));
        }
        if self.detectors.window.get().is_zero() {
            return Err(invalid("detectors.window".into(), "must be greater than 0".into()));
        }
        // A threshold of 0 or 1 would call every credential failure an attack.
        for (key, v) in [
            ("detectors.spray_users", self.detectors.spray_users),
            ("detectors.brute_force_failures", self.detectors.brute_force_failures),
            ("detectors.lockout_users", self.detectors.lockout_users),
        ] {
            if v < 2 {
                return Err(invalid(key.into(), format!("{v}: must be at least 2")));
            }
        }
        if self.server.request_timeout.get().is_zero() {
            return Err(invalid(
                "server.request_timeout".into(),
                "must be greater than 0 (every request would time out)".into(),
            ));
        }
        for (key, v) in [
            ("retention.events", self.retention.events),
            ("retention.incidents", self.retention.incidents),
            ("retention.interval", self.retention.interval),
        ] {
            if v.get().is_zero() {
                return Err(invalid(key.into(), "must be greater than 0".into()));
            }
        }
        // A user's domain is compared whole with each listed one: a wildcard, an address or a
        // trailing dot would never match, and silently turn the federated remediation off.
        for (i, domain) in self.catalogue.federated_domains.iter().enumerate() {
            let d = domain.trim();
            let label_ok = |l: &str| {
                !l.is_empty()
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            };
            if !d.split('.').all(label_ok) {
                return Err(invalid(
                    format!("catalogue.federated_domains[{i}]"),
                    format!(
                        "{domain:?} is not a domain name: a user's domain is compared whole, so list each domain \
                         as it follows the @ (`contoso.example`, `corp.contoso.example`), without `*`, `@` or a trailing dot"
                    ),
                ));
            }
        }
        let hashing = self.privacy.users == PrivacyMode::Hash || self.privacy.ips == PrivacyMode::Hash;
        if hashing && self.privacy.hash_key.expose().len() < 16 {
            return Err(invalid(
                "privacy.hash_key".into(),
                "hash mode needs a secret key of at least 16 characters (set it in the file or PASSPORTD_PRIVACY__HASH_KEY)".into(),
            ));
        }
        // A secret read from a file or a Kubernetes Secret often ends in a newline: no HTTP
        // header can carry it, so every write endpoint would answer 401 for good.
        // (A hash key is bytes to an HMAC, newline and all: refusing one that worked would
        // stop an upgrade, and removing it would change every keyed hash.)
        let token = self.api.token.expose();
        if !token.is_empty() && token.trim() != token {
            return Err(invalid(
                "api.token".into(),
                "begins or ends with whitespace (a newline from the file it was read from?): no HTTP header can carry it; remove it".into(),
            ));
        }
        if self.log.level.parse::<tracing_subscriber::EnvFilter>().is_err() {
            return Err(invalid("log.level".into(), format!("invalid filter {:?}", self.log.level)));
        }
        // A bare word is a target to the filter, which then logs nothing else: `warning`
        // would silence every error. Only a level may stand alone.
        // (A level is a name or its number, 0 to 5; `passportd` alone is this program's
        // every line, a target the filter means on purpose.)
        let bare_word = |d: &&str| {
            !d.contains(['=', '[', ':'])
                && d.parse::<tracing_subscriber::filter::LevelFilter>().is_err()
                && *d != "passportd"
        };
        if let Some(word) = self.log.level.split(',').map(str::trim).filter(|d| !d.is_empty()).find(bare_word) {
            return Err(invalid(
                "log.level".into(),
                format!(
                    "{word:?} is not a level (trace, debug, info, warn, error or off); a module's level is written `passportd=debug`"
                ),
            ));
        }
        Ok(())
    }

    /// The incident policy these settings describe (validated names only).
    pub fn incident_policy(&self) -> crate::incidents::Policy {
        use crate::event::Category;
        let i = &self.incidents;
        crate::incidents::Policy {
            quiet_period: i.quiet_period.get(),
            quiet_by_category: i
                .quiet_period_by_category
                .iter()
                .filter_map(|(k, v)| Some((Category::parse(k)?, v.get())))
                .collect(),
            reopen_window: i.reopen_window.get(),
            gates: i
                .open_threshold
                .iter()
                .filter_map(|(k, t)| {
                    Some((
                        Category::parse(k)?,
                        crate::incidents::OpenGate { events: t.events, users: t.users, within: t.within.get() },
                    ))
                })
                .collect(),
            detectors: crate::incidents::DetectorPolicy {
                enabled: self.detectors.enabled,
                spray_users: self.detectors.spray_users,
                brute_force_failures: self.detectors.brute_force_failures,
                lockout_users: self.detectors.lockout_users,
                window: self.detectors.window.get(),
            },
        }
    }

    /// The listen address, parsed.
    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.server
            .listen
            .parse()
            .map_err(|_| format!("{:?} is not an address:port such as 127.0.0.1:9477", self.server.listen))
    }

    /// The named source.
    pub fn source(&self, name: &str) -> Option<&SourceSettings> {
        self.sources.iter().find(|s| s.name == name)
    }
}

fn category_name(name: &str) -> Result<(), String> {
    match crate::event::Category::parse(name) {
        Some(c) if c != crate::event::Category::InterruptInformational => Ok(()),
        _ => Err(format!(
            "unknown category {name:?} (one of: {})",
            crate::event::Category::failure_categories().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_error_in_a_file_names_its_line_and_key() {
        for (file, says) in [
            ("[server]\nlisten = \"nothing\"\n", "t.toml: line 2: `server.listen`"),
            ("[server]\nmax_body_bytes = 99999999999999999999\n", "line 2, column 18: `server.max_body_bytes`"),
            ("[sources]\nname = \"x\"\n", "line 1, column 1: `sources`"),
            ("# two sources\n[[sources]]\nname = \"a\"\npaths = [\"/x/*\"]\n[[sources]]\nname = \"a\"\npaths = [\"/y/*\"]\n", "line 6: `sources[1].name`"),
            ("[[sources]]\nname = \"a\"\npaths = [\"/x/*\"]\n[sources.passport]\nsubsystems = []\n[[sources]]\nname = \"b\"\npaths = [\"/y/*\"]\ntimezone = \"Mars/Base\"\n", "line 9: `sources[1].timezone`"),
            ("[incidents]\nquiet_period = \"0s\"\n", "line 2: `incidents.quiet_period`"),
            // A line inside an array written over several lines is no table header.
            ("[catalogue]\nfederated_domains = [\n  [\"corp.example\"],\n]\n", "line 3, column 3: `catalogue.federated_domains`"),
            // A dotted key below the one validation names.
            ("[incidents]\nopen_threshold.mfa_required.events = 0\n", "line 2: `incidents.open_threshold.mfa_required`"),
        ] {
            let err = from_parts(file, "t.toml", &[]).unwrap_err().to_string();
            assert!(err.contains(says), "{file}: {err}");
        }
    }

    #[test]
    fn every_key_can_come_from_the_environment_and_a_mistyped_variable_is_an_error() {
        let file = "[[sources]]\nname = \"entra\"\npaths = [\"/var/log/entra/*.json\"]\n";
        let (s, applied) = from_parts(
            file,
            "t.toml",
            &env(&[
                ("PASSPORTD_INCIDENTS__QUIET_PERIOD_BY_CATEGORY__INVALID_CREDENTIALS", "10m"),
                ("PASSPORTD_INCIDENTS__OPEN_THRESHOLD__MFA_REQUIRED__EVENTS", "3"),
                ("PASSPORTD_INCIDENTS__OPEN_THRESHOLD__MFA_REQUIRED__WITHIN", "10m"),
                ("PASSPORTD_SOURCES__ENTRA__POLL_INTERVAL", "5s"),
                ("PASSPORTD_SOURCES__ENTRA__PATHS", "[\"/srv/entra/*.json\"]"),
            ]),
        )
        .expect("nested keys and a source's keys");
        assert_eq!(applied.len(), 5);
        assert_eq!(s.incidents.quiet_period_by_category["invalid_credentials"].get(), Duration::from_secs(600));
        assert_eq!(s.incidents.open_threshold["mfa_required"].events, 3);
        assert_eq!(s.sources[0].poll_interval.get(), Duration::from_secs(5));
        assert_eq!(s.sources[0].paths, ["/srv/entra/*.json"]);
        // A source's key set wrong from the environment is the variable's fault.
        let err = from_parts(file, "t.toml", &env(&[("PASSPORTD_SOURCES__ENTRA__TIMEZONE", "Mars/Base")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("PASSPORTD_SOURCES__ENTRA__TIMEZONE") && err.contains("timezone"), "{err}");
        // The README's example: one key of a gate, the window taking its default.
        let (s, _) =
            from_parts(file, "t.toml", &env(&[("PASSPORTD_INCIDENTS__OPEN_THRESHOLD__MFA_REQUIRED__EVENTS", "3")]))
                .expect("a gate's count alone");
        assert_eq!(s.incidents.open_threshold["mfa_required"].within.get(), Duration::from_secs(600));
        for (var, says) in [
            ("PASSPORTD_SERVER_LISTEN", "PASSPORTD_SERVER__LISTEN?"),
            ("PASSPORTD_SOURCES", "PASSPORTD_SOURCES__<NAME>__<KEY>"),
            ("PASSPORTD_SOURCES__PATHS", "PASSPORTD_SOURCES__<NAME>__<KEY>"),
            ("PASSPORTD_SOURCES__PASSPORT__PATHS", "no source named \"passport\""),
            ("PASSPORTD_SERVER__LISTN", "listn"),
        ] {
            let err = from_parts(file, "t.toml", &env(&[(var, "x")])).unwrap_err().to_string();
            assert!(err.contains(var) && err.contains(says), "{var}: {err}");
        }
        // `PASSPORTD_CONFIG` names the file; it is no override. Nor are the variables
        // Kubernetes and Docker write for a Service or link named `passportd`.
        let (_, applied) = from_parts(
            file,
            "t.toml",
            &env(&[
                ("PASSPORTD_CONFIG", "t.toml"),
                ("PASSPORTD_SERVICE_HOST", "10.96.0.12"),
                ("PASSPORTD_SERVICE_PORT", "9477"),
                ("PASSPORTD_PORT", "tcp://10.96.0.12:9477"),
                ("PASSPORTD_PORT_9477_TCP_ADDR", "10.96.0.12"),
            ]),
        )
        .expect("not overrides");
        assert!(applied.is_empty(), "{applied:?}");
    }

    #[test]
    fn embedded_default_is_valid_and_has_contract_defaults() {
        let (s, _) = from_parts(DEFAULT_CONFIG_TOML, "default", &[]).expect("default config");
        assert_eq!(s.server.listen, "127.0.0.1:9477");
        assert_eq!(s.storage.path, PathBuf::from("passportd.db"));
        assert_eq!(s.incidents.quiet_period.get(), Duration::from_secs(1800));
    }

    #[test]
    fn empty_file_is_valid() {
        let (s, _) = from_parts("", "empty.toml", &[]).expect("empty config");
        assert!(s.sources.is_empty());
        assert_eq!(s.privacy.users, PrivacyMode::Keep);
    }

    #[test]
    fn env_overrides_win_and_keep_types() {
        let (s, applied) = from_parts(
            "[server]\nlisten = \"127.0.0.1:1\"\n",
            "t.toml",
            &env(&[
                ("PASSPORTD_SERVER__LISTEN", "0.0.0.0:9477"),
                ("PASSPORTD_STORAGE__BATCH_MAX_RECORDS", "50"),
                ("PASSPORTD_CATALOGUE__EXTRA_PATHS", "[\"a.toml\", \"b.toml\"]"),
                ("PASSPORTD_CONFIG", "ignored.toml"),
                ("OTHER__THING", "x"),
            ]),
        )
        .expect("overrides");
        assert_eq!(s.server.listen, "0.0.0.0:9477");
        assert_eq!(s.storage.batch_max_records, 50);
        assert_eq!(s.catalogue.extra_paths.len(), 2);
        assert_eq!(applied.len(), 3);
    }

    #[test]
    fn text_keys_take_values_that_look_like_numbers_or_booleans() {
        let (s, _) = from_parts(
            "",
            "t.toml",
            &env(&[("PASSPORTD_API__TOKEN", "123456789"), ("PASSPORTD_PRIVACY__HASH_KEY", "1234567890123456")]),
        )
        .expect("digits are text for text keys");
        assert_eq!(s.api.token.expose(), "123456789");
        assert_eq!(s.privacy.hash_key.expose(), "1234567890123456");
        let (s, _) =
            from_parts("", "t.toml", &env(&[("PASSPORTD_API__TOKEN", "true")])).expect("a boolean word as text");
        assert_eq!(s.api.token.expose(), "true");
        // A typed key still refuses text, naming the key.
        let err = from_parts("", "t.toml", &env(&[("PASSPORTD_STORAGE__BATCH_MAX_RECORDS", "lots")])).unwrap_err();
        assert!(err.to_string().contains("batch_max_records"), "{err}");
    }

    /// A federated domain that can never match a user's domain is refused, naming it.
    #[test]
    fn federated_domains_must_be_domain_names() {
        for bad in ["*.contoso.example", "corp.contoso.example.", "not a domain!", "@contoso.example", ""] {
            let text = format!("[catalogue]\nfederated_domains = [\"ok.example\", {bad:?}]\n");
            let err = from_parts(&text, "t.toml", &[]).unwrap_err().to_string();
            assert!(
                err.contains("catalogue.federated_domains[1]") && err.contains("not a domain name"),
                "{bad}: {err}"
            );
        }
        from_parts("[catalogue]\nfederated_domains = [\"Corp.Contoso.example\", \"xn--bcher-kva.example\", \"bücher.example\"]\n", "t.toml", &[])
            .expect("domain names");
    }

    /// A word that is no level (`warning`) would be a target to the log filter, which then
    /// logs nothing else, errors included: it is refused, naming the key.
    #[test]
    fn a_log_level_that_is_no_level_is_refused() {
        for level in ["warning", "notice", "critical", "infoo", "warn,debugg"] {
            let err = from_parts(&format!("[log]\nlevel = {level:?}\n"), "t.toml", &[]).unwrap_err().to_string();
            assert!(err.contains("log.level") && err.contains("is not a level"), "{level}: {err}");
        }
        for level in
            ["warn", "INFO", "off", "5", "passportd", "warn,passportd=debug", "info,passportd::ingest::tail=trace"]
        {
            from_parts(&format!("[log]\nlevel = {level:?}\n"), "t.toml", &[]).expect(level);
        }
    }

    /// A secret written unquoted is an error that names the key and line, never the value;
    /// one ending in a newline (read from a file) is refused, as no header can match it.
    #[test]
    fn secrets_are_never_echoed_and_never_end_in_whitespace() {
        for text in ["[api]\ntoken = 98765432109876\n", "[privacy]\nhash_key = 98765432109876543\n"] {
            let msg = from_parts(text, "t.toml", &[]).unwrap_err().to_string();
            assert!(!msg.contains("98765432109876") && msg.contains("line 2"), "{msg}");
            assert!(msg.contains("api.token") || msg.contains("privacy.hash_key"), "{msg}");
            assert!(msg.contains("invalid type") && msg.contains("expected a string"), "what is wrong: {msg}");
        }
        // Messages that quote no value of the secret's keep what they say.
        let msg = from_parts("[api]\ntoken = \"SECRET\\qsecret123\"\n", "t.toml", &[]).unwrap_err().to_string();
        assert!(msg.contains("escape"), "{msg}");
        let msg =
            from_parts("privacy = { users = \"bogus\", hash_key = \"x\" }\n", "t.toml", &[]).unwrap_err().to_string();
        assert!(msg.contains("bogus") && msg.contains("truncate"), "{msg}");
        // In an inline table too.
        for text in
            ["api = { token = 98765432109876 }\n", "privacy = { users = \"hash\", hash_key = 98765432109876543 }\n"]
        {
            let msg = from_parts(text, "t.toml", &[]).unwrap_err().to_string();
            assert!(!msg.contains("98765432109876") && msg.contains("line 1"), "{msg}");
        }
        // A hash key is HMAC bytes, a newline and all: kept as it was, not refused.
        let (s, _) = from_parts(
            "[privacy]\nusers = \"hash\"\n",
            "t.toml",
            &env(&[("PASSPORTD_PRIVACY__HASH_KEY", "0123456789abcdef0123\n")]),
        )
        .expect("a hash key with a newline");
        assert_eq!(s.privacy.hash_key.expose(), "0123456789abcdef0123\n");
        for value in ["tok-with-newline-123\n", " ", "\tkey"] {
            let err = from_parts("", "t.toml", &env(&[("PASSPORTD_API__TOKEN", value)])).unwrap_err().to_string();
            assert!(err.contains("PASSPORTD_API__TOKEN") && err.contains("whitespace"), "{value:?}: {err}");
        }
    }

    /// A source named with `-` or `.` is reached from the environment with `_`; two names
    /// the environment spells alike are refused, naming the variable.
    #[test]
    fn sources_are_named_in_the_environment_as_a_shell_can_spell_them() {
        let file = "[[sources]]\nname = \"entra-eu.1\"\npaths = [\"a/*.json\"]\n";
        let (s, _) =
            from_parts(file, "t.toml", &env(&[("PASSPORTD_SOURCES__ENTRA_EU_1__PATHS", "[\"c/*.json\"]")])).unwrap();
        assert_eq!(s.sources[0].paths, ["c/*.json"]);
        for second in ["Entra-EU.1", "entra_eu_1"] {
            let text = format!("{file}[[sources]]\nname = \"{second}\"\npaths = [\"b/*.json\"]\n");
            let err = from_parts(&text, "t.toml", &[]).unwrap_err().to_string();
            assert!(err.contains("sources[1].name") && err.contains("PASSPORTD_SOURCES__ENTRA_EU_1__"), "{err}");
        }
    }

    /// The variables Kubernetes writes for a Service named `passportd-api` (or `-server`,
    /// `-log`, …) are not overrides; a mistyped override still is an error.
    #[test]
    fn kubernetes_service_variables_are_left_alone() {
        for var in [
            "PASSPORTD_API_SERVICE_HOST",
            "PASSPORTD_API_SERVICE_PORT",
            "PASSPORTD_API_SERVICE_PORT_HTTP",
            "PASSPORTD_SERVER_PORT",
            "PASSPORTD_LOG_PORT_9477_TCP",
            "PASSPORTD_LOG_PORT_9477_TCP_ADDR",
        ] {
            from_parts("", "t.toml", &env(&[(var, "10.0.0.5")])).unwrap_or_else(|e| panic!("{var}: {e}"));
        }
        assert!(from_parts("", "t.toml", &env(&[("PASSPORTD_SERVER_LISTEN", "x")])).is_err());
        // A mistyped override that looks like one is still an error.
        for var in ["PASSPORTD_SERVER__PORT", "PASSPORTD_API__SERVICE_HOST"] {
            assert!(from_parts("", "t.toml", &env(&[(var, "1")])).is_err(), "{var}");
        }
    }

    /// Validation errors of an override of a source named with `-` blame the variable; a
    /// name no variable can spell is refused; a folder in `exclude` is refused too.
    #[test]
    fn source_names_and_excludes_are_checked_as_the_environment_spells_them() {
        let file = "[[sources]]\nname = \"entra-eu\"\npaths = [\"a/*.json\"]\npoll_interval = \"1s\"\n";
        let err = from_parts(file, "t.toml", &env(&[("PASSPORTD_SOURCES__ENTRA_EU__POLL_INTERVAL", "1ms")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("PASSPORTD_SOURCES__ENTRA_EU__POLL_INTERVAL"), "{err}");
        for name in ["entra-", "a--b", "_x"] {
            let text = format!("[[sources]]\nname = \"{name}\"\npaths = [\"a/*.json\"]\n");
            let err = from_parts(&text, "t.toml", &[]).unwrap_err().to_string();
            assert!(err.contains("sources[0].name") && err.contains("environment"), "{name}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[[sources]]\nname = \"e\"\npaths = [\"{0}/**/*.json\"]\nexclude = [\"{0}\"]\n",
            dir.path().display()
        );
        let err = from_parts(&text, "t.toml", &[]).unwrap_err().to_string();
        assert!(err.contains("sources[0].exclude[0]") && err.contains("is a folder"), "{err}");
        let var = format!("[\"{}\"]", dir.path().display());
        let err = from_parts(file, "t.toml", &env(&[("PASSPORTD_SOURCES__ENTRA_EU__EXCLUDE", &var)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("PASSPORTD_SOURCES__ENTRA_EU__EXCLUDE"), "an element blames the variable too: {err}");
    }

    /// A folder in `paths` matches no file: refused, with the pattern that would read it.
    #[test]
    fn a_folder_in_paths_is_refused_with_the_pattern_it_means() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("entra");
        std::fs::create_dir(&folder).unwrap();
        let text = format!("[[sources]]\nname = \"e\"\npaths = [\"{}\"]\n", folder.display());
        let err = from_parts(&text, "t.toml", &[]).unwrap_err().to_string();
        assert!(err.contains("sources[0].paths[0]") && err.contains("is a folder") && err.contains("entra/*"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err = from_parts("[server]\nlisten_addr = \"x\"\n", "t.toml", &[]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("listen_addr"), "{msg}");
        assert!(msg.contains("t.toml"), "{msg}");
        let err = from_parts("", "t.toml", &env(&[("PASSPORTD_SERVER__NOPE", "1")])).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            ("[server]\nlisten = \"nowhere\"", "server.listen"),
            (
                "[[sources]]\nname = \"a\"\npaths = [\"/x\"]\n[[sources]]\nname = \"a\"\npaths = [\"/y\"]",
                "sources[1].name",
            ),
            ("[[sources]]\nname = \"a\"", "sources[0].paths"),
            ("[[sources]]\nname = \"a\"\npaths = [\"/x/[\"]", "sources[0].paths[0]"),
            ("[[sources]]\nname = \"a\"\npaths = [\"/x\"]\ntimezone = \"Mars/Olympus\"", "sources[0].timezone"),
            ("[privacy]\nusers = \"hash\"", "privacy.hash_key"),
            ("[incidents]\nquiet_period = \"0s\"", "incidents.quiet_period"),
            ("[incidents.quiet_period_by_category]\nmfa = \"5m\"", "incidents.quiet_period_by_category.mfa"),
            (
                "[incidents.open_threshold.invalid_credentials]\nwithin = \"10m\"",
                "incidents.open_threshold.invalid_credentials",
            ),
            ("[privacy]\nusers = \"truncate\"", "privacy.users"),
            ("[storage]\nreplay_batch_records = 0", "storage.replay_batch_records"),
            ("[storage]\nreplay_commit_records = 0", "storage.replay_commit_records"),
            ("[detectors]\nspray_users = 0", "detectors.spray_users"),
            ("[detectors]\nbrute_force_failures = 1", "detectors.brute_force_failures"),
            ("[detectors]\nlockout_users = 0", "detectors.lockout_users"),
            ("[server]\nrequest_timeout = \"0s\"", "server.request_timeout"),
        ];
        for (text, key) in cases {
            let err = from_parts(text, "t.toml", &[]).unwrap_err().to_string();
            assert!(err.contains(key), "{text:?} → {err}");
        }
        let err = from_parts("[incidents]\nquiet_period = \"5 parsecs\"", "t.toml", &[]).unwrap_err();
        assert!(err.to_string().contains("quiet_period"), "{err}");
        // One line naming the line, column and key of a file's own mistake.
        let err = from_parts("[server]\nlisten = \"127.0.0.1:1\"\n\n[[sources]]\nname = \"a\"\npaths = [\"/x\"]\npoll_intervall = \"1s\"\n", "t.toml", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 7, column 1: `sources[0].poll_intervall`: unknown field `poll_intervall`"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        // A bad value from the environment is blamed on its variable, not on the file.
        let env = [("PASSPORTD_SERVER__LISTEN".to_string(), "bad".to_string())];
        let err = from_parts("[storage]\npath = \"x.db\"\n", "t.toml", &env).unwrap_err().to_string();
        assert!(err.contains("environment variable PASSPORTD_SERVER__LISTEN") && !err.contains("t.toml"), "{err}");
        let env = [("PASSPORTD_STORAGE__BATCH_MAX_RECORDS".to_string(), "ten".to_string())];
        let err = from_parts("", "t.toml", &env).unwrap_err().to_string();
        assert!(err.contains("environment overrides PASSPORTD_STORAGE__BATCH_MAX_RECORDS"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let err =
            from_parts("[[sources]]\nname = \"a\"\npaths = [\"/x\"]\nformat = \"xml\"", "t.toml", &[]).unwrap_err();
        assert!(err.to_string().contains("format"), "{err}");
    }

    #[test]
    fn durations_parse_and_print() {
        for (text, ms) in
            [("100ms", 100), ("30s", 30_000), ("30m", 1_800_000), ("1h30m", 5_400_000), ("7d", 604_800_000)]
        {
            let d: HumanDuration = text.parse().expect(text);
            assert_eq!(d.get(), Duration::from_millis(ms), "{text}");
            assert_eq!(d.to_string().parse::<HumanDuration>().expect("roundtrip"), d);
        }
        for bad in ["", "5", "m", "5 minutes", "-1s", "1.5s"] {
            assert!(bad.parse::<HumanDuration>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let (s, _) = from_parts("[api]\ntoken = \"hunter2-hunter2\"", "t.toml", &[]).expect("cfg");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!toml::to_string(&s).expect("ser").contains("hunter2"));
        assert_eq!(s.api.token.expose(), "hunter2-hunter2");
    }
}
