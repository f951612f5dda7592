//! The repository: every read and write of employees, and where caching is declared.
//! **This is the file to copy from.**
//!
//! Reads are cache-aside with `#[redis_cached]`: look the key up, or run the query and
//! store its result for the TTL. Each write names, with `#[invalidates]`, every key it makes
//! stale, from its arguments or from its result (`<return.id>`); the keys are deleted after
//! the write ran, or, inside a database transaction, after it committed.
//!
//! | key                           | TTL       | deleted by                                   |
//! |-------------------------------|-----------|----------------------------------------------|
//! | `employee:<id>`               | 1 day     | PUT, DELETE                                  |
//! | `employee:<id>:status`        | 30 s      | PUT status, DELETE, POST (for the new id)    |
//! | `department:<name>:employees` | 5 minutes | POST, PUT (old and new department), DELETE   |
//!
//! Why TTLs, when every write invalidates? Because an entry can still go stale behind the
//! service's back: a batch job or another service may write the table without
//! invalidating. (A read racing a write is not such a case: the library's fill leases keep
//! it from storing the old row after the write's invalidation.) The TTL bounds how long such
//! an entry lives, so it follows how often the data changes: names rarely (a day), in/out
//! status many times a day (30 seconds), department lists in between (5 minutes).
//!
//! Every read takes `refresh: bool`: when the client asks for fresh data
//! (`?invalidate_cache=true` or `Cache-Control: no-cache`) the query runs and its result
//! overwrites the entry, without looking it up first.

use super::db::{Db, DbError, Tx};
use super::model::{Employee, EmployeeInput, Presence, Status};
use redis_cached::{Cache, invalidates, redis_cached};
use std::collections::HashMap;

/// Employees, read through the cache.
///
/// The repository owns both sides of cache-aside, the database and the cache, and names
/// its cache in each attribute with `cache = &self.cache`. A process-wide cache works as
/// well (`redis_cached::install(cache)` at start-up and no `cache = ...`); passing it
/// explicitly keeps every dependency in sight and lets two repositories use two caches.
#[derive(Clone, Debug)]
pub struct Repo {
    db: Db,
    cache: Cache,
}

impl Repo {
    /// A repository over `db`, caching in `cache`.
    pub fn new(db: Db, cache: Cache) -> Repo {
        Repo { db, cache }
    }

    /// The database, for health checks.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The cache, for health checks.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    // ---- Reads ------------------------------------------------------------------------

    /// One employee. Only `Ok(Some(..))` is stored: a 404 is not remembered, so probing
    /// random ids cannot fill Redis with day-long entries.
    #[redis_cached(key = "employee:<id>", ttl = "1d", refresh = refresh, cache = &self.cache)]
    pub async fn employee(&self, id: i64, refresh: bool) -> Result<Option<Employee>, DbError> {
        self.db.employee(id).await
    }

    /// Many employees at once, for `GET /employees?ids=..`: one cache round trip for all
    /// ids, one query for those not cached. It shares `employee:<id>` with
    /// [`Repo::employee`] (both store an `Employee`), so the invalidations of that key apply
    /// to both. Ids that do not exist are left out of the map and not remembered.
    #[redis_cached(key = "employee:<ids>", ttl = "1d", batch = ids, cache = &self.cache)]
    pub async fn employees(&self, ids: &[i64]) -> Result<HashMap<i64, Employee>, DbError> {
        let found = self.db.employees(ids).await?;
        Ok(found
            .into_iter()
            .map(|employee| (employee.id, employee))
            .collect())
    }

    /// An employee's in/out status. `cache_none`: "no such employee" is stored too, for the
    /// short TTL; status is what dashboards poll, and a dashboard showing a deleted
    /// employee should not send every poll to the database. That is why creating an
    /// employee deletes its status key (see [`Repo::create_employee`]).
    #[redis_cached(
        key = "employee:<id>:status",
        ttl = 30,
        refresh = refresh,
        cache = &self.cache,
        cache_none = true
    )]
    pub async fn employee_status(&self, id: i64, refresh: bool) -> Result<Option<Status>, DbError> {
        self.db.status(id).await
    }

    /// A department's employees (an empty list for an unknown department). Department
    /// names are free text; the key escapes any `:` in them, so `a:b` cannot collide with
    /// another key.
    #[redis_cached(
        key = "department:<name>:employees",
        ttl = "5m",
        refresh = refresh,
        cache = &self.cache
    )]
    pub async fn department_employees(
        &self,
        name: &str,
        refresh: bool,
    ) -> Result<Vec<Employee>, DbError> {
        self.db.department_employees(name).await
    }

    // ---- Writes -----------------------------------------------------------------------
    //
    // Three situations, three shapes:
    // - the keys are known from the arguments: annotate the write (`set_status`);
    // - some keys are known only from the write's result (a new id, the department a
    //   deleted row was in): name the result in the template, `<return.id>`
    //   (`create_employee`, `delete_employee`);
    // - the keys depend on the row as it was before the write (the department an employee
    //   leaves): read it and write in one database transaction, inside
    //   `redis_cached::transaction`, so that the keys are deleted once the transaction has
    //   committed (`update_employee`).

    /// Sets an employee's status; `None` for an unknown id. Only the status key is stale:
    /// neither the employee nor the department lists contain the status.
    #[invalidates("employee:<id>:status", cache = &self.cache)]
    pub async fn set_status(&self, id: i64, status: Presence) -> Result<Option<Status>, DbError> {
        self.db.set_status(id, status).await
    }

    /// Adds an employee and returns it with its new id.
    ///
    /// What it makes stale is known from the inserted row: its department's list, and the
    /// "no such employee" status a poller may have stored for the new id before it existed.
    /// Both keys name the result, so they are rendered from the `Ok` row after the insert
    /// (an `Err` inserted nothing, and deletes nothing).
    #[invalidates(
        "department:<return.department>:employees",
        "employee:<return.id>:status",
        cache = &self.cache
    )]
    pub async fn create_employee(&self, new: &EmployeeInput) -> Result<Employee, DbError> {
        self.db.insert_employee(new).await
    }

    /// Replaces an employee's fields; `None` for an unknown id.
    ///
    /// Moving an employee makes two department lists stale, and the old department is known
    /// only from the row. The row is read and written in one database transaction (which
    /// holds SQLite's write lock, so the department read is still the employee's when the
    /// update runs). [`Repo::replace_employee`] invalidates inside it; in
    /// `redis_cached::transaction`, its keys are held until `redis_cached::commit` and
    /// deleted once the commit has made the new row visible: a reader between the
    /// invalidation and the commit would otherwise cache the old row again.
    pub async fn update_employee(
        &self,
        id: i64,
        changes: &EmployeeInput,
    ) -> Result<Option<Employee>, DbError> {
        redis_cached::transaction(async {
            let mut tx = self.db.begin().await?;
            let Some(department) = self.db.department_of(&mut tx, id).await? else {
                return Ok(None);
            };
            let updated = self
                .replace_employee(&mut tx, id, &department, changes)
                .await?;
            redis_cached::commit(tx.commit()).await?;
            Ok(updated)
        })
        .await
    }

    /// The write of [`Repo::update_employee`], inside its transaction `tx`, whose employee
    /// is in `old_department`.
    #[invalidates(
        "employee:<id>",
        "department:<old_department>:employees",
        "department:<changes.department>:employees",
        cache = &self.cache
    )]
    async fn replace_employee(
        &self,
        tx: &mut Tx,
        id: i64,
        old_department: &str,
        changes: &EmployeeInput,
    ) -> Result<Option<Employee>, DbError> {
        self.db.update_employee(tx, id, changes).await
    }

    /// Deletes an employee: the department it was in, `None` for an unknown id.
    ///
    /// Everything cached about the employee goes, and its department's list, which the
    /// deleted row names (`DELETE ... RETURNING department`, one statement): a key from the
    /// result, rendered when the row existed.
    #[invalidates(
        "employee:<id>",
        "employee:<id>:status",
        "department:<return>:employees",
        cache = &self.cache
    )]
    pub async fn delete_employee(&self, id: i64) -> Result<Option<String>, DbError> {
        self.db.delete_employee(id).await
    }
}
