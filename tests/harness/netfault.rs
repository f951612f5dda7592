//! Network faults on the traffic of one server's ports: packets held (latency), dropped at
//! random (loss) or all dropped (a partition), set up with the kernel's own packet filter
//! and removed when the handle drops, however the test ends.
//!
//! Why this mechanism. The usual tool, `tc` with a `netem` qdisc behind a `prio` qdisc and
//! `u32` filters, is not available everywhere these tests run: this machine's kernel (CI's
//! too) is built without `sch_netem` and `sch_prio` (only `htb`, `tbf` and `fifo`), and a
//! rate limit is no fixed delay. Its packet filter is complete, so each fault is a chain of
//! `iptables` rules (Debian's `iptables`, installed by `scripts/test`; the `nf_tables`
//! backend) on the `OUTPUT` hook, which every loopback packet crosses once:
//! - a partition: `-j DROP`, both directions (TCP retransmits until the link heals or the
//!   client gives up, as on a real network);
//! - loss: `-m statistic --mode random --probability p -j DROP` (each packet, each way);
//! - latency: `-j NFQUEUE`, and a thread of this process reads the queue over netlink and
//!   lets each packet go (`NF_ACCEPT`) once it has been held for the delay: a fixed delay
//!   per packet, each way, as netem's. The rule has `--queue-bypass`: a queue nobody reads
//!   (the test process died) lets packets through.
//!
//! Isolation. A fault matches TCP packets to or from its ports (`--dport`, `--sport`), so
//! tests on other servers, in parallel threads or other test binaries, are not disturbed.
//! A fault on one client only: [`NetFault::on_port_via`] matches the packets between a
//! server port and one more loopback address (`127.0.0.2`) the server also listens on,
//! which only the faulted client connects to.
//!
//! Clean-up. The rules of a fault live in a chain of their own, `RCNF-{pid}-{n}`, reached
//! from the common chain `REDIS_CACHED_NETFAULT` (created once, under a file lock, and left
//! in place empty). Each fault has a watchdog, a shell that removes its rules when its
//! standard input closes: when the handle drops (a test that panics drops it too), or when
//! the test process dies however it dies; it ignores the terminal's signals, so that a
//! Ctrl-C of `cargo test` still cleans up. The first fault of a process also removes the
//! chains of processes that no longer exist (a watchdog killed as well).
//!
//! A Cluster node. Its client port and its bus port cut the links others opened to it, but
//! not those it opened to the other nodes' bus ports (from a local port of no node): over
//! those its pings still arrive, and a node that hears from a peer never marks it failing,
//! so it would never be failed over. [`NetFault::isolating`] cuts those too: by their local
//! ports for the links open when the fault is made (read from `/proc`), and by a cgroup
//! (v2) of its own that the process is moved into (`-m cgroup --path`) for the links it
//! opens later, whose sockets belong to it.
//!
//! IPv4 only (the harness's servers listen on 127.0.0.1).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The chain every fault's chain is reached from, jumped to from `OUTPUT`.
const COMMON_CHAIN: &str = "REDIS_CACHED_NETFAULT";

/// The file lock taken while the common chain is created.
const LOCK_FILE: &str = "/tmp/redis-cached-netfault.lock";

/// Panics with what to do unless this process can set faults up: root, and `iptables`.
pub fn require() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false);
    assert!(
        root,
        "network fault tests set up packet filter rules: run them as root (CI does)"
    );
    let iptables = Command::new("iptables")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        iptables,
        "network fault tests need iptables: run scripts/test, which installs it, or \
         `apt-get install iptables`"
    );
}

/// A fault on the traffic of some server ports (all clients, or one: see
/// [`on_port_via`](Self::on_port_via)). Starts healed; [`delay`](Self::delay),
/// [`loss`](Self::loss) and [`partition`](Self::partition) each replace the fault in force,
/// [`heal`](Self::heal) lifts it; dropping the handle lifts it and removes its rules.
///
/// ```ignore
/// let fault = NetFault::on_port(server.port());
/// fault.delay(Duration::from_millis(200)); // each packet, each way
/// fault.heal();
/// fault.loss(5); // percent of packets, each way
/// fault.partition(); // loss 100 %
/// ```
pub struct NetFault {
    chain: String,
    /// What the fault's jumps match: `-p tcp --dport PORT`, ...
    matches: Vec<Vec<String>>,
    delayer: Mutex<Option<Delayer>>,
    watchdog: Option<(Child, ChildStdin)>,
}

impl NetFault {
    /// A fault on the TCP traffic to and from `port` on this machine.
    pub fn on_port(port: u16) -> NetFault {
        NetFault::on_ports(&[port])
    }

    /// A fault on the TCP traffic to and from each of `ports` (a Cluster node: its port
    /// and its bus port, `port + 10000`).
    pub fn on_ports(ports: &[u16]) -> NetFault {
        NetFault::new(port_matches(ports), None)
    }

    /// A fault on the TCP traffic between `port` and the clients that reach it at the
    /// loopback address `address` (`"127.0.0.2"`; the server must listen there too, as
    /// [`RedisServer::start_with`](super::RedisServer::start_with)`(&["--bind",
    /// "127.0.0.1", "127.0.0.2"])` does): the other clients, which connect to 127.0.0.1,
    /// are not faulted.
    pub fn on_port_via(port: u16, address: &str) -> NetFault {
        let matches = vec![
            args(&format!("-p tcp -d {address} --dport {port}")),
            args(&format!("-p tcp -s {address} --sport {port}")),
        ];
        NetFault::new(matches, None)
    }

    /// A fault that isolates the server process listening on 127.0.0.1:`port` (a Cluster
    /// node) and nothing else: its traffic on `port` and on each of `also` (its bus port,
    /// `port + 10000`), on the connections it opened itself (to the other nodes' bus ports:
    /// those open now by their local ports, those it opens later by a cgroup of its own,
    /// `-m cgroup`), so that a partitioned node neither hears nor reaches anyone. Needs a
    /// writable cgroup v2 hierarchy (`/proc/mounts`). A local port of a connection it closes
    /// meanwhile stays faulted, for whoever gets it next.
    pub fn isolating(port: u16, also: &[u16]) -> NetFault {
        require();
        let pid = listening_pid(port);
        let mut ports = vec![port];
        ports.extend(also);
        let mut matches = port_matches(&ports);
        matches.extend(port_matches(&outbound_ports(pid, &ports)));
        let cgroup = Cgroup {
            root: cgroup2_root(),
            name: String::new(),
            pid,
        };
        NetFault::new(matches, Some(cgroup))
    }

    fn new(mut matches: Vec<Vec<String>>, mut cgroup: Option<Cgroup>) -> NetFault {
        require();
        set_up_once();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let chain = format!(
            "RCNF-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        if let Some(cgroup) = &mut cgroup {
            cgroup.name = chain.clone();
            matches.push(args(&format!("-m cgroup --path {chain}")));
        }
        // The watchdog first: whatever is created after it is removed by it.
        let mut fault = NetFault {
            chain,
            matches,
            delayer: Mutex::new(None),
            watchdog: None,
        };
        fault.start_watchdog(cgroup.as_ref());
        if let Some(cgroup) = &cgroup {
            cgroup.enter();
        }
        iptables(&["-N", &fault.chain]);
        for matched in &fault.matches {
            let mut rule = vec!["-A", COMMON_CHAIN];
            rule.extend(matched.iter().map(String::as_str));
            rule.extend(["-j", &fault.chain]);
            iptables(&rule);
        }
        fault
    }

    /// The name of this fault's chain of rules (`RCNF-{pid}-{n}`), as `iptables -S` lists
    /// it.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// Holds each packet, each way, for `delay` before it goes on: a request and its reply
    /// take `2 × delay` more (a new connection's handshake too). A round trip past TCP's
    /// minimum retransmission timeout (200 ms) makes the sender retransmit: the copies are
    /// held too, and a round trip may take a backed-off timeout more.
    pub fn delay(&self, delay: Duration) {
        let mut delayer = self.delayer();
        let queue = match delayer.as_ref() {
            Some(running) => {
                running.set_delay(delay);
                running.queue
            }
            None => delayer.insert(Delayer::start(delay)).queue,
        };
        self.set_rule(&format!("-j NFQUEUE --queue-num {queue} --queue-bypass"));
    }

    /// Drops `percent` of the packets, each way, at random (`100`: a partition).
    pub fn loss(&self, percent: u32) {
        assert!(percent <= 100, "a loss of {percent} %");
        let probability = f64::from(percent) / 100.0;
        self.set_rule(&format!(
            "-m statistic --mode random --probability {probability} -j DROP"
        ));
        self.stop_delayer();
    }

    /// Drops every packet, each way: the server and its clients are cut off from each other
    /// (connections stay open on both sides; what is sent is retransmitted until it heals).
    pub fn partition(&self) {
        self.set_rule("-j DROP");
        self.stop_delayer();
    }

    /// Lifts the fault: packets pass again (those held by a delay go on at once).
    pub fn heal(&self) {
        iptables(&["-F", &self.chain]);
        self.stop_delayer();
    }

    /// The fault's chain holds `rule` alone.
    fn set_rule(&self, rule: &str) {
        iptables(&["-F", &self.chain]);
        let mut append = vec!["-A", &self.chain];
        let rule = args(rule);
        append.extend(rule.iter().map(String::as_str));
        iptables(&append);
    }

    fn delayer(&self) -> std::sync::MutexGuard<'_, Option<Delayer>> {
        self.delayer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stop_delayer(&self) {
        let delayer = self.delayer().take();
        drop(delayer);
    }

    /// A shell that removes this fault's rules once its stdin closes.
    fn start_watchdog(&mut self, cgroup: Option<&Cgroup>) {
        let mut script = String::from("trap '' INT TERM HUP; read _; ");
        for matched in &self.matches {
            script.push_str(&format!(
                "iptables -w -D {COMMON_CHAIN} {} -j {} 2>/dev/null; ",
                matched.join(" "),
                self.chain
            ));
        }
        script.push_str(&format!(
            "iptables -w -F {0} 2>/dev/null; iptables -w -X {0} 2>/dev/null; ",
            self.chain
        ));
        if let Some(cgroup) = cgroup {
            // Back to the root cgroup (if it still runs), then the cgroup goes.
            script.push_str(&format!(
                "echo {} > '{}/cgroup.procs' 2>/dev/null; rmdir '{}' 2>/dev/null; ",
                cgroup.pid,
                cgroup.root,
                cgroup.path()
            ));
        }
        script.push_str("echo done");
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh runs");
        let stdin = child.stdin.take().expect("piped stdin");
        self.watchdog = Some((child, stdin));
    }
}

impl Drop for NetFault {
    fn drop(&mut self) {
        if let Some((mut child, stdin)) = self.watchdog.take() {
            drop(stdin);
            // Waits until the rules are gone: the next test may count on the port's traffic.
            if let Some(stdout) = child.stdout.take() {
                let _ = BufReader::new(stdout).read_line(&mut String::new());
            }
            let _ = child.wait();
        }
        // After the rules: nothing is queued any more; what is held goes on.
        self.stop_delayer();
    }
}

/// The matches of the TCP traffic to and from each of `ports`.
fn port_matches(ports: &[u16]) -> Vec<Vec<String>> {
    ports
        .iter()
        .flat_map(|port| {
            [
                args(&format!("-p tcp --dport {port}")),
                args(&format!("-p tcp --sport {port}")),
            ]
        })
        .collect()
}

/// A cgroup (v2) of one faulted process, named as its fault's chain.
struct Cgroup {
    /// Where the cgroup v2 hierarchy is mounted.
    root: String,
    name: String,
    pid: u32,
}

impl Cgroup {
    fn path(&self) -> String {
        format!("{}/{}", self.root, self.name)
    }

    /// Creates the cgroup and moves the process into it: the sockets it creates from now
    /// on belong to it.
    fn enter(&self) {
        std::fs::create_dir_all(self.path()).expect("a cgroup of our own");
        std::fs::write(
            format!("{}/cgroup.procs", self.path()),
            self.pid.to_string(),
        )
        .expect("the process moved into the cgroup");
    }
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified`
/// beside v1 controllers).
fn cgroup2_root() -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(2) == Some(&"cgroup2")).then(|| fields[1].to_owned())
        })
        .expect("a cgroup v2 hierarchy mounted (/proc/mounts)")
}

/// The TCP sockets of IPv4 on this machine: (local port, remote port, state, inode).
fn tcp_sockets() -> Vec<(u16, u16, String, String)> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let port = |address: &str| {
        address
            .rsplit(':')
            .next()
            .and_then(|hex| u16::from_str_radix(hex, 16).ok())
            .unwrap_or(0)
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some((
                port(fields.get(1)?),
                port(fields.get(2)?),
                fields.get(3)?.to_string(),
                fields.get(9)?.to_string(),
            ))
        })
        .collect()
}

/// The socket inodes the process `pid` holds open.
fn socket_inodes(pid: &str) -> Vec<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect()
}

/// The process listening on TCP `port`.
fn listening_pid(port: u16) -> u32 {
    const LISTEN: &str = "0A";
    let inode = tcp_sockets()
        .into_iter()
        .find(|(local, _, state, _)| *local == port && state == LISTEN)
        .map(|(_, _, _, inode)| inode)
        .unwrap_or_else(|| panic!("nothing listens on port {port}"));
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| socket_inodes(&pid.to_string()).contains(&inode))
        .unwrap_or_else(|| panic!("no process holds the socket listening on {port}"))
}

/// The local ports of the connections the process `pid` opened (those whose local port is
/// none of its `own` ports).
fn outbound_ports(pid: u32, own: &[u16]) -> Vec<u16> {
    let inodes = socket_inodes(&pid.to_string());
    let mut ports: Vec<u16> = tcp_sockets()
        .into_iter()
        .filter(|(local, remote, _, inode)| {
            *remote != 0 && !own.contains(local) && inodes.contains(inode)
        })
        .map(|(local, ..)| local)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Splits a rule written as one string into `iptables`'s arguments.
fn args(rule: &str) -> Vec<String> {
    rule.split_whitespace().map(str::to_owned).collect()
}

/// Runs `iptables -w ARGS`, panicking with what it said if it fails.
fn iptables(arguments: &[&str]) {
    let output = Command::new("iptables")
        .arg("-w")
        .args(arguments)
        .output()
        .expect("iptables runs");
    assert!(
        output.status.success(),
        "iptables {}: {}",
        arguments.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Once per process: the common chain and its jump from `OUTPUT` (under a file lock, so
/// that two test processes do not both add the jump), and the removal of chains whose
/// process no longer exists.
fn set_up_once() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let script = format!(
            "iptables -w -N {COMMON_CHAIN} 2>/dev/null; \
             iptables -w -C OUTPUT -j {COMMON_CHAIN} 2>/dev/null \
             || iptables -w -I OUTPUT -j {COMMON_CHAIN}"
        );
        let status = Command::new("flock")
            .args([LOCK_FILE, "sh", "-c", &script])
            .status()
            .expect("flock runs");
        assert!(status.success(), "creating the chain {COMMON_CHAIN}");
        remove_abandoned();
    });
}

/// Removes the jumps to, and the chains of, faults whose process has exited.
fn remove_abandoned() {
    let Ok(output) = Command::new("iptables").args(["-w", "-S"]).output() else {
        return;
    };
    let listing = String::from_utf8_lossy(&output.stdout);
    let abandoned = |chain: &str| {
        chain
            .strip_prefix("RCNF-")
            .and_then(|rest| rest.split('-').next())
            .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
    };
    let mut chains = Vec::new();
    for line in listing.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["-N", chain] if abandoned(chain) => chains.push(chain.to_string()),
            ["-A", chain, rule @ ..]
                if *chain == COMMON_CHAIN
                    && rule.last().is_some_and(|target| abandoned(target)) =>
            {
                let mut delete = vec!["-w", "-D", COMMON_CHAIN];
                delete.extend(rule);
                let _ = Command::new("iptables").args(&delete).output();
            }
            _ => {}
        }
    }
    for chain in chains {
        let _ = Command::new("iptables").args(["-w", "-F", &chain]).output();
        let _ = Command::new("iptables").args(["-w", "-X", &chain]).output();
    }
    // Cgroups of isolated processes: theirs back to the root, then removed.
    let root = std::fs::read_to_string("/proc/mounts")
        .is_ok_and(|mounts| mounts.contains(" cgroup2 "))
        .then(cgroup2_root);
    let Some(Ok(entries)) = root.as_ref().map(std::fs::read_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if abandoned(&name) {
            let procs = std::fs::read_to_string(entry.path().join("cgroup.procs"));
            for pid in procs.unwrap_or_default().lines() {
                let _ = std::fs::write(
                    format!("{}/cgroup.procs", root.as_deref().unwrap_or("")),
                    pid,
                );
            }
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

/// A thread that reads an NFQUEUE and lets each packet go once it was held for the delay.
struct Delayer {
    queue: u16,
    delay_nanos: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Delayer {
    /// Binds a free queue number (tried from one this process's id picks) and starts the
    /// thread.
    fn start(delay: Duration) -> Delayer {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let first = (u64::from(std::process::id()) * 16) % 60000 + 1000;
        let (queue, socket) = (0..256)
            .find_map(|_| {
                let number = (first + NEXT.fetch_add(1, Ordering::Relaxed) % 4096) as u16;
                nfqueue::Queue::bind(number)
                    .ok()
                    .map(|socket| (number, socket))
            })
            .expect("a free NFQUEUE number");
        let delay_nanos = Arc::new(AtomicU64::new(delay.as_nanos() as u64));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let delay_nanos = delay_nanos.clone();
            let stop = stop.clone();
            std::thread::spawn(move || hold_packets(&socket, &delay_nanos, &stop))
        };
        Delayer {
            queue,
            delay_nanos,
            stop,
            thread: Some(thread),
        }
    }

    fn set_delay(&self, delay: Duration) {
        self.delay_nanos
            .store(delay.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Drop for Delayer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The delayer's loop: packets in arrival order, each let go when its time comes; on stop,
/// every packet held goes on.
fn hold_packets(queue: &nfqueue::Queue, delay_nanos: &AtomicU64, stop: &AtomicBool) {
    let mut held: std::collections::VecDeque<(Instant, u32)> = Default::default();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let now = Instant::now();
        while let Some(&(due, id)) = held.front() {
            if due > now && !stopping {
                break;
            }
            queue.accept(id);
            held.pop_front();
        }
        if stopping {
            return;
        }
        let wait = held
            .front()
            .map_or(Duration::from_millis(20), |(due, _)| {
                due.saturating_duration_since(now)
            })
            .min(Duration::from_millis(20));
        let delay = Duration::from_nanos(delay_nanos.load(Ordering::SeqCst));
        for id in queue.receive(&mut buffer, wait) {
            held.push_back((Instant::now() + delay, id));
        }
    }
}

/// The little of the `nfnetlink_queue` protocol the delayer needs, over a raw netlink
/// socket: bind a queue, read the ids of the packets queued, accept them.
mod nfqueue {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::Duration;

    const NFNL_SUBSYS_QUEUE: u16 = 3;
    const NFQNL_MSG_PACKET: u16 = 0;
    const NFQNL_MSG_VERDICT: u16 = 1;
    const NFQNL_MSG_CONFIG: u16 = 2;
    const NFQA_PACKET_HDR: u16 = 1;
    const NFQA_VERDICT_HDR: u16 = 2;
    const NFQA_CFG_CMD: u16 = 1;
    const NFQA_CFG_PARAMS: u16 = 2;
    const NFQA_CFG_MASK: u16 = 4;
    const NFQA_CFG_FLAGS: u16 = 5;
    const NFQNL_CFG_CMD_BIND: u8 = 1;
    const NFQNL_COPY_META: u8 = 1;
    /// A full queue lets packets through rather than dropping them.
    const NFQA_CFG_F_FAIL_OPEN: u32 = 1;
    const NF_ACCEPT: u32 = 1;
    const NLMSG_ERROR: u16 = 2;
    const NLM_F_REQUEST: u16 = 1;
    const NLM_F_ACK: u16 = 4;
    const NLMSG_HEADER: usize = 16;
    const NFGENMSG: usize = 4;

    /// A netlink socket bound to one queue number.
    pub struct Queue {
        socket: OwnedFd,
        number: u16,
    }

    impl Queue {
        /// Binds queue `number`, copying only the packets' metadata (their ids); fails if
        /// another socket has it.
        pub fn bind(number: u16) -> io::Result<Queue> {
            // SAFETY: plain socket(2); the descriptor is owned by the `OwnedFd` at once.
            let fd = unsafe {
                libc::socket(
                    libc::AF_NETLINK,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    libc::NETLINK_NETFILTER,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` is a fresh descriptor nothing else owns.
            let socket = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: a zeroed sockaddr_nl is valid; bind(2) reads `size_of` bytes of it.
            let bound = unsafe {
                let mut address: libc::sockaddr_nl = std::mem::zeroed();
                address.nl_family = libc::AF_NETLINK as libc::sa_family_t;
                libc::bind(
                    fd,
                    (&raw const address).cast(),
                    std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if bound < 0 {
                return Err(io::Error::last_os_error());
            }
            let buffer: libc::c_int = 4 << 20;
            // SAFETY: setsockopt(2) reads an int from a live local.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    (&raw const buffer).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
            let queue = Queue { socket, number };
            // struct nfqnl_msg_config_cmd { u8 command; u8 pad; be16 pf; }
            let mut command = vec![NFQNL_CFG_CMD_BIND, 0];
            command.extend((libc::AF_INET as u16).to_be_bytes());
            queue.configure(NFQA_CFG_CMD, &command)?;
            // struct nfqnl_msg_config_params { be32 copy_range; u8 copy_mode; } (packed)
            let mut params = 0u32.to_be_bytes().to_vec();
            params.push(NFQNL_COPY_META);
            queue.configure(NFQA_CFG_PARAMS, &params)?;
            let mut flags = NFQA_CFG_F_FAIL_OPEN.to_be_bytes().to_vec();
            flags.extend(NFQA_CFG_F_FAIL_OPEN.to_be_bytes());
            // Mask and flags in one message, as the kernel wants them.
            queue.configure_pair((NFQA_CFG_MASK, &flags[..4]), (NFQA_CFG_FLAGS, &flags[4..]))?;
            Ok(queue)
        }

        fn configure(&self, attribute: u16, payload: &[u8]) -> io::Result<()> {
            let mut message = self.header(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK);
            push_attribute(&mut message, attribute, payload);
            self.send(message)?;
            self.acknowledged()
        }

        fn configure_pair(&self, first: (u16, &[u8]), second: (u16, &[u8])) -> io::Result<()> {
            let mut message = self.header(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK);
            push_attribute(&mut message, first.0, first.1);
            push_attribute(&mut message, second.0, second.1);
            self.send(message)?;
            self.acknowledged()
        }

        /// A message's netlink and nfgenmsg headers (its length filled in by `send`).
        fn header(&self, kind: u16, flags: u16) -> Vec<u8> {
            let mut message = Vec::with_capacity(64);
            message.extend(0u32.to_ne_bytes());
            message.extend(((NFNL_SUBSYS_QUEUE << 8) | kind).to_ne_bytes());
            message.extend(flags.to_ne_bytes());
            message.extend(0u32.to_ne_bytes()); // sequence
            message.extend(0u32.to_ne_bytes()); // port id: the kernel's
            message.extend([libc::AF_UNSPEC as u8, 0]);
            message.extend(self.number.to_be_bytes());
            message
        }

        fn send(&self, mut message: Vec<u8>) -> io::Result<()> {
            let length = message.len() as u32;
            message[..4].copy_from_slice(&length.to_ne_bytes());
            // SAFETY: send(2) reads `message.len()` bytes of a live buffer.
            let sent = unsafe {
                libc::send(
                    self.socket.as_raw_fd(),
                    message.as_ptr().cast(),
                    message.len(),
                    0,
                )
            };
            if sent < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }

        /// Reads the kernel's answer to a request sent with `NLM_F_ACK`.
        fn acknowledged(&self) -> io::Result<()> {
            let mut buffer = [0u8; 4096];
            let read = self.read(&mut buffer, Duration::from_secs(1))?;
            let message = &buffer[..read];
            if read >= NLMSG_HEADER + 4 && kind(message) == NLMSG_ERROR {
                let code = i32::from_ne_bytes(message[16..20].try_into().unwrap_or_default());
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(-code));
                }
                return Ok(());
            }
            Err(io::Error::other("no acknowledgement from nfnetlink_queue"))
        }

        /// Waits at most `wait` for what the kernel sends; the bytes read (0: nothing).
        fn read(&self, buffer: &mut [u8], wait: Duration) -> io::Result<usize> {
            let mut poll = libc::pollfd {
                fd: self.socket.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let millis = wait.as_millis().clamp(1, 1000) as libc::c_int;
            // SAFETY: poll(2) on one live pollfd.
            let ready = unsafe { libc::poll(&raw mut poll, 1, millis) };
            if ready <= 0 {
                return Ok(0);
            }
            // SAFETY: recv(2) writes at most `buffer.len()` bytes into a live buffer.
            let read = unsafe {
                libc::recv(
                    self.socket.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    0,
                )
            };
            if read < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(read as usize)
        }

        /// The ids of the packets queued, waiting at most `wait` for the first (an error,
        /// `ENOBUFS` after an overflow, reads as none: a full queue lets packets through).
        pub fn receive(&self, buffer: &mut [u8], wait: Duration) -> Vec<u32> {
            let read = self.read(buffer, wait).unwrap_or(0);
            let mut ids = Vec::new();
            let mut rest = &buffer[..read];
            while rest.len() >= NLMSG_HEADER {
                let length = u32::from_ne_bytes(rest[..4].try_into().unwrap_or_default()) as usize;
                if length < NLMSG_HEADER || length > rest.len() {
                    break;
                }
                let message = &rest[..length];
                if kind(message) == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET
                    && let Some(id) = packet_id(&message[NLMSG_HEADER + NFGENMSG..])
                {
                    ids.push(id);
                }
                rest = &rest[align(length).min(rest.len())..];
            }
            ids
        }

        /// Lets packet `id` go on.
        pub fn accept(&self, id: u32) {
            let mut message = self.header(NFQNL_MSG_VERDICT, NLM_F_REQUEST);
            let mut verdict = NF_ACCEPT.to_be_bytes().to_vec();
            verdict.extend(id.to_be_bytes());
            push_attribute(&mut message, NFQA_VERDICT_HDR, &verdict);
            // A verdict that cannot be sent leaves the packet to the queue's end: it goes
            // when the socket closes.
            let _ = self.send(message);
        }
    }

    fn kind(message: &[u8]) -> u16 {
        u16::from_ne_bytes([message[4], message[5]])
    }

    fn align(length: usize) -> usize {
        (length + 3) & !3
    }

    fn push_attribute(message: &mut Vec<u8>, kind: u16, payload: &[u8]) {
        message.extend(((4 + payload.len()) as u16).to_ne_bytes());
        message.extend(kind.to_ne_bytes());
        message.extend(payload);
        message.resize(align(message.len()), 0);
    }

    /// `NFQA_PACKET_HDR`'s packet id among a packet message's attributes.
    fn packet_id(mut attributes: &[u8]) -> Option<u32> {
        while attributes.len() >= 4 {
            let length = u16::from_ne_bytes([attributes[0], attributes[1]]) as usize;
            let kind = u16::from_ne_bytes([attributes[2], attributes[3]]) & 0x7fff;
            if length < 4 || length > attributes.len() {
                return None;
            }
            if kind == NFQA_PACKET_HDR && length >= 8 {
                return Some(u32::from_be_bytes(attributes[4..8].try_into().ok()?));
            }
            attributes = &attributes[align(length).min(attributes.len())..];
        }
        None
    }
}
