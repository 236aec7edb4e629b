//! LZX compression in the form WIM files use it (the inverse of `lzx.rs`).
//!
//! Each chunk becomes a self-contained LZX stream: the input is copied and E8-translated with
//! WIM's fixed translation size, then cut into blocks, each coded as a verbatim or
//! aligned-offset block (whichever is smaller) with Huffman codes built for that block.
//!
//! Two parsers choose the literals and matches:
//! * levels below [`MIN_OPTIMAL_LEVEL`]: a lazy parser over hash chains, fast and plain;
//! * higher levels: a binary-tree match finder caches the matches of every position of a
//!   block, then a min-cost path search over those matches (plus the repeat offsets the path
//!   itself produces) prices symbols with the Huffman code lengths of a quick greedy parse;
//!   from level 60 up, the search first runs again (cut short: it only gathers statistics)
//!   to price the next one with the lengths its path would produce. Almost all of the ratio
//!   comes from this.

use super::lzx::{
    DEFAULT_BLOCK_SIZE, E8_FILE_SIZE, E8_TAIL, MAX_MAIN_SYMS, MAX_SLOTS, MAX_WINDOW_ORDER,
    MIN_ALIGNED_SLOT, MIN_MATCH, MIN_WINDOW_ORDER, NUM_ALIGNED_SYMS, NUM_CHARS, NUM_LEN_SYMS,
    NUM_PRE_SYMS, NUM_PRIMARY_LENS, NUM_RECENT,
};
use super::{CodecError, Compressor};

const MAX_MATCH: usize = 257;

// Codeword length limits. The format allows 16 for the main and length codes; the precode
// gets a tighter limit because its lengths are sent in 4 bits and it is tiny anyway.
const MAX_MAIN_LEN: u32 = 16;
const MAX_LEN_LEN: u32 = 16;
const MAX_PRE_LEN: u32 = 7;
const MAX_ALIGNED_LEN: u32 = 7;

/// Levels from here up use the near-optimal parser.
const MIN_OPTIMAL_LEVEL: u32 = 35;
/// Largest block the near-optimal parser builds: bigger blocks amortise the code headers,
/// smaller ones adapt the codes; the split heuristic usually ends blocks earlier.
const MAX_BLOCK: usize = 100_000;
/// Block splits are only considered this far from either end of a block.
const MIN_BLOCK: usize = 6_500;
/// Block size the lazy parser aims for.
const LAZY_BLOCK: usize = 65_536;
/// Most cache entries one position can add: a count, a length-2 and a length-3 candidate
/// and strictly increasing longer lengths.
const MAX_MATCHES_PER_POS: usize = MAX_MATCH + 3;

/// Nodes whose queue may still be read: a match reaches back at most `MAX_MATCH` nodes.
const QUEUE_RING: usize = 512;

/// Flags a node reached by "explicit match, literal, rep0 match".
const GAP: u32 = 1 << 31;
/// The parser's passes before the last only gather statistics to price the next one with, so
/// they are cut short: they cover the first this many eighths of the block and try just the
/// longest cached match of each position. The last pass covers it all, with every match.
const STATS_PASS_EIGHTHS: usize = 6;

/// Fixed-point scale of the parser's cost model: one bit costs this much.
const BIT: u32 = 64;

/// Extra offset bits per offset slot (slots 0-2 are the repeat offsets and have none).
const EXTRA_BITS: [u32; MAX_SLOTS] = {
    let mut t = [0u32; MAX_SLOTS];
    let mut s = 4;
    while s < MAX_SLOTS {
        let e = (s / 2 - 1) as u32;
        t[s] = if e > 17 { 17 } else { e };
        s += 1;
    }
    t
};

/// Smallest "formatted" offset (match offset + 2) of each slot; slots 0-2 stand for the
/// repeat offsets, so formatted offsets 0-2 never occur for explicit matches.
const SLOT_BASE: [u32; MAX_SLOTS + 1] = {
    let mut t = [0u32; MAX_SLOTS + 1];
    let mut s = 0;
    while s < MAX_SLOTS {
        t[s + 1] = t[s] + (1 << EXTRA_BITS[s]);
        s += 1;
    }
    t
};

/// Offset slot of a formatted offset (`offset + 2`, so at least 3). Below 2^18 the slots
/// follow the leading two bits; above it every slot spans 2^17.
#[inline(always)]
fn slot_of(formatted: u32) -> usize {
    if formatted < 1 << 18 {
        let l = 31 - formatted.leading_zeros();
        (2 * l + ((formatted >> (l - 1)) & 1)) as usize
    } else {
        36 + ((formatted - (1 << 18)) >> 17) as usize
    }
}

/// Number of main-code symbols for a window of `1 << order` bytes, as the decoder computes
/// it: the slots stop at the one holding the largest offset, `window - 3`.
fn num_main_syms(order: u32) -> usize {
    let max_formatted = (1u32 << order) - 3 + 2;
    NUM_CHARS + (slot_of(max_formatted) + 1) * 8
}

/// Forward E8 translation: CALL operands (after a 0xE8 byte, before the last 10 bytes) that
/// point inside the notional 12 MB file become absolute, which makes repeated calls to one
/// function repeat byte-for-byte. The decoder's `undo_e8` is its exact inverse.
fn e8_forward(data: &mut [u8]) {
    if data.len() <= E8_TAIL {
        return;
    }
    let limit = data.len() - E8_TAIL;
    let mut i = 0;
    while let Some(k) = data[i..limit].iter().position(|&b| b == 0xE8) {
        i += k;
        let b = &mut data[i + 1..i + 5];
        let rel = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let pos = i as i32;
        if rel >= -pos && rel < E8_FILE_SIZE {
            let abs = if rel < E8_FILE_SIZE - pos {
                rel + pos
            } else {
                rel - E8_FILE_SIZE
            };
            b.copy_from_slice(&abs.to_le_bytes());
        }
        i += 5;
        if i >= limit {
            break;
        }
    }
}

/// MSB-first writer of 16-bit little-endian words, appending to a `Vec`.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    n: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out, acc: 0, n: 0 }
    }

    /// Appends the low `bits` bits of `v` (bits <= 32; higher bits of `v` must be zero).
    #[inline(always)]
    fn put(&mut self, v: u32, bits: u32) {
        debug_assert!(bits <= 32 && (bits == 32 || v >> bits == 0));
        self.acc = (self.acc << bits) | u64::from(v);
        self.n += bits;
        while self.n >= 16 {
            self.n -= 16;
            let w = (self.acc >> self.n) as u16;
            self.out.extend_from_slice(&w.to_le_bytes());
        }
    }

    /// Pads the last word with zero bits.
    fn finish(mut self) {
        if self.n > 0 {
            self.put(0, 16 - self.n);
        }
    }

    fn len(&self) -> usize {
        self.out.len()
    }
}

/// Scratch space for building length-limited canonical Huffman codes without allocating.
struct HuffBuilder {
    /// `freq << 10 | symbol` for the used symbols, sorted by frequency.
    leaves: Vec<u32>,
    weight: Vec<u32>,
    parent: Vec<u32>,
}

impl HuffBuilder {
    fn new() -> Self {
        Self {
            leaves: Vec::with_capacity(MAX_MAIN_SYMS),
            weight: vec![0; 2 * MAX_MAIN_SYMS],
            parent: vec![0; 2 * MAX_MAIN_SYMS],
        }
    }

    /// Builds codeword lengths (at most `max_len`) and canonical codewords for `freqs`.
    ///
    /// The result is always a complete code or the empty code (no symbol used), as the
    /// decoder accepts nothing else: a lone used symbol is paired with a dummy one.
    #[inline(never)]
    fn build(&mut self, freqs: &[u32], max_len: u32, lens: &mut [u8], codes: &mut [u32]) {
        let n_syms = freqs.len();
        lens[..n_syms].fill(0);
        self.leaves.clear();
        for (s, &f) in freqs.iter().enumerate() {
            if f != 0 {
                // Frequencies never exceed a block's size (< 2^21), so they fit above the
                // 10 symbol bits.
                self.leaves.push((f.min((1 << 22) - 1) << 10) | s as u32);
            }
        }
        match self.leaves.len() {
            0 => return,
            1 => {
                let s = (self.leaves[0] & 0x3ff) as usize;
                lens[s] = 1;
                lens[if s == 0 { 1 } else { 0 }] = 1;
                canonical_codes(&lens[..n_syms], codes);
                return;
            }
            _ => {}
        }
        self.leaves.sort_unstable();
        let n = self.leaves.len();

        // Huffman's algorithm with two queues: the sorted leaves (0..n) and the internal
        // nodes (n..2n-1), which are created in nondecreasing weight order.
        for (w, &l) in self.weight.iter_mut().zip(&self.leaves) {
            *w = l >> 10;
        }
        let (mut li, mut ii, mut next) = (0usize, n, n);
        for _ in 0..n - 1 {
            let mut pick = || {
                if li < n && (ii >= next || self.weight[li] <= self.weight[ii]) {
                    li += 1;
                    li - 1
                } else {
                    ii += 1;
                    ii - 1
                }
            };
            let a = pick();
            let b = pick();
            self.weight[next] = self.weight[a] + self.weight[b];
            self.parent[a] = next as u32;
            self.parent[b] = next as u32;
            next += 1;
        }
        // Depths, reusing `weight`; parents always have larger indices than children.
        let root = 2 * n - 2;
        self.weight[root] = 0;
        let mut count = [0u32; 33];
        for i in (0..root).rev() {
            let d = self.weight[self.parent[i] as usize] + 1;
            self.weight[i] = d;
            if i < n {
                count[d.min(max_len) as usize] += 1;
            }
        }

        // Clamping made the code over-subscribed: push the deepest shorter leaves one level
        // down until the Kraft sum fits, then pull leaves up while it is below one, so that
        // the code ends exactly complete.
        let full = 1u64 << max_len;
        let mut kraft: u64 = (1..=max_len)
            .map(|l| u64::from(count[l as usize]) << (max_len - l))
            .sum();
        while kraft > full {
            let l = (1..max_len).rev().find(|&l| count[l as usize] > 0).unwrap();
            count[l as usize] -= 1;
            count[l as usize + 1] += 1;
            kraft -= 1 << (max_len - l - 1);
        }
        while kraft < full {
            let l = (2..=max_len)
                .rev()
                .find(|&l| count[l as usize] > 0)
                .unwrap();
            count[l as usize] -= 1;
            count[l as usize - 1] += 1;
            kraft += 1 << (max_len - l);
        }

        // The most frequent symbols (at the end of the sorted list) get the shortest codes.
        let mut idx = n;
        for l in 1..=max_len {
            for _ in 0..count[l as usize] {
                idx -= 1;
                lens[(self.leaves[idx] & 0x3ff) as usize] = l as u8;
            }
        }
        canonical_codes(&lens[..n_syms], codes);
    }
}

/// Canonical codewords: shorter codes first, ties in symbol order (as the decoder assumes).
fn canonical_codes(lens: &[u8], codes: &mut [u32]) {
    let mut count = [0u32; 18];
    for &l in lens {
        count[l as usize] += 1;
    }
    count[0] = 0;
    let mut next = [0u32; 18];
    let mut code = 0;
    for l in 1..17 {
        code = (code + count[l - 1]) << 1;
        next[l] = code;
    }
    for (s, &l) in lens.iter().enumerate() {
        if l != 0 {
            codes[s] = next[l as usize];
            next[l as usize] += 1;
        }
    }
}

#[inline(always)]
pub(super) fn load_u32(d: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(d[i..i + 4].try_into().unwrap())
}

#[inline(always)]
pub(super) fn hash(x: u32, bits: u32) -> usize {
    (x.wrapping_mul(0x1E35_A7BD) >> (32 - bits)) as usize
}

/// Length of the common prefix of `d[a..]` and `d[b..]`, known to be at least `len`, capped
/// at `max` (with `b + max <= d.len()` and `a < b`).
#[inline(always)]
pub(super) fn extend(d: &[u8], a: usize, b: usize, mut len: usize, max: usize) -> usize {
    // Equal-length views up front: the loops below then need no bounds checks.
    let x = &d[a..a + max];
    let y = &d[b..b + max];
    while len + 8 <= max {
        let u = u64::from_le_bytes(x[len..len + 8].try_into().unwrap());
        let v = u64::from_le_bytes(y[len..len + 8].try_into().unwrap());
        let diff = u ^ v;
        if diff != 0 {
            return len + (diff.trailing_zeros() / 8) as usize;
        }
        len += 8;
    }
    while len < max && x[len] == y[len] {
        len += 1;
    }
    len
}

/// [`extend`] without bounds checks, for the binary-tree walk.
///
/// # Safety
/// `d[a..a + max]` and `d[b..b + max]` must be readable through `d`.
#[inline(always)]
unsafe fn extend_unchecked(d: *const u8, a: usize, b: usize, mut len: usize, max: usize) -> usize {
    // SAFETY (for the reads below): every read lies in `a + len .. a + max` or
    // `b + len .. b + max`, which the caller guarantees to be readable.
    while len + 8 <= max {
        let u = u64::from_le(d.add(a + len).cast::<u64>().read_unaligned());
        let v = u64::from_le(d.add(b + len).cast::<u64>().read_unaligned());
        let diff = u ^ v;
        if diff != 0 {
            return len + (diff.trailing_zeros() / 8) as usize;
        }
        len += 8;
    }
    while len < max && *d.add(a + len) == *d.add(b + len) {
        len += 1;
    }
    len
}

/// One cached match, or (in the entry before a position's matches) their count in `len`.
#[derive(Clone, Copy, Default)]
pub(super) struct Match {
    pub(super) len: u32,
    pub(super) offset: u32,
}

/// Positions in the match finders are stored as `base + pos`; anything below `base` is
/// empty. Raising `base` by the chunk length empties all tables at once, so they only need
/// clearing when the counter would overflow the stored width (`max`).
struct Generation {
    base: u32,
}

impl Generation {
    /// Starts a chunk of `len` bytes; returns true if the tables must be cleared first.
    fn start(&mut self, prev_len: usize, len: usize, max: u32) -> bool {
        let next = u64::from(self.base) + prev_len as u64;
        if next + len as u64 + 1 >= u64::from(max) {
            self.base = 1;
            true
        } else {
            self.base = next as u32;
            false
        }
    }
}

const BT_HASH2_BITS: u32 = 12;
const BT_HASH3_BITS: u32 = 15;

/// How the binary-tree finder stores positions: `u32` in general, `u16` for buffers of up
/// to [`SMALL_WINDOW`] bytes. The narrow form halves the tables, whose cache misses are what
/// the search mostly waits for; the price is clearing the hash tables (about 260 KiB) once
/// the buffers since the last clearing reach 64 KiB, so for nearly every full 32 KiB chunk.
pub(super) trait Pos: Copy + Default + std::fmt::Debug + 'static {
    /// Stored values stay below this.
    const MAX: u32;
    fn get(self) -> u32;
    /// `v < Self::MAX`.
    fn new(v: u32) -> Self;
}

impl Pos for u32 {
    const MAX: u32 = u32::MAX;
    #[inline(always)]
    fn get(self) -> u32 {
        self
    }
    #[inline(always)]
    fn new(v: u32) -> Self {
        v
    }
}

impl Pos for u16 {
    const MAX: u32 = u16::MAX as u32;
    #[inline(always)]
    fn get(self) -> u32 {
        u32::from(self)
    }
    #[inline(always)]
    fn new(v: u32) -> Self {
        v as u16
    }
}

/// Largest buffer a `BtFinder<u16>` takes: a chunk of it and its generation base stay below
/// `u16::MAX`.
const SMALL_WINDOW: usize = 1 << 15;

/// Binary-tree match finder: hash tables give the most recent length-2 and length-3
/// candidates, and a binary tree per 4-byte hash, kept sorted by the suffixes that follow,
/// yields the longest matches with the smallest offsets at each length.
pub(super) struct BtFinder<P: Pos = u32> {
    gen: Generation,
    prev_len: usize,
    hash4_bits: u32,
    // Fixed sizes: hashes of these widths index them without bounds checks.
    hash2: Box<[P; 1 << BT_HASH2_BITS]>,
    hash3: Box<[[P; 2]; 1 << BT_HASH3_BITS]>,
    hash4: Vec<P>,
    /// Left (smaller) and right (larger) children of each position's node.
    child: Vec<[P; 2]>,
}

impl<P: Pos> BtFinder<P> {
    fn new(window: usize) -> Self {
        Self::with_hash_bits(window, window.trailing_zeros().clamp(16, 17))
    }

    /// A finder for buffers of up to `window` bytes with `1 << hash4_bits` tree roots.
    pub(super) fn with_hash_bits(window: usize, hash4_bits: u32) -> Self {
        assert!(P::MAX == u32::MAX || window <= SMALL_WINDOW);
        Self {
            gen: Generation { base: 1 },
            prev_len: 0,
            hash4_bits,
            hash2: vec![P::default(); 1 << BT_HASH2_BITS]
                .into_boxed_slice()
                .try_into()
                .expect("table size"),
            hash3: vec![[P::default(); 2]; 1 << BT_HASH3_BITS]
                .into_boxed_slice()
                .try_into()
                .expect("table size"),
            hash4: vec![P::default(); 1 << hash4_bits],
            child: vec![[P::default(); 2]; window],
        }
    }

    /// Starts a new buffer of `len` bytes: earlier positions are forgotten.
    pub(super) fn start(&mut self, len: usize) {
        if self.gen.start(self.prev_len, len, P::MAX) {
            self.hash2.fill(P::default());
            self.hash3.fill([P::default(); 2]);
            self.hash4.fill(P::default());
        }
        self.prev_len = len;
    }

    /// Inserts position `pos` and, if `out` is given, appends its matches (increasing
    /// lengths) to it. Requires `nice_len <= max_len <= d.len() - pos` and `max_len >= 4`.
    /// Returns the longest length found.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn advance(
        &mut self,
        d: &[u8],
        pos: usize,
        max_len: usize,
        nice_len: usize,
        depth: u32,
        max_offset: usize,
        mut out: Option<&mut Vec<Match>>,
    ) -> usize {
        let base = self.gen.base;
        let cur = base + pos as u32;
        let seq = load_u32(d, pos);
        let mut best = 1;
        // A stored position `c` is usable iff `1 <= cur - c <= lim`: one unsigned comparison
        // of `cur - c - 1` (wrapping) against `lim` also rejects empty slots and positions of
        // earlier buffers, whose distances exceed `pos`.
        let lim = pos.min(max_offset) as u32;
        let valid = |c: u32| cur.wrapping_sub(c).wrapping_sub(1) < lim;

        let h2 = hash(seq & 0xffff, BT_HASH2_BITS);
        let c2 = std::mem::replace(&mut self.hash2[h2], P::new(cur)).get();
        let h3 = hash(seq & 0xff_ffff, BT_HASH3_BITS);
        let [c3a, c3b] = self.hash3[h3];
        self.hash3[h3] = [P::new(cur), c3a];
        let (c3a, c3b) = (c3a.get(), c3b.get());
        if let Some(out) = out.as_deref_mut() {
            // The first bytes of a valid candidate `m` (`m < pos`, and `pos + 4 <= d.len()`
            // as `load_u32` above proved), XORed with those at `pos`.
            let differ = |m: usize| {
                // SAFETY: `m + 4 <= pos + 4 <= d.len()`.
                let x = unsafe { d.as_ptr().add(m).cast::<u32>().read_unaligned() };
                u32::from_le(x) ^ seq
            };
            if valid(c2) {
                let m = pos - cur.wrapping_sub(c2) as usize;
                if differ(m) & 0xffff == 0 {
                    best = 2;
                    out.push(Match {
                        len: 2,
                        offset: (pos - m) as u32,
                    });
                }
            }
            for c in [c3a, c3b] {
                if valid(c) {
                    let m = pos - cur.wrapping_sub(c) as usize;
                    if differ(m) & 0xff_ffff == 0 {
                        best = 3;
                        out.push(Match {
                            len: 3,
                            offset: (pos - m) as u32,
                        });
                        break;
                    }
                }
            }
        }

        let h4 = hash(seq, self.hash4_bits);
        let node = std::mem::replace(&mut self.hash4[h4], P::new(cur)).get();
        // The next position's buckets are random accesses into tables bigger than the L1
        // cache: start loading them now, while this position's tree walk runs.
        if pos + 5 <= d.len() {
            let next = load_u32(d, pos + 1);
            super::prefetch(&self.hash3[hash(next & 0xff_ffff, BT_HASH3_BITS)]);
            if let Some(slot) = self.hash4.get(hash(next, self.hash4_bits)) {
                super::prefetch(slot);
            }
        }
        // The walk below indexes `d` and `child` without bounds checks; these two checks
        // (once per call) and the per-node range test are what make that sound.
        assert!(nice_len <= max_len && max_len <= d.len() - pos && d.len() <= self.child.len());
        let walk = Walk {
            node,
            // Stored positions `c` with `cur - lim <= c < cur` are usable (see `valid`).
            min_valid: cur - lim,
            base,
            pos,
            depth,
            nice_len,
        };
        match out {
            Some(out) => {
                out.reserve(MAX_MATCH + 1);
                // SAFETY: as required by `walk`: `here` is `pos` and the room reserved
                // takes every length from `best + 1` to `max_len` once.
                unsafe {
                    let start = out.as_mut_ptr().add(out.len());
                    let (best, end) = walk.run::<P, true>(d, &mut self.child, max_len, best, start);
                    out.set_len(out.len() + end.offset_from(start) as usize);
                    best
                }
            }
            // SAFETY: as above; nothing is written through the null output.
            None => unsafe {
                walk.run::<P, false>(d, &mut self.child, nice_len, best, std::ptr::null_mut())
                    .0
            },
        }
    }
}

/// One binary-tree walk of [`BtFinder::advance`].
struct Walk {
    /// Root of the tree (stored position).
    node: u32,
    /// Smallest stored position still usable here.
    min_valid: u32,
    /// Generation base: stored position `c` stands for byte `c - base`.
    base: u32,
    pos: usize,
    depth: u32,
    nice_len: usize,
}

impl Walk {
    /// Inserts `pos` as the new root, walking the old tree down from `node`, and (if
    /// `RECORD`) writes each match longer than `best` from `out` on. Returns the longest
    /// length seen and the end of the matches written. `max_len` is where extending stops.
    ///
    /// Positions are used as pointer offsets from `d` and `child` moved back by `base`
    /// (with wrapping arithmetic): a stored position then addresses its byte and its child
    /// slots directly, which keeps the loop's working values in registers.
    ///
    /// # Safety
    /// `nice_len <= max_len <= d.len() - pos`, `d.len() <= child.len()`, every node in the
    /// tree from `min_valid` up is an earlier position of this buffer, and if `RECORD`,
    /// `out` has room for `max_len - best` matches.
    #[inline(always)]
    unsafe fn run<P: Pos, const RECORD: bool>(
        self,
        d: &[u8],
        child: &mut [[P; 2]],
        max_len: usize,
        mut best: usize,
        mut out: *mut Match,
    ) -> (usize, *mut Match) {
        let Walk {
            mut node,
            min_valid,
            base,
            pos,
            mut depth,
            nice_len,
        } = self;
        let here = d.as_ptr().add(pos);
        let dpb = d.as_ptr().wrapping_sub(base as usize);
        let slots = child.as_mut_ptr() as *mut P;
        let childb = slots.wrapping_sub(2 * base as usize);
        // Where the next smaller / larger subtree hangs: slot 2 * position + side.
        let (mut lt, mut gt) = (slots.add(2 * pos), slots.add(2 * pos + 1));
        let (mut best_lt, mut best_gt) = (0usize, 0usize);
        let mut len = 0;
        // SAFETY: a node `c` that passes the range test is a position `m = c - base < pos`
        // of this buffer, so `dpb + c` is `d[m]` and `childb + 2c` its slots (< 2 *
        // child.len()). Byte reads are at `m + len` and `pos + len` with `len < nice_len <=
        // max_len <= d.len() - pos` (a walk that reaches `nice_len` returns before reading
        // again); `extend_unchecked` reads `d[m..m + max_len]` and `d[pos..pos + max_len]`.
        loop {
            if node < min_valid || depth == 0 {
                *lt = P::default();
                *gt = P::default();
                return (best, out);
            }
            depth -= 1;
            let there = dpb.wrapping_add(node as usize);
            let node_slots = childb.wrapping_add(2 * node as usize);
            if *there.add(len) == *here.add(len) {
                let m = (node - base) as usize;
                len = extend_unchecked(d.as_ptr(), m, pos, len + 1, max_len);
                if len > best {
                    best = len;
                    if RECORD {
                        out.write(Match {
                            len: len as u32,
                            offset: (pos - m) as u32,
                        });
                        out = out.add(1);
                    }
                }
                if len >= nice_len {
                    // The new node takes over the old one's subtrees; the old node (an
                    // equal suffix, as far as the tree looks) drops out of the tree.
                    *lt = *node_slots;
                    *gt = *node_slots.add(1);
                    return (best, out);
                }
            }
            if *there.add(len) < *here.add(len) {
                *lt = P::new(node);
                lt = node_slots.add(1);
                node = (*lt).get();
                best_lt = len;
                len = len.min(best_gt);
            } else {
                *gt = P::new(node);
                gt = node_slots;
                node = (*gt).get();
                best_gt = len;
                len = len.min(best_lt);
            }
        }
    }
}

const HC_BITS: u32 = 15;

/// Hash-chain match finder over 3-byte hashes, for the lazy parser.
struct HcFinder {
    gen: Generation,
    prev_len: usize,
    head: Vec<u32>,
    prev: Vec<u32>,
}

impl HcFinder {
    fn new(window: usize) -> Self {
        Self {
            gen: Generation { base: 1 },
            prev_len: 0,
            head: vec![0; 1 << HC_BITS],
            prev: vec![0; window],
        }
    }

    fn start(&mut self, len: usize) {
        if self.gen.start(self.prev_len, len, u32::MAX) {
            self.head.fill(0);
        }
        self.prev_len = len;
    }

    /// Inserts `pos` (needs 3 readable bytes, 4 if `pos + 4 <= d.len()`).
    #[inline(always)]
    fn insert(&mut self, d: &[u8], pos: usize) {
        if pos + 4 > d.len() {
            return;
        }
        let h = hash(load_u32(d, pos) & 0xff_ffff, HC_BITS);
        self.prev[pos] = std::mem::replace(&mut self.head[h], self.gen.base + pos as u32);
    }

    /// Inserts `pos` and returns its longest match (length, offset), length 0 if none.
    fn find(
        &mut self,
        d: &[u8],
        pos: usize,
        max_len: usize,
        nice_len: usize,
        depth: u32,
        max_offset: usize,
    ) -> (usize, usize) {
        if max_len < 4 {
            self.insert(d, pos);
            return (0, 0);
        }
        let base = self.gen.base;
        let h = hash(load_u32(d, pos) & 0xff_ffff, HC_BITS);
        let mut c = std::mem::replace(&mut self.head[h], base + pos as u32);
        self.prev[pos] = c;
        let (mut best, mut best_off) = (2, 0);
        for _ in 0..depth {
            if c < base {
                break;
            }
            let m = (c - base) as usize;
            if pos - m > max_offset {
                break;
            }
            // Only a candidate that beats the best so far at its last byte can be longer.
            if d[m + best] == d[pos + best] && d[m] == d[pos] {
                let len = extend(d, m, pos, 0, max_len);
                if len > best {
                    best = len;
                    best_off = pos - m;
                    if len >= nice_len {
                        break;
                    }
                }
            }
            c = self.prev[m];
        }
        if best_off == 0 {
            (0, 0)
        } else {
            (best, best_off)
        }
    }
}

/// One coded item: a literal (`len == 1`, byte in `code`) or a match (`code` 0-2 for the
/// repeat offsets, otherwise the formatted offset).
#[derive(Clone, Copy, Default)]
struct Seq {
    len: u32,
    code: u32,
}

/// Symbol statistics, codes and the previous block's lengths (the delta base) of one chunk.
struct Coder {
    num_main_syms: usize,
    window_order: u32,
    main_freq: [u32; MAX_MAIN_SYMS],
    len_freq: [u32; NUM_LEN_SYMS],
    aligned_freq: [u32; NUM_ALIGNED_SYMS],
    main_lens: [u8; MAX_MAIN_SYMS],
    main_codes: [u32; MAX_MAIN_SYMS],
    len_lens: [u8; NUM_LEN_SYMS],
    len_codes: [u32; NUM_LEN_SYMS],
    aligned_lens: [u8; NUM_ALIGNED_SYMS],
    aligned_codes: [u32; NUM_ALIGNED_SYMS],
    prev_main: [u8; MAX_MAIN_SYMS],
    prev_len: [u8; NUM_LEN_SYMS],
    huff: HuffBuilder,
    /// Precode items: symbol in bits 0-4, run extra bits from bit 5, and for symbol 19 the
    /// delta symbol from bit 6.
    pre_items: Vec<u32>,
}

impl Coder {
    fn new(window_order: u32) -> Self {
        Self {
            num_main_syms: num_main_syms(window_order),
            window_order,
            main_freq: [0; MAX_MAIN_SYMS],
            len_freq: [0; NUM_LEN_SYMS],
            aligned_freq: [0; NUM_ALIGNED_SYMS],
            main_lens: [0; MAX_MAIN_SYMS],
            main_codes: [0; MAX_MAIN_SYMS],
            len_lens: [0; NUM_LEN_SYMS],
            len_codes: [0; NUM_LEN_SYMS],
            aligned_lens: [0; NUM_ALIGNED_SYMS],
            aligned_codes: [0; NUM_ALIGNED_SYMS],
            prev_main: [0; MAX_MAIN_SYMS],
            prev_len: [0; NUM_LEN_SYMS],
            huff: HuffBuilder::new(),
            pre_items: Vec::with_capacity(MAX_MAIN_SYMS),
        }
    }

    fn reset_freqs(&mut self) {
        self.main_freq.fill(0);
        self.len_freq.fill(0);
        self.aligned_freq.fill(0);
    }

    #[inline(always)]
    fn tally_match(&mut self, len: usize, code: u32) {
        let slot = if code < NUM_RECENT as u32 {
            code as usize
        } else {
            slot_of(code)
        };
        let header = (len - MIN_MATCH).min(NUM_PRIMARY_LENS);
        self.main_freq[NUM_CHARS + slot * 8 + header] += 1;
        if header == NUM_PRIMARY_LENS {
            self.len_freq[len - MIN_MATCH - NUM_PRIMARY_LENS] += 1;
        }
        if slot >= MIN_ALIGNED_SLOT {
            self.aligned_freq[(code & 7) as usize] += 1;
        }
    }

    #[inline(always)]
    fn tally_seq(&mut self, s: Seq) {
        if s.len == 1 {
            self.main_freq[s.code as usize] += 1;
        } else {
            self.tally_match(s.len as usize, s.code);
        }
    }

    fn tally(&mut self, seqs: &[Seq]) {
        for &s in seqs {
            self.tally_seq(s);
        }
    }

    fn build_codes(&mut self) {
        let n = self.num_main_syms;
        self.huff.build(
            &self.main_freq[..n],
            MAX_MAIN_LEN,
            &mut self.main_lens,
            &mut self.main_codes,
        );
        self.huff.build(
            &self.len_freq,
            MAX_LEN_LEN,
            &mut self.len_lens,
            &mut self.len_codes,
        );
        self.huff.build(
            &self.aligned_freq,
            MAX_ALIGNED_LEN,
            &mut self.aligned_lens,
            &mut self.aligned_codes,
        );
    }

    /// Writes one block holding `seqs` (covering `size` bytes), tallying and building the
    /// codes first. The offsets' low bits go through the aligned code when that is smaller.
    #[inline(never)]
    fn write_block(&mut self, w: &mut BitWriter, seqs: &[Seq], size: usize) {
        self.reset_freqs();
        self.tally(seqs);
        self.build_codes();
        // An aligned block replaces 3 verbatim bits per aligned offset with the aligned
        // codeword, at the price of sending its eight 3-bit lengths.
        let (mut verbatim_cost, mut aligned_cost) = (0u64, 24u64);
        for (&f, &l) in self.aligned_freq.iter().zip(&self.aligned_lens) {
            verbatim_cost += 3 * u64::from(f);
            aligned_cost += u64::from(l) * u64::from(f);
        }
        let aligned = aligned_cost < verbatim_cost;

        w.put(if aligned { 2 } else { 1 }, 3);
        if size == DEFAULT_BLOCK_SIZE {
            w.put(1, 1);
        } else {
            w.put(0, 1);
            if self.window_order >= 16 {
                w.put((size >> 16) as u32, 8);
            }
            w.put((size & 0xffff) as u32, 16);
        }
        if aligned {
            for &l in &self.aligned_lens {
                w.put(u32::from(l), 3);
            }
        }
        let n = self.num_main_syms;
        self.write_lens(w, LensPart::Main(0, NUM_CHARS));
        self.write_lens(w, LensPart::Main(NUM_CHARS, n));
        self.write_lens(w, LensPart::Len);
        self.prev_main[..n].copy_from_slice(&self.main_lens[..n]);
        self.prev_len = self.len_lens;

        let min_aligned_slot = if aligned { MIN_ALIGNED_SLOT } else { MAX_SLOTS };
        for s in seqs {
            if s.len == 1 {
                let c = s.code as usize;
                w.put(self.main_codes[c], u32::from(self.main_lens[c]));
                continue;
            }
            let len = s.len as usize;
            let slot = if s.code < NUM_RECENT as u32 {
                s.code as usize
            } else {
                slot_of(s.code)
            };
            let header = (len - MIN_MATCH).min(NUM_PRIMARY_LENS);
            let sym = NUM_CHARS + slot * 8 + header;
            w.put(self.main_codes[sym], u32::from(self.main_lens[sym]));
            if header == NUM_PRIMARY_LENS {
                let l = len - MIN_MATCH - NUM_PRIMARY_LENS;
                w.put(self.len_codes[l], u32::from(self.len_lens[l]));
            }
            if slot >= NUM_RECENT {
                let extra = s.code - SLOT_BASE[slot];
                let bits = EXTRA_BITS[slot];
                if slot >= min_aligned_slot {
                    w.put(extra >> 3, bits - 3);
                    let a = (extra & 7) as usize;
                    w.put(self.aligned_codes[a], u32::from(self.aligned_lens[a]));
                } else {
                    w.put(extra, bits);
                }
            }
        }
    }

    /// Sends one part of the code lengths, delta-coded against the previous block's, through
    /// a precode built for it. Runs of zeros use symbols 17/18; runs of 4-5 equal nonzero
    /// lengths use symbol 19.
    fn write_lens(&mut self, w: &mut BitWriter, part: LensPart) {
        let (lens, prev): (&[u8], &[u8]) = match part {
            LensPart::Main(a, b) => (&self.main_lens[a..b], &self.prev_main[a..b]),
            LensPart::Len => (&self.len_lens, &self.prev_len),
        };
        let delta = |i: usize| u32::from((prev[i] + 17 - lens[i]) % 17);
        let mut freq = [0u32; NUM_PRE_SYMS];
        self.pre_items.clear();
        let mut i = 0;
        while i < lens.len() {
            let l = lens[i];
            let run = lens[i..].iter().take_while(|&&x| x == l).count();
            let end = i + run;
            if l == 0 {
                while end - i >= 20 {
                    let k = (end - i).min(51);
                    self.pre_items.push(18 | ((k as u32 - 20) << 5));
                    i += k;
                }
                if end - i >= 4 {
                    let k = (end - i).min(19);
                    self.pre_items.push(17 | ((k as u32 - 4) << 5));
                    i += k;
                }
            } else {
                while end - i >= 4 {
                    let k = (end - i).min(5);
                    let d = delta(i);
                    self.pre_items.push(19 | ((k as u32 - 4) << 5) | (d << 6));
                    freq[d as usize] += 1;
                    i += k;
                }
            }
            while i < end {
                self.pre_items.push(delta(i));
                i += 1;
            }
        }
        for &it in &self.pre_items {
            freq[(it & 31) as usize] += 1;
        }
        let mut pre_lens = [0u8; NUM_PRE_SYMS];
        let mut pre_codes = [0u32; NUM_PRE_SYMS];
        self.huff
            .build(&freq, MAX_PRE_LEN, &mut pre_lens, &mut pre_codes);
        for &l in &pre_lens {
            w.put(u32::from(l), 4);
        }
        for &it in &self.pre_items {
            let sym = (it & 31) as usize;
            w.put(pre_codes[sym], u32::from(pre_lens[sym]));
            match sym {
                17 => w.put(it >> 5, 4),
                18 => w.put(it >> 5, 5),
                19 => {
                    w.put((it >> 5) & 1, 1);
                    let d = (it >> 6) as usize;
                    w.put(pre_codes[d], u32::from(pre_lens[d]));
                }
                _ => {}
            }
        }
    }
}

#[derive(Clone, Copy)]
enum LensPart {
    Main(usize, usize),
    Len,
}

/// The parser's price list, in 1/`BIT` bits.
struct Costs {
    main: [u32; MAX_MAIN_SYMS],
    len: [u32; NUM_LEN_SYMS],
    aligned: [u32; NUM_ALIGNED_SYMS],
    /// Cost of a match by `slot * 256 + len - 2`: header, length symbol and the verbatim
    /// offset bits (aligned bits are priced separately, by offset).
    matches: Vec<[u32; 256]>,
}

impl Costs {
    fn new() -> Self {
        Self {
            main: [0; MAX_MAIN_SYMS],
            len: [0; NUM_LEN_SYMS],
            aligned: [0; NUM_ALIGNED_SYMS],
            matches: vec![[0; 256]; MAX_SLOTS],
        }
    }

    /// Prices symbols by the code lengths `coder` just built. Unused symbols get a price a
    /// bit above the longest used codeword, so the next pass may still pick them up.
    #[inline(never)]
    fn set_from_codes(&mut self, c: &Coder) {
        let n = c.num_main_syms;
        for (cost, &l) in self.main[..n].iter_mut().zip(&c.main_lens[..n]) {
            *cost = if l == 0 { 15 * BIT } else { u32::from(l) * BIT };
        }
        for (cost, &l) in self.len.iter_mut().zip(&c.len_lens) {
            *cost = if l == 0 { 12 * BIT } else { u32::from(l) * BIT };
        }
        for (cost, &l) in self.aligned.iter_mut().zip(&c.aligned_lens) {
            *cost = if l == 0 { 6 * BIT } else { u32::from(l) * BIT };
        }
        let slots = (n - NUM_CHARS) / 8;
        for (slot, &bits) in EXTRA_BITS.iter().enumerate().take(slots) {
            let mut extra = bits * BIT;
            if slot >= MIN_ALIGNED_SLOT {
                extra -= 3 * BIT;
            }
            let row = &mut self.matches[slot];
            let hdr = NUM_CHARS + slot * 8;
            for (i, m) in row.iter_mut().enumerate() {
                *m = if i < NUM_PRIMARY_LENS {
                    self.main[hdr + i] + extra
                } else {
                    self.main[hdr + NUM_PRIMARY_LENS] + self.len[i - NUM_PRIMARY_LENS] + extra
                };
            }
        }
    }
}

/// Statistics of the symbols seen so far in a block, to notice when the data changes enough
/// that new codes would pay for a new block header. Literals are classed by a few of their
/// bits, matches by length.
#[derive(Default)]
struct SplitStats {
    seen: [u32; 10],
    total: u32,
    recent: [u32; 10],
    recent_total: u32,
}

impl SplitStats {
    const CHECK_EVERY: u32 = 400;

    fn literal(&mut self, b: u8) {
        self.recent[(((b >> 5) & 6) | (b & 1)) as usize] += 1;
        self.recent_total += 1;
    }

    fn matched(&mut self, len: usize) {
        self.recent[8 + usize::from(len >= 5)] += 1;
        self.recent_total += 1;
    }

    /// Decides whether the recent observations differ enough from the earlier ones to end
    /// the block here; otherwise folds them into the earlier ones.
    fn should_split(&mut self) -> bool {
        if self.total > 0 {
            // Compare the distributions without dividing: scale each by the other's total.
            let mut diff = 0u64;
            for i in 0..10 {
                let expected = u64::from(self.seen[i]) * u64::from(self.recent_total);
                let actual = u64::from(self.recent[i]) * u64::from(self.total);
                diff += expected.abs_diff(actual);
            }
            if diff >= u64::from(self.recent_total) * 7 / 8 * u64::from(self.total) {
                return true;
            }
        }
        for i in 0..10 {
            self.seen[i] += self.recent[i];
            self.recent[i] = 0;
        }
        self.total += self.recent_total;
        self.recent_total = 0;
        false
    }
}

/// One node of the min-cost path search: the cheapest cost found to reach it and how.
#[derive(Clone, Copy, Default)]
struct Node {
    cost: u32,
    /// Length in bits 0-8, offset code above (see `Seq`); or, with `GAP` set, a rep0 match
    /// of that length after a literal and the match in `Optimal::gap`.
    item: u32,
}

/// The near-optimal parser's match finder, with positions as narrow as the chunk size
/// allows.
enum OptimalFinder {
    Small(BtFinder<u16>),
    Large(BtFinder<u32>),
}

/// Working memory of the near-optimal parser, sized once for the largest block.
struct Optimal {
    mf: OptimalFinder,
    cache: Vec<Match>,
    nodes: Vec<Node>,
    gap: Vec<u32>,
    /// Recent-offset queues of the latest nodes; older ones are never needed again, and a
    /// small ring stays in L1 cache.
    queue: Box<[PackedQueue; QUEUE_RING]>,
    costs: Costs,
    passes: u32,
}

/// Working memory of the lazy parser.
struct Lazy {
    mf: HcFinder,
}

enum Parser {
    Lazy(Lazy),
    Optimal(Box<Optimal>),
}

/// Reusable LZX chunk compressor for one chunk size and compression level.
pub struct LzxEncoder {
    chunk_size: usize,
    max_offset: usize,
    nice_len: usize,
    depth: u32,
    buf: Vec<u8>,
    seqs: Vec<Seq>,
    coder: Box<Coder>,
    parser: Parser,
}

impl LzxEncoder {
    /// Makes a compressor for chunks of up to `chunk_size` bytes (the window is the chunk
    /// size rounded up to a power of two, at least 32 KiB) at `level` 1..=100, where 50 is
    /// the usual default and higher levels trade time for ratio.
    pub fn new(chunk_size: u32, level: u32) -> Result<Self, CodecError> {
        if chunk_size == 0 || chunk_size > 1 << MAX_WINDOW_ORDER {
            return Err(CodecError::Unsupported {
                codec: "lzx",
                what: "chunk size",
            });
        }
        if !(1..=100).contains(&level) {
            return Err(CodecError::Unsupported {
                codec: "lzx",
                what: "compression level",
            });
        }
        let window_order = chunk_size
            .next_power_of_two()
            .trailing_zeros()
            .max(MIN_WINDOW_ORDER);
        let window = 1usize << window_order;
        let chunk = chunk_size as usize;
        let (parser, depth, nice_len) = if level < MIN_OPTIMAL_LEVEL {
            let p = Parser::Lazy(Lazy {
                mf: HcFinder::new(chunk),
            });
            (
                p,
                (3 * level).max(2),
                (4 * level as usize).clamp(8, MAX_MATCH),
            )
        } else {
            let block = chunk.min(MAX_BLOCK);
            // The default level prices its one path search by the greedy parse: a statistics
            // pass first would cost a fifth more time for 0.2-0.3% of size.
            let passes = 1 + u32::from(level >= 60) + u32::from(level >= 80);
            let p = Parser::Optimal(Box::new(Optimal {
                mf: if chunk <= SMALL_WINDOW {
                    OptimalFinder::Small(BtFinder::new(chunk))
                } else {
                    OptimalFinder::Large(BtFinder::new(chunk))
                },
                cache: Vec::with_capacity(block * 5 + MAX_MATCHES_PER_POS),
                nodes: vec![Node::default(); block + 1],
                gap: vec![0; block + 1],
                queue: Box::new([PackedQueue::pack([1; NUM_RECENT]); QUEUE_RING]),
                costs: Costs::new(),
                passes,
            }));
            (
                p,
                (24 * level / 50).max(1),
                (48 * level as usize / 50).clamp(8, MAX_MATCH),
            )
        };
        Ok(Self {
            chunk_size: chunk,
            max_offset: window - 3,
            nice_len,
            depth,
            buf: Vec::with_capacity(chunk),
            seqs: Vec::with_capacity(chunk.min(MAX_BLOCK.max(LAZY_BLOCK)) + MAX_MATCH),
            coder: Box::new(Coder::new(window_order)),
            parser,
        })
    }
}

impl Compressor for LzxEncoder {
    fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        out.clear();
        assert!(
            input.len() <= self.chunk_size,
            "chunk larger than the compressor's chunk size"
        );
        if input.is_empty() {
            return false;
        }
        self.buf.clear();
        self.buf.extend_from_slice(input);
        e8_forward(&mut self.buf);
        self.coder.prev_main.fill(0);
        self.coder.prev_len.fill(0);
        // Room for the whole chunk so that writing never reallocates a reused buffer; the
        // writers give up once the output is no longer smaller than the input.
        out.reserve(input.len() + 64);
        let mut w = BitWriter::new(out);
        let ok = match &mut self.parser {
            Parser::Lazy(p) => compress_lazy(
                p,
                &self.buf,
                &mut self.seqs,
                &mut self.coder,
                &mut w,
                self.depth,
                self.nice_len,
                self.max_offset,
            ),
            Parser::Optimal(p) => compress_optimal(
                p,
                &self.buf,
                &mut self.seqs,
                &mut self.coder,
                &mut w,
                self.depth,
                self.nice_len,
                self.max_offset,
            ),
        };
        if !ok {
            return false;
        }
        w.finish();
        out.len() < input.len()
    }
}

/// Length of the match at `pos` against an earlier copy `offset` back (0 if that is not a
/// valid offset here).
#[inline(always)]
fn rep_len(d: &[u8], pos: usize, offset: usize, max: usize) -> usize {
    if offset > pos || max < 2 {
        return 0;
    }
    let m = pos - offset;
    if d[m] != d[pos] || d[m + 1] != d[pos + 1] {
        return 0;
    }
    extend(d, m, pos, 2, max)
}

#[allow(clippy::too_many_arguments)]
fn compress_lazy(
    p: &mut Lazy,
    d: &[u8],
    seqs: &mut Vec<Seq>,
    coder: &mut Coder,
    w: &mut BitWriter,
    depth: u32,
    nice: usize,
    max_offset: usize,
) -> bool {
    let n = d.len();
    p.mf.start(n);
    let mut recent = [1u32; NUM_RECENT];
    // Rough value of a match: 8 bits per byte covered, less the offset's extra bits; a
    // repeat offset costs next to nothing.
    let score = |len: usize, code: u32| -> i64 {
        let off_bits = if code < NUM_RECENT as u32 {
            0
        } else {
            i64::from(EXTRA_BITS[slot_of(code)]) + 2
        };
        8 * len as i64 - off_bits
    };
    let best_at = |mf: &mut HcFinder, pos: usize, recent: &[u32; NUM_RECENT]| {
        let max = (n - pos).min(MAX_MATCH);
        let (len, off) = mf.find(d, pos, max, nice.min(max), depth, max_offset);
        let (mut blen, mut bcode) = (0usize, 0u32);
        // Length-2 explicit matches are only worth it close by.
        if len >= 3 || (len == 2 && off < 64) {
            blen = len;
            bcode = off as u32 + 2;
        }
        for (k, &r) in recent.iter().enumerate() {
            let l = rep_len(d, pos, r as usize, max);
            if l >= 2 && (blen == 0 || score(l, k as u32) > score(blen, bcode)) {
                blen = l;
                bcode = k as u32;
            }
        }
        (blen, bcode)
    };

    let mut block_start = 0;
    let mut pos = 0;
    seqs.clear();
    let mut cur = if n > 0 {
        best_at(&mut p.mf, 0, &recent)
    } else {
        (0, 0)
    };
    while pos < n {
        let (len, code) = cur;
        if len < 2 {
            seqs.push(Seq {
                len: 1,
                code: u32::from(d[pos]),
            });
            pos += 1;
        } else {
            // One step of lookahead: a clearly better match at the next byte wins.
            let next = if pos + 1 < n {
                best_at(&mut p.mf, pos + 1, &recent)
            } else {
                (0, 0)
            };
            if next.0 >= 2 && score(next.0, next.1) > score(len, code) + 8 {
                seqs.push(Seq {
                    len: 1,
                    code: u32::from(d[pos]),
                });
                pos += 1;
                cur = next;
                continue;
            }
            seqs.push(Seq {
                len: len as u32,
                code,
            });
            if code < NUM_RECENT as u32 {
                recent.swap(0, code as usize);
            } else {
                recent[2] = recent[1];
                recent[1] = recent[0];
                recent[0] = code - 2;
            }
            // `pos + 1` is already in the chains (the lookahead searched it).
            for q in pos + 2..pos + len {
                p.mf.insert(d, q);
            }
            pos += len;
        }
        if pos - block_start >= LAZY_BLOCK || pos == n {
            coder.write_block(w, seqs, pos - block_start);
            seqs.clear();
            block_start = pos;
            if w.len() >= n {
                return false;
            }
        }
        cur = if pos < n {
            best_at(&mut p.mf, pos, &recent)
        } else {
            (0, 0)
        };
    }
    true
}

#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn compress_optimal(
    p: &mut Optimal,
    d: &[u8],
    seqs: &mut Vec<Seq>,
    coder: &mut Coder,
    w: &mut BitWriter,
    depth: u32,
    nice: usize,
    max_offset: usize,
) -> bool {
    let n = d.len();
    match &mut p.mf {
        OptimalFinder::Small(mf) => mf.start(n),
        OptimalFinder::Large(mf) => mf.start(n),
    }
    let mut queue = [1u32; NUM_RECENT];
    let mut pos = 0;
    while pos < n {
        let block_start = pos;
        pos = match &mut p.mf {
            OptimalFinder::Small(mf) => {
                find_block_matches(mf, &mut p.cache, d, pos, depth, nice, max_offset)
            }
            OptimalFinder::Large(mf) => {
                find_block_matches(mf, &mut p.cache, d, pos, depth, nice, max_offset)
            }
        };
        queue = optimize_block(p, d, block_start, pos, queue, seqs, coder);
        coder.write_block(w, seqs, pos - block_start);
        if w.len() >= n {
            return false;
        }
    }
    true
}

/// Runs the match finder from `pos` to where the next block should end (at most
/// `MAX_BLOCK` bytes on, earlier when the data changes), caching the matches of every
/// position in `cache`: a count, then the matches by increasing length. Returns the block's
/// end. The finder and the cache come as separate borrows so that the loop can keep their
/// fields in registers.
#[inline(never)]
fn find_block_matches<P: Pos>(
    mf: &mut BtFinder<P>,
    cache: &mut Vec<Match>,
    d: &[u8],
    mut pos: usize,
    depth: u32,
    nice: usize,
    max_offset: usize,
) -> usize {
    let n = d.len();
    let block_start = pos;
    let max_end = n.min(pos + MAX_BLOCK);
    cache.clear();
    let mut split = SplitStats::default();
    let mut next_search = pos;
    let mut next_observe = pos;
    while pos < max_end {
        if cache.len() + MAX_MATCHES_PER_POS > cache.capacity() {
            break;
        }
        let max_len = (n - pos).min(MAX_MATCH);
        let head = cache.len();
        cache.push(Match::default());
        if max_len < 8 {
            // Too close to the end to bother; the parser codes these as literals.
        } else if pos >= next_search {
            let nice_len = nice.min(max_len);
            let best = mf.advance(d, pos, max_len, nice_len, depth, max_offset, Some(cache));
            cache[head].len = (cache.len() - head - 1) as u32;
            if pos >= next_observe {
                if best >= 3 {
                    split.matched(best);
                    next_observe = pos + best;
                } else {
                    split.literal(d[pos]);
                    next_observe = pos + 1;
                }
            }
            // After a long match, the positions it covers are not searched (only
            // inserted): highly redundant data would otherwise yield huge numbers of
            // matches for little gain.
            if best >= nice_len {
                next_search = pos + best;
            }
        } else {
            mf.advance(d, pos, max_len, nice.min(max_len), depth, max_offset, None);
        }
        pos += 1;
        if split.recent_total >= SplitStats::CHECK_EVERY
            && pos - block_start >= MIN_BLOCK
            && max_end - pos >= MIN_BLOCK
            && split.should_split()
        {
            break;
        }
    }
    pos
}

/// Chooses the items of block `start..end` by repeated min-cost path searches and leaves
/// them in `seqs`. Returns the recent-offsets queue after the block.
#[inline(never)]
fn optimize_block(
    p: &mut Optimal,
    d: &[u8],
    start: usize,
    end: usize,
    queue_in: [u32; NUM_RECENT],
    seqs: &mut Vec<Seq>,
    coder: &mut Coder,
) -> [u32; NUM_RECENT] {
    // Initial prices: a greedy parse with one step of lookahead (a repeat-offset match, the
    // longest cached match of 3+ bytes, or a literal), turned into Huffman code lengths.
    coder.reset_freqs();
    {
        let mut ci = 0;
        let mut pos = start;
        let mut skip_to = start;
        let mut q = queue_in;
        while pos < end {
            let cnt = p.cache[ci].len as usize;
            let m = if cnt > 0 {
                p.cache[ci + cnt]
            } else {
                Match::default()
            };
            ci += cnt + 1;
            if pos >= skip_to && cnt == 0 && end - pos >= 8 {
                // As in the path search, positions without cached matches get no repeat
                // matches either.
                coder.main_freq[d[pos] as usize] += 1;
            } else if pos >= skip_to {
                let max = (end - pos).min(MAX_MATCH);
                let len = (m.len as usize).min(max);
                // The longest repeat-offset match wins unless the explicit match is longer
                // by two or more: it needs no offset bits, and even two bytes of it beat two
                // literals. Leaving repeat matches (the short ones especially) out of this
                // parse would price them as unused symbols, so dear that no pass ever picks
                // them, which costs a lot on text in multi-byte encodings.
                let mut rep = (0, 0);
                for (k, &r) in q.iter().enumerate() {
                    let l = rep_len_if(d, pos, r as usize, (rep.1 + 1).max(MIN_MATCH), max);
                    if l > rep.1 {
                        rep = (k, l);
                    }
                }
                // One step of lookahead, as a lazy parser would: an explicit match that the
                // next position beats becomes a literal. The statistics then look more like
                // those of the path search, which they price.
                let next_longer = len >= 3 && rep.1 < len && pos + 1 < end && {
                    let c = p.cache[ci].len as usize;
                    c > 0 && p.cache[ci + c].len as usize > len
                };
                if next_longer {
                    coder.main_freq[d[pos] as usize] += 1;
                } else if rep.1 >= MIN_MATCH && rep.1 + 1 >= len {
                    q.swap(0, rep.0);
                    coder.tally_match(rep.1, rep.0 as u32);
                    skip_to = pos + rep.1;
                } else if len >= 3 {
                    let code = match q.iter().position(|&r| r == m.offset) {
                        Some(k) => {
                            q.swap(0, k);
                            k as u32
                        }
                        None => {
                            q = [m.offset, q[0], q[1]];
                            m.offset + 2
                        }
                    };
                    coder.tally_match(len, code);
                    skip_to = pos + len;
                } else {
                    coder.main_freq[d[pos] as usize] += 1;
                }
            }
            pos += 1;
        }
    }
    coder.build_codes();
    p.costs.set_from_codes(coder);

    // Statistics passes (see `STATS_PASS_EIGHTHS`), each pricing the next pass by the codes
    // its path would produce; only their statistics matter, tallied straight from the nodes.
    for _ in 1..p.passes {
        let stats_end = start + (end - start) * STATS_PASS_EIGHTHS / 8;
        min_cost_path::<false>(p, d, start, stats_end, queue_in);
        coder.reset_freqs();
        walk_path(p, d, start, stats_end, |s| coder.tally_seq(s));
        coder.build_codes();
        p.costs.set_from_codes(coder);
    }
    let queue_out = min_cost_path::<true>(p, d, start, end, queue_in);
    trace_path(p, d, start, end, seqs);
    queue_out
}

/// A recent-offsets queue packed into one word: three 21-bit offsets (LZX offsets stay
/// below `1 << MAX_WINDOW_ORDER`), the most recent in the low bits. Moving a 64-bit value
/// around is what makes keeping a queue per node cheap.
#[derive(Clone, Copy)]
struct PackedQueue(u64);

impl PackedQueue {
    const BITS: u32 = 21;
    const MASK: u64 = (1 << Self::BITS) - 1;

    fn pack(q: [u32; NUM_RECENT]) -> Self {
        Self(u64::from(q[0]) | u64::from(q[1]) << Self::BITS | u64::from(q[2]) << (2 * Self::BITS))
    }

    fn unpack(self) -> [u32; NUM_RECENT] {
        [self.get(0), self.get(1), self.get(2)]
    }

    #[inline(always)]
    fn get(self, k: usize) -> u32 {
        ((self.0 >> (Self::BITS * k as u32)) & Self::MASK) as u32
    }

    /// The queue after an explicit match with `offset`.
    #[inline(always)]
    fn push(self, offset: u32) -> Self {
        Self(((self.0 << Self::BITS) | u64::from(offset)) & ((1 << (3 * Self::BITS)) - 1))
    }

    /// The queue after a match with repeat offset `k`: that offset moves to the front.
    #[inline(always)]
    fn swap_front(self, k: usize) -> Self {
        if k == 0 {
            return self;
        }
        let shift = Self::BITS * k as u32;
        let (r0, rk) = (self.0 & Self::MASK, (self.0 >> shift) & Self::MASK);
        Self((self.0 & !(Self::MASK | Self::MASK << shift)) | rk | r0 << shift)
    }
}

/// Length of the repeat match at `pos` with `offset` if it can reach `need` bytes (checked
/// cheaply first: the first two bytes and the last needed one); 0 or something shorter than
/// `need` otherwise. `need >= 2`.
#[inline(always)]
fn rep_len_if(d: &[u8], pos: usize, offset: usize, need: usize, max: usize) -> usize {
    if offset > pos || need > max {
        return 0;
    }
    let m = pos - offset;
    if d[m + need - 1] != d[pos + need - 1] || d[m] != d[pos] || d[m + 1] != d[pos + 1] {
        return 0;
    }
    extend(d, m, pos, 2, max)
}

/// Forward dynamic programming over the block: node `i` (byte `start + i`) gets the cheapest
/// way found to reach it and the recent-offsets queue of that path. Each node relaxes a
/// literal, the repeat offsets of its own queue, and the cached matches; for every length
/// only the cheapest kind of offset is tried (repeat offsets first, then cached matches in
/// order of increasing offset), which is where most of the speed comes from. Without
/// `ALL_MATCHES`, only the longest cached match of each node is tried (with all its lengths).
#[inline(never)]
fn min_cost_path<const ALL_MATCHES: bool>(
    p: &mut Optimal,
    d: &[u8],
    start: usize,
    end: usize,
    queue_in: [u32; NUM_RECENT],
) -> [u32; NUM_RECENT] {
    let size = end - start;
    let nodes = &mut p.nodes[..=size];
    let gap = &mut p.gap[..=size];
    let queue = &mut p.queue;
    let costs = &p.costs;
    let d = &d[..end];
    nodes.fill(Node {
        cost: u32::MAX,
        item: 0,
    });
    nodes[0].cost = 0;
    queue[0] = PackedQueue::pack(queue_in);
    let cache = &p.cache[..];
    let mut ci = 0;
    for (i, &lit) in d[start..].iter().enumerate() {
        let pos = start + i;
        let base_cost = nodes[i].cost;
        let q = queue[i % QUEUE_RING];
        let count = cache[ci].len as usize;
        let matches = &cache[ci + 1..ci + 1 + count];
        ci += 1 + count;
        // The last few positions of a chunk have no cached matches, but repeat matches may
        // still end it.
        if count != 0 || end - pos < 8 {
            // SAFETY: `nodes` and `gap` have `size + 1` entries, so `end - pos + 1` from `i`
            // on; the cache holds the match finder's matches, by increasing length and each
            // reaching back at most to the chunk's start.
            unsafe {
                relax_matches::<ALL_MATCHES>(
                    nodes.as_mut_ptr().add(i),
                    gap.as_mut_ptr().add(i),
                    costs,
                    d,
                    pos,
                    q,
                    matches,
                );
            }
        }
        let c = base_cost + costs.main[usize::from(lit)];
        // Node i + 1 has now seen all its incoming edges: fix its path and queue.
        let next = &mut nodes[i + 1];
        let nq = if c <= next.cost {
            *next = Node { cost: c, item: 1 };
            q
        } else {
            let it = next.item;
            let len = (it & 511) as usize;
            let code = it >> 9;
            if it & GAP != 0 {
                // Only the explicit match changes the queue; rep0 then reuses its offset.
                let g = gap[i + 1];
                let from = i + 1 - len - 1 - (g & 511) as usize;
                queue[from % QUEUE_RING].push((g >> 9) - 2)
            } else if code < NUM_RECENT as u32 {
                queue[(i + 1 - len) % QUEUE_RING].swap_front(code as usize)
            } else {
                queue[(i + 1 - len) % QUEUE_RING].push(code - 2)
            }
        };
        queue[(i + 1) % QUEUE_RING] = nq;
    }
    queue[size % QUEUE_RING].unpack()
}

/// Relaxes the edges of one node other than the literal: its repeat-offset matches, its
/// cached `matches` (only the longest unless `ALL_MATCHES`) and the "match, literal, rep0
/// match" step after the longest of them. `ns` and `gs` point at the node (byte `pos`,
/// reached with queue `q`) in the node and gap arrays, which run to the end of `d`. Kept out
/// of line and with raw accesses: the per-node loop then stays small enough to live in
/// registers, many nodes have no matches, and this is the parser's hottest code.
///
/// # Safety
/// `pos < d.len()`; `ns` and `gs` must be valid for `d.len() - pos + 1` entries; `matches`
/// must be ordered by increasing length and every one must reach back at most `pos` bytes.
#[inline(never)]
unsafe fn relax_matches<const ALL_MATCHES: bool>(
    ns: *mut Node,
    gs: *mut u32,
    costs: &Costs,
    d: &[u8],
    pos: usize,
    q: PackedQueue,
    matches: &[Match],
) {
    let avail = d.len() - pos;
    if avail < MIN_MATCH {
        return;
    }
    let base_cost = (*ns).cost;
    let max_len = avail.min(MAX_MATCH);
    let dp = d.as_ptr();
    let here = dp.add(pos);
    let head = here.cast::<u16>().read_unaligned();
    let mut next_len = MIN_MATCH;
    for k in 0..NUM_RECENT {
        let offset = q.get(k) as usize;
        if offset > pos {
            continue;
        }
        let there = here.sub(offset);
        // Cheap rejections first: the first two bytes, then the last byte a useful match
        // needs (`next_len <= max_len` holds: a repeat match reaching `max_len` returns).
        if there.cast::<u16>().read_unaligned() != head
            || *there.add(next_len - 1) != *here.add(next_len - 1)
        {
            continue;
        }
        let l = extend_unchecked(dp, pos - offset, pos, 2, max_len);
        if l < next_len {
            continue;
        }
        relax::<true>(ns, next_len, l, base_cost, &costs.matches[k], k as u32);
        if l == max_len {
            // Nothing longer remains for the cached matches, nor a gap step after them.
            return;
        }
        next_len = l + 1;
    }
    let mut longest = None;
    let matches = if ALL_MATCHES {
        matches
    } else {
        &matches[matches.len().saturating_sub(1)..]
    };
    for m in matches {
        let l = (m.len as usize).min(max_len);
        if l < next_len {
            continue;
        }
        let code = m.offset + 2;
        let slot = slot_of(code);
        let mut bc = base_cost;
        if slot >= MIN_ALIGNED_SLOT {
            bc += costs.aligned[(code & 7) as usize];
        }
        let row = &costs.matches[slot];
        relax::<false>(ns, next_len, l, bc, row, code);
        next_len = l + 1;
        longest = Some((l, code, bc + row[l - MIN_MATCH]));
    }
    // The longest match may resume after one differing byte at the same offset (now rep0):
    // try "match, literal, rep0 match" as a single step.
    if let Some((l, code, c)) = longest {
        let after = pos + l + 1;
        let room = d.len().saturating_sub(after).min(QUEUE_RING - 2 - l);
        if room >= 2 {
            let src = after - (code as usize - 2);
            if dp.add(after).cast::<u16>().read_unaligned()
                == dp.add(src).cast::<u16>().read_unaligned()
            {
                let r = extend_unchecked(dp, src, after, 2, room.min(MAX_MATCH));
                let c = c + costs.main[*dp.add(pos + l) as usize] + costs.matches[0][r - MIN_MATCH];
                let t = l + 1 + r;
                let n = &mut *ns.add(t);
                if c < n.cost {
                    *n = Node {
                        cost: c,
                        item: GAP | r as u32,
                    };
                    *gs.add(t) = (code << 9) | l as u32;
                }
            }
        }
    }
}

/// Offers nodes `from ..= to` after `ns` the match of each of those lengths with offset code
/// `code`, at `base` plus the length's price in `row`. Repeat offsets win ties (`TIE`):
/// they leave the queue in a more useful state.
///
/// # Safety
/// `ns` must point to at least `to + 1` nodes; `MIN_MATCH <= from` and `to <= MAX_MATCH`.
#[inline(always)]
unsafe fn relax<const TIE: bool>(
    ns: *mut Node,
    from: usize,
    to: usize,
    base: u32,
    row: &[u32; 256],
    code: u32,
) {
    let first = (code << 9) | from as u32;
    for (tag, len) in (first..).zip(from..=to) {
        let n = &mut *ns.add(len);
        let nc = base + *row.get_unchecked(len - MIN_MATCH);
        if nc < n.cost || (TIE && nc == n.cost) {
            *n = Node {
                cost: nc,
                item: tag,
            };
        }
    }
}

/// Reads the chosen path back from the block's end into `seqs`, in stream order.
#[inline(never)]
fn trace_path(p: &Optimal, d: &[u8], start: usize, end: usize, seqs: &mut Vec<Seq>) {
    seqs.clear();
    walk_path(p, d, start, end, |s| seqs.push(s));
    seqs.reverse();
}

/// Hands the items of the chosen path to `f`, from the block's end backwards.
#[inline(always)]
fn walk_path(p: &Optimal, d: &[u8], start: usize, end: usize, mut f: impl FnMut(Seq)) {
    let mut i = end - start;
    while i > 0 {
        let it = p.nodes[i].item;
        let len = (it & 511) as usize;
        if it & GAP != 0 {
            let g = p.gap[i];
            let l = (g & 511) as usize;
            f(Seq {
                len: len as u32,
                code: 0,
            });
            f(Seq {
                len: 1,
                code: u32::from(d[start + i - len - 1]),
            });
            f(Seq {
                len: l as u32,
                code: g >> 9,
            });
            i -= len + 1 + l;
            continue;
        }
        if len == 1 {
            f(Seq {
                len: 1,
                code: u32::from(d[start + i - 1]),
            });
        } else {
            f(Seq {
                len: len as u32,
                code: it >> 9,
            });
        }
        i -= len;
    }
}

#[cfg(test)]
mod tests {
    use super::super::lzx::LzxDecoder;
    use super::super::Decompressor;
    use super::*;

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn round_trip(enc: &mut LzxEncoder, dec: &mut LzxDecoder, data: &[u8]) -> Option<usize> {
        let mut out = Vec::new();
        if !enc.compress(data, &mut out) {
            return None;
        }
        assert!(out.len() < data.len());
        let mut back = vec![0u8; data.len()];
        dec.decompress(&out, &mut back)
            .expect("decoder rejected output");
        assert!(back == data, "round trip mismatch, {} bytes", data.len());
        Some(out.len())
    }

    /// Text-like data: words from a small vocabulary with some noise.
    fn text(rng: &mut Rng, n: usize) -> Vec<u8> {
        let words: Vec<Vec<u8>> = (0..300)
            .map(|_| {
                let l = 2 + rng.below(9);
                (0..l).map(|_| b'a' + rng.below(26) as u8).collect()
            })
            .collect();
        let mut v = Vec::with_capacity(n + 16);
        while v.len() < n {
            v.extend_from_slice(&words[rng.below(words.len()).min(rng.below(300))]);
            v.push(if rng.below(12) == 0 { b'\n' } else { b' ' });
        }
        v.truncate(n);
        v
    }

    /// Machine-code-like data: records with CALL (E8) instructions to a few targets, small
    /// integers and repeated structures at varied distances.
    fn code_like(rng: &mut Rng, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 16);
        let targets: Vec<i32> = (0..20).map(|_| rng.below(1 << 20) as i32).collect();
        while v.len() < n {
            match rng.below(6) {
                0 => {
                    let t = targets[rng.below(targets.len())];
                    v.push(0xE8);
                    let rel = t - v.len() as i32;
                    v.extend_from_slice(&rel.to_le_bytes());
                }
                1 => v.extend_from_slice(&[0x48, 0x89, 0xe5, 0x41, 0x57]),
                2 => v.extend_from_slice(&(rng.below(4096) as u32).to_le_bytes()),
                3 if v.len() > 300 => {
                    let s = v.len() - 1 - rng.below(300);
                    let l = 3 + rng.below(30);
                    for k in 0..l {
                        v.push(v[s + k]);
                    }
                }
                _ => v.push(rng.below(256) as u8),
            }
        }
        v.truncate(n);
        v
    }

    fn encoders(chunk: u32) -> Vec<LzxEncoder> {
        [1, 20, 35, 50, 80]
            .iter()
            .map(|&l| LzxEncoder::new(chunk, l).unwrap())
            .collect()
    }

    #[test]
    fn slot_function_matches_table() {
        for slot in 3..MAX_SLOTS {
            let lo = SLOT_BASE[slot];
            let hi = SLOT_BASE[slot + 1] - 1;
            assert_eq!(slot_of(lo), slot, "slot {slot} low");
            assert_eq!(slot_of(hi), slot, "slot {slot} high");
        }
        assert_eq!(num_main_syms(15), 256 + 30 * 8);
        assert_eq!(num_main_syms(17), 256 + 34 * 8);
        assert_eq!(num_main_syms(21), 256 + 50 * 8);
    }

    #[test]
    fn huffman_codes_are_complete_and_limited() {
        let mut rng = Rng(7);
        let mut h = HuffBuilder::new();
        let mut lens = [0u8; MAX_MAIN_SYMS];
        let mut codes = [0u32; MAX_MAIN_SYMS];
        for round in 0..500 {
            let max = [7, 12, 16][round % 3];
            // A 7-bit limit is only ever used for the 8- and 20-symbol codes.
            let n = 2 + rng.below(if max == 7 { 19 } else { MAX_MAIN_SYMS - 2 });
            // Fibonacci-like skew forces deep trees that need limiting.
            let freqs: Vec<u32> = (0..n)
                .map(|i| match round % 3 {
                    0 => rng.below(3) as u32,
                    1 => 1u32 << (i % 22).min(rng.below(23)),
                    _ => rng.below(100_000) as u32,
                })
                .collect();
            h.build(&freqs, max, &mut lens, &mut codes);
            let used = freqs.iter().filter(|&&f| f > 0).count();
            let kraft: u64 = lens[..n]
                .iter()
                .filter(|&&l| l > 0)
                .map(|&l| 1u64 << (32 - l))
                .sum();
            if used == 0 {
                assert_eq!(kraft, 0);
            } else {
                assert_eq!(kraft, 1 << 32, "round {round}");
                assert!(lens[..n].iter().all(|&l| u32::from(l) <= max));
                for (f, &l) in freqs.iter().zip(&lens[..n]) {
                    assert!(*f == 0 || l > 0);
                }
            }
        }
    }

    #[test]
    fn round_trips_generated_data() {
        let mut rng = Rng(0x1234_5678);
        for chunk in [32_768u32, 65_536, 1 << 20, 1 << 21] {
            let mut dec = LzxDecoder::new(chunk).unwrap();
            let sizes = [chunk as usize, chunk as usize / 2 + 77];
            // The big windows get one lazy and one near-optimal level to keep the test quick.
            let mut encs = encoders(chunk);
            if chunk >= 1 << 20 {
                encs.drain(2..3);
                encs.drain(0..1);
                encs.truncate(2);
            }
            for mut enc in encs {
                for &n in &sizes {
                    if chunk >= 1 << 20 && n != chunk as usize {
                        continue;
                    }
                    let t = text(&mut rng, n);
                    assert!(round_trip(&mut enc, &mut dec, &t).unwrap() < n / 2);
                    let c = code_like(&mut rng, n);
                    round_trip(&mut enc, &mut dec, &c).unwrap();
                    let z = vec![0u8; n];
                    assert!(round_trip(&mut enc, &mut dec, &z).unwrap() < 100 + n / 200);
                    let r: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                    // Noise still yields a few short matches over megabytes, but must not shrink much.
                    if let Some(c) = round_trip(&mut enc, &mut dec, &r) {
                        assert!(c > n - n / 100, "random {n} -> {c}");
                    }
                }
            }
        }
    }

    /// A table of mostly ascending CJK characters in UTF-8 (like an encoding map): each
    /// 3-byte character shares its first two bytes with the one before, so the data is
    /// mostly "rep0 match of length 2, literal".
    #[test]
    fn short_repeat_matches_are_used() {
        let mut rng = Rng(7);
        let mut v = Vec::with_capacity(32_800);
        let mut cp = 0x4E00u32;
        while v.len() < 32_768 {
            cp += 1 + if rng.below(4) == 0 {
                rng.below(3) as u32
            } else {
                0
            };
            if rng.below(40) == 0 {
                cp = 0x4E00 + rng.below(0x5000) as u32;
            }
            let mut b = [0u8; 4];
            v.extend_from_slice(char::from_u32(cp).unwrap().encode_utf8(&mut b).as_bytes());
        }
        v.truncate(32_768);
        let mut dec = LzxDecoder::new(32_768).unwrap();
        for level in [35, 50, 80] {
            let mut enc = LzxEncoder::new(32_768, level).unwrap();
            let c = round_trip(&mut enc, &mut dec, &v).unwrap();
            assert!(c < v.len() * 2 / 5, "level {level}: {c} bytes");
        }
    }

    #[test]
    fn tiny_and_odd_inputs() {
        let mut dec = LzxDecoder::new(32_768).unwrap();
        let mut rng = Rng(99);
        for mut enc in encoders(32_768) {
            let mut out = Vec::new();
            assert!(!enc.compress(&[], &mut out));
            for n in 1..300 {
                let a = vec![b'a'; n];
                round_trip(&mut enc, &mut dec, &a);
                let e8 = vec![0xE8; n];
                round_trip(&mut enc, &mut dec, &e8);
                let t = text(&mut rng, n);
                round_trip(&mut enc, &mut dec, &t);
            }
            // Offsets right up to the window's largest codable one.
            let mut v: Vec<u8> = (0..32_768).map(|_| rng.next() as u8).collect();
            let head: Vec<u8> = v[..40].to_vec();
            v[32_768 - 40..].copy_from_slice(&head);
            round_trip(&mut enc, &mut dec, &v);
        }
    }

    #[test]
    fn random_inputs() {
        let mut rng = Rng(0xdead_beef);
        let mut dec = LzxDecoder::new(65_536).unwrap();
        let mut encs = encoders(65_536);
        for round in 0..300 {
            let n = 1 + rng.below(if round % 10 == 0 { 65_536 } else { 5000 });
            // Mixtures of runs, copies and noise over a few alphabets.
            let alpha = [2usize, 4, 16, 256][rng.below(4)];
            let mut v = Vec::with_capacity(n);
            while v.len() < n {
                match rng.below(4) {
                    0 if !v.is_empty() => {
                        let s = rng.below(v.len());
                        let l = 1 + rng.below(300);
                        for k in 0..l {
                            v.push(v[s + k]);
                        }
                    }
                    1 => {
                        let b = rng.below(alpha) as u8;
                        v.extend(std::iter::repeat_n(b, 1 + rng.below(40)));
                    }
                    _ => v.push(if rng.below(8) == 0 {
                        0xE8
                    } else {
                        rng.below(alpha) as u8
                    }),
                }
            }
            v.truncate(n);
            let enc = &mut encs[round % 5];
            round_trip(enc, &mut dec, &v);
        }
    }

    #[test]
    fn e8_is_undone_by_decoder() {
        let mut rng = Rng(5);
        let mut dec = LzxDecoder::new(32_768).unwrap();
        let mut enc = LzxEncoder::new(32_768, 50).unwrap();
        for _ in 0..50 {
            let n = 11 + rng.below(5000);
            let mut v = code_like(&mut rng, n);
            // Operands at the translation boundaries.
            for i in 0..n.saturating_sub(5) {
                if v[i] == 0xE8 && rng.below(2) == 0 {
                    let x = match rng.below(3) {
                        0 => -(rng.below(n + 10) as i32),
                        1 => E8_FILE_SIZE - rng.below(n + 10) as i32,
                        _ => rng.next() as i32,
                    };
                    v[i + 1..i + 5].copy_from_slice(&x.to_le_bytes());
                }
            }
            round_trip(&mut enc, &mut dec, &v);
        }
    }

    #[test]
    fn bad_parameters() {
        assert!(LzxEncoder::new(0, 50).is_err());
        assert!(LzxEncoder::new((1 << 21) + 1, 50).is_err());
        assert!(LzxEncoder::new(32_768, 0).is_err());
        assert!(LzxEncoder::new(32_768, 101).is_err());
    }
}
