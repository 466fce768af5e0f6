//! Logs (tracing-subscriber, text or JSON) and optional OpenTelemetry traces.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use serde::{Deserialize, Serialize};

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Output format.
    pub format: LogFormat,
    /// Filter directives (`info`, `lease_elector=debug,kube=info`); `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
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

impl Default for OtelSettings {
    fn default() -> Self {
        OtelSettings {
            endpoint: None,
            service_name: "lease-elector".into(),
        }
    }
}

/// Keeps the trace exporter alive. [`Telemetry::flush`] exports what is
/// left; dropped without it, the flush is only started.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered, then stops the exporter. The exports
    /// run on the async runtime, so the wait must not block the runtime's
    /// thread (the daemon runs a current-thread runtime).
    pub async fn flush(mut self) {
        if let Some(p) = self.provider.take() {
            let _ = tokio::task::spawn_blocking(move || p.shutdown()).await;
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            // Not joined: on a current-thread runtime the exports it waits
            // for could only run once this thread returns to the runtime.
            std::thread::spawn(move || p.shutdown());
        }
    }
}

/// Installs the global subscriber. `RUST_LOG` overrides `log.level`. Traces
/// are exported over OTLP/HTTP only when an endpoint is configured
/// (`otel.endpoint`, or the standard `OTEL_EXPORTER_OTLP_ENDPOINT`).
pub fn init(log: &LogSettings, otel: &OtelSettings) -> anyhow::Result<Telemetry> {
    let filter = match EnvFilter::try_from_default_env() {
        Ok(f) => f,
        // kube's client logs every failed connection at ERROR; the election
        // already reports each failed request once, with its consequence.
        Err(_) => EnvFilter::try_new(&log.level)?
            .add_directive("kube_client::client::builder=off".parse()?),
    };
    // Spans are exported whatever the log level: quiet logs, full traces.
    let span_filter = EnvFilter::try_new("lease_elector=info")?;
    let fmt = match log.format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR"),
            ))
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(filter);

    let endpoint = otel.endpoint.clone().or_else(|| {
        std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
            .ok()
            .filter(|s| !s.is_empty())
    });
    let provider = match endpoint {
        Some(endpoint) => Some(tracer_provider(&endpoint, &otel.service_name)?),
        None => None,
    };
    let spans = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("lease-elector"))
            .with_filter(span_filter)
    });

    tracing_subscriber::registry()
        .with(fmt)
        .with(spans)
        .try_init()?;
    Ok(Telemetry { provider })
}

/// Colour is for a person at a terminal: not for `kubectl logs`, files or
/// pipes, and never when `NO_COLOR` is set to anything but "" (no-color.org).
fn colour(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Batch export of spans over OTLP/HTTP to `endpoint`.
fn tracer_provider(endpoint: &str, service_name: &str) -> anyhow::Result<SdkTracerProvider> {
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let client = OnRuntime {
        inner: Arc::new(HyperClient::with_default_connector(
            Duration::from_secs(10),
            None,
        )),
        runtime: tokio::runtime::Handle::try_current()?,
    };
    let exporter = SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .with_http_client(client)
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service_name.to_string())
                .build(),
        )
        .build())
}

/// The OTLP HTTP client, run on our tokio runtime. The batch span processor
/// exports from a thread of its own, where hyper would find no reactor.
#[derive(Debug)]
struct OnRuntime {
    inner: Arc<HyperClient>,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let inner = self.inner.clone();
        self.runtime
            .spawn(async move { inner.send_bytes(request).await })
            .await?
    }
}

#[cfg(test)]
mod tests {
    use super::colour;

    #[test]
    fn text_logs_are_coloured_only_on_a_terminal_and_never_with_no_color() {
        assert!(colour(true, None));
        assert!(
            !colour(false, None),
            "a pipe or kubectl logs gets no escape codes"
        );
        assert!(!colour(true, Some("1".into())));
        assert!(
            colour(true, Some("".into())),
            "an empty NO_COLOR does not count"
        );
    }
}
