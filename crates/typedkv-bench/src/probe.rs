//! Where the time goes during a measured slice, read from `/proc` and the servers' `INFO`:
//! client CPU (this process), server CPU (the `redis-server` processes, summed: one, or every
//! node of a cluster), the hypervisor's steal over the whole machine, and how many commands
//! the servers ran per read of a socket.
//!
//! Linux only; elsewhere (or for a server on another machine) the figures it cannot read are
//! `NaN`. CPU times are in clock ticks of 10 ms (`USER_HZ` is 100 on every Linux this bench
//! targets), so a slice needs a few seconds for µs-per-call figures to mean anything.

use redis::aio::MultiplexedConnection;
use typedkv_testkit::TestCluster;

use crate::measure::BenchResult;

/// Rounds whose steal exceeds this share of the machine's time are dropped from medians.
pub(crate) const MAX_STEAL: f64 = 0.10;

/// Microseconds per clock tick of `/proc/*/stat` (`USER_HZ` = 100).
const TICK_US: f64 = 10_000.0;

/// Counters at one instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    client_ticks: Option<u64>,
    server_ticks: Option<u64>,
    /// `(steal, total)` ticks of all CPUs.
    machine: Option<(u64, u64)>,
    /// `(total_commands_processed, total_reads_processed)` of the servers.
    server_stats: Option<(u64, u64)>,
}

/// What happened between two snapshots (or over several such spans, [`Usage::plus`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    /// Client CPU, µs.
    pub(crate) client_us: f64,
    /// Server CPU, µs (all servers).
    pub(crate) server_us: f64,
    /// Share of the machine's time stolen by the hypervisor (0..1); the highest of the spans.
    pub(crate) steal: f64,
    /// Commands the servers ran.
    commands: f64,
    /// Reads of a socket by the servers.
    reads: f64,
}

impl Usage {
    /// Both spans together.
    pub(crate) fn plus(&self, other: &Usage) -> Usage {
        Usage {
            client_us: self.client_us + other.client_us,
            server_us: self.server_us + other.server_us,
            steal: self.steal.max(other.steal),
            commands: self.commands + other.commands,
            reads: self.reads + other.reads,
        }
    }

    /// Commands the server ran per read of a socket: how much each read carried.
    pub(crate) fn commands_per_read(&self) -> f64 {
        self.commands / self.reads
    }
}

/// Where to read the servers' counters: per server, its pid (from `INFO server`, `None` if
/// it is not a process of this machine) and a connection for `INFO stats`.
#[derive(Clone)]
pub(crate) struct Probe {
    servers: Vec<(Option<u32>, MultiplexedConnection)>,
}

impl Probe {
    /// A probe of the server behind `conn`. `local`: the server runs on this machine, so its
    /// pid names its process.
    pub(crate) async fn new(conn: MultiplexedConnection, local: bool) -> BenchResult<Probe> {
        Probe::of_servers(vec![conn], local).await
    }

    /// A probe of the servers behind `conns` (every node of a cluster), their figures summed.
    pub(crate) async fn of_servers(
        conns: Vec<MultiplexedConnection>,
        local: bool,
    ) -> BenchResult<Probe> {
        let mut servers = Vec::with_capacity(conns.len());
        for mut conn in conns {
            let info: String = redis::cmd("INFO")
                .arg("server")
                .query_async(&mut conn)
                .await?;
            let pid = local
                .then(|| field(&info, "process_id"))
                .flatten()
                .and_then(|pid| u32::try_from(pid).ok());
            servers.push((pid, conn));
        }
        Ok(Probe { servers })
    }

    /// A probe of every node of the bench's private `cluster`.
    pub(crate) async fn of_cluster(cluster: &TestCluster) -> BenchResult<Probe> {
        let mut nodes = Vec::new();
        for port in cluster.ports() {
            nodes.push(cluster.node_connection(port).await);
        }
        Probe::of_servers(nodes, true).await
    }

    /// The counters now.
    pub(crate) async fn snapshot(&self) -> Snapshot {
        let mut server_ticks = Some(0);
        let mut server_stats = Some((0, 0));
        for (pid, conn) in &self.servers {
            let ticks = pid.and_then(|pid| process_ticks(&pid.to_string()));
            server_ticks = server_ticks.zip(ticks).map(|(sum, t)| sum + t);
            let info: Option<String> = redis::cmd("INFO")
                .arg("stats")
                .query_async(&mut conn.clone())
                .await
                .ok();
            let stats = info.as_deref().and_then(|info| {
                Some((
                    field(info, "total_commands_processed")?,
                    field(info, "total_reads_processed")?,
                ))
            });
            server_stats = server_stats
                .zip(stats)
                .map(|((c, r), (dc, dr))| (c + dc, r + dr));
        }
        Snapshot {
            client_ticks: process_ticks("self"),
            server_ticks,
            machine: machine_ticks(),
            server_stats,
        }
    }
}

impl Snapshot {
    /// What happened from `self` to `later`. The two `INFO stats` calls count themselves (one
    /// command, one read each): negligible beside a slice's calls.
    pub(crate) fn until(&self, later: &Snapshot) -> Usage {
        let delta = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64,
            _ => f64::NAN,
        };
        let steal = match (self.machine, later.machine) {
            (Some((s0, t0)), Some((s1, t1))) if t1 > t0 => {
                s1.saturating_sub(s0) as f64 / (t1 - t0) as f64
            }
            _ => f64::NAN,
        };
        let commands = |stats: Option<(u64, u64)>| stats.map(|(commands, _)| commands);
        let reads = |stats: Option<(u64, u64)>| stats.map(|(_, reads)| reads);
        Usage {
            client_us: delta(self.client_ticks, later.client_ticks) * TICK_US,
            server_us: delta(self.server_ticks, later.server_ticks) * TICK_US,
            steal,
            commands: delta(commands(self.server_stats), commands(later.server_stats)),
            reads: delta(reads(self.server_stats), reads(later.server_stats)),
        }
    }
}

/// A numeric `name:value` line of an `INFO` reply.
fn field(info: &str, name: &str) -> Option<u64> {
    info.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then(|| value.trim().parse().ok()).flatten()
    })
}

/// utime + stime of `/proc/{pid}/stat`, in ticks.
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it start at the state (3).
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `(steal, total)` ticks of the `cpu` line of `/proc/stat`.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice, counted in user]
    let total = ticks.iter().take(8).sum();
    Some((*ticks.get(7)?, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_fields_are_read_by_name() {
        let info = "# Stats\r\ntotal_commands_processed:42\r\ntotal_reads_processed:7\r\n";
        assert_eq!(field(info, "total_commands_processed"), Some(42));
        assert_eq!(field(info, "total_reads_processed"), Some(7));
        assert_eq!(field(info, "missing"), None);
    }

    #[test]
    fn this_process_has_cpu_ticks() {
        if cfg!(target_os = "linux") {
            assert!(process_ticks("self").is_some());
            assert!(machine_ticks().is_some());
        }
    }
}
