//! Invalidation after commit: inside [`transaction`], invalidations are held until the
//! database transaction commits, so that no reader can cache the old row between an
//! invalidation and the commit that makes the new row visible.

use crate::task::spawn_detached;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Work a scope holds for its commit (a deletion, a write-through's store), type-erased, so
/// that scopes know nothing of caches; made when the commit is known, from how it went. Its
/// own errors are its business (a failed deletion defers its keys).
pub(crate) type Work =
    Box<dyn FnOnce(Committed) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// How the transaction holding some work ended, as far as the work can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Committed {
    /// The commit returned `Ok`, and no enclosing scope is still open (which could roll
    /// back): the writes are visible.
    Yes,
    /// The commit failed (its outcome is unknown), the scope ended during it, or an
    /// enclosing scope is still open: the writes may or may not become visible.
    Unknown,
}

tokio::task_local! {
    static SCOPE: Arc<Scope>;
}

#[derive(Default)]
struct Scope {
    state: Mutex<State>,
    /// Inside another scope: its commit decides whether this one's writes stay.
    nested: bool,
}

#[derive(Default)]
struct State {
    phase: Phase,
    /// Invalidations held for the commit.
    owed: Vec<Work>,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before [`commit`]: a scope that ends here was rolled back; its keys are dropped.
    #[default]
    Open,
    /// [`commit`] started: the keys are deleted however the scope ends.
    Committing,
    /// [`commit`] returned: later invalidations run at once.
    Committed,
}

impl Scope {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs `body` as a database transaction's scope: the invalidations it makes
/// (`#[invalidates]` functions, [`Cache::invalidate`](crate::Cache::invalidate), [`Cache::invalidate_tags`](crate::Cache::invalidate_tags)) are held,
/// and applied only once the transaction commits through [`commit`].
///
/// Without it, an invalidation made inside a transaction deletes the entry before the
/// commit makes the new row visible, and a reader that runs in between caches the old row
/// again, for the whole TTL. With it:
///
/// - the held keys are deleted as soon as [`commit`]'s future returns, before it returns to
///   `body` (so `body` can read its own writes back), whether the commit succeeded or failed
///   (a failed commit may still have been applied: its outcome is unknown); if `body` is
///   dropped during the commit, they are deleted in the background;
/// - a `body` that finishes or is dropped without reaching [`commit`] (a rollback)
///   discards them: its writes never became visible;
/// - a deletion that fails goes to the pending set, as any failed invalidation does.
///
/// Invalidations made after the commit, and those made by tasks `body` spawns (which do not
/// inherit the scope), run at once. Scopes nest: the innermost one holds the keys.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
/// # let cache = redis_cached::Cache::connect("mem://").await?;
/// # struct Transaction; impl Transaction { async fn commit(self) -> Result<(), redis_cached::Error> { Ok(()) } }
/// # let begin = || async { Ok::<_, redis_cached::Error>(Transaction) };
/// redis_cached::transaction(async {
///     let tx = begin().await?;
///     // ... writes through `tx` ...
///     cache.invalidate(&["user:42"]).await?; // held
///     redis_cached::commit(tx.commit()).await // deleted once this returns
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub async fn transaction<F: Future>(body: F) -> F::Output {
    let scope = Arc::new(Scope {
        nested: SCOPE.try_with(|_| ()).is_ok(),
        ..Scope::default()
    });
    let settle = Settle(scope.clone());
    let output = SCOPE.scope(scope, body).await;
    if let Some(owed) = settle.take() {
        run_all(owed, Committed::Unknown).await;
    }
    output
}

/// Runs the transaction's `commit` (for example sqlx's `tx.commit()`) inside a
/// [`transaction`] scope, then applies the invalidations the scope held, before returning
/// (in a task of their own, which finishes even if this call is dropped). Outside a scope it
/// only runs `commit`.
///
/// # Errors
///
/// Those of `commit`, unchanged: the invalidations are applied either way, and a deletion
/// that fails goes to the pending set.
pub async fn commit<T, E>(commit: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    let _ = SCOPE.try_with(|scope| scope.state().phase = Phase::Committing);
    let result = commit.await;
    let (owed, nested) = SCOPE
        .try_with(|scope| {
            let mut state = scope.state();
            state.phase = Phase::Committed;
            (std::mem::take(&mut state.owed), scope.nested)
        })
        .unwrap_or_default();
    if !owed.is_empty() {
        let committed = match result {
            Ok(_) if !nested => Committed::Yes,
            _ => Committed::Unknown,
        };
        // A task of its own: the deletion goes on if this future is dropped.
        let _ = tokio::spawn(run_all(owed, committed)).await;
    }
    result
}

async fn run_all(owed: Vec<Work>, committed: Committed) {
    for work in owed {
        work(committed).await;
    }
}

/// Holds the work `make` makes for the current transaction scope, and says whether it did:
/// there is a scope, and its commit has not returned. Otherwise `make` is not called and the
/// caller does the work itself.
pub(crate) fn owe(make: impl FnOnce() -> Work) -> bool {
    SCOPE
        .try_with(|scope| {
            let mut state = scope.state();
            if state.phase == Phase::Committed {
                return false;
            }
            state.owed.push(make());
            true
        })
        .unwrap_or(false)
}

/// Settles a scope however it ends: what it owes after a commit is deleted, in the
/// background when the scope was dropped.
struct Settle(Arc<Scope>);

impl Settle {
    /// The deletions owed (none after a rollback), leaving nothing for `drop`.
    fn take(&self) -> Option<Vec<Work>> {
        let mut state = self.0.state();
        let owed = std::mem::take(&mut state.owed);
        (state.phase != Phase::Open && !owed.is_empty()).then_some(owed)
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        if let Some(owed) = self.take() {
            spawn_detached(run_all(owed, Committed::Unknown));
        }
    }
}
