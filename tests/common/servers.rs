//! Servers a test owns: a private MariaDB server or RabbitMQ node on free ports, in a temporary
//! directory, started and stopped (cleanly or by a crash) at will and removed on drop. The shared
//! broker (5672) and MariaDB (3306) serve every test running in parallel, so faults are only ever
//! done to servers of a test's own.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now (the OS picks it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// A server process owned by a test: started and stopped at will, on a data directory that
/// survives its restarts, killed and removed on drop.
pub struct PrivateServer {
    what: &'static str,
    pub dir: PathBuf,
    pub port: u16,
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    starts: u32,
}

impl PrivateServer {
    /// Start it and wait until its port accepts connections; `Err` says why it did not.
    pub fn start(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "{} already running", self.what);
        self.starts += 1;
        let log_path = self.dir.join(format!("server-{}.log", self.starts));
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.program))?;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if port_open(self.port) {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "{} exited ({status}) before listening on {}: {}",
                    self.what,
                    self.port,
                    tail(&log_path)
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not listen on {} within 90 s: {}",
                    self.what,
                    self.port,
                    tail(&log_path)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Send `sig` (TERM: a clean shutdown, KILL: a crash) and wait until the process is gone.
    pub fn stop(&mut self, sig: &str) {
        let mut child = self.child.take().expect("server running");
        signal(child.id(), sig);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(child.try_wait(), Ok(Some(_))) {
            if Instant::now() > deadline {
                let _ = child.kill();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The port must really be free before the restart binds it again.
        let deadline = Instant::now() + Duration::from_secs(30);
        while port_open(self.port) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(1500);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    text[start..].to_string()
}

pub fn which(program: &str, dirs: &[&str]) -> Option<String> {
    dirs.iter()
        .map(|d| format!("{d}/{program}"))
        .find(|p| Path::new(p).exists())
}

/// A RabbitMQ node of our own. The server script is run directly (not the root wrapper, which
/// would switch to the `rabbitmq` user) with `RUNNING_UNDER_SYSTEMD` so that it `exec`s the
/// Erlang VM: the child is the broker itself, and SIGTERM stops it cleanly (as `rabbitmqctl
/// stop` does). `HOME` holds the node's own Erlang cookie.
pub fn private_rabbitmq(id: &str) -> Result<PrivateServer, String> {
    let program = which("rabbitmq-server", &["/usr/lib/rabbitmq/bin"])
        .ok_or("no /usr/lib/rabbitmq/bin/rabbitmq-server on this machine")?;
    let dir = std::env::temp_dir().join(format!("ferry-rabbit-{id}"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let plugins = dir.join("enabled_plugins");
    std::fs::write(&plugins, "[].").map_err(|e| e.to_string())?;
    let port = free_port();
    let path = |p: &str| dir.join(p).display().to_string();
    let env = vec![
        ("HOME".to_string(), dir.display().to_string()),
        (
            "RABBITMQ_NODENAME".into(),
            format!("ferrytest{id}@localhost"),
        ),
        ("RABBITMQ_NODE_IP_ADDRESS".into(), "127.0.0.1".into()),
        ("RABBITMQ_NODE_PORT".into(), port.to_string()),
        ("RABBITMQ_DIST_PORT".into(), free_port().to_string()),
        ("RABBITMQ_MNESIA_BASE".into(), path("mnesia")),
        ("RABBITMQ_LOG_BASE".into(), path("log")),
        (
            "RABBITMQ_ENABLED_PLUGINS_FILE".into(),
            path("enabled_plugins"),
        ),
        ("RABBITMQ_CONFIG_FILE".into(), path("no-config")),
        (
            "RABBITMQ_ADVANCED_CONFIG_FILE".into(),
            path("no-advanced.config"),
        ),
        ("RABBITMQ_CONF_ENV_FILE".into(), path("no-env")),
        ("RUNNING_UNDER_SYSTEMD".into(), "1".into()),
    ];
    let mut server = PrivateServer {
        what: "private RabbitMQ",
        dir,
        port,
        program,
        args: Vec::new(),
        env,
        child: None,
        starts: 0,
    };
    server.start()?;
    Ok(server)
}

/// A MariaDB server of our own: a fresh data directory (root, empty password), bound to
/// 127.0.0.1 on a free port.
pub fn private_mariadb(id: &str) -> Result<PrivateServer, String> {
    private_mariadb_with(id, &["--skip-log-bin"])
}

/// [`private_mariadb`] started with `options` too (the binlog tests: `--log-bin=binlog`,
/// `--binlog-format=ROW`, `--server-id=1`).
pub fn private_mariadb_with(id: &str, options: &[&str]) -> Result<PrivateServer, String> {
    let mariadbd = which("mariadbd", &["/usr/sbin", "/usr/bin", "/usr/local/bin"])
        .ok_or("no mariadbd on this machine")?;
    let install = which("mariadb-install-db", &["/usr/bin", "/usr/local/bin"])
        .ok_or("no mariadb-install-db on this machine")?;
    let dir = std::env::temp_dir().join(format!("ferry-mariadb-{id}"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let data = dir.join("data");
    let out = Command::new(&install)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args([
            "--auth-root-authentication-method=normal",
            "--user=root",
            "--skip-test-db",
        ])
        .output()
        .map_err(|e| format!("cannot run {install}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{install} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let port = free_port();
    let args = vec![
        "--no-defaults".to_string(),
        format!("--datadir={}", data.display()),
        format!("--port={port}"),
        format!("--socket={}", dir.join("mariadb.sock").display()),
        format!("--pid-file={}", dir.join("mariadb.pid").display()),
        "--bind-address=127.0.0.1".into(),
        "--user=root".into(),
        "--innodb-buffer-pool-size=64M".into(),
        "--character-set-server=utf8mb4".into(),
        "--collation-server=utf8mb4_unicode_ci".into(),
    ];
    let args = args
        .into_iter()
        .chain(options.iter().map(|o| o.to_string()))
        .collect();
    let mut server = PrivateServer {
        what: "private MariaDB",
        dir,
        port,
        program: mariadbd,
        args,
        env: Vec::new(),
        child: None,
        starts: 0,
    };
    server.start()?;
    Ok(server)
}
