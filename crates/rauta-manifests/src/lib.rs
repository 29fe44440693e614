//! Kubernetes YAML manifests to route-compiler inputs.
