//! The summary of a run: printed, and written as JSON with `--json`.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::cli::Common;

/// What a scenario measured. Fields that do not apply to a scenario stay `None` and are left
/// out of the JSON.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    pub scenario: String,
    pub protocol: String,
    pub connections: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rooms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_bytes: Option<u64>,
    pub duration_s: f64,
    pub sent: u64,
    pub acked: u64,
    pub deliveries: u64,
    pub deliveries_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub errors: u64,
    pub drops: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnects: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnects_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume_p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logins: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_rss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_rss_per_connection_bytes: Option<f64>,
    /// The server process's CPU time (user and system) per million deliveries in the
    /// measured window: "faster" is also "cheaper" only if this is lower.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_s_per_million: Option<f64>,
    pub machine: Machine,
}

/// Where the figures come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Machine {
    pub cpus: usize,
    pub os: String,
    pub cpu_model: String,
}

impl Default for Machine {
    fn default() -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_owned())
            })
            .unwrap_or_default();
        Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            os: std::env::consts::OS.to_owned(),
            cpu_model,
        }
    }
}

/// Milliseconds at `q` of a histogram of microseconds.
pub fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Fills the latency fields from a histogram of microseconds.
pub fn latency(summary: &mut Summary, h: &Histogram<u64>) {
    summary.p50_ms = ms(h, 0.5);
    summary.p99_ms = ms(h, 0.99);
    summary.p999_ms = ms(h, 0.999);
    summary.max_ms = if h.is_empty() {
        0.0
    } else {
        h.max() as f64 / 1000.0
    };
}

/// Resident memory of a process, from /proc.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time a process has used so far (user and system), in seconds, from /proc.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports them in clock ticks of USER_HZ, 100 on every architecture banter runs on.
    Some(ticks as f64 / 100.0)
}

/// Prints the summary and writes it where `--json` says.
pub fn finish(common: &Common, summary: &Summary) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(summary)?;
    println!("{json}");
    if let Some(path) = &common.json {
        std::fs::write(path, format!("{json}\n"))?;
        eprintln!("summary written to {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_process_can_read_its_own_cpu_time() {
        let pid = std::process::id();
        let before = super::cpu_seconds(pid).expect("this process has a /proc entry");
        // Burn a little CPU: the figure only grows.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = super::cpu_seconds(pid).expect("still there");
        assert!(after >= before, "{before} → {after}");
        assert!(super::cpu_seconds(u32::MAX).is_none(), "no such process");
    }
}
