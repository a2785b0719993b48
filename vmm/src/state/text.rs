//! Text that came from an untrusted source (the guest, a `--kernel` ELF, a vmcore) made safe to
//! print: control characters are escaped, so guest text can neither drive the terminal (`ESC[2J`,
//! OSC titles) nor forge lines of lockvmm's own output (a CR, or a newline inside a one-line
//! field). Applied once, where such text enters the host.

/// Escapes every control character except newline and tab: C0 (`\r`, `\x1b`, …), DEL and C1.
/// For multi-line text such as the console.
pub fn escape_controls(s: &str) -> String {
    escape(s, true)
}

/// Escapes every control character, newline and tab included: for one-line fields (a panic
/// message, a snapshot reason, a symbol or task name).
pub fn escape_line(s: &str) -> String {
    escape(s, false)
}

/// The bytes as text (invalid UTF-8 replaced), one-line escaped.
pub fn escape_bytes_line(b: &[u8]) -> String {
    escape_line(&String::from_utf8_lossy(b))
}

fn escape(s: &str, keep_newlines: bool) -> String {
    if !s.chars().any(|c| needs_escape(c, keep_newlines)) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !needs_escape(c, keep_newlines) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    out
}

fn needs_escape(c: char, keep_newlines: bool) -> bool {
    match c {
        '\n' | '\t' => !keep_newlines,
        // C0, DEL, C1; and the bidirectional overrides that reorder what a terminal shows.
        c => c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_sequences_and_forged_lines_are_escaped() {
        let evil = "boom\x1b]0;pwned\x07\x1b[2J\r\nlockvmm: expect ok\u{9b}";
        assert_eq!(
            escape_line(evil),
            "boom\\x1b]0;pwned\\x07\\x1b[2J\\r\\nlockvmm: expect ok\\x9b"
        );
        assert_eq!(escape_controls("a\tb\nc\x1b"), "a\tb\nc\\x1b");
        assert_eq!(escape_line("plain text"), "plain text");
        assert!(!escape_line(evil).chars().any(char::is_control));
    }
}
