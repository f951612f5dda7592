//! The database: a SQLite pool (sqlx), its schema, the seed data and the queries the
//! repository runs. Nothing here knows about the cache.
//!
//! Every query first waits `DB_LATENCY_MS`, so that the local file behaves like the remote
//! database a cache is usually put in front of.

use super::model::{Employee, EmployeeInput, Presence, Status};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{FromRow, QueryBuilder, Row, SqlitePool};
use std::time::Duration;

/// The errors of database calls.
pub type DbError = sqlx::Error;

/// A write transaction (see [`Db::begin`]); dropped without a commit, it rolls back.
pub type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

/// Schema migrations, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[include_str!("migrations/0001_employees.sql")];

/// The departments the seed data spreads employees over.
pub const DEPARTMENTS: [&str; 5] = ["Engineering", "Sales", "Marketing", "Finance", "Support"];

/// How many employees a new database starts with.
pub const SEED_EMPLOYEES: usize = 1_000;

/// A pool of connections to one SQLite database file.
///
/// Several processes may share the file: it is in WAL mode (readers never block the writer)
/// and a connection waits up to five seconds for another process's write lock.
#[derive(Clone, Debug)]
pub struct Db {
    pool: SqlitePool,
    latency: Duration,
}

impl Db {
    /// Opens (creating if needed) the database, migrates it and seeds a new one.
    pub async fn open(options: SqliteConnectOptions, latency: Duration) -> Result<Db, DbError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        let db = Db { pool, latency };
        db.migrate().await?;
        Ok(db)
    }

    /// Applies pending migrations, and seeds the database when it was empty.
    ///
    /// `BEGIN IMMEDIATE` takes the write lock at once: of two servers starting together on
    /// one file, the first migrates and seeds, the second then finds nothing left to do.
    async fn migrate(&self) -> Result<(), DbError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let applied: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *tx)
            .await?;
        let applied = usize::try_from(applied).unwrap_or(0);
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
            sqlx::raw_sql(migration).execute(&mut *tx).await?;
            // PRAGMA takes no bound parameters; the value is our own integer.
            sqlx::raw_sql(&format!("PRAGMA user_version = {}", index + 1))
                .execute(&mut *tx)
                .await?;
        }
        if applied == 0 {
            seed(&mut tx).await?;
            tracing::info!("created the database with {SEED_EMPLOYEES} employees");
        }
        tx.commit().await
    }

    /// Checks that the database answers (for `/health`; no added latency).
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
    }

    /// Waits for the in-flight queries, then closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The simulated network round trip of a remote database.
    async fn round_trip(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }

    /// One employee, if the id exists.
    pub async fn employee(&self, id: i64) -> Result<Option<Employee>, DbError> {
        self.round_trip().await;
        sqlx::query_as("SELECT id, name, email, department, title FROM employees WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// The employees among `ids` that exist, in one query.
    pub async fn employees(&self, ids: &[i64]) -> Result<Vec<Employee>, DbError> {
        self.round_trip().await;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders = vec!["?"; ids.len()].join(", ");
        let sql = format!(
            "SELECT id, name, email, department, title FROM employees WHERE id IN ({placeholders})"
        );
        let mut query = sqlx::query_as(&sql);
        for id in ids {
            query = query.bind(id);
        }
        query.fetch_all(&self.pool).await
    }

    /// The employees of a department, by id (empty for an unknown department).
    pub async fn department_employees(&self, department: &str) -> Result<Vec<Employee>, DbError> {
        self.round_trip().await;
        sqlx::query_as(
            "SELECT id, name, email, department, title FROM employees \
             WHERE department = ? ORDER BY id",
        )
        .bind(department)
        .fetch_all(&self.pool)
        .await
    }

    /// An employee's in/out status, if the id exists.
    pub async fn status(&self, id: i64) -> Result<Option<Status>, DbError> {
        self.round_trip().await;
        sqlx::query_as("SELECT id, status, status_since FROM employees WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Adds an employee (status `out`, since now) and returns it with its new id.
    pub async fn insert_employee(&self, new: &EmployeeInput) -> Result<Employee, DbError> {
        self.round_trip().await;
        sqlx::query_as(
            "INSERT INTO employees (name, email, department, title) VALUES (?, ?, ?, ?) \
             RETURNING id, name, email, department, title",
        )
        .bind(&new.name)
        .bind(&new.email)
        .bind(&new.department)
        .bind(&new.title)
        .fetch_one(&self.pool)
        .await
    }

    /// Starts a write transaction. `BEGIN IMMEDIATE` takes SQLite's write lock at once, so
    /// what the transaction reads stays true until it commits: no other writer can move or
    /// delete the employee in between.
    pub async fn begin(&self) -> Result<Tx, DbError> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// The department of an employee, read inside `tx`; `None` if the id does not exist.
    pub async fn department_of(&self, tx: &mut Tx, id: i64) -> Result<Option<String>, DbError> {
        self.round_trip().await;
        sqlx::query_scalar("SELECT department FROM employees WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
    }

    /// Replaces an employee's fields inside `tx`; `None` if the id does not exist.
    pub async fn update_employee(
        &self,
        tx: &mut Tx,
        id: i64,
        changes: &EmployeeInput,
    ) -> Result<Option<Employee>, DbError> {
        self.round_trip().await;
        sqlx::query_as(
            "UPDATE employees SET name = ?, email = ?, department = ?, title = ? WHERE id = ? \
             RETURNING id, name, email, department, title",
        )
        .bind(&changes.name)
        .bind(&changes.email)
        .bind(&changes.department)
        .bind(&changes.title)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
    }

    /// Deletes an employee; the department it was in, `None` if the id did not exist.
    pub async fn delete_employee(&self, id: i64) -> Result<Option<String>, DbError> {
        self.round_trip().await;
        sqlx::query_scalar("DELETE FROM employees WHERE id = ? RETURNING department")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Sets an employee's status; `since` moves only when the status actually changes.
    pub async fn set_status(&self, id: i64, status: Presence) -> Result<Option<Status>, DbError> {
        self.round_trip().await;
        sqlx::query_as(
            "UPDATE employees SET status = ?1, status_since = CASE WHEN status = ?1 \
             THEN status_since ELSE strftime('%Y-%m-%dT%H:%M:%fZ', 'now') END \
             WHERE id = ?2 RETURNING id, status, status_since",
        )
        .bind(status.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }
}

impl FromRow<'_, SqliteRow> for Employee {
    fn from_row(row: &SqliteRow) -> Result<Self, DbError> {
        Ok(Employee {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            email: row.try_get("email")?,
            department: row.try_get("department")?,
            title: row.try_get("title")?,
        })
    }
}

impl FromRow<'_, SqliteRow> for Status {
    fn from_row(row: &SqliteRow) -> Result<Self, DbError> {
        let status = match row.try_get::<&str, _>("status")? {
            "in" => Presence::In,
            "out" => Presence::Out,
            other => {
                return Err(sqlx::Error::ColumnDecode {
                    index: "status".into(),
                    source: format!("unknown status {other:?}").into(),
                });
            }
        };
        Ok(Status {
            employee_id: row.try_get("id")?,
            status,
            since: row.try_get("status_since")?,
        })
    }
}

/// Inserts the same [`SEED_EMPLOYEES`] employees into every new database: ids 1 to 1000,
/// spread evenly over [`DEPARTMENTS`] (employee `n` is in `DEPARTMENTS[(n - 1) % 5]`).
async fn seed(tx: &mut sqlx::SqliteConnection) -> Result<(), DbError> {
    const FIRST: [&str; 40] = [
        "Ada",
        "Alan",
        "Barbara",
        "Brian",
        "Claude",
        "Dennis",
        "Donald",
        "Edsger",
        "Frances",
        "Grace",
        "Guido",
        "Hedy",
        "Ivan",
        "James",
        "Jean",
        "John",
        "Ken",
        "Leslie",
        "Linus",
        "Margaret",
        "Mary",
        "Niklaus",
        "Radia",
        "Richard",
        "Robin",
        "Ruth",
        "Sophie",
        "Tim",
        "Tony",
        "Valerie",
        "Vint",
        "Whitfield",
        "Yukihiro",
        "Adele",
        "Bjarne",
        "Carol",
        "Douglas",
        "Evelyn",
        "Fran",
        "Gordon",
    ];
    const LAST: [&str; 25] = [
        "Allen",
        "Backus",
        "Bartik",
        "Cerf",
        "Dijkstra",
        "Engelbart",
        "Floyd",
        "Goldberg",
        "Hamilton",
        "Hopper",
        "Iverson",
        "Kay",
        "Knuth",
        "Lamport",
        "Liskov",
        "Lovelace",
        "McCarthy",
        "Milner",
        "Perlman",
        "Ritchie",
        "Shannon",
        "Thompson",
        "Turing",
        "Wilson",
        "Wirth",
    ];
    const TITLES: [[&str; 3]; 5] = [
        ["Software Engineer", "Senior Engineer", "Staff Engineer"],
        ["Account Executive", "Sales Manager", "Sales Director"],
        [
            "Marketing Specialist",
            "Content Strategist",
            "Marketing Manager",
        ],
        ["Accountant", "Financial Analyst", "Controller"],
        ["Support Agent", "Support Engineer", "Support Lead"],
    ];
    let rows = (0..SEED_EMPLOYEES).map(|n| {
        let (first, last) = (FIRST[n % FIRST.len()], LAST[n / FIRST.len() % LAST.len()]);
        let department = n % DEPARTMENTS.len();
        (
            format!("{first} {last}"),
            format!(
                "{}.{}@example.com",
                first.to_lowercase(),
                last.to_lowercase()
            ),
            DEPARTMENTS[department],
            TITLES[department][n / DEPARTMENTS.len() % 3],
            if n % 3 == 0 { "out" } else { "in" },
        )
    });
    // One statement: 1,000 rows of 6 values stay well under SQLite's bound-value limit.
    QueryBuilder::new(
        "INSERT INTO employees (name, email, department, title, status, status_since) ",
    )
    .push_values(rows, |mut row, (name, email, department, title, status)| {
        row.push_bind(name)
            .push_bind(email)
            .push_bind(department)
            .push_bind(title)
            .push_bind(status)
            .push_bind("2025-01-06T09:00:00.000Z");
    })
    .build()
    .execute(&mut *tx)
    .await
    .map(drop)
}
