//! XML bodies: `XML:/*` holds the text of every element, `XML://@*` every attribute value
//! (the two XPath forms the CRS uses). Entities and nesting are handled by `quick-xml`.

use quick_xml::events::Event;
use quick_xml::Reader;

pub const TEXT: &str = "/*";
pub const ATTRIBUTES: &str = "//@*";

pub fn parse(input: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut reader = Reader::from_reader(input);
    reader.config_mut().trim_text(true);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut depth = 0usize;
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                depth += 1;
                if depth > 256 {
                    return Err("XML nested too deeply".into());
                }
                for a in e.attributes().flatten() {
                    let v = a
                        .unescape_value()
                        .map(|v| v.into_owned().into_bytes())
                        .unwrap_or_else(|_| a.value.to_vec());
                    out.push((ATTRIBUTES.to_string(), v));
                }
            }
            Ok(Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(Event::Text(t)) => {
                let v = t
                    .unescape()
                    .map(|v| v.into_owned().into_bytes())
                    .unwrap_or_else(|_| t.to_vec());
                out.push((TEXT.to_string(), v));
            }
            Ok(Event::CData(c)) => out.push((TEXT.to_string(), c.to_vec())),
            Ok(Event::Eof) => break,
            Err(e) => return Err(format!("XML parsing error: {e}")),
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes() {
        let v = parse(
            br#"<?xml version="1.0"?><a x="attr &amp; 1"><b>text</b><c/><![CDATA[raw]]></a>"#,
        )
        .unwrap();
        assert!(v.contains(&(ATTRIBUTES.into(), b"attr & 1".to_vec())));
        assert!(v.contains(&(TEXT.into(), b"text".to_vec())));
        assert!(v.contains(&(TEXT.into(), b"raw".to_vec())));
        assert!(parse(b"<a><b></a>").is_err());
    }
}
