// Runs Gatehouse's Argo CD health checks (deploy/argocd/*.lua) with the Lua engine Argo CD embeds,
// for tests/argocd_health.rs. gopher-lua v1.1.2 is what Argo CD v3.5 and v3.6 require.
module gatehouse.dev/hack/argocd

go 1.26.0

require github.com/yuin/gopher-lua v1.1.2
