//! SubjectAccessReview answers about approver rights, kept while RBAC stays as it was: every
//! reconcile of a pending or active object re-checks each decision's author, and without this
//! each check is a round trip (the largest share of the operator's API calls). Any change to a
//! Role, ClusterRole, RoleBinding or ClusterRoleBinding the operator's caches see forgets every
//! answer, and none is kept longer than [`MAX_AGE`] (rights from other authorizers than RBAC).
//! Proofs of access granted or removed are never taken from here: they must be fresh.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest an answer is used.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// How many answers are kept at most; beyond, all are forgotten (a bound on memory, not a policy).
const CAPACITY: usize = 100_000;

/// Answers by question, for one state of RBAC.
#[derive(Default)]
pub struct Verdicts {
    answers: Mutex<Answers>,
}

#[derive(Default)]
struct Answers {
    /// Bumped on every RBAC change: answers of an older generation are never used.
    generation: u64,
    by_question: HashMap<String, (u64, Instant, bool)>,
}

impl Verdicts {
    /// Forgets every answer: RBAC changed.
    pub fn rbac_changed(&self) {
        let mut answers = self.lock();
        answers.generation += 1;
        answers.by_question.clear();
    }

    /// The answer to `question` while it is current, as of `now`.
    pub fn get(&self, question: &str, now: Instant) -> Option<bool> {
        let answers = self.lock();
        let (generation, at, allowed) = answers.by_question.get(question)?;
        (*generation == answers.generation && now.duration_since(*at) < MAX_AGE).then_some(*allowed)
    }

    /// Keeps the answer to `question`, asked in RBAC generation `generation` (see
    /// [`Verdicts::generation`]) at `now`: an answer asked before a change is not kept.
    pub fn put(&self, question: String, generation: u64, allowed: bool, now: Instant) {
        let mut answers = self.lock();
        if generation != answers.generation {
            return;
        }
        if answers.by_question.len() >= CAPACITY {
            answers.by_question.clear();
        }
        answers
            .by_question
            .insert(question, (generation, now, allowed));
    }

    /// The current RBAC generation, to read before asking.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Answers> {
        self.answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_used_until_rbac_changes_or_it_is_old() {
        let verdicts = Verdicts::default();
        let start = Instant::now();
        let generation = verdicts.generation();
        verdicts.put("bob approve manager".into(), generation, true, start);
        assert_eq!(verdicts.get("bob approve manager", start), Some(true));
        assert_eq!(verdicts.get("carol approve manager", start), None);
        assert_eq!(
            verdicts.get("bob approve manager", start + MAX_AGE),
            None,
            "too old"
        );
        verdicts.rbac_changed();
        assert_eq!(verdicts.get("bob approve manager", start), None);
    }

    #[test]
    fn an_answer_asked_before_a_change_is_not_kept() {
        let verdicts = Verdicts::default();
        let now = Instant::now();
        let asked_in = verdicts.generation();
        verdicts.rbac_changed();
        verdicts.put("bob approve manager".into(), asked_in, true, now);
        assert_eq!(verdicts.get("bob approve manager", now), None);
    }
}
