//! Command line: `typedkv-bench [--secs N] [--rounds N] [--json] [--chart PATH]`.

use std::path::PathBuf;
use std::time::Duration;

/// What to run and how to report it.
#[derive(Debug, Clone)]
pub(crate) struct Args {
    /// Measuring time per case (split over the rounds, half typed, half raw).
    pub(crate) per_case: Duration,
    /// Interleaved rounds per case; the median is reported.
    pub(crate) rounds: usize,
    /// One JSON object per line on stdout instead of the table.
    pub(crate) json: bool,
    /// Where to write the ops/s-vs-tasks chart (SVG), if anywhere.
    pub(crate) chart: Option<PathBuf>,
    /// `RedisPool` shared connections of the typed store.
    pub(crate) shared_connections: usize,
    /// Run only the cases whose name starts with this.
    pub(crate) only: Option<String>,
    /// Peer cases: run only these contenders beside the reference (hand-written redis-rs).
    pub(crate) contenders: Option<Vec<String>>,
    /// Peer cases: run only at these task counts.
    pub(crate) tasks: Option<Vec<usize>>,
}

pub(crate) const USAGE: &str = "\
usage: typedkv-bench [--secs N] [--rounds N] [--json] [--chart PATH] [--shared-connections N]
                     [--only CASE] [--contenders A,B] [--tasks N,M]

  --secs N     seconds of measuring per case (default 3)
  --rounds N   interleaved typed/raw rounds per case, median reported (default 5)
  --json       print one JSON object per line instead of a table
  --chart PATH write an SVG chart of ops/s vs concurrent tasks
  --shared-connections N
               shared connections of the typed store's pool (default: the pool's default)
  --only CASE  run only the cases whose name starts with CASE (e.g. get_many, codec, get@,
               peer: typed (batching on, the default), typed unbatched, typed backend
               (the pool's byte-level calls), redis-rs, fred and the lean coalescer
               side by side (peer get, peer set: one operation);
               cluster: the same on a private 3+3 cluster;
               indexes set, indexes find_by: indexed writes (one equality index,
               one unique index) and find_by beside lean hand-written code, with
               client and server CPU per call;
               cluster indexes: an indexed store of 16 partitions against the same
               store hash-tagged onto one master, each beside hand-written redis-rs
               code for the same layout (lean tagged, lean partitioned), on a private
               3+3 cluster;
               transfer: a two-account transfer by typedkv::transaction beside
               hand-written redis-rs WATCH/MULTI (the reference), a Lua script, and
               the leanest code of typedkv's design in redis-rs and in fred,
               with client and server CPU per call;
               concern: a write acknowledged by one replica (WriteConcern) beside
               hand-written redis-rs SET+WAIT (the reference) and plain writes, on a
               private master with one replica;
               encryption, compression: the cost of values at rest)
  --contenders A,B
               peer and cluster cases: only these contenders (e.g. \"typed,lean
               coalescer\") beside the reference, hand-written redis-rs (to profile one)
  --tasks N,M  peer, cluster, indexed-write (set+), transfer and concern cases: only these
               task counts (of 1, 16, 64, 256; set+, transfer and concern run 1 and 64)

Uses the Redis at $REDIS_URL if set (its keys are prefixed typedkv-bench and removed
afterwards); otherwise starts a private redis-server on a free loopback port.";

impl Args {
    pub(crate) fn parse(mut words: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut args = Args {
            per_case: Duration::from_secs(3),
            rounds: 5,
            json: false,
            chart: None,
            shared_connections: typedkv::redis::DEFAULT_SHARED_CONNECTIONS,
            only: None,
            contenders: None,
            tasks: None,
        };
        while let Some(word) = words.next() {
            let mut value = |name: &str| words.next().ok_or(format!("{name} needs a value"));
            match word.as_str() {
                "--secs" => {
                    let secs: f64 = value("--secs")?
                        .parse()
                        .map_err(|e| format!("--secs: {e}"))?;
                    if !(secs > 0.0 && secs <= 3600.0) {
                        return Err("--secs must be between 0 and 3600".into());
                    }
                    args.per_case = Duration::from_secs_f64(secs);
                }
                "--rounds" => {
                    args.rounds = value("--rounds")?
                        .parse()
                        .map_err(|e| format!("--rounds: {e}"))?;
                    if args.rounds == 0 {
                        return Err("--rounds must be at least 1".into());
                    }
                }
                "--shared-connections" => {
                    args.shared_connections = value("--shared-connections")?
                        .parse()
                        .map_err(|e| format!("--shared-connections: {e}"))?;
                }
                "--only" => args.only = Some(value("--only")?),
                "--contenders" => {
                    let names = value("--contenders")?;
                    args.contenders = Some(names.split(',').map(|n| n.trim().to_owned()).collect());
                }
                "--tasks" => {
                    let counts = value("--tasks")?
                        .split(',')
                        .map(|n| n.trim().parse().map_err(|e| format!("--tasks: {e}")))
                        .collect::<Result<Vec<usize>, String>>()?;
                    if counts.contains(&0) {
                        return Err("--tasks: task counts start at 1".into());
                    }
                    args.tasks = Some(counts);
                }
                "--json" => args.json = true,
                "--chart" => args.chart = Some(PathBuf::from(value("--chart")?)),
                "--help" | "-h" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(args)
    }

    /// Whether the case named `case` is to run.
    pub(crate) fn runs(&self, case: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| case.starts_with(only.as_str()))
    }

    /// Whether the peer contender `name` is to run (the reference, the first, always runs).
    pub(crate) fn runs_contender(&self, index: usize, name: &str) -> bool {
        index == 0
            || self
                .contenders
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| n == name))
    }

    /// Whether the peer cases run at `tasks` concurrent tasks.
    pub(crate) fn runs_at(&self, tasks: usize) -> bool {
        self.tasks
            .as_ref()
            .is_none_or(|counts| counts.contains(&tasks))
    }

    /// Length of one side of one round.
    pub(crate) fn slice(&self) -> Duration {
        self.per_case / (2 * self.rounds as u32)
    }
}
