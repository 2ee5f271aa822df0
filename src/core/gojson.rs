//! JSON text the way Go's `encoding/json` writes it, for content Nakama would have marshalled:
//! compact, object keys sorted, and `<`, `>`, `&`, U+2028 and U+2029 escaped (NAKAMA-SPEC §4,
//! "content is the exact string"). Clients parse content, but the text is what both the push
//! and the list return, so it follows Nakama's bytes. serde_json leaves those characters as
//! they are, hence this small writer; the Lua content encoder (`runtime::convert`) writes its
//! strings with it too.

/// Appends `s` as a JSON string literal.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON object of string fields, keys sorted (a Go `map[string]string` or struct marshalled).
pub fn string_object(fields: &[(&str, &str)]) -> String {
    let mut fields = fields.to_vec();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::with_capacity(
        16 + fields
            .iter()
            .map(|f| f.0.len() + f.1.len() + 6)
            .sum::<usize>(),
    );
    out.push('{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(&mut out, k);
        out.push(':');
        write_string(&mut out, v);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_go_does_and_sorts_keys() {
        assert_eq!(
            string_object(&[("username", "A&B <x>"), ("group_id", "g\"1\u{2028}")]),
            r#"{"group_id":"g\"1\u2028","username":"A\u0026B \u003cx\u003e"}"#
        );
        assert_eq!(string_object(&[]), "{}");
        let mut s = String::new();
        write_string(&mut s, "tab\tnul\u{0}é");
        assert_eq!(s, r#""tab\tnul\u0000é""#);
    }
}
