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

pub mod table;

use table::{Kind, SETTINGS};

use crate::election::{ElectionConfig, InvalidElection, Timings};
pub use crate::http::{HttpSettings, ListenAddr, Readiness};
pub use crate::supervise::{OnChildExit, RunSettings, StopSignal};
pub use crate::telemetry::{LogFormat, LogSettings, OtelSettings};

/// Prefix of every environment variable read as a setting.
pub const ENV_PREFIX: &str = "LEASE_ELECTOR_";

/// Environment variables with the prefix that are not settings: they are set by
/// `lease-elector run` for its child and must not break a nested lease-elector.
const RESERVED_ENV: [&str; 1] = ["fencing_token"];

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
    #[serde(with = "crate::duration_serde")]
    pub lease_duration: Duration,
    /// How long the leader keeps acting without a successful renew.
    #[serde(with = "crate::duration_serde")]
    pub renew_deadline: Duration,
    /// Interval of the leader's renews and of retries after errors.
    #[serde(with = "crate::duration_serde")]
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

    /// The HTTP listen address.
    pub fn listen_addr(&self) -> SocketAddr {
        self.http.listen.0
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
        http: HttpSettings::default(),
        log: LogSettings::default(),
        otel: OtelSettings::default(),
        run: RunSettings::default(),
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
    let file = match file {
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from("config.toml")).filter(|p| p.is_file()),
    };
    let mut figment = Figment::new().merge(Named(DEFAULTS_NAME, Serialized::defaults(defaults())));
    if let Some(path) = &file {
        figment = figment.merge(Named("TOML file", Toml::string(&read_file(path)?)));
    }
    figment = figment.merge(Named(
        "environment",
        Serialized::defaults(Value::from(env_layer(env)?)),
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

/// The file's text, once it is known to be TOML with known keys only.
fn read_file(path: &Path) -> Result<String, ConfigError> {
    let file_err = |field: String, message: String| ConfigError {
        field,
        origin: Origin::File(path.to_path_buf()),
        message,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| file_err("(file)".into(), format!("cannot read: {e}")))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| file_err("(file)".into(), format!("not valid TOML: {e}")))?;
    match unknown_key(&table, "") {
        Some(key) => Err(file_err(key, "unknown setting".into())),
        None => Ok(text),
    }
}

/// The `LEASE_ELECTOR_*` variables as a dictionary of settings.
fn env_layer(env: &[(String, String)]) -> Result<Dict, ConfigError> {
    let mut dict = Dict::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let key = rest.to_lowercase().replace("__", ".");
        if RESERVED_ENV.contains(&key.as_str()) {
            continue;
        }
        let fail = |message: String| ConfigError {
            field: key.clone(),
            origin: Origin::Env(name.clone()),
            message,
        };
        let Some(setting) = table::setting(&key) else {
            return Err(fail("unknown setting".into()));
        };
        // Values stay strings (a Lease named "123" is a name, not a number),
        // except for the boolean settings.
        let parsed = match setting.kind {
            Kind::Text => Value::from(value.clone()),
            Kind::Bool => match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Value::from(true),
                "false" | "0" | "no" => Value::from(false),
                _ => return Err(fail(format!("{value:?} is not true or false"))),
            },
        };
        insert_dotted(&mut dict, &key, parsed);
    }
    Ok(dict)
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

/// The first key of `table` that is no setting (nor a section of settings).
fn unknown_key(table: &toml::Table, prefix: &str) -> Option<String> {
    for (k, v) in table {
        let key = format!("{prefix}{k}");
        let section = format!("{key}.");
        match v.as_table() {
            Some(inner) if SETTINGS.iter().any(|s| s.key.starts_with(&section)) => {
                if let Some(bad) = unknown_key(inner, &section) {
                    return Some(bad);
                }
            }
            _ if table::setting(&key).is_some() => {}
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
    if let Err(invalid) = s.election().validate() {
        return Err(election_error(loaded, invalid));
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

/// The election's own rules, reported with origins. A broken relation is
/// blamed on the value the user set, so the message points at the line to
/// change.
fn election_error(loaded: &Loaded, invalid: InvalidElection) -> ConfigError {
    let fail = |field: &str, message: String| ConfigError {
        field: field.into(),
        origin: loaded.origin(field),
        message,
    };
    let (larger, smaller, factor) = match invalid {
        InvalidElection::Field { field, message } => return fail(field, message),
        InvalidElection::Relation {
            larger,
            smaller,
            factor,
        } => (larger, smaller, factor),
    };
    let show = |d: Duration| humantime::format_duration(d).to_string();
    let factor = if factor == 1.0 {
        String::new()
    } else {
        format!("{factor} x ")
    };
    let ((l_key, l), (s_key, sm)) = (larger, smaller);
    if loaded.origin(l_key) == Origin::Default && loaded.origin(s_key) != Origin::Default {
        let message = format!(
            "{factor}{} must be less than {l_key} ({} from {})",
            show(sm),
            show(l),
            loaded.origin(l_key)
        );
        fail(s_key, message)
    } else {
        let message = format!(
            "{} must be greater than {factor}{s_key} ({} from {})",
            show(l),
            show(sm),
            loaded.origin(s_key)
        );
        fail(l_key, message)
    }
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

#[cfg(test)]
mod tests;
