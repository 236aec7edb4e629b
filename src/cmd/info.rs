//! `wimfs info`: header, images and XML properties.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use wimfs::format::header::{
    FLAG_METADATA_ONLY, FLAG_NAMES, FLAG_READONLY, FLAG_RESOURCE_ONLY, FLAG_RP_FIX,
};
use wimfs::format::xml::{Element, ImageInfo};
use wimfs::time::format_filetime;

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// The WIM file.
    wimfile: PathBuf,
    /// Show only this image (1-based index or name); the image to change with NEW_NAME,
    /// NEW_DESC, --boot or --image-property ("0" with --boot: no bootable image).
    image: Option<String>,
    /// Rename the image.
    new_name: Option<String>,
    /// Change the image's description.
    new_desc: Option<String>,
    /// Print machine-readable JSON.
    #[arg(long)]
    json: bool,
    /// Verify the integrity table; when changing the WIM, write one.
    #[arg(long)]
    check: bool,
    /// When changing the WIM, write an integrity table (without verifying the old one).
    #[arg(long)]
    include_integrity: bool,
    /// When changing the WIM, write no integrity table.
    #[arg(long, conflicts_with_all = ["check", "include_integrity"])]
    nocheck: bool,
    /// Other parts of a split WIM (glob).
    #[arg(long = "ref", value_name = "GLOB")]
    refs: Vec<String>,
    /// Print the raw XML data.
    #[arg(long)]
    xml: bool,
    /// Write the raw XML data (UTF-16LE, as stored) to FILE.
    #[arg(long, value_name = "FILE")]
    extract_xml: Option<PathBuf>,
    /// Print the WIM header's fields.
    #[arg(long)]
    header: bool,
    /// Print every blob table entry.
    #[arg(long)]
    blobs: bool,
    /// Make IMAGE the bootable image.
    #[arg(long)]
    boot: bool,
    /// Set a property of IMAGE in the XML data (NAME=VALUE; the name may be a path such as
    /// WINDOWS/LANGUAGES/LANGUAGE[2]; an empty value removes it). Repeatable.
    #[arg(long, value_name = "NAME=VALUE")]
    image_property: Vec<String>,
}

fn image_json(i: &ImageInfo) -> Value {
    json!({
        "index": i.index,
        "name": i.name,
        "description": i.description,
        "dir_count": i.dir_count,
        "file_count": i.file_count,
        "total_bytes": i.total_bytes,
        "hard_link_bytes": i.hard_link_bytes,
        "creation_time": i.creation_time,
        "last_modification_time": i.last_modification_time,
        "wimboot": i.wimboot,
        "properties": element_json(&i.element),
    })
}

fn element_json(e: &Element) -> Value {
    if e.children.is_empty() {
        return Value::String(e.text.trim().to_string());
    }
    let mut map = serde_json::Map::new();
    for c in &e.children {
        map.insert(c.name.clone(), element_json(c));
    }
    Value::Object(map)
}

/// Leaf properties below an image element as `PATH = value` lines (Windows info and the like).
fn flatten(e: &Element, prefix: &str, out: &mut Vec<(String, String)>) {
    for c in &e.children {
        let key = if prefix.is_empty() {
            c.name.clone()
        } else {
            format!("{prefix}/{}", c.name)
        };
        if c.children.is_empty() {
            out.push((key, c.text.trim().to_string()));
        } else {
            flatten(c, &key, out);
        }
    }
}

const SHOWN: &[&str] = &[
    "NAME",
    "DESCRIPTION",
    "DIRCOUNT",
    "FILECOUNT",
    "TOTALBYTES",
    "HARDLINKBYTES",
    "CREATIONTIME",
    "LASTMODIFICATIONTIME",
    "WIMBOOT",
];

pub fn run(a: InfoArgs) -> Result<i32> {
    let mut props = Vec::new();
    for p in &a.image_property {
        match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => props.push((k.to_string(), v.to_string())),
            _ => bail!("--image-property {p:?}: expected NAME=VALUE"),
        }
    }
    if let Some(n) = &a.new_name {
        props.push(("NAME".into(), n.clone()));
    }
    if let Some(d) = &a.new_desc {
        props.push(("DESCRIPTION".into(), d.clone()));
    }
    if a.boot || !props.is_empty() {
        return change(&a, &props);
    }
    let wim = super::open_wim_with(&a.wimfile, &a.refs, false, true)?;
    let integrity_ok = if a.check {
        Some(wim.check_integrity()?)
    } else {
        None
    };
    // What wimlib-imagex prints with these options replaces the summary.
    if a.header || a.blobs || a.xml || a.extract_xml.is_some() {
        use std::io::Write;
        if let Some(spec) = &a.image {
            wim.resolve_image(spec)?;
        }
        if a.header {
            print_header(wim.header());
        }
        if a.blobs {
            let h = wim.header();
            if h.total_parts != 1 {
                eprintln!(
                    "Warning: Only showing the blobs for part {} of a {}-part WIM.",
                    h.part_number, h.total_parts
                );
            }
            print_blobs(&wim);
        }
        if a.xml {
            std::io::stdout().write_all(wim.xml_raw())?;
        }
        if let Some(f) = &a.extract_xml {
            std::fs::write(f, wim.xml_raw())
                .with_context(|| format!("{}: cannot write the XML data", f.display()))?;
        }
        return Ok(0);
    }
    let only = match &a.image {
        Some(s) => Some(wim.resolve_image(s)?),
        None => None,
    };
    let images: Vec<&ImageInfo> = wim
        .xml()
        .images
        .iter()
        .filter(|i| only.is_none_or(|o| o == i.index))
        .collect();
    let h = wim.header();
    let compression = h.compression()?;
    let flags: Vec<&str> = FLAG_NAMES
        .iter()
        .filter(|(f, _)| h.flags & f != 0)
        .map(|&(_, n)| n)
        .collect();
    if a.json {
        let v = json!({
            "path": wim.path(),
            "guid": h.guid_hex(),
            "version": h.version,
            "image_count": wim.image_count(),
            "compression": compression.name(),
            "chunk_size": h.chunk_size,
            "part_number": h.part_number,
            "total_parts": h.total_parts,
            "boot_index": h.boot_index,
            "size": wim.file_size(),
            "flags": flags,
            "has_integrity_table": !h.integrity.is_empty(),
            "integrity_ok": integrity_ok,
            "total_bytes": wim.xml().total_bytes,
            "images": images.iter().map(|i| image_json(i)).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    if only.is_none() {
        println!("WIM Information:");
        println!("----------------");
        println!("Path:           {}", wim.path().display());
        println!("GUID:           0x{}", h.guid_hex());
        println!("Version:        {}", h.version);
        println!("Image Count:    {}", wim.image_count());
        println!("Compression:    {}", compression.name());
        println!("Chunk Size:     {} bytes", h.chunk_size);
        println!("Part Number:    {}/{}", h.part_number, h.total_parts);
        println!("Boot Index:     {}", h.boot_index);
        // wimlib-imagex prints the XML's TOTALBYTES here (the file up to its XML data).
        println!(
            "Size:           {} bytes",
            wim.xml().total_bytes.unwrap_or(0)
        );
        // The same attributes in the same order as wimlib-imagex.
        let mut attrs = Vec::new();
        if h.magic == wimfs::format::header::PWM_MAGIC {
            attrs.push("Pipable");
        }
        if !h.integrity.is_empty() {
            attrs.push("Integrity info");
        }
        for (flag, name) in [
            (FLAG_RP_FIX, "Relative path junction"),
            (FLAG_RESOURCE_ONLY, "Resource only"),
            (FLAG_METADATA_ONLY, "Metadata only"),
            (FLAG_READONLY, "Readonly"),
        ] {
            if h.flags & flag != 0 {
                attrs.push(name);
            }
        }
        println!("Attributes:     {}", attrs.join(", "));
        match integrity_ok {
            Some(true) => println!("Integrity:      OK"),
            Some(false) => println!("Integrity:      no integrity table"),
            None => {}
        }
        println!();
        println!("Available Images:");
        println!("-----------------");
    }
    if let Some(n) = only {
        let heading = format!("Information for Image {n}");
        println!("{heading}\n{}", "-".repeat(heading.len()));
    }
    for i in images {
        println!("Index:                  {}", i.index);
        println!(
            "Name:                   {}",
            super::printable(i.name.as_deref().unwrap_or(""))
        );
        println!(
            "Description:            {}",
            super::printable(i.description.as_deref().unwrap_or(""))
        );
        println!("Directory Count:        {}", i.dir_count.unwrap_or(0));
        println!("File Count:             {}", i.file_count.unwrap_or(0));
        println!("Total Bytes:            {}", i.total_bytes.unwrap_or(0));
        println!("Hard Link Bytes:        {}", i.hard_link_bytes.unwrap_or(0));
        println!(
            "Creation Time:          {}",
            format_filetime(i.creation_time.unwrap_or(0))
        );
        println!(
            "Last Modification Time: {}",
            format_filetime(i.last_modification_time.unwrap_or(0))
        );
        let mut extra = Vec::new();
        flatten(&i.element, "", &mut extra);
        for (k, v) in extra.iter().filter(|(k, _)| {
            !SHOWN
                .iter()
                .any(|s| k == s || k.starts_with(&format!("{s}/")))
        }) {
            println!("{:<24}{}", format!("{k}:"), super::printable(v));
        }
        println!(
            "WIMBoot compatible:     {}",
            if i.wimboot { "yes" } else { "no" }
        );
        println!();
    }
    Ok(0)
}

/// `info` with NEW_NAME, NEW_DESC, `--boot` or `--image-property`: changes the XML data and
/// the boot index in place (new tables and XML appended, then the header), as
/// wimlib-imagex does, printing what it changes in its words.
fn change(a: &InfoArgs, props: &[(String, String)]) -> Result<i32> {
    use wimfs::write::{WimWriter, WriterOptions};
    let wim = super::open_wim(&a.wimfile, &a.refs, a.check)?;
    let count = wim.image_count();
    let spec = a.image.as_deref().unwrap_or("all");
    let image = match spec {
        "0" if a.boot && props.is_empty() => 0,
        "0" => bail!("Cannot change image properties when using image 0"),
        s if s.eq_ignore_ascii_case("all") && count == 1 => 1,
        s if s.eq_ignore_ascii_case("all") => {
            if a.boot {
                bail!(
                    "Cannot specify the --boot flag without specifying a specific image in a \
                     multi-image WIM"
                );
            }
            bail!(
                "Can't change image properties without specifying a specific image in a \
                 multi-image WIM"
            );
        }
        s => wim.resolve_image(s)?,
    };
    if a.boot && count == 0 {
        bail!("--boot is meaningless on a WIM with no images");
    }
    let had_integrity = !wim.header().integrity.is_empty();
    drop(wim);
    let integrity = match (a.check || a.include_integrity, a.nocheck) {
        (true, _) => true,
        (_, true) => false,
        _ => had_integrity,
    };
    let opts = WriterOptions {
        resources: super::file_resources(&a.wimfile)?,
        solid: None,
        threads: 0,
        check_integrity: integrity,
        rp_fix: false,
    };
    let mut w = WimWriter::append(&a.wimfile, opts)
        .with_context(|| format!("{}: opening to change", a.wimfile.display()))?;
    if w.image_count() != count {
        bail!("{}: changed while it was being opened", a.wimfile.display());
    }
    let mut changed = integrity != had_integrity;
    if a.boot {
        if w.boot_index() == image {
            println!("Image {image} is already marked as bootable.");
        } else {
            println!("Marking image {image} as bootable.");
            w.set_boot_index(image)?;
            changed = true;
        }
    }
    for (name, value) in props {
        if w.image_property(image, name).as_deref() == Some(value.as_str()) {
            println!("The {name} property of image {image} already has value \"{value}\".");
        } else {
            println!("Setting the {name} property of image {image} to \"{value}\".");
            w.set_image_property(image, name, Some(value))?;
            changed = true;
        }
    }
    if !changed {
        println!(
            "The file \"{}\" was not modified because nothing needed to be done.",
            a.wimfile.display()
        );
        return Ok(0);
    }
    w.finish()
        .with_context(|| format!("{}: finishing", a.wimfile.display()))?;
    Ok(0)
}

/// The header's fields, one per line, labelled as `wimlib-imagex info --header` labels them.
fn print_header(h: &wimfs::format::header::Header) {
    use wimfs::format::header::FLAG_NAMES;
    let magic: String = h
        .magic
        .iter()
        .map(|&c| match c.is_ascii_alphabetic() {
            true => (c as char).to_string(),
            false => format!("\\{c:o}"),
        })
        .collect();
    let field = |label: &str, value: String| println!("{label:<28}= {value}");
    field("Magic Characters", magic);
    field(
        "Header Size",
        wimfs::format::header::HEADER_SIZE.to_string(),
    );
    field("Version", format!("{:#x}", h.version));
    field("Flags", format!("{:#x}", h.flags));
    for (flag, name) in FLAG_NAMES {
        if h.flags & flag != 0 {
            println!("    WIM_HDR_FLAG_{name} is set");
        }
    }
    field("Chunk Size", h.chunk_size.to_string());
    field("GUID", h.guid_hex());
    field("Part Number", h.part_number.to_string());
    field("Total Parts", h.total_parts.to_string());
    field("Image Count", h.image_count.to_string());
    for (what, r, original) in [
        ("Blob Table", &h.blob_table, "Original_size"),
        ("XML Data", &h.xml, "Original Size"),
        ("Boot Metadata", &h.boot_metadata, "Original Size"),
    ] {
        field(&format!("{what} Size"), r.size_in_wim.to_string());
        field(&format!("{what} Flags"), format!("{:#x}", r.flags));
        field(&format!("{what} Offset"), r.offset.to_string());
        field(
            &format!("{what} {original}"),
            r.uncompressed_size.to_string(),
        );
        if what == "Boot Metadata" {
            field("Boot Index", h.boot_index.to_string());
        }
    }
    let r = &h.integrity;
    field("Integrity Size", r.size_in_wim.to_string());
    field("Integrity Flags", format!("{:#x}", r.flags));
    field("Integrity Offset", r.offset.to_string());
    field("Integrity Original_size", r.uncompressed_size.to_string());
}

/// Every blob table entry (metadata resources included), as `wimlib-imagex info --blobs`
/// prints them.
fn print_blobs(wim: &wimfs::Wim) {
    use wimfs::read::Storage;
    let metadata: Vec<_> = (1..=wim.image_count())
        .filter_map(|i| wim.metadata_location(i))
        .collect();
    let all = metadata
        .iter()
        .map(|l| (*l, true))
        .chain(wim.blobs().map(|l| (l, false)));
    for (loc, is_metadata) in all {
        let res = wim.resource(loc);
        let hex: String = loc.hash.iter().map(|b| format!("{b:02x}")).collect();
        println!("Hash              = 0x{hex}");
        println!("Uncompressed size = {} bytes", loc.size);
        let solid = matches!(res.storage, Storage::Solid { .. });
        if solid {
            println!(
                "Solid resource    = {} => {} bytes @ offset {}",
                res.uncompressed_size, res.size_in_wim, res.offset
            );
            println!("Solid offset      = {} bytes", loc.offset);
        } else {
            println!("Compressed size   = {} bytes", res.size_in_wim);
            println!("Offset in WIM     = {} bytes", res.offset);
        }
        println!("Part Number       = {}", wim.part_number_of(loc));
        println!("Reference Count   = {}", loc.refcount);
        let mut flags = String::new();
        if res.reshdr_flags() & wimfs::format::reshdr::RESHDR_FLAG_COMPRESSED != 0 {
            flags.push_str("WIM_RESHDR_FLAG_COMPRESSED  ");
        }
        if is_metadata {
            flags.push_str("WIM_RESHDR_FLAG_METADATA  ");
        }
        if solid {
            flags.push_str("WIM_RESHDR_FLAG_SOLID  ");
        }
        println!("Flags             = {flags}");
        println!();
    }
}
