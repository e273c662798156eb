//! The ops/s-vs-concurrency charts of BENCHMARKS.md, as SVG (no font files needed).

use std::path::Path;

use plotters::prelude::*;

use crate::measure::BenchResult;
use crate::report::Row;

const TYPED: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const RAW: RGBColor = RGBColor(0xff, 0x7f, 0x0e);

/// The contenders of the peer chart: the row-name suffix, and its color.
const PEERS: [(&str, RGBColor); 6] = [
    ("redis-rs", RAW),
    ("redis-rs manager", RGBColor(0x8c, 0x56, 0x4b)),
    ("typed", TYPED),
    ("typed unbatched", RGBColor(0x2c, 0xa0, 0x2c)),
    ("fred", RGBColor(0xd6, 0x27, 0x28)),
    ("fred pool4", RGBColor(0x94, 0x67, 0xbd)),
];

/// One line of a chart: its legend, color, width, and (tasks, ops/s) points.
struct Line {
    label: String,
    color: RGBColor,
    width: u32,
    points: Vec<(u32, f64)>,
}

/// The points of the rows named `case`: (tasks, typed rate), or the raw rate if `raw`.
fn points(rows: &[Row], case: &str, raw: bool) -> Vec<(u32, f64)> {
    let mut points: Vec<(u32, f64)> = rows
        .iter()
        .filter(|r| r.case == case)
        .filter_map(|r| {
            let value = if raw { r.raw? } else { r.typed };
            Some((u32::try_from(r.tasks).ok()?, value))
        })
        .collect();
    points.sort_by_key(|p| p.0);
    points
}

/// Draws ops/s against concurrent tasks (log scale, up to `max_tasks`, labelled at
/// `key_tasks`), one line each, with a legend at `legend`.
fn draw_lines(
    path: &Path,
    caption: &str,
    (max_tasks, key_tasks): (u32, Vec<u32>),
    lines: &[Line],
    legend: SeriesLabelPosition,
) -> BenchResult<()> {
    let top = lines
        .iter()
        .flat_map(|line| line.points.iter().map(|p| p.1))
        .fold(1.0f64, f64::max);
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (1u32..max_tasks).log_scale().with_key_points(key_tasks),
            0f64..top * 1.1,
        )?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("concurrent tasks (log scale)")
        .y_desc("operations per second")
        .y_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
        .draw()?;
    for line in lines {
        let style = ShapeStyle::from(&line.color).stroke_width(line.width);
        chart
            .draw_series(LineSeries::new(line.points.clone(), style))?
            .label(&line.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        let fill = line.color.filled();
        chart.draw_series(
            line.points
                .iter()
                .map(|&(x, y)| Circle::new((x, y), 3, fill)),
        )?;
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Draws ops/s against concurrent tasks for `get` (thick lines) and `set` (thin), typed in
/// blue and raw in orange, from the rows of those cases.
pub(crate) fn draw(path: &Path, rows: &[Row]) -> BenchResult<()> {
    let mut lines = Vec::new();
    for (case, width) in [("get", 3), ("set", 1)] {
        for (side, color, raw) in [("typed", TYPED, false), ("raw", RAW, true)] {
            lines.push(Line {
                label: format!("{case} {side}"),
                color,
                width,
                points: points(rows, case, raw),
            });
        }
    }
    draw_lines(
        path,
        "typedkv vs hand-written redis-rs: ops/s by concurrent tasks",
        (90, vec![1, 16, 64]),
        &lines,
        SeriesLabelPosition::LowerRight,
    )
}

/// Draws ops/s against concurrent tasks (1 to 256) of every contender of the peer cases,
/// `get` thick and `set` thin; redis-rs' rates are the reference side of the typed rows.
pub(crate) fn draw_peers(path: &Path, rows: &[Row]) -> BenchResult<()> {
    let mut lines = Vec::new();
    for (op, width) in [("get", 3), ("set", 1)] {
        for (name, color) in PEERS {
            let points = match name {
                "redis-rs" => points(rows, &format!("peer {op} typed"), true),
                _ => points(rows, &format!("peer {op} {name}"), false),
            };
            lines.push(Line {
                label: format!("{op} {name}"),
                color,
                width,
                points,
            });
        }
    }
    draw_lines(
        path,
        "typedkv, redis-rs and fred: ops/s by concurrent tasks",
        (300, vec![1, 16, 64, 256]),
        &lines,
        SeriesLabelPosition::UpperLeft,
    )
}
