//! The checked-in CRDs and API reference must be exactly what the Rust types generate.

#[test]
fn checked_in_crds_match_the_rust_types() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/gatehouse.yaml");
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    let generated = gatehouse::api::crds_yaml().expect("CRDs render as YAML");
    assert!(
        checked_in == generated,
        "crds/gatehouse.yaml is out of date with src/api: run `make crds` and commit the result"
    );
}

#[test]
fn checked_in_api_reference_matches_the_rust_types() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md");
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        checked_in == gatehouse::api::reference::markdown(),
        "docs/api.md is out of date with src/api: run `make crds` and commit the result"
    );
}
