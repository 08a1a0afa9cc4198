//! Real Redis servers for tests and benchmarks: a standalone [`Server`] and a
//! [`Cluster`] of three primaries (optionally with replicas, for failovers), started
//! from `redis-server` (Debian's `redis-server` package; see `scripts/setup.sh`) on
//! free loopback ports in temporary directories, and stopped when dropped. Nothing is
//! faked: a test that needs Redis starts one.

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(20);

fn free_port() -> io::Result<u16> {
    // A port whose cluster bus port (+10000) is free too.
    for _ in 0..100 {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    Err(io::Error::other("no free loopback port pair found"))
}

fn temp_dir(what: &str) -> io::Result<PathBuf> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "sciqlop-cache-redis-{what}-{}-{n}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn spawn(port: u16, dir: &Path, extra: &[&str]) -> io::Result<Child> {
    let log = std::fs::File::create(dir.join("redis.log"))?;
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    cmd.spawn().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot start redis-server ({e}): install it (`apt-get install redis-server`, as scripts/setup.sh does)"
            ),
        )
    })
}

fn ping(port: u16) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
        return false;
    };
    let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
        return false;
    };
    redis::cmd("PING").query::<String>(&mut c).is_ok()
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) -> io::Result<()> {
    let start = Instant::now();
    while !ok() {
        if start.elapsed() > START_TIMEOUT {
            return Err(io::Error::other(format!(
                "{what} not ready after {START_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Sends `signal` (a `kill` name: `STOP`, `CONT`, `KILL`) to process `pid`.
fn signal(pid: u32, signal: &str) -> io::Result<()> {
    let st = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()?;
    if st.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("kill -{signal} {pid} failed")))
    }
}

/// One `redis-server` on a loopback port, killed (and its directory removed) on drop.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

impl Server {
    /// Starts a standalone server.
    ///
    /// # Errors
    ///
    /// `redis-server` is missing or does not answer in time.
    pub fn start() -> io::Result<Self> {
        Self::start_with(&[])
    }

    /// Starts a standalone server with extra `redis-server` arguments (e.g.
    /// `["--requirepass", "pw"]`, `["--maxmemory", "2mb"]`).
    ///
    /// # Errors
    ///
    /// `redis-server` is missing or does not answer in time.
    pub fn start_with(extra: &[&str]) -> io::Result<Self> {
        let port = free_port()?;
        let dir = temp_dir("server")?;
        let mut s = Server {
            child: None,
            port,
            dir,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        s.launch()?;
        Ok(s)
    }

    fn launch(&mut self) -> io::Result<()> {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.child = Some(spawn(self.port, &self.dir, &extra)?);
        let port = self.port;
        let auth = self.extra.iter().any(|a| a == "--requirepass");
        let child = self.child.as_mut();
        let mut child = child;
        wait_until("redis-server", || {
            if let Some(c) = child.as_deref_mut()
                && let Ok(Some(_)) = c.try_wait()
            {
                return true;
            }
            if auth {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            } else {
                ping(port)
            }
        })?;
        if let Some(c) = self.child.as_mut()
            && let Ok(Some(st)) = c.try_wait()
        {
            let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
            return Err(io::Error::other(format!(
                "redis-server exited with {st}: {log}"
            )));
        }
        Ok(())
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0?namespace=NAMESPACE`.
    pub fn url(&self, namespace: &str) -> String {
        format!("redis://127.0.0.1:{}/0?namespace={namespace}", self.port)
    }

    /// The process id of the server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port (an empty one: nothing is saved).
    ///
    /// # Errors
    ///
    /// Those of [`start`](Self::start).
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.launch()
    }

    /// Freezes the server (SIGSTOP): it accepts connections and never answers.
    ///
    /// # Errors
    ///
    /// `kill` failed.
    pub fn pause(&self) -> io::Result<()> {
        self.pid().map_or(Ok(()), |p| signal(p, "STOP"))
    }

    /// Thaws a paused server (SIGCONT).
    ///
    /// # Errors
    ///
    /// `kill` failed.
    pub fn resume(&self) -> io::Result<()> {
        self.pid().map_or(Ok(()), |p| signal(p, "CONT"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.resume();
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three primaries (with or without replicas) on loopback ports,
/// made with `redis-cli --cluster create`; stopped on drop.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<Server>,
}

/// A connection to the server on `port` (127.0.0.1).
fn connection(port: u16) -> io::Result<redis::Connection> {
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{port}/")).map_err(io::Error::other)?;
    let c = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .map_err(io::Error::other)?;
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io::Error::other)?;
    Ok(c)
}

/// `INFO replication` of the server on `port`.
fn replication(port: u16) -> io::Result<String> {
    let mut c = connection(port)?;
    redis::cmd("INFO")
        .arg("replication")
        .query(&mut c)
        .map_err(io::Error::other)
}

impl Cluster {
    /// Starts three `--cluster-enabled yes` primaries and joins them.
    ///
    /// # Errors
    ///
    /// `redis-server` or `redis-cli` is missing, or the cluster is not ready in time.
    pub fn start() -> io::Result<Self> {
        Self::start_with_replicas(0)
    }

    /// Starts three primaries with `replicas` replicas each (`--cluster-replicas`), and
    /// waits until the cluster serves every slot and every replica is in sync with its
    /// primary. Nodes fail over after 2 s without an answer (`cluster-node-timeout`).
    ///
    /// # Errors
    ///
    /// `redis-server` or `redis-cli` is missing, or the cluster is not ready in time.
    pub fn start_with_replicas(replicas: usize) -> io::Result<Self> {
        let mut nodes = Vec::new();
        for _ in 0..3 * (1 + replicas) {
            nodes.push(Server::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ])?);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot run redis-cli ({e}): install redis-tools"),
                )
            })?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let cluster = Cluster { nodes };
        for n in &cluster.nodes {
            let port = n.port();
            wait_until("the cluster", || {
                let Ok(mut c) = connection(port) else {
                    return false;
                };
                redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query::<String>(&mut c)
                    .is_ok_and(|i| i.contains("cluster_state:ok"))
            })?;
            wait_until("a replica's sync", || {
                replication(port)
                    .is_ok_and(|i| i.contains("role:master") || i.contains("master_link_status:up"))
            })?;
            // Every node knows every slot's replicas (gossip takes a moment).
            wait_until("the cluster's view of its replicas", || {
                slot_ranges(port).is_ok_and(|r| {
                    !r.is_empty() && r.iter().all(|(_, _, nodes)| nodes.len() > replicas)
                })
            })?;
        }
        Ok(cluster)
    }

    /// `redis+cluster://127.0.0.1:P1,…?namespace=NAMESPACE` (every node).
    pub fn url(&self, namespace: &str) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        format!("redis+cluster://{}?namespace={namespace}", hosts.join(","))
    }

    /// The nodes.
    pub fn nodes(&mut self) -> &mut [Server] {
        &mut self.nodes
    }

    /// The node listening on `port`.
    pub fn node(&mut self, port: u16) -> Option<&mut Server> {
        self.nodes.iter_mut().find(|n| n.port() == port)
    }

    /// The port of the primary serving the slot of `key` now, and those of its
    /// replicas (`CLUSTER SLOTS`, asked of the first node that answers).
    ///
    /// # Errors
    ///
    /// No node answers, or none serves the slot.
    pub fn serving(&self, key: &str) -> io::Result<(u16, Vec<u16>)> {
        let mut last = io::Error::other("no node answered");
        for n in &self.nodes {
            match slot_nodes(n.port(), key) {
                Ok(r) => return Ok(r),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Promotes the replica on `port` with `CLUSTER FAILOVER` (a coordinated switch:
    /// the primary stops taking writes until the replica has all of them) and waits
    /// until it is a primary.
    ///
    /// # Errors
    ///
    /// The replica refuses, or is not a primary in time.
    pub fn failover(&self, port: u16) -> io::Result<()> {
        let mut c = connection(port)?;
        redis::cmd("CLUSTER")
            .arg("FAILOVER")
            .exec(&mut c)
            .map_err(io::Error::other)?;
        wait_until("the failover", || {
            replication(port).is_ok_and(|i| i.contains("role:master"))
        })
    }

    /// Waits until `replicas` replicas of the primary on `port` have every write it
    /// took so far (a write of `sync_key`, which must live on that primary, then
    /// `WAIT`).
    ///
    /// # Errors
    ///
    /// The primary does not answer, or fewer replicas acknowledge within 10 s.
    pub fn wait_replicated(&self, port: u16, sync_key: &str, replicas: usize) -> io::Result<()> {
        let mut c = connection(port)?;
        redis::cmd("SET")
            .arg(sync_key)
            .arg("1")
            .exec(&mut c)
            .map_err(io::Error::other)?;
        let acked: usize = redis::cmd("WAIT")
            .arg(replicas)
            .arg(10_000)
            .query(&mut c)
            .map_err(io::Error::other)?;
        if acked < replicas {
            return Err(io::Error::other(format!(
                "{acked} of {replicas} replicas acknowledged the writes within 10 s"
            )));
        }
        Ok(())
    }
}

/// The slot ranges of `CLUSTER SLOTS` as the node on `port` sees them: first slot, last
/// slot, and the ports serving it (the primary first).
fn slot_ranges(port: u16) -> io::Result<Vec<(i64, i64, Vec<u16>)>> {
    let mut c = connection(port)?;
    let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(&mut c)
        .map_err(io::Error::other)?;
    let int = |v: &redis::Value| match v {
        redis::Value::Int(i) => Some(*i),
        _ => None,
    };
    Ok(ranges
        .into_iter()
        .filter_map(|range| {
            let redis::Value::Array(parts) = range else {
                return None;
            };
            let lo = parts.first().and_then(int)?;
            let hi = parts.get(1).and_then(int)?;
            let ports = parts
                .iter()
                .skip(2)
                .filter_map(|n| match n {
                    redis::Value::Array(node) => node.get(1).and_then(int),
                    _ => None,
                })
                .filter_map(|p| u16::try_from(p).ok())
                .collect();
            Some((lo, hi, ports))
        })
        .collect())
}

/// `(primary, replicas)` serving the slot of `key`, as the node on `port` sees it.
fn slot_nodes(port: u16, key: &str) -> io::Result<(u16, Vec<u16>)> {
    let mut c = connection(port)?;
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query(&mut c)
        .map_err(io::Error::other)?;
    for (lo, hi, ports) in slot_ranges(port)? {
        if (lo..=hi).contains(&slot)
            && let Some((primary, replicas)) = ports.split_first()
        {
            return Ok((*primary, replicas.to_vec()));
        }
    }
    Err(io::Error::other(format!("no node serves slot {slot}")))
}
