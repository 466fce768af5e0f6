//! Logs (tracing-subscriber, text or JSON) and optional OpenTelemetry traces.

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

use crate::config::{LogFormat, Settings};

/// Keeps the trace exporter alive; flushes it when dropped.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            // Flushing waits for exports that run on the async runtime, so it
            // must not block a thread the runtime may need.
            let _ = std::thread::spawn(move || p.shutdown()).join();
        }
    }
}

/// Installs the global subscriber. `RUST_LOG` overrides `log.level`. Traces
/// are exported over OTLP/HTTP only when an endpoint is configured
/// (`otel.endpoint`, or the standard `OTEL_EXPORTER_OTLP_ENDPOINT`).
pub fn init(settings: &Settings) -> anyhow::Result<Telemetry> {
    let filter = match EnvFilter::try_from_default_env() {
        Ok(f) => f,
        // kube's client logs every failed connection at ERROR; the election
        // already reports each failed request once, with its consequence.
        Err(_) => EnvFilter::try_new(&settings.log.level)?
            .add_directive("kube_client::client::builder=off".parse()?),
    };
    // Spans are exported whatever the log level: quiet logs, full traces.
    let span_filter = EnvFilter::try_new("lease_elector=info")?;
    let fmt = match settings.log.format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
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

    let endpoint = settings.otel.endpoint.clone().or_else(|| {
        std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
            .ok()
            .filter(|s| !s.is_empty())
    });
    let (otel, provider) = match endpoint {
        Some(endpoint) => {
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
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name(settings.otel.service_name.clone())
                        .build(),
                )
                .build();
            let tracer = provider.tracer("lease-elector");
            (
                Some(
                    tracing_opentelemetry::layer()
                        .with_tracer(tracer)
                        .with_filter(span_filter),
                ),
                Some(provider),
            )
        }
        None => (None, None),
    };

    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()?;
    Ok(Telemetry { provider })
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
