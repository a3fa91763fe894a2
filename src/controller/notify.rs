//! The notifier: delivers what reconciles put in `status.notifications`, in the background, so
//! that no reconcile ever waits for a destination and a dead one never delays access or expiry.
//!
//! Deliveries run in lanes, one per object and destination: a lane sends its notifications in
//! the order they were recorded, each tried up to [`Notifier::attempts`] times with doubling
//! waits, and reports what each reached ([`Notifier::reached`]) and wakes the object's
//! reconcile, whose one status write records it. What a status still lists as pending after a
//! restart is submitted again (at least once; receivers drop duplicates by the CloudEvents id).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, Resource, ResourceExt};

use crate::api::{DeliveryState, NotificationFormat, NotificationRecord, NotificationTarget};
use crate::lifecycle::notify::Reached;
use crate::lifecycle::notify::payload::{self, About};
use crate::metrics::Metrics;

/// How long one attempt may take, connecting included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The wait after the first failed attempt; it doubles after each further one.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
const LONGEST_RETRY: Duration = Duration::from_secs(60);
/// How long a settled delivery is remembered: far longer than a cached copy of an object lags
/// behind its status.
const KEEP_SETTLED: Duration = Duration::from_secs(600);

/// Why one attempt failed. The messages go into status, which the requester can read: they name
/// neither the URL (webhook URLs are credentials) nor what the destination answered.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(
        "the HMAC key Secret {namespace}/{name} does not exist; create it (the notification is never sent unsigned)"
    )]
    SecretMissing { namespace: String, name: String },
    #[error(
        "the HMAC key Secret {namespace}/{name} has no key {key:?}; add it or set secretRef.key (the notification is never sent unsigned)"
    )]
    KeyMissing {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("cannot read the HMAC key Secret {namespace}/{name}: {source}")]
    ReadSecret {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// What went wrong, with its causes (`connection refused`, `timed out`), never the URL.
    #[error("cannot send: {0}")]
    Send(String),
    #[error("the destination answered HTTP {0}")]
    Rejected(u16),
}

/// One notification for one destination, rendered.
#[derive(Clone)]
struct Job {
    id: String,
    destination: String,
    url: String,
    format: NotificationFormat,
    secret: crate::api::NotificationSecretRef,
    body: Vec<u8>,
    /// Attempts made before (by an operator that restarted since).
    attempted: u32,
    /// Whose reconcile to wake when it is settled: the kind, namespace and name.
    kind: String,
    namespace: String,
    name: String,
}

/// Wakes the reconcile of the object `(namespace, name)` of one kind.
type Wake = Arc<dyn Fn(&str, &str) + Send + Sync>;

#[derive(Default)]
struct State {
    /// The latest word on every delivery submitted, by notification id and destination, with
    /// when it settled. Settled ones are kept for [`KEEP_SETTLED`]: a reconcile of a copy of
    /// the object older than the status that recorded them must not send them again.
    reached: HashMap<(String, String), (Reached, Option<Instant>)>,
    /// Notifications waiting to be sent, per lane (object uid and destination).
    lanes: HashMap<(String, String), VecDeque<Job>>,
    wakes: HashMap<String, Wake>,
}

/// Delivers notifications; shared by both kinds' reconciles through the [`super::Context`].
pub struct Notifier {
    http: reqwest::Client,
    client: Client,
    /// Where the HMAC key Secrets live: the operator's namespace.
    namespace: String,
    metrics: Arc<Metrics>,
    /// How often a notification is tried before it fails.
    attempts: u32,
    state: Mutex<State>,
}

impl Notifier {
    /// Fails only when the HTTP client cannot be built (its TLS roots cannot be loaded): the
    /// operator does not start with a weaker one.
    pub fn new(
        client: Client,
        namespace: String,
        metrics: Arc<Metrics>,
        attempts: u32,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(ATTEMPT_TIMEOUT)
            // A redirect would send the signed body somewhere the policy does not name.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            client,
            namespace,
            metrics,
            attempts: attempts.max(1),
            state: Mutex::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes settled deliveries of objects of `kind` wake their reconcile through `wake`.
    pub fn on_settled(&self, kind: &str, wake: impl Fn(&str, &str) + Send + Sync + 'static) {
        self.state().wakes.insert(kind.to_string(), Arc::new(wake));
    }

    /// The latest word on the delivery of notification `id` to `destination`.
    pub fn reached(&self, id: &str, destination: &str) -> Option<Reached> {
        self.state()
            .reached
            .get(&(id.to_string(), destination.to_string()))
            .map(|(reached, _)| reached.clone())
    }

    /// After a status was written (or found as wanted): submits every pending delivery it lists
    /// that was not submitted yet.
    pub fn submit<K: Resource<DynamicType = ()> + ResourceExt>(
        self: &Arc<Self>,
        object: &K,
        requester: &str,
        notifications: &[NotificationRecord],
        targets: &[NotificationTarget],
    ) {
        let about = About {
            kind: K::kind(&()).into_owned(),
            plural: K::plural(&()).into_owned(),
            version: K::version(&()).into_owned(),
            namespace: object.namespace().unwrap_or_default(),
            name: object.name_any(),
            requester: requester.to_string(),
        };
        let uid = object.meta().uid.clone().unwrap_or_default();
        let mut started = Vec::new();
        {
            let mut state = self.state();
            state
                .reached
                .retain(|_, (_, settled)| settled.is_none_or(|at| at.elapsed() < KEEP_SETTLED));
            for notification in notifications {
                for delivery in &notification.deliveries {
                    let key = (notification.id.clone(), delivery.destination.clone());
                    if delivery.state != DeliveryState::Pending {
                        continue;
                    }
                    let Some(target) = targets.iter().find(|t| t.label() == delivery.destination)
                    else {
                        continue;
                    };
                    if state.reached.contains_key(&key) {
                        continue;
                    }
                    state.reached.insert(
                        key,
                        (
                            Reached {
                                state: DeliveryState::Pending,
                                attempts: delivery.attempts,
                                last_error: delivery.last_error.clone(),
                            },
                            None,
                        ),
                    );
                    let job = Job {
                        id: notification.id.clone(),
                        destination: delivery.destination.clone(),
                        url: target.url.clone(),
                        format: target.format,
                        secret: target.secret_ref.clone(),
                        body: payload::body(target.format, &about, notification),
                        attempted: delivery.attempts,
                        kind: about.kind.clone(),
                        namespace: about.namespace.clone(),
                        name: about.name.clone(),
                    };
                    let lane = (uid.clone(), delivery.destination.clone());
                    let queue = state.lanes.entry(lane.clone()).or_default();
                    queue.push_back(job);
                    if queue.len() == 1 {
                        started.push(lane);
                    }
                }
            }
        }
        for lane in started {
            tokio::spawn(self.clone().drain(lane));
        }
    }

    /// Forgets what was reached for the deleted object `uid`: no status will record it. Its
    /// deliveries under way still finish.
    pub fn forget(&self, uid: &str) {
        let prefix = format!("{uid}.");
        self.state()
            .reached
            .retain(|(id, _), _| !id.starts_with(&prefix));
    }

    /// Sends the notifications of `lane` in order until it is empty.
    async fn drain(self: Arc<Self>, lane: (String, String)) {
        loop {
            let job = {
                let state = self.state();
                match state.lanes.get(&lane).and_then(|queue| queue.front()) {
                    Some(job) => job.clone(),
                    None => return,
                }
            };
            self.deliver(&job).await;
            let mut state = self.state();
            if let Some(queue) = state.lanes.get_mut(&lane) {
                queue.pop_front();
                if queue.is_empty() {
                    state.lanes.remove(&lane);
                }
            }
        }
    }

    /// Tries `job` until it is delivered or out of attempts, then wakes its object.
    async fn deliver(&self, job: &Job) {
        let format = job.format.name();
        let mut wait = FIRST_RETRY;
        for attempt in 1..=self.attempts {
            let result = self.attempt(job).await;
            let last = attempt == self.attempts;
            let reached = match &result {
                Ok(()) => Reached {
                    state: DeliveryState::Delivered,
                    attempts: job.attempted.saturating_add(attempt),
                    last_error: None,
                },
                Err(err) => Reached {
                    state: if last {
                        DeliveryState::Failed
                    } else {
                        DeliveryState::Pending
                    },
                    attempts: job.attempted.saturating_add(attempt),
                    last_error: Some(err.to_string()),
                },
            };
            let settled = reached.state != DeliveryState::Pending;
            self.metrics.notification(
                format,
                match reached.state {
                    DeliveryState::Delivered => "delivered",
                    DeliveryState::Pending => "retried",
                    DeliveryState::Failed => "failed",
                },
            );
            if let Err(err) = &result {
                tracing::warn!(notification = job.id, destination = job.destination, attempt, error = %err, "notification not delivered");
            }
            // Only while it is wanted: a deleted object's deliveries were forgotten.
            if let Some(slot) = self
                .state()
                .reached
                .get_mut(&(job.id.clone(), job.destination.clone()))
            {
                *slot = (reached, settled.then(Instant::now));
            }
            if settled {
                break;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(LONGEST_RETRY);
        }
        let wake = self.state().wakes.get(&job.kind).cloned();
        if let Some(wake) = wake {
            wake(&job.namespace, &job.name);
        }
    }

    /// One signed POST of `job`.
    async fn attempt(&self, job: &Job) -> Result<(), DeliveryError> {
        let key = self.key(&job.secret).await?;
        let response = self
            .http
            .post(&job.url)
            .header(
                reqwest::header::CONTENT_TYPE,
                payload::content_type(job.format),
            )
            .header(
                payload::SIGNATURE_HEADER,
                payload::signature(&key, &job.body),
            )
            .body(job.body.clone())
            .send()
            .await
            .map_err(|err| DeliveryError::Send(causes(&err.without_url())))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError::Rejected(status.as_u16()))
        }
    }

    /// The HMAC key `secret` names, read at every attempt so that a rotated or newly created key
    /// is used at once.
    async fn key(
        &self,
        secret: &crate::api::NotificationSecretRef,
    ) -> Result<Vec<u8>, DeliveryError> {
        let found = Api::<Secret>::namespaced(self.client.clone(), &self.namespace)
            .get_opt(&secret.name)
            .await
            .map_err(|source| DeliveryError::ReadSecret {
                namespace: self.namespace.clone(),
                name: secret.name.clone(),
                source,
            })?
            .ok_or_else(|| DeliveryError::SecretMissing {
                namespace: self.namespace.clone(),
                name: secret.name.clone(),
            })?;
        found
            .data
            .and_then(|mut data| data.remove(secret.key()))
            .map(|bytes| bytes.0)
            .filter(|bytes| !bytes.is_empty())
            .ok_or_else(|| DeliveryError::KeyMissing {
                namespace: self.namespace.clone(),
                name: secret.name.clone(),
                key: secret.key().to_string(),
            })
    }
}

/// `error` and its causes, e.g. `error sending request: client error (Connect): tcp connect error:
/// Connection refused (os error 111)`, each once.
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(current) = next {
        let text = current.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = current.source();
    }
    parts.join(": ")
}
