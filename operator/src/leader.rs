//! Leader election on a `coordination.k8s.io` Lease, so two operator replicas
//! never both write. The rules are client-go's: the holder renews well inside
//! the lease duration; a candidate takes over only after it has watched the
//! same lease record stay unrenewed for a whole duration on its own clock (no
//! trust in the other machine's clock); every write carries the
//! resourceVersion it read, so of two racing candidates exactly one wins.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};

use crate::{Error, Result};

/// Timing of the election.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a lease holds without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews and a candidate retries.
    pub retry_period: Duration,
}

impl Timing {
    /// Timing for a lease duration: retry at a fifth of it.
    pub fn for_duration(lease_duration: Duration) -> Self {
        Timing {
            lease_duration,
            retry_period: (lease_duration / 5).max(Duration::from_millis(200)),
        }
    }
}

/// What to do after reading the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No lease yet: create it, holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Free or expired: take it over.
    TakeOver,
    /// Someone else holds it.
    Follow {
        /// The holder.
        holder: String,
    },
}

/// A candidate's memory of the lease record, to judge expiry on its own clock.
#[derive(Debug, Default)]
pub struct Observer {
    seen: Option<(String, Instant)>,
}

impl Observer {
    /// Decides from the lease as read at `now`.
    pub fn decide(
        &mut self,
        me: &str,
        lease: Option<&Lease>,
        timing: Timing,
        now: Instant,
    ) -> Decision {
        let Some(lease) = lease else {
            self.seen = None;
            return Decision::Create;
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.unwrap_or_default();
        if holder == me {
            return Decision::Renew;
        }
        if holder.is_empty() {
            return Decision::TakeOver;
        }
        // The record changes on every renewal; a record unchanged for a whole
        // duration (as the holder announced it) means the holder is gone.
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let first_seen = match &self.seen {
            Some((seen, at)) if *seen == version => *at,
            _ => {
                self.seen = Some((version, now));
                now
            }
        };
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(timing.lease_duration, Duration::from_secs);
        if now.duration_since(first_seen) >= duration {
            Decision::TakeOver
        } else {
            Decision::Follow { holder }
        }
    }
}

/// The election for one identity on one Lease.
pub struct Elector {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    timing: Timing,
    observer: Observer,
}

impl Elector {
    /// An elector for `namespace/name` as `identity`.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: Timing,
    ) -> Self {
        Elector {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
            observer: Observer::default(),
        }
    }

    /// The timing in use.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    fn err(&self, source: kube::Error) -> Error {
        Error::Lease {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        }
    }

    /// One round: read the lease, then create, renew or take it over if we may.
    /// `Ok(true)` when we hold it afterwards. A lost race is `Ok(false)`.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool> {
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.err(e))?;
        let decision = self.observer.decide(
            &self.identity,
            current.as_ref(),
            self.timing,
            Instant::now(),
        );
        let now = MicroTime(Timestamp::now());
        let seconds = i32::try_from(self.timing.lease_duration.as_secs())
            .unwrap_or(i32::MAX)
            .max(1);
        let result = match (decision, current) {
            (Decision::Follow { .. }, _) => return Ok(false),
            (Decision::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        namespace: Some(self.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(seconds),
                        acquire_time: Some(now.clone()),
                        renew_time: Some(now),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (decision, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if decision == Decision::TakeOver {
                    spec.holder_identity = Some(self.identity.clone());
                    spec.acquire_time = Some(now.clone());
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.lease_duration_seconds = Some(seconds);
                spec.renew_time = Some(now);
                // `replace` sends the resourceVersion we read: a concurrent writer makes it 409.
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
            (_, None) => return Ok(false),
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Gives the lease up (on shutdown) so a standby takes over at once
    /// instead of waiting for it to expire.
    pub async fn release(&mut self) -> Result<()> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.err(e))?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }
}

/// A process-unique identity: the pod name when running in a pod, else host and pid.
pub fn default_identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map_or_else(|_| "operator".to_owned(), |h| h.trim().to_owned());
            format!("{host}-{}", std::process::id())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, version: &str, seconds: i32) -> Lease {
        Lease {
            metadata: ObjectMeta {
                resource_version: Some(version.to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: Some(seconds),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn decisions() {
        let timing = Timing::for_duration(Duration::from_secs(10));
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut o = Observer::default();
        assert_eq!(o.decide("a", None, timing, t0), Decision::Create);
        assert_eq!(
            o.decide("a", Some(&lease(Some("a"), "1", 10)), timing, t0),
            Decision::Renew
        );
        assert_eq!(
            o.decide("a", Some(&lease(None, "1", 10)), timing, t0),
            Decision::TakeOver
        );
        assert_eq!(
            o.decide("a", Some(&lease(Some(""), "1", 10)), timing, t0),
            Decision::TakeOver
        );

        // b holds it and keeps renewing: a follows however long it watches.
        let follow = Decision::Follow { holder: "b".into() };
        let mut o = Observer::default();
        for (i, version) in ["1", "2", "3", "4"].iter().enumerate() {
            let now = t0 + s(9) * u32::try_from(i).unwrap();
            assert_eq!(
                o.decide("a", Some(&lease(Some("b"), version, 10)), timing, now),
                follow
            );
        }
        // b stops renewing: a takes over a full duration after it first saw the last record.
        let last = lease(Some("b"), "5", 10);
        let seen = t0 + s(100);
        assert_eq!(o.decide("a", Some(&last), timing, seen), follow);
        assert_eq!(o.decide("a", Some(&last), timing, seen + s(9)), follow);
        assert_eq!(
            o.decide("a", Some(&last), timing, seen + s(10)),
            Decision::TakeOver
        );
        // The holder's announced duration wins over our default.
        let mut o = Observer::default();
        let short = lease(Some("b"), "9", 2);
        assert_eq!(o.decide("a", Some(&short), timing, t0), follow);
        assert_eq!(
            o.decide("a", Some(&short), timing, t0 + s(2)),
            Decision::TakeOver
        );
    }

    #[test]
    fn retry_is_a_fraction_of_the_duration() {
        assert_eq!(
            Timing::for_duration(Duration::from_secs(15)).retry_period,
            Duration::from_secs(3)
        );
        assert_eq!(
            Timing::for_duration(Duration::from_millis(500)).retry_period,
            Duration::from_millis(200)
        );
    }
}
