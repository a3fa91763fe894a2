//! The operator's Kubernetes client, counting every request it sends by verb and resource
//! (`gatehouse_api_requests_total`): what a reconcile costs the API server, measured rather than
//! guessed.

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Method, Request};
use kube::client::ClientBuilder;
use kube::{Client, Config};
use tower::{Layer, Service};

use crate::metrics::Metrics;

/// A client from the default configuration (KUBECONFIG or in-cluster) whose requests are
/// counted in `metrics`.
pub async fn counted(metrics: Arc<Metrics>) -> Result<Client, kube::Error> {
    let config = Config::infer().await.map_err(kube::Error::InferConfig)?;
    Ok(ClientBuilder::try_from(config)?
        .with_layer(&Counting { metrics })
        .build())
}

#[derive(Clone)]
struct Counting {
    metrics: Arc<Metrics>,
}

impl<S> Layer<S> for Counting {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
struct Counted<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B> Service<Request<B>> for Counted<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (verb, resource) = classify(
            request.method(),
            request.uri().path(),
            request.uri().query(),
        );
        self.metrics.api_request(verb, resource);
        self.inner.call(request)
    }
}

/// The Kubernetes verb and resource of a request: `GET /api/v1/namespaces/a/secrets/b` is a
/// `get` of `secrets`, without a name a `list` (or a `watch` with `watch=true`); a subresource is
/// named with its resource (`accessrequests/status`). Paths that are no resource (`/version`)
/// count under their path.
pub fn classify(method: &Method, path: &str, query: Option<&str>) -> (&'static str, String) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return (verb_of(method, false, query), path.to_string()),
    };
    let rest = match rest {
        ["namespaces", _namespace, resource, tail @ ..] => {
            let mut all = vec![*resource];
            all.extend(tail);
            all
        }
        other => other.to_vec(),
    };
    let (resource, named) = match rest.as_slice() {
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, subresource, ..] => (format!("{resource}/{subresource}"), true),
        [] => (path.to_string(), false),
    };
    (verb_of(method, named, query), resource)
}

fn verb_of(method: &Method, named: bool, query: Option<&str>) -> &'static str {
    let watching = query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    match *method {
        Method::GET if watching => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_their_kubernetes_verb_and_resource() {
        for (method, path, query, expected) in [
            (
                Method::GET,
                "/api/v1/namespaces/a/secrets/b",
                None,
                ("get", "secrets"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/a/secrets",
                None,
                ("list", "secrets"),
            ),
            (
                Method::GET,
                "/apis/rbac.authorization.k8s.io/v1/rolebindings",
                Some("labelSelector=x&watch=true&resourceVersion=1"),
                ("watch", "rolebindings"),
            ),
            (
                Method::PATCH,
                "/apis/gatehouse.dev/v1alpha1/namespaces/p/accessrequests/r/status",
                Some("fieldManager=gatehouse"),
                ("patch", "accessrequests/status"),
            ),
            (
                Method::POST,
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                None,
                ("create", "subjectaccessreviews"),
            ),
            (
                Method::PATCH,
                "/apis/gatehouse.dev/v1alpha1/accessrecords/accessrequest.p.r.uid",
                None,
                ("patch", "accessrecords"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces",
                None,
                ("list", "namespaces"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/p",
                None,
                ("get", "namespaces"),
            ),
            (
                Method::DELETE,
                "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/x",
                None,
                ("delete", "clusterrolebindings"),
            ),
            (Method::GET, "/version", None, ("list", "/version")),
        ] {
            let (verb, resource) = classify(&method, path, query);
            assert_eq!((verb, resource.as_str()), expected, "{method} {path}");
        }
    }
}
