//! Real Redis servers for tests and benchmarks: a standalone [`Server`] and a 3-node
//! [`Cluster`], started from `redis-server` (Debian's `redis-server` package; see
//! `scripts/setup.sh`) on free loopback ports in temporary directories, and stopped when
//! dropped. Nothing is faked: a test that needs Redis starts one.

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

/// A Redis Cluster of three primaries (no replicas) on loopback ports, made with
/// `redis-cli --cluster create`; stopped on drop.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<Server>,
}

impl Cluster {
    /// Starts three `--cluster-enabled yes` servers and joins them.
    ///
    /// # Errors
    ///
    /// `redis-server` or `redis-cli` is missing, or the cluster is not ready in time.
    pub fn start() -> io::Result<Self> {
        let mut nodes = Vec::new();
        for _ in 0..3 {
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
            .args(["--cluster-replicas", "0", "--cluster-yes"])
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
                let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
                    return false;
                };
                let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(200))
                else {
                    return false;
                };
                redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query::<String>(&mut c)
                    .is_ok_and(|i| i.contains("cluster_state:ok"))
            })?;
        }
        Ok(cluster)
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3?namespace=NAMESPACE`.
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
}
