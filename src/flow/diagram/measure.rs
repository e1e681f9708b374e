//! Text sizes without reading font files: the SVG names a monospace font, so a width is
//! a count of columns.

/// Columns a character takes in a monospace font: East Asian wide characters and emoji
/// take two, combining marks none.
fn columns(c: char) -> usize {
    match c as u32 {
        0x0300..=0x036f | 0x200b..=0x200f | 0xfe00..=0xfe0f => 0,
        0x1100..=0x115f
        | 0x2e80..=0xa4cf
        | 0xac00..=0xd7a3
        | 0xf900..=0xfaff
        | 0xfe30..=0xfe4f
        | 0xff00..=0xff60
        | 0xffe0..=0xffe6
        | 0x1f300..=0x1faff
        | 0x20000..=0x3fffd => 2,
        _ => 1,
    }
}

/// Estimated width in pixels: a monospace column is 0.6 em.
pub(super) fn width(s: &str, px: f64) -> f64 {
    s.chars().map(columns).sum::<usize>() as f64 * px * 0.6
}

/// At most `cols` columns, with an ellipsis when cut; control characters become spaces.
pub(super) fn truncate(s: &str, cols: usize) -> String {
    let clean: String = s
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().map(columns).sum::<usize>() <= cols {
        return clean;
    }
    let mut out = String::new();
    let mut used = 0;
    for c in clean.chars() {
        if used + columns(c) > cols.saturating_sub(1) {
            break;
        }
        used += columns(c);
        out.push(c);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_wide_text_is_cut_with_an_ellipsis() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("abcdefghijkl", 6), "abcde…");
        assert_eq!(truncate("主菜单主菜单", 7), "主菜单…");
        assert_eq!(width("主a", 10.0), 18.0);
    }
}
