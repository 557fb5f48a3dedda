//! The report of a benchmark suite: a markdown page with the machine, the command lines, the
//! figures against the targets, and two bar charts written as plain SVG (a few rectangles and
//! labels: no plotting library and no font stack needed, and the files diff well).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use crate::report::Summary;

/// One bar group: a label and its values.
struct Group {
    label: String,
    values: Vec<f64>,
}

/// How values map to bar heights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    Linear,
    /// Powers of ten: latencies span 1 ms to seconds, and one saturated run would flatten
    /// every other bar on a linear axis.
    Log,
}

/// A grouped bar chart as SVG. `series` names the bars of each group.
fn bars(title: &str, unit: &str, series: &[&str], groups: &[Group], kind: Scale) -> String {
    const W: f64 = 760.0;
    const H: f64 = 360.0;
    const LEFT: f64 = 70.0;
    const BOTTOM: f64 = 80.0;
    const TOP: f64 = 40.0;
    const COLORS: [&str; 4] = ["#3b5bdb", "#f08c00", "#c92a2a", "#2b8a3e"];
    let max = groups
        .iter()
        .flat_map(|g| g.values.iter().copied())
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let scale = nice_ceiling(max);
    let min_positive = groups
        .iter()
        .flat_map(|g| g.values.iter().copied())
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    // Decades shown on a log axis: from the one below the smallest value to the one above
    // the largest.
    let lo_exp = if min_positive.is_finite() {
        min_positive.log10().floor() as i32
    } else {
        0
    };
    let hi_exp = (max.log10().ceil() as i32).max(lo_exp + 1);
    let height = |value: f64, plot_h: f64| match kind {
        Scale::Linear => plot_h * value / scale,
        Scale::Log if value <= 0.0 => 0.0,
        Scale::Log => {
            plot_h * (value.log10() - f64::from(lo_exp)).max(0.0) / f64::from(hi_exp - lo_exp)
        }
    };
    let plot_h = H - TOP - BOTTOM;
    let plot_w = W - LEFT - 20.0;
    let group_w = plot_w / groups.len().max(1) as f64;
    let bar_w = (group_w * 0.8) / series.len().max(1) as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(svg, r##"<rect width="{W}" height="{H}" fill="#ffffff"/>"##);
    let _ = write!(
        svg,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    let ticks: Vec<(f64, f64)> = match kind {
        Scale::Linear => (0..=4)
            .map(|i| (scale * f64::from(i) / 4.0, f64::from(i) / 4.0))
            .collect(),
        Scale::Log => (lo_exp..=hi_exp)
            .map(|e| {
                (
                    10f64.powi(e),
                    f64::from(e - lo_exp) / f64::from(hi_exp - lo_exp),
                )
            })
            .collect(),
    };
    for (v, at) in ticks {
        let y = TOP + plot_h - plot_h * at;
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#dee2e6"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - 20.0,
            LEFT - 6.0,
            y + 4.0,
            short(v)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">{}</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        escape(unit)
    );
    for (gi, group) in groups.iter().enumerate() {
        let x0 = LEFT + group_w * gi as f64 + group_w * 0.1;
        for (si, value) in group.values.iter().enumerate() {
            let h = height(*value, plot_h);
            let x = x0 + bar_w * si as f64;
            let y = TOP + plot_h - h;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{} {}: {}</title></rect>"#,
                (bar_w - 2.0).max(1.0),
                COLORS[si % COLORS.len()],
                escape(&group.label),
                escape(series.get(si).copied().unwrap_or("")),
                short(*value)
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x0 + group_w * 0.4,
            TOP + plot_h + 18.0,
            escape(&group.label)
        );
    }
    for (si, name) in series.iter().enumerate() {
        let x = LEFT + 110.0 * si as f64;
        let y = H - 24.0;
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{y}">{}</text>"#,
            y - 10.0,
            COLORS[si % COLORS.len()],
            x + 16.0,
            escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The next "round" number at or above `v` (1, 2, 2.5, 5 × a power of ten).
fn nice_ceiling(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * p)
}

fn short(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.1}M", v / 1_000_000.0)
    } else if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn machine_memory() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map(|kib| format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0)))
        .unwrap_or_else(|| "unknown".into())
}

/// Reads `results/*.json` and `results/commands.txt`; writes `README.md`, `latency.svg` and
/// `throughput.svg` into `out`.
pub fn write(results: &Path, out: &Path) -> anyhow::Result<()> {
    let mut runs: BTreeMap<String, Summary> = BTreeMap::new();
    for entry in std::fs::read_dir(results).with_context(|| format!("{}", results.display()))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let text = std::fs::read_to_string(&path)?;
        let summary: Summary =
            serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
        runs.insert(name, summary);
    }
    anyhow::ensure!(!runs.is_empty(), "no results in {}", results.display());
    let commands = std::fs::read_to_string(results.join("commands.txt")).unwrap_or_default();

    let flowing: Vec<(&String, &Summary)> = runs.iter().filter(|(_, s)| s.deliveries > 0).collect();
    let latency = bars(
        "Latency, send to delivery (ms, log scale)",
        "milliseconds",
        &["p50", "p99", "p99.9"],
        &flowing
            .iter()
            // Persist counts rows, not deliveries to clients: it has no latency to show.
            .filter(|(_, s)| s.p50_ms > 0.0)
            .map(|(name, s)| Group {
                label: (*name).clone(),
                values: vec![s.p50_ms, s.p99_ms, s.p999_ms],
            })
            .collect::<Vec<_>>(),
        Scale::Log,
    );
    let throughput = bars(
        "Deliveries per second",
        "deliveries / s",
        &["deliveries/s"],
        &flowing
            .iter()
            .map(|(name, s)| Group {
                label: (*name).clone(),
                values: vec![s.deliveries_per_sec],
            })
            .collect::<Vec<_>>(),
        Scale::Linear,
    );
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("latency.svg"), latency)?;
    std::fs::write(out.join("throughput.svg"), throughput)?;

    let any = runs.values().next().cloned().unwrap_or_default();
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `scripts/bench` (the standard suite; `banter-bench --help` for every \
         scenario). Server and load generator run on the same machine, on loopback. Figures \
         are from one run: noisy, and never a test's pass or fail.\n"
    );
    let _ = writeln!(
        md,
        "Machine: {} × {} ({}), {} memory, {}.\n",
        any.machine.cpus,
        if any.machine.cpu_model.is_empty() {
            "CPU"
        } else {
            any.machine.cpu_model.as_str()
        },
        any.machine.os,
        machine_memory(),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|r| format!("Linux {}", r.trim()))
            .unwrap_or_default()
    );
    let _ = writeln!(
        md,
        "![latency](latency.svg)\n\n![throughput](throughput.svg)\n"
    );
    let _ = writeln!(
        md,
        "| run | scenario | connections | rooms × members | sends/s | deliveries/s | p50 ms | p99 ms | p99.9 ms | lost | dup | disorder | errors | drops | other |"
    );
    let _ = writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for (name, s) in &runs {
        let mut other = Vec::new();
        if let Some(r) = s.reconnects_per_sec {
            other.push(format!("{r:.0} reconnects/s"));
        }
        if let Some(r) = s.resume_p99_ms {
            other.push(format!("resume p99 {r:.1} ms"));
        }
        if let Some(l) = s.login_p99_ms {
            other.push(format!(
                "login p50 {:.0} / p99 {l:.0} ms",
                s.login_p50_ms.unwrap_or(0.0)
            ));
        }
        if let Some(b) = s.server_rss_per_connection_bytes {
            other.push(format!("{:.1} KiB RSS per connection", b / 1024.0));
        }
        if let Some(b) = s.server_rss_bytes {
            other.push(format!("server RSS {} MiB", b / (1 << 20)));
        }
        let _ = writeln!(
            md,
            "| {name} | {} ({}) | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} |",
            s.scenario,
            s.protocol,
            s.connections,
            match (s.rooms, s.members) {
                (Some(r), Some(m)) => format!("{r} × {m}"),
                _ => "—".into(),
            },
            s.send_rate.map(|r| format!("{r:.0}")).unwrap_or_else(|| "—".into()),
            s.deliveries_per_sec,
            s.p50_ms,
            s.p99_ms,
            s.p999_ms,
            s.lost,
            s.duplicated,
            s.out_of_order,
            s.errors,
            s.drops,
            other.join("; ")
        );
    }
    let _ = writeln!(md, "\n## Command lines\n\n```");
    for line in commands.lines() {
        let _ = writeln!(md, "{}", line.replacen('\t', ": ", 1));
    }
    let _ = writeln!(md, "```");
    // The hand-kept part: targets, what limits them, and each change's effect.
    if let Ok(notes) = std::fs::read_to_string(out.join("history.md")) {
        let _ = writeln!(md, "\n{}", notes.trim_end());
    }
    std::fs::write(out.join("README.md"), md)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_ceilings() {
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(180_000.0), 200_000.0);
        assert_eq!(nice_ceiling(2.2), 2.5);
    }

    #[test]
    fn a_chart_has_a_bar_per_value_and_escapes_labels() {
        let svg = bars(
            "t",
            "ms",
            &["a", "b"],
            &[
                Group {
                    label: "x<y".into(),
                    values: vec![1.0, 2.0],
                },
                Group {
                    label: "z".into(),
                    values: vec![3.0, 4.0],
                },
            ],
            Scale::Linear,
        );
        assert_eq!(
            svg.matches("<rect x=").count(),
            4 + 2,
            "4 bars and 2 legend keys"
        );
        assert!(svg.contains("x&lt;y"));
        assert!(svg.starts_with("<svg"));
    }

    #[test]
    fn a_log_chart_spans_decades_and_keeps_small_bars_visible() {
        let groups = [Group {
            label: "run".into(),
            values: vec![2.0, 2000.0],
        }];
        let svg = bars("t", "ms", &["p50", "p99"], &groups, Scale::Log);
        // Ticks at 1, 10, 100, 1000 and 10000 ms.
        for tick in [">1.00<", ">10.00<", ">100<", ">1000<", ">10k<"] {
            assert!(svg.contains(tick), "tick {tick} in {svg}");
        }
        let heights: Vec<f64> = svg
            .split("height=\"")
            .skip(2) // the text before the background's height, and the background's
            .filter_map(|rest| rest.split('"').next()?.parse().ok())
            .collect();
        // 2 ms is a visible bar, a quarter of the way up (log 2 of 4 decades), not a sliver.
        assert!(heights[0] > 15.0, "{heights:?}");
        assert!(heights[1] > heights[0] * 2.0, "{heights:?}");
    }
}
