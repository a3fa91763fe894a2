//! Side effects on the cluster: the RBAC bindings that grant access. Builders are pure functions;
//! the async functions apply them with server-side apply under the `gatehouse` field manager and
//! delete them by their owner label, never relying on garbage collection.

pub mod rbac;

/// Errors of provisioning; messages say what failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot apply {kind} {name}: {source}; the operator needs rights to create it and `bind` on the role"
    )]
    Apply {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot delete {kind} {name}: {source}")]
    Delete {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}
