//! The run as an SVG: throughput, p99, resident memory and projector lag
//! over time, the fault windows shaded.

use std::path::Path;
use std::time::Duration;

use plotters::prelude::*;

use super::faults::Window;
use super::record::{quantile_ms, Sample, Second};

/// p99 is taken over this many seconds: one second of a fault has too few
/// requests for a 99th percentile.
const P99_SPAN: usize = 10;

type Series = Vec<(String, Vec<(f64, f64)>)>;

fn minutes(at: Duration) -> f64 {
    at.as_secs_f64() / 60.0
}

fn throughput(seconds: &[Second]) -> Series {
    vec![
        (
            "requests/s".to_owned(),
            seconds
                .iter()
                .enumerate()
                .map(|(i, s)| (i as f64 / 60.0, s.requests as f64))
                .collect(),
        ),
        (
            "failed flows/s".to_owned(),
            seconds
                .iter()
                .enumerate()
                .map(|(i, s)| (i as f64 / 60.0, s.flows_failed as f64))
                .collect(),
        ),
    ]
}

fn p99(seconds: &[Second]) -> Series {
    let points = seconds
        .chunks(P99_SPAN)
        .enumerate()
        .map(|(i, span)| {
            let mut latencies: Vec<u32> =
                span.iter().flat_map(|s| s.latencies_us.clone()).collect();
            (
                (i * P99_SPAN) as f64 / 60.0,
                quantile_ms(&mut latencies, 0.99),
            )
        })
        .collect();
    vec![("p99 ms (10 s)".to_owned(), points)]
}

fn memory(samples: &[Sample]) -> Series {
    let mut roles: Vec<String> = samples
        .iter()
        .flat_map(|s| s.rss.iter().map(|(role, _)| role.clone()))
        .collect();
    roles.sort();
    roles.dedup();
    roles
        .into_iter()
        .map(|role| {
            let points = samples
                .iter()
                .filter_map(|s| {
                    let rss = s.rss.iter().find(|(r, _)| *r == role)?.1;
                    Some((minutes(s.at), rss as f64 / 1_000_000.0))
                })
                .collect();
            (role, points)
        })
        .collect()
}

fn lag(samples: &[Sample]) -> Series {
    vec![(
        "projector lag (events)".to_owned(),
        samples
            .iter()
            .filter_map(|s| Some((minutes(s.at), s.projector_lag?)))
            .collect(),
    )]
}

fn panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    title: &str,
    span: f64,
    series: &Series,
    windows: &[Window],
) -> Result<(), Box<dyn std::error::Error>> {
    let top = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(_, y)| *y))
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..span, 0f64..top)?;
    chart
        .configure_mesh()
        .x_desc("minutes")
        .light_line_style(WHITE)
        .draw()?;
    chart.draw_series(windows.iter().map(|w| {
        Rectangle::new(
            [(minutes(w.start), 0.0), (minutes(w.end), top)],
            RGBColor(255, 228, 196).filled(),
        )
    }))?;
    for (index, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(1),
            ))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

pub fn draw(
    path: &Path,
    seconds: &[Second],
    samples: &[Sample],
    windows: &[Window],
) -> Result<(), Box<dyn std::error::Error>> {
    let span = (seconds.len() as f64 / 60.0).max(1.0 / 60.0);
    let root = SVGBackend::new(path, (960, 1100)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((4, 1));
    let panels = [
        ("Throughput (fault windows shaded)", throughput(seconds)),
        ("p99 latency of each request, ms", p99(seconds)),
        ("Resident memory, MB", memory(samples)),
        ("Projector lag, events", lag(samples)),
    ];
    for (area, (title, series)) in areas.iter().zip(panels.iter()) {
        panel(area, title, span, series, windows)?;
    }
    root.present()?;
    Ok(())
}
