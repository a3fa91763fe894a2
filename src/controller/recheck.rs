//! Signals that make a controller look at every object again, kept across terms of leadership:
//! a replica that leads again runs new controllers, each subscribing anew ([`Relay`]); and the
//! API server answering again after it was unreachable ([`Reachability`]), so that what fell due
//! while it was away is acted on as soon as it is back rather than at each object's next retry
//! (retries back off to minutes).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::Client;
use tokio::sync::{Notify, watch};

/// How often the API server is asked whether it answers again, once a reconcile found it
/// unreachable: the longest an object waits after the API server is back, beyond its reconcile.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// A stream of "look at everything again", fanned out to whichever controllers run now.
#[derive(Clone)]
pub struct Relay(watch::Sender<u64>);

impl Relay {
    /// Forwards every item of `changes`, in a task of its own (so that it is polled whether or
    /// not a controller runs).
    pub fn of(changes: impl Stream<Item = ()> + Send + 'static) -> Relay {
        let relay = Relay(watch::Sender::new(0));
        let sender = relay.clone();
        tokio::spawn(changes.for_each(move |()| {
            sender.signal();
            futures::future::ready(())
        }));
        relay
    }

    /// Signals every subscriber.
    pub fn signal(&self) {
        self.0.send_modify(|count| *count = count.wrapping_add(1));
    }

    /// The signals from now on (a controller that starts looks at everything anyway). Bursts
    /// coalesce into one.
    pub fn subscribe(&self) -> impl Stream<Item = ()> + Send + 'static {
        let mut signals = self.0.subscribe();
        signals.mark_unchanged();
        futures::stream::unfold(signals, |mut signals| async move {
            signals.changed().await.ok()?;
            Some(((), signals))
        })
    }
}

/// Whether reconciles found the API server unreachable; when one did, [`Reachability::watch`]
/// asks it every [`PROBE_EVERY`] and signals its relay once it answers.
#[derive(Default)]
pub struct Reachability {
    unreachable: Notify,
    /// Set while probing: the failures meanwhile are part of the same outage.
    probing: AtomicBool,
}

impl Reachability {
    /// A reconcile failed without reaching the API server.
    pub fn unreachable(&self) {
        if !self.probing.load(Ordering::Acquire) {
            self.unreachable.notify_one();
        }
    }

    /// Forever: after each [`Reachability::unreachable`], probes `GET /version` until it
    /// answers, then signals `back` (one log line each way, however long the outage).
    pub async fn watch(&self, client: Client, back: Relay) {
        loop {
            self.unreachable.notified().await;
            self.probing.store(true, Ordering::Release);
            tracing::warn!(
                probe_every = ?PROBE_EVERY,
                "the API server is unreachable; asking it every {PROBE_EVERY:?} whether it is back"
            );
            let mut probes = 0u32;
            loop {
                probes = probes.saturating_add(1);
                if client.apiserver_version().await.is_ok() {
                    break;
                }
                tokio::time::sleep(PROBE_EVERY).await;
            }
            tracing::info!(
                probes,
                "the API server answers again; looking at every object again"
            );
            back.signal();
            self.probing.store(false, Ordering::Release);
        }
    }
}

/// Whether `error` (or what caused it) is a request that never reached the API server, or
/// whose connection broke: nothing about the object, retried when the server is back.
pub fn unreachable(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(kube) = error.downcast_ref::<kube::Error>() {
            return matches!(
                kube,
                kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_)
            );
        }
        cause = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read things: {0}")]
    struct Wrapped(#[source] kube::Error);

    #[test]
    fn only_errors_that_never_reached_the_api_server_count_as_unreachable() {
        let refused: tower::BoxError = Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        assert!(unreachable(&Wrapped(kube::Error::Service(refused))));
        let forbidden = kube::Error::Api(Box::new(kube::core::Status::failure(
            "forbidden",
            "Forbidden",
        )));
        assert!(!unreachable(&Wrapped(forbidden)));
        assert!(!unreachable(&std::io::Error::other("not a kube error")));
    }

    #[tokio::test]
    async fn a_relay_signals_every_subscriber_of_changes_after_it_subscribed() {
        let (changes, rx) = futures::channel::mpsc::unbounded();
        let relay = Relay::of(rx);
        changes.unbounded_send(()).expect("relay runs");
        tokio::task::yield_now().await;
        let mut first = std::pin::pin!(relay.subscribe());
        let mut second = std::pin::pin!(relay.subscribe());
        changes.unbounded_send(()).expect("relay runs");
        let timeout = Duration::from_secs(5);
        for subscriber in [&mut first, &mut second] {
            tokio::time::timeout(timeout, subscriber.next())
                .await
                .expect("signalled")
                .expect("open");
        }
    }
}
