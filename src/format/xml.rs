//! The XML info resource (UTF-16LE): per-image names, counts, sizes and times.
//!
//! Parsed into a small element tree (so every property can be shown, as `info` does) and a
//! typed view of the fields tools rely on.

use quick_xml::events::Event;
use quick_xml::Reader;

use super::{FormatError, Result};

/// An XML element: name, attributes, text and child elements.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The first child named `name` (case-sensitive, as the format's tags are upper case).
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Text of the child `name`, trimmed.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// Value of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets attribute `name`, replacing an existing value.
    pub fn set_attr(&mut self, name: &str, value: &str) {
        match self.attrs.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value.to_string(),
            None => self.attrs.push((name.to_string(), value.to_string())),
        }
    }

    /// Sets the text of child `name` (created at the end if missing); `None` removes it.
    pub fn set_child_text(&mut self, name: &str, text: Option<&str>) {
        match text {
            None => self.children.retain(|c| c.name != name),
            Some(t) => match self.children.iter_mut().find(|c| c.name == name) {
                Some(c) => {
                    c.text = t.to_string();
                    c.children.clear();
                }
                None => self.children.push(Element {
                    name: name.to_string(),
                    text: t.to_string(),
                    ..Default::default()
                }),
            },
        }
    }

    /// The text at a property path below this element, as `wimlib-imagex info
    /// --image-property` names it: child names joined by `/`, each optionally with a 1-based
    /// index among its like-named siblings (`WINDOWS/LANGUAGES/LANGUAGE[2]`).
    pub fn path_text(&self, path: &str) -> Option<&str> {
        let mut el = self;
        for step in parse_path(path).ok()? {
            el = el
                .children
                .iter()
                .filter(|c| c.name == step.0)
                .nth(step.1 - 1)?;
        }
        Some(el.text.trim())
    }

    /// Sets the text at a property path (see [`Element::path_text`]), creating the elements
    /// on the way; `None` or an empty value removes the element. An index may be at most one
    /// more than the number of like-named siblings (a new one is added at the end).
    pub fn set_path_text(
        &mut self,
        path: &str,
        value: Option<&str>,
    ) -> std::result::Result<(), String> {
        let steps = parse_path(path)?;
        let value = value.filter(|v| !v.is_empty());
        let mut el = self;
        for (i, (name, n)) in steps.iter().enumerate() {
            let last = i + 1 == steps.len();
            let count = el.children.iter().filter(|c| &c.name == name).count();
            if *n > count + 1 {
                return Err(format!(
                    "{path}: there is no {name}[{}] to add {name}[{n}] after",
                    n - 1
                ));
            }
            if *n == count + 1 {
                if value.is_none() {
                    return Ok(());
                }
                el.children.push(Element {
                    name: name.clone(),
                    ..Element::default()
                });
            }
            let at = el
                .children
                .iter()
                .enumerate()
                .filter(|(_, c)| &c.name == name)
                .nth(n - 1)
                .map(|(k, _)| k)
                .expect("present or just added");
            if last {
                match value {
                    Some(v) => {
                        let c = &mut el.children[at];
                        c.text = v.to_string();
                        c.children.clear();
                    }
                    None => {
                        el.children.remove(at);
                    }
                }
                return Ok(());
            }
            el = &mut el.children[at];
        }
        Ok(())
    }

    /// Serializes the element as compact XML (whitespace-only text between child elements
    /// is dropped; other text is kept and escaped).
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write_xml(&mut out);
        out
    }

    fn write_xml(&self, out: &mut String) {
        out.push('<');
        out.push_str(&self.name);
        for (k, v) in &self.attrs {
            out.push(' ');
            out.push_str(k);
            out.push_str("=\"");
            out.push_str(&escape_xml(v));
            out.push('"');
        }
        out.push('>');
        if self.children.is_empty() || !self.text.trim().is_empty() {
            out.push_str(&escape_xml(&self.text));
        }
        for c in &self.children {
            c.write_xml(out);
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

/// Escapes the five XML special characters.
pub fn escape_xml(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

/// Per-image information from the XML.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImageInfo {
    pub index: u32,
    pub name: Option<String>,
    pub description: Option<String>,
    pub dir_count: Option<u64>,
    pub file_count: Option<u64>,
    pub total_bytes: Option<u64>,
    pub hard_link_bytes: Option<u64>,
    /// Windows FILETIME (100 ns ticks since 1601).
    pub creation_time: Option<u64>,
    pub last_modification_time: Option<u64>,
    pub wimboot: bool,
    /// The whole `<IMAGE>` element.
    pub element: Element,
}

/// The parsed XML info resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WimXml {
    pub total_bytes: Option<u64>,
    pub images: Vec<ImageInfo>,
    /// The `<WIM>` root element.
    pub root: Element,
}

fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn parse_time(e: Option<&Element>) -> Option<u64> {
    let e = e?;
    let high = parse_u64(e.child_text("HIGHPART")?)?;
    let low = parse_u64(e.child_text("LOWPART")?)?;
    Some((high << 32) | (low & 0xffff_ffff))
}

/// Decodes the raw resource bytes (UTF-16LE, optional BOM) to text.
pub fn decode_utf16(data: &[u8]) -> Result<String> {
    if data.len() % 2 != 0 {
        return Err(FormatError::invalid(
            "XML data",
            "odd length for UTF-16 text",
        ));
    }
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let units = units.strip_prefix(&[0xfeff]).unwrap_or(&units);
    String::from_utf16(units).map_err(|_| FormatError::invalid("XML data", "invalid UTF-16"))
}

/// Parses XML text into an element tree (the single root element).
pub fn parse_element_tree(text: &str) -> Result<Element> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = vec![Element::default()];
    let err = |e: &dyn std::fmt::Display| FormatError::invalid("XML data", e.to_string());
    loop {
        match reader.read_event().map_err(|e| err(&e))? {
            Event::Start(s) | Event::Empty(s) if stack.len() > 256 => {
                let _ = s;
                return Err(FormatError::invalid("XML data", "nested too deeply"));
            }
            Event::Start(s) => {
                stack.push(element_from_start(&s)?);
            }
            Event::Empty(s) => {
                let el = element_from_start(&s)?;
                stack
                    .last_mut()
                    .expect("stack has a root")
                    .children
                    .push(el);
            }
            Event::End(_) => {
                if stack.len() < 2 {
                    return Err(FormatError::invalid("XML data", "unbalanced end tag"));
                }
                let el = stack.pop().expect("checked length");
                stack.last_mut().expect("checked length").children.push(el);
            }
            Event::Text(t) => {
                let s = t.unescape().map_err(|e| err(&e))?;
                stack
                    .last_mut()
                    .expect("stack has a root")
                    .text
                    .push_str(&s);
            }
            Event::CData(t) => {
                stack
                    .last_mut()
                    .expect("stack has a root")
                    .text
                    .push_str(&String::from_utf8_lossy(&t));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return Err(FormatError::invalid("XML data", "unclosed element"));
    }
    let doc = stack.pop().expect("checked length");
    doc.children
        .into_iter()
        .next()
        .ok_or_else(|| FormatError::invalid("XML data", "no root element"))
}

fn element_from_start(s: &quick_xml::events::BytesStart<'_>) -> Result<Element> {
    let mut el = Element {
        name: String::from_utf8_lossy(s.name().as_ref()).into_owned(),
        ..Default::default()
    };
    for a in s.attributes() {
        let a = a.map_err(|e| FormatError::invalid("XML data", e.to_string()))?;
        let v = a
            .unescape_value()
            .map_err(|e| FormatError::invalid("XML data", e.to_string()))?;
        el.attrs.push((
            String::from_utf8_lossy(a.key.as_ref()).into_owned(),
            v.into_owned(),
        ));
    }
    Ok(el)
}

/// Parses the XML info resource.
pub fn parse_xml(data: &[u8]) -> Result<WimXml> {
    let text = decode_utf16(data)?;
    if text.trim().is_empty() {
        return Ok(WimXml::default());
    }
    let root = parse_element_tree(&text)?;
    if root.name != "WIM" {
        return Err(FormatError::invalid(
            "XML data",
            format!("root element is <{}>, expected <WIM>", root.name),
        ));
    }
    let mut images = Vec::new();
    for (pos, img) in root
        .children
        .iter()
        .filter(|c| c.name == "IMAGE")
        .enumerate()
    {
        let index = img
            .attr("INDEX")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(pos as u32 + 1);
        images.push(ImageInfo {
            index,
            name: img.child_text("NAME").map(str::to_string),
            description: img.child_text("DESCRIPTION").map(str::to_string),
            dir_count: img.child_text("DIRCOUNT").and_then(parse_u64),
            file_count: img.child_text("FILECOUNT").and_then(parse_u64),
            total_bytes: img.child_text("TOTALBYTES").and_then(parse_u64),
            hard_link_bytes: img.child_text("HARDLINKBYTES").and_then(parse_u64),
            creation_time: parse_time(img.child("CREATIONTIME")),
            last_modification_time: parse_time(img.child("LASTMODIFICATIONTIME")),
            wimboot: img.child_text("WIMBOOT").is_some_and(|v| v != "0"),
            element: img.clone(),
        });
    }
    images.sort_by_key(|i| i.index);
    Ok(WimXml {
        total_bytes: root.child_text("TOTALBYTES").and_then(parse_u64),
        images,
        root,
    })
}

/// A property path's steps: (element name, 1-based index).
fn parse_path(path: &str) -> std::result::Result<Vec<(String, usize)>, String> {
    let bad = || format!("{path:?} is not a property path (NAME, or NAME/CHILD[2]/...)");
    let mut steps = Vec::new();
    for part in path.split('/') {
        let (name, n) = match part.strip_suffix(']').and_then(|p| p.split_once('[')) {
            Some((name, n)) => (
                name,
                n.parse::<usize>()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(bad)?,
            ),
            None => (part, 1),
        };
        let mut chars = name.chars();
        let legal = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !legal {
            return Err(bad());
        }
        steps.push((name.to_string(), n));
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_are_set_and_removed_by_path() {
        let mut el =
            parse_element_tree("<IMAGE><NAME>a</NAME><WINDOWS><ARCH>9</ARCH></WINDOWS></IMAGE>")
                .unwrap();
        el.set_path_text("WINDOWS/LANGUAGES/LANGUAGE", Some("en-US"))
            .unwrap();
        el.set_path_text("WINDOWS/LANGUAGES/LANGUAGE[2]", Some("de-DE"))
            .unwrap();
        assert_eq!(el.path_text("WINDOWS/LANGUAGES/LANGUAGE[2]"), Some("de-DE"));
        assert_eq!(el.path_text("WINDOWS/ARCH"), Some("9"));
        assert!(el
            .set_path_text("WINDOWS/LANGUAGES/LANGUAGE[4]", Some("x"))
            .is_err());
        assert!(el.set_path_text("9BAD", Some("x")).is_err());
        assert!(el.set_path_text("A[0]", Some("x")).is_err());
        el.set_path_text("WINDOWS/LANGUAGES/LANGUAGE[1]", Some(""))
            .unwrap();
        assert_eq!(el.path_text("WINDOWS/LANGUAGES/LANGUAGE"), Some("de-DE"));
        el.set_path_text("NAME", None).unwrap();
        assert_eq!(el.path_text("NAME"), None);
        // Removing what is not there changes nothing.
        el.set_path_text("NOPE/DEEPER", None).unwrap();
        assert_eq!(el.to_xml(), "<IMAGE><WINDOWS><ARCH>9</ARCH><LANGUAGES><LANGUAGE>de-DE</LANGUAGE></LANGUAGES></WINDOWS></IMAGE>");
    }
    use crate::format::bytes::string_to_utf16le;

    #[test]
    fn parses_wimlib_style_xml() {
        let text = "\u{feff}<WIM><IMAGE INDEX=\"1\"><NAME>My &amp; Image</NAME><DIRCOUNT>2</DIRCOUNT>\
            <CREATIONTIME><HIGHPART>0x01DD7CD2</HIGHPART><LOWPART>0xACC21D86</LOWPART></CREATIONTIME>\
            </IMAGE><TOTALBYTES>554</TOTALBYTES></WIM>";
        let x = parse_xml(&string_to_utf16le(text)).unwrap();
        assert_eq!(x.total_bytes, Some(554));
        assert_eq!(x.images[0].name.as_deref(), Some("My & Image"));
        assert_eq!(x.images[0].dir_count, Some(2));
        assert_eq!(x.images[0].creation_time, Some(0x01DD7CD2_ACC21D86));
        assert!(parse_xml(&string_to_utf16le("<WIM><IMAGE>")).is_err());
        assert!(parse_xml(&[0x3c]).is_err());
    }
}
