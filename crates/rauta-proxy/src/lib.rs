//! Tier 3: the userspace proxy.
