//! SVG plots of simulations (plotters): the frontier of talk share against
//! abandonment from a sweep, and the time series of one run.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use super::Sample;
use super::sweep::SweepRow;

/// A plot that could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("plotting {path}: {message}")]
pub struct PlotError {
    path: String,
    message: String,
}

fn fail(path: &Path) -> impl Fn(String) -> PlotError + '_ {
    move |message| PlotError {
        path: path.display().to_string(),
        message,
    }
}

/// One colour per strategy family, stable across plots.
fn colour(family: &str) -> RGBColor {
    match family {
        "predictive" => RGBColor(0xd6, 0x27, 0x28),
        "progressive" => RGBColor(0x7f, 0x7f, 0x7f),
        "ratio" => RGBColor(0x1f, 0x77, 0xb4),
        "feedback" => RGBColor(0x2c, 0xa0, 0x2c),
        "threshold" => RGBColor(0x94, 0x67, 0xbd),
        "oracle" => RGBColor(0x00, 0x00, 0x00),
        _ => RGBColor(0xff, 0x7f, 0x0e),
    }
}

/// The family of a strategy name: `ratio:1.5` belongs to `ratio`.
fn family(strategy: &str) -> &str {
    strategy.split(':').next().unwrap_or(strategy)
}

/// Draws the frontier: for each strategy family, mean talk share against
/// mean abandonment rate over the sweep's points, with the campaign's
/// limit as a vertical line.
pub fn frontier(path: &Path, title: &str, rows: &[SweepRow], limit: f64) -> Result<(), PlotError> {
    let err = fail(path);
    let mut lines: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for r in rows {
        lines.entry(family(&r.summary.strategy)).or_default().push((
            r.summary.abandon_rate_mean_percent,
            r.summary.talk_share_mean,
        ));
    }
    for pts in lines.values_mut() {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    }
    let x_max = rows
        .iter()
        .map(|r| r.summary.abandon_rate_mean_percent)
        .fold(limit, f64::max)
        * 1.1;
    let (y_min, y_max) = rows.iter().fold((1.0f64, 0.0f64), |(lo, hi), r| {
        (
            lo.min(r.summary.talk_share_mean),
            hi.max(r.summary.talk_share_mean),
        )
    });
    let (y_min, y_max) = ((y_min - 0.02).max(0.0), (y_max + 0.02).min(1.0));
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max.max(0.1), y_min..y_max.max(y_min + 0.01))
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("abandoned calls, % of human answers (mean over seeds)")
        .y_desc("talk share of logged-in time")
        .draw()
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(LineSeries::new(
            [(limit, y_min), (limit, y_max)],
            RED.mix(0.4).stroke_width(2),
        ))
        .map_err(|e| err(e.to_string()))?
        .label(format!("limit {limit}%"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.mix(0.4)));
    for (name, pts) in &lines {
        let c = colour(name);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&(x, y)| Circle::new((x, y), 4, c.filled())))
            .map_err(|e| err(e.to_string()))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// A line of the agents panel: its name, colour and value.
type Series = (&'static str, RGBColor, fn(&Sample) -> u32);

/// Splits samples into runs without gaps (a night off shift breaks a
/// line instead of drawing across it).
fn segments(samples: &[Sample]) -> Vec<&[Sample]> {
    let step = match samples {
        [a, b, ..] => b.t_ms.saturating_sub(a.t_ms).max(1),
        _ => 1,
    };
    samples
        .chunk_by(|a, b| b.t_ms.saturating_sub(a.t_ms) <= step)
        .collect()
}

/// One panel of the time-series plot: hours across, `y_max` up.
fn panel<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    hours: std::ops::Range<f64>,
    y_max: f64,
    y_desc: &str,
    x_desc: Option<&str>,
) -> Result<
    ChartContext<
        'a,
        SVGBackend<'b>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    String,
> {
    let mut c = ChartBuilder::on(area)
        .margin(10)
        .x_label_area_size(if x_desc.is_some() { 40 } else { 30 })
        .y_label_area_size(60)
        .build_cartesian_2d(hours, 0.0..y_max)
        .map_err(|e| e.to_string())?;
    let mut mesh = c.configure_mesh();
    mesh.y_desc(y_desc);
    if let Some(x) = x_desc {
        mesh.x_desc(x);
    }
    mesh.draw().map_err(|e| e.to_string())?;
    Ok(c)
}

/// Draws one run over time in three panels: dial level; agents ready, on
/// call and in wrap-up with calls ringing; the window's abandonment rate
/// against the limit. The time axis is hours from the start.
pub fn time_series(
    path: &Path,
    title: &str,
    samples: &[Sample],
    limit: f64,
) -> Result<(), PlotError> {
    let err = fail(path);
    let hours = |s: &Sample| s.t_ms as f64 / 3_600_000.0;
    let (t0, t1) = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) if hours(b) > hours(a) => (hours(a), hours(b)),
        _ => return Err(err("the run has fewer than two samples".into())),
    };
    let root = SVGBackend::new(path, (1000, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| err(e.to_string()))?;
    let panels = root.split_evenly((3, 1));

    // Dial level.
    let level_max = samples.iter().map(|s| s.dial_level).fold(1.0, f64::max) * 1.1;
    let mut c = panel(&panels[0], t0..t1, level_max, "dial level", None).map_err(&err)?;
    let parts = segments(samples);
    for part in &parts {
        c.draw_series(LineSeries::new(
            part.iter().map(|s| (hours(s), s.dial_level)),
            colour("predictive"),
        ))
        .map_err(|e| err(e.to_string()))?;
    }

    // Agents by state.
    let top = samples
        .iter()
        .map(|s| (s.ready + s.on_call + s.wrap_up).max(s.ringing))
        .max()
        .unwrap_or(1) as f64
        * 1.1;
    let mut c = panel(&panels[1], t0..t1, top.max(1.0), "agents / calls", None).map_err(&err)?;
    let series: [Series; 4] = [
        ("on call", RGBColor(0x2c, 0xa0, 0x2c), |s| s.on_call),
        ("wrap-up", RGBColor(0xff, 0x7f, 0x0e), |s| s.wrap_up),
        ("ready", RGBColor(0x1f, 0x77, 0xb4), |s| s.ready),
        ("ringing", RGBColor(0x7f, 0x7f, 0x7f), |s| s.ringing),
    ];
    for (name, colour, value) in series {
        for (i, part) in parts.iter().enumerate() {
            let drawn = c
                .draw_series(LineSeries::new(
                    part.iter().map(|s| (hours(s), f64::from(value(s)))),
                    colour,
                ))
                .map_err(|e| err(e.to_string()))?;
            if i == 0 {
                drawn
                    .label(name)
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour));
            }
        }
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(e.to_string()))?;

    // Rolling abandonment against the limit.
    let rate_max = samples
        .iter()
        .map(|s| s.window_rate_percent)
        .fold(limit, f64::max)
        * 1.2;
    let mut c = panel(
        &panels[2],
        t0..t1,
        rate_max,
        "abandoned % (window)",
        Some("hours from the start"),
    )
    .map_err(&err)?;
    c.draw_series(LineSeries::new(
        [(t0, limit), (t1, limit)],
        RED.stroke_width(2),
    ))
    .map_err(|e| err(e.to_string()))?
    .label(format!("limit {limit}%"))
    .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED));
    for (i, part) in parts.iter().enumerate() {
        let drawn = c
            .draw_series(LineSeries::new(
                part.iter().map(|s| (hours(s), s.window_rate_percent)),
                BLACK,
            ))
            .map_err(|e| err(e.to_string()))?;
        if i == 0 {
            drawn
                .label("window rate")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
        }
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}
