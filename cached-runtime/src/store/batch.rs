//! The store operations of a batch function (`#[redis_cached(batch = ids)]`): many keys at
//! once, one round trip per server, and on a cluster one per hash slot, all sent at once,
//! each group through the breaker of its slot's primary. `mem://` runs the single-key
//! operations, each atomic, key by key.
//!
//! A lookup that fails in one group fails the whole batch (the caller then runs the body
//! for every id and stores nothing), and the leases the other groups took are released.

use super::lease::{Lease, Leases};
use super::{Backend, Fetch, Store};
use crate::Error;
use crate::task::spawn_detached;
use futures_util::future::join_all;
use std::collections::HashMap;
use std::time::Duration;

impl Store {
    /// Looks every key up, taking `lease` on each one found absent (when leases are on): one
    /// [`Fetch`] per key, in order (`None`: no reply for the key, never seen). A value over
    /// the size cap is returned as is.
    pub(crate) async fn fetch_many(
        &self,
        keys: &[String],
        lease: &Lease,
    ) -> Result<Vec<Option<Fetch>>, Error> {
        let leased = self.0.leases.of(lease);
        let groups = self.group(keys.iter().map(String::as_str));
        let lookups = groups.iter().map(|(slot, members)| async move {
            let keys: Vec<&str> = members.iter().map(|&index| keys[index].as_str()).collect();
            match &self.0.backend {
                Backend::Redis(redis) => {
                    self.guarded(*slot, redis.fetch_group(&keys, leased)).await
                }
                Backend::Memory(memory) => {
                    let fetch =
                        async { Ok(keys.iter().map(|key| memory.fetch(key, leased)).collect()) };
                    self.guarded(*slot, fetch).await
                }
            }
        });
        let mut found: Vec<Option<Fetch>> = keys.iter().map(|_| None).collect();
        let mut failure = None;
        for ((_, members), looked_up) in groups.iter().zip(join_all(lookups).await) {
            match looked_up {
                Ok(fetched) => {
                    for (&index, fetched) in members.iter().zip(fetched) {
                        found[index] = Some(match fetched {
                            // Our own marker: a retried command (see `Store::lookup`).
                            Fetch::Theirs(seen) if seen == *lease => Fetch::Ours(None),
                            fetched => fetched,
                        });
                    }
                }
                // A group refused by its open breaker never reached Redis; any other error
                // may have set leases after all: the release below undoes them.
                Err(error) => match &failure {
                    Some(Error::Unavailable) | None => failure = Some(error),
                    Some(_) => {}
                },
            }
        }
        if let Some(error) = failure {
            self.release_many_detached(keys, lease);
            return Err(error);
        }
        Ok(found)
    }

    /// Puts `lease` on every key whatever it holds (to overwrite values that do not decode).
    pub(crate) async fn take_leases(&self, keys: &[String], lease: &Lease) -> Result<(), Error> {
        let Leases::On(ttl) = self.0.leases else {
            return Ok(());
        };
        let entries: Vec<(&str, &[u8], Duration)> = keys
            .iter()
            .map(|key| (key.as_str(), lease.as_bytes(), ttl))
            .collect();
        self.set_many(&entries).await
    }

    /// Stores each value whose key `lease` still holds (every value when leases are off),
    /// each for its own TTL; says how many it stored. Values over the size cap are not
    /// stored, their leases released. Each group stores even when another fails; the first
    /// error is returned.
    pub(crate) async fn fill_many(
        &self,
        entries: &[(&str, &[u8], Duration)],
        lease: &Lease,
    ) -> Result<usize, Error> {
        let (oversized, entries): (Vec<_>, Vec<_>) = entries
            .iter()
            .partition(|(_, value, _)| self.oversized(value));
        let oversized: Vec<String> = (oversized.iter())
            .map(|(key, _, _)| (*key).to_owned())
            .collect();
        if !self.0.leases.on() {
            let (stored, released) = tokio::join!(
                self.set_many(&entries),
                self.release_many(&oversized, lease)
            );
            return stored.and(released).map(|()| entries.len());
        }
        let groups = self.group(entries.iter().map(|(key, _, _)| *key));
        let entries = &entries;
        let fills = groups.iter().map(|(slot, members)| async move {
            let group: Vec<(&str, &[u8], Duration)> =
                members.iter().map(|&index| entries[index]).collect();
            let filled = match &self.0.backend {
                Backend::Redis(redis) => self.guarded(*slot, redis.fill_group(&group, lease)).await,
                Backend::Memory(memory) => {
                    let fill = async {
                        Ok(group
                            .iter()
                            .map(|(key, value, ttl)| memory.fill(key, lease, value, *ttl))
                            .collect())
                    };
                    self.guarded(*slot, fill).await
                }
            };
            if filled.is_err() {
                // A refused fill leaves our leases: the next callers would wait for them.
                let keys: Vec<String> = (group.iter())
                    .map(|(key, _, _)| (*key).to_owned())
                    .collect();
                self.release_many_detached(&keys, lease);
            }
            filled
        });
        let (filled, released) =
            tokio::join!(join_all(fills), self.release_many(&oversized, lease));
        let mut stored = 0;
        let mut failure = released.err();
        for filled in filled {
            match filled {
                Ok(filled) => stored += filled.into_iter().filter(|&filled| filled).count(),
                Err(error) => failure = failure.or(Some(error)),
            }
        }
        failure.map_or(Ok(stored), Err)
    }

    /// Makes every key live a lease's length more while its lease still holds it: one round
    /// trip per group. Best effort: a lease that lapses only lets a waiter take over.
    pub(crate) async fn extend_leases(&self, held: &[(String, Lease)]) {
        let Leases::On(ttl) = self.0.leases else {
            return;
        };
        let groups = self.group(held.iter().map(|(key, _)| key.as_str()));
        let extensions = groups.iter().map(|(slot, members)| async move {
            let keys: Vec<&str> = members
                .iter()
                .map(|&index| held[index].0.as_str())
                .collect();
            let leases: Vec<&Lease> = members.iter().map(|&index| &held[index].1).collect();
            let _ = match &self.0.backend {
                Backend::Redis(redis) => {
                    self.guarded(*slot, redis.extend_leases(&keys, &leases, ttl))
                        .await
                }
                Backend::Memory(memory) => {
                    for (key, lease) in keys.iter().zip(leases) {
                        memory.extend_lease(key, lease, ttl);
                    }
                    Ok(())
                }
            };
        });
        join_all(extensions).await;
    }

    /// Gives up `lease` on every key (those it still holds), one round trip per group.
    pub(crate) async fn release_many(&self, keys: &[String], lease: &Lease) -> Result<(), Error> {
        self.release_groups(keys, lease, true).await
    }

    /// As [`Store::release_many`], from a task of its own, past the breakers.
    fn release_many_detached(&self, keys: &[String], lease: &Lease) {
        if !self.0.leases.on() {
            return;
        }
        let (store, keys, lease) = (self.clone(), keys.to_vec(), lease.clone());
        spawn_detached(async move {
            let _ = store.release_groups(&keys, &lease, false).await;
        });
    }

    async fn release_groups(
        &self,
        keys: &[String],
        lease: &Lease,
        guarded: bool,
    ) -> Result<(), Error> {
        if !self.0.leases.on() || keys.is_empty() {
            return Ok(());
        }
        let groups = self.group(keys.iter().map(String::as_str));
        let releases = groups.iter().map(|(slot, members)| async move {
            let keys: Vec<&str> = members.iter().map(|&index| keys[index].as_str()).collect();
            let release = async {
                match &self.0.backend {
                    Backend::Redis(redis) => redis.release_group(&keys, lease).await,
                    Backend::Memory(memory) => {
                        keys.iter().for_each(|key| memory.release(key, lease));
                        Ok(())
                    }
                }
            };
            if guarded {
                self.guarded(*slot, release).await
            } else {
                self.unguarded(*slot, release).await
            }
        });
        join_all(releases).await.into_iter().collect()
    }

    /// Sets every key to its value for its TTL, whatever it holds.
    async fn set_many(&self, entries: &[(&str, &[u8], Duration)]) -> Result<(), Error> {
        let groups = self.group(entries.iter().map(|(key, _, _)| *key));
        let sets = groups.iter().map(|(slot, members)| async move {
            let group: Vec<(&str, &[u8], Duration)> =
                members.iter().map(|&index| entries[index]).collect();
            match &self.0.backend {
                Backend::Redis(redis) => self.guarded(*slot, redis.set_group(&group)).await,
                Backend::Memory(memory) => {
                    group
                        .iter()
                        .for_each(|(key, value, ttl)| memory.set(key, value, *ttl));
                    Ok(())
                }
            }
        });
        join_all(sets).await.into_iter().collect()
    }

    /// The indexes of `keys` grouped by the server that holds them: one group on a single
    /// server or `mem://`, one per hash slot on a cluster.
    fn group<'a>(&self, keys: impl Iterator<Item = &'a str>) -> Vec<(Option<u16>, Vec<usize>)> {
        let mut groups: HashMap<Option<u16>, Vec<usize>> = HashMap::new();
        for (index, key) in keys.enumerate() {
            groups.entry(self.slot(key)).or_default().push(index);
        }
        groups.into_iter().collect()
    }
}
