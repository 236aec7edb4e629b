//! The XML info resource as wimlib writes it for new images.

use crate::format::bytes::string_to_utf16le;
use crate::format::xml::{escape_xml as escape, Element};
use crate::image::Image;

/// One image's entry in the XML info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XmlImage {
    /// A new image, described by its counts.
    New(ImageXml),
    /// The `<IMAGE>` element of an image kept from an existing WIM (its INDEX is renumbered;
    /// everything else, such as the Windows version info, is kept as it was).
    Kept(Element),
}

impl XmlImage {
    /// The image's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        match self {
            XmlImage::New(x) => x.name.as_deref(),
            XmlImage::Kept(el) => el.child_text("NAME"),
        }
        .filter(|n| !n.is_empty())
    }
}

/// The per-image XML fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageXml {
    pub name: Option<String>,
    pub description: Option<String>,
    pub dir_count: u64,
    pub file_count: u64,
    pub total_bytes: u64,
    pub hard_link_bytes: u64,
    pub creation_time: u64,
    pub last_modification_time: u64,
}

impl ImageXml {
    /// Counts an image the way wimlib does: every name of a directory is a directory (the
    /// root included), every other name a file; stream sizes count once per name.
    pub fn from_image(
        img: &Image,
        name: Option<String>,
        description: Option<String>,
        now: u64,
    ) -> Self {
        let mut x = ImageXml {
            name,
            description,
            dir_count: 0,
            file_count: 0,
            total_bytes: 0,
            hard_link_bytes: 0,
            creation_time: now,
            last_modification_time: now,
        };
        for ino in &img.inodes {
            let links = ino.dentries.len() as u64;
            if ino.is_directory() {
                x.dir_count += links;
            } else {
                x.file_count += links;
            }
            let size: u64 = ino.streams.iter().map(|s| s.size()).sum();
            x.total_bytes += size * links;
            x.hard_link_bytes += size * links.saturating_sub(1);
        }
        x
    }
}

impl ImageXml {
    /// Writes this image's counts and modification time into `el`, the `<IMAGE>` element
    /// of the image it replaces, leaving everything else there (Windows version info,
    /// flags, names) as it was.
    pub fn update_element(&self, el: &mut Element) {
        el.set_child_text("DIRCOUNT", Some(&self.dir_count.to_string()));
        el.set_child_text("FILECOUNT", Some(&self.file_count.to_string()));
        el.set_child_text("TOTALBYTES", Some(&self.total_bytes.to_string()));
        el.set_child_text("HARDLINKBYTES", Some(&self.hard_link_bytes.to_string()));
        if el.child("LASTMODIFICATIONTIME").is_none() {
            el.children.push(Element {
                name: "LASTMODIFICATIONTIME".into(),
                ..Element::default()
            });
        }
        if let Some(t) = el
            .children
            .iter_mut()
            .find(|c| c.name == "LASTMODIFICATIONTIME")
        {
            let ft = self.last_modification_time;
            t.set_child_text("HIGHPART", Some(&format!("0x{:08X}", ft >> 32)));
            t.set_child_text("LOWPART", Some(&format!("0x{:08X}", ft & 0xffff_ffff)));
        }
    }
}

fn time(tag: &str, ft: u64) -> String {
    format!(
        "<{tag}><HIGHPART>0x{:08X}</HIGHPART><LOWPART>0x{:08X}</LOWPART></{tag}>",
        ft >> 32,
        ft & 0xffff_ffff
    )
}

/// The `<IMAGE>` element of a new image numbered `index`.
pub fn image_xml(x: &ImageXml, index: usize) -> String {
    let mut s = format!("<IMAGE INDEX=\"{index}\">");
    // Element order follows wimlib: NAME first, DESCRIPTION last.
    if let Some(n) = x.name.as_deref().filter(|n| !n.is_empty()) {
        s.push_str(&format!("<NAME>{}</NAME>", escape(n)));
    }
    s.push_str(&format!(
        "<DIRCOUNT>{}</DIRCOUNT><FILECOUNT>{}</FILECOUNT><TOTALBYTES>{}</TOTALBYTES><HARDLINKBYTES>{}</HARDLINKBYTES>",
        x.dir_count, x.file_count, x.total_bytes, x.hard_link_bytes
    ));
    s.push_str(&time("CREATIONTIME", x.creation_time));
    s.push_str(&time("LASTMODIFICATIONTIME", x.last_modification_time));
    if let Some(d) = x.description.as_deref().filter(|d| !d.is_empty()) {
        s.push_str(&format!("<DESCRIPTION>{}</DESCRIPTION>", escape(d)));
    }
    s.push_str("</IMAGE>");
    s
}

/// The XML document as UTF-16LE with a byte order mark (WIMGAPI needs the BOM).
/// `total_bytes` is the file offset of the XML data itself, which is what wimlib records.
pub fn build_xml(images: &[XmlImage], total_bytes: u64) -> Vec<u8> {
    let mut s = String::from("\u{feff}<WIM>");
    for (i, x) in images.iter().enumerate() {
        let x = match x {
            XmlImage::Kept(el) => {
                let mut el = el.clone();
                el.set_attr("INDEX", &(i + 1).to_string());
                s.push_str(&el.to_xml());
                continue;
            }
            XmlImage::New(x) => x,
        };
        s.push_str(&image_xml(x, i + 1));
    }
    s.push_str(&format!("<TOTALBYTES>{total_bytes}</TOTALBYTES></WIM>"));
    string_to_utf16le(&s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::xml::parse_xml;

    #[test]
    fn kept_element_gets_new_counts_and_keeps_the_rest() {
        let text = "<IMAGE INDEX=\"1\"><NAME>Pro</NAME><DIRCOUNT>1</DIRCOUNT>\
                    <WINDOWS><ARCH>9</ARCH></WINDOWS><LASTMODIFICATIONTIME><HIGHPART>0x1\
                    </HIGHPART><LOWPART>0x2</LOWPART></LASTMODIFICATIONTIME></IMAGE>";
        let mut el = crate::format::xml::parse_element_tree(text).unwrap();
        assert_eq!(el.name, "IMAGE");
        let x = ImageXml {
            name: None,
            description: None,
            dir_count: 4,
            file_count: 9,
            total_bytes: 100,
            hard_link_bytes: 0,
            creation_time: 0,
            last_modification_time: 0x0000_0003_0000_0004,
        };
        x.update_element(&mut el);
        let raw = build_xml(&[XmlImage::Kept(el)], 1);
        let p = parse_xml(&raw).unwrap();
        let i = &p.images[0];
        assert_eq!(i.name.as_deref(), Some("Pro"));
        assert_eq!(i.element.child_text("DIRCOUNT"), Some("4"));
        assert_eq!(i.element.child_text("FILECOUNT"), Some("9"));
        let w = i.element.child("WINDOWS").unwrap();
        assert_eq!(w.child_text("ARCH"), Some("9"));
        let t = i.element.child("LASTMODIFICATIONTIME").unwrap();
        assert_eq!(t.child_text("HIGHPART"), Some("0x00000003"));
        assert_eq!(t.child_text("LOWPART"), Some("0x00000004"));
    }

    #[test]
    fn written_xml_parses_back() {
        let x = ImageXml {
            name: Some("a <b> & c".into()),
            description: Some("desc".into()),
            dir_count: 3,
            file_count: 7,
            total_bytes: 1234,
            hard_link_bytes: 10,
            creation_time: 0x01DD_7CD2_ACC2_1D86,
            last_modification_time: 0x01DD_7CD2_ACC2_1D87,
        };
        let raw = build_xml(&[XmlImage::New(x)], 999);
        assert_eq!(&raw[..2], &[0xff, 0xfe]);
        let p = parse_xml(&raw).unwrap();
        assert_eq!(p.total_bytes, Some(999));
        let i = &p.images[0];
        assert_eq!(i.name.as_deref(), Some("a <b> & c"));
        assert_eq!(i.description.as_deref(), Some("desc"));
        assert_eq!(
            (i.dir_count, i.file_count, i.total_bytes, i.hard_link_bytes),
            (Some(3), Some(7), Some(1234), Some(10))
        );
        assert_eq!(i.creation_time, Some(0x01DD_7CD2_ACC2_1D86));
    }
}
