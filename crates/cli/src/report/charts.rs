//! Charts of the report, drawn by `plotters` into SVG strings (inlined in the page).
//!
//! Plotters is built without its `ttf` feature: the SVG backend writes labels as `<text>`
//! elements that the browser draws, and sizes them with its built-in estimate, so no font file is
//! read on the machine that writes the report.

use anyhow::{anyhow, Result};
use plotters::prelude::*;

/// Chart size in pixels (the SVG's `width` and `height`).
const SIZE: (u32, u32) = (520, 320);

/// Colours of successive series.
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One named series of points.
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points `(x, y)`.
    pub points: Vec<(f64, f64)>,
}

/// How to draw the series.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Lines through the points.
    Lines,
    /// Lines with a dot at each point.
    LinesAndDots,
    /// Dots only, with the diagonal `y = x` drawn as a guide.
    ScatterWithDiagonal,
}

/// Axis range of the values, widened a little (and made non-empty).
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 };
    (lo - pad, hi + pad)
}

/// Draws `series` into one SVG chart.
///
/// # Errors
/// Only if plotters fails to draw (it writes into a string, so no I/O).
pub fn chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    style: Style,
) -> Result<String> {
    let err = |e: String| anyhow!("cannot draw the chart \"{title}\": {e}");
    let all = || series.iter().flat_map(|s| s.points.iter().copied());
    let (mut x0, mut x1) = range(all().map(|p| p.0));
    let (mut y0, mut y1) = range(all().map(|p| p.1));
    if style == Style::ScatterWithDiagonal {
        // Same range on both axes, so that the diagonal is the 45-degree line.
        x0 = x0.min(y0);
        y0 = x0;
        x1 = x1.max(y1);
        y1 = x1;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut c = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(e.to_string()))?;
        c.configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        if style == Style::ScatterWithDiagonal {
            c.draw_series(LineSeries::new([(x0, y0), (x1, y1)], BLACK.mix(0.35)))
                .map_err(|e| err(e.to_string()))?
                .label("y = x")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.mix(0.35)));
        }
        for (k, s) in series.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            let pts = s
                .points
                .iter()
                .copied()
                .filter(|p| p.0.is_finite() && p.1.is_finite());
            if style != Style::ScatterWithDiagonal {
                c.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(|e| err(e.to_string()))?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                    });
            }
            if style != Style::Lines {
                let dots = c
                    .draw_series(pts.map(|p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| err(e.to_string()))?;
                if style == Style::ScatterWithDiagonal {
                    dots.label(s.name.as_str())
                        .legend(move |(x, y)| Circle::new((x + 8, y), 3, color.filled()));
                }
            }
        }
        if series.len() > 1 || style == Style::ScatterWithDiagonal {
            c.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(|e| err(e.to_string()))?;
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    // Inline SVG in HTML needs no namespace; dropping it leaves the page free of any URL.
    Ok(svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_svg_with_its_labels_and_no_network_reference() {
        let s = chart(
            "loss",
            "step",
            "loss",
            &[Series {
                name: "train".into(),
                points: vec![(0.0, 2.3), (1.0, 1.0), (2.0, f64::NAN), (3.0, 0.4)],
            }],
            Style::Lines,
        )
        .unwrap();
        assert!(s.starts_with("<svg"), "{}", &s[..40]);
        let texts: Vec<&str> = s.split("<text").skip(1).collect();
        for label in ["loss", "step"] {
            assert!(
                texts.iter().any(|t| t.contains(label)),
                "the label {label} is a <text> element"
            );
        }
        assert!(s.contains("<polyline"), "the series is drawn");
        assert!(
            !s.contains("http://") && !s.contains("https://"),
            "no URL, not even the namespace"
        );
        let scatter = chart(
            "pred",
            "predicted",
            "actual",
            &[Series {
                name: "t0".into(),
                points: vec![(0.1, 0.2), (0.3, 0.25)],
            }],
            Style::ScatterWithDiagonal,
        )
        .unwrap();
        assert!(scatter.contains("<circle"));
    }

    #[test]
    fn empty_and_flat_series_still_draw() {
        assert!(chart("e", "x", "y", &[], Style::Lines).is_ok());
        let flat = Series {
            name: "f".into(),
            points: vec![(1.0, 1.0), (1.0, 1.0)],
        };
        assert!(chart("f", "x", "y", &[flat], Style::LinesAndDots).is_ok());
    }
}
