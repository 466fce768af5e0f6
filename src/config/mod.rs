//! Settings: built-in defaults < TOML file < `LEASE_ELECTOR_*` environment <
//! command-line flags, later layers winning.
//!
//! Every value remembers the layer it came from, so that an invalid setting is
//! reported with its field *and* its origin ("renew_deadline from environment
//! variable LEASE_ELECTOR_RENEW_DEADLINE"), and `lease-elector config` can show
//! where each effective value came from.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

use crate::election::{ElectionConfig, Timings};

/// Prefix of every environment variable read as a setting.
pub const ENV_PREFIX: &str = "LEASE_ELECTOR_";

/// Environment variables with the prefix that are not settings: they are set by
/// `lease-elector run` for its child and must not break a nested lease-elector.
const RESERVED_ENV: [&str; 1] = ["fencing_token"];

/// Settings that take true/false.
const BOOL_KEYS: [&str; 2] = ["release_on_cancel", "run.label_pod"];

/// The complete, validated settings of a lease-elector process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Name of the Lease (a DNS-1123 subdomain).
    pub lease: String,
    /// Namespace of the Lease (a DNS-1123 label).
    pub namespace: String,
    /// This candidate's identity, written as the Lease's holderIdentity.
    pub identity: String,
    /// How long a record stays valid after it was seen to change.
    #[serde(with = "duration")]
    pub lease_duration: Duration,
    /// How long the leader keeps acting without a successful renew.
    #[serde(with = "duration")]
    pub renew_deadline: Duration,
    /// Interval of the leader's renews and of retries after errors.
    #[serde(with = "duration")]
    pub retry_period: Duration,
    /// Release the Lease on SIGTERM/SIGINT so another candidate takes over at once.
    pub release_on_cancel: bool,
    /// kubeconfig context to use (out of cluster only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_context: Option<String>,
    /// The HTTP endpoints.
    pub http: HttpSettings,
    /// Logging.
    pub log: LogSettings,
    /// OpenTelemetry tracing.
    pub otel: OtelSettings,
    /// Supervision of a child process (`lease-elector run`).
    pub run: RunSettings,
}

/// `[http]`: where `/metrics`, `/healthz`, `/readyz` and `/leader` are served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Listen address, `host:port`.
    pub listen: String,
    /// When `/readyz` reports ready.
    pub readiness: Readiness,
}

/// When the process counts as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Readiness {
    /// Ready once the Lease has been read (the default; keeps PDBs meaningful).
    Observed,
    /// Ready only while leader, for active/passive Services.
    Leader,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Output format.
    pub format: LogFormat,
    /// Filter directives (`info`, `lease_elector=debug,kube=info`); `RUST_LOG` wins.
    pub level: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[otel]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtelSettings {
    /// OTLP/HTTP endpoint; tracing export is off when unset (and
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// service.name of the exported spans.
    pub service_name: String,
}

/// `[run]`: how `lease-elector run -- CMD` treats its child.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    /// Signal sent to the child's process group when leadership ends.
    pub stop_signal: String,
    /// Time between the stop signal and SIGKILL.
    #[serde(with = "duration")]
    pub grace_period: Duration,
    /// What to do when the child exits on its own.
    pub on_child_exit: OnChildExit,
    /// First delay before restarting a child that exited; doubles up to 30 s.
    #[serde(with = "duration")]
    pub restart_backoff: Duration,
    /// Label the own Pod `lease-elector.io/leader=true|false`.
    pub label_pod: bool,
}

/// What `lease-elector run` does when its child exits by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnChildExit {
    /// Release the Lease and compete again; the child restarts (with backoff)
    /// when leadership is won again.
    Recompete,
    /// Release the Lease and exit with the child's exit code.
    Exit,
}

impl Settings {
    /// The election part of the settings.
    pub fn election(&self) -> ElectionConfig {
        ElectionConfig {
            lease: self.lease.clone(),
            namespace: self.namespace.clone(),
            identity: self.identity.clone(),
            timings: Timings {
                lease_duration: self.lease_duration,
                renew_deadline: self.renew_deadline,
                retry_period: self.retry_period,
            },
            release_on_cancel: self.release_on_cancel,
        }
    }

    /// The HTTP listen address (validated at load time).
    pub fn listen_addr(&self) -> SocketAddr {
        self.http
            .listen
            .parse()
            .expect("validated when the settings were loaded")
    }
}

/// Built-in defaults, some read from the Pod's environment.
fn defaults() -> Settings {
    let identity = std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{}-{}", hostname(), random_suffix()));
    let namespace = std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_string());
    Settings {
        lease: "lease-elector".into(),
        namespace,
        identity,
        lease_duration: Timings::DEFAULT.lease_duration,
        renew_deadline: Timings::DEFAULT.renew_deadline,
        retry_period: Timings::DEFAULT.retry_period,
        release_on_cancel: true,
        kube_context: None,
        http: HttpSettings {
            listen: "0.0.0.0:9890".into(),
            readiness: Readiness::Observed,
        },
        log: LogSettings {
            format: LogFormat::Text,
            level: "info".into(),
        },
        otel: OtelSettings {
            endpoint: None,
            service_name: "lease-elector".into(),
        },
        run: RunSettings {
            stop_signal: "SIGTERM".into(),
            grace_period: Duration::from_secs(3),
            on_child_exit: OnChildExit::Recompete,
            restart_backoff: Duration::from_secs(1),
            label_pod: false,
        },
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it or truncates, and we stop at the first NUL either way.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).to_lowercase()
    } else {
        String::new()
    };
    if name.is_empty() {
        "lease-elector".into()
    } else {
        name
    }
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The TOML file at this path.
    File(PathBuf),
    /// This environment variable.
    Env(String),
    /// This command-line flag.
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => write!(f, "built-in default"),
            Origin::File(p) => write!(f, "config file {}", p.display()),
            Origin::Env(v) => write!(f, "environment variable {v}"),
            Origin::Flag(flag) => write!(f, "command-line flag {flag}"),
        }
    }
}

/// A setting that cannot be used, with the layer it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting `{field}` (from {origin}): {message}")]
pub struct ConfigError {
    /// Dotted key of the setting, as in the TOML file.
    pub field: String,
    /// The layer that supplied the value.
    pub origin: Origin,
    /// What is wrong.
    pub message: String,
}

/// Command-line values, keyed by dotted setting name, plus the flag that set each.
#[derive(Debug, Default, Clone)]
pub struct FlagValues {
    values: Vec<(String, String, Value)>,
}

impl FlagValues {
    /// Records `--flag` setting `key` (dotted) to `value`.
    pub fn set(&mut self, key: &str, flag: &str, value: impl Into<Value>) {
        self.values.push((key.into(), flag.into(), value.into()));
    }

    fn flag_for(&self, key: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _, _)| k == key)
            .map(|(_, f, _)| f.as_str())
    }
}

impl Provider for FlagValues {
    fn metadata(&self) -> Metadata {
        Metadata::named(FLAGS_NAME)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut root = Dict::new();
        for (key, _, value) in &self.values {
            insert_dotted(&mut root, key, value.clone());
        }
        Ok(Profile::Default.collect(root))
    }
}

const DEFAULTS_NAME: &str = "built-in default";
const FLAGS_NAME: &str = "command-line flag";

fn insert_dotted(dict: &mut Dict, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            dict.insert(key.into(), value);
        }
        Some((head, rest)) => {
            let entry = dict
                .entry(head.into())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert_dotted(inner, rest, value);
            }
        }
    }
}

/// Settings together with the layers they were read from.
#[derive(Debug)]
pub struct Loaded {
    /// The validated settings.
    pub settings: Settings,
    figment: Figment,
    flags: FlagValues,
    file: Option<PathBuf>,
}

impl Loaded {
    /// Where the effective value of `key` (dotted) came from.
    pub fn origin(&self, key: &str) -> Origin {
        origin_of(&self.figment, &self.flags, self.file.as_deref(), key)
    }

    /// The effective settings as TOML, each value annotated with its origin.
    pub fn describe(&self) -> String {
        let value = toml::Value::try_from(&self.settings).expect("settings serialise to TOML");
        let mut out = String::new();
        describe_table(self, &value, "", &mut out);
        out
    }
}

fn describe_table(loaded: &Loaded, value: &toml::Value, prefix: &str, out: &mut String) {
    let Some(table) = value.as_table() else {
        return;
    };
    for (k, v) in table {
        if !v.is_table() {
            let key = format!("{prefix}{k}");
            out.push_str(&format!("{k} = {v}  # {}\n", loaded.origin(&key)));
        }
    }
    for (k, v) in table {
        if v.is_table() {
            out.push_str(&format!("\n[{prefix}{k}]\n"));
            describe_table(loaded, v, &format!("{prefix}{k}."), out);
        }
    }
}

fn origin_of(figment: &Figment, flags: &FlagValues, file: Option<&Path>, key: &str) -> Origin {
    match figment.find_metadata(key) {
        Some(md) if md.name == FLAGS_NAME => {
            Origin::Flag(flags.flag_for(key).unwrap_or("?").to_string())
        }
        Some(md) if md.name.contains("environment") => Origin::Env(env_var(key)),
        Some(md) if md.name.contains("TOML") => {
            Origin::File(file.map(Path::to_path_buf).unwrap_or_default())
        }
        _ => Origin::Default,
    }
}

/// The environment variable that sets a dotted key.
pub fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "__").to_uppercase())
}

/// Loads and validates the settings.
///
/// `file` is the `--config` path; without it `./config.toml` is read when it
/// exists. `env` is the process environment (passed in so tests need not
/// mutate it).
pub fn load(
    file: Option<&Path>,
    env: &[(String, String)],
    flags: FlagValues,
) -> Result<Loaded, ConfigError> {
    let defaults = defaults();
    let known = known_keys(&defaults);
    let file = match file {
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from("config.toml")).filter(|p| p.is_file()),
    };

    let mut figment = Figment::new().merge(Named(DEFAULTS_NAME, Serialized::defaults(&defaults)));
    if let Some(path) = &file {
        let file_err = |message: String| ConfigError {
            field: "(file)".into(),
            origin: Origin::File(path.clone()),
            message,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| file_err(format!("cannot read: {e}")))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e| file_err(format!("not valid TOML: {e}")))?;
        if let Some(key) = unknown_key(&table, "", &known) {
            return Err(ConfigError {
                field: key,
                origin: Origin::File(path.clone()),
                message: "unknown setting".into(),
            });
        }
        figment = figment.merge(Named("TOML file", Toml::string(&text)));
    }

    let mut env_dict = Dict::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let key = rest.to_lowercase().replace("__", ".");
        if RESERVED_ENV.contains(&key.as_str()) {
            continue;
        }
        if !known.contains(&key) {
            return Err(ConfigError {
                field: key,
                origin: Origin::Env(name.clone()),
                message: "unknown setting".into(),
            });
        }
        // Values stay strings (a Lease named "123" is a name, not a number),
        // except for the boolean settings.
        let parsed = if BOOL_KEYS.contains(&key.as_str()) {
            match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Value::from(true),
                "false" | "0" | "no" => Value::from(false),
                _ => {
                    return Err(ConfigError {
                        field: key,
                        origin: Origin::Env(name.clone()),
                        message: format!("{value:?} is not true or false"),
                    });
                }
            }
        } else {
            Value::from(value.clone())
        };
        insert_dotted(&mut env_dict, &key, parsed);
    }
    figment = figment.merge(Named(
        "environment",
        Serialized::defaults(Value::from(env_dict)),
    ));
    figment = figment.merge(flags.clone());

    let settings: Settings = figment.extract().map_err(|e| {
        let field = e.path.join(".");
        let origin = origin_of(&figment, &flags, file.as_deref(), &field);
        ConfigError {
            message: e.kind.to_string(),
            field: if field.is_empty() {
                "(settings)".into()
            } else {
                field
            },
            origin,
        }
    })?;
    let loaded = Loaded {
        settings,
        figment,
        flags,
        file,
    };
    validate(&loaded)?;
    Ok(loaded)
}

/// A provider under a name of our choosing, so origins can be told apart.
struct Named<P>(&'static str, P);

impl<P: Provider> Provider for Named<P> {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.0)
    }
    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.1.data()
    }
}

fn known_keys(defaults: &Settings) -> Vec<String> {
    fn walk(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
        if let Some(t) = v.as_table() {
            for (k, v) in t {
                let key = format!("{prefix}{k}");
                if v.is_table() {
                    walk(v, &format!("{key}."), out);
                } else {
                    out.push(key);
                }
            }
        }
    }
    let mut keys = vec!["kube_context".to_string(), "otel.endpoint".to_string()];
    walk(
        &toml::Value::try_from(defaults).expect("settings serialise to TOML"),
        "",
        &mut keys,
    );
    keys
}

fn unknown_key(table: &toml::Table, prefix: &str, known: &[String]) -> Option<String> {
    for (k, v) in table {
        let key = format!("{prefix}{k}");
        match v.as_table() {
            Some(inner) if known.iter().any(|x| x.starts_with(&format!("{key}."))) => {
                if let Some(bad) = unknown_key(inner, &format!("{key}."), known) {
                    return Some(bad);
                }
            }
            _ if known.contains(&key) => {}
            _ => return Some(key),
        }
    }
    None
}

fn validate(loaded: &Loaded) -> Result<(), ConfigError> {
    let s = &loaded.settings;
    let fail = |field: &str, message: String| ConfigError {
        field: field.into(),
        origin: loaded.origin(field),
        message,
    };
    let show = |d: Duration| humantime::format_duration(d).to_string();

    if s.retry_period.is_zero() {
        return Err(fail("retry_period", "must be greater than zero".into()));
    }
    // A broken relation is blamed on the value the user set, so the message
    // points at the line to change.
    let relation = |larger: &str, l: Duration, smaller: &str, sm: Duration, factor: &str| {
        if loaded.origin(larger) == Origin::Default && loaded.origin(smaller) != Origin::Default {
            fail(
                smaller,
                format!(
                    "{factor}{} must be less than {larger} ({} from {})",
                    show(sm),
                    show(l),
                    loaded.origin(larger)
                ),
            )
        } else {
            fail(
                larger,
                format!(
                    "{} must be greater than {factor}{smaller} ({} from {})",
                    show(l),
                    show(sm),
                    loaded.origin(smaller)
                ),
            )
        }
    };
    if s.renew_deadline.as_secs_f64() <= 1.2 * s.retry_period.as_secs_f64() {
        return Err(relation(
            "renew_deadline",
            s.renew_deadline,
            "retry_period",
            s.retry_period,
            "1.2 x ",
        ));
    }
    if s.lease_duration <= s.renew_deadline {
        return Err(relation(
            "lease_duration",
            s.lease_duration,
            "renew_deadline",
            s.renew_deadline,
            "",
        ));
    }
    if s.lease_duration.subsec_nanos() != 0 {
        return Err(fail(
            "lease_duration",
            "must be whole seconds (the Lease stores leaseDurationSeconds)".into(),
        ));
    }
    if s.identity.trim().is_empty() {
        return Err(fail("identity", "must not be empty".into()));
    }
    if s.identity.len() > 253 {
        return Err(fail("identity", "must be at most 253 characters".into()));
    }
    if let Err(why) = dns1123_subdomain(&s.lease) {
        return Err(fail(
            "lease",
            format!("{:?} is not a valid Lease name: {why}", s.lease),
        ));
    }
    if let Err(why) = dns1123_label(&s.namespace) {
        return Err(fail(
            "namespace",
            format!("{:?} is not a valid namespace: {why}", s.namespace),
        ));
    }
    if s.http.listen.parse::<SocketAddr>().is_err() {
        return Err(fail(
            "http.listen",
            format!("{:?} is not an address such as 0.0.0.0:9890", s.http.listen),
        ));
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&s.log.level) {
        return Err(fail("log.level", format!("{:?}: {e}", s.log.level)));
    }
    if let Some(ep) = &s.otel.endpoint
        && !(ep.starts_with("http://") || ep.starts_with("https://"))
    {
        return Err(fail(
            "otel.endpoint",
            format!("{ep:?} must be an http:// or https:// URL"),
        ));
    }
    if let Some(ctx) = &s.kube_context
        && ctx.is_empty()
    {
        return Err(fail("kube_context", "must not be empty when set".into()));
    }
    if crate::supervise::parse_signal(&s.run.stop_signal).is_none() {
        return Err(fail(
            "run.stop_signal",
            format!(
                "{:?} is not one of SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2",
                s.run.stop_signal
            ),
        ));
    }
    if s.run.grace_period.is_zero() {
        return Err(fail("run.grace_period", "must be greater than zero".into()));
    }
    if s.run.restart_backoff.is_zero() {
        return Err(fail(
            "run.restart_backoff",
            "must be greater than zero".into(),
        ));
    }
    Ok(())
}

/// Checks the extra rule of `lease-elector run`: the child must be gone before
/// any other candidate may take the Lease.
pub fn validate_run(loaded: &Loaded) -> Result<(), ConfigError> {
    let s = &loaded.settings;
    if s.renew_deadline + s.run.grace_period >= s.lease_duration {
        let show = |d: Duration| humantime::format_duration(d).to_string();
        return Err(ConfigError {
            field: "run.grace_period".into(),
            origin: loaded.origin("run.grace_period"),
            message: format!(
                "renew_deadline ({}) + grace_period ({}) must be less than lease_duration ({}), \
                 so the child is stopped before another candidate can take the Lease",
                show(s.renew_deadline),
                show(s.run.grace_period),
                show(s.lease_duration)
            ),
        });
    }
    Ok(())
}

fn dns1123_label(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 63 {
        return Err("must be 1 to 63 characters");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("only lowercase letters, digits and '-' are allowed");
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(s.as_bytes()[0]) || !alnum(s.as_bytes()[s.len() - 1]) {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

fn dns1123_subdomain(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 253 {
        return Err("must be 1 to 253 characters");
    }
    for part in s.split('.') {
        if part.is_empty() {
            return Err("must not contain empty parts between dots");
        }
        dns1123_label(part).map_err(|_| {
            "only lowercase letters, digits, '-' and '.' are allowed, each part starting and ending with a letter or digit"
        })?;
    }
    Ok(())
}

/// Durations as humantime strings: "6s", "1500ms", "1m30s".
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(i64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(t) => humantime::parse_duration(t.trim()).map_err(|e| {
                D::Error::custom(format!(
                    "{t:?} is not a duration such as \"6s\" or \"1500ms\" ({e})"
                ))
            }),
            Raw::Number(n) => Err(D::Error::custom(format!(
                "{n} has no unit; write a duration such as \"{n}s\""
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
