//! End-to-end tests against a real kube-apiserver and etcd built from the official Go modules,
//! acting as real authenticated users (static tokens), with the operator running as a process.

mod access_request;
mod admission;
mod attacks_admission;
mod attacks_operator;
mod attacks_policy;
mod changes;
mod data_sharing_agreement;
mod decisions;
mod deploy;
mod durations;
mod extensions;
mod gitops;
mod helm;
mod lifecycle;
mod manager;
mod narrowing;
mod notifications;
mod plugin;
mod receiver;
mod recipient_consent;
mod records;
mod schedule;
// Shared with the restart test and the benchmark, which use other parts of it.
#[allow(dead_code)]
mod support;

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn the_control_plane_is_the_built_kubernetes_release() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let version = admin.apiserver_version().await.expect("/version answers");
    eprintln!(
        "e2e: kube-apiserver reports {} ({})",
        version.git_version, version.platform
    );
    assert!(
        version.git_version.starts_with("v1.36."),
        "unexpected version {}",
        version.git_version
    );
    let alice = support::client(kubeconfig, "alice").await;
    let (code, message) = support::rejection(
        alice.apiserver_version().await.and(
            kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(alice.clone())
                .list(&Default::default())
                .await,
        ),
    );
    assert_eq!(
        code, 403,
        "alice has no rights until a test grants them: {message}"
    );
}
