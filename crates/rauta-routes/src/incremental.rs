//! The incremental compiler: for a source that publishes one snapshot after another (the Kubernetes
//! watch cache), compile each snapshot reusing the work done for the objects that did not change.
//!
//! What is reused: the lowered form of every Ingress (`lower`: host and path parsing, regex
//! compilation, backend references, field names and the Ingress's own problems), recognised by the
//! `Arc` the snapshot holds it in. What is redone on every compile: the cross-object part (age order,
//! conflicts between Ingresses, backend resolution, table layout), which is where one Ingress can change
//! another's outcome. Both halves are the same code [`crate::compile`] runs, so the result is identical
//! to a full compile of the same objects (`tests/incremental.rs` checks it over random change sequences).
//!
//! Still pure and IO-free: the state is a cache keyed by object identity, nothing else.

use std::sync::Arc;

use crate::class::ClassFilter;
use crate::compile::{compile_lowered, Objects};
use crate::lookup::FastMap;
use crate::lower::{lower, Lowered};
use crate::model::{Ingress, SharedInputs};
use crate::{CompileOptions, Compiled};

/// Compiles successive [`SharedInputs`] snapshots, re-lowering only Ingresses whose `Arc` is new.
#[derive(Debug)]
pub struct IncrementalCompiler {
    options: CompileOptions,
    /// The lowered Ingresses of the last compile, by the address of their `Arc`. The entry holds that
    /// `Arc`, so the address cannot be reused by another object while it is cached.
    lowered: FastMap<usize, (Arc<Ingress>, Lowered)>,
}

/// Statistics of the last incremental compile, for logs and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reuse {
    /// Ingresses of our class whose lowered form was reused.
    pub reused: usize,
    /// Ingresses of our class lowered anew (new or changed objects).
    pub lowered: usize,
}

impl IncrementalCompiler {
    /// A compiler with an empty cache (the first compile lowers everything).
    pub fn new(options: CompileOptions) -> Self {
        Self {
            options,
            lowered: FastMap::default(),
        }
    }

    /// The settings every compile uses.
    pub fn options(&self) -> &CompileOptions {
        &self.options
    }

    /// Compile `inputs`; the result equals `compile(&inputs.to_inputs(), options)`.
    pub fn compile(&mut self, inputs: &SharedInputs) -> (Compiled, Reuse) {
        let objects = Objects {
            ingresses: inputs.ingresses.iter().map(|i| &**i).collect(),
            ingress_classes: inputs.ingress_classes.iter().map(|c| &**c).collect(),
            services: inputs.services.iter().map(|s| &**s).collect(),
            endpoint_slices: inputs.endpoint_slices.iter().map(|s| &**s).collect(),
        };
        let filter = ClassFilter::from_classes(
            &self.options.ingress_class,
            objects.ingress_classes.iter().copied(),
        );
        let mut reuse = Reuse::default();
        // The cache is updated in place (one changed Ingress: one removal and one insertion), not
        // rebuilt: a fresh map of 5,000 entries per compile is a large allocation freed at every update,
        // which glibc answers by raising its mmap and trim thresholds and keeping more memory resident.
        let mut keys = Vec::with_capacity(inputs.ingresses.len());
        let mut seen: FastMap<usize, ()> = FastMap::default();
        seen.reserve(inputs.ingresses.len());
        for ingress in inputs.ingresses.iter().filter(|i| filter.owns(i)) {
            let key = Arc::as_ptr(ingress) as usize;
            // The same Arc twice in one snapshot is one object: lowered once.
            if seen.insert(key, ()).is_some() {
                keys.push(key);
                continue;
            }
            match self.lowered.entry(key) {
                std::collections::hash_map::Entry::Occupied(_) => reuse.reused += 1,
                std::collections::hash_map::Entry::Vacant(slot) => {
                    reuse.lowered += 1;
                    slot.insert((Arc::clone(ingress), lower(ingress)));
                }
            }
            keys.push(key);
        }
        // What is not in this snapshot was deleted, changed (a new Arc) or left our class.
        self.lowered.retain(|key, _| seen.contains_key(key));
        let ours: Vec<(&Ingress, &Lowered)> = keys
            .iter()
            .filter_map(|k| self.lowered.get(k))
            .map(|(ingress, lowered)| (&**ingress, lowered))
            .collect();
        (compile_lowered(&objects, ours, &self.options), reuse)
    }
}
