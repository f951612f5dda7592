//! The repository: every read and write of employees, and where caching is declared.
//! **This is the file to copy from.**
//!
//! Reads are cache-aside with `#[redis_cached]`: look the key up, or run the query and
//! store its result for the TTL. Each write names, with `#[invalidates]`, every key it makes
//! stale; the keys are deleted after the write ran.
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

use super::db::{Db, DbError};
use super::model::{Employee, EmployeeInput, Presence, Status};
use redis_cached::{Cache, invalidates, redis_cached};

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
    // - the keys are known from the arguments: annotate the write itself (`set_status`);
    // - the keys depend on the current row (the department an employee leaves): read the
    //   row, then call a write that takes the old value as a parameter and only applies
    //   while it still holds (`update_employee`, `delete_employee`);
    // - the keys are known only after the write (a new id): call an invalidating function
    //   once the write is done (`create_employee`).

    /// Sets an employee's status; `None` for an unknown id. Only the status key is stale:
    /// neither the employee nor the department lists contain the status.
    #[invalidates("employee:<id>:status", cache = &self.cache)]
    pub async fn set_status(&self, id: i64, status: Presence) -> Result<Option<Status>, DbError> {
        self.db.set_status(id, status).await
    }

    /// Adds an employee and returns it with its new id.
    pub async fn create_employee(&self, new: &EmployeeInput) -> Result<Employee, DbError> {
        let employee = self.db.insert_employee(new).await?;
        self.employee_created(&employee).await;
        Ok(employee)
    }

    /// Deletes what a new employee makes stale: its department's list, and the "no such
    /// employee" status a poller may have stored for this id before it existed. Called
    /// after the insert, when the id is known.
    #[invalidates(
        "department:<employee.department>:employees",
        "employee:<employee.id>:status",
        cache = &self.cache
    )]
    async fn employee_created(&self, employee: &Employee) {}

    /// Replaces an employee's fields; `None` for an unknown id.
    ///
    /// Moving an employee makes two department lists stale, and the old department is known
    /// only from the row. It is read from the database (never from the cache), then passed
    /// to [`Repo::replace_employee`], whose write applies only while the employee is still
    /// in that department: if another request moved it in between, read again.
    pub async fn update_employee(
        &self,
        id: i64,
        changes: &EmployeeInput,
    ) -> Result<Option<Employee>, DbError> {
        loop {
            let Some(current) = self.db.employee(id).await? else {
                return Ok(None);
            };
            if let Some(updated) = self
                .replace_employee(id, &current.department, changes)
                .await?
            {
                return Ok(Some(updated));
            }
        }
    }

    /// The write of [`Repo::update_employee`]: `None` when the employee is no longer in
    /// `old_department` (or gone). The keys are deleted either way.
    #[invalidates(
        "employee:<id>",
        "department:<old_department>:employees",
        "department:<changes.department>:employees",
        cache = &self.cache
    )]
    async fn replace_employee(
        &self,
        id: i64,
        old_department: &str,
        changes: &EmployeeInput,
    ) -> Result<Option<Employee>, DbError> {
        self.db
            .update_employee_in(id, old_department, changes)
            .await
    }

    /// Deletes an employee; whether it existed. Like an update, it needs the department
    /// from the row first.
    pub async fn delete_employee(&self, id: i64) -> Result<bool, DbError> {
        loop {
            let Some(current) = self.db.employee(id).await? else {
                return Ok(false);
            };
            if self.remove_employee(id, &current.department).await? {
                return Ok(true);
            }
        }
    }

    /// The write of [`Repo::delete_employee`]: everything cached about the employee goes.
    #[invalidates(
        "employee:<id>",
        "employee:<id>:status",
        "department:<department>:employees",
        cache = &self.cache
    )]
    async fn remove_employee(&self, id: i64, department: &str) -> Result<bool, DbError> {
        self.db.delete_employee_in(id, department).await
    }
}
