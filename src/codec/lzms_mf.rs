//! LZ match finder for the LZMS compressor: a walk over the LCP-interval tree of the whole
//! buffer (the internal nodes of its suffix tree), in text order.
//!
//! The suffix array comes from libsais; the LCP array is computed from it (Kasai et al.),
//! and one scan of both lists the lcp-intervals bottom-up (Abouelhoda et al.), each with a
//! reference to its parent. The matches of position `p` are then found by climbing from the
//! deepest interval holding suffix `p` towards the root: each interval remembers the latest
//! position that climbed through it, and that position shares exactly the interval's lcp
//! with `p`. So the climb yields, for every match length, the match with the smallest offset,
//! and every position costs the same, however large and repetitive the buffer, unlike tree
//! or chain finders whose searches grow with the window.
//!
//! A climb marks every interval it passes as last seen by `p`, but instead of rewriting long
//! runs of intervals that another position marked, it only leaves a link at that position
//! (see [`LcpitFinder::advance`]): runs are rewritten lazily by later climbs.
//!
//! Memory: two `u32` per input byte (the suffix array and rank array are reused for the
//! tree), plus what libsais needs while it sorts.

use super::lzx_enc::Match;

/// Bits at the top of a packed interval reference that hold the interval's lcp; the rest is
/// the interval's index. A position (which has nothing in the top bits) in place of a
/// reference means "visited by that position".
const LCP_BITS: u32 = 6;
const LCP_SHIFT: u32 = 32 - LCP_BITS;
const IDX_MASK: u32 = (1 << LCP_SHIFT) - 1;
/// Longer common prefixes are stored as this: matches are reported up to this length, and
/// the tree is at most this deep.
pub(super) const LCP_MAX: usize = (1 << LCP_BITS) - 1;
/// Largest buffer the finder takes: positions and interval indices need `LCP_SHIFT` bits.
pub(super) const MAX_BUFFER: usize = 1 << LCP_SHIFT;
/// Shorter common prefixes count as none: the tree has no intervals below this lcp other
/// than its root.
const MIN_LCP: usize = 2;

/// How far ahead the table-building loops prefetch their random accesses.
const PREFETCH_AHEAD: usize = 8;

pub(super) struct LcpitFinder {
    /// Per position: first the rank of its suffix; then the reference of the deepest interval
    /// holding the suffix; once the position is passed, the reference of the interval at
    /// which the run of intervals it last visited ends (0: at the root).
    pos_data: Vec<u32>,
    /// First the suffix array (with the capped LCP array in its top bits); then per
    /// interval, the reference of its parent until a position visits it, and after that the
    /// latest position that did.
    intervals: Vec<u32>,
    /// The next position to advance over.
    cur: usize,
    /// Prefetch pipeline of the next climbs' first steps, each a random access: the first
    /// interval of the climb three positions ahead, and the position that last visited the
    /// first interval of the one two ahead (see `advance`).
    ahead: [u32; 2],
}

impl LcpitFinder {
    pub(super) fn new() -> Self {
        LcpitFinder {
            pos_data: Vec::new(),
            intervals: Vec::new(),
            cur: 0,
            ahead: [0; 2],
        }
    }

    /// Builds the tree of `d` (at most `MAX_BUFFER` bytes); the next `advance` is at
    /// position 0.
    pub(super) fn load(&mut self, d: &[u8]) {
        let n = d.len();
        assert!(n <= MAX_BUFFER, "buffer too large for the lcpit finder");
        self.cur = 0;
        self.ahead = [0; 2];
        // Every entry is written below before it is read: no need to clear them.
        self.intervals.resize(n, 0);
        self.pos_data.resize(n, 0);
        if n == 0 {
            return;
        }
        // SAFETY: `d` has `n` readable bytes and `intervals` has room for `n` i32s, as
        // libsais requires with no extra space (`fs` = 0); it writes nothing else.
        let ret = unsafe {
            libsais_sys::libsais::libsais(
                d.as_ptr(),
                self.intervals.as_mut_ptr().cast::<i32>(),
                n as i32,
                0,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(ret, 0, "libsais failed");
        let sa = &mut self.intervals[..];
        let rank = &mut self.pos_data[..];
        for (r, &p) in sa.iter().enumerate() {
            rank[p as usize] = r as u32;
        }
        build_lcp(d, sa, rank);
        build_tree(sa, rank);
    }

    /// Advances over the next position; with `out`, first appends its matches to it, by
    /// increasing length and offset, lengths capped at `LCP_MAX`.
    #[inline(always)]
    pub(super) fn advance(&mut self, out: Option<&mut Vec<Match>>) {
        let cur = self.cur as u32;
        self.cur += 1;
        let pos_data = &mut self.pos_data[..];
        let intervals = &mut self.intervals[..];
        let idx = |r: u32| (r & IDX_MASK) as usize;

        // Start loading what the next climbs read first, assuming their first intervals
        // have been visited: a climb reads its first interval, then the `pos_data` of that
        // interval's visitor, then the interval that entry refers to. (Values read here are
        // only hints; masked, they are all below the buffer length.)
        let n = pos_data.len();
        let [first3, first2] = self.ahead;
        let seen2 = intervals[first3 as usize] & IDX_MASK;
        super::prefetch(&pos_data[seen2 as usize]);
        super::prefetch(&intervals[idx(pos_data[first2 as usize])]);
        let pos3 = cur as usize + 3;
        let next3 = if pos3 < n { idx(pos_data[pos3]) } else { 0 };
        super::prefetch(&intervals[next3]);
        self.ahead = [next3 as u32, seen2];
        // A visited interval holds its visitor's position, so an interval visited by
        // position 0 would look like a child of the root (parent reference 0) that was
        // never visited: position 0 visits nothing and is never a match.
        if cur == 0 {
            pos_data[0] = 0;
            return;
        }

        // Climb the intervals no position has visited yet (they still hold their parent
        // references, which carry a nonzero lcp unless the parent is the root), marking them
        // as visited by `cur`.
        let mut r = std::mem::replace(&mut pos_data[cur as usize], 0);
        let mut up;
        loop {
            up = intervals[idx(r)];
            if up >> LCP_SHIFT == 0 {
                break;
            }
            intervals[idx(r)] = cur;
            r = up;
        }
        if up == 0 {
            // `r` is the root or an unvisited child of the root: no earlier position shares
            // `MIN_LCP` bytes with `cur`.
            if r != 0 {
                intervals[idx(r)] = cur;
            }
            return;
        }

        // `r` was last visited by position `up`. From here on the climb goes by runs: a
        // run is the intervals a position marked that no later position has marked since,
        // and the position's `pos_data` tells where its run ends. A position whose run
        // ends below `r` is outdated there: a later position passed through that end and
        // then through `r`, so follow to that later one.
        let mut out = out;
        let first = out.as_ref().map_or(0, |o| o.len());
        let mut seen = up;
        loop {
            let mut end;
            loop {
                end = pos_data[seen as usize];
                if end <= r {
                    break;
                }
                seen = intervals[idx(end)];
            }
            // `seen` shares `r`'s lcp with `cur`. Its run now ends at `r`, which belongs
            // to `cur` (as does everything above, so `cur`'s own run has no end).
            intervals[idx(r)] = cur;
            pos_data[seen as usize] = r;
            if let Some(out) = out.as_deref_mut() {
                out.push(Match {
                    len: r >> LCP_SHIFT,
                    offset: cur - seen,
                });
            }
            if end == 0 {
                break;
            }
            r = end;
            seen = intervals[idx(r)];
        }
        if let Some(out) = out {
            out[first..].reverse();
        }
    }
}

/// Puts into the top bits of each suffix array entry `sa[r]` (r >= 1) the length of the
/// common prefix of the suffixes at `sa[r - 1]` and `sa[r]`, capped to `MIN_LCP..=LCP_MAX`
/// (shorter ones as 0). `rank` is the inverse of `sa`.
fn build_lcp(d: &[u8], sa: &mut [u32], rank: &[u32]) {
    let n = d.len();
    // The common prefix of the suffix at `i` and its predecessor in the array is at least
    // that of `i - 1` and its predecessor, less one: `h` carries that over.
    let mut h = 0usize;
    for i in 0..n {
        if let Some(&r) = rank.get(i + PREFETCH_AHEAD) {
            super::prefetch(&sa[(r as usize).saturating_sub(1)]);
        }
        let r = rank[i] as usize;
        if r == 0 {
            h = 0;
            continue;
        }
        let j = sa[r - 1] as usize & IDX_MASK as usize;
        h = super::lzx_enc::extend(d, j, i, h, n - i.max(j));
        let stored = if h < MIN_LCP { 0 } else { h.min(LCP_MAX) };
        sa[r] |= (stored as u32) << LCP_SHIFT;
        h = h.saturating_sub(1);
    }
}

/// Lists the lcp-intervals from the suffix and LCP arrays in `sa` by one scan in rank order
/// with a stack of the open ones (each deeper than the one below it). An interval gets its
/// index when it opens, and its parent reference (`intervals` entry) when it closes; each
/// suffix's position gets the reference of the deepest interval holding it.
///
/// At most one interval opens per rank, so interval indices never overtake the scan: the
/// tree is written over the suffix array behind it, and `pos_data` over the rank array
/// (each rank is read once, by `build_lcp`).
fn build_tree(intervals: &mut [u32], pos_data: &mut [u32]) {
    let n = intervals.len();
    // The root has lcp 0 and index 0; stack entries are packed references.
    let mut stack = [0u32; LCP_MAX + 1];
    let mut top = 0;
    let mut next_idx = 1u32;
    let mut prev_pos = (intervals[0] & IDX_MASK) as usize;
    intervals[0] = 0;
    for r in 1..n {
        if let Some(&ahead) = intervals.get(r + PREFETCH_AHEAD) {
            super::prefetch(&pos_data[(ahead & IDX_MASK) as usize]);
        }
        let entry = intervals[r];
        let lcp = entry >> LCP_SHIFT;
        let pos = (entry & IDX_MASK) as usize;
        // Suffix `prev_pos` (rank r - 1) lies in the deepest open interval, after opening
        // one for lcp(r - 1, r) if that is deeper.
        if lcp > stack[top] >> LCP_SHIFT {
            top += 1;
            stack[top] = lcp << LCP_SHIFT | next_idx;
            next_idx += 1;
            pos_data[prev_pos] = stack[top];
        } else {
            pos_data[prev_pos] = stack[top];
            // Close the intervals deeper than `lcp`; where none at `lcp` is open, one opens
            // as the parent of the last closed.
            while lcp < stack[top] >> LCP_SHIFT {
                let closed = (stack[top] & IDX_MASK) as usize;
                top -= 1;
                if lcp > stack[top] >> LCP_SHIFT {
                    top += 1;
                    stack[top] = lcp << LCP_SHIFT | next_idx;
                    next_idx += 1;
                }
                intervals[closed] = stack[top];
            }
        }
        prev_pos = pos;
    }
    pos_data[prev_pos] = stack[top];
    while top > 0 {
        intervals[(stack[top] & IDX_MASK) as usize] = stack[top - 1];
        top -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The matches a search of all earlier positions finds: for each length up to
    /// `LCP_MAX` that some earlier position shares, the smallest offset; only lengths
    /// where that offset changes are kept (the longest at each offset).
    fn brute(d: &[u8], pos: usize) -> Vec<(u32, u32)> {
        let cap = |l: usize| l.min(LCP_MAX);
        let lcp = |a: usize| {
            cap(d[a..]
                .iter()
                .zip(&d[pos..])
                .take_while(|(x, y)| x == y)
                .count())
        };
        let mut out: Vec<(u32, u32)> = Vec::new();
        // Position 0 is never reported (see `advance`).
        for m in (1..pos).rev() {
            let l = lcp(m);
            if l >= MIN_LCP && out.last().is_none_or(|&(len, _)| l > len as usize) {
                out.push((l as u32, (pos - m) as u32));
            }
        }
        out
    }

    fn check(d: &[u8]) {
        let mut f = LcpitFinder::new();
        f.load(d);
        let mut got = Vec::new();
        for pos in 0..d.len() {
            got.clear();
            f.advance(Some(&mut got));
            let got: Vec<(u32, u32)> = got.iter().map(|m| (m.len, m.offset)).collect();
            assert_eq!(got, brute(d, pos), "pos {pos} of {d:?}");
        }
    }

    #[test]
    fn matches_agree_with_brute_force() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        check(b"");
        check(b"a");
        check(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        check(b"abracadabra abracadabra cadabra");
        for round in 0..200 {
            let n = 1 + (next() % 400) as usize;
            let alphabet = 1 + (next() % if round % 2 == 0 { 3 } else { 256 }) as u8;
            let mut v: Vec<u8> = (0..n).map(|_| (next() % alphabet as u64) as u8).collect();
            // Some long repeats too.
            if n > 100 && round % 3 == 0 {
                let (a, b) = (next() as usize % (n / 2), n / 2);
                let l = (next() as usize % (n - b)).min(n - b);
                v.copy_within(a..a + l.min(b - a), b);
            }
            check(&v);
        }
    }
}
