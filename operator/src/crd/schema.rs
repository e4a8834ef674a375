//! Hand-written schema fragments where the derived one does not fit.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object whose fields the API server keeps as given: the pod-override escape hatch.
/// It is checked by the operator when it merges it (a bad override is a Degraded
/// condition on that MediaCluster, not a watch that fails for every object).
pub fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
