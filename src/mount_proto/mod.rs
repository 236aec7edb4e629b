//! The control protocol between `wimfs` and its mount daemons, defined once for both: where
//! control endpoints live, how they are named, and who may talk to them.
//!
//! One request line per connection, one reply line: `status` → a JSON object; `unmount` /
//! `unmount lazy` / `commit [check] [new-image] [rebuild]` → `ok` or `error <ERRNO>: text`.

#[cfg(unix)]
pub mod unix;

/// FNV-1a of a mountpoint's name: short, stable names for sockets and pipes.
pub fn mount_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn mount_hash_is_fnv1a() {
        assert_eq!(super::mount_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::mount_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
