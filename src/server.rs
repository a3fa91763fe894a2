//! The operator's HTTP endpoints, for the kubelet and Prometheus: `/healthz` (the process
//! answers), `/readyz` (it can do its job, see [`Probe`]) and `/metrics` (OpenMetrics text).
//! Plain hyper, which kube's client already brings in, rather than a web framework for three
//! fixed paths.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// The content type Prometheus asks for and `prometheus-client` writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A client gets this long to send its request headers; a stalled one must not hold a task.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot listen on {address} for /metrics, /healthz and /readyz: {source}; pick a free address with --metrics-address"
    )]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Whether the operator can do its job now; `Err` says why not (the body of a 503).
pub trait Probe: Send + Sync + 'static {
    fn ready(&self) -> Result<(), String>;
}

/// Binds the address first, so that a taken port fails the start with a clear message instead of
/// leaving the probes unanswered.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(address)
        .await
        .map_err(|source| Error::Bind { address, source })
}

/// Answers requests on `listener` until the process ends.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, probe: Arc<dyn Probe>) {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "serving /metrics, /healthz and /readyz");
    }
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors, usually: wait instead of spinning on the error.
                tracing::warn!(error = %err, "cannot accept a connection on the metrics address");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (metrics, probe) = (metrics.clone(), probe.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = respond(&request, &metrics, probe.as_ref());
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "metrics connection ended with an error");
            }
        });
    }
}

fn respond<B>(request: &Request<B>, metrics: &Metrics, probe: &dyn Probe) -> Response<Full<Bytes>> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET is served\n".into(),
        );
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match probe.ready() {
            Ok(()) => text(StatusCode::OK, "ok\n".into()),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        },
        "/metrics" => match metrics.encode() {
            Ok(body) => response(StatusCode::OK, OPENMETRICS, body),
            Err(err) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot encode the metrics: {err}\n"),
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    response(status, "text/plain; charset=utf-8", body)
}

fn response(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    struct Fixed(Result<(), String>);

    impl Probe for Fixed {
        fn ready(&self) -> Result<(), String> {
            self.0.clone()
        }
    }

    fn get(path: &str) -> Request<()> {
        Request::get(path).body(()).expect("request")
    }

    async fn body(response: Response<Full<Bytes>>) -> String {
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn readyz_answers_503_with_the_reason_until_the_probe_passes() {
        let metrics = Metrics::new();
        let waiting = Fixed(Err("the caches have not synced yet".into()));
        let response = respond(&get("/readyz"), &metrics, &waiting);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(response).await, "the caches have not synced yet\n");
        let ready = respond(&get("/readyz"), &metrics, &Fixed(Ok(())));
        assert_eq!(ready.status(), StatusCode::OK);
        // Liveness does not depend on readiness: a standby or syncing operator is alive.
        assert_eq!(
            respond(&get("/healthz"), &metrics, &waiting).status(),
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn metrics_are_openmetrics_text() {
        let metrics = Metrics::new();
        let response = respond(&get("/metrics"), &metrics, &Fixed(Ok(())));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], OPENMETRICS);
        let text = body(response).await;
        assert!(text.contains("# TYPE gatehouse_leader gauge"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn other_paths_and_methods_are_refused() {
        let metrics = Metrics::new();
        let probe = Fixed(Ok(()));
        assert_eq!(
            respond(&get("/"), &metrics, &probe).status(),
            StatusCode::NOT_FOUND
        );
        let post = Request::post("/metrics").body(()).expect("request");
        assert_eq!(
            respond(&post, &metrics, &probe).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
