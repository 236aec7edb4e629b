//! LZMS decompression, the format of WIM resources flagged LZMS and of most solid blocks.
//!
//! A chunk is one self-contained stream of 16-bit little-endian words read from both ends at
//! once. From the front, a binary range decoder with adaptive probabilities yields the item
//! kind (literal, LZ match, delta match) and which repeat-queue slot a match reuses. From the
//! back, an MSB-first bitstream yields adaptive-Huffman symbols (literals, offset slots,
//! length slots, delta powers) and the verbatim extra bits of offsets and lengths. The Huffman
//! codes are rebuilt from running symbol counts every few hundred symbols, so the decoder has
//! to rebuild them bit-for-bit the way Microsoft's (and wimlib's) encoder does. Finally the
//! encoder's x86 call/jump address translation is undone over the whole chunk.

use super::{CodecError, Decompressor};

/// Largest chunk the format allows (and the largest any known encoder produces).
pub(super) const MAX_CHUNK_SIZE: u32 = 1 << 30;

pub(super) const MAX_CODEWORD_LEN: usize = 15;
pub(super) const NUM_LITERAL_SYMS: usize = 256;
pub(super) const NUM_LENGTH_SYMS: usize = 54;
pub(super) const NUM_DELTA_POWER_SYMS: usize = 8;
pub(super) const MAX_OFFSET_SYMS: usize = 799;

/// Primary decode-table widths; longer codewords go through a second-level table. Only speed
/// depends on these.
const LITERAL_TABLE_BITS: u32 = 10;
const LENGTH_TABLE_BITS: u32 = 9;
const OFFSET_TABLE_BITS: u32 = 10;
const POWER_TABLE_BITS: u32 = 7;

pub(super) const LITERAL_REBUILD: u32 = 1024;
pub(super) const OFFSET_REBUILD: u32 = 1024;
pub(super) const LENGTH_REBUILD: u32 = 512;
pub(super) const POWER_REBUILD: u32 = 512;

/// Verbatim-bit counts per offset slot, as (bits, number of consecutive slots) runs. Slot bases
/// follow from these: slot 0 starts at 1 and each slot covers `1 << bits` values.
const OFFSET_EXTRA_BITS_RUNS: [(u8, u16); 21] = [
    (0, 8),
    (2, 9),
    (3, 7),
    (4, 10),
    (5, 15),
    (6, 15),
    (7, 20),
    (8, 20),
    (9, 30),
    (10, 33),
    (11, 40),
    (12, 42),
    (13, 45),
    (14, 60),
    (15, 73),
    (16, 80),
    (17, 85),
    (18, 95),
    (19, 105),
    (20, 6),
    (30, 1),
];

const LENGTH_EXTRA_BITS_RUNS: [(u8, u16); 13] = [
    (0, 26),
    (1, 4),
    (2, 6),
    (3, 4),
    (4, 5),
    (5, 2),
    (6, 1),
    (7, 1),
    (8, 1),
    (9, 1),
    (10, 1),
    (16, 1),
    (30, 1),
];

/// A slot's base value and verbatim-bit count, packed so one load serves both.
#[derive(Clone, Copy)]
pub(super) struct Slot {
    pub(super) base: u32,
    pub(super) extra_bits: u32,
}

const fn expand_slots<const N: usize>(runs: &[(u8, u16)]) -> [Slot; N] {
    let mut out = [Slot {
        base: 0,
        extra_bits: 0,
    }; N];
    let mut base: u32 = 1;
    let mut slot = 0;
    let mut r = 0;
    while r < runs.len() {
        let (bits, count) = runs[r];
        let mut k = 0;
        while k < count {
            out[slot] = Slot {
                base,
                extra_bits: bits as u32,
            };
            // The last slot's end overflows nothing: 0x065b_e4a5 + (1 << 30) fits in u32.
            base += 1 << bits;
            slot += 1;
            k += 1;
        }
        r += 1;
    }
    assert!(slot == N);
    out
}

pub(super) static OFFSET_SLOTS: [Slot; MAX_OFFSET_SYMS] = expand_slots(&OFFSET_EXTRA_BITS_RUNS);
pub(super) static LENGTH_SLOTS: [Slot; NUM_LENGTH_SYMS] = expand_slots(&LENGTH_EXTRA_BITS_RUNS);

/// The number of offset slots the encoder may use for a chunk of `size` bytes: enough to reach
/// the largest possible offset, `size - 1`. At least 2, so every alphabet forms a real code;
/// for the 2-byte chunks where only one slot exists, the second slot decodes to an offset
/// that is always rejected, exactly as an unassigned codeword would be.
pub(super) fn num_offset_slots(size: usize) -> usize {
    let max_offset = size.saturating_sub(1).min(u32::MAX as usize) as u32;
    OFFSET_SLOTS
        .partition_point(|s| s.base <= max_offset)
        .max(2)
}

fn corrupt(what: &'static str) -> CodecError {
    CodecError::Corrupt {
        codec: "lzms",
        what,
    }
}

// ---------------------------------------------------------------------------------------------
// Range decoder (front of the chunk)

/// Adaptive probability: the last 64 bits coded in this context, and how many were zeros.
#[derive(Clone, Copy)]
pub(super) struct Prob {
    pub(super) zeros: u32,
    history: u64,
}

impl Prob {
    /// 48 zeros out of the last 64: the history's upper half zeros, lower half alternating.
    pub(super) const INITIAL: Prob = Prob {
        zeros: 48,
        history: 0x5555_5555,
    };

    /// The chance out of 64 that the next bit is 0, never 0 or 64.
    #[inline(always)]
    pub(super) fn zero_chance(&self) -> u32 {
        let mut prob = self.zeros;
        prob += prob.wrapping_sub(1) >> 31;
        prob - (prob >> 6)
    }

    /// Records one coded bit (0 or 1).
    #[inline(always)]
    pub(super) fn update(&mut self, bit: u32) {
        let oldest = (self.history >> 63) as u32;
        self.zeros = self.zeros + oldest - bit;
        self.history = (self.history << 1) | bit as u64;
    }
}

#[derive(Clone, Copy)]
pub(super) struct Probs {
    pub(super) main: [Prob; 16],
    pub(super) matches: [Prob; 32],
    pub(super) lz: [Prob; 64],
    pub(super) delta: [Prob; 64],
    pub(super) lz_rep: [[Prob; 64]; 2],
    pub(super) delta_rep: [[Prob; 64]; 2],
}

impl Probs {
    pub(super) const INITIAL: Probs = Probs {
        main: [Prob::INITIAL; 16],
        matches: [Prob::INITIAL; 32],
        lz: [Prob::INITIAL; 64],
        delta: [Prob::INITIAL; 64],
        lz_rep: [[Prob::INITIAL; 64]; 2],
        delta_rep: [[Prob::INITIAL; 64]; 2],
    };
}

/// The stream's state; the input is passed to each call (it is shared with the bitstream,
/// and one slice keeps one fewer pair of registers live in the decode loop).
struct RangeDecoder {
    pos: usize,
    range: u32,
    code: u32,
}

impl RangeDecoder {
    fn new(input: &[u8]) -> Self {
        let hi = u16::from_le_bytes([input[0], input[1]]) as u32;
        let lo = u16::from_le_bytes([input[2], input[3]]) as u32;
        RangeDecoder {
            pos: 4,
            range: u32::MAX,
            code: (hi << 16) | lo,
        }
    }

    /// Decodes one bit in the context selected by `state`, whose low bits are the most recent
    /// bits decoded with this family of contexts.
    #[inline(always)]
    fn bit<const N: usize>(
        &mut self,
        input: &[u8],
        state: &mut usize,
        probs: &mut [Prob; N],
    ) -> usize {
        let p = &mut probs[*state & (N - 1)];
        // Neither certainty is representable: 0 and 64 zeros are clamped to 1 and 63.
        let mut prob = p.zeros;
        prob += prob.wrapping_sub(1) >> 31;
        prob -= prob >> 6;

        if self.range & 0xFFFF_0000 == 0 {
            self.range <<= 16;
            self.code <<= 16;
            // Past the end of the input zeros are shifted in, as the reference decoder does;
            // decoding still stops, since every item produces output.
            if let Some(w) = input.get(self.pos..self.pos + 2) {
                self.code |= u16::from_le_bytes([w[0], w[1]]) as u32;
                self.pos += 2;
            }
        }

        let bound = (self.range >> 6) * prob;
        let bit = if self.code < bound {
            self.range = bound;
            0
        } else {
            self.range -= bound;
            self.code -= bound;
            1
        };
        let oldest = (p.history >> 63) as u32;
        p.zeros = p.zeros + oldest - bit as u32;
        p.history = (p.history << 1) | bit as u64;
        *state = ((*state << 1) | bit) & (N - 1);
        bit
    }
}

// ---------------------------------------------------------------------------------------------
// Bitstream (back of the chunk)

struct BitReader {
    /// Bytes `..end` are not yet loaded; words are consumed from the end towards the front.
    end: usize,
    /// Next bits at the top. Bits below `avail` may already hold the following stream bits;
    /// later refills OR the same bits into the same place, so they are harmless.
    buf: u64,
    avail: u32,
}

impl BitReader {
    fn new(input: &[u8]) -> Self {
        BitReader {
            end: input.len(),
            buf: 0,
            avail: 0,
        }
    }

    /// Makes at least `n` (<= 32) bits available.
    #[inline(always)]
    fn ensure(&mut self, input: &[u8], n: u32) {
        if self.avail < n {
            self.refill(input);
        }
    }

    #[inline(always)]
    fn refill(&mut self, input: &[u8]) {
        if self.end >= 8 {
            let word: [u8; 8] = input[self.end - 8..self.end].try_into().unwrap();
            // Loaded little-endian, the word nearest `end` is the top 16 bits, which is exactly
            // the order the stream is read in.
            self.buf |= u64::from_le_bytes(word) >> self.avail;
            let taken = (64 - self.avail) & !15;
            self.end -= (taken / 8) as usize;
            self.avail += taken;
        } else {
            self.refill_slow(input);
        }
    }

    #[cold]
    fn refill_slow(&mut self, input: &[u8]) {
        while self.avail <= 48 {
            if self.end < 2 {
                // The encoder never needs bits beyond the start; reading zeros there matches
                // the reference decoder, and decoding still ends because output is bounded.
                self.avail = 64;
                return;
            }
            let w = u16::from_le_bytes([input[self.end - 2], input[self.end - 1]]);
            self.buf |= (w as u64) << (48 - self.avail);
            self.end -= 2;
            self.avail += 16;
        }
    }

    /// The next `n` bits (`n` <= `avail`, may be 0) without consuming them.
    #[inline(always)]
    fn peek(&self, n: u32) -> usize {
        // Two shifts so that n == 0 yields 0 instead of an out-of-range shift.
        ((self.buf >> 1) >> (63 - n)) as usize
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.buf <<= n;
        self.avail -= n;
    }

    /// Reads `n` <= 30 verbatim bits.
    #[inline(always)]
    fn bits(&mut self, input: &[u8], n: u32) -> u32 {
        self.ensure(input, n);
        let v = self.peek(n) as u32;
        self.consume(n);
        v
    }
}

// ---------------------------------------------------------------------------------------------
// Adaptive Huffman codes

/// Decode-table entry flag: the entry points to a second-level table instead of a symbol.
const SUBTABLE: u32 = 0x80;

/// Work space shared by all code rebuilds.
pub(super) struct BuildScratch {
    /// `(freq << 10) | symbol`, sorted ascending, plus room for a sentinel.
    keys: [u32; MAX_OFFSET_SYMS + 1],
    node_freq: [u32; MAX_OFFSET_SYMS],
    node_parent: [u16; MAX_OFFSET_SYMS],
    node_depth: [u8; MAX_OFFSET_SYMS],
    pub(super) lens: [u8; MAX_OFFSET_SYMS],
    /// Symbols ordered by (codeword length, symbol): canonical codeword order.
    by_len: [u16; MAX_OFFSET_SYMS],
}

impl BuildScratch {
    pub(super) fn new() -> Self {
        BuildScratch {
            keys: [0; MAX_OFFSET_SYMS + 1],
            node_freq: [0; MAX_OFFSET_SYMS],
            node_parent: [0; MAX_OFFSET_SYMS],
            node_depth: [0; MAX_OFFSET_SYMS],
            lens: [0; MAX_OFFSET_SYMS],
            by_len: [0; MAX_OFFSET_SYMS],
        }
    }

    /// Fills `keys[..n]` with `(freq << 10) | symbol` in ascending order. Frequencies are
    /// mostly small, so a counting sort places all but the largest, which share the last
    /// bucket and are sorted conventionally.
    fn sort_keys(&mut self, freqs: &[u32]) {
        let n = freqs.len();
        let last = n - 1;
        let mut starts = [0u16; MAX_OFFSET_SYMS];
        let starts = &mut starts[..n];
        for &f in freqs {
            starts[(f as usize).min(last)] += 1;
        }
        let mut total = 0;
        for s in starts.iter_mut() {
            let count = *s;
            *s = total;
            total += count;
        }
        let big_start = starts[last] as usize;
        let keys = &mut self.keys[..n];
        for (sym, &f) in freqs.iter().enumerate() {
            let b = &mut starts[(f as usize).min(last)];
            keys[*b as usize] = (f << 10) | sym as u32;
            *b += 1;
        }
        keys[big_start..].sort_unstable();
    }

    /// Computes codeword lengths into `self.lens` from `freqs` (all nonzero, at least two).
    ///
    /// The encoder and decoder must agree exactly, so this follows the construction LZMS
    /// prescribes: classic two-queue Huffman over symbols sorted by (frequency, symbol), with
    /// leaves preferred over internal nodes on frequency ties; the per-length codeword counts
    /// are then handed out longest-first in that sorted order.
    pub(super) fn huffman_lengths(&mut self, freqs: &[u32]) {
        let n = freqs.len();
        self.sort_keys(freqs);

        // Build internal nodes in order of creation; their frequencies come out nondecreasing,
        // so leaves and internal nodes are both queues.
        // Sentinels stand in for an exhausted queue, so each pick is a branch-free select
        // (the choices are data-dependent and would mispredict often). The leaf sentinel
        // exceeds any real sum of frequencies; the node sentinel exceeds the leaf sentinel.
        self.keys[n] = u32::MAX;
        let (mut leaf, mut head) = (0usize, 0usize);
        for made in 0..n - 1 {
            self.node_freq[made] = u32::MAX;
            let mut sum = 0;
            for _ in 0..2 {
                let leaf_freq = self.keys[leaf] >> 10;
                let node_freq = self.node_freq[head];
                let take_leaf = leaf_freq <= node_freq;
                sum += if take_leaf { leaf_freq } else { node_freq };
                // A stale parent written here is overwritten when that node is really taken.
                self.node_parent[head] = made as u16;
                leaf += take_leaf as usize;
                head += !take_leaf as usize;
            }
            self.node_freq[made] = sum;
        }

        // Depths of internal nodes, root first. Each internal node at depth d turns one
        // presumed leaf at depth d into two at d + 1. Depths beyond the limit borrow from the
        // deepest shorter length instead, as the reference encoder does (it cannot happen
        // with LZMS's frequency ranges, but costs nothing to mirror).
        let mut counts = [0u32; MAX_CODEWORD_LEN + 2];
        counts[1] = 2;
        let root = n - 2;
        self.node_depth[root] = 0;
        for node in (0..root).rev() {
            let depth = self.node_depth[self.node_parent[node] as usize] + 1;
            self.node_depth[node] = depth;
            let mut len = depth as usize;
            if len >= MAX_CODEWORD_LEN {
                len = MAX_CODEWORD_LEN - 1;
                while counts[len] == 0 {
                    len -= 1;
                }
            }
            counts[len] -= 1;
            counts[len + 1] += 2;
        }

        let mut i = 0;
        for len in (1..=MAX_CODEWORD_LEN).rev() {
            for _ in 0..counts[len] {
                self.lens[(self.keys[i] & 0x3FF) as usize] = len as u8;
                i += 1;
            }
        }
    }

    /// Fills `table` for the canonical code with lengths `self.lens[..n]` (a complete code).
    ///
    /// Entries are `symbol << 16 | length` or, for a primary entry whose codewords are longer
    /// than `table_bits`, `start << 16 | SUBTABLE | sub_bits` naming a second-level table
    /// indexed by the next `sub_bits` bits.
    fn build_table(&mut self, n: usize, table_bits: u32, table: &mut Vec<u32>) {
        let mut counts = [0u32; MAX_CODEWORD_LEN + 1];
        for &l in &self.lens[..n] {
            counts[l as usize] += 1;
        }
        let mut next = [0u32; MAX_CODEWORD_LEN + 1];
        for len in 1..MAX_CODEWORD_LEN {
            next[len + 1] = next[len] + counts[len];
        }
        for sym in 0..n {
            let l = self.lens[sym] as usize;
            self.by_len[next[l] as usize] = sym as u16;
            next[l] += 1;
        }

        let tb = table_bits as usize;
        let primary = 1usize << tb;
        table.clear();
        table.resize(primary, 0);

        let mut i = 0;
        let mut pos = 0;
        for (len, &count) in counts.iter().enumerate().take(tb + 1).skip(1) {
            let step = 1 << (tb - len);
            for _ in 0..count {
                let sym = self.by_len[i] as u32;
                table[pos..pos + step].fill((sym << 16) | len as u32);
                pos += step;
                i += 1;
            }
        }

        // Longer codewords: `code` is the next canonical codeword at length `cur_len`.
        let mut remaining = counts;
        let mut code = pos as u32;
        let mut cur_len = tb;
        let mut prefix = usize::MAX;
        let mut sub_start = 0;
        let mut sub_bits = 0;
        while i < n {
            let sym = self.by_len[i] as u32;
            let len = self.lens[sym as usize] as usize;
            code <<= len - cur_len;
            cur_len = len;
            let p = (code >> (len - tb)) as usize;
            if p != prefix {
                prefix = p;
                // Smallest second-level width whose code space the remaining codewords
                // sharing this prefix fill exactly.
                sub_bits = len - tb;
                let mut space = 1i64 << sub_bits;
                loop {
                    space -= remaining[tb + sub_bits] as i64;
                    if space <= 0 || tb + sub_bits >= MAX_CODEWORD_LEN {
                        break;
                    }
                    sub_bits += 1;
                    space <<= 1;
                }
                sub_start = table.len();
                table.resize(sub_start + (1 << sub_bits), 0);
                if let Some(e) = table.get_mut(p) {
                    *e = ((sub_start as u32) << 16) | SUBTABLE | sub_bits as u32;
                }
            }
            let within = (code as usize) & ((1 << (len - tb)) - 1);
            let shift = tb + sub_bits - len;
            let at = sub_start + (within << shift);
            table[at..at + (1 << shift)].fill((sym << 16) | (len - tb) as u32);
            remaining[len] -= 1;
            code += 1;
            i += 1;
        }
    }
}

/// One adaptive Huffman code: running frequencies and the decode table built from them.
struct AdaptiveCode<const TABLE_BITS: u32> {
    num_syms: usize,
    rebuild_every: u32,
    until_rebuild: u32,
    freqs: Box<[u32]>,
    table: Vec<u32>,
}

impl<const TABLE_BITS: u32> AdaptiveCode<TABLE_BITS> {
    fn new(max_syms: usize, rebuild_every: u32) -> Self {
        AdaptiveCode {
            num_syms: max_syms,
            rebuild_every,
            until_rebuild: rebuild_every,
            freqs: vec![1; max_syms].into_boxed_slice(),
            table: Vec::with_capacity(1 << TABLE_BITS),
        }
    }

    /// Starts a chunk: every symbol seen once.
    fn reset(&mut self, num_syms: usize, scratch: &mut BuildScratch) {
        self.num_syms = num_syms;
        self.freqs[..num_syms].fill(1);
        self.build(scratch);
    }

    fn build(&mut self, scratch: &mut BuildScratch) {
        let n = self.num_syms;
        scratch.huffman_lengths(&self.freqs[..n]);
        scratch.build_table(n, TABLE_BITS, &mut self.table);
        self.until_rebuild = self.rebuild_every;
    }

    #[cold]
    #[inline(never)]
    fn rebuild(&mut self, scratch: &mut BuildScratch) {
        self.build(scratch);
        // Halving keeps the code adaptive; the +1 keeps every symbol encodable.
        for f in &mut self.freqs[..self.num_syms] {
            *f = (*f >> 1) + 1;
        }
    }

    #[inline(always)]
    fn decode(&mut self, input: &[u8], bits: &mut BitReader, scratch: &mut BuildScratch) -> usize {
        bits.ensure(input, MAX_CODEWORD_LEN as u32);
        let mut entry = self.table[bits.peek(TABLE_BITS)];
        if entry & SUBTABLE != 0 {
            bits.consume(TABLE_BITS);
            let sub = (entry >> 16) as usize + bits.peek(entry & 0xF);
            entry = self.table[sub];
        }
        bits.consume(entry & 0xF);
        let sym = (entry >> 16) as usize;
        self.freqs[sym] += 1;
        self.until_rebuild -= 1;
        if self.until_rebuild == 0 {
            self.rebuild(scratch);
        }
        sym
    }
}

// ---------------------------------------------------------------------------------------------
// Decoder

struct State {
    probs: Probs,
    literal: AdaptiveCode<LITERAL_TABLE_BITS>,
    lz_offset: AdaptiveCode<OFFSET_TABLE_BITS>,
    length: AdaptiveCode<LENGTH_TABLE_BITS>,
    delta_offset: AdaptiveCode<OFFSET_TABLE_BITS>,
    delta_power: AdaptiveCode<POWER_TABLE_BITS>,
    scratch: BuildScratch,
    /// For the x86 filter; allocated on first use.
    target_usage: Vec<i32>,
}

/// Reusable LZMS chunk decoder.
pub struct LzmsDecoder {
    chunk_size: usize,
    state: Option<Box<State>>,
}

impl LzmsDecoder {
    /// Makes a decoder for chunks of up to `chunk_size` bytes (at most 1 GiB).
    pub fn new(chunk_size: u32) -> Result<Self, CodecError> {
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(CodecError::Unsupported {
                codec: "lzms",
                what: "chunk size",
            });
        }
        Ok(LzmsDecoder {
            chunk_size: chunk_size as usize,
            state: None,
        })
    }
}

impl Decompressor for LzmsDecoder {
    fn decompress(&mut self, input: &[u8], output: &mut [u8]) -> Result<(), CodecError> {
        if output.len() > self.chunk_size {
            return Err(CodecError::Unsupported {
                codec: "lzms",
                what: "chunk larger than chunk size",
            });
        }
        // The stream is made of 16-bit words, and the range decoder starts with two of them.
        if input.len() & 1 != 0 || input.len() < 4 {
            return Err(corrupt("input length"));
        }
        let state = self.state.get_or_insert_with(|| {
            Box::new(State {
                probs: Probs::INITIAL,
                literal: AdaptiveCode::new(NUM_LITERAL_SYMS, LITERAL_REBUILD),
                lz_offset: AdaptiveCode::new(MAX_OFFSET_SYMS, OFFSET_REBUILD),
                length: AdaptiveCode::new(NUM_LENGTH_SYMS, LENGTH_REBUILD),
                delta_offset: AdaptiveCode::new(MAX_OFFSET_SYMS, OFFSET_REBUILD),
                delta_power: AdaptiveCode::new(NUM_DELTA_POWER_SYMS, POWER_REBUILD),
                scratch: BuildScratch::new(),
                target_usage: Vec::new(),
            })
        });
        state.decode(input, output)?;
        if output.len() > 17 {
            state.target_usage.resize(1 << 16, 0);
            x86_undo(output, &mut state.target_usage);
        }
        Ok(())
    }
}

impl State {
    // Out of line so the whole decode loop is optimised as one unit, apart from the x86 pass.
    #[inline(never)]
    fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let State {
            probs,
            literal,
            lz_offset,
            length,
            delta_offset,
            delta_power,
            scratch,
            ..
        } = self;
        *probs = Probs::INITIAL;
        let offset_syms = num_offset_slots(out.len());
        literal.reset(NUM_LITERAL_SYMS, scratch);
        lz_offset.reset(offset_syms, scratch);
        length.reset(NUM_LENGTH_SYMS, scratch);
        delta_offset.reset(offset_syms, scratch);
        delta_power.reset(NUM_DELTA_POWER_SYMS, scratch);

        let mut rd = RangeDecoder::new(input);
        let mut bits = BitReader::new(input);

        let (mut main_state, mut match_state, mut lz_state, mut delta_state) = (0, 0, 0, 0);
        let mut lz_rep_state = [0usize; 2];
        let mut delta_rep_state = [0usize; 2];

        // Repeat queues hold one extra slot: an explicit match only enters the queue after the
        // next item, so while the previous item was a match of the same kind, the queue is
        // read one slot further along.
        let mut lz_reps: [u32; 4] = [1, 2, 3, 4];
        let mut delta_reps: [(u32, u32); 4] = [(0, 1), (0, 2), (0, 3), (0, 4)];
        // 0: literal, 1: LZ match, 2: delta match.
        let mut prev_kind = 0usize;

        let n = out.len();
        let mut pos = 0usize;
        while pos < n {
            if rd.bit(input, &mut main_state, &mut probs.main) == 0 {
                out[pos] = literal.decode(input, &mut bits, scratch) as u8;
                pos += 1;
                prev_kind = 0;
                continue;
            }

            if rd.bit(input, &mut match_state, &mut probs.matches) == 0 {
                let offset = if rd.bit(input, &mut lz_state, &mut probs.lz) == 0 {
                    let slot = OFFSET_SLOTS[lz_offset.decode(input, &mut bits, scratch)];
                    lz_reps[3] = lz_reps[2];
                    lz_reps[2] = lz_reps[1];
                    lz_reps[1] = lz_reps[0];
                    slot.base + bits.bits(input, slot.extra_bits)
                } else {
                    let skew = prev_kind & 1;
                    let idx = if rd.bit(input, &mut lz_rep_state[0], &mut probs.lz_rep[0]) == 0 {
                        0
                    } else if rd.bit(input, &mut lz_rep_state[1], &mut probs.lz_rep[1]) == 0 {
                        1
                    } else {
                        2
                    };
                    let offset = lz_reps[idx + skew];
                    lz_reps[idx + skew] = lz_reps[idx];
                    // Move the entries in front of the used one back by one.
                    for k in (1..=idx).rev() {
                        lz_reps[k] = lz_reps[k - 1];
                    }
                    offset
                };
                lz_reps[0] = offset;
                prev_kind = 1;

                let slot = LENGTH_SLOTS[length.decode(input, &mut bits, scratch)];
                let len = (slot.base + bits.bits(input, slot.extra_bits)) as usize;
                let offset = offset as usize;
                if offset > pos {
                    return Err(corrupt("match offset before start of chunk"));
                }
                if len > n - pos {
                    return Err(corrupt("match runs past end of chunk"));
                }
                copy_match(out, pos, offset, len);
                pos += len;
            } else {
                let (power, raw) = if rd.bit(input, &mut delta_state, &mut probs.delta) == 0 {
                    let power = delta_power.decode(input, &mut bits, scratch) as u32;
                    let slot = OFFSET_SLOTS[delta_offset.decode(input, &mut bits, scratch)];
                    delta_reps[3] = delta_reps[2];
                    delta_reps[2] = delta_reps[1];
                    delta_reps[1] = delta_reps[0];
                    (power, slot.base + bits.bits(input, slot.extra_bits))
                } else {
                    let skew = prev_kind >> 1;
                    let idx = if rd.bit(input, &mut delta_rep_state[0], &mut probs.delta_rep[0])
                        == 0
                    {
                        0
                    } else if rd.bit(input, &mut delta_rep_state[1], &mut probs.delta_rep[1]) == 0 {
                        1
                    } else {
                        2
                    };
                    let pair = delta_reps[idx + skew];
                    delta_reps[idx + skew] = delta_reps[idx];
                    for k in (1..=idx).rev() {
                        delta_reps[k] = delta_reps[k - 1];
                    }
                    pair
                };
                delta_reps[0] = (power, raw);
                prev_kind = 2;

                let slot = LENGTH_SLOTS[length.decode(input, &mut bits, scratch)];
                let len = (slot.base + bits.bits(input, slot.extra_bits)) as usize;

                // power < 8 and raw < 2^31, so these cannot overflow in 64 bits.
                let span = 1usize << power;
                let offset = (raw as usize) << power;
                if offset > u32::MAX as usize || offset + span > pos {
                    return Err(corrupt("delta match before start of chunk"));
                }
                if len > n - pos {
                    return Err(corrupt("delta match runs past end of chunk"));
                }
                delta_copy(out, pos, offset, span, len);
                pos += len;
            }
        }
        Ok(())
    }
}

/// Copies `len` bytes from `offset` back, where the source may overlap the destination.
#[inline(always)]
fn copy_match(out: &mut [u8], pos: usize, offset: usize, len: usize) {
    let src = pos - offset;
    let end = pos + len;
    if offset >= 8 && end + 8 <= out.len() {
        // Whole words, each read before the word that could overlap it is written; the
        // overshoot past `end` lands in output not yet decoded.
        let (mut s, mut d) = (src, pos);
        while d < end {
            out.copy_within(s..s + 8, d);
            s += 8;
            d += 8;
        }
    } else if offset >= len {
        out.copy_within(src..src + len, pos);
    } else if offset == 1 {
        let b = out[src];
        out[pos..end].fill(b);
    } else {
        // The bytes from `src` repeat with period `offset`; each copy can take everything
        // written so far, doubling the chunk size.
        let mut done = 0;
        while done < len {
            let chunk = (pos + done - src).min(len - done);
            out.copy_within(src..src + chunk, pos + done);
            done += chunk;
        }
    }
}

/// A delta match predicts each byte from the byte `span` before it, corrected by the same
/// difference `offset` bytes further back.
fn delta_copy(out: &mut [u8], pos: usize, offset: usize, span: usize, len: usize) {
    for p in pos..pos + len {
        out[p] = out[p - offset]
            .wrapping_add(out[p - span])
            .wrapping_sub(out[p - offset - span]);
    }
}

// ---------------------------------------------------------------------------------------------
// x86 filter

/// Positions this close to an earlier likely instruction get translated.
const X86_MAX_TRANSLATION_DISTANCE: i32 = 1023;
/// Two references to the same (low 16 bits of a) target this close mark likely x86 code.
const X86_ID_WINDOW: i32 = 65535;

const BYTES_01: u64 = 0x0101_0101_0101_0101;

const fn bytes(v: u8) -> u64 {
    BYTES_01 * v as u64
}

/// High bit of each byte of `w0` (bytes `p..p + 8`) that starts a possibly translated
/// instruction, given the words one and two bytes further on. Computed eight positions at a
/// time, this skips the many 0x48 prefixes and 0xFF/0xF0 bytes that are not followed by the
/// right opcode and operand bytes; the exact test runs on the few that remain.
#[inline(always)]
fn x86_candidates(w0: u64, w1: u64, w2: u64) -> u64 {
    // High bit set exactly in the nonzero bytes of `t`, without carries between bytes.
    let nz = |t: u64| ((t & bytes(0x7F)).wrapping_add(bytes(0x7F))) | t;
    // 0x48/0x4C, then 0x89/0x8B/0x8D/0x8F, then a ModR/M byte with r/m = 101.
    let rip_relative = nz((w0 & bytes(0xFB)) ^ bytes(0x48))
        | nz((w1 | bytes(0x06)) ^ bytes(0x8F))
        | nz((w2 & bytes(0x07)) ^ bytes(0x05));
    let call_or_jmp = nz((w0 & bytes(0xFE)) ^ bytes(0xE8));
    let lock_add = nz(w0 ^ bytes(0xF0)) | nz(w1 ^ bytes(0x83)) | nz(w2 ^ bytes(0x05));
    let call_indirect = nz(!w0) | nz(w1 ^ bytes(0x15));
    !(rip_relative & call_or_jmp & lock_add & call_indirect) & bytes(0x80)
}

fn load_u64(data: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(data[at..at + 8].try_into().unwrap())
}

/// Candidate positions `p..p + n` as a bit mask, and `n` and the bits per position: the
/// same test as [`x86_candidates`], sixteen positions at a time with SSE2 (part of every
/// x86-64 processor) where the input allows, else eight at a time.
#[inline(always)]
fn x86_candidate_block(data: &[u8], p: usize) -> (u64, usize, u32) {
    #[cfg(target_arch = "x86_64")]
    if p + 18 <= data.len() {
        use std::arch::x86_64::*;
        // SAFETY: the three 16-byte loads end at `p + 18 <= data.len()`; they are unaligned
        // loads, and SSE2 is part of the x86-64 baseline.
        let mask = unsafe {
            let ptr = data.as_ptr().add(p);
            let w0 = _mm_loadu_si128(ptr.cast());
            let w1 = _mm_loadu_si128(ptr.add(1).cast());
            let w2 = _mm_loadu_si128(ptr.add(2).cast());
            let is = |w, v: u8| _mm_cmpeq_epi8(w, _mm_set1_epi8(v as i8));
            let masked = |w, m: u8| _mm_and_si128(w, _mm_set1_epi8(m as i8));
            let rip_relative = _mm_and_si128(
                _mm_and_si128(
                    is(masked(w0, 0xFB), 0x48),
                    is(_mm_or_si128(w1, _mm_set1_epi8(0x06)), 0x8F),
                ),
                is(masked(w2, 0x07), 0x05),
            );
            let call_or_jmp = is(masked(w0, 0xFE), 0xE8);
            let lock_add = _mm_and_si128(_mm_and_si128(is(w0, 0xF0), is(w1, 0x83)), is(w2, 0x05));
            let call_indirect = _mm_and_si128(is(w0, 0xFF), is(w1, 0x15));
            let any = _mm_or_si128(
                _mm_or_si128(rip_relative, call_or_jmp),
                _mm_or_si128(lock_add, call_indirect),
            );
            _mm_movemask_epi8(any) as u32 as u64
        };
        return (mask, 16, 0);
    }
    let hits = x86_candidates(
        load_u64(data, p),
        load_u64(data, p + 1),
        load_u64(data, p + 2),
    );
    (hits, 8, 3)
}

/// Undoes the encoder's translation of relative call/branch/RIP-relative displacements into
/// absolute ones. The heuristics that decide where code is must track the encoder's exactly,
/// so they look at the restored (relative) displacement, as the encoder did before it
/// translated.
// Kept out of line (it runs once per chunk) so it does not compete with the decode loop for
// registers.
#[inline(never)]
fn x86_undo(data: &mut [u8], target_usage: &mut [i32]) {
    x86_filter::<false>(data, target_usage);
}

/// The encoder's direction of the filter: relative displacements of likely x86 instructions
/// become absolute, so repeated references to one target repeat byte for byte.
/// `target_usage` must hold 65536 entries (its contents are scratch).
#[inline(never)]
pub(super) fn x86_translate(data: &mut [u8], target_usage: &mut [i32]) {
    x86_filter::<true>(data, target_usage);
}

/// Both directions share one scan: which positions are translated depends only on opcode
/// bytes (never inside a translated field) and on relative displacements, which the encoder
/// sees before translating and the decoder after restoring.
#[inline(always)]
fn x86_filter<const ENCODE: bool>(data: &mut [u8], target_usage: &mut [i32]) {
    let size = data.len();
    if size <= 17 {
        return;
    }
    let usage: &mut [i32; 1 << 16] = match target_usage.try_into() {
        Ok(u) => u,
        Err(_) => return,
    };
    usage.fill(-X86_ID_WINDOW - 1);
    let mut last_x86 = -X86_MAX_TRANSLATION_DISTANCE - 1;

    // Opcodes starting in the last 16 bytes are never translated, so every access below
    // (at most 10 bytes past `p` or `q`) stays inside `data`.
    let limit = size - 16;
    // Scanning resumes at `cursor`; bytes before it belong to handled instructions.
    let mut cursor = 1;
    let mut p = 1;
    while p < limit {
        let (mut hits, width, shift) = x86_candidate_block(data, p);
        while hits != 0 {
            let q = p + (hits.trailing_zeros() >> shift) as usize;
            hits &= hits - 1;
            if q < cursor {
                continue;
            }
            if q >= limit {
                return;
            }
            let b = data[q];
            let (opcode_len, max_distance) = match b {
                0x48 | 0x4C => {
                    // REX.W + LEA, or + MOV with a narrower ModR/M test.
                    let (op, modrm) = (data[q + 1], data[q + 2]);
                    if op == 0x8D || (op == 0x8B && b & 0x04 == 0 && modrm & 0xF0 == 0) {
                        (3, X86_MAX_TRANSLATION_DISTANCE)
                    } else {
                        cursor = q + 1;
                        continue;
                    }
                }
                // CALL rel32 is so common in non-code data that it needs closer evidence.
                0xE8 => (1, X86_MAX_TRANSLATION_DISTANCE >> 1),
                0xE9 => {
                    // JMP rel32 is never translated, but its displacement is skipped.
                    cursor = q + 5;
                    continue;
                }
                // LOCK ADD and CALL indirect, already fully matched by the candidate test.
                0xF0 => (3, X86_MAX_TRANSLATION_DISTANCE),
                _ => (2, X86_MAX_TRANSLATION_DISTANCE),
            };

            let i = q as i32;
            let at = q + opcode_len;
            let field: &mut [u8; 4] = (&mut data[at..at + 4]).try_into().unwrap();
            let original = *field;
            if i - last_x86 <= max_distance {
                let v = u32::from_le_bytes(*field);
                let v = if ENCODE {
                    v.wrapping_add(i as u32)
                } else {
                    v.wrapping_sub(i as u32)
                };
                *field = v.to_le_bytes();
            }
            let relative = if ENCODE { original } else { *field };
            let target =
                (i as u32).wrapping_add(u16::from_le_bytes([relative[0], relative[1]]) as u32);
            let slot = &mut usage[target as u16 as usize];
            let end = i + opcode_len as i32 + 3;
            if end - *slot <= X86_ID_WINDOW {
                last_x86 = end;
            }
            *slot = end;
            cursor = at + 4;
        }
        p = (p + width).max(cursor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic xorshift generator, so failures reproduce.
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

        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    /// Text, x86-like instructions with repeated call targets, and 16/32-bit sample arrays:
    /// the chunk below is wimlib's LZMS compression of exactly this, and decoding it uses
    /// literals, LZ and delta matches (explicit and repeated) and the x86 filter.
    fn sample_content() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..120u32 {
            let line = format!(
                "line {i}: the quick brown fox jumps over the lazy dog {}\n",
                i * 7 % 13
            );
            v.extend_from_slice(line.as_bytes());
        }
        let targets = [0x1000u32, 0x2468, 0x3abc, 0x0777];
        for k in 0..700usize {
            let pos = v.len() as u32;
            match k % 4 {
                0 => {
                    v.push(0xE8);
                    v.extend_from_slice(&targets[k % 3].wrapping_sub(pos).to_le_bytes());
                }
                1 => {
                    v.extend_from_slice(&[0x48, 0x8D, 0x05]);
                    v.extend_from_slice(&targets[(k / 4) % 4].wrapping_sub(pos).to_le_bytes());
                }
                2 => {
                    v.extend_from_slice(&[0xFF, 0x15]);
                    v.extend_from_slice(&targets[3].wrapping_sub(pos).to_le_bytes());
                }
                _ => {
                    v.extend_from_slice(&[0xF0, 0x83, 0x05]);
                    v.extend_from_slice(&targets[1].wrapping_sub(pos).to_le_bytes());
                    v.extend_from_slice(&[0x01, 0xE9, 0x10, 0x00, 0x00, 0x00, 0x4C, 0x8B, 0x05]);
                    v.extend_from_slice(&(k as u32 * 0x101).to_le_bytes());
                }
            }
            v.extend_from_slice(&[0x90, 0x31, 0xC0][..k % 3 + 1]);
        }
        let mut a = 0i32;
        for i in 0..6000i32 {
            a += (i % 97) - 48;
            v.extend_from_slice(&(a as i16).to_le_bytes());
            v.extend_from_slice(&((i * 3) as i16).to_le_bytes());
        }
        for i in 0..3000u32 {
            v.extend_from_slice(&(i.wrapping_mul(2654435761) >> 7 & 0xFF0F).to_le_bytes());
        }
        v
    }

    const SAMPLE_CHUNK_HEX: &str = "\
        d00aa30ed8bc57a318dfbd586d99676966477bea1e29f7e13671d19281abdf9c2b2dbe326e04239d7731120bc85b2b48\
        88712b3b31a47de732e1a7a94871c95d66b54a601b5d0cfb9d57e0e81beb5742784cc6f83c2a72b864d9ea55dcb73b8f\
        9e389db9186d773df6d1a28d6c65f38a32c8fe41db6c10c894b9b913dcc6d65a345d9084a8ce6fbb2d058b6b779a167a\
        51b043a481662f02379046cb5f74ae7a3fcff52dca582e1ba88ae3211fe5467103a68de653f267b7ddd18689b767fb06\
        3e34cd22c5cbf2a999b0e29970db9a9a5f5879b7f8c822beb3c43691911f2727b6242aaeb2e6319159fdd12144655e67\
        1e5afabb415f0f3b726945dd5c128c5eb0bc82dc03fe6948ffcab76d61de76e61de3aba1c252ab14196ad4dfb17cc78a\
        232db2ab2bdb51ed6b79ff1f68e68d67cdf7f637564511a0723bc53972f3babf4ec6bac454483e405195ba2fdf710446\
        4be69101e698fc010084ea24732300000e523975b1e84006a52b92d006118d5b34151e666fdd26ab900e8395439c475f\
        346bb5456a5d07252620240d741c37d552a5b1652ba58f2c12578c7239ad31ce15167de98be616cfd6d9b538cc5f8063\
        26a135c625466259c368c5656357c87bbcc042eaf459e55557ba4d1aad34c4eb33c7679e6b0e336b2fb45df5b406ad41\
        c3d1b2ab9ed60a3e7de6737ba7347d3e0fad99e1993e3226563de475cda4a7ae34daae745cc288cf8a6b249fd34acb2c\
        39009d3ecb638ecf3397e2182fb4e4b24062e8b4ea4ab7171cbfba863ecfebe9791eb4e63d2d4a8b3e8fdc9ea6c7088a\
        a74b129fc5ae745c74498f023e3d1735fc5c97a7e5f0a0783bc8acfa3c792cb178d1dde315af3add5a735d009da6cf82\
        bae821c7a5a1235cd49a4f7ad2e9f8bbd2f37ac4152f98e5a2532be29a4f5d735ab3841e9fba24f2aad767292dfa3c68\
        a59b3d3d92a63ecb678e87dc816beeb2a61eb7c32f00a5e9f161b5e2e93447cb71c1c7d5dfe538c9d1521d85a6e8c9d7\
        67196549927d8e6b3597e8337d2ec55597cfd555d73cd767bae89a3592e69a01e384e8dd857174898e92039a0e175d9a\
        eb73fd4174c9e37ab0cf71d9ccec8550575db33dae0b2e37993375bce8346909ae59733c312d8578a48bfe2605cdd352\
        9d587000988349cf381fbcba16e4c482c385a50220078b4901ee36a886dd062c608086721591c845c45f2e2112b982f8\
        cbf54322970f7fb97848e4dae12f570e895c38fce5b22191ab86bf5c332472c9f0970b8644ae17fe72b590c8c5c25f2e\
        1512b952f8cb75422297097fb94848e41ae12f5708895c20fce5f22091ab234562033503f86ba319dc2f8d6670bf329a\
        01fc85d10ceed74533b85f16cd00feaa6806f78ba219dcaf8966007f493483fb15d10cee17443380bf1e9ac1fd726806\
        f7aba119c05f0ccde07e2d3483fba5d00ce0af846670bf109ac1fd3a6806f0974133b85f05cde07e113403785eef1ac0\
        8700b5003f782d0bba02b0fead7febdffab7feb1002bc0c25a3b02fe96bfe56ff57b27b3dfeab7faad7e93dfe2b7f82d\
        7e8bdfe2b7f82d7e6bdfda3787bbff89c59cabe55c29e72a3957c8b98a7305c7727f0d60723f0d00721f0da0711f0d40\
        713f0de0707f0d8070df0d20705f0ec06fff0e606fbf0f006f9f10a06e9f11406ebf12e06dff13806d5f15206ddf16c0\
        6c7f18606c3f1a006c1f1ca06b1f1e408b3f00e08a7f02808adf04208a5f07c089ff096089bf0c00899f0fa0889f1240\
        88bf15e087ff1880875f1c2087df1fc0a67f0360a63f0700a61f0ba0a51f0f40a53f13e0a47f1780a4df1b20c45f00c0\
        c3ff0460c3bf0900c39f0ea0c29f1340c2bf18e0c1ff1d80e15f0320e1df08c0e07f0e60e03f1400e01fdaeadd95cebd\
        8dae9d858e7d956e5d8d4e3d852e1d950efd8ceedc84cebc94ae9c8c8e7c846e5c944e3c8c2e1c840efc93eedb8bcebb\
        83ae9b938e7b8b6e5b834e3b932e1b8b0efb82eeda92ceba8aae9a828e7a926e5a8a4e3a822e1a920efa89eed981ceb9\
        91ae99898e79791668598916483981162819791608f98816e8d818771917cf021513d102110fd0020d0bcf020907d102\
        0503d00200ffd0fcfbd2f8f7d1f4f3d0f0efd2ecebcf2fd4e8e7d0e4e3d2e0dfd1dcdbd0d8d7d2d4d3d1d0cfd0cccbd2\
        c8c7d1c4c3d0c0bfd2bcbbd1b8b7d0b4b3d2b0afd1acabd0a8a7d2a4a3d1a09fd09c9bd29897d19493d0908fd28c8bd1\
        8887d08483d2807fd17c7bd07877d27473d1706fd06c6bd26867d16463d0605fd25c5bd15857d05453d2504fd14c4bd0\
        4847d24443d1403fd03c3bd23837d13433cf01302fd1012c2bd0012827cf012423d101201fd0011c1bcf011817d10114\
        13d001100fcf010c0bd1010807d0010403d0ffffd2fbfbd1f7f7d0f3f3d2efefd1ebebd0e7e7d2e3e3d1dfdfd0dbdbd2\
        d7d7d1d3d3d0cfcfd2cbcbd1c7c7d0c3c3d2bfbfd1bbbbd0b7b7d2b3b3d1afafd0ababd2a7a7d1a3a3d09f9fd29b9bd1\
        9797d09393d28f8fd18b8bd08787d28383d17f7fd07b7bd27777d17373d06f6fd26b6bd16767d06363d25f5fd15b5bd0\
        5757d25353d14f4fd04b4bd24747d14343d03f3fd23b3bd13737d0637d66c60b0110bebcb496b8b2d2d5e1054f4ebc24\
        68e1c808170240fcf8682f7063c3abc31b5e5c7049d0c489892e0400f8f0d0623d5fa56d9d0c808ef9bcb030267abb35\
        16b285f1acc38b8e7dfa6044b4a668e00c642bd1319097cae890d5c040c12213000000447a000000095ac1203c700500\
        707057f11f731d3714342241feffdb4fa057e7c46ce3c46cdfc46cdbc470d7c46cd3c4705bf899188da65a1f13b35de1\
        63b6996a7cccf6c1250766dbe08203b35d70b981d926b8d8c06c0f5c6a60b6052e3430db019719186e808b0cccf6bf25\
        a6dbdf020313a39d93b38d93a37d93a36d93a35d93a34d93a33d93a32d93a31d93a30d93b39d83a38d83b37d83a36d83\
        b35d83a34d83a33d83a32d83a31d83a30d83a39d73a38d73a37d73b36d73a35d73b34d73a33d73b32d73a31d73a30d73\
        a39d63a38d63a37d63a36d63a35d63a34d63b33d63a32d63b31d63a30d63b39d53a38d53a37d53a36d53a35d53a34d53\
        a33d53a32d53a31d53b30d53a39d43b38d43a37d43b36d43a35d43a34d43a33d43a32d43a31d43a30d43a39d33a38d33\
        b37d33a36d33b35d33a34d33b33d33a32d33a31d33a30d33a39d23a38d23a37d23a36d23a35d23b34d23a33d23b39de0\
        6564b4117c8cccf6818791d136f03931da051e27469bc0dfc4680f789b186d015f13a31de069b601fc8c66332da3c950\
        2b768c5643add5b5911e439d93d14ce368b63c66fa269b99b6c972a66b3299699a0c677a268b9996c96ea663ae48b329\
        c0809cbd9181e4e985b16136cb95d9bd81ccc1b5d5a981e0bd9981b8ddbdc98981ac8da5d5c555c66874203a3020656e\
        696c\
    ";

    fn sample_chunk() -> Vec<u8> {
        let hex = SAMPLE_CHUNK_HEX.as_bytes();
        hex.chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    fn decode(d: &mut LzmsDecoder, input: &[u8], size: usize) -> Result<Vec<u8>, CodecError> {
        let mut out = vec![0u8; size];
        d.decompress(input, &mut out).map(|()| out)
    }

    #[test]
    fn decodes_wimlib_chunk() {
        let expected = sample_content();
        let chunk = sample_chunk();
        let mut d = LzmsDecoder::new(1 << 17).unwrap();
        assert_eq!(decode(&mut d, &chunk, expected.len()).unwrap(), expected);
        // Same decoder again: no state may leak from one chunk into the next.
        assert_eq!(decode(&mut d, &chunk, expected.len()).unwrap(), expected);
        let mut big = LzmsDecoder::new(1 << 30).unwrap();
        assert_eq!(decode(&mut big, &chunk, expected.len()).unwrap(), expected);
    }

    #[test]
    fn chunk_sizes() {
        assert!(matches!(
            LzmsDecoder::new(0),
            Err(CodecError::Unsupported { .. })
        ));
        assert!(matches!(
            LzmsDecoder::new((1 << 30) + 1),
            Err(CodecError::Unsupported { .. })
        ));
        assert!(matches!(
            LzmsDecoder::new(u32::MAX),
            Err(CodecError::Unsupported { .. })
        ));
        assert!(LzmsDecoder::new(1).is_ok());
        assert!(LzmsDecoder::new(1 << 30).is_ok());
        let mut d = LzmsDecoder::new(16).unwrap();
        let mut out = [0u8; 17];
        assert!(matches!(
            d.decompress(&[0; 8], &mut out),
            Err(CodecError::Unsupported { .. })
        ));
    }

    #[test]
    fn bad_input_lengths() {
        let mut d = LzmsDecoder::new(1 << 17).unwrap();
        let mut out = [0u8; 100];
        for len in [0, 1, 2, 3, 5, 7, 101] {
            let r = d.decompress(&vec![0x5A; len], &mut out);
            assert_eq!(r, Err(corrupt("input length")), "length {len}");
        }
        // An empty chunk needs no items, only a well-formed stream header.
        assert_eq!(d.decompress(&[0; 4], &mut []), Ok(()));
    }

    #[test]
    fn truncated_and_damaged_chunks_never_panic() {
        let expected = sample_content();
        let chunk = sample_chunk();
        let mut d = LzmsDecoder::new(1 << 17).unwrap();
        let mut failures = 0;
        for cut in (0..chunk.len()).step_by(2) {
            match decode(&mut d, &chunk[..cut], expected.len()) {
                Err(_) => failures += 1,
                Ok(out) => assert_ne!(out, expected, "cut to {cut} bytes still decoded"),
            }
        }
        assert!(
            failures > chunk.len() / 4,
            "only {failures} truncations detected"
        );

        let mut rng = Rng(0x1234_5678_9abc_def1);
        for _ in 0..2000 {
            let mut damaged = chunk.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(damaged.len());
                damaged[i] ^= 1 << rng.below(8);
            }
            let _ = decode(&mut d, &damaged, expected.len());
        }
        // Wrong sizes: too short ends early, too long runs out of sensible data.
        let _ = decode(&mut d, &chunk, expected.len() / 2);
        let _ = decode(&mut d, &chunk, expected.len() + 1000);
        assert_eq!(decode(&mut d, &chunk, expected.len()).unwrap(), expected);
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng(0xdead_beef_cafe_f00d);
        let mut d = LzmsDecoder::new(1 << 20).unwrap();
        let mut errors = 0;
        for round in 0..4000 {
            let in_len = 4 + 2 * rng.below(if round % 10 == 0 { 4000 } else { 200 });
            let input = rng.bytes(in_len);
            let out_len = match round % 4 {
                0 => rng.below(20),
                1 => rng.below(300),
                2 => rng.below(5000),
                _ => rng.below(1 << 20),
            };
            if decode(&mut d, &input, out_len).is_err() {
                errors += 1;
            }
        }
        assert!(
            errors > 1000,
            "only {errors} of the garbage inputs were rejected"
        );
    }

    #[test]
    fn constant_inputs_never_panic() {
        let mut d = LzmsDecoder::new(1 << 20).unwrap();
        for byte in [0x00, 0xFF, 0x55, 0xAA, 0x80, 0x01] {
            for in_len in [4, 6, 64, 4096] {
                for out_len in [1, 2, 3, 17, 18, 1000, 1 << 20] {
                    let _ = decode(&mut d, &vec![byte; in_len], out_len);
                }
            }
        }
    }

    #[test]
    fn match_copies_agree_with_bytewise_copy() {
        let mut rng = Rng(99);
        for _ in 0..20000 {
            let size = 1 + rng.below(80);
            let pos = 1 + rng.below(size);
            if pos >= size {
                continue;
            }
            let offset = 1 + rng.below(pos);
            let len = 1 + rng.below(size - pos);
            let mut fast = rng.bytes(size);
            let mut slow = fast.clone();
            copy_match(&mut fast, pos, offset, len);
            for p in pos..pos + len {
                slow[p] = slow[p - offset];
            }
            // Bytes past the match may hold overshoot; only the decoded prefix must agree.
            assert_eq!(
                fast[..pos + len],
                slow[..pos + len],
                "{size} {pos} {offset} {len}"
            );
        }
    }

    #[test]
    fn slot_tables() {
        assert_eq!(OFFSET_SLOTS[0].base, 1);
        assert_eq!(OFFSET_SLOTS[9].base, 0xd);
        assert_eq!(OFFSET_SLOTS[MAX_OFFSET_SYMS - 1].base, 0x065b_e4a5);
        assert_eq!(OFFSET_SLOTS[MAX_OFFSET_SYMS - 1].extra_bits, 30);
        assert_eq!(LENGTH_SLOTS[26].base, 0x1b);
        assert_eq!(LENGTH_SLOTS[NUM_LENGTH_SYMS - 1].base, 0x0001_08ab);
        let end = |s: Slot| s.base as u64 + (1u64 << s.extra_bits);
        assert_eq!(end(LENGTH_SLOTS[NUM_LENGTH_SYMS - 1]), 1_073_809_579);
        assert_eq!(end(OFFSET_SLOTS[MAX_OFFSET_SYMS - 1]), 1_180_427_429);
        assert_eq!(num_offset_slots(0), 2);
        assert_eq!(num_offset_slots(2), 2);
        assert_eq!(num_offset_slots(10), 9);
        assert_eq!(num_offset_slots(14), 10);
        assert!(num_offset_slots(1 << 30) <= MAX_OFFSET_SYMS);
    }

    /// Writes `codes` (value, length) MSB-first into 16-bit words laid out back to front, the
    /// way the bitstream is read.
    fn pack_backwards(codes: &[(u32, u32)]) -> Vec<u8> {
        let mut words = Vec::new();
        let (mut acc, mut n) = (0u64, 0u32);
        for &(v, len) in codes {
            acc = (acc << len) | v as u64;
            n += len;
            while n >= 16 {
                words.push((acc >> (n - 16)) as u16);
                n -= 16;
            }
        }
        if n > 0 {
            words.push((acc << (16 - n)) as u16);
        }
        words.iter().rev().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn huffman_codes_round_trip() {
        let mut rng = Rng(77);
        let mut scratch = BuildScratch::new();
        for round in 0..300 {
            let n = [2, 3, 8, 54, 256, 799][round % 6];
            let freqs: Vec<u32> = (0..n)
                .map(|_| match rng.below(4) {
                    0 => 1,
                    1 => 1 + rng.below(4) as u32,
                    2 => 1 + rng.below(100) as u32,
                    _ => 1 + rng.below(3000) as u32,
                })
                .collect();
            scratch.huffman_lengths(&freqs);
            let lens = scratch.lens[..n].to_vec();
            let kraft: u64 = lens
                .iter()
                .map(|&l| 1u64 << (MAX_CODEWORD_LEN - l as usize))
                .sum();
            assert_eq!(kraft, 1 << MAX_CODEWORD_LEN, "code must be complete");
            // More frequent symbols never get longer codewords.
            for a in 0..n {
                for b in 0..n {
                    if freqs[a] > freqs[b] {
                        assert!(lens[a] <= lens[b]);
                    }
                }
            }

            let mut code = AdaptiveCode::<9>::new(n, u32::MAX);
            code.freqs.copy_from_slice(&freqs);
            code.build(&mut scratch);

            // Canonical codewords, assigned in (length, symbol) order.
            let mut next = [0u32; MAX_CODEWORD_LEN + 2];
            let mut counts = [0u32; MAX_CODEWORD_LEN + 1];
            for &l in &lens {
                counts[l as usize] += 1;
            }
            for l in 1..=MAX_CODEWORD_LEN {
                next[l + 1] = (next[l] + counts[l]) << 1;
            }
            let mut codewords = vec![0u32; n];
            for s in 0..n {
                codewords[s] = next[lens[s] as usize];
                next[lens[s] as usize] += 1;
            }
            let syms: Vec<usize> = (0..2000).map(|_| rng.below(n)).collect();
            let stream: Vec<(u32, u32)> = syms
                .iter()
                .map(|&s| (codewords[s], lens[s] as u32))
                .collect();
            let data = pack_backwards(&stream);
            let mut bits = BitReader::new(&data);
            for &s in &syms {
                assert_eq!(code.decode(&data, &mut bits, &mut scratch), s);
            }
        }
    }

    #[test]
    fn ties_prefer_leaves() {
        // Frequencies 1,1,2,2: merging leaves first on the 2-vs-2 tie gives a balanced tree;
        // preferring the new internal node would give lengths 3,3,2,1.
        let mut scratch = BuildScratch::new();
        scratch.huffman_lengths(&[1, 1, 2, 2]);
        assert_eq!(scratch.lens[..4], [2, 2, 2, 2]);
        scratch.huffman_lengths(&[1, 1, 3, 5]);
        assert_eq!(scratch.lens[..4], [3, 3, 2, 1]);
        // Equal frequencies: lower symbols sort first and so take the longer codewords.
        scratch.huffman_lengths(&[4, 4, 4]);
        assert_eq!(scratch.lens[..3], [2, 2, 1]);
    }

    #[test]
    fn probability_adapts_and_clamps() {
        let input = [0xFF; 64];
        let mut rd = RangeDecoder::new(&input);
        let mut probs = [Prob::INITIAL; 4];
        let mut state = 0;
        for _ in 0..200 {
            rd.bit(&input, &mut state, &mut probs);
            assert!(state < 4);
        }
        for p in &probs {
            assert_eq!(p.zeros as u64, 64 - p.history.count_ones() as u64);
        }
    }

    /// The encoder's direction of the x86 filter, written independently of `x86_undo`: find
    /// the same candidate instructions, but decide using the original relative displacement
    /// before replacing it with an absolute one.
    fn x86_encode(data: &mut [u8]) {
        let size = data.len();
        if size <= 17 {
            return;
        }
        let mut usage = vec![-65536i64; 1 << 16];
        let mut last_code = -1024i64;
        let mut p = 1;
        while p < size - 16 {
            let op = &data[p..p + 3];
            let (skip, max) = match op[0] {
                0xE8 => (1, 511),
                0xE9 => {
                    p += 5;
                    continue;
                }
                0xFF if op[1] == 0x15 => (2, 1023),
                0xF0 if op[1..3] == [0x83, 0x05] => (3, 1023),
                0x48 | 0x4C
                    if op[2] & 7 == 5
                        && (op[1] == 0x8D
                            || (op[1] == 0x8B && op[0] == 0x48 && op[2] & 0xF0 == 0)) =>
                {
                    (3, 1023)
                }
                _ => {
                    p += 1;
                    continue;
                }
            };
            let i = p as i64;
            let at = p + skip;
            let rel = u16::from_le_bytes([data[at], data[at + 1]]) as i64;
            let target = ((i + rel) & 0xFFFF) as usize;
            if i - last_code <= max {
                let v = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
                data[at..at + 4].copy_from_slice(&v.wrapping_add(i as u32).to_le_bytes());
            }
            let end = i + skip as i64 + 3;
            if end - usage[target] <= 65535 {
                last_code = end;
            }
            usage[target] = end;
            p = at + 4;
        }
    }

    /// Bytes dense in the opcodes and operand bytes the filter looks for.
    fn code_like(rng: &mut Rng, len: usize) -> Vec<u8> {
        const INTERESTING: [u8; 12] = [
            0x48, 0x4C, 0xE8, 0xE9, 0xF0, 0xFF, 0x15, 0x83, 0x05, 0x8D, 0x8B, 0x00,
        ];
        let mut v: Vec<u8> = (0..len)
            .map(|_| {
                if rng.below(3) == 0 {
                    rng.next() as u8
                } else {
                    INTERESTING[rng.below(12)]
                }
            })
            .collect();
        // Calls to a handful of targets, so the "same target seen recently" rule fires.
        for _ in 0..len / 20 {
            let p = rng.below(len.saturating_sub(5).max(1));
            if p + 5 <= len {
                let target = [0x4000u32, 0x4010, 0x9999][rng.below(3)];
                v[p] = 0xE8;
                v[p + 1..p + 5].copy_from_slice(&target.wrapping_sub(p as u32).to_le_bytes());
            }
        }
        v
    }

    /// The wide candidate scan marks exactly the positions the eight-at-a-time test does.
    #[test]
    fn x86_candidate_blocks_agree() {
        let mut rng = Rng(0x5EED);
        // Opcode and operand bytes of every pattern, dense enough to meet in every order.
        let alphabet = [
            0x48, 0x4C, 0x8B, 0x8D, 0x89, 0x8F, 0x05, 0x0D, 0xE8, 0xE9, 0xF0, 0x83, 0xFF, 0x15,
            0x00,
        ];
        let mut data: Vec<u8> = (0..4096)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        data.extend(rng.bytes(4096));
        for p in 0..data.len() - 10 {
            let (hits, width, shift) = x86_candidate_block(&data, p);
            let mut got = Vec::new();
            let mut h = hits;
            while h != 0 {
                got.push(p + (h.trailing_zeros() >> shift) as usize);
                h &= h - 1;
            }
            let mut want = Vec::new();
            for q in (p..p + width).step_by(8) {
                let mut h = x86_candidates(
                    load_u64(&data, q),
                    load_u64(&data, q + 1),
                    load_u64(&data, q + 2),
                );
                while h != 0 {
                    want.push(q + (h.trailing_zeros() / 8) as usize);
                    h &= h - 1;
                }
            }
            assert_eq!(got, want, "at {p}");
        }
    }

    #[test]
    fn x86_filter_round_trips() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        let mut usage = vec![0i32; 1 << 16];
        let mut changed = 0;
        for round in 0..600 {
            let len = match round % 3 {
                0 => rng.below(40),
                1 => rng.below(3000),
                _ => rng.below(200_000),
            };
            let original = code_like(&mut rng, len);
            let mut data = original.clone();
            x86_encode(&mut data);
            if data != original {
                changed += 1;
            }
            x86_undo(&mut data, &mut usage);
            assert_eq!(data, original, "round {round}, length {len}");
        }
        assert!(
            changed > 300,
            "the filter translated only {changed} buffers"
        );
    }

    #[test]
    fn x86_filter_details() {
        let mut usage = vec![0i32; 1 << 16];
        // Too short to filter at all.
        let mut tiny = [0xE8u8; 17];
        x86_undo(&mut tiny, &mut usage);
        assert_eq!(tiny, [0xE8; 17]);

        // Calls to one target: the first two are too far from any known code to translate,
        // but the second repeats the first's target, which marks it as code, so the third
        // (close behind) is translated to the absolute target.
        let mut data = vec![0u8; 64];
        for p in [1usize, 20, 40] {
            data[p] = 0xE8;
            data[p + 1..p + 5].copy_from_slice(&(0x100 - p as u32 + 1).to_le_bytes());
        }
        let original = data.clone();
        x86_encode(&mut data);
        assert_eq!(data[..40], original[..40]);
        assert_eq!(data[41..45], 0x101u32.to_le_bytes());
        x86_undo(&mut data, &mut usage);
        assert_eq!(data, original);

        // Opcodes in the last 16 bytes are left alone; the first byte is never an opcode.
        let mut data = vec![0xE8u8; 40];
        data[..24].fill(0);
        data[0] = 0xE8;
        let original = data.clone();
        x86_undo(&mut data, &mut usage);
        assert_eq!(data, original);

        // JMP rel32 is skipped along with its displacement, hiding an E8 inside it.
        let mut data = vec![0u8; 64];
        data[1] = 0xE9;
        data[2] = 0xE8;
        let original = data.clone();
        x86_encode(&mut data);
        assert_eq!(data, original);
    }
}
