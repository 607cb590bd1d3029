//! PNG figures with `plotters` (bitmap backend, text through `ab_glyph` with the DejaVu Sans
//! font embedded in the binary: no system fonts needed).
//!
//! * [`line_plot`]: y(x) curves with a legend (θ₁ vs time for truth and models, energy vs time).
//! * [`mesh_field_panels`]: a scalar field on a triangle mesh at several times (filled
//!   triangles, shared colour bar).
//! * [`spacetime`] / [`spacetime_positions`]: side-by-side space-time images (e.g. truth, model, difference) of fields
//!   φ(t, x), each with its own symmetric diverging colour scale and colour bar.
//!
//! Outputs are written atomically and refuse to overwrite an existing file unless `force`.

use crate::io::AtomicOutput;
use crate::{Error, Result};
use ndarray::ArrayView2;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        for style in [
            FontStyle::Normal,
            FontStyle::Bold,
            FontStyle::Italic,
            FontStyle::Oblique,
        ] {
            // The font is embedded and valid; a failure would only lose text, never panic.
            let _ = plotters::style::register_font("sans-serif", style, FONT);
        }
    });
}

/// One curve of a line plot.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
}

impl Series {
    pub fn new(label: impl Into<String>, x: Vec<f64>, y: Vec<f64>) -> Self {
        Series {
            label: label.into(),
            x,
            y,
        }
    }
}

/// Line colours: truth first (black), then distinct colours.
const COLOURS: [RGBColor; 6] = [
    RGBColor(0, 0, 0),
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
];

pub(crate) fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::file(path, format!("cannot draw the figure: {e}"))
}

/// Render with `draw` into a temporary PNG next to `path`, then move it into place.
pub(crate) fn with_png(
    path: &Path,
    size: (u32, u32),
    force: bool,
    draw: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    register_font();
    let out = AtomicOutput::new(path, force)?;
    // The bitmap backend picks the format from the extension: keep ".png" on the temp file.
    let tmp_png = out.tmp_path().with_extension("tmp.png");
    let res = (|| {
        let root = BitMapBackend::new(&tmp_png, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        draw(&root)?;
        root.present().map_err(|e| plot_err(path, e))?;
        drop(root);
        std::fs::rename(&tmp_png, out.tmp_path())
            .map_err(|e| Error::file(path, format!("cannot move the temporary file: {e}")))
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp_png);
    }
    res?;
    out.commit()?;
    Ok(())
}

fn finite_range(vals: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = vals
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo > hi {
        return None;
    }
    if hi - lo < 1e-300 + 1e-12 * hi.abs().max(lo.abs()) {
        let pad = 0.5 * hi.abs().max(1.0);
        return Some((lo - pad, hi + pad));
    }
    let pad = 0.05 * (hi - lo);
    Some((lo - pad, hi + pad))
}

/// Tick label: plain for moderate magnitudes, scientific for tiny or huge ranges.
fn tick_label(v: f64, lo: f64, hi: f64) -> String {
    let m = lo.abs().max(hi.abs());
    let span = hi - lo;
    if v == 0.0 {
        "0".into()
    } else if m >= 1e4 || span < 1e-2 {
        format!("{v:.2e}")
    } else if span < 1.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.1}")
    }
}

/// A line plot of `series` saved as a PNG of `size` pixels (e.g. (900, 500)).
pub fn line_plot(
    path: impl AsRef<Path>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    size: (u32, u32),
    force: bool,
) -> Result<()> {
    let path = path.as_ref();
    if series.is_empty() {
        return Err(Error::input("a line plot needs at least one series"));
    }
    let (xr, yr) = series_ranges(series)?;
    with_png(path, size, force, |root| {
        let e = |err| plot_err(path, err);
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(90)
            .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&|v| tick_label(*v, xr.0, xr.1))
            .y_label_formatter(&|v| tick_label(*v, yr.0, yr.1))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(e)?;
        draw_lines(&mut chart, series, 14, SeriesLabelPosition::UpperRight).map_err(e)
    })
}

/// Check that every series has as many x as y values; the finite (x, y) ranges of all of them.
fn series_ranges(series: &[Series]) -> Result<((f64, f64), (f64, f64))> {
    for s in series {
        if s.x.len() != s.y.len() {
            return Err(Error::input(format!(
                "series '{}' has {} x values and {} y values",
                s.label,
                s.x.len(),
                s.y.len()
            )));
        }
    }
    let xr = finite_range(series.iter().flat_map(|s| s.x.iter().copied()))
        .ok_or_else(|| Error::input("no finite x values to plot"))?;
    let yr = finite_range(series.iter().flat_map(|s| s.y.iter().copied()))
        .ok_or_else(|| Error::input("no finite y values to plot"))?;
    Ok((xr, yr))
}

/// The curves of `series` (non-finite points left out) in the palette's colours, and their
/// legend at `legend` in a `font`-point font.
fn draw_lines<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    series: &[Series],
    font: u32,
    legend: SeriesLabelPosition,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    for (i, s) in series.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let pts: Vec<(f64, f64)> =
            s.x.iter()
                .zip(&s.y)
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|(&x, &y)| (x, y))
                .collect();
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", font))
        .position(legend)
        .draw()
}

/// Piecewise-linear colour between `stops` (positions increasing) at `s` within their range.
fn interpolate(stops: &[(f64, [f64; 3])], s: f64) -> RGBColor {
    let i = stops
        .windows(2)
        .position(|w| s <= w[1].0)
        .unwrap_or(stops.len() - 2);
    let ((a, ca), (b, cb)) = (stops[i], stops[i + 1]);
    let u = (s - a) / (b - a);
    let mix = |k: usize| (ca[k] + u * (cb[k] - ca[k])).round() as u8;
    RGBColor(mix(0), mix(1), mix(2))
}

/// Diverging colour map (blue – white – red) for s ∈ [−1, 1].
pub fn diverging(s: f64) -> RGBColor {
    const STOPS: [(f64, [f64; 3]); 5] = [
        (-1.0, [5.0, 48.0, 97.0]),
        (-0.5, [67.0, 147.0, 195.0]),
        (0.0, [247.0, 247.0, 247.0]),
        (0.5, [214.0, 96.0, 77.0]),
        (1.0, [103.0, 0.0, 31.0]),
    ];
    let s = if s.is_finite() {
        s.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    interpolate(&STOPS, s)
}

/// One panel of a space-time figure: a field of T frames × n points (row = time).
#[derive(Clone, Debug)]
pub struct Panel<'a> {
    pub title: String,
    pub field: ArrayView2<'a, f64>,
}

/// Side-by-side space-time images: x (grid index × dx) horizontal, time vertical (upwards),
/// each panel with a symmetric colour scale ±max|value| and a colour bar.
pub fn spacetime(
    path: impl AsRef<Path>,
    title: &str,
    t: &[f64],
    dx: f64,
    panels: &[Panel],
    force: bool,
) -> Result<()> {
    let nx = panels.first().map(|p| p.field.ncols()).unwrap_or(0);
    let cells: Vec<(usize, f64, f64)> = (0..nx)
        .map(|i| (i, i as f64 * dx, (i + 1) as f64 * dx))
        .collect();
    spacetime_cells(path.as_ref(), title, t, &cells, panels, force)
}

/// [`spacetime`] with the nodes at coordinates `x` (one per column of the fields, any order,
/// e.g. a chain's node positions): node i is drawn over the interval between the midpoints to
/// its neighbours in x (half the neighbour spacing beyond the two ends).
pub fn spacetime_positions(
    path: impl AsRef<Path>,
    title: &str,
    t: &[f64],
    x: &[f64],
    panels: &[Panel],
    force: bool,
) -> Result<()> {
    let path = path.as_ref();
    let nx = panels.first().map(|p| p.field.ncols()).unwrap_or(0);
    if x.len() != nx || x.iter().any(|v| !v.is_finite()) {
        return Err(Error::input(format!(
            "space-time figure: {} finite node positions needed for {nx} nodes, got {}",
            nx,
            x.len()
        )));
    }
    let mut order: Vec<usize> = (0..nx).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let xs: Vec<f64> = order.iter().map(|&i| x[i]).collect();
    let mut cells = Vec::with_capacity(nx);
    for (j, &i) in order.iter().enumerate() {
        let lo = if j > 0 {
            0.5 * (xs[j - 1] + xs[j])
        } else if nx > 1 {
            xs[0] - 0.5 * (xs[1] - xs[0])
        } else {
            xs[0] - 0.5
        };
        let hi = if j + 1 < nx {
            0.5 * (xs[j] + xs[j + 1])
        } else if nx > 1 {
            xs[j] + 0.5 * (xs[j] - xs[j - 1])
        } else {
            xs[0] + 0.5
        };
        cells.push((i, lo, hi));
    }
    if cells[nx - 1].2 <= cells[0].1 {
        return Err(Error::input(
            "space-time figure: all node positions coincide",
        ));
    }
    spacetime_cells(path, title, t, &cells, panels, force)
}

/// Space-time images with node `cells[j].0` drawn over x ∈ [cells[j].1, cells[j].2].
fn spacetime_cells(
    path: &Path,
    title: &str,
    t: &[f64],
    cells: &[(usize, f64, f64)],
    panels: &[Panel],
    force: bool,
) -> Result<()> {
    if panels.is_empty() {
        return Err(Error::input("a space-time figure needs at least one panel"));
    }
    let (nt, nx) = panels[0].field.dim();
    if nt < 2 || nx < 1 || t.len() != nt {
        return Err(Error::input(format!(
            "space-time field is {nt} × {nx} with {} times; need ≥ 2 frames and one time per frame",
            t.len()
        )));
    }
    if panels.iter().any(|p| p.field.dim() != (nt, nx)) {
        return Err(Error::input(
            "space-time panels must all have the same shape",
        ));
    }
    if cells.len() != nx || cells.iter().any(|c| c.0 >= nx) {
        return Err(Error::input(format!(
            "space-time figure: {} cells for {nx} nodes",
            cells.len()
        )));
    }
    let (t0, t1) = (t[0], t[nt - 1]);
    let x_lo = cells.iter().map(|c| c.1).fold(f64::INFINITY, f64::min);
    let x_hi = cells.iter().map(|c| c.2).fold(f64::NEG_INFINITY, f64::max);
    let width = 420 * panels.len() as u32;
    with_png(path, (width, 520), force, |root| {
        let e = |err| plot_err(path, err);
        let root = root.titled(title, ("sans-serif", 22)).map_err(e)?;
        let areas = root.split_evenly((1, panels.len()));
        for (p, area) in panels.iter().zip(areas) {
            let vmax = p
                .field
                .iter()
                .filter(|v| v.is_finite())
                .fold(0.0f64, |m, v| m.max(v.abs()))
                .max(1e-300);
            let (main, bar) = area.split_horizontally(area.dim_in_pixel().0 as i32 - 95);
            let mut chart = ChartBuilder::on(&main)
                .caption(format!("{} (±{vmax:.3e})", p.title), ("sans-serif", 15))
                .margin(8)
                .x_label_area_size(36)
                .y_label_area_size(48)
                .build_cartesian_2d(x_lo..x_hi, t0..t1)
                .map_err(e)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc("x")
                .y_desc("t")
                .label_style(("sans-serif", 12))
                .axis_desc_style(("sans-serif", 14))
                .draw()
                .map_err(e)?;
            let field = &p.field;
            chart
                .draw_series((0..nt - 1).flat_map(|k| {
                    cells.iter().map(move |&(i, a, b)| {
                        let v = field[[k, i]];
                        Rectangle::new([(a, t[k]), (b, t[k + 1])], diverging(v / vmax).filled())
                    })
                }))
                .map_err(e)?;
            // Colour bar.
            let mut cb = ChartBuilder::on(&bar)
                .margin_top(40)
                .margin_bottom(44)
                .margin_right(8)
                .y_label_area_size(66)
                .build_cartesian_2d(0.0..1.0, -vmax..vmax)
                .map_err(e)?;
            cb.configure_mesh()
                .disable_mesh()
                .disable_x_axis()
                .y_labels(5)
                .y_label_formatter(&|v| tick_label(*v, -vmax, vmax))
                .label_style(("sans-serif", 11))
                .draw()
                .map_err(e)?;
            let steps = 100;
            cb.draw_series((0..steps).map(|j| {
                let a = -vmax + 2.0 * vmax * j as f64 / steps as f64;
                let b = -vmax + 2.0 * vmax * (j + 1) as f64 / steps as f64;
                Rectangle::new(
                    [(0.0, a), (1.0, b)],
                    diverging((a + b) / (2.0 * vmax)).filled(),
                )
            }))
            .map_err(e)?;
        }
        Ok(())
    })
}

/// One panel of [`line_panels`]: its title, axis labels and curves.
#[derive(Clone, Debug)]
pub struct LinePanel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// Several line plots side by side in one PNG (e.g. the paper's three-model comparisons),
/// under a common `title`; each panel has its own axes and legend.
pub fn line_panels(
    path: impl AsRef<Path>,
    title: &str,
    panels: &[LinePanel],
    size: (u32, u32),
    force: bool,
) -> Result<()> {
    let path = path.as_ref();
    if panels.is_empty() || panels.iter().any(|p| p.series.is_empty()) {
        return Err(Error::input("every panel needs at least one series"));
    }
    let ranges = panels
        .iter()
        .map(|p| series_ranges(&p.series))
        .collect::<Result<Vec<_>>>()?;
    with_png(path, size, force, |root| {
        let e = |err| plot_err(path, err);
        let root = root.titled(title, ("sans-serif", 22)).map_err(e)?;
        let areas = root.split_evenly((1, panels.len()));
        for ((area, p), (xr, yr)) in areas.iter().zip(panels).zip(&ranges) {
            let (xr, yr) = (*xr, *yr);
            let mut chart = ChartBuilder::on(area)
                .caption(&p.title, ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
                .map_err(e)?;
            chart
                .configure_mesh()
                .x_desc(p.x_label.as_str())
                .y_desc(p.y_label.as_str())
                .x_label_formatter(&|v| tick_label(*v, xr.0, xr.1))
                .y_label_formatter(&|v| tick_label(*v, yr.0, yr.1))
                .label_style(("sans-serif", 13))
                .axis_desc_style(("sans-serif", 15))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(e)?;
            draw_lines(&mut chart, &p.series, 13, SeriesLabelPosition::UpperLeft).map_err(e)?;
        }
        Ok(())
    })
}

/// Sequential colour map (viridis-like, dark blue – green – yellow) for s ∈ [0, 1].
pub fn sequential(s: f64) -> RGBColor {
    const STOPS: [(f64, [f64; 3]); 5] = [
        (0.0, [68.0, 1.0, 84.0]),
        (0.25, [59.0, 82.0, 139.0]),
        (0.5, [33.0, 145.0, 140.0]),
        (0.75, [94.0, 201.0, 98.0]),
        (1.0, [253.0, 231.0, 37.0]),
    ];
    let s = if s.is_finite() {
        s.clamp(0.0, 1.0)
    } else {
        0.0
    };
    interpolate(&STOPS, s)
}

/// The colour scale of a field plot: values of both signs get the diverging map on ±max|v|
/// (0 is white), one-signed values the sequential map on [min, max].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ColourScale {
    pub lo: f64,
    pub hi: f64,
    pub diverging: bool,
}

impl ColourScale {
    /// The scale for these values (non-finite ones ignored); None if none is finite.
    pub fn for_values(vals: impl Iterator<Item = f64>) -> Option<ColourScale> {
        let (lo, hi) = vals
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        if lo > hi {
            return None;
        }
        if lo < 0.0 && hi > 0.0 {
            let m = lo.abs().max(hi);
            return Some(ColourScale {
                lo: -m,
                hi: m,
                diverging: true,
            });
        }
        let (lo, hi) = if hi - lo > 1e-12 * hi.abs().max(lo.abs()) && hi > lo {
            (lo, hi)
        } else {
            let pad = 0.5 * hi.abs().max(1e-300);
            (lo - pad, hi + pad)
        };
        Some(ColourScale {
            lo,
            hi,
            diverging: false,
        })
    }

    /// Colour of value `v`.
    pub fn colour(&self, v: f64) -> RGBColor {
        if self.diverging {
            diverging(v / self.hi)
        } else {
            sequential((v - self.lo) / (self.hi - self.lo))
        }
    }
}

/// A scalar field on a triangle mesh at several times, one panel per frame (at most 3 per row)
/// under a common `title`, with one shared colour scale ([`ColourScale`]) and colour bar. Each
/// triangle is filled with the colour of the mean of its three nodal values; every panel keeps
/// the mesh's aspect ratio. `frames` are (t, one value per node).
pub fn mesh_field_panels(
    path: impl AsRef<Path>,
    positions: &[[f64; 2]],
    triangles: &[[usize; 3]],
    frames: &[(f64, Vec<f64>)],
    title: &str,
    force: bool,
) -> Result<()> {
    let path = path.as_ref();
    let n = positions.len();
    if frames.is_empty() {
        return Err(Error::input("a mesh figure needs at least one frame"));
    }
    if triangles.is_empty() {
        return Err(Error::input("a mesh figure needs at least one triangle"));
    }
    if let Some(bad) = triangles.iter().flatten().find(|&&i| i >= n) {
        return Err(Error::input(format!(
            "a triangle refers to node {bad}, but the mesh has {n} nodes"
        )));
    }
    if let Some((k, f)) = frames.iter().enumerate().find(|(_, f)| f.1.len() != n) {
        return Err(Error::input(format!(
            "frame {k} (t = {}) has {} values, the mesh has {n} nodes",
            f.0,
            f.1.len()
        )));
    }
    if positions.iter().flatten().any(|x| !x.is_finite()) {
        return Err(Error::input("mesh positions must be finite"));
    }
    let scale = ColourScale::for_values(frames.iter().flat_map(|f| f.1.iter().copied()))
        .ok_or_else(|| Error::input("no finite field values to plot"))?;
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for p in positions {
        x0 = x0.min(p[0]);
        x1 = x1.max(p[0]);
        y0 = y0.min(p[1]);
        y1 = y1.max(p[1]);
    }
    let cols = frames.len().min(3);
    let rows = frames.len().div_ceil(cols);
    let (pw, ph) = (380u32, 380u32);
    let bar_w = 120u32;
    let size = (cols as u32 * pw + bar_w, rows as u32 * ph + 50);
    // Plot-area pixels of one panel (minus margins, labels and caption): equal aspect ratio.
    let (margin, xl, yl, cap) = (10.0, 30.0, 50.0, 26.0);
    let (aw, ah) = (
        pw as f64 - 2.0 * margin - yl,
        ph as f64 - 2.0 * margin - xl - cap,
    );
    let (sx, sy) = ((x1 - x0).max(1e-300), (y1 - y0).max(1e-300));
    let per_px = (sx / aw).max(sy / ah) * 1.04;
    let (cx, cy) = (0.5 * (x0 + x1), 0.5 * (y0 + y1));
    let xr = (cx - 0.5 * aw * per_px, cx + 0.5 * aw * per_px);
    let yr = (cy - 0.5 * ah * per_px, cy + 0.5 * ah * per_px);
    with_png(path, size, force, |root| {
        let e = |err| plot_err(path, err);
        let root = root.titled(title, ("sans-serif", 22)).map_err(e)?;
        let (grid, bar) = root.split_horizontally(cols as i32 * pw as i32);
        let areas = grid.split_evenly((rows, cols));
        for (area, (t, vals)) in areas.iter().zip(frames) {
            let mut chart = ChartBuilder::on(area)
                .caption(format!("t = {t:.4}"), ("sans-serif", 16))
                .margin(margin as u32)
                .x_label_area_size(xl as u32)
                .y_label_area_size(yl as u32)
                .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
                .map_err(e)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_labels(5)
                .y_labels(5)
                .x_label_formatter(&|v| tick_label(*v, xr.0, xr.1))
                .y_label_formatter(&|v| tick_label(*v, yr.0, yr.1))
                .label_style(("sans-serif", 12))
                .draw()
                .map_err(e)?;
            let colour =
                |tri: &[usize; 3]| scale.colour((vals[tri[0]] + vals[tri[1]] + vals[tri[2]]) / 3.0);
            let corners = |tri: &[usize; 3]| -> Vec<(f64, f64)> {
                tri.iter()
                    .map(|&i| (positions[i][0], positions[i][1]))
                    .collect()
            };
            chart
                .draw_series(
                    triangles
                        .iter()
                        .map(|tri| Polygon::new(corners(tri), colour(tri).filled())),
                )
                .map_err(e)?;
            // Outline every triangle in its own colour: no hairline gaps between neighbours.
            chart
                .draw_series(triangles.iter().map(|tri| {
                    let mut c = corners(tri);
                    c.push(c[0]);
                    PathElement::new(c, colour(tri))
                }))
                .map_err(e)?;
        }
        // Shared colour bar.
        let mut cb = ChartBuilder::on(&bar)
            .margin_top(40)
            .margin_bottom(40)
            .margin_left(10)
            .margin_right(10)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..1.0, scale.lo..scale.hi)
            .map_err(e)?;
        cb.configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_labels(7)
            .y_label_formatter(&|v| tick_label(*v, scale.lo, scale.hi))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(e)?;
        let steps = 128;
        cb.draw_series((0..steps).map(|j| {
            let a = scale.lo + (scale.hi - scale.lo) * j as f64 / steps as f64;
            let b = scale.lo + (scale.hi - scale.lo) * (j + 1) as f64 / steps as f64;
            Rectangle::new([(0.0, a), (1.0, b)], scale.colour(0.5 * (a + b)).filled())
        }))
        .map_err(e)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_map_ends() {
        assert_eq!(diverging(0.0), RGBColor(247, 247, 247));
        assert_eq!(diverging(-1.0), RGBColor(5, 48, 97));
        assert_eq!(diverging(2.0), RGBColor(103, 0, 31));
        assert_eq!(diverging(f64::NAN), RGBColor(247, 247, 247));
        assert_eq!(sequential(0.0), RGBColor(68, 1, 84));
        assert_eq!(sequential(1.0), RGBColor(253, 231, 37));
        let s = ColourScale::for_values([-1.0, 3.0].into_iter()).unwrap();
        assert!(s.diverging && s.lo == -3.0 && s.hi == 3.0);
        let s = ColourScale::for_values([1.0, 3.0, f64::NAN].into_iter()).unwrap();
        assert!(!s.diverging && s.lo == 1.0 && s.hi == 3.0);
        assert_eq!(s.colour(3.0), RGBColor(253, 231, 37));
    }
}
