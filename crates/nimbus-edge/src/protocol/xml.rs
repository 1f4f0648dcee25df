//! XML text for the query and REST-XML protocols: escaping, as AWS escapes.

/// Appends `s` to `out` with XML's special characters (and `\r`, which parsers would
/// normalise away) escaped.
pub fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

/// `<name>escaped text</name>`.
pub fn text_element(name: &str, text: &str, out: &mut String) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    escape(text, out);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_characters_are_escaped() {
        let mut out = String::new();
        text_element("M", "<a&b>\"'\r", &mut out);
        assert_eq!(out, "<M>&lt;a&amp;b&gt;&quot;&apos;&#xD;</M>");
    }
}
