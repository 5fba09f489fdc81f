//! A hand-written SVG bar chart of delivered vs ceiling points/s per scenario, on a log axis
//! (rates span from the 1 M/s latency scenario to tens of millions).

use std::fmt::Write;

/// One scenario's bars; None = not measured.
pub struct Bar {
    pub name: String,
    pub delivered: Option<f64>,
    pub ceiling: Option<f64>,
}

const LABEL_W: f64 = 230.0;
const PLOT_W: f64 = 560.0;
const ROW_H: f64 = 34.0;
const TOP: f64 = 50.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Powers of ten covering every value (at least 10^5..10^8).
fn decades(bars: &[Bar]) -> (i32, i32) {
    let values: Vec<f64> = bars
        .iter()
        .flat_map(|b| [b.delivered, b.ceiling])
        .flatten()
        .filter(|v| *v > 0.0)
        .collect();
    let lo = values.iter().copied().fold(1e5, f64::min).log10().floor() as i32;
    let hi = values.iter().copied().fold(1e8, f64::max).log10().ceil() as i32;
    (lo, hi.max(lo + 1))
}

/// The chart as an SVG document.
pub fn chart(title: &str, bars: &[Bar]) -> String {
    let (lo, hi) = decades(bars);
    let x = |v: f64| {
        LABEL_W + (v.max(10f64.powi(lo)).log10() - f64::from(lo)) / f64::from(hi - lo) * PLOT_W
    };
    let height = TOP + ROW_H * bars.len() as f64 + 50.0;
    let width = LABEL_W + PLOT_W + 120.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="15">{}</text>"#,
        escape(title)
    );
    let _ = writeln!(
        s,
        r##"<rect x="{LABEL_W}" y="28" width="10" height="10" fill="#1f77b4"/><text x="{}" y="37">delivered (validated)</text><rect x="{}" y="28" width="10" height="10" fill="#bbbbbb"/><text x="{}" y="37">ceiling (raw sends, same size)</text>"##,
        LABEL_W + 14.0,
        LABEL_W + 170.0,
        LABEL_W + 184.0
    );
    let bottom = TOP + ROW_H * bars.len() as f64;
    for d in lo..=hi {
        let gx = x(10f64.powi(d));
        let _ = writeln!(
            s,
            r##"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{bottom}" stroke="#dddddd"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle">1e{d}</text>"##,
            bottom + 16.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">points/s (log scale)</text>"#,
        LABEL_W + PLOT_W / 2.0,
        bottom + 34.0
    );
    for (row, bar) in bars.iter().enumerate() {
        let y = TOP + ROW_H * row as f64;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LABEL_W - 8.0,
            y + 20.0,
            escape(&bar.name)
        );
        for (value, dy, color) in [
            (bar.ceiling, 4.0, "#bbbbbb"),
            (bar.delivered, 17.0, "#1f77b4"),
        ] {
            match value.filter(|v| *v > 0.0) {
                Some(v) => {
                    let w = x(v) - LABEL_W;
                    let _ = writeln!(
                        s,
                        r#"<rect x="{LABEL_W}" y="{:.1}" width="{w:.1}" height="12" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="10">{:.2} M</text>"#,
                        y + dy,
                        LABEL_W + w + 4.0,
                        y + dy + 10.0,
                        v / 1e6
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        r#"<text x="{:.1}" y="{:.1}" font-size="10" fill="gray">n/a</text>"#,
                        LABEL_W + 4.0,
                        y + dy + 10.0
                    );
                }
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_drawn_to_scale_and_missing_values_say_so() {
        let bars = vec![
            Bar {
                name: "a<b".into(),
                delivered: Some(1e6),
                ceiling: Some(1e7),
            },
            Bar {
                name: "none".into(),
                delivered: Some(2e6),
                ceiling: None,
            },
        ];
        let svg = chart("t", &bars);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("a&lt;b"), "labels are escaped");
        assert_eq!(svg.matches("n/a").count(), 1);
        // Axis 1e5..1e8 over PLOT_W: 1e6 is one decade (a third), 1e7 two thirds.
        let third = PLOT_W / 3.0;
        assert!(svg.contains(&format!(r#"width="{third:.1}""#)), "{svg}");
        assert!(
            svg.contains(&format!(r#"width="{:.1}""#, 2.0 * third)),
            "{svg}"
        );
        assert!(svg.contains("1.00 M") && svg.contains("10.00 M"));
    }
}
