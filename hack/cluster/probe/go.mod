// The in-cluster probe of the local cluster's smoke test (hack/cluster/probe-image.sh): the standard
// library only, so it builds in seconds without downloading anything.
module gatehouse.dev/hack/cluster/probe

go 1.26.0
