//! Geometry for the dashboard's server-rendered SVG charts: vertical columns (one per day or
//! minute) and horizontal stacked bars (input vs output tokens per model). Pure arithmetic on
//! integer SVG units; the templates draw the shapes. No queries, no formatting of money here.

/// One column of a column chart.
pub struct Column {
    pub x: i64,
    pub y: i64,
    pub width: i64,
    pub height: i64,
    /// The axis label under the column (empty: none).
    pub label: String,
    /// The tooltip (`<title>`).
    pub title: String,
    pub value: i64,
}

/// A column to draw: its axis label, tooltip and value.
pub struct Point {
    pub label: String,
    pub title: String,
    pub value: i64,
}

/// Space under the columns for the axis labels.
pub const AXIS_H: i64 = 16;
/// Space kept above the tallest column.
const HEADROOM: i64 = 4;

/// Columns side by side across `width`, scaled so the tallest fills the height above the axis;
/// a non-zero value is at least 2 units tall so it stays visible.
pub fn columns(points: Vec<Point>, width: i64, height: i64) -> Vec<Column> {
    let n = i64::try_from(points.len()).unwrap_or(i64::MAX).max(1);
    let slot = width / n;
    let gap = (slot / 10).max(1);
    let max = points.iter().map(|p| p.value).max().unwrap_or(0).max(1);
    let room = height - AXIS_H - HEADROOM;
    points
        .into_iter()
        .zip(0..)
        .map(|(p, i)| {
            let bar = if p.value <= 0 { 0 } else { scale(p.value, room, max).max(2) };
            Column {
                x: i * slot + gap,
                y: height - AXIS_H - bar,
                width: (slot - 2 * gap).max(1),
                height: bar,
                label: p.label,
                title: p.title,
                value: p.value,
            }
        })
        .collect()
}

/// `value / max` of `length`, without overflow.
fn scale(value: i64, length: i64, max: i64) -> i64 {
    i64::try_from(i128::from(value) * i128::from(length) / i128::from(max.max(1))).unwrap_or(length)
}

/// One row of a stacked bar chart: a label, then the first part, then the second.
pub struct StackedRow {
    /// The full name, and the label as drawn (long names are cut).
    pub name: String,
    pub label: String,
    pub title: String,
    /// The row's top.
    pub y: i64,
    pub first: i64,
    pub second: i64,
    /// Widths of the two parts.
    pub first_w: i64,
    pub second_w: i64,
    /// Where the value text after the bar starts.
    pub text_x: i64,
}

/// The layout of a stacked bar chart.
pub struct Stacked {
    pub rows: Vec<StackedRow>,
    pub width: i64,
    pub height: i64,
    /// Where the bars start (the labels are left of it).
    pub bars_x: i64,
    pub bar_h: i64,
}

pub const ROW_H: i64 = 24;
const BAR_H: i64 = 14;
const LABEL_W: i64 = 170;
/// Kept right of the longest bar for its numbers.
const TEXT_W: i64 = 150;
/// Longer labels are cut (the full name is in the tooltip).
const LABEL_CHARS: usize = 24;

/// Horizontal bars, one per `(label, title, first, second)`, scaled to the largest total.
pub fn stacked(rows: Vec<(String, String, i64, i64)>, width: i64) -> Stacked {
    let max = rows.iter().map(|(_, _, a, b)| a.saturating_add(*b)).max().unwrap_or(0).max(1);
    let room = width - LABEL_W - TEXT_W;
    let rows: Vec<StackedRow> = rows
        .into_iter()
        .zip(0..)
        .map(|((label, title, first, second), i)| {
            let first_w = scale(first.max(0), room, max);
            let second_w = scale(first.max(0).saturating_add(second.max(0)), room, max) - first_w;
            StackedRow {
                label: shorten(&label),
                name: label,
                title,
                y: i * ROW_H + (ROW_H - BAR_H) / 2,
                first,
                second,
                first_w,
                second_w,
                text_x: LABEL_W + first_w + second_w + 6,
            }
        })
        .collect();
    let height = i64::try_from(rows.len()).unwrap_or(0).max(1) * ROW_H;
    Stacked { rows, width, height, bars_x: LABEL_W, bar_h: BAR_H }
}

fn shorten(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS {
        return label.to_string();
    }
    let mut short: String = label.chars().take(LABEL_CHARS - 1).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(value: i64) -> Point {
        Point { label: String::new(), title: String::new(), value }
    }

    #[test]
    fn columns_fill_the_width_and_scale_to_the_tallest() {
        let cols = columns(vec![point(0), point(1), point(10)], 300, 120);
        assert_eq!(cols.len(), 3);
        assert_eq!((cols[0].x, cols[1].x, cols[2].x), (10, 110, 210));
        assert!(cols.iter().all(|c| c.width == 80));
        assert_eq!(cols[0].height, 0);
        assert_eq!(cols[1].height, 10, "a tenth of the tallest");
        assert_eq!(cols[2].height, 120 - AXIS_H - 4);
        assert_eq!(cols[2].y + cols[2].height, 120 - AXIS_H, "columns stand on the axis");
        let tiny = columns(vec![point(1), point(1_000_000)], 600, 160);
        assert_eq!(tiny[0].height, 2, "small but visible");
        let sixty = columns((0..60).map(point).collect(), 600, 160);
        assert!(sixty.iter().all(|c| c.width == 8 && c.x + c.width <= 600));
        assert!(columns(Vec::new(), 600, 160).is_empty());
    }

    #[test]
    fn stacked_bars_share_one_scale() {
        let chart = stacked(
            vec![
                ("a".into(), String::new(), 30, 10),
                ("a-very-long-model-name-indeed-yes".into(), String::new(), 5, 15),
            ],
            620,
        );
        let room = 620 - LABEL_W - TEXT_W;
        assert_eq!(chart.rows[0].first_w + chart.rows[0].second_w, room, "the largest total fills the room");
        assert_eq!((chart.rows[0].first_w, chart.rows[1].first_w, chart.rows[1].second_w), (225, 37, 113));
        assert_eq!(chart.rows[1].y - chart.rows[0].y, ROW_H);
        assert_eq!(chart.height, 2 * ROW_H);
        assert_eq!(chart.rows[1].label.chars().count(), LABEL_CHARS);
        assert!(chart.rows[1].label.ends_with('…'));
        assert_eq!(stacked(Vec::new(), 620).height, ROW_H);
    }
}
