//! A TLS-enabled `redis-server` whose certificates are made with the `openssl` CLI: a CA and
//! a leaf for `127.0.0.1`/`localhost` signed by it, and an unrelated second CA.

use super::{RedisServer, TempDir, free_port, server_binary};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A CA, a server certificate it signed, and an unrelated second CA, in a directory of their
/// own that is removed on drop.
pub struct Certs {
    dir: TempDir,
}

const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
x509_extensions = ca
[dn]
CN = redis-cached test CA
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

impl Certs {
    fn generate() -> Certs {
        let certs = Certs {
            dir: TempDir::new("tls"),
        };
        std::fs::write(certs.path("openssl.cnf"), OPENSSL_CONFIG).expect("writes the config");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for ca in ["ca", "other-ca"] {
            certs.openssl(&[
                &["req", "-x509", "-config", "openssl.cnf"],
                &ec[..],
                &[
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.pem"),
                    "-days",
                    "2",
                ],
            ]);
        }
        certs.openssl(&[
            &["req", "-new", "-config", "openssl.cnf"],
            &ec[..],
            &[
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        ]);
        certs.openssl(&[&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "2",
            "-days",
            "2",
            "-extfile",
            "openssl.cnf",
            "-extensions",
            "leaf",
            "-out",
            "server.pem",
        ]]);
        certs
    }

    fn openssl(&self, args: &[&[&str]]) {
        let args: Vec<&str> = args.concat();
        let output = Command::new("openssl")
            .args(&args)
            .current_dir(self.dir.path())
            .output()
            .expect("openssl runs; is it installed? run scripts/test");
        assert!(
            output.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// A file of the directory: `ca.pem`, `ca.key`, `other-ca.pem`, `server.pem`, ...
    pub fn pem(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.path(file)).expect("a generated PEM file")
    }
}

/// A redis-server with a plain port (the harness's) and a TLS port.
pub struct TlsServer {
    // Dropped first: the server stops before its certificates are removed.
    pub server: RedisServer,
    pub tls_port: u16,
    pub certs: Certs,
}

impl TlsServer {
    /// The server, or `None` (the skip said why) when this server binary has no TLS.
    pub fn start(test: &str) -> Option<TlsServer> {
        if let Some(reason) = tls_unsupported() {
            super::skip(test, reason);
            return None;
        }
        let certs = Certs::generate();
        let tls_port = free_port();
        let path = |file: &str| path_text(&certs.path(file));
        let server = RedisServer::start_with(&[
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            &path("server.pem"),
            "--tls-key-file",
            &path("server.key"),
            "--tls-ca-cert-file",
            &path("ca.pem"),
            "--tls-auth-clients",
            "no",
        ]);
        super::wait_for_port(tls_port);
        Some(TlsServer {
            server,
            tls_port,
            certs,
        })
    }

    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port)
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        self.certs.pem("ca.pem")
    }

    /// A CA that did not sign the server's certificate.
    pub fn other_ca_pem(&self) -> Vec<u8> {
        self.certs.pem("other-ca.pem")
    }

    /// A plain connection on the plain port, to look at what the cache wrote.
    pub async fn plain(&self) -> redis::aio::MultiplexedConnection {
        self.server.connection().await
    }
}

fn path_text(path: &std::path::Path) -> String {
    path.to_str().expect("a UTF-8 temp path").to_owned()
}

/// Why the server binary cannot serve TLS, or `None` when it can; checked once. The binary
/// is started with a TLS port and no certificate: a build with TLS refuses for lack of the
/// certificate (its output names `tls-cert-file`); one without refuses the port itself
/// (Redis 6.2 from a wheel: "Bad directive"; Valkey: "Failed finding TLS support").
pub fn tls_unsupported() -> Option<&'static str> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    REASON
        .get_or_init(|| {
            let output = Command::new(server_binary())
                .args(["--port", "0", "--save", "", "--tls-port"])
                .arg(free_port().to_string())
                .stdin(Stdio::null())
                .output()
                .expect("the server binary runs");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            if text.contains("tls-cert-file") {
                return None;
            }
            let last = text
                .lines()
                .map(str::trim)
                .rfind(|line| !line.is_empty())
                .unwrap_or("no output");
            // Without the log line's pid, role and time: `... # Failed finding TLS support.`
            let last = last.split_once(" # ").map_or(last, |(_, said)| said);
            Some(format!("this server is built without TLS ({last})"))
        })
        .as_deref()
}
