//! The election against a real cluster, optionally supervising a child: the
//! daemon's wiring of kube client, candidate, supervisor, HTTP and signals.

use anyhow::Context;
use lease_elector::backend::connection::Connections;
use lease_elector::backend::kube::KubeBackend;
use lease_elector::candidate::{self, Candidate};
use lease_elector::config::{Loaded, Settings};
use lease_elector::supervise::{self, ChildSpec, ChildStatus};
use lease_elector::{http, telemetry};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Runs until shutdown; returns the exit code (the child's, with
/// `on_child_exit = "exit"`).
pub async fn run(loaded: &Loaded, child: Option<Vec<String>>) -> anyhow::Result<i32> {
    let settings = &loaded.settings;
    let telemetry =
        telemetry::init(&settings.log, &settings.otel).context("setting up logs and traces")?;
    let listener = http::bind(settings.listen_addr())
        .await
        .with_context(|| format!("cannot listen on {} (http.listen)", settings.http.listen))?;
    let client = kube_client(settings).await?;
    announce(settings);

    let backend = KubeBackend::new(client.clone(), &settings.lease, &settings.namespace)
        .with_watch_backoff_limit(settings.retry_period);
    let candidate = candidate::candidate(backend, settings.election());
    let shutdown = CancellationToken::new();
    tokio::spawn(on_signals(shutdown.clone()));
    let (child_tx, child_rx) = watch::channel(ChildStatus {
        state: "idle",
        ..ChildStatus::default()
    });
    let child_status = child.as_ref().map(|_| child_rx);
    let server = candidate.serve(listener, settings.http.readiness, child_status);
    let Candidate {
        elector,
        handles,
        metrics,
        ..
    } = candidate;
    if settings.run.label_pod {
        let status = handles.status.clone();
        tokio::spawn(crate::cli::label::label_pod(
            client,
            settings.namespace.clone(),
            status,
        ));
    }
    // Without a child the leadership events are dropped unread: nothing
    // waits on a leadership nobody holds.
    let supervisor = child.map(|command| {
        tokio::spawn(supervise::reaper::reap_orphans_if_pid1(shutdown.clone()));
        tokio::spawn(supervise::supervise(
            handles.events,
            child_spec(settings, command),
            metrics,
            child_tx,
            handles.resigner,
            shutdown.clone(),
            start_watchdog(),
        ))
    });

    elector.run(shutdown).await;
    let code = match supervisor {
        Some(task) => task.await.ok().flatten().unwrap_or(0),
        None => 0,
    };
    server.stop().await;
    info!(code, "lease-elector stopped");
    telemetry.flush().await;
    Ok(code)
}

/// The watchdog that kills the child when lease-elector itself is stalled;
/// without it only the in-process escalation is left, so say so loudly.
fn start_watchdog() -> supervise::Watchdog {
    supervise::Watchdog::start().unwrap_or_else(|e| {
        error!(error = %e, "cannot start the watchdog process (/proc/self/exe); a stopped lease-elector could not stop its child in time");
        supervise::Watchdog::none()
    })
}

fn announce(settings: &Settings) {
    info!(
        lease = %settings.lease, namespace = %settings.namespace, identity = %settings.identity,
        lease_duration = ?settings.lease_duration, renew_deadline = ?settings.renew_deadline,
        retry_period = ?settings.retry_period, listen = %settings.http.listen,
        "lease-elector {} starting", env!("CARGO_PKG_VERSION")
    );
}

/// What `lease-elector run` starts, with the environment it hands over.
fn child_spec(settings: &Settings, command: Vec<String>) -> ChildSpec {
    ChildSpec {
        command,
        env: vec![
            ("LEASE_ELECTOR_IDENTITY".into(), settings.identity.clone()),
            ("LEASE_ELECTOR_LEASE".into(), settings.lease.clone()),
            ("LEASE_ELECTOR_NAMESPACE".into(), settings.namespace.clone()),
        ],
        run: settings.run.clone(),
    }
}

async fn kube_client(settings: &Settings) -> anyhow::Result<kube::Client> {
    let config = match &settings.kube_context {
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
    let timings = settings.election().timings;
    Connections::derive(timings.retry_period, timings.request_timeout())
        .client(&config)
        .context("cannot build the Kubernetes client")
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
