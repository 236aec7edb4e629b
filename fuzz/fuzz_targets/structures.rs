//! Fuzzes the fixed structures: header, blob table, chunk tables, XML, integrity table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wimfs::codec::Compression;
use wimfs::format::{blob_table, chunk_table, header, integrity, xml};

fuzz_target!(|data: &[u8]| {
    let _ = header::Header::parse(data);
    let _ = blob_table::parse_blob_table(data);
    let _ = integrity::parse_integrity_table(data);
    let _ = xml::parse_xml(data);
    if data.len() >= 12 {
        let usize = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as u64;
        let size_in_wim = u32::from_le_bytes([data[4], data[5], data[6], data[7]]) as u64;
        let cs = 1u32 << (data[8] % 24).max(1);
        let rest = &data[12..];
        let n = chunk_table::normal_table_size(usize, cs) as usize;
        if n <= rest.len() {
            let _ = chunk_table::parse_normal(&rest[..n], usize, size_in_wim, cs, Compression::Lzx);
        }
        let n = chunk_table::solid_table_size(usize, cs) as usize;
        if n <= rest.len() {
            let _ = chunk_table::parse_solid(&rest[..n], usize, size_in_wim, cs, Compression::Lzms);
        }
        let _ = chunk_table::parse_solid_header(rest);
    }
});
