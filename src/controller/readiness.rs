//! What `/readyz` answers: a replica is ready once its caches have synced; the leader only while
//! the approval admission policies are verified too, because until then it provisions nothing
//! (a rollout waits for it rather than replacing a working operator with one that cannot act).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use super::integrity::Integrity;
use crate::server::Probe;

#[derive(Default)]
pub struct Readiness {
    /// Set once every cache has synced.
    integrity: OnceLock<Arc<Integrity>>,
    leading: AtomicBool,
}

impl Readiness {
    pub(super) fn synced(&self, integrity: Arc<Integrity>) {
        let _ = self.integrity.set(integrity);
    }

    pub(super) fn leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Relaxed);
    }
}

impl Probe for Readiness {
    fn ready(&self) -> Result<(), String> {
        let Some(integrity) = self.integrity.get() else {
            return Err("the caches have not synced yet".into());
        };
        match integrity.problem() {
            Some(problem) if self.leading.load(Ordering::Relaxed) => Err(format!(
                "leading, but provisioning nothing: {problem}; restore the policies with `kubectl apply -k deploy/admission/`"
            )),
            _ => Ok(()),
        }
    }
}
