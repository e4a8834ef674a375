//! Server-side apply of the desired children and deletion of stale ones,
//! under one field manager, forcing ownership so hand edits are put back.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::build::names::MANAGER;
use crate::build::{Child, ChildKey, Kind};
use crate::{Error, Result};

/// What applying one child did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It did not exist.
    Created,
    /// It existed and differed (a spec change, or drift put back).
    Updated,
    /// Already as desired.
    Unchanged,
}

/// What tells a spec change: the generation where the kind has one (status
/// writes by other controllers do not bump it), else the resourceVersion.
pub fn change_marker(meta: &kube::core::ObjectMeta) -> Option<String> {
    meta.generation
        .map(|g| format!("g{g}"))
        .or_else(|| meta.resource_version.as_ref().map(|r| format!("r{r}")))
}

/// What this process last wrote for each child: the change marker the write
/// returned and a hash of what it asked for. A child whose cached marker still
/// equals the recorded one and whose desired state hashes the same needs no
/// write: nobody touched it and we want nothing new. (A write that returns
/// another marker than the recorded one changed something.)
#[derive(Default)]
pub struct Versions {
    seen: Mutex<HashMap<(String, ChildKey), (String, String)>>,
}

impl Versions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, ChildKey), (String, String)>> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(
        &self,
        namespace: &str,
        key: &ChildKey,
        entry: Option<(String, String)>,
    ) -> Option<String> {
        let mut seen = self.lock();
        let id = (namespace.to_owned(), key.clone());
        match entry {
            Some(e) => seen.insert(id, e),
            None => seen.remove(&id),
        }
        .map(|(marker, _)| marker)
    }

    /// True when the cached child is exactly what we last wrote and we still want that.
    pub fn up_to_date(
        &self,
        namespace: &str,
        key: &ChildKey,
        desired: &str,
        cached: Option<&str>,
    ) -> bool {
        let seen = self.lock();
        seen.get(&(namespace.to_owned(), key.clone()))
            .is_some_and(|(marker, hash)| hash == desired && Some(marker.as_str()) == cached)
    }
}

/// Hash of a child's desired state.
pub fn desired_hash(child: &Child) -> String {
    let json = match child {
        Child::ConfigMap(o) => serde_json::to_string(o),
        Child::Service(o) => serde_json::to_string(o),
        Child::Deployment(o) => serde_json::to_string(o),
        Child::StatefulSet(o) => serde_json::to_string(o),
        Child::PodDisruptionBudget(o) => serde_json::to_string(o),
        Child::HorizontalPodAutoscaler(o) => serde_json::to_string(o),
        Child::NetworkPolicy(o) => serde_json::to_string(o),
    };
    crate::build::media_config::hash(&json.unwrap_or_default())
}

/// Applies one child; returns the object as the API server now has it and what changed.
pub async fn apply(
    client: &Client,
    versions: &Versions,
    namespace: &str,
    child: &Child,
    known_version: Option<String>,
) -> Result<(Child, Change)> {
    let applied: kube::Result<Child> = match child {
        Child::ConfigMap(o) => ssa(client, namespace, o).await.map(Child::ConfigMap),
        Child::Service(o) => ssa(client, namespace, o).await.map(Child::Service),
        Child::Deployment(o) => ssa(client, namespace, o).await.map(Child::Deployment),
        Child::StatefulSet(o) => ssa(client, namespace, o).await.map(Child::StatefulSet),
        Child::PodDisruptionBudget(o) => ssa(client, namespace, o)
            .await
            .map(Child::PodDisruptionBudget),
        Child::HorizontalPodAutoscaler(o) => ssa(client, namespace, o)
            .await
            .map(Child::HorizontalPodAutoscaler),
        Child::NetworkPolicy(o) => ssa(client, namespace, o).await.map(Child::NetworkPolicy),
    };
    let applied = applied.map_err(|source| Error::Apply {
        kind: child.kind(),
        namespace: namespace.to_owned(),
        name: child.name().to_owned(),
        source,
    })?;
    let now = change_marker(applied.meta());
    let before = versions
        .record(
            namespace,
            &child.key(),
            now.clone().map(|marker| (marker, desired_hash(child))),
        )
        .or(known_version);
    let change = match before {
        None => Change::Created,
        Some(before) if Some(&before) != now.as_ref() => Change::Updated,
        Some(_) => Change::Unchanged,
    };
    Ok((applied, change))
}

/// Applies every child that is not known to be as desired, all at once (they
/// do not depend on each other's existence: pods wait for their ConfigMap).
/// `cached` gives the change marker of a child in the watch caches.
pub async fn apply_all(
    client: &Client,
    versions: &Versions,
    namespace: &str,
    children: &[Child],
    cached: impl Fn(&ChildKey) -> Option<String>,
) -> Result<Vec<(Child, Change)>> {
    let writes: Vec<_> = children
        .iter()
        .filter_map(|child| {
            let key = child.key();
            let marker = cached(&key);
            if versions.up_to_date(namespace, &key, &desired_hash(child), marker.as_deref()) {
                return None;
            }
            Some(apply(client, versions, namespace, child, marker))
        })
        .collect();
    // A few at a time: each request in flight is an HTTP/1.1 connection (and
    // its TLS buffers), and the API server is the bottleneck anyway.
    futures::stream::iter(writes)
        .buffered(APPLY_PARALLELISM)
        .try_collect()
        .await
}

/// Writes in flight per reconcile.
pub const APPLY_PARALLELISM: usize = 4;

/// Deletes a stale child (already gone is fine).
pub async fn delete(
    client: &Client,
    versions: &Versions,
    namespace: &str,
    key: &ChildKey,
) -> Result<()> {
    let params = DeleteParams::background();
    let name = key.name.as_str();
    let result = match key.kind {
        Kind::ConfigMap => remove::<ConfigMap>(client, namespace, name, &params).await,
        Kind::Service => remove::<Service>(client, namespace, name, &params).await,
        Kind::Deployment => remove::<Deployment>(client, namespace, name, &params).await,
        Kind::StatefulSet => remove::<StatefulSet>(client, namespace, name, &params).await,
        Kind::PodDisruptionBudget => {
            remove::<PodDisruptionBudget>(client, namespace, name, &params).await
        }
        Kind::HorizontalPodAutoscaler => {
            remove::<HorizontalPodAutoscaler>(client, namespace, name, &params).await
        }
        Kind::NetworkPolicy => remove::<NetworkPolicy>(client, namespace, name, &params).await,
    };
    versions.record(namespace, key, None);
    match result {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::Prune {
            kind: key.kind,
            namespace: namespace.to_owned(),
            name: key.name.clone(),
            source,
        }),
    }
}

async fn ssa<K>(client: &Client, namespace: &str, object: &K) -> kube::Result<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = object.meta().name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
}

async fn remove<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    params: &DeleteParams,
) -> kube::Result<()>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.delete(name, params).await.map(|_| ())
}
