//! `wrk` (Debian's package) as a closed-loop load generator in its own
//! process: one thread, N keep-alive connections, form POSTs whose bodies
//! come from a file, cycled.
//!
//! wrk counts only statuses from 400 up as errors, so the script counts
//! every answer other than 200 itself (a 3xx or 1xx fails a run too); that
//! costs a Lua call per response. Its `done` prints one line this module
//! parses instead of wrk's human-readable report.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::procfs;

/// Arguments: the Authorization header and the file of bodies. A single
/// body stays wrk's static request, without a Lua call per request.
const SCRIPT: &str = r#"
local bodies = {}
local next_body = 0

local function cycle()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Authorization"] = args[1]
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  for line in io.lines(args[2]) do
    bodies[#bodies + 1] = line
  end
  wrk.body = bodies[1]
  if #bodies > 1 then
    request = cycle
  end
end

not_200 = 0

function response(status, headers, body)
  if status ~= 200 then
    not_200 = not_200 + 1
  end
end

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  local all_not_200 = 0
  for _, thread in ipairs(threads) do
    all_not_200 = all_not_200 + thread:get("not_200")
  end
  local e = summary.errors
  io.write(string.format(
    "wrk-result requests=%d duration_us=%d not_200=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, all_not_200, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"#;

const RESULT_PREFIX: &str = "wrk-result ";

/// One kind of request against one server.
pub struct Load<'a> {
    pub url: &'a str,
    pub authorization: &'a str,
    /// Form bodies, sent in turn; none may contain a newline.
    pub bodies: &'a [String],
}

/// One run in which every answer was a 200.
#[derive(Debug, Clone)]
pub struct Run {
    /// Responses wrk read before its deadline; requests still in flight
    /// then are neither counted nor awaited.
    pub ok: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    /// wrk's CPU time over its wall time on all of the machine's cores.
    pub cpu_share: f64,
}

impl Run {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// `wrk -t1 -c{connections} -d{duration}`; an answer other than 200 or a
/// socket error is an error, with the counts.
pub fn run(load: &Load, connections: usize, duration: Duration) -> Result<Run, String> {
    let files = tempfile::tempdir().map_err(|e| e.to_string())?;
    let script = files.path().join("load.lua");
    let bodies = files.path().join("bodies");
    std::fs::write(&script, SCRIPT).map_err(|e| e.to_string())?;
    std::fs::write(&bodies, load.bodies.join("\n")).map_err(|e| e.to_string())?;
    let cpu_before = procfs::waited_children_cpu()?;
    let started = Instant::now();
    let output = Command::new("wrk")
        .arg("-t1")
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("-s")
        .arg(&script)
        .arg(load.url)
        .arg("--")
        .arg(load.authorization)
        .arg(&bodies)
        .output()
        .map_err(|e| format!("wrk: {e} (Debian: apt-get install wrk)"))?;
    let wall = started.elapsed();
    let cpu = procfs::waited_children_cpu()?.saturating_sub(cpu_before);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result = stdout
        .lines()
        .find_map(|line| line.strip_prefix(RESULT_PREFIX))
        .filter(|_| output.status.success())
        .ok_or_else(|| {
            format!(
                "wrk {}: {}\n{}",
                output.status,
                stdout.trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            )
        })?;
    let counts: HashMap<&str, u64> = result
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .filter_map(|(key, value)| Some((key, value.parse().ok()?)))
        .collect();
    let count = |key: &str| counts.get(key).copied().unwrap_or(0);
    let socket_errors = ["connect", "read", "write", "timeout"].map(|kind| (kind, count(kind)));
    if count("not_200") > 0 || socket_errors.iter().any(|(_, n)| *n > 0) {
        return Err(format!(
            "{} of {} answers were not 200; socket errors: {}",
            count("not_200"),
            count("requests"),
            socket_errors
                .map(|(kind, n)| format!("{kind} {n}"))
                .join(", ")
        ));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(Run {
        ok: count("requests"),
        elapsed: Duration::from_micros(count("duration_us")),
        p50: Duration::from_micros(count("p50_us")),
        p99: Duration::from_micros(count("p99_us")),
        cpu_share: cpu.as_secs_f64() / (wall.as_secs_f64() * cores as f64).max(1e-9),
    })
}
