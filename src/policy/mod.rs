//! Pure decisions: no I/O, no clock reads (`now` is an argument), unit-tested without a server.
//! The controllers gather what they observed into plain inputs and act on what these functions
//! decide.

pub mod access;
pub mod approvals;
pub mod duration;
pub mod findings;
pub mod integrity;
pub mod lifecycle;
pub mod selector;
pub mod sharing;
pub mod verification;

/// Why an object cannot proceed: a condition reason and a message that names the field and the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}
