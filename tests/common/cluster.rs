//! A three-node RabbitMQ cluster of a test's own, on free ports, formed and faulted through
//! `scripts/cluster.sh` (the script users run to try a cluster): its own node names, data
//! directory and Erlang cookie, removed on drop (also when the test panics).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

pub struct Cluster {
    dir: PathBuf,
    /// The AMQP port of node 1, 2 and 3.
    pub ports: [u16; 3],
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/cluster.sh")
}

/// `n` ports nobody listens on now, all distinct (the listeners are held until every one is
/// picked).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("port").port())
        .collect()
}

impl Cluster {
    /// Start three nodes and join them; `Err` says why not (the test is then skipped).
    pub fn start(id: &str) -> Result<Cluster, String> {
        let dir = std::env::temp_dir().join(format!("ferry-cluster-{id}"));
        let ports = free_ports(6);
        let cluster = Cluster {
            dir,
            ports: [ports[0], ports[1], ports[2]],
        };
        let out = cluster
            .script(&["start"])
            .env("FERRY_CLUSTER_NAME", format!("ferrytest{id}n"))
            .env(
                "FERRY_CLUSTER_PORTS",
                format!("{} {} {}", ports[0], ports[1], ports[2]),
            )
            .env(
                "FERRY_CLUSTER_DIST_PORTS",
                format!("{} {} {}", ports[3], ports[4], ports[5]),
            )
            .output()
            .map_err(|e| format!("cannot run scripts/cluster.sh: {e}"))?;
        if !out.status.success() {
            return Err(text(&out));
        }
        eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
        Ok(cluster)
    }

    fn script(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(script())
            .args(args)
            .env("FERRY_CLUSTER_DIR", &self.dir);
        cmd
    }

    fn run(&self, args: &[&str]) -> Result<String, String> {
        let out = self
            .script(args)
            .output()
            .map_err(|e| format!("cannot run scripts/cluster.sh: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(text(&out))
        }
    }

    /// The AMQP URL of node `n` (1, 2 or 3).
    pub fn url(&self, n: usize) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.ports[n - 1])
    }

    /// The three URLs, node 1 first.
    pub fn urls(&self) -> Vec<String> {
        (1..=3).map(|n| self.url(n)).collect()
    }

    /// kill -9 node `n`, as a crash would.
    pub fn kill(&self, n: usize) {
        let said = self
            .run(&["kill", &n.to_string()])
            .unwrap_or_else(|e| panic!("kill node {n}: {e}"));
        eprintln!("{said}");
    }

    /// Start node `n` again; it rejoins the cluster from its data.
    pub fn start_node(&self, n: usize) {
        let said = self
            .run(&["start-node", &n.to_string()])
            .unwrap_or_else(|e| panic!("start node {n}: {e}"));
        eprintln!("{said}");
    }

    /// The node (1, 2 or 3) leading quorum queue `queue`.
    pub fn leader(&self, queue: &str) -> Result<usize, String> {
        let said = self.run(&["leader", queue])?;
        said.parse()
            .map_err(|_| format!("scripts/cluster.sh leader said {said:?}"))
    }

    /// Each node's state and the running members, as the script prints them.
    pub fn status(&self) -> String {
        self.run(&["status"]).unwrap_or_else(|e| e)
    }

    /// The node whose AMQP port is `port`.
    pub fn node_of_port(&self, port: u16) -> Option<usize> {
        self.ports.iter().position(|p| *p == port).map(|i| i + 1)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.script(&["destroy"]).output();
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}: {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
