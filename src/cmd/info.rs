//! `wimfs info`: header, images and XML properties.

use std::path::PathBuf;

use anyhow::Result;
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
    /// Show only this image (1-based index or name).
    image: Option<String>,
    /// Print machine-readable JSON.
    #[arg(long)]
    json: bool,
    /// Verify the integrity table.
    #[arg(long)]
    check: bool,
    /// Other parts of a split WIM (glob).
    #[arg(long = "ref", value_name = "GLOB")]
    refs: Vec<String>,
    /// Print the raw XML data.
    #[arg(long)]
    xml: bool,
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
    let wim = super::open_wim_with(&a.wimfile, &a.refs, false, true)?;
    let integrity_ok = if a.check {
        Some(wim.check_integrity()?)
    } else {
        None
    };
    if a.xml {
        use std::io::Write;
        std::io::stdout().write_all(wim.xml_raw())?;
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
        // The same attributes in the same order as wimlib-imagex (pipable WIMs are not read).
        let mut attrs = Vec::new();
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
