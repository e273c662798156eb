//! The ops/s-vs-concurrency chart of BENCHMARKS.md, as SVG (no font files needed).

use std::path::Path;

use plotters::prelude::*;

use crate::measure::BenchResult;
use crate::report::Row;

const TYPED: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const RAW: RGBColor = RGBColor(0xff, 0x7f, 0x0e);

/// Draws ops/s against concurrent tasks for `get` (thick lines) and `set` (thin), typed in
/// blue and raw in orange, from the rows of those cases.
pub(crate) fn draw(path: &Path, rows: &[Row]) -> BenchResult<()> {
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = rows
        .iter()
        .filter(|r| matches!(r.case, "get" | "set"))
        .flat_map(|r| [r.typed, r.raw.unwrap_or(0.0)])
        .fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "typedkv vs hand-written redis-rs: ops/s by concurrent tasks",
            ("sans-serif", 22),
        )
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (1u32..90u32)
                .log_scale()
                .with_key_points(vec![1u32, 16, 64]),
            0f64..top * 1.1,
        )?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("concurrent tasks (log scale)")
        .y_desc("operations per second")
        .y_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
        .draw()?;
    for (case, marker) in [("get", 0), ("set", 1)] {
        let mut points: Vec<&Row> = rows.iter().filter(|r| r.case == case).collect();
        points.sort_by_key(|r| r.tasks);
        for (side, color) in [("typed", TYPED), ("raw", RAW)] {
            let series: Vec<(u32, f64)> = points
                .iter()
                .filter_map(|r| {
                    let value = if side == "typed" {
                        Some(r.typed)
                    } else {
                        r.raw
                    };
                    Some((u32::try_from(r.tasks).ok()?, value?))
                })
                .collect();
            let style = ShapeStyle::from(&color).stroke_width(if marker == 0 { 3 } else { 1 });
            chart
                .draw_series(LineSeries::new(series.clone(), style))?
                .label(format!("{case} {side}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
            chart.draw_series(
                series
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 4, color.filled())),
            )?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// The contenders of the peer chart: the row-name suffix, and its color.
const PEERS: [(&str, RGBColor); 6] = [
    ("redis-rs", RAW),
    ("redis-rs manager", RGBColor(0x8c, 0x56, 0x4b)),
    ("typed", TYPED),
    ("typed+batching", RGBColor(0x2c, 0xa0, 0x2c)),
    ("fred", RGBColor(0xd6, 0x27, 0x28)),
    ("fred pool4", RGBColor(0x94, 0x67, 0xbd)),
];

/// Draws ops/s against concurrent tasks (1 to 256) of every contender of the peer cases,
/// `get` thick and `set` thin; redis-rs' rates are the reference side of the typed rows.
pub(crate) fn draw_peers(path: &Path, rows: &[Row]) -> BenchResult<()> {
    let peer = |op: &str, name: &str| -> Vec<(u32, f64)> {
        let (case, reference) = match name {
            "redis-rs" => (format!("peer {op} typed"), true),
            _ => (format!("peer {op} {name}"), false),
        };
        let mut points: Vec<(u32, f64)> = rows
            .iter()
            .filter(|r| r.case == case)
            .filter_map(|r| {
                let value = if reference { r.raw? } else { r.typed };
                Some((u32::try_from(r.tasks).ok()?, value))
            })
            .collect();
        points.sort_by_key(|p| p.0);
        points
    };
    let top = ["get", "set"]
        .iter()
        .flat_map(|op| PEERS.iter().flat_map(move |(name, _)| peer(op, name)))
        .map(|p| p.1)
        .fold(1.0f64, f64::max);
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "typedkv, redis-rs and fred: ops/s by concurrent tasks",
            ("sans-serif", 22),
        )
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (1u32..300u32)
                .log_scale()
                .with_key_points(vec![1u32, 16, 64, 256]),
            0f64..top * 1.1,
        )?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("concurrent tasks (log scale)")
        .y_desc("operations per second")
        .y_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
        .draw()?;
    for (op, width) in [("get", 3), ("set", 1)] {
        for (name, color) in PEERS {
            let series = peer(op, name);
            let style = ShapeStyle::from(&color).stroke_width(width);
            chart
                .draw_series(LineSeries::new(series.clone(), style))?
                .label(format!("{op} {name}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
            chart.draw_series(
                series
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
            )?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
