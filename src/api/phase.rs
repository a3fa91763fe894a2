//! The phases every approvable, time-bound thing goes through, and how each kind's phase enum
//! maps onto them: one definition of "open", "running" and "terminal" for both kinds.

use super::{AccessPhase, SharingPhase};

/// Gives a kind's phase enum the core's helpers, through its mapping onto [`Phase`]: what is
/// open, running or terminal is decided once.
macro_rules! phase_helpers {
    ($enum:ident) => {
        impl $enum {
            /// Whether it waits for people's decisions ([`super::Phase::is_open`]).
            pub fn is_open(self) -> bool {
                super::Phase::from(self).is_open()
            }

            /// Whether what was approved is provided, or paused, within its window
            /// ([`super::Phase::is_running`]).
            pub fn is_running(self) -> bool {
                super::Phase::from(self).is_running()
            }

            /// Whether it ended for good: it never provides anything again
            /// ([`super::Phase::is_terminal`]).
            pub fn is_terminal(self) -> bool {
                super::Phase::from(self).is_terminal()
            }
        }
    };
}

pub(crate) use phase_helpers;

/// The phases every approvable, time-bound thing goes through. Each kind maps them onto the phase
/// enum of its CRD; a kind without holds or suspensions never sees those.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for approvals.
    Pending,
    /// Waiting for something besides approvals that the kind requires before anything is
    /// provided (a share's signed agreement).
    Held,
    /// Fully approved before its `startAt`: nothing is provided until then.
    Scheduled,
    /// Fully approved and its window recorded; what it grants is being provided.
    Approved,
    /// Provided, within its window.
    Active,
    /// Within its window, but nothing is provided until what was approved holds again.
    Suspended,
    Expired,
    Revoked,
    Denied,
    /// An approver asked for changes: nothing is provided, a new object carries the changes.
    ChangesRequested,
    TimedOut,
    /// Does not fit a policy (yet): retried on every change, nothing is provided.
    Failed,
}

impl Phase {
    /// Whether the phase never changes again: nothing is provided, ever.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Phase::Expired
                | Phase::Revoked
                | Phase::Denied
                | Phase::ChangesRequested
                | Phase::TimedOut
        )
    }

    /// Whether the object waits for people's decisions.
    pub fn is_open(self) -> bool {
        matches!(self, Phase::Pending | Phase::Held)
    }

    /// Whether what was approved is provided (or paused) within its open window: it is
    /// re-derived on every reconcile.
    pub fn is_running(self) -> bool {
        matches!(self, Phase::Active | Phase::Suspended)
    }
}

impl From<Phase> for AccessPhase {
    /// A request has no holds and is never suspended: those phases do not occur for it, and map
    /// to the phases that provide nothing.
    fn from(phase: Phase) -> Self {
        match phase {
            Phase::Pending | Phase::Held => AccessPhase::Pending,
            Phase::Scheduled => AccessPhase::Scheduled,
            Phase::Approved | Phase::Suspended => AccessPhase::Approved,
            Phase::Active => AccessPhase::Active,
            Phase::Expired => AccessPhase::Expired,
            Phase::Revoked => AccessPhase::Revoked,
            Phase::Denied => AccessPhase::Denied,
            Phase::ChangesRequested => AccessPhase::ChangesRequested,
            Phase::TimedOut => AccessPhase::TimedOut,
            Phase::Failed => AccessPhase::Failed,
        }
    }
}

impl From<AccessPhase> for Phase {
    fn from(phase: AccessPhase) -> Self {
        match phase {
            AccessPhase::Pending => Phase::Pending,
            AccessPhase::Scheduled => Phase::Scheduled,
            AccessPhase::Approved => Phase::Approved,
            AccessPhase::Active => Phase::Active,
            AccessPhase::Expired => Phase::Expired,
            AccessPhase::Revoked => Phase::Revoked,
            AccessPhase::Denied => Phase::Denied,
            AccessPhase::ChangesRequested => Phase::ChangesRequested,
            AccessPhase::TimedOut => Phase::TimedOut,
            AccessPhase::Failed => Phase::Failed,
        }
    }
}

impl From<Phase> for SharingPhase {
    fn from(phase: Phase) -> Self {
        match phase {
            Phase::Pending => SharingPhase::Pending,
            Phase::Held => SharingPhase::AwaitingAgreement,
            Phase::Scheduled => SharingPhase::Scheduled,
            Phase::Approved => SharingPhase::Approved,
            Phase::Active => SharingPhase::Active,
            Phase::Suspended => SharingPhase::Suspended,
            Phase::Expired => SharingPhase::Expired,
            Phase::Revoked => SharingPhase::Revoked,
            Phase::Denied => SharingPhase::Denied,
            Phase::ChangesRequested => SharingPhase::ChangesRequested,
            Phase::TimedOut => SharingPhase::TimedOut,
            Phase::Failed => SharingPhase::Failed,
        }
    }
}

impl From<SharingPhase> for Phase {
    fn from(phase: SharingPhase) -> Self {
        match phase {
            SharingPhase::Pending => Phase::Pending,
            SharingPhase::AwaitingAgreement => Phase::Held,
            SharingPhase::Scheduled => Phase::Scheduled,
            SharingPhase::Approved => Phase::Approved,
            SharingPhase::Active => Phase::Active,
            SharingPhase::Suspended => Phase::Suspended,
            SharingPhase::Expired => Phase::Expired,
            SharingPhase::Revoked => Phase::Revoked,
            SharingPhase::Denied => Phase::Denied,
            SharingPhase::ChangesRequested => Phase::ChangesRequested,
            SharingPhase::TimedOut => Phase::TimedOut,
            SharingPhase::Failed => Phase::Failed,
        }
    }
}
