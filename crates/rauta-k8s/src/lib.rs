//! RAUTA's Kubernetes mode (work in progress: see issue 5).
