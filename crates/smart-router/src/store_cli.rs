//! `report` and `export`: the usage store read directly, for operators without the HTTP API.

use super::ReportFormat;
use anyhow::Result;
use router::admin::{EXPORT_COLUMNS, export_line};
use router::config::Config;
use router::time::parse_time_ms;
use router::usage::store::{self, Dimension, ReportQuery};
use std::io::Write;

fn range(from: Option<String>, to: Option<String>) -> Result<(i64, i64)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let to = to
        .as_deref()
        .map(parse_time_ms)
        .transpose()
        .map_err(anyhow::Error::msg)?
        .unwrap_or(now + 1);
    let from = from
        .as_deref()
        .map(parse_time_ms)
        .transpose()
        .map_err(anyhow::Error::msg)?
        .unwrap_or(to - 86_400_000);
    anyhow::ensure!(from <= to, "--from is after --to");
    Ok((from, to))
}

/// Prints a usage report.
pub(crate) async fn report(
    config: &Config,
    from: Option<String>,
    to: Option<String>,
    group_by: &str,
    format: ReportFormat,
) -> Result<()> {
    let store = store::open(&config.store.url)?;
    store.migrate().await?;
    let (from_ms, to_ms) = range(from, to)?;
    let q = ReportQuery {
        from_ms,
        to_ms,
        group_by: Dimension::parse_list(group_by).map_err(anyhow::Error::msg)?,
        caller: None,
    };
    let rows = store::report::run(store.as_ref(), &q).await?;
    let out = match format {
        ReportFormat::Json => store::render_json(&q, &rows) + "\n",
        ReportFormat::Csv => store::render_csv(&q, &rows),
        ReportFormat::Table => table(&q, &rows),
    };
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(())
}

/// An aligned text table.
fn table(q: &ReportQuery, rows: &[store::ReportRow]) -> String {
    let mut header: Vec<String> = q.group_by.iter().map(|d| d.name().to_string()).collect();
    header.extend(
        [
            "requests",
            "errors",
            "fallbacks",
            "input",
            "cached",
            "output",
            "cost_usd",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "ttft_p50",
        ]
        .map(String::from),
    );
    let mut lines = vec![header];
    for r in rows {
        let mut l: Vec<String> = q
            .group_by
            .iter()
            .map(|d| r.key.get(d.name()).cloned().unwrap_or_default())
            .collect();
        let m = &r.measures;
        l.extend([
            m.requests.to_string(),
            m.errors.to_string(),
            m.fallbacks.to_string(),
            m.input_tokens.to_string(),
            m.cached_tokens.to_string(),
            m.output_tokens.to_string(),
            format!("{:.4}", m.cost_usd),
            format!("{:.1}", r.latency_ms_p50),
            format!("{:.1}", r.latency_ms_p95),
            format!("{:.1}", r.latency_ms_p99),
            r.ttft_ms_p50.map_or("-".into(), |v| format!("{v:.1}")),
        ]);
        lines.push(l);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
        .collect();
    lines
        .iter()
        .map(|l| {
            l.iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
                + "\n"
        })
        .collect()
}

/// Streams records to stdout in constant memory.
pub(crate) async fn export(
    config: &Config,
    from: Option<String>,
    to: Option<String>,
    csv: bool,
) -> Result<()> {
    let store = store::open(&config.store.url)?;
    store.migrate().await?;
    let (from_ms, to_ms) = range(from, to)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let producer = tokio::spawn({
        let store = store.clone();
        async move { store.export(from_ms, to_ms, tx).await }
    });
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if csv {
        writeln!(out, "{}", EXPORT_COLUMNS.join(","))?;
    }
    while let Some(r) = rx.recv().await {
        out.write_all(export_line(&r?, csv).as_bytes())?;
    }
    out.flush()?;
    producer.await?;
    Ok(())
}
