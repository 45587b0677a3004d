//! [`safe_text`]: text from outside (an agent, a peer) made safe to store, log and show on a
//! terminal: control characters escaped, length bounded.

/// Text from outside made safe to store and show: every control character escaped
/// (`\u{1b}`, `\n`), then cut to `max` bytes at a character boundary with `…` at the end.
pub fn safe_text(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        if out.len() > max {
            break;
        }
    }
    if out.len() > max {
        let mut cut = max.saturating_sub('…'.len_utf8());
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}
