//! Server-side apply of the desired children and deletion of stale ones,
//! under one field manager, forcing ownership so hand edits are put back.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;

use futures::future::try_join_all;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
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

/// The change marker this process last saw for each child it wrote; a write
/// that returns another one changed something. (The watch caches lag behind
/// our own writes, so they alone cannot tell.)
#[derive(Default)]
pub struct Versions {
    seen: Mutex<HashMap<(String, ChildKey), String>>,
}

impl Versions {
    fn swap(&self, namespace: &str, key: &ChildKey, version: Option<String>) -> Option<String> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = (namespace.to_owned(), key.clone());
        match version {
            Some(v) => seen.insert(id, v),
            None => seen.remove(&id),
        }
    }
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
    };
    let applied = applied.map_err(|source| Error::Apply {
        kind: child.kind(),
        namespace: namespace.to_owned(),
        name: child.name().to_owned(),
        source,
    })?;
    let now = change_marker(applied.meta());
    let before = versions
        .swap(namespace, &child.key(), now.clone())
        .or(known_version);
    let change = match before {
        None => Change::Created,
        Some(before) if Some(&before) != now.as_ref() => Change::Updated,
        Some(_) => Change::Unchanged,
    };
    Ok((applied, change))
}

/// Applies every child, all at once (they do not depend on each other's
/// existence: pods wait for their ConfigMap).
pub async fn apply_all(
    client: &Client,
    versions: &Versions,
    namespace: &str,
    children: &[Child],
    known: impl Fn(&ChildKey) -> Option<String>,
) -> Result<Vec<(Child, Change)>> {
    try_join_all(
        children
            .iter()
            .map(|child| apply(client, versions, namespace, child, known(&child.key()))),
    )
    .await
}

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
    };
    versions.swap(namespace, key, None);
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
