//! The one table of settings. The command-line flags, the environment
//! variables, the check for unknown keys and the documentation (the README's
//! settings table, config.toml) all come from [`SETTINGS`]; a test keeps the
//! shipped README and config.toml in step with it.

/// What a setting's value is, as far as flags and the environment care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any text; durations, addresses and names are parsed later.
    Text,
    /// true/false (also 1/0 and yes/no in the environment).
    Bool,
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Dotted key, as in the TOML file (`http.listen`).
    pub key: &'static str,
    /// The command-line flag, without dashes (`listen`).
    pub flag: &'static str,
    /// The flag's value placeholder (`ADDR`).
    pub value_name: &'static str,
    /// Text or boolean.
    pub kind: Kind,
    /// One line of `--help`.
    pub help: &'static str,
    /// Other environment variables that also set it, for `--help`.
    pub also_env: Option<&'static str>,
    /// The default, as `--help` says it; `None` when unset by default.
    pub help_default: Option<&'static str>,
    /// The default, as the README's table says it (Markdown).
    pub doc_default: &'static str,
    /// The README's description (Markdown).
    pub meaning: &'static str,
}

impl Setting {
    /// The environment variable that sets it.
    pub fn env(&self) -> String {
        super::env_var(self.key)
    }

    /// The `--help` text: what it does, its environment variable, its default.
    pub fn help_text(&self) -> String {
        let mut text = format!("{} [env: {}", self.help, self.env());
        if let Some(other) = self.also_env {
            text.push_str(&format!(" or {other}"));
        }
        text.push(']');
        if let Some(default) = self.help_default {
            text.push_str(&format!(" [default: {default}]"));
        }
        text
    }

    /// Its row of the README's settings table.
    pub fn readme_row(&self) -> String {
        format!(
            "| `{}` | `--{}` | `{}` | {} | {} |",
            self.key,
            self.flag,
            self.env(),
            self.doc_default,
            self.meaning
        )
    }
}

const fn text(key: &'static str, flag: &'static str, value_name: &'static str) -> Setting {
    Setting {
        key,
        flag,
        value_name,
        kind: Kind::Text,
        help: "",
        also_env: None,
        help_default: None,
        doc_default: "",
        meaning: "",
    }
}

const fn boolean(key: &'static str, flag: &'static str) -> Setting {
    Setting {
        kind: Kind::Bool,
        ..text(key, flag, "BOOL")
    }
}

/// Every setting, in the order of the documentation.
pub const SETTINGS: [Setting; 19] = [
    Setting {
        help: "Lease name",
        help_default: Some("lease-elector"),
        doc_default: "`lease-elector`",
        meaning: "Lease name (DNS-1123 subdomain)",
        ..text("lease", "lease", "NAME")
    },
    Setting {
        help: "Lease namespace",
        help_default: Some("$POD_NAMESPACE or \"default\""),
        doc_default: "`$POD_NAMESPACE`, else `default`",
        meaning: "Lease namespace (DNS-1123 label)",
        ..text("namespace", "namespace", "NS")
    },
    Setting {
        help: "Identity written as holderIdentity",
        help_default: Some("$POD_NAME, else hostname plus a random suffix"),
        doc_default: "`$POD_NAME`, else hostname + random suffix",
        meaning: "written as holderIdentity",
        ..text("identity", "identity", "ID")
    },
    Setting {
        help: "How long a record stays valid after it was seen to change",
        help_default: Some("15s"),
        doc_default: "`15s`",
        meaning: "takeover after no change for this long (whole seconds)",
        ..text("lease_duration", "lease-duration", "DURATION")
    },
    Setting {
        help: "The leader stops acting when no renew succeeded this long",
        help_default: Some("10s"),
        doc_default: "`10s`",
        meaning: "leader gives up without a successful renew for this long",
        ..text("renew_deadline", "renew-deadline", "DURATION")
    },
    Setting {
        help: "Renew interval and retry interval after errors",
        help_default: Some("2s"),
        doc_default: "`2s`",
        meaning: "renew interval; retry interval after errors",
        ..text("retry_period", "retry-period", "DURATION")
    },
    Setting {
        help: "Release the Lease on SIGTERM/SIGINT",
        help_default: Some("true"),
        doc_default: "`true`",
        meaning: "release on SIGTERM/SIGINT",
        ..boolean("release_on_cancel", "release-on-cancel")
    },
    Setting {
        help: "kubeconfig context (out of cluster)",
        help_default: Some("current context"),
        doc_default: "current context",
        meaning: "kubeconfig context (out of cluster)",
        ..text("kube_context", "kube-context", "NAME")
    },
    Setting {
        help: "Listen address of /metrics, /healthz, /readyz, /leader",
        help_default: Some("0.0.0.0:9890"),
        doc_default: "`0.0.0.0:9890`",
        meaning: "address of the HTTP endpoints",
        ..text("http.listen", "listen", "ADDR")
    },
    Setting {
        help: "When /readyz is ready: \"observed\" (Lease read) or \"leader\"",
        help_default: Some("observed"),
        doc_default: "`observed`",
        meaning: "`observed`: ready once the Lease was read; `leader`: only while leader",
        ..text("http.readiness", "readiness", "MODE")
    },
    Setting {
        help: "Log format: text or json",
        help_default: Some("text"),
        doc_default: "`text`",
        meaning: "`text` or `json`, on stderr",
        ..text("log.format", "log-format", "FORMAT")
    },
    Setting {
        help: "Log filter, e.g. info or lease_elector=debug; RUST_LOG wins",
        help_default: Some("info"),
        doc_default: "`info`",
        meaning: "tracing filter; `RUST_LOG` wins",
        ..text("log.level", "log-level", "FILTER")
    },
    Setting {
        help: "OTLP/HTTP endpoint for traces; off when unset",
        also_env: Some("OTEL_EXPORTER_OTLP_ENDPOINT"),
        doc_default: "unset (or `OTEL_EXPORTER_OTLP_ENDPOINT`)",
        meaning: "OTLP/HTTP trace export; off when unset",
        ..text("otel.endpoint", "otlp-endpoint", "URL")
    },
    Setting {
        help: "service.name of exported spans",
        help_default: Some("lease-elector"),
        doc_default: "`lease-elector`",
        meaning: "service.name of spans",
        ..text("otel.service_name", "otel-service-name", "NAME")
    },
    Setting {
        help: "run: signal for the child when leadership ends",
        help_default: Some("SIGTERM"),
        doc_default: "`SIGTERM`",
        meaning: "signal to the child when leadership ends",
        ..text("run.stop_signal", "stop-signal", "SIGNAL")
    },
    Setting {
        help: "run: time between the stop signal and SIGKILL",
        help_default: Some("3s"),
        doc_default: "`3s`",
        meaning: "stop signal to SIGKILL",
        ..text("run.grace_period", "grace-period", "DURATION")
    },
    Setting {
        help: "run: when the child exits by itself, \"recompete\" or \"exit\" with its code",
        help_default: Some("recompete"),
        doc_default: "`recompete`",
        meaning: "`recompete` or `exit`",
        ..text("run.on_child_exit", "on-child-exit", "POLICY")
    },
    Setting {
        help: "run: first pause before competing again after the child exited; doubles up to 30s",
        help_default: Some("1s"),
        doc_default: "`1s`",
        meaning: "first pause after a child exit",
        ..text("run.restart_backoff", "restart-backoff", "DURATION")
    },
    Setting {
        help: "run: label the own Pod lease-elector.io/leader=true|false",
        help_default: Some("false"),
        doc_default: "`false`",
        meaning: "label the own Pod `lease-elector.io/leader=true\\|false`",
        ..boolean("run.label_pod", "label-pod")
    },
];

/// The setting with dotted key `key`.
pub fn setting(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}
