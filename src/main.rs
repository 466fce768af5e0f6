//! The `lease-elector` command.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use lease_elector::backend::kube::KubeBackend;
use lease_elector::config::{self, FlagValues, Loaded, Settings};
use lease_elector::election::Elector;
use lease_elector::http::{self, HttpState};
use lease_elector::metrics::Metrics;
use lease_elector::supervise::{self, ChildSpec, ChildStatus};
use lease_elector::{demo, telemetry};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Kubernetes Lease leader election, compatible with client-go, with metrics.
///
/// Without a command, competes for the Lease and reports through /metrics,
/// /healthz, /readyz and /leader until SIGTERM, then releases it.
///
/// Settings come from built-in defaults, then the TOML file (--config, or
/// ./config.toml when present), then LEASE_ELECTOR_* environment variables
/// (nested keys with "__", e.g. LEASE_ELECTOR_HTTP__LISTEN), then these flags;
/// later layers win. `lease-elector config` shows the result and the origin of
/// each value. An invalid setting exits with code 2.
#[derive(Parser, Debug)]
#[command(name = "lease-elector", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    settings: SettingFlags,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run CMD only while this candidate leads (like `consul lock`).
    ///
    /// CMD starts when leadership is won and gets LEASE_ELECTOR_IDENTITY,
    /// LEASE_ELECTOR_LEASE, LEASE_ELECTOR_NAMESPACE and
    /// LEASE_ELECTOR_FENCING_TOKEN. When leadership ends, its process group
    /// gets run.stop_signal, then SIGKILL after run.grace_period; requires
    /// renew_deadline + grace_period < lease_duration.
    Run {
        /// The command and its arguments, after `--`.
        #[arg(required = true, last = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Print the effective configuration with the origin of each value.
    Config,
    /// Three candidates over an in-memory Lease, no cluster needed: replays
    /// the release, crash and network-cut failovers with a timeline.
    Demo(demo::DemoArgs),
}

/// Every setting as a flag; each overrides the file and the environment.
#[derive(Args, Debug, Default)]
struct SettingFlags {
    /// TOML settings file [default: ./config.toml when present]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Lease name [env: LEASE_ELECTOR_LEASE] [default: lease-elector]
    #[arg(long, global = true, value_name = "NAME")]
    lease: Option<String>,
    /// Lease namespace [env: LEASE_ELECTOR_NAMESPACE] [default: $POD_NAMESPACE or "default"]
    #[arg(long, global = true, value_name = "NS")]
    namespace: Option<String>,
    /// Identity written as holderIdentity [env: LEASE_ELECTOR_IDENTITY] [default: $POD_NAME, else hostname plus a random suffix]
    #[arg(long, global = true, value_name = "ID")]
    identity: Option<String>,
    /// How long a record stays valid after it was seen to change [env: LEASE_ELECTOR_LEASE_DURATION] [default: 15s]
    #[arg(long, global = true, value_name = "DURATION")]
    lease_duration: Option<String>,
    /// The leader stops acting when no renew succeeded this long [env: LEASE_ELECTOR_RENEW_DEADLINE] [default: 10s]
    #[arg(long, global = true, value_name = "DURATION")]
    renew_deadline: Option<String>,
    /// Renew interval and retry interval after errors [env: LEASE_ELECTOR_RETRY_PERIOD] [default: 2s]
    #[arg(long, global = true, value_name = "DURATION")]
    retry_period: Option<String>,
    /// Release the Lease on SIGTERM/SIGINT [env: LEASE_ELECTOR_RELEASE_ON_CANCEL] [default: true]
    #[arg(long, global = true, value_name = "BOOL")]
    release_on_cancel: Option<bool>,
    /// kubeconfig context (out of cluster) [env: LEASE_ELECTOR_KUBE_CONTEXT] [default: current context]
    #[arg(long, global = true, value_name = "NAME")]
    kube_context: Option<String>,
    /// Listen address of /metrics, /healthz, /readyz, /leader [env: LEASE_ELECTOR_HTTP__LISTEN] [default: 0.0.0.0:9890]
    #[arg(long, global = true, value_name = "ADDR")]
    listen: Option<String>,
    /// When /readyz is ready: "observed" (Lease read) or "leader" [env: LEASE_ELECTOR_HTTP__READINESS] [default: observed]
    #[arg(long, global = true, value_name = "MODE")]
    readiness: Option<String>,
    /// Log format: text or json [env: LEASE_ELECTOR_LOG__FORMAT] [default: text]
    #[arg(long, global = true, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Log filter, e.g. info or lease_elector=debug; RUST_LOG wins [env: LEASE_ELECTOR_LOG__LEVEL] [default: info]
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,
    /// OTLP/HTTP endpoint for traces; off when unset [env: LEASE_ELECTOR_OTEL__ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT]
    #[arg(long, global = true, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// service.name of exported spans [env: LEASE_ELECTOR_OTEL__SERVICE_NAME] [default: lease-elector]
    #[arg(long, global = true, value_name = "NAME")]
    otel_service_name: Option<String>,
    /// run: signal for the child when leadership ends [env: LEASE_ELECTOR_RUN__STOP_SIGNAL] [default: SIGTERM]
    #[arg(long, global = true, value_name = "SIGNAL")]
    stop_signal: Option<String>,
    /// run: time between the stop signal and SIGKILL [env: LEASE_ELECTOR_RUN__GRACE_PERIOD] [default: 3s]
    #[arg(long, global = true, value_name = "DURATION")]
    grace_period: Option<String>,
    /// run: when the child exits by itself, "recompete" or "exit" with its code [env: LEASE_ELECTOR_RUN__ON_CHILD_EXIT] [default: recompete]
    #[arg(long, global = true, value_name = "POLICY")]
    on_child_exit: Option<String>,
    /// run: first pause before competing again after the child exited; doubles up to 30s [env: LEASE_ELECTOR_RUN__RESTART_BACKOFF] [default: 1s]
    #[arg(long, global = true, value_name = "DURATION")]
    restart_backoff: Option<String>,
    /// run: label the own Pod lease-elector.io/leader=true|false [env: LEASE_ELECTOR_RUN__LABEL_POD] [default: false]
    #[arg(long, global = true, value_name = "BOOL")]
    label_pod: Option<bool>,
}

impl SettingFlags {
    fn values(&self) -> FlagValues {
        let mut f = FlagValues::default();
        let mut s = |key: &str, flag: &str, v: &Option<String>| {
            if let Some(v) = v {
                f.set(key, flag, v.clone());
            }
        };
        s("lease", "--lease", &self.lease);
        s("namespace", "--namespace", &self.namespace);
        s("identity", "--identity", &self.identity);
        s("lease_duration", "--lease-duration", &self.lease_duration);
        s("renew_deadline", "--renew-deadline", &self.renew_deadline);
        s("retry_period", "--retry-period", &self.retry_period);
        s("kube_context", "--kube-context", &self.kube_context);
        s("http.listen", "--listen", &self.listen);
        s("http.readiness", "--readiness", &self.readiness);
        s("log.format", "--log-format", &self.log_format);
        s("log.level", "--log-level", &self.log_level);
        s("otel.endpoint", "--otlp-endpoint", &self.otlp_endpoint);
        s(
            "otel.service_name",
            "--otel-service-name",
            &self.otel_service_name,
        );
        s("run.stop_signal", "--stop-signal", &self.stop_signal);
        s("run.grace_period", "--grace-period", &self.grace_period);
        s("run.on_child_exit", "--on-child-exit", &self.on_child_exit);
        s(
            "run.restart_backoff",
            "--restart-backoff",
            &self.restart_backoff,
        );
        if let Some(b) = self.release_on_cancel {
            f.set("release_on_cancel", "--release-on-cancel", b);
        }
        if let Some(b) = self.label_pod {
            f.set("run.label_pod", "--label-pod", b);
        }
        f
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let loaded = match config::load(cli.settings.config.as_deref(), &env, cli.settings.values()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("lease-elector: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lease-elector: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Cmd::Config) => {
            print!("{}", loaded.describe());
            return ExitCode::SUCCESS;
        }
        Some(Cmd::Demo(args)) => runtime.block_on(demo::run(args, &loaded)),
        Some(Cmd::Run { command }) => {
            if let Err(e) = config::validate_run(&loaded) {
                eprintln!("lease-elector: {e}");
                return ExitCode::from(2);
            }
            runtime.block_on(daemon(&loaded, Some(command)))
        }
        None => runtime.block_on(daemon(&loaded, None)),
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("lease-elector: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The election against a real cluster, optionally supervising a child.
async fn daemon(loaded: &Loaded, child: Option<Vec<String>>) -> anyhow::Result<i32> {
    let settings = &loaded.settings;
    let _telemetry = telemetry::init(settings).context("setting up logs and traces")?;
    let listener = http::bind(settings.listen_addr())
        .await
        .with_context(|| format!("cannot listen on {} (http.listen)", settings.http.listen))?;
    let client = kube_client(settings).await?;
    info!(
        lease = %settings.lease, namespace = %settings.namespace, identity = %settings.identity,
        lease_duration = ?settings.lease_duration, renew_deadline = ?settings.renew_deadline,
        retry_period = ?settings.retry_period, listen = %settings.http.listen,
        "lease-elector {} starting", env!("CARGO_PKG_VERSION")
    );

    let backend = KubeBackend::new(client.clone(), &settings.lease, &settings.namespace);
    let metrics = Arc::new(Metrics::new(&settings.lease, &settings.namespace));
    let mut elector = Elector::new(backend, settings.election(), metrics.clone());
    let shutdown = CancellationToken::new();
    tokio::spawn(on_signals(shutdown.clone()));

    let (child_tx, child_rx) = watch::channel(ChildStatus {
        state: "idle",
        ..ChildStatus::default()
    });
    let supervisor = child.map(|command| {
        tokio::spawn(supervise::reaper::reap_orphans_if_pid1(shutdown.clone()));
        let spec = ChildSpec {
            command,
            env: vec![
                ("LEASE_ELECTOR_IDENTITY".into(), settings.identity.clone()),
                ("LEASE_ELECTOR_LEASE".into(), settings.lease.clone()),
                ("LEASE_ELECTOR_NAMESPACE".into(), settings.namespace.clone()),
            ],
            run: settings.run.clone(),
        };
        tokio::spawn(supervise::supervise(
            elector.events(),
            spec,
            metrics.clone(),
            child_tx,
            elector.resigner(),
            shutdown.clone(),
        ))
    });
    if settings.run.label_pod {
        tokio::spawn(label_pod(
            client,
            settings.namespace.clone(),
            elector.status(),
        ));
    }

    let http_stop = CancellationToken::new();
    let server = tokio::spawn(http::serve(
        listener,
        HttpState {
            metrics,
            status: elector.status(),
            child: supervisor.as_ref().map(|_| child_rx),
            readiness: settings.http.readiness,
            lease_duration: settings.lease_duration,
        },
        http_stop.clone(),
    ));

    elector.run(shutdown).await;
    let code = match supervisor {
        Some(task) => task.await.ok().flatten().unwrap_or(0),
        None => 0,
    };
    http_stop.cancel();
    let _ = server.await;
    info!(code, "lease-elector stopped");
    Ok(code)
}

async fn kube_client(settings: &Settings) -> anyhow::Result<kube::Client> {
    let mut config = match &settings.kube_context {
        Some(context) => kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
            context: Some(context.clone()),
            ..Default::default()
        })
        .await
        .with_context(|| format!("cannot load kubeconfig context {context:?} (kube_context)"))?,
        None => kube::Config::infer().await.context(
            "no Kubernetes configuration found (in-cluster, KUBECONFIG or ~/.kube/config); \
             try `lease-elector demo` to see it work without a cluster",
        )?,
    };
    config.connect_timeout = Some(settings.election().timings.request_timeout());
    kube::Client::try_from(config).context("cannot build the Kubernetes client")
}

/// First SIGTERM/SIGINT: graceful shutdown (stop work, release). Second: exit now.
async fn on_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("cannot install signal handlers");
        return;
    };
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    info!("shutdown requested; stopping leader work and releasing the Lease");
    shutdown.cancel();
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    warn!("second signal: exiting at once");
    std::process::exit(130);
}

/// Keeps `lease-elector.io/leader` on the own Pod in step with leadership.
async fn label_pod(
    client: kube::Client,
    namespace: String,
    mut status: watch::Receiver<lease_elector::election::Status>,
) {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Patch, PatchParams};
    let Ok(pod) = std::env::var("POD_NAME") else {
        warn!("run.label_pod is set but POD_NAME is not; not labelling");
        return;
    };
    let pods: kube::Api<Pod> = kube::Api::namespaced(client, &namespace);
    let mut last: Option<bool> = None;
    loop {
        let leader = status.borrow_and_update().is_leader;
        if last != Some(leader) {
            let patch = serde_json::json!({"metadata": {"labels": {"lease-elector.io/leader": leader.to_string()}}});
            match pods
                .patch(&pod, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => last = Some(leader),
                Err(e) => {
                    warn!(error = %e, pod, "cannot label the Pod");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
            }
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}
