//! An HTTP receiver for notification tests, started by the test on 127.0.0.1: it records every
//! request and answers as told, and checks nothing itself (the tests do).

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support;

/// One POST the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub signature: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// An HTTP receiver on 127.0.0.1 that records every request and answers 200, except the first
/// request to each path in `fail_first`, answered 500.
pub struct Receiver {
    pub address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub async fn start(fail_first: &[&str]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the receiver");
        let address = listener.local_addr().expect("its address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let failing: Arc<Mutex<HashSet<String>>> = Arc::new(Mutex::new(
            fail_first.iter().map(|p| p.to_string()).collect(),
        ));
        let log = received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, failing) = (log.clone(), failing.clone());
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let (log, failing) = (log.clone(), failing.clone());
                    async move {
                        let header = |name: &str| {
                            request
                                .headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .map(String::from)
                        };
                        let path = request.uri().path().to_string();
                        let (signature, content_type) =
                            (header("x-gatehouse-signature"), header("content-type"));
                        let body = request
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes().to_vec())
                            .unwrap_or_default();
                        log.lock().expect("log").push(Received {
                            path: path.clone(),
                            signature,
                            content_type,
                            body,
                        });
                        let status = if failing.lock().expect("failing").remove(&path) {
                            500
                        } else {
                            200
                        };
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() =
                            hyper::StatusCode::from_u16(status).expect("a status");
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Receiver { address, received }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn at(&self, path: &str) -> Vec<Received> {
        self.received
            .lock()
            .expect("log")
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Waits up to 60 s until `done` holds for what `path` received.
    pub async fn wait(
        &self,
        path: &str,
        what: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        for _ in 0..300 {
            let got = self.at(path);
            if done(&got) {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{path} never received {what}; got {:#?}", self.at(path))
    }
}

/// The hex HMAC-SHA256 of `body` under `key`, computed here independently of the operator.
pub fn expected_signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// An HMAC key Secret in the operator's namespace; returns its name.
pub async fn hmac_secret(admin: &Client, key: &str) -> String {
    let name = support::unique("notify-hmac");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": name }, "stringData": { "key": key }
    }))
    .expect("valid Secret");
    Api::<Secret>::namespaced(admin.clone(), support::OPERATOR_NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await
        .expect("the HMAC key Secret");
    name
}

/// The CloudEvents `path` received about `subject`, each id once, in the order first received.
pub fn events_about(received: &[Received], subject: &str) -> Vec<Value> {
    let mut seen = HashSet::new();
    received
        .iter()
        .map(Received::json)
        .filter(|e| e["subject"] == subject)
        .filter(|e| seen.insert(e["id"].as_str().unwrap_or_default().to_string()))
        .collect()
}

pub fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_string())
        .collect()
}
