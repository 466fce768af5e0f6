//! Settings: layering, origins, and one test per kind of invalid value.

use std::io::Write;
use std::path::PathBuf;

use super::*;

/// A settings file with `body`, kept alive for the test.
struct File(tempfile::NamedTempFile);

impl File {
    fn new(body: &str) -> Self {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        f.write_all(body.as_bytes()).unwrap();
        File(f)
    }
    fn path(&self) -> PathBuf {
        self.0.path().to_path_buf()
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load_with(
    file: &str,
    env_pairs: &[(&str, &str)],
    flags: FlagValues,
) -> Result<Loaded, ConfigError> {
    let f = File::new(file);
    load(Some(&f.path()), &env(env_pairs), flags)
}

#[test]
fn defaults_are_client_gos() {
    let s = load_with("", &[], FlagValues::default()).unwrap().settings;
    assert_eq!(s.lease_duration, Duration::from_secs(15));
    assert_eq!(s.renew_deadline, Duration::from_secs(10));
    assert_eq!(s.retry_period, Duration::from_secs(2));
    assert!(s.release_on_cancel);
    assert_eq!(s.http.listen.to_string(), "0.0.0.0:9890");
    assert!(!s.identity.is_empty());
}

#[test]
fn later_layers_win_and_each_value_knows_its_origin() {
    let f = File::new("lease_duration = \"20s\"\nrenew_deadline = \"8s\"\nlease = \"from-file\"\n");
    let mut flags = FlagValues::default();
    flags.set("lease_duration", "--lease-duration", "40s");
    let loaded = load(
        Some(&f.path()),
        &env(&[
            ("LEASE_ELECTOR_LEASE_DURATION", "30s"),
            ("LEASE_ELECTOR_HTTP__LISTEN", "127.0.0.1:9999"),
        ]),
        flags,
    )
    .unwrap();
    let s = &loaded.settings;
    assert_eq!(s.lease_duration, Duration::from_secs(40));
    assert_eq!(s.renew_deadline, Duration::from_secs(8));
    assert_eq!(s.lease, "from-file");
    assert_eq!(s.http.listen.to_string(), "127.0.0.1:9999");
    assert_eq!(
        loaded.origin("lease_duration"),
        Origin::Flag("--lease-duration".into())
    );
    assert_eq!(loaded.origin("renew_deadline"), Origin::File(f.path()));
    assert_eq!(
        loaded.origin("http.listen"),
        Origin::Env("LEASE_ELECTOR_HTTP__LISTEN".into())
    );
    assert_eq!(loaded.origin("retry_period"), Origin::Default);
    let shown = loaded.describe();
    assert!(
        shown.contains("lease_duration = \"40s\"  # command-line flag --lease-duration"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "listen = \"127.0.0.1:9999\"  # environment variable LEASE_ELECTOR_HTTP__LISTEN"
        ),
        "{shown}"
    );
}

#[test]
fn durations_accept_human_forms() {
    let s = load_with(
        "lease_duration = \"1m\"\nrenew_deadline = \"1500ms\"\nretry_period = \"1s\"\n",
        &[],
        FlagValues::default(),
    )
    .unwrap()
    .settings;
    assert_eq!(s.lease_duration, Duration::from_secs(60));
    assert_eq!(s.renew_deadline, Duration::from_millis(1500));
}

/// Each invalid value, given in each layer, names the field and the layer.
#[test]
fn every_invalid_setting_names_its_field_and_layer() {
    let cases: &[(&str, &str, &str)] = &[
        // (dotted key, TOML literal, plain value for env and flags)
        ("lease_duration", "\"soon\"", "soon"),
        ("lease_duration", "\"2s\"", "2s"),
        ("lease_duration", "\"15500ms\"", "15500ms"),
        ("renew_deadline", "\"2s\"", "2s"),
        ("retry_period", "\"0s\"", "0s"),
        ("identity", "\"\"", ""),
        ("lease", "\"Not_A_Name\"", "Not_A_Name"),
        ("lease", "\"-starts-with-dash\"", "-starts-with-dash"),
        ("namespace", "\"has.dot\"", "has.dot"),
        ("http.listen", "\"everywhere\"", "everywhere"),
        ("http.readiness", "\"sometimes\"", "sometimes"),
        ("log.format", "\"xml\"", "xml"),
        ("log.level", "\"lease_elector=loud\"", "lease_elector=loud"),
        ("otel.endpoint", "\"collector:4318\"", "collector:4318"),
        ("kube_context", "\"\"", ""),
        ("run.stop_signal", "\"SIGKILL\"", "SIGKILL"),
        ("run.grace_period", "\"0s\"", "0s"),
        ("run.on_child_exit", "\"panic\"", "panic"),
        ("run.restart_backoff", "\"-1s\"", "-1s"),
    ];
    for (key, literal, plain) in cases {
        // The file layer.
        let toml = match key.split_once('.') {
            Some((table, leaf)) => format!("[{table}]\n{leaf} = {literal}\n"),
            None => format!("{key} = {literal}\n"),
        };
        let f = File::new(&toml);
        let err = load(Some(&f.path()), &[], FlagValues::default()).unwrap_err();
        assert_eq!(
            (err.field.as_str(), &err.origin),
            (*key, &Origin::File(f.path())),
            "file {key}={literal}: {err}"
        );

        // The environment layer.
        let var = env_var(key);
        let err = load_with("", &[(var.as_str(), plain)], FlagValues::default()).unwrap_err();
        assert_eq!(
            (err.field.as_str(), &err.origin),
            (*key, &Origin::Env(var.clone())),
            "env {var}={plain}: {err}"
        );

        // The flag layer.
        let flag = format!("--{}", key.rsplit('.').next().unwrap().replace('_', "-"));
        let mut flags = FlagValues::default();
        flags.set(key, &flag, *plain);
        let err = load_with("", &[], flags).unwrap_err();
        assert_eq!(
            (err.field.as_str(), &err.origin),
            (*key, &Origin::Flag(flag.clone())),
            "flag {flag}={plain}: {err}"
        );
    }
}

#[test]
fn the_error_message_reads_well() {
    let err = load_with(
        "",
        &[("LEASE_ELECTOR_RETRY_PERIOD", "9s")],
        FlagValues::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid setting `retry_period` (from environment variable LEASE_ELECTOR_RETRY_PERIOD): 1.2 x 9s must be less than renew_deadline (10s from built-in default)"
    );
    // Both set by the user: the rule's larger side is named.
    let err = load_with(
        "renew_deadline = \"20s\"\n",
        &[("LEASE_ELECTOR_LEASE_DURATION", "20s")],
        FlagValues::default(),
    )
    .unwrap_err();
    assert_eq!(err.field, "lease_duration");
    assert_eq!(
        err.origin,
        Origin::Env("LEASE_ELECTOR_LEASE_DURATION".into())
    );
    assert!(
        err.message
            .starts_with("20s must be greater than renew_deadline (20s from config file "),
        "{err}"
    );
}

#[test]
fn a_boolean_from_the_environment_must_be_true_or_false() {
    let err = load_with(
        "",
        &[("LEASE_ELECTOR_RELEASE_ON_CANCEL", "maybe")],
        FlagValues::default(),
    )
    .unwrap_err();
    assert_eq!(err.field, "release_on_cancel");
    let s = load_with(
        "",
        &[("LEASE_ELECTOR_RELEASE_ON_CANCEL", "false")],
        FlagValues::default(),
    )
    .unwrap();
    assert!(!s.settings.release_on_cancel);
}

#[test]
fn unknown_keys_in_the_file_are_errors() {
    let err = load_with("lease_durations = \"15s\"\n", &[], FlagValues::default()).unwrap_err();
    assert_eq!(err.field, "lease_durations");
    assert_eq!(err.message, "unknown setting");
    let err = load_with("[http]\nport = 9\n", &[], FlagValues::default()).unwrap_err();
    assert_eq!(err.field, "http.port");
}

#[test]
fn a_file_that_is_not_toml_is_an_error() {
    let err = load_with("lease = \n", &[], FlagValues::default()).unwrap_err();
    assert!(err.message.starts_with("not valid TOML"), "{err}");
}

#[test]
fn unknown_environment_settings_are_errors_but_the_childs_variables_are_not() {
    let err = load_with(
        "",
        &[("LEASE_ELECTOR_LEASE_DURATON", "6s")],
        FlagValues::default(),
    )
    .unwrap_err();
    assert_eq!(err.field, "lease_duraton");
    assert_eq!(
        err.origin,
        Origin::Env("LEASE_ELECTOR_LEASE_DURATON".into())
    );
    // What `lease-elector run` hands its child must not break a nested lease-elector.
    load_with(
        "",
        &[
            ("LEASE_ELECTOR_FENCING_TOKEN", "4"),
            ("LEASE_ELECTOR_IDENTITY", "pod-a"),
            ("LEASE_ELECTOR_LEASE", "my-lease"),
            ("LEASE_ELECTOR_NAMESPACE", "ns"),
        ],
        FlagValues::default(),
    )
    .unwrap();
}

#[test]
fn a_lease_name_of_digits_stays_a_name() {
    let s = load_with("", &[("LEASE_ELECTOR_LEASE", "123")], FlagValues::default()).unwrap();
    assert_eq!(s.settings.lease, "123");
}

#[test]
fn run_mode_needs_the_child_stopped_before_the_lease_can_expire() {
    // 10s + 5s is not less than 15s.
    let loaded = load_with("[run]\ngrace_period = \"5s\"\n", &[], FlagValues::default()).unwrap();
    let err = validate_run(&loaded).unwrap_err();
    assert_eq!(err.field, "run.grace_period");
    assert!(
        err.message.contains("must be less than lease_duration"),
        "{err}"
    );
    let loaded = load_with("[run]\ngrace_period = \"4s\"\n", &[], FlagValues::default()).unwrap();
    validate_run(&loaded).unwrap();
}

#[test]
fn the_shipped_config_toml_is_valid_and_matches_the_defaults() {
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let loaded = load(Some(&shipped), &[], FlagValues::default()).unwrap();
    let defaults = load_with("", &[], FlagValues::default()).unwrap();
    let mut a = loaded.settings.clone();
    let mut b = defaults.settings.clone();
    // Identity and namespace depend on the machine.
    a.identity.clear();
    b.identity.clear();
    a.namespace.clear();
    b.namespace.clear();
    assert_eq!(a, b, "config.toml should document the defaults");
}

/// The settings documented in config.toml, by dotted key: the value written
/// (`None` when the line is a commented-out example).
fn config_toml_keys() -> Vec<(String, Option<String>)> {
    let text = include_str!("../../config.toml");
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = format!("{name}.");
            continue;
        }
        let (commented, body) = match line.strip_prefix("# ") {
            Some(body) => (true, body),
            None => (false, line),
        };
        let Some((key, value)) = body.split_once(" = ") else {
            continue;
        };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            continue;
        }
        let value = (!commented).then(|| value.trim_matches('"').to_string());
        keys.push((format!("{section}{key}"), value));
    }
    keys
}

#[test]
fn config_toml_documents_every_setting_of_the_table_once_with_its_default() {
    let documented = config_toml_keys();
    let keys: Vec<&str> = documented.iter().map(|(k, _)| k.as_str()).collect();
    let table: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
    assert_eq!(
        keys, table,
        "config.toml lists the settings in the table's order"
    );
    for ((key, value), setting) in documented.iter().zip(&SETTINGS) {
        let fixed = setting.doc_default.starts_with('`') && !setting.doc_default.contains('$');
        let expected = fixed.then(|| setting.doc_default.trim_matches('`').to_string());
        assert_eq!(value, &expected, "config.toml's {key}");
    }
}

#[test]
fn the_readme_settings_table_is_the_settings_table() {
    let readme = include_str!("../../README.md");
    let header = "| key | flag | env | default | meaning |";
    let start = readme.find(header).expect("README has the settings table");
    let rows: Vec<&str> = readme[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    let expected: Vec<String> = SETTINGS.iter().map(|s| s.readme_row()).collect();
    assert_eq!(rows, expected, "README.md's settings table");
}

#[test]
fn the_table_defaults_are_the_built_in_defaults() {
    let described = load_with("", &[], FlagValues::default())
        .unwrap()
        .describe();
    for s in SETTINGS
        .iter()
        .filter(|s| s.doc_default.starts_with('`') && !s.doc_default.contains('$'))
    {
        let leaf = s.key.rsplit('.').next().unwrap();
        let default = s.doc_default.trim_matches('`');
        let quoted = format!("{leaf} = \"{default}\"  #");
        let bare = format!("{leaf} = {default}  #");
        assert!(
            described.contains(&quoted) || described.contains(&bare),
            "{} defaults to {default} in the table, not in\n{described}",
            s.key
        );
    }
}
