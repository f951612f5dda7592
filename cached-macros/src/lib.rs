//! Procedural macros of [`redis-cached`](https://docs.rs/redis-cached). Depend on
//! `redis-cached` instead: the generated code refers to it, and its documentation describes
//! both attributes in full.
//!
//! Each attribute runs the same pipeline: parse the arguments (`args`), read the function
//! into a typed view (`model`, with `template` for the keys and `shape` for the return
//! type), check the rules between its parts (`valid`, with `generics`), and write the tokens
//! (`expand`). The errors of a step are reported together (`errors`).

mod args;
mod batch;
mod errors;
mod expand;
mod generics;
mod model;
mod shape;
mod template;
mod valid;

use model::{CachedFn, InvalidatingFn};
use proc_macro::TokenStream;
use syn::{ItemFn, TraitItemFn, parse_macro_input};

/// Caches an `async fn`'s result in Redis under a key rendered from its arguments.
///
/// On each call: render the key, look it up, and on a hit return the decoded value; on a
/// miss run the body and store its result with a TTL. Cache failures never fail the call.
///
/// Arguments:
/// - `key = "user:<id>"` (required): the key template; `<name>` is a parameter (or a name a
///   parameter's pattern binds), `<name.field>` a field, `<self.field>` a field of `self`,
///   `<T>` a type parameter of the function and `<N>` a const parameter (see below), and at
///   most one Redis Cluster hash tag `#{...}` (see below). Otherwise `{` and `}` may not
///   appear in it: `"user:{id}"` is literal text, not a placeholder (write `<id>`).
/// - `ttl = 3600` or `ttl = "15m"` (`s`, `m`, `h`, `d`): how long entries live; omitted,
///   the cache's default TTL.
/// - `refresh = <bool expr>`: when true, skip the lookup, run the body, overwrite the entry.
/// - `cache = <expr>`: a `Cache` or `&Cache` to use instead of the process-wide one.
/// - `cache_none = true`: for `Option` returns, store `None` too.
/// - `near_cache = true|false`: use the cache's near tier for this function, or not; with
///   `true` the tier holds the decoded value, which must then be `Clone`.
/// - `key_ignores = [E, db]`: type and const parameters of the function, and `impl Trait`
///   arguments by name, whose choice does not change the result (a database executor), so
///   that the key need not tell them apart (see below).
/// - `batch = ids`: the batch form. `ids` is a `&[K]` or `Vec<K>` parameter that the key
///   names (`key = "employee:<ids>"`, rendered once per id); the function returns
///   `HashMap<K, V>` or `Result<HashMap<K, V>, E>`. All ids are looked up in one round trip
///   (per hash slot on a cluster), the body runs once with the parameter rebound to the ids
///   that missed, and each value is stored under its id's key and fill lease. Not combined
///   with `tags`, `near_cache`, `refresh` or `cache_none`. See the README's "Batch
///   functions".
///
/// ```
/// use redis_cached::redis_cached;
///
/// #[redis_cached(key = "square:<n>", ttl = "1h")]
/// async fn square(n: u64) -> u64 {
///     n * n
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
/// redis_cached::init("mem://").await?;
/// assert_eq!(square(12).await, 144); // runs the body
/// assert_eq!(square(12).await, 144); // from the cache
/// # Ok(()) }
/// ```
///
/// # Keys
///
/// Literal text is written as it is; placeholders render through [`KeyPart`], strings with
/// `\` escaped as `\\`, `:` as `\:`, `{` as `\(` and `}` as `\)`, so that different
/// arguments never render the same key and no argument writes a brace. Keys longer than the
/// cache's `max_key_len` (1024 bytes by default) become their literal head, `\#` and a
/// SHA-256 digest.
///
/// A hash tag `#{...}` chooses the key's Redis Cluster slot on purpose: Cluster hashes only
/// the text between a key's first `{` and the next `}`, so keys with the same tag share a
/// slot and a node (one tenant's entries, say). The `#` is not written, the braces are:
/// `"#{tenant:<tenant>}:user:<id>"` renders `{tenant:7}:user:42`. Placeholders in the tag are
/// escaped like any other, so an argument cannot close the tag. A template has at most one
/// tag, not empty, closed, holding no brace; `#[invalidates]` takes the same grammar. The
/// digest form of a long key keeps the tag (up to 256 bytes) and so its slot.
///
/// ```
/// use redis_cached::redis_cached;
///
/// // `{tenant:7}:user:42`: in the slot of `tenant:7`, with tenant 7's other keys.
/// #[redis_cached(key = "#{tenant:<tenant>}:user:<id>", ttl = 60)]
/// async fn user_name(tenant: u64, id: u64) -> String {
///     format!("user {id} of tenant {tenant}")
/// }
/// ```
///
/// [`KeyPart`]: https://docs.rs/redis-cached/latest/redis_cached/trait.KeyPart.html
///
/// # Generic functions
///
/// The key must tell the instantiations of a generic function apart. Each type or const
/// parameter of the function must appear in the type of an argument the template renders
/// (`fn get<S: KeyPart>(name: S)` with `<name>`, or `<name.field>` with
/// `name: Wrapper<S>`), or be named in the template; otherwise it is a compile error at the
/// parameter. Lifetimes need nothing. An `impl Trait` argument is an anonymous type
/// parameter: it must be rendered, or replaced by a named type parameter that the key names.
///
/// `<T>` renders the type as [`std::any::type_name`] gives it (for example
/// `my_app::Users`), escaped like a string part (`my_app\:\:Users`). That text may change
/// between compiler versions; keys rendered by the new build are then simply misses, never
/// another type's values. `<N>` renders a const parameter's value. Neither takes a field
/// path. A name that is both a parameter and a type or const parameter is an error (rename
/// one).
///
/// The macro sees only the function's own generics: the parameters of the `impl` block a
/// method is in are out of its view, so such a method must put what tells them apart in the
/// key itself (a field of `self`, or a literal per impl).
///
/// ```
/// use redis_cached::redis_cached;
///
/// trait Table {
///     const NAME: &'static str;
/// }
///
/// struct Users;
///
/// impl Table for Users {
///     const NAME: &'static str = "users";
/// }
///
/// // One entry per table: `count:<type name of T>:<id>`.
/// #[redis_cached(key = "count:<T>:<id>", ttl = 60)]
/// async fn count_rows<T: Table>(id: u64) -> u64 {
///     T::NAME.len() as u64 + id // the query on table `T::NAME`
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
/// redis_cached::init("mem://").await?;
/// assert_eq!(count_rows::<Users>(1).await, 6);
/// # Ok(()) }
/// ```
///
/// Some parameters do not change the result: which executor (a pool, a connection, a
/// transaction) runs the query does not change the row. List them in `key_ignores` instead
/// of the key. Entries are then shared across every choice of the listed parameters:
/// `user_name(&pool, 1)` and `user_name(&mut *conn, 1)` read and fill the one entry
/// `user:1:name`. That is only right when the result really is the same for all of them;
/// note that the cache knows nothing of transactions, so a read through a transaction
/// stores, for every caller, what that transaction sees, uncommitted writes included.
///
/// `key_ignores` lists the names of type or const parameters of the function, or of
/// `impl Trait` arguments (`key_ignores = [db]` for `db: impl Executor`), each once; any
/// other name is an error, and so is one the key tells apart already (named as `<T>` or in
/// the type of a rendered argument), so the list never claims more than it does.
///
/// ```
/// # mod sqlx {
/// #     pub struct Sqlite;
/// #     pub struct Error;
/// #     pub trait Executor<'c> { type Database; }
/// #     pub struct Query;
/// #     pub fn query_scalar(_: &str) -> Query { Query }
/// #     impl Query {
/// #         pub fn bind(self, _: i64) -> Self { self }
/// #         pub async fn fetch_one<'c>(self, _: impl Executor<'c>) -> Result<String, Error> {
/// #             Ok(String::new())
/// #         }
/// #     }
/// # }
/// use redis_cached::redis_cached;
///
/// // One entry per id, whichever executor runs the query.
/// #[redis_cached(key = "user:<id>:name", ttl = 60, key_ignores = [E])]
/// async fn user_name<'c, E>(db: E, id: i64) -> Result<String, sqlx::Error>
/// where
///     E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
/// {
///     sqlx::query_scalar("SELECT name FROM users WHERE id = ?")
///         .bind(id)
///         .fetch_one(db)
///         .await
/// }
/// ```
///
/// # Methods
///
/// A method whose template names no field of `self` has one entry per argument tuple for
/// all instances: with `key = "user:<id>"`, tenant A's repository reads what tenant B's
/// cached. That is allowed on purpose, as a shared cache is often what is meant; when the
/// instances hold different data, put what tells them apart in the key:
///
/// ```
/// use redis_cached::redis_cached;
///
/// struct Repo {
///     tenant: u64,
/// }
///
/// impl Repo {
///     #[redis_cached(key = "tenant:<self.tenant>:user:<id>", ttl = 60)]
///     async fn user_name(&self, id: u64) -> String {
///         format!("user {id} of tenant {}", self.tenant)
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn redis_cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_or_keep(item, |function| {
        let cached = CachedFn::from_syn(syn::parse(args)?, function)?;
        cached.validate()?;
        Ok(expand::cached(&cached))
    })
}

/// Deletes cache keys rendered from an `async fn`'s arguments, or from its result, after its
/// body ran.
///
/// Takes one or more key templates (the grammar of `#[redis_cached]`'s `key`, hash tags
/// `#{...}` included), an optional `cache = <expr>`, an optional `key_ignores = [E, ...]` and
/// optional `tags = [...]`. The keys are rendered at entry and deleted with one command after
/// the body, whatever it returned.
///
/// # Keys from the result
///
/// A template may name the function's return value, `<return>`, or a field of it,
/// `<return.field.subfield>` (`return` is a keyword: no parameter can take the name), for the
/// keys a write knows only once it has run, such as the id an insert gave the new row. Which
/// value it names follows the return type as for `#[redis_cached]`: the value for `T`, `t`
/// of `Ok(t)`, `Some(t)` or `Ok(Some(t))` for `Result<T, E>`, `Option<T>` or
/// `Result<Option<T>, E>`. Such templates (keys or tags) are rendered after the body, only
/// when the result has that part, and deleted in the same command as the others; an `Err`
/// or a `None` deletes only the keys rendered from the arguments. A field the value does not
/// have is rustc's "no field" error at the template; `<return>` on a function returning
/// `()`, or in a `#[redis_cached]` key (rendered before the body), is a compile error there.
///
/// ```
/// use redis_cached::invalidates;
///
/// struct Employee {
///     id: u64,
///     department: String,
/// }
///
/// // On `Ok(row)`: `department:Sales:employees` and `employee:7:status`, from the row;
/// // `audit:<by>` from the argument, in any case.
/// #[invalidates(
///     "department:<return.department>:employees",
///     "employee:<return.id>:status",
///     "audit:<by>"
/// )]
/// async fn create_employee(by: &str, department: &str) -> Result<Employee, String> {
///     Ok(Employee { id: 7, department: department.to_owned() })
/// }
/// ```
///
/// # Generic functions and transactions
///
/// A generic invalidator follows the rule of `#[redis_cached]` for its type and const
/// parameters (each key names `<T>` or renders an argument whose type has `T`), so that it
/// deletes the key the generic cached function renders. As there, `key_ignores` lists the
/// parameters (and `impl Trait` arguments, by name) whose choice does not change which keys
/// are stale, such as a database executor: every choice of them deletes the same keys. It
/// applies to every key; naming one that every key already tells apart is an error. Run
/// inside a database transaction, an invalidator deletes its keys before the commit, so a
/// read in between can store the old row again, unless the transaction runs inside
/// `redis_cached::transaction` and commits through `redis_cached::commit`: the keys are then
/// held until the commit.
///
/// ```
/// # mod sqlx {
/// #     pub struct Sqlite;
/// #     pub struct Error;
/// #     pub trait Executor<'c> { type Database; }
/// #     pub struct Query;
/// #     pub fn query(_: &str) -> Query { Query }
/// #     impl Query {
/// #         pub fn bind(self, _: impl Sized) -> Self { self }
/// #         pub async fn execute<'c>(self, _: impl Executor<'c>) -> Result<(), Error> {
/// #             Ok(())
/// #         }
/// #     }
/// # }
/// use redis_cached::invalidates;
///
/// #[invalidates("user:<id>:name", key_ignores = [E])]
/// async fn rename_user<'c, E>(db: E, id: i64, name: &str) -> Result<(), sqlx::Error>
/// where
///     E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
/// {
///     sqlx::query("UPDATE users SET name = ? WHERE id = ?")
///         .bind(name)
///         .bind(id)
///         .execute(db)
///         .await?;
///     Ok(())
/// }
/// ```
///
/// A plain invalidator:
///
/// ```
/// use redis_cached::{invalidates, redis_cached};
///
/// #[redis_cached(key = "user:<id>", ttl = 60)]
/// async fn user_name(id: u64) -> String {
///     format!("user {id}")
/// }
///
/// #[invalidates("user:<id>", "users:all")]
/// async fn rename_user(id: u64, name: &str) -> Result<(), String> {
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
/// redis_cached::init("mem://").await?;
/// user_name(1).await;
/// rename_user(1, "Ada").await.ok();
/// # Ok(()) }
/// ```
#[proc_macro_attribute]
pub fn invalidates(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_or_keep(item, |function| {
        let invalidating = InvalidatingFn::from_syn(syn::parse(args)?, function)?;
        invalidating.validate()?;
        Ok(expand::invalidates(&invalidating))
    })
}

/// Expands the function; on an error, emits the error next to the unchanged item so that
/// one mistake does not cascade into errors at every call site.
fn expand_or_keep(
    item: TokenStream,
    expand: impl FnOnce(&ItemFn) -> syn::Result<proc_macro2::TokenStream>,
) -> TokenStream {
    let original = proc_macro2::TokenStream::from(item.clone());
    if let Ok(declaration) = syn::parse::<TraitItemFn>(item.clone())
        && declaration.default.is_none()
    {
        let error = syn::Error::new_spanned(
            declaration.sig.fn_token,
            "this attribute needs the function's body: put it on the method in the `impl` block, \
             not on the trait's declaration",
        );
        let error = error.into_compile_error();
        return quote::quote!(#error #original).into();
    }
    let function = parse_macro_input!(item as ItemFn);
    match expand(&function) {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            let error = error.into_compile_error();
            quote::quote!(#error #original).into()
        }
    }
}
