//! Windows FILETIME (100 ns ticks since 1601-01-01 UTC) conversions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::Datelike;

/// 100 ns ticks between 1601-01-01 and 1970-01-01.
const EPOCH_DIFF: u64 = 116_444_736_000_000_000;

/// Seconds and nanoseconds since the Unix epoch (negative before 1970).
pub fn filetime_to_unix(ft: u64) -> (i64, u32) {
    let ticks = ft as i128 - EPOCH_DIFF as i128;
    let secs = ticks.div_euclid(10_000_000) as i64;
    let nanos = (ticks.rem_euclid(10_000_000) * 100) as u32;
    (secs, nanos)
}

/// A FILETIME as a `SystemTime`.
pub fn filetime_to_system(ft: u64) -> SystemTime {
    let (s, n) = filetime_to_unix(ft);
    if s >= 0 {
        UNIX_EPOCH + Duration::new(s as u64, n)
    } else {
        UNIX_EPOCH - Duration::from_secs(s.unsigned_abs()) + Duration::from_nanos(n as u64)
    }
}

/// A Unix time as a FILETIME (clamped to the representable range).
pub fn unix_to_filetime(secs: i64, nanos: u32) -> u64 {
    let t = secs as i128 * 10_000_000 + (nanos / 100) as i128 + EPOCH_DIFF as i128;
    t.clamp(0, u64::MAX as i128) as u64
}

/// The current time as a FILETIME.
pub fn now_filetime() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    unix_to_filetime(d.as_secs() as i64, d.subsec_nanos())
}

/// Formats a FILETIME as wimlib-imagex prints one, `Wed Dec 02 09:05:07 2026 UTC`: English
/// names whatever the locale, every number zero-padded, always in UTC, seconds truncated.
pub fn format_filetime(ft: u64) -> String {
    let (s, _) = filetime_to_unix(ft);
    match chrono::DateTime::from_timestamp(s, 0) {
        // C's %Y: the plain year, no sign or padding past 9999 as chrono's %Y would add.
        Some(t) => format!("{} {} UTC", t.format("%a %b %d %H:%M:%S"), t.year()),
        None => format!("FILETIME {ft:#x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(filetime_to_unix(EPOCH_DIFF), (0, 0));
        assert_eq!(unix_to_filetime(1, 500), EPOCH_DIFF + 10_000_005);
        assert_eq!(
            format_filetime(0x01DD7CD2_ACC21D86),
            "Wed Nov 25 11:46:57 2026 UTC"
        );
        assert_eq!(filetime_to_unix(0).0, -11_644_473_600);
    }

    #[test]
    fn format_pads_like_wimlib() {
        // 2026-12-02 09:05:07.9999999 UTC: day, hour, minute and second all need a zero, and
        // the fraction is dropped, not rounded.
        let ft = unix_to_filetime(1_796_202_307, 999_999_900);
        assert_eq!(format_filetime(ft), "Wed Dec 02 09:05:07 2026 UTC");
        // A missing time (0) is the FILETIME epoch, as wimlib prints it.
        assert_eq!(format_filetime(0), "Mon Jan 01 00:00:00 1601 UTC");
        assert_eq!(format_filetime(u64::MAX), "Sun May 28 05:36:10 60056 UTC");
    }
}
