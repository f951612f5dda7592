//! The store operations of a batch function (`#[redis_cached(batch = ids)]`): many keys at
//! once, one round trip per server (on a cluster, per primary, its slots together) and
//! [`MAX_REQUEST`] keys: the requests of one server one after another, the servers at once,
//! each request through the breaker of its primary. `mem://` runs the single-key operations, each atomic, key by key.
//!
//! A request that fails costs only its own keys: their ids are misses that are not stored
//! (the body runs for them), their leases are released, and a timeout or a redirect does not
//! count against the breaker that every function on that primary shares (a large batch on a
//! slow link is no outage, a moved slot no fault of the primary; single calls still detect
//! an outage). A timeout does make lookups suspect that writes are paused (see
//! `RedisStore::fetch`), until a write answers again. Only a lookup that fails in every
//! request fails the batch.

use super::lease::{Lease, Leases};
use super::{Backend, Fetch, Store, ours_if_own};
use crate::Error;
use crate::task::spawn_detached;
use futures_util::future::join_all;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

/// The most keys one request of a batch carries: a larger batch goes out as several requests
/// at once, each small enough to finish well within the timeout (10,000 keys to one primary
/// in one request did not, on a loaded machine, within the default 250 ms).
const MAX_REQUEST: usize = 1_000;

/// Keys that go in one request.
struct Group {
    /// Which server's: the groups of one server are next to each other.
    server: usize,
    /// A slot of the group's keys: its primary's breaker guards the request (`None`: the
    /// only server).
    slot: Option<u16>,
    /// On a cluster whose topology is known, the request goes to the primary of this slot
    /// (redis-rs picks it from its own map of slots), and its keys may span that primary's
    /// slots. Without it, a group holds the keys of one slot, and redis-rs routes the
    /// request by its first key.
    route: Option<u16>,
    /// Indexes into the operation's keys.
    members: Vec<usize>,
}

/// What a batch lookup found: one [`Fetch`] per key, in order (`None`: no reply for the
/// key), and the error of the requests that failed, if some did.
pub(crate) type FetchedMany = (Vec<Option<Fetch>>, Option<Error>);

impl Store {
    /// Looks every key up, taking `lease` on each one found absent (when leases are on). A
    /// value over the size cap is returned as is. Fails only when every request failed; a
    /// request that failed leaves its keys `None`, their leases released.
    pub(crate) async fn fetch_many(
        &self,
        keys: &[String],
        lease: &Lease,
    ) -> Result<FetchedMany, Error> {
        self.suspect()?;
        let leased = self.0.leases.of(lease);
        let groups = self.group(keys.iter().map(String::as_str));
        let lookups = each_group(&groups, |group| async move {
            let keys: Vec<&str> = group.keys(keys);
            let lookup = async {
                match &self.0.backend {
                    Backend::Redis(redis) => redis.fetch_group(&keys, leased, group.route).await,
                    Backend::Memory(memory) => {
                        Ok(keys.iter().map(|key| memory.fetch(key, leased)).collect())
                    }
                }
            };
            self.guarded_batch(group.slot, lookup).await
        });
        let mut found: Vec<Option<Fetch>> = keys.iter().map(|_| None).collect();
        let (mut failure, mut unanswered) = (None, Vec::new());
        for (group, looked_up) in groups.iter().zip(lookups.await) {
            match looked_up {
                Ok(fetched) => {
                    for (&index, fetched) in group.members.iter().zip(fetched) {
                        found[index] = Some(ours_if_own(fetched, lease));
                    }
                }
                // A request refused by its open breaker never reached Redis; any other
                // error may have set leases after all: the release below undoes them.
                Err(error) => {
                    unanswered.extend(group.members.iter().map(|&index| keys[index].clone()));
                    match &failure {
                        Some(Error::Unavailable) | None => failure = Some(error),
                        Some(_) => {}
                    }
                }
            }
        }
        if !unanswered.is_empty() {
            self.release_many_detached(&unanswered, lease);
        }
        match failure {
            Some(error) if unanswered.len() == keys.len() => Err(error),
            failure => Ok((found, failure)),
        }
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
        let taken = self.set_many(&entries).await;
        if taken.is_err() {
            // The requests that succeeded hold leases no caller will fill.
            self.release_many_detached(keys, lease);
        }
        taken
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
        let fills = each_group(&groups, |group| async move {
            let members: Vec<(&str, &[u8], Duration)> =
                group.members.iter().map(|&index| entries[index]).collect();
            let fill = async {
                match &self.0.backend {
                    Backend::Redis(redis) => {
                        let route = group.route;
                        redis.fill_group(&members, lease, route).await
                    }
                    Backend::Memory(memory) => Ok(members
                        .iter()
                        .map(|(key, value, ttl)| memory.fill(key, lease, value, *ttl))
                        .collect()),
                }
            };
            let filled = self.guarded_batch(group.slot, fill).await;
            if filled.is_err() {
                // A refused fill leaves our leases: the next callers would wait for them.
                let keys: Vec<String> = (members.iter())
                    .map(|(key, _, _)| (*key).to_owned())
                    .collect();
                self.release_many_detached(&keys, lease);
            }
            filled
        });
        let (filled, released) = tokio::join!(fills, self.release_many(&oversized, lease));
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
        let extensions = each_group(&groups, |group| async move {
            let keys: Vec<&str> = (group.members.iter())
                .map(|&index| held[index].0.as_str())
                .collect();
            let leases: Vec<&Lease> = group.members.iter().map(|&index| &held[index].1).collect();
            let _ = match &self.0.backend {
                Backend::Redis(redis) => {
                    let route = group.route;
                    let extend = redis.extend_leases(&keys, &leases, ttl, route);
                    self.guarded_batch(group.slot, extend).await
                }
                Backend::Memory(memory) => {
                    for (key, lease) in keys.iter().zip(leases) {
                        memory.extend_lease(key, lease, ttl);
                    }
                    Ok(())
                }
            };
        });
        extensions.await;
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
        let releases = each_group(&groups, |group| async move {
            let keys: Vec<&str> = group.keys(keys);
            let release = async {
                match &self.0.backend {
                    Backend::Redis(redis) => redis.release_group(&keys, lease, group.route).await,
                    Backend::Memory(memory) => {
                        keys.iter().for_each(|key| memory.release(key, lease));
                        Ok(())
                    }
                }
            };
            // A release in the background is no news of the server: it records nothing.
            if guarded {
                self.guarded_batch(group.slot, release).await
            } else {
                release.await
            }
        });
        releases.await.into_iter().collect()
    }

    /// Sets every key to its value for its TTL, whatever it holds.
    async fn set_many(&self, entries: &[(&str, &[u8], Duration)]) -> Result<(), Error> {
        let groups = self.group(entries.iter().map(|(key, _, _)| *key));
        let sets = each_group(&groups, |group| async move {
            let members: Vec<(&str, &[u8], Duration)> =
                group.members.iter().map(|&index| entries[index]).collect();
            let set = async {
                match &self.0.backend {
                    Backend::Redis(redis) => redis.set_group(&members, group.route).await,
                    Backend::Memory(memory) => {
                        (members.iter()).for_each(|(key, value, ttl)| memory.set(key, value, *ttl));
                        Ok(())
                    }
                }
            };
            self.guarded_batch(group.slot, set).await
        });
        sets.await.into_iter().collect()
    }

    /// The indexes of `keys` in requests: by the server that holds them (on a cluster, by
    /// primary once the topology is known, else by hash slot), at most [`MAX_REQUEST`] each.
    fn group<'a>(&self, keys: impl Iterator<Item = &'a str>) -> Vec<Group> {
        // Ordered, not hashed: one server's batch makes one entry, and a cluster's at most
        // one per slot.
        let mut servers: BTreeMap<(Option<u16>, Option<u16>), Vec<usize>> = BTreeMap::new();
        let mut slots = Vec::new();
        for (index, key) in keys.enumerate() {
            let slot = self.slot(key);
            slots.push(slot);
            let server = match slot.and_then(|slot| self.0.breakers.primary(slot)) {
                Some(primary) => (Some(primary), None),
                None => (None, slot),
            };
            servers.entry(server).or_default().push(index);
        }
        let mut groups = Vec::new();
        for (server, ((primary, _), members)) in servers.into_iter().enumerate() {
            for chunk in members.chunks(MAX_REQUEST) {
                // Any slot of the primary names it, and its breaker: the first key's.
                let slot = chunk.first().and_then(|&first| slots[first]);
                groups.push(Group {
                    server,
                    slot,
                    route: primary.and(slot),
                    members: chunk.to_vec(),
                });
            }
        }
        groups
    }

    /// Runs one request of a batch unless its primary's breaker is open, and tells the
    /// breaker how it went, except for a timeout or a redirect while the breaker is closed
    /// (see the module's comment; a slot that moved fails the request that still names it,
    /// not the primary). The request that probes an open breaker is recorded whatever it
    /// meets.
    async fn guarded_batch<T>(
        &self,
        slot: Option<u16>,
        op: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let breaker = self.breaker(slot);
        if !breaker.allow() {
            return Err(Error::Unavailable);
        }
        let probe = breaker.is_open();
        let result = op.await;
        let own = matches!(&result, Err(error) if error.is_timeout() || error.is_redirect());
        if probe || !own {
            breaker.record(&result);
        }
        result
    }
}

/// Runs `op` on every group, and returns its outputs in the groups' order: the groups of one
/// server one after another, so that each request has the server (and the connection) to
/// itself and the timeout bounds its own time, not the wait behind the others; the servers
/// at once.
async fn each_group<'g, T, F>(groups: &'g [Group], op: impl Fn(&'g Group) -> F) -> Vec<T>
where
    F: Future<Output = T>,
{
    let op = &op;
    let servers = groups.chunk_by(|a, b| a.server == b.server);
    let runs = servers.map(|server| async move {
        let mut outputs = Vec::with_capacity(server.len());
        for group in server {
            outputs.push(op(group).await);
        }
        outputs
    });
    join_all(runs).await.into_iter().flatten().collect()
}

impl Group {
    /// The group's keys, out of the operation's.
    fn keys<'a>(&self, keys: &'a [String]) -> Vec<&'a str> {
        self.members
            .iter()
            .map(|&index| keys[index].as_str())
            .collect()
    }
}
