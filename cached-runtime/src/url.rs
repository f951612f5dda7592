//! Every form of cache URL: the [`Scheme`] that says what a URL opens, the multi-node URLs
//! redis-rs does not parse, and redaction of passwords for errors, logs and `Debug`.
//!
//! ```text
//! redis+cluster://[user:password@]host:port[,host:port...][?query]
//! redis+sentinel://[user:password@]host:port[,host:port...]/service[/db][?sentinel_username=..&sentinel_password=..]
//! ```
//!
//! Each node of a multi-node URL becomes a single-node `redis://` (or `rediss://`) URL that
//! redis-rs parses, with the credentials and query it applies to: the user and password are
//! the data nodes'; the sentinels' own credentials, if they have any, come from the query.

/// What a URL opens, and whether over TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `mem://`: the in-process store.
    Memory,
    /// `redis://`, `rediss://`, `redis+unix://`, `unix://`: one server.
    Single { tls: bool },
    /// `redis+cluster://`, `rediss+cluster://`: a Redis Cluster, from seed nodes.
    Cluster { tls: bool },
    /// `redis+sentinel://`, `rediss+sentinel://`: the primary Sentinel names.
    Sentinel { tls: bool },
}

/// Every scheme, as written in a URL before `://`.
const SCHEMES: [(&str, Scheme); 9] = [
    ("redis", Scheme::Single { tls: false }),
    ("rediss", Scheme::Single { tls: true }),
    ("redis+unix", Scheme::Single { tls: false }),
    ("unix", Scheme::Single { tls: false }),
    ("redis+cluster", Scheme::Cluster { tls: false }),
    ("rediss+cluster", Scheme::Cluster { tls: true }),
    ("redis+sentinel", Scheme::Sentinel { tls: false }),
    ("rediss+sentinel", Scheme::Sentinel { tls: true }),
    ("mem", Scheme::Memory),
];

impl Scheme {
    /// The scheme of `url`, or what is wrong with it (the URL itself is not quoted: it may
    /// hold a password).
    pub(crate) fn of(url: &str) -> Result<Scheme, String> {
        let example = "as in `redis://127.0.0.1:6379`";
        let Some((name, _)) = url.split_once("://") else {
            return match url.split_once(':').and_then(|(name, _)| find(name)) {
                Some((_, Scheme::Memory)) => {
                    Err("`mem:` must be followed by `//`: write `mem://`".into())
                }
                Some((name, _)) => Err(format!(
                    "`{name}:` must be followed by `//` and the address, {example}"
                )),
                None => Err(format!(
                    "not a URL: expected a scheme and an address, {example}, or `mem://`"
                )),
            };
        };
        match find(name) {
            Some((_, scheme)) if scheme.tls() && !cfg!(feature = "tls") => Err(format!(
                "`{name}://` (TLS) needs the `tls` feature of redis-cached"
            )),
            Some((_, scheme)) => Ok(scheme),
            None => Err(format!(
                "unsupported URL scheme `{name}`: use {}",
                supported()
            )),
        }
    }

    pub(crate) fn tls(self) -> bool {
        match self {
            Scheme::Memory => false,
            Scheme::Single { tls } | Scheme::Cluster { tls } | Scheme::Sentinel { tls } => tls,
        }
    }
}

fn find(name: &str) -> Option<(&'static str, Scheme)> {
    SCHEMES.into_iter().find(|(written, _)| *written == name)
}

/// The schemes this build opens, for error messages.
fn supported() -> String {
    let names: Vec<String> = SCHEMES
        .iter()
        .filter(|(_, scheme)| cfg!(feature = "tls") || !scheme.tls())
        .map(|(name, _)| format!("`{name}://`"))
        .collect();
    let (last, rest) = names
        .split_last()
        .map_or(("", &[][..]), |(last, rest)| (last, rest));
    let tls = if cfg!(feature = "tls") {
        ""
    } else {
        " (`rediss://` and the other TLS forms with the `tls` feature)"
    };
    format!("{} or {last}{tls}", rest.join(", "))
}

/// The URL with its passwords replaced by `***`: the user-info's (everything between `://`
/// and the last `@`, whatever it holds, so that a password with an unencoded `/`, `?` or `#`
/// is hidden too; the user name is kept only when it is plain) and the `pass`, `password`
/// and `sentinel_password` query parameters (names compared percent-decoded). The hosts,
/// path and other parameters stay, so that errors and logs still say which servers were
/// meant. Without `://` (not a URL this crate opens) the whole is `…` if it could hold a
/// password (a `@` or a query), else shown as written.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return match url.contains(['@', '?']) {
            true => "…".to_owned(),
            false => url.to_owned(),
        };
    };
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((info, rest)) => match info.split_once(':') {
            Some((user, _)) if !user.contains(['/', '?', '#']) => (format!("{user}:***@"), rest),
            _ => ("***@".to_owned(), rest),
        },
        None => (String::new(), rest),
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, fragment)) => (rest, format!("#{fragment}")),
        None => (rest, String::new()),
    };
    let rest = match rest.split_once('?') {
        Some((path, query)) => {
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| {
                    let name = pair.split_once('=').map_or(pair, |(name, _)| name);
                    let decoded = ::url::form_urlencoded::parse(name.as_bytes()).next();
                    match decoded {
                        Some((decoded, _)) if is_secret(&decoded) => format!("{name}=***"),
                        _ => pair.to_owned(),
                    }
                })
                .collect();
            format!("{path}?{}", pairs.join("&"))
        }
        None => rest.to_owned(),
    };
    format!("{scheme}://{userinfo}{rest}{fragment}")
}

fn is_secret(name: &str) -> bool {
    matches!(name, "pass" | "password" | "sentinel_password")
}

/// Cluster seed nodes, as single-node URLs.
#[derive(Debug, Clone)]
pub(crate) struct ClusterAddress {
    pub(crate) nodes: Vec<String>,
    /// A node's URL is `{scheme}://{userinfo}` + `host:port` + `?query`.
    before_host: String,
    after_host: String,
}

impl ClusterAddress {
    /// The seed nodes, parsed by redis-rs.
    pub(crate) fn seeds(&self) -> redis::RedisResult<Vec<redis::ConnectionInfo>> {
        use redis::IntoConnectionInfo;
        self.nodes
            .iter()
            .map(|node| node.as_str().into_connection_info())
            .collect()
    }

    /// The URL of the node at `host_port` (as `CLUSTER SLOTS` names it), with the seeds'
    /// scheme, credentials and query.
    pub(crate) fn node(&self, host_port: &str) -> String {
        format!("{}{host_port}{}", self.before_host, self.after_host)
    }
}

/// The sentinels (as single-node URLs), the service they watch and how to reach its nodes.
#[derive(Debug)]
pub(crate) struct SentinelAddress {
    pub(crate) sentinels: Vec<String>,
    pub(crate) service: String,
    /// The primary's URL without a host: credentials and database, for redis-rs to parse.
    pub(crate) node: String,
}

const CLUSTER_PORT: u16 = 6379;
const SENTINEL_PORT: u16 = 26379;

/// Parses a `redis+cluster://` or `rediss+cluster://` URL.
pub(crate) fn cluster(url: &str) -> Result<ClusterAddress, String> {
    let parts = split(url)?;
    if !parts.path.trim_matches('/').is_empty() {
        return Err("a cluster URL has no path: Redis Cluster has only database 0".into());
    }
    let nodes = parts
        .hosts(CLUSTER_PORT)?
        .iter()
        .map(|host| parts.node_url(host, "", &parts.query))
        .collect();
    let template = parts.node_url("\0", "", &parts.query);
    let (before_host, after_host) = template.split_once('\0').unwrap_or((&template, ""));
    Ok(ClusterAddress {
        nodes,
        before_host: before_host.to_owned(),
        after_host: after_host.to_owned(),
    })
}

/// Parses a `redis+sentinel://` or `rediss+sentinel://` URL.
pub(crate) fn sentinel(url: &str) -> Result<SentinelAddress, String> {
    let parts = split(url)?;
    let mut path = parts.path.trim_matches('/').split('/');
    let service = match path.next() {
        Some(service) if !service.is_empty() => service.to_owned(),
        _ => {
            return Err(
                "name the primary the sentinels watch after the hosts: `.../mymaster`".into(),
            );
        }
    };
    let db = match (path.next(), path.next()) {
        (None, _) => String::new(),
        (Some(db), None) if db.parse::<u32>().is_ok() => db.to_owned(),
        _ => return Err("after the service name only a database number may follow".into()),
    };
    // The sentinels' credentials travel in the query; the rest of the query is the data
    // nodes'.
    let mut sentinel_auth = (None, None);
    let mut node_query = Vec::new();
    for (name, value) in ::url::form_urlencoded::parse(parts.query.as_bytes()) {
        match &*name {
            "sentinel_username" => sentinel_auth.0 = Some(value.into_owned()),
            "sentinel_password" => sentinel_auth.1 = Some(value.into_owned()),
            _ => node_query.push((name.into_owned(), value.into_owned())),
        }
    }
    let encode = |pairs: &[(String, String)]| {
        ::url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    };
    let sentinel_userinfo = match sentinel_auth {
        (None, None) => String::new(),
        (user, password) => {
            let encoded = |text: Option<String>| {
                ::url::form_urlencoded::byte_serialize(text.unwrap_or_default().as_bytes())
                    .collect::<String>()
            };
            format!("{}:{}@", encoded(user), encoded(password))
        }
    };
    let scheme = if parts.tls { "rediss" } else { "redis" };
    let sentinels = parts
        .hosts(SENTINEL_PORT)?
        .iter()
        .map(|host| format!("{scheme}://{sentinel_userinfo}{host}"))
        .collect();
    Ok(SentinelAddress {
        sentinels,
        service,
        node: parts.node_url("localhost", &db, &encode(&node_query)),
    })
}

/// The hosts of `url` as written, without its user info: `host:port`, or a Cluster's or
/// Sentinel's comma-separated list; empty for a socket path or a URL this crate does not open.
pub(crate) fn hosts(url: &str) -> &str {
    split(url).map_or("", |parts| parts.hosts)
}

struct Parts<'a> {
    tls: bool,
    /// `user:password@`, as written (still percent-encoded), or empty.
    userinfo: &'a str,
    hosts: &'a str,
    path: &'a str,
    query: String,
}

fn split(url: &str) -> Result<Parts<'_>, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("expected `scheme://host:port,...`")?;
    let tls = scheme.starts_with("rediss+");
    // A `@` after the authority is a password's `/`, `?` or `#` left unencoded: the rest
    // would be read as hosts and named in errors, showing part of the password.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if rest[authority_end..].contains('@') {
        return Err(
            "a `@` after the hosts: in a user name or password, write `/`, `?` and `#` \
                    percent-encoded (`%2F`, `%3F`, `%23`)"
                .into(),
        );
    }
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, query.to_owned()),
        None => (rest, String::new()),
    };
    // The password may contain `/` only percent-encoded, so the authority ends at the first.
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    Ok(Parts {
        tls,
        userinfo,
        hosts,
        path,
        query,
    })
}

impl Parts<'_> {
    /// `host:port` of each node, with the default port where none is given.
    fn hosts(&self, default_port: u16) -> Result<Vec<String>, String> {
        if self.hosts.is_empty() {
            return Err("no host: list at least one `host:port`".into());
        }
        self.hosts
            .split(',')
            .map(|host| {
                // `[v6]:port`, `[v6]`, `name:port` or `name`.
                let (name, port) = match host.rsplit_once(':') {
                    Some((name, port)) if !port.contains(']') => (name, Some(port)),
                    _ => (host, None),
                };
                if name.is_empty() {
                    return Err(format!("`{host}` has no host name"));
                }
                let port = match port {
                    Some(port) => port
                        .parse::<u16>()
                        .map_err(|_| format!("`{port}` in `{host}` is not a port number"))?,
                    None => default_port,
                };
                Ok(format!("{name}:{port}"))
            })
            .collect()
    }

    fn node_url(&self, host: &str, db: &str, query: &str) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let mut node = format!("{scheme}://{}{host}", self.userinfo);
        if !db.is_empty() {
            node.push('/');
            node.push_str(db);
        }
        if !query.is_empty() {
            node.push('?');
            node.push_str(query);
        }
        node
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert_eq!(Scheme::of("mem://"), Ok(Scheme::Memory));
        assert_eq!(
            Scheme::of("unix:///tmp/r.sock"),
            Ok(Scheme::Single { tls: false })
        );
        assert_eq!(
            Scheme::of("redis+cluster://a:1"),
            Ok(Scheme::Cluster { tls: false })
        );
        assert_eq!(
            Scheme::of("redis+sentinel://a:1/m"),
            Ok(Scheme::Sentinel { tls: false })
        );
        let tls = Scheme::of("rediss+cluster://a:1");
        assert_eq!(tls.is_ok(), cfg!(feature = "tls"), "{tls:?}");
        let error = Scheme::of("http://a").err().unwrap_or_default();
        assert!(
            error.contains("`redis://`") && error.contains("`mem://`"),
            "{error}"
        );
        assert!(Scheme::of("mem:").is_err_and(|error| error.contains("write `mem://`")));
        assert!(Scheme::of("redis:6379").is_err_and(|error| error.contains("`redis:` must")));
        assert!(Scheme::of("localhost").is_err_and(|error| error.starts_with("not a URL")));
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("redis://user:hunter2@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
        assert!(!redact("redis://:hunter2@ho st").contains("hunter2"));
        let socket = redact("redis+unix:///tmp/r.sock?user=alice&pass=hunter2&db=1");
        assert!(!socket.contains("hunter2"), "{socket}");
        assert!(socket.contains("db=1"), "{socket}");
    }

    #[test]
    fn redacts_multi_host_urls_and_keeps_their_hosts() {
        assert_eq!(
            redact("redis+cluster://user:hunter2@a:7000,b:7001?protocol=resp3"),
            "redis+cluster://user:***@a:7000,b:7001?protocol=resp3"
        );
        assert_eq!(
            redact("redis+sentinel://:p@ss@a:1,b:2/mymaster/2?sentinel_password=hunter2&x=1"),
            "redis+sentinel://:***@a:1,b:2/mymaster/2?sentinel_password=***&x=1"
        );
        assert_eq!(
            redact("redis+cluster://a:7000,b:7001"),
            "redis+cluster://a:7000,b:7001"
        );
        assert_eq!(redact("not a url"), "not a url");
        assert_eq!(redact("not a url?password=x"), "…");
        // A password with an unencoded `/` (the forms that once leaked are in
        // `tests/errors.rs`): hidden, the hosts kept.
        assert_eq!(
            redact("redis+cluster://u:hun/ter2@a:1,b:2"),
            "redis+cluster://u:***@a:1,b:2"
        );
    }

    #[test]
    fn cluster_urls() {
        let parsed = cluster("redis+cluster://u:p%40ss@a:7000,b,[::1]:7002?protocol=resp3")
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(
            parsed.nodes,
            [
                "redis://u:p%40ss@a:7000?protocol=resp3",
                "redis://u:p%40ss@b:6379?protocol=resp3",
                "redis://u:p%40ss@[::1]:7002?protocol=resp3",
            ]
        );
        assert_eq!(
            parsed.node("c:7005"),
            "redis://u:p%40ss@c:7005?protocol=resp3"
        );
        let tls = cluster("rediss+cluster://a:1").unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(tls.nodes, ["rediss://a:1"]);
        assert!(cluster("redis+cluster://a:1/2").is_err());
        assert!(cluster("redis+cluster://").is_err());
        assert!(cluster("redis+cluster://a:x").is_err());
        // A password's unencoded `/` or `?` is refused without naming what follows it.
        for url in [
            "redis+cluster://u:hun/ter2@a:1,b:2",
            "redis+cluster://u:hun?ter2@a:1,b:2",
        ] {
            let error = cluster(url).err().unwrap_or_default();
            assert!(
                error.contains("percent-encoded") && !error.contains("ter2"),
                "{error}"
            );
        }
        let error = sentinel("redis+sentinel://u:hun/ter2@a:1/mymaster")
            .err()
            .unwrap_or_default();
        assert!(
            error.contains("percent-encoded") && !error.contains("ter2"),
            "{error}"
        );
    }

    #[test]
    fn sentinel_urls() {
        let parsed = sentinel(
            "redis+sentinel://:secret@s1:1,s2/mymaster/2?sentinel_password=x%2Fy&protocol=resp3",
        )
        .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(
            parsed.sentinels,
            ["redis://:x%2Fy@s1:1", "redis://:x%2Fy@s2:26379"]
        );
        assert_eq!(parsed.service, "mymaster");
        assert_eq!(parsed.node, "redis://:secret@localhost/2?protocol=resp3");
        assert!(sentinel("redis+sentinel://s1:1").is_err());
        assert!(sentinel("redis+sentinel://s1:1/m/x").is_err());
        assert!(sentinel("redis+sentinel://s1:1/m/1/2").is_err());
    }
}
