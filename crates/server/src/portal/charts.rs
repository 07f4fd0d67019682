//! Charts as server-rendered SVG: no script, readable in a screenshot and by a screen
//! reader (each chart has a title and its figures in a table or in words beside it).

use maud::{Markup, html};

/// Dark blue on white: 10.6:1.
const INK: &str = "#0b3d6b";
const LIGHT: &str = "#dde6ee";

/// Horizontal bars, one per row: its label, its value (drawn to scale against the largest)
/// and the value as shown.
pub(crate) fn bars(title: &str, rows: &[(String, i64, String)]) -> Markup {
    if rows.is_empty() {
        return html! { p { (title) ": no data yet." } };
    }
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let label_w = 170.0;
    let bar_w = 300.0;
    let row_h = 22.0;
    let height = row_h * rows.len().max(1) as f64 + 8.0;
    let width = label_w + bar_w + 170.0;
    html! {
        figure {
            svg width=(width) height=(height) viewBox=(format!("0 0 {width} {height}")) role="img" aria-label=(title) {
                title { (title) }
                @for (i, (label, value, shown)) in rows.iter().enumerate() {
                    @let y = i as f64 * row_h + 4.0;
                    @let w = (*value).max(0) as f64 / max as f64 * bar_w;
                    text x=(label_w - 6.0) y=(y + 15.0) text-anchor="end" font-size="13" fill="#111" { (short(label, 24)) }
                    rect x=(label_w) y=(y + 2.0) width=(bar_w) height=(row_h - 6.0) fill=(LIGHT) {}
                    rect x=(label_w) y=(y + 2.0) width=(format!("{w:.1}")) height=(row_h - 6.0) fill=(INK) {}
                    text x=(label_w + bar_w + 6.0) y=(y + 15.0) font-size="13" fill="#111" { (shown) }
                }
            }
            figcaption { (title) }
        }
    }
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n - 1).collect();
    out.push('…');
    out
}

/// A share as a ring with its figure in the middle (thousandths).
pub(crate) fn share(title: &str, permille: i64) -> Markup {
    let p = permille.clamp(0, 1000) as f64 / 1000.0;
    let r = 40.0;
    let circumference = 2.0 * std::f64::consts::PI * r;
    let label = format!("{title}: {}.{} %", permille / 10, permille % 10);
    html! {
        figure {
            svg width="120" height="120" viewBox="0 0 120 120" role="img" aria-label=(label) {
                title { (label) }
                circle cx="60" cy="60" r=(r) fill="none" stroke=(LIGHT) stroke-width="16" {}
                circle cx="60" cy="60" r=(r) fill="none" stroke=(INK) stroke-width="16"
                    stroke-dasharray=(format!("{:.1} {:.1}", p * circumference, circumference))
                    transform="rotate(-90 60 60)" {}
                text x="60" y="66" text-anchor="middle" font-size="18" fill="#111" { (permille / 10) "." (permille % 10) "%" }
            }
            figcaption { (title) }
        }
    }
}

/// Colour of a GPU's use in thousandths: white when idle to dark blue when full; drained
/// and down nodes hatched grey.
fn heat(milli: u16) -> String {
    let t = f64::from(milli.min(1000)) / 1000.0;
    let mix = |from: f64, to: f64| (from + (to - from) * t).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(240.0, 11.0),
        mix(244.0, 61.0),
        mix(248.0, 107.0)
    )
}

/// One row per node, one cell per GPU, coloured by its use.
pub(crate) fn heat_map(title: &str, nodes: &[(String, String, Vec<u16>)]) -> Markup {
    let cell = 16.0;
    let label_w = 150.0;
    let cols = nodes.iter().map(|n| n.2.len()).max().unwrap_or(1).max(1);
    let width = label_w + cols as f64 * (cell + 2.0) + 80.0;
    let height = nodes.len().max(1) as f64 * (cell + 4.0) + 4.0;
    html! {
        figure {
            svg width=(width) height=(height) viewBox=(format!("0 0 {width} {height}")) role="img" aria-label=(title) {
                title { (title) }
                defs {
                    pattern id="hatch" width="4" height="4" patternUnits="userSpaceOnUse" patternTransform="rotate(45)" {
                        rect width="4" height="4" fill="#ccc" {}
                        line x1="0" y1="0" x2="0" y2="4" stroke="#555" stroke-width="2" {}
                    }
                }
                @for (i, (name, status, gpus)) in nodes.iter().enumerate() {
                    @let y = i as f64 * (cell + 4.0) + 2.0;
                    text x=(label_w - 6.0) y=(y + 12.0) text-anchor="end" font-size="12" fill="#111" { (short(name, 20)) }
                    @for (g, milli) in gpus.iter().enumerate() {
                        @let fill = if status == "up" { heat(*milli) } else { "url(#hatch)".to_string() };
                        rect x=(label_w + g as f64 * (cell + 2.0)) y=(y) width=(cell) height=(cell) fill=(fill) stroke="#666" stroke-width="0.5" {
                            title { (name) " GPU " (g) ": " (milli / 10) "% in use" @if status != "up" { " (" (status) ")" } }
                        }
                    }
                    text x=(label_w + cols as f64 * (cell + 2.0) + 6.0) y=(y + 12.0) font-size="12" fill="#111" { (status) }
                }
            }
            figcaption { (title) ": each square is a GPU, darker is busier; hatched nodes are drained or down." }
        }
    }
}

/// An allocation's burn-down: GPU-hours left over its validity (a step line from the
/// ledger's grants, top-ups and usage), against the straight line of even use from the
/// grant to nothing at its end, with today marked.
pub(crate) fn burn_down(title: &str, from: i64, until: i64, now: i64, changes: &[(i64, i64)]) -> Markup {
    let (w, h, left, bottom) = (360.0, 120.0, 44.0, 18.0);
    let span = (until - from).max(1) as f64;
    let mut left_now = 0i64;
    let mut top = 0i64;
    let mut steps: Vec<(i64, i64)> = Vec::new();
    for (at, delta) in changes {
        left_now += delta;
        top = top.max(left_now);
        steps.push(((*at).clamp(from, until), left_now));
    }
    let top = top.max(1) as f64;
    let x = |t: i64| left + (t.clamp(from, until) - from) as f64 / span * (w - left - 6.0);
    let y = |v: i64| 6.0 + (1.0 - v.max(0) as f64 / top) * (h - bottom - 6.0);
    let mut path = String::new();
    let mut last = 0i64;
    for (i, (t, v)) in steps.iter().enumerate() {
        if i == 0 {
            path.push_str(&format!("M{:.1},{:.1}", x(*t), y(*v)));
        } else {
            path.push_str(&format!(" H{:.1} V{:.1}", x(*t), y(*v)));
        }
        last = *v;
    }
    if !steps.is_empty() {
        path.push_str(&format!(" H{:.1}", x(now.min(until))));
    }
    let grant = steps.first().map_or(0, |s| s.1);
    let hours = |gs: i64| gs / 3600;
    let label = format!(
        "{title}: {} of {} GPU-hours left; even use would leave {} now",
        hours(last),
        hours(top as i64),
        hours((grant as f64 * (1.0 - (now - from) as f64 / span).clamp(0.0, 1.0)) as i64)
    );
    html! {
        svg width=(w) height=(h) viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(label) {
            title { (label) }
            line x1=(left) y1=(h - bottom) x2=(w - 6.0) y2=(h - bottom) stroke="#555" {}
            line x1=(left) y1="6" x2=(left) y2=(h - bottom) stroke="#555" {}
            text x=(left - 4.0) y="14" text-anchor="end" font-size="11" fill="#111" { (hours(top as i64)) }
            text x=(left - 4.0) y=(h - bottom) text-anchor="end" font-size="11" fill="#111" { "0" }
            text x=(left) y=(h - 4.0) font-size="11" fill="#111" { "start" }
            text x=(w - 6.0) y=(h - 4.0) text-anchor="end" font-size="11" fill="#111" { "end" }
            line x1=(x(from)) y1=(y(grant)) x2=(x(until)) y2=(y(0)) stroke="#666" stroke-dasharray="4 3" {}
            line x1=(x(now)) y1="6" x2=(x(now)) y2=(h - bottom) stroke="#b35c00" {}
            path d=(path) fill="none" stroke=(INK) stroke-width="2" {}
        }
    }
}

/// A day's hourly values as columns (UTC hours), the current hour marked.
pub(crate) fn hourly(title: &str, values: &[u32], now_hour: usize, unit: &str) -> Markup {
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let (w, h, bottom) = (24.0 * 14.0 + 40.0, 110.0, 16.0);
    let lowest = values.iter().enumerate().min_by_key(|(_, v)| **v).map_or(0, |(i, _)| i);
    let label = format!(
        "{title}: from {} to {} {unit}; lowest at {lowest:02}:00 UTC; now {} {unit}",
        values.iter().min().copied().unwrap_or(0),
        values.iter().max().copied().unwrap_or(0),
        values.get(now_hour).copied().unwrap_or(0)
    );
    html! {
        svg width=(w) height=(h) viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(label) {
            title { (label) }
            @for (i, v) in values.iter().enumerate() {
                @let bar = f64::from(*v) / max * (h - bottom - 14.0);
                rect x=(30.0 + i as f64 * 14.0) y=(h - bottom - bar) width="11" height=(format!("{bar:.1}"))
                    fill=(if i == now_hour { "#b35c00" } else { INK }) {
                    title { (format!("{i:02}:00 UTC: {v} {unit}")) }
                }
            }
            text x="30" y=(h - 3.0) font-size="11" fill="#111" { "00" }
            text x=(30.0 + 12.0 * 14.0) y=(h - 3.0) font-size="11" fill="#111" { "12" }
            text x=(30.0 + 23.0 * 14.0) y=(h - 3.0) font-size="11" fill="#111" { "23" }
            text x="26" y="12" text-anchor="end" font-size="11" fill="#111" { (max as u32) }
        }
    }
}
