//! LZMS compression (the inverse of `lzms.rs`).
//!
//! A chunk is x86-translated, then parsed into literals, LZ matches and delta matches, each
//! coded at once: the item kinds and repeat-queue slots through the adaptive range coder at
//! the front of the output, everything else through the adaptive Huffman codes and verbatim
//! bits of the backwards bitstream, whose words are appended reversed at the end.
//!
//! The parser is a forward min-cost path search over short stretches of the input (at most
//! [`NUM_OPTIM_NODES`] bytes), priced with the coder's current probabilities and codeword
//! lengths. Each node carries the adaptive state (repeat queues and range-coder contexts) of
//! the cheapest path found to it, so repeat matches and context-dependent bit prices are exact
//! along that path. After each stretch the chosen items are coded, which updates the
//! probabilities and codes the next stretch is priced with. Candidates come from an
//! LCP-interval tree match finder (see `lzms_mf.rs`; a binary tree for chunks too large for
//! it), the path's repeat offsets, and (from level [`MIN_DELTA_LEVEL`], except behind
//! a long LZ match) a hash table of delta matches; a few two- and three-item steps
//! ("match, literal, rep0") catch matches interrupted by one differing byte.

use std::sync::OnceLock;

use super::lzms::{
    num_offset_slots, x86_translate, BuildScratch, Prob, Probs, Slot, LENGTH_REBUILD, LENGTH_SLOTS,
    LITERAL_REBUILD, MAX_CHUNK_SIZE, MAX_CODEWORD_LEN, MAX_OFFSET_SYMS, NUM_DELTA_POWER_SYMS,
    NUM_LENGTH_SYMS, NUM_LITERAL_SYMS, OFFSET_REBUILD, OFFSET_SLOTS, POWER_REBUILD,
};
use super::lzms_mf::{LcpitFinder, LCP_MAX, MAX_BUFFER};
use super::lzx_enc::{extend, load_u32, BtFinder, Match};
use super::{CodecError, Compressor};

/// One bit costs `1 << COST_SHIFT` in the parser's prices.
const COST_SHIFT: u32 = 6;
/// Longest match the parser prices per length; longer ones are taken at once (see `nice`).
const MAX_FAST_LEN: usize = 255;
/// Most bytes the parser looks at before it codes what it has chosen: longer stretches find
/// better paths but price them with staler statistics.
const NUM_OPTIM_NODES: usize = 2048;
/// Nodes past the stretch that a step may still reach: match, literal, rep0 match.
const NUM_NODES: usize = NUM_OPTIM_NODES + 2 * MAX_FAST_LEN + 4;

/// Delta matches are searched from this level up.
const MIN_DELTA_LEVEL: u32 = 35;
const DELTA_HASH_BITS: u32 = 17;
/// Spans 1..=32 are searched; wider ones are rare in practice.
const DELTA_POWERS: u32 = 6;
/// Bytes a delta hash covers, and so the shortest explicit delta match.
const DELTA_MIN_LEN: usize = 3;
/// Delta matches are not looked for where the longest LZ match has at least
/// `DELTA_SKIP_LZ_LEN` bytes and an offset of at most `DELTA_SKIP_LZ_OFFSET`, or at least
/// `DELTA_SKIP_FAR_LZ_LEN` bytes: there they are hardly ever the cheaper choice, and
/// searching for them costs about as much as the rest of the parser. Behind a shorter far
/// match, whose offset is costly, they still often pay off, in solid resources especially.
/// (Measured on binaries and text, with the LCP-interval finder's longest matches: 8 bytes
/// within 4 KiB ran 10% more instructions in 128 KiB chunks for 0.06% less output, and gave
/// 0.25% more output in a solid chunk; 6 bytes at any offset, 1% more there.)
/// Chunks of up to `DELTA_SKIP_SMALL_CHUNK` bytes (non-solid resources) at levels below 60
/// use the tighter `DELTA_SKIP_SMALL`: (LZ length near, at any offset). On a 672 MB mix from
/// /usr in 128 KiB chunks that took 8% less time for 0.08% more output (up to 0.3% on
/// locale and perl data); solid chunks gain no time from it.
const DELTA_SKIP_LZ_LEN: usize = 6;
const DELTA_SKIP_LZ_OFFSET: u32 = 1 << 16;
const DELTA_SKIP_FAR_LZ_LEN: usize = 9;
const DELTA_SKIP_SMALL_CHUNK: u32 = 1 << 20;
const DELTA_SKIP_SMALL: (usize, usize) = (4, 6);
/// Largest raw delta offset an `Item` can hold beside the power.
const MAX_DELTA_RAW: u32 = (1 << 28) - 3;

/// Marks an item's source as a delta match.
const DELTA: u32 = 1 << 31;
/// Number of repeat-queue slots an item may name.
const NUM_REPS: u32 = 3;

const INFINITE: u32 = u32::MAX;

/// A literal (`len == 1`, the byte in `src`) or a match of `len >= 2` bytes. An LZ match's
/// `src` is its repeat-queue slot (< 3) or its offset plus 2; a delta match's is `DELTA` plus
/// its slot, or plus `(power << 28 | raw offset) + 2`.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
struct Item {
    len: u32,
    src: u32,
}

/// Kind of the previous item, which decides where the repeat queues are read.
const PREV_LITERAL: u8 = 0;
const PREV_LZ: u8 = 1;
const PREV_DELTA: u8 = 2;

/// The adaptive state that depends on the items chosen (but not on the probabilities and
/// codes, which the parser treats as fixed within a stretch). The repeat queues have the
/// decoder's layout: slot 0 is the latest offset, and while the previous item was a match
/// of the same kind that offset is not yet usable, so the slots are read one further along.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    lz_reps: [u32; 4],
    /// `power << 28 | raw offset`.
    delta_reps: [u32; 4],
    prev: u8,
    main: u8,
    matches: u8,
    lz: u8,
    delta: u8,
    lz_rep: [u8; 2],
    delta_rep: [u8; 2],
}

impl State {
    const INITIAL: State = State {
        lz_reps: [1, 2, 3, 4],
        delta_reps: [1, 2, 3, 4],
        prev: PREV_LITERAL,
        main: 0,
        matches: 0,
        lz: 0,
        delta: 0,
        lz_rep: [0; 2],
        delta_rep: [0; 2],
    };

    /// The LZ offset that repeat slot `idx` names here.
    #[inline(always)]
    fn lz_rep(&self, idx: usize) -> u32 {
        self.lz_reps[idx + (self.prev == PREV_LZ) as usize]
    }

    /// The delta pair that repeat slot `idx` names here.
    #[inline(always)]
    fn delta_rep(&self, idx: usize) -> u32 {
        self.delta_reps[idx + (self.prev == PREV_DELTA) as usize]
    }

    /// Advances past `it`, exactly as the decoder does.
    #[inline(always)]
    fn apply(&mut self, it: Item) {
        if it.len == 1 {
            self.main = (self.main << 1) & 15;
            self.prev = PREV_LITERAL;
            return;
        }
        self.main = ((self.main << 1) | 1) & 15;
        let delta = it.src & DELTA != 0;
        let src = it.src & !DELTA;
        self.matches = ((self.matches << 1) | delta as u8) & 31;
        let (kind, reps, ctx, rep_ctx) = if delta {
            (
                PREV_DELTA,
                &mut self.delta_reps,
                &mut self.delta,
                &mut self.delta_rep,
            )
        } else {
            (PREV_LZ, &mut self.lz_reps, &mut self.lz, &mut self.lz_rep)
        };
        if src < NUM_REPS {
            *ctx = ((*ctx << 1) | 1) & 63;
            let idx = src as usize;
            for (k, c) in rep_ctx.iter_mut().enumerate().take(idx + 1) {
                *c = ((*c << 1) | (k < idx) as u8) & 63;
            }
            let at = idx + (self.prev == kind) as usize;
            let v = reps[at];
            reps[at] = reps[idx];
            for k in (1..=idx).rev() {
                reps[k] = reps[k - 1];
            }
            reps[0] = v;
        } else {
            *ctx = (*ctx << 1) & 63;
            *reps = [src - 2, reps[0], reps[1], reps[2]];
        }
        self.prev = kind;
    }
}

// ---------------------------------------------------------------------------------------------
// Output streams

/// Binary range encoder writing 16-bit little-endian words forwards.
struct RangeEncoder {
    /// The interval's low end; bit 32 is a pending carry.
    low: u64,
    range: u32,
    /// The word waiting for a possible carry, followed by `pending - 1` words of 0xFFFF.
    cache: u16,
    pending: u32,
    /// The encoder starts with a placeholder word that is never written.
    skip_first: bool,
}

impl RangeEncoder {
    fn new() -> Self {
        RangeEncoder {
            low: 0,
            range: u32::MAX,
            cache: 0,
            pending: 1,
            skip_first: true,
        }
    }

    fn shift_low(&mut self, out: &mut Vec<u8>) {
        // Below 0xFFFF_0000 no later carry can reach the cached words; with bit 32 set the
        // carry has happened. Otherwise the top word might still change: hold it back too.
        if (self.low as u32) < 0xFFFF_0000 || self.low >> 32 != 0 {
            let carry = (self.low >> 32) as u16;
            let mut word = self.cache.wrapping_add(carry);
            while self.pending > 0 {
                if self.skip_first {
                    self.skip_first = false;
                } else {
                    out.extend_from_slice(&word.to_le_bytes());
                }
                word = 0xFFFFu16.wrapping_add(carry);
                self.pending -= 1;
            }
            self.cache = (self.low >> 16) as u16;
        }
        self.pending += 1;
        self.low = (self.low & 0xFFFF) << 16;
    }

    #[inline(always)]
    fn encode(&mut self, out: &mut Vec<u8>, bit: u32, p: &mut Prob) {
        if self.range <= 0xFFFF {
            self.range <<= 16;
            self.shift_low(out);
        }
        let bound = (self.range >> 6) * p.zero_chance();
        if bit == 0 {
            self.range = bound;
        } else {
            self.low += bound as u64;
            self.range -= bound;
        }
        p.update(bit);
    }

    /// Writes out the whole low end, so any continuation decodes inside the interval.
    fn finish(&mut self, out: &mut Vec<u8>) {
        for _ in 0..4 {
            self.shift_low(out);
        }
    }
}

/// MSB-first bitstream of 16-bit words, kept in writing order; the chunk stores them last
/// word first, so the decoder reads them from the end of the chunk.
struct BackBits {
    acc: u64,
    n: u32,
    words: Vec<u16>,
}

impl BackBits {
    /// Appends the low `bits` (<= 30) bits of `v`, which has no higher bits set.
    #[inline(always)]
    fn put(&mut self, v: u32, bits: u32) {
        debug_assert!(bits <= 30 && v >> bits == 0);
        self.acc = (self.acc << bits) | v as u64;
        self.n += bits;
        while self.n >= 16 {
            self.n -= 16;
            self.words.push((self.acc >> self.n) as u16);
        }
    }

    fn finish(&mut self) {
        if self.n > 0 {
            self.words.push((self.acc << (16 - self.n)) as u16);
            self.n = 0;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Adaptive Huffman codes

/// One adaptive code, rebuilt from running counts exactly when the decoder rebuilds it.
struct HuffEnc {
    num_syms: usize,
    rebuild_every: u32,
    until_rebuild: u32,
    freqs: Vec<u32>,
    lens: Vec<u8>,
    codes: Vec<u32>,
}

impl HuffEnc {
    fn new(max_syms: usize, rebuild_every: u32) -> Self {
        HuffEnc {
            num_syms: max_syms,
            rebuild_every,
            until_rebuild: rebuild_every,
            freqs: vec![1; max_syms],
            lens: vec![0; max_syms],
            codes: vec![0; max_syms],
        }
    }

    fn reset(&mut self, num_syms: usize, scratch: &mut BuildScratch) {
        self.num_syms = num_syms;
        self.freqs[..num_syms].fill(1);
        self.build(scratch);
    }

    fn build(&mut self, scratch: &mut BuildScratch) {
        let n = self.num_syms;
        scratch.huffman_lengths(&self.freqs[..n]);
        self.lens[..n].copy_from_slice(&scratch.lens[..n]);
        // Canonical codewords: by length, then symbol, as the decoder's tables assume.
        let mut counts = [0u32; MAX_CODEWORD_LEN + 1];
        for &l in &self.lens[..n] {
            counts[l as usize] += 1;
        }
        let mut next = [0u32; MAX_CODEWORD_LEN + 2];
        for l in 1..=MAX_CODEWORD_LEN {
            next[l + 1] = (next[l] + counts[l]) << 1;
        }
        for (code, &l) in self.codes[..n].iter_mut().zip(&self.lens[..n]) {
            *code = next[l as usize];
            next[l as usize] += 1;
        }
        self.until_rebuild = self.rebuild_every;
    }

    /// Writes `sym`; returns true if that made the code change.
    #[inline(always)]
    fn encode(&mut self, sym: usize, bits: &mut BackBits, scratch: &mut BuildScratch) -> bool {
        bits.put(self.codes[sym], self.lens[sym] as u32);
        self.freqs[sym] += 1;
        self.until_rebuild -= 1;
        if self.until_rebuild == 0 {
            self.rebuild(scratch);
            return true;
        }
        false
    }

    #[cold]
    #[inline(never)]
    fn rebuild(&mut self, scratch: &mut BuildScratch) {
        self.build(scratch);
        for f in &mut self.freqs[..self.num_syms] {
            *f = (*f >> 1) + 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Slots

/// Offset-to-slot lookup: direct below the first slot with 11 extra bits, then by units of
/// 2^11 up to the first slot with 16, then by units of 2^16. Slot boundaries are aligned to
/// those units in each range, since every slot there spans a multiple of the unit.
struct SlotLookup {
    small: Vec<u16>,
    mid_base: u32,
    mid: Vec<u16>,
    big_base: u32,
    big: Vec<u16>,
}

impl SlotLookup {
    fn build() -> Self {
        let first_with = |bits: u32| {
            OFFSET_SLOTS
                .iter()
                .find(|s| s.extra_bits >= bits)
                .map_or(u32::MAX, |s| s.base)
        };
        let slot_of = |off: u32| OFFSET_SLOTS.partition_point(|s| s.base <= off) - 1;
        let (mid_base, big_base) = (first_with(11), first_with(16));
        let last = OFFSET_SLOTS[MAX_OFFSET_SYMS - 1];
        let end = last.base as u64 + (1u64 << last.extra_bits);
        let small = (0..mid_base).map(|o| slot_of(o.max(1)) as u16).collect();
        let mid = (0..(big_base - mid_base) >> 11)
            .map(|k| slot_of(mid_base + (k << 11)) as u16)
            .collect();
        let big = (0..((end - big_base as u64) >> 16) as u32)
            .map(|k| slot_of(big_base + (k << 16)) as u16)
            .collect();
        SlotLookup {
            small,
            mid_base,
            mid,
            big_base,
            big,
        }
    }

    /// The slot of offset `off` (>= 1).
    #[inline(always)]
    fn slot(&self, off: u32) -> usize {
        if off < self.mid_base {
            self.small[off as usize] as usize
        } else if off < self.big_base {
            self.mid[((off - self.mid_base) >> 11) as usize] as usize
        } else {
            self.big[((off - self.big_base) >> 16) as usize] as usize
        }
    }
}

fn slot_lookup() -> &'static SlotLookup {
    static TABLES: OnceLock<SlotLookup> = OnceLock::new();
    TABLES.get_or_init(SlotLookup::build)
}

fn length_slot(len: u32) -> usize {
    LENGTH_SLOTS.partition_point(|s| s.base <= len) - 1
}

// ---------------------------------------------------------------------------------------------
// Coder: the streams, the adaptive statistics and the prices derived from them

struct Coder {
    rc: RangeEncoder,
    bits: BackBits,
    probs: Probs,
    state: State,
    literal: HuffEnc,
    lz_offset: HuffEnc,
    length: HuffEnc,
    delta_offset: HuffEnc,
    delta_power: HuffEnc,
    scratch: BuildScratch,
    slots: &'static SlotLookup,
    /// Price of a 0 bit given the number of zeros among a context's last 64 bits (a 1 bit
    /// uses `64 - zeros`).
    bit_cost: [u32; 65],
    /// Price of each match length up to `MAX_FAST_LEN`: length symbol and extra bits.
    len_cost: [u32; MAX_FAST_LEN + 1],
    len_slot: [u8; MAX_FAST_LEN + 1],
}

impl Coder {
    fn new() -> Self {
        let mut bit_cost = [0u32; 65];
        for (i, c) in bit_cost.iter_mut().enumerate() {
            let p = i.clamp(1, 63) as f64 / 64.0;
            *c = (-p.log2() * (1 << COST_SHIFT) as f64).round() as u32;
        }
        let mut len_slot = [0u8; MAX_FAST_LEN + 1];
        for (len, s) in len_slot.iter_mut().enumerate().skip(1) {
            *s = length_slot(len as u32) as u8;
        }
        Coder {
            rc: RangeEncoder::new(),
            bits: BackBits {
                acc: 0,
                n: 0,
                words: Vec::new(),
            },
            probs: Probs::INITIAL,
            state: State::INITIAL,
            literal: HuffEnc::new(NUM_LITERAL_SYMS, LITERAL_REBUILD),
            lz_offset: HuffEnc::new(MAX_OFFSET_SYMS, OFFSET_REBUILD),
            length: HuffEnc::new(NUM_LENGTH_SYMS, LENGTH_REBUILD),
            delta_offset: HuffEnc::new(MAX_OFFSET_SYMS, OFFSET_REBUILD),
            delta_power: HuffEnc::new(NUM_DELTA_POWER_SYMS, POWER_REBUILD),
            scratch: BuildScratch::new(),
            slots: slot_lookup(),
            bit_cost,
            len_cost: [0; MAX_FAST_LEN + 1],
            len_slot,
        }
    }

    /// Starts a chunk of `size` bytes.
    fn reset(&mut self, size: usize) {
        self.rc = RangeEncoder::new();
        self.bits.acc = 0;
        self.bits.n = 0;
        self.bits.words.clear();
        self.probs = Probs::INITIAL;
        self.state = State::INITIAL;
        let offset_syms = num_offset_slots(size);
        let s = &mut self.scratch;
        self.literal.reset(NUM_LITERAL_SYMS, s);
        self.lz_offset.reset(offset_syms, s);
        self.length.reset(NUM_LENGTH_SYMS, s);
        self.delta_offset.reset(offset_syms, s);
        self.delta_power.reset(NUM_DELTA_POWER_SYMS, s);
        self.update_len_costs();
    }

    fn update_len_costs(&mut self) {
        for len in 1..=MAX_FAST_LEN {
            let slot = self.len_slot[len] as usize;
            let bits = self.length.lens[slot] as u32 + LENGTH_SLOTS[slot].extra_bits;
            self.len_cost[len] = bits << COST_SHIFT;
        }
    }

    /// Bytes written so far, give or take a word in each stream.
    fn size(&self, out: &[u8]) -> usize {
        out.len() + 2 * self.bits.words.len()
    }

    /// Codes `it` at the current state and advances the state.
    fn encode(&mut self, out: &mut Vec<u8>, it: Item) {
        let s = self.state;
        let p = &mut self.probs;
        let rc = &mut self.rc;
        let sc = &mut self.scratch;
        if it.len == 1 {
            rc.encode(out, 0, &mut p.main[s.main as usize]);
            self.literal.encode(it.src as usize, &mut self.bits, sc);
            self.state.apply(it);
            return;
        }
        rc.encode(out, 1, &mut p.main[s.main as usize]);
        let delta = it.src & DELTA != 0;
        let src = it.src & !DELTA;
        rc.encode(out, delta as u32, &mut p.matches[s.matches as usize]);
        let (ctx, rep_ctx, probs, rep_probs) = if delta {
            (s.delta, s.delta_rep, &mut p.delta, &mut p.delta_rep)
        } else {
            (s.lz, s.lz_rep, &mut p.lz, &mut p.lz_rep)
        };
        if src < NUM_REPS {
            rc.encode(out, 1, &mut probs[ctx as usize]);
            let idx = src as usize;
            for k in 0..(idx + 1).min(2) {
                let bit = (k < idx) as u32;
                rc.encode(out, bit, &mut rep_probs[k][rep_ctx[k] as usize]);
            }
        } else {
            rc.encode(out, 0, &mut probs[ctx as usize]);
            let v = src - 2;
            let raw = if delta {
                self.delta_power
                    .encode((v >> 28) as usize, &mut self.bits, sc);
                v & ((1 << 28) - 1)
            } else {
                v
            };
            let slot = self.slots.slot(raw);
            let code = if delta {
                &mut self.delta_offset
            } else {
                &mut self.lz_offset
            };
            code.encode(slot, &mut self.bits, sc);
            let Slot { base, extra_bits } = OFFSET_SLOTS[slot];
            self.bits.put(raw - base, extra_bits);
        }
        let slot = if (it.len as usize) <= MAX_FAST_LEN {
            self.len_slot[it.len as usize] as usize
        } else {
            length_slot(it.len)
        };
        if self.length.encode(slot, &mut self.bits, sc) {
            self.update_len_costs();
        }
        let Slot { base, extra_bits } = LENGTH_SLOTS[slot];
        self.bits.put(it.len - base, extra_bits);
        self.state.apply(it);
    }

    // Prices, in 1/64 bits, at the coder's current probabilities and codes.

    #[inline(always)]
    fn bit0(&self, p: &Prob) -> u32 {
        self.bit_cost[p.zeros as usize]
    }

    #[inline(always)]
    fn bit1(&self, p: &Prob) -> u32 {
        self.bit_cost[64 - p.zeros as usize]
    }

    #[inline(always)]
    fn literal_cost(&self, s: &State, byte: u8) -> u32 {
        self.bit0(&self.probs.main[s.main as usize])
            + ((self.literal.lens[byte as usize] as u32) << COST_SHIFT)
    }

    /// Item-kind bits of an LZ (or delta) match, up to the repeat-slot bits.
    #[inline(always)]
    fn match_head_cost(&self, s: &State, delta: bool, rep: bool) -> u32 {
        let p = &self.probs;
        let (kind, ctx) = if delta {
            (
                self.bit1(&p.matches[s.matches as usize]),
                &p.delta[s.delta as usize],
            )
        } else {
            (
                self.bit0(&p.matches[s.matches as usize]),
                &p.lz[s.lz as usize],
            )
        };
        self.bit1(&p.main[s.main as usize])
            + kind
            + if rep { self.bit1(ctx) } else { self.bit0(ctx) }
    }

    #[inline(always)]
    fn rep_cost(&self, s: &State, delta: bool, idx: usize) -> u32 {
        let (ctx, probs) = if delta {
            (&s.delta_rep, &self.probs.delta_rep)
        } else {
            (&s.lz_rep, &self.probs.lz_rep)
        };
        let mut c = self.match_head_cost(s, delta, true);
        for k in 0..(idx + 1).min(2) {
            let p = &probs[k][ctx[k] as usize];
            c += if k < idx { self.bit1(p) } else { self.bit0(p) };
        }
        c
    }

    #[inline(always)]
    fn lz_offset_cost(&self, off: u32) -> u32 {
        let slot = self.slots.slot(off);
        (self.lz_offset.lens[slot] as u32 + OFFSET_SLOTS[slot].extra_bits) << COST_SHIFT
    }

    #[inline(always)]
    fn delta_source_cost(&self, power: u32, raw: u32) -> u32 {
        let slot = self.slots.slot(raw);
        (self.delta_power.lens[power as usize] as u32
            + self.delta_offset.lens[slot] as u32
            + OFFSET_SLOTS[slot].extra_bits)
            << COST_SHIFT
    }

    /// Price of literal `lit` and then a rep0 LZ match of `rep0` bytes after an explicit LZ
    /// match taken in state `s`: what applying the three items to `s` and pricing the last
    /// two gives, using only the state bits those prices read. (The explicit match leaves
    /// the repeat-slot contexts alone; its offset becomes rep0 after the literal.)
    #[inline(always)]
    fn lit_rep0_after_explicit_cost(&self, s: &State, lit: u8, rep0: usize) -> u32 {
        let p = &self.probs;
        let main1 = ((s.main << 1) | 1) & 15;
        let matches1 = (s.matches << 1) & 31;
        let lz1 = (s.lz << 1) & 63;
        let main2 = (main1 << 1) & 15;
        self.bit0(&p.main[main1 as usize])
            + ((self.literal.lens[lit as usize] as u32) << COST_SHIFT)
            + self.bit1(&p.main[main2 as usize])
            + self.bit0(&p.matches[matches1 as usize])
            + self.bit1(&p.lz[lz1 as usize])
            + self.bit0(&p.lz_rep[0][s.lz_rep[0] as usize])
            + self.len_cost[rep0]
    }

    /// Price of a repeat-offset LZ match of `len` (<= `MAX_FAST_LEN`) bytes.
    #[inline(always)]
    fn lz_rep_item_cost(&self, s: &State, idx: usize, len: usize) -> u32 {
        self.rep_cost(s, false, idx) + self.len_cost[len]
    }
}

// ---------------------------------------------------------------------------------------------
// Delta match finder

/// One hash table for all spans: each entry is the latest position whose next three bytes,
/// seen as differences to the bytes one span earlier, hash there (the span and the position
/// modulo the span are hashed in too). Positions are stored as `base + pos`, so starting a
/// new chunk only raises `base`.
struct DeltaFinder {
    table: Box<[u32; 1 << DELTA_HASH_BITS]>,
    base: u32,
    prev_len: usize,
    /// Candidates `(power, offset)` of the latest search.
    found: [(u32, usize); DELTA_POWERS as usize],
}

impl DeltaFinder {
    fn new() -> Self {
        DeltaFinder {
            table: vec![0; 1 << DELTA_HASH_BITS]
                .into_boxed_slice()
                .try_into()
                .expect("table size"),
            base: 1,
            prev_len: 0,
            found: [(0, 0); DELTA_POWERS as usize],
        }
    }

    fn start(&mut self, len: usize) {
        let next = self.base as u64 + self.prev_len as u64;
        if next + len as u64 + 1 >= u32::MAX as u64 {
            self.table.fill(0);
            self.base = 1;
        } else {
            self.base = next as u32;
        }
        self.prev_len = len;
    }

    /// Hash of the differences `diffs` (three bytes) at `pos` for `span`.
    #[inline(always)]
    fn hash(diffs: u32, pos: usize, span: usize) -> usize {
        let phase = (span + (pos & (span - 1))) as u32;
        let v = diffs | (phase << 24);
        (v.wrapping_mul(0x9E37_79B1) >> (32 - DELTA_HASH_BITS)) as usize
    }

    /// Inserts `pos` for every span; `heads` is what `delta_heads` gave for `pos`. With
    /// `SEARCH`, also stores the previous position of each hash in `self.found` as a
    /// candidate `(power, offset)` and returns how many there are; a candidate's first bytes
    /// may still differ (hashes collide).
    #[inline(always)]
    fn insert<const SEARCH: bool>(
        &mut self,
        d: &[u8],
        pos: usize,
        heads: Option<&[u32; DELTA_POWERS as usize]>,
    ) -> usize {
        if pos + DELTA_MIN_LEN > d.len() {
            return 0;
        }
        let mut num = 0;
        let found = &mut self.found;
        let mut add = |table: &mut [u32; 1 << DELTA_HASH_BITS], power: u32, diffs: u32| {
            let span = 1usize << power;
            let h = Self::hash(diffs, pos, span);
            let old = std::mem::replace(&mut table[h], self.base + pos as u32);
            if SEARCH {
                // Another span's entry for this very position may share the hash: the
                // offset must be nonzero and a multiple of the span. Stale entries (of
                // earlier chunks) give offsets beyond `pos`, which the caller rejects.
                let off = pos.wrapping_sub(old.wrapping_sub(self.base) as usize);
                found[num] = (power, off);
                num += (off != 0 && off & (span - 1) == 0) as usize;
            }
        };
        if let Some(heads) = heads {
            for (power, &head) in (0..).zip(heads) {
                add(&mut self.table, power, head & 0xff_ffff);
            }
        } else {
            for power in 0..DELTA_POWERS {
                let span = 1usize << power;
                if pos < span {
                    break;
                }
                let diff = |k: usize| d[pos + k].wrapping_sub(d[pos + k - span]) as u32;
                add(
                    &mut self.table,
                    power,
                    diff(0) | (diff(1) << 8) | (diff(2) << 16),
                );
            }
        }
        num
    }
}

/// The two bytes at `i`, for comparing two positions' first bytes at once.
#[inline(always)]
fn load_u16(d: &[u8], i: usize) -> u16 {
    u16::from_le_bytes(d[i..i + 2].try_into().unwrap())
}

/// The bytewise differences `a - b` of the four bytes of two words.
#[inline(always)]
fn delta_diffs(a: u32, b: u32) -> u32 {
    // The high bits keep borrows inside each byte.
    const HIGH: u32 = 0x8080_8080;
    ((a | HIGH) - (b & !HIGH)) ^ ((a ^ !b) & HIGH)
}

/// The first four bytes of the delta stream at `pos` for each span (the differences to the
/// bytes one span earlier), as one little-endian word per power; `None` within the widest
/// span of the start or four bytes of the end.
#[inline(always)]
fn delta_heads(d: &[u8], pos: usize) -> Option<[u32; DELTA_POWERS as usize]> {
    const BACK: usize = 1 << (DELTA_POWERS - 1);
    // One view of the bytes every span reads: the loads below need no bounds checks.
    let w: &[u8; BACK + 4] = d.get(pos.checked_sub(BACK)?..pos + 4)?.try_into().ok()?;
    let word = |at: usize| u32::from_le_bytes(w[at..at + 4].try_into().unwrap());
    let cur = word(BACK);
    Some(std::array::from_fn(|power| {
        delta_diffs(cur, word(BACK - (1 << power)))
    }))
}

/// Length of the delta match at `pos` with `offset` and `span`, at most `max`, or 0 if it
/// is shorter than `min` (at most 4). `head` is `pos`'s word of `delta_heads` for `span`, if
/// there is one: it settles most candidates with one comparison. Needs `offset + span <=
/// pos` and `pos + max <= d.len()`.
#[inline(always)]
fn delta_match(
    d: &[u8],
    pos: usize,
    offset: usize,
    span: usize,
    head: Option<u32>,
    min: usize,
    max: usize,
) -> usize {
    let len = match head {
        Some(head) => {
            // `delta_heads` had four bytes at `pos`, so `max >= 4`.
            let m = pos - offset;
            let x = head ^ delta_diffs(load_u32(d, m), load_u32(d, m - span));
            if x != 0 {
                (x.trailing_zeros() / 8) as usize
            } else {
                delta_len(d, pos, offset, span, 4, max)
            }
        }
        None => delta_len(d, pos, offset, span, 0, max),
    };
    if len >= min {
        len
    } else {
        0
    }
}

/// Length of the delta match at `pos` with `offset` and `span`, at most `max`, given that
/// its first `len` bytes agree (needs `offset + span <= pos` and `pos + max <= d.len()`).
#[inline(always)]
fn delta_len(d: &[u8], pos: usize, offset: usize, span: usize, len: usize, max: usize) -> usize {
    // Byte k agrees when d[pos+k] - d[pos+k-span] == d[m+k] - d[m+k-span], that is when
    // d[pos+k] + d[m+k-span] == d[m+k] + d[pos+k-span] (mod 256): eight bytes at a time with
    // additions that keep carries inside each byte.
    const LOW: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    let add = |a: u64, b: u64| ((a & LOW) + (b & LOW)) ^ ((a ^ b) & !LOW);
    // The four streams as equal-length views from `len` on: zipped, their words and bytes
    // need no bounds checks.
    let view = |at: usize| &d[at + len..at + max];
    let m = pos - offset;
    let (cur, cur_base, src, src_base) = (view(pos), view(pos - span), view(m), view(m - span));
    fn words(v: &[u8]) -> impl Iterator<Item = u64> + '_ {
        v.chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
    }
    let streams = words(cur)
        .zip(words(cur_base))
        .zip(words(src))
        .zip(words(src_base));
    let mut done = 0;
    for (((a, a_base), b), b_base) in streams {
        let x = add(a, b_base) ^ add(b, a_base);
        if x != 0 {
            return len + done + (x.trailing_zeros() / 8) as usize;
        }
        done += 8;
    }
    let tail = cur[done..].iter().zip(&cur_base[done..]);
    let tail = tail.zip(src[done..].iter().zip(&src_base[done..]));
    len + done
        + tail
            .take_while(|&((a, a_base), (b, b_base))| {
                a.wrapping_sub(*a_base) == b.wrapping_sub(*b_base)
            })
            .count()
}

// ---------------------------------------------------------------------------------------------
// Parser

/// A position in the current stretch: the cheapest known way to reach it and, once the
/// parser has passed it, the state at the end of that path.
#[derive(Clone, Copy)]
struct Node {
    cost: u32,
    /// The last item of the path. A multi-item step also records the items before it in
    /// `extra` (nearest first).
    item: Item,
    extra: [Item; 2],
    num_extra: u8,
    state: State,
}

impl Node {
    const EMPTY: Node = Node {
        cost: INFINITE,
        item: Item { len: 0, src: 0 },
        extra: [Item { len: 0, src: 0 }; 2],
        num_extra: 0,
        state: State::INITIAL,
    };
}

/// Parameters derived from the compression level.
#[derive(Clone, Copy)]
struct Params {
    /// A match this long is taken at once, without weighing alternatives.
    nice: usize,
    /// Binary-tree nodes visited per search (for chunks too large for the LCP-interval finder).
    depth: u32,
    delta: bool,
    /// Multi-item steps tried: explicit match + literal + rep0; literal + rep0; repeat
    /// match + literal + rep0.
    match_lit_rep0: bool,
    lit_rep0: bool,
    rep_lit_rep0: bool,
    /// LZ match lengths behind which the delta search is skipped: within
    /// `DELTA_SKIP_LZ_OFFSET`, and at any offset.
    delta_skip: (usize, usize),
}

/// Reusable LZMS chunk compressor for one chunk size and compression level.
pub struct LzmsEncoder {
    chunk_size: usize,
    params: Params,
    buf: Vec<u8>,
    target_usage: Vec<i32>,
    lcpit: LcpitFinder,
    /// For chunks larger than `lcpit` takes: made on first use.
    mf: Option<(usize, BtFinder)>,
    delta: DeltaFinder,
    coder: Box<Coder>,
    nodes: Vec<Node>,
    matches: Vec<Match>,
    items: Vec<Item>,
}

impl LzmsEncoder {
    /// Makes a compressor for chunks of up to `chunk_size` bytes (at most 1 GiB) at `level`
    /// 1..=100, where 50 is the usual default and higher levels trade time for ratio.
    pub fn new(chunk_size: u32, level: u32) -> Result<Self, CodecError> {
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(CodecError::Unsupported {
                codec: "lzms",
                what: "chunk size",
            });
        }
        if !(1..=100).contains(&level) {
            return Err(CodecError::Unsupported {
                codec: "lzms",
                what: "compression level",
            });
        }
        let params = Params {
            nice: (level as usize * 63 / 50).clamp(8, MAX_FAST_LEN),
            depth: (level * 16 / 50).max(2),
            delta: level >= MIN_DELTA_LEVEL,
            match_lit_rep0: level >= 45,
            lit_rep0: level >= 60,
            rep_lit_rep0: level >= 60,
            delta_skip: if chunk_size <= DELTA_SKIP_SMALL_CHUNK && level < 60 {
                DELTA_SKIP_SMALL
            } else {
                (DELTA_SKIP_LZ_LEN, DELTA_SKIP_FAR_LZ_LEN)
            },
        };
        Ok(LzmsEncoder {
            chunk_size: chunk_size as usize,
            params,
            buf: Vec::new(),
            target_usage: Vec::new(),
            lcpit: LcpitFinder::new(),
            mf: None,
            delta: DeltaFinder::new(),
            coder: Box::new(Coder::new()),
            nodes: vec![Node::EMPTY; NUM_NODES],
            matches: Vec::with_capacity(MAX_FAST_LEN + 8),
            items: Vec::with_capacity(NUM_NODES),
        })
    }

    /// Compresses `input` into `out` unless the result reaches `limit` bytes; returns whether
    /// it stayed below.
    fn encode_chunk(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> bool {
        out.clear();
        let n = input.len();
        self.buf.clear();
        self.buf.extend_from_slice(input);
        if n > 17 {
            self.target_usage.resize(1 << 16, 0);
            x86_translate(&mut self.buf, &mut self.target_usage);
        }
        let lz = if n <= MAX_BUFFER {
            self.lcpit.load(&self.buf);
            LzFinder::Lcpit(&mut self.lcpit)
        } else {
            if self.mf.as_ref().is_none_or(|(w, _)| *w < n) {
                let window = n.next_power_of_two().min(self.chunk_size.max(n));
                // Roughly one tree per 16 positions keeps trees shallow for big chunks.
                let bits = (window.trailing_zeros().saturating_sub(1)).clamp(16, 22);
                self.mf = None;
                self.mf = Some((window, BtFinder::with_hash_bits(window, bits)));
            }
            let (_, mf) = self.mf.as_mut().expect("made above");
            mf.start(n);
            LzFinder::Bt(mf)
        };
        self.delta.start(n);
        self.coder.reset(n);
        out.reserve(limit.min(n + 64));
        let mut p = Parse {
            d: &self.buf,
            params: self.params,
            lz,
            delta: &mut self.delta,
            coder: &mut self.coder,
            nodes: &mut self.nodes,
            matches: &mut self.matches,
            items: &mut self.items,
            out,
            limit,
        };
        if !p.run() {
            return false;
        }
        let c = &mut *self.coder;
        c.rc.finish(out);
        c.bits.finish();
        if out.len() + 2 * c.bits.words.len() >= limit {
            return false;
        }
        for w in c.bits.words.iter().rev() {
            out.extend_from_slice(&w.to_le_bytes());
        }
        true
    }
}

impl Compressor for LzmsEncoder {
    fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        out.clear();
        assert!(
            input.len() <= self.chunk_size,
            "chunk larger than the compressor's chunk size"
        );
        // The streams' fixed overhead alone is 6 bytes.
        if input.len() <= 8 {
            return false;
        }
        self.encode_chunk(input, out, input.len())
    }
}

/// The delta-match candidates at one position: the length of each repeat pair's match (0 for
/// none) and `(power, raw offset, length)` of the explicit matches.
#[derive(Default)]
struct DeltaCandidates {
    rep_lens: [usize; 3],
    explicit: [(u32, u32, usize); DELTA_POWERS as usize],
    num_explicit: usize,
}

/// The LZ match finder of one chunk.
enum LzFinder<'a> {
    Lcpit(&'a mut LcpitFinder),
    /// For chunks larger than `MAX_BUFFER`.
    Bt(&'a mut BtFinder),
}

/// One chunk's parse: the data, match finders, coder and parser scratch.
struct Parse<'a> {
    d: &'a [u8],
    params: Params,
    lz: LzFinder<'a>,
    delta: &'a mut DeltaFinder,
    coder: &'a mut Coder,
    nodes: &'a mut [Node],
    matches: &'a mut Vec<Match>,
    items: &'a mut Vec<Item>,
    out: &'a mut Vec<u8>,
    limit: usize,
}

impl Parse<'_> {
    /// Parses and codes the whole chunk; false if the output reached the limit.
    fn run(&mut self) -> bool {
        let d = self.d;
        let n = d.len();
        let nice = self.params.nice;
        let mut dm = DeltaCandidates::default();
        let mut pos = 0;
        while pos < n {
            // A new stretch starts at `pos`, in the coder's state.
            self.nodes[0].cost = 0;
            self.nodes[0].state = self.coder.state;
            let mut cur = 0;
            let mut end = 0;
            loop {
                let remaining = n - pos;
                let state = self.nodes[cur].state;

                // Gather the candidates, cheapest to find first. A long one is taken at once
                // (by priority: repeat LZ, explicit LZ, repeat delta, explicit delta; see
                // `delta_candidates` for an exception), and
                // then the costlier searches are not run: the finders only insert `pos`.
                // `inserted` tracks whether both finders have seen `pos` already.
                let mut early = None;
                let mut inserted = false;
                let mut rep_lens = [0usize; 3];
                if remaining >= 2 {
                    for (idx, l) in rep_lens.iter_mut().enumerate() {
                        let off = state.lz_rep(idx) as usize;
                        if off <= pos && load_u16(d, pos) == load_u16(d, pos - off) {
                            *l = extend(d, pos - off, pos, 2, remaining);
                        }
                    }
                }
                if let Some(idx) = rep_lens.iter().position(|&l| l >= nice) {
                    early = Some(Item {
                        len: rep_lens[idx] as u32,
                        src: idx as u32,
                    });
                }
                self.matches.clear();
                if early.is_none() {
                    inserted = true;
                    self.lz_matches(pos);
                    if let Some(m) = self.matches.last() {
                        if m.len as usize >= nice.min(remaining) {
                            let off = m.offset as usize;
                            let len = extend(d, pos - off, pos, m.len as usize, remaining);
                            early = Some(Item {
                                len: len as u32,
                                src: m.offset + 2,
                            });
                        }
                    }
                }
                dm.rep_lens = [0; 3];
                dm.num_explicit = 0;
                if inserted && self.params.delta {
                    self.delta_candidates(pos, &state, &mut early, &mut dm);
                }
                let delta_rep_lens = dm.rep_lens;
                let deltas = &dm.explicit[..dm.num_explicit];

                if let Some(it) = early {
                    if !self.flush(cur) {
                        return false;
                    }
                    self.coder.encode(self.out, it);
                    let from = if inserted { pos + 1 } else { pos };
                    self.skip(from, pos + it.len as usize);
                    pos += it.len as usize;
                    break;
                }

                let base = self.nodes[cur].cost;
                let c = &*self.coder;

                // Repeat-offset LZ matches.
                for (idx, &len) in rep_lens.iter().enumerate() {
                    if len < 2 {
                        continue;
                    }
                    let bc = base + c.rep_cost(&state, false, idx);
                    reach(self.nodes, &mut end, cur + len);
                    relax_range(self.nodes, &c.len_cost, cur, 2, len, bc, idx as u32);
                    if self.params.rep_lit_rep0 {
                        let it = Item {
                            len: len as u32,
                            src: idx as u32,
                        };
                        let off = state.lz_rep(idx) as usize;
                        let cost = bc + c.len_cost[len];
                        try_lit_rep0(c, d, self.nodes, &mut end, cur, pos, &state, it, off, cost);
                    }
                }

                // Repeat-offset delta matches.
                for (idx, &len) in delta_rep_lens.iter().enumerate() {
                    if len < 2 {
                        continue;
                    }
                    let bc = base + c.rep_cost(&state, true, idx);
                    reach(self.nodes, &mut end, cur + len);
                    relax_range(self.nodes, &c.len_cost, cur, 2, len, bc, DELTA | idx as u32);
                }

                // Explicit-offset LZ matches, shortest first; each length goes to the match
                // with the smallest offset that reaches it.
                if let Some(longest) = self.matches.last() {
                    reach(self.nodes, &mut end, cur + longest.len as usize);
                    let head = base + c.match_head_cost(&state, false, false);
                    let mut l = 2;
                    for m in self.matches.iter() {
                        let len = m.len as usize;
                        let bc = head + c.lz_offset_cost(m.offset);
                        if l <= len {
                            relax_range(self.nodes, &c.len_cost, cur, l, len, bc, m.offset + 2);
                            l = len + 1;
                        }
                        if self.params.match_lit_rep0 {
                            let it = Item {
                                len: len as u32,
                                src: m.offset + 2,
                            };
                            let off = m.offset as usize;
                            let cost = bc + c.len_cost[len];
                            try_lit_rep0(
                                c, d, self.nodes, &mut end, cur, pos, &state, it, off, cost,
                            );
                        }
                    }
                }

                // Explicit-offset delta matches.
                for &(power, raw, len) in deltas {
                    let bc = base
                        + c.match_head_cost(&state, true, false)
                        + c.delta_source_cost(power, raw);
                    reach(self.nodes, &mut end, cur + len);
                    let src = DELTA | (((power << 28) | raw) + 2);
                    relax_range(self.nodes, &c.len_cost, cur, DELTA_MIN_LEN, len, bc, src);
                }

                // A literal.
                reach(self.nodes, &mut end, cur + 1);
                let lit = Item {
                    len: 1,
                    src: d[pos] as u32,
                };
                let lit_cost = base + c.literal_cost(&state, d[pos]);
                if lit_cost < self.nodes[cur + 1].cost {
                    let node = &mut self.nodes[cur + 1];
                    node.cost = lit_cost;
                    node.item = lit;
                    node.num_extra = 0;
                } else if self.params.lit_rep0 && remaining >= 3 {
                    // The literal is not the cheapest way to the next byte, so rep0 from
                    // there would not be tried: try it as one step.
                    let mut s = state;
                    s.apply(lit);
                    let off = s.lz_rep(0) as usize;
                    let p1 = pos + 1;
                    if off <= p1 && load_u16(d, p1) == load_u16(d, p1 - off) {
                        let max = (n - p1).min(nice);
                        let len = extend(d, p1 - off, p1, 2, max);
                        let cost = lit_cost + c.lz_rep_item_cost(&s, 0, len);
                        let at = cur + 1 + len;
                        reach(self.nodes, &mut end, at);
                        let node = &mut self.nodes[at];
                        if cost < node.cost {
                            node.cost = cost;
                            node.item = Item {
                                len: len as u32,
                                src: 0,
                            };
                            node.extra[0] = lit;
                            node.num_extra = 1;
                        }
                    }
                }

                // The cheapest path to the next byte is now final: fix its state.
                cur += 1;
                pos += 1;
                let node = self.nodes[cur];
                let mut from = cur - node.item.len as usize;
                for e in &node.extra[..node.num_extra as usize] {
                    from -= e.len as usize;
                }
                let mut s = self.nodes[from].state;
                for e in node.extra[..node.num_extra as usize].iter().rev() {
                    s.apply(*e);
                }
                s.apply(node.item);
                self.nodes[cur].state = s;

                if cur == end || cur == NUM_OPTIM_NODES {
                    if !self.flush(cur) {
                        return false;
                    }
                    break;
                }
            }
        }
        true
    }

    /// Finds the delta-match candidates at `pos` for a path in `state` and inserts `pos`
    /// into the delta finder; `early` (an explicit LZ match to take at once, if any) may be
    /// replaced by a long delta match. Behind a long LZ match (see
    /// `DELTA_SKIP_LZ_LEN`) delta matches are not looked for, except that a repeat delta
    /// match as long as an explicit LZ match taken at once is the cheaper of the two.
    /// Kept out of line, which measured slightly cheaper than inlining it into the parser
    /// loop.
    #[inline(never)]
    fn delta_candidates(
        &mut self,
        pos: usize,
        state: &State,
        early: &mut Option<Item>,
        out: &mut DeltaCandidates,
    ) {
        let d = self.d;
        let nice = self.params.nice;
        let remaining = d.len() - pos;
        let heads = delta_heads(d, pos);
        let (near, far) = self.params.delta_skip;
        let covered = self.matches.last().is_some_and(|m| {
            let len = m.len as usize;
            len >= far || (len >= near && m.offset <= DELTA_SKIP_LZ_OFFSET)
        });
        let search = early.is_none() && !covered;
        if (search || early.is_some()) && remaining >= 2 {
            for (idx, l) in out.rep_lens.iter_mut().enumerate() {
                let pair = state.delta_rep(idx);
                let power = pair >> 28;
                let span = 1usize << power;
                let off = ((pair & ((1 << 28) - 1)) as usize) << power;
                if off + span <= pos {
                    // Spans past the widest searched one have no head word.
                    let head = heads.as_ref().and_then(|h| h.get(power as usize));
                    *l = delta_match(d, pos, off, span, head.copied(), 2, remaining);
                }
            }
        }
        if let Some(idx) = out.rep_lens.iter().position(|&l| l >= nice) {
            if early.is_none_or(|e| out.rep_lens[idx] >= e.len as usize) {
                *early = Some(Item {
                    len: out.rep_lens[idx] as u32,
                    src: DELTA | idx as u32,
                });
            }
        }
        if early.is_some() || !search {
            self.delta.insert::<false>(d, pos, heads.as_ref());
        } else {
            let num = self.delta.insert::<true>(d, pos, heads.as_ref());
            for &(power, off) in &self.delta.found[..num] {
                let span = 1usize << power;
                let raw = (off >> power) as u32;
                if off > pos - span || raw > MAX_DELTA_RAW {
                    continue;
                }
                let head = heads.as_ref().map(|h| h[power as usize]);
                let len = delta_match(d, pos, off, span, head, DELTA_MIN_LEN, remaining);
                if len == 0 {
                    continue;
                }
                if len >= nice {
                    *early = Some(Item {
                        len: len as u32,
                        src: DELTA | (((power << 28) | raw) + 2),
                    });
                    break;
                }
                out.explicit[out.num_explicit] = (power, raw, len);
                out.num_explicit += 1;
            }
        }
    }

    /// Codes the cheapest path to node `to` of the current stretch. False if the output
    /// has reached the limit.
    fn flush(&mut self, to: usize) -> bool {
        self.items.clear();
        let mut i = to;
        while i > 0 {
            let node = &self.nodes[i];
            self.items.push(node.item);
            i -= node.item.len as usize;
            for e in &node.extra[..node.num_extra as usize] {
                self.items.push(*e);
                i -= e.len as usize;
            }
        }
        for &it in self.items.iter().rev() {
            self.coder.encode(self.out, it);
        }
        debug_assert_eq!(self.coder.state, self.nodes[to].state);
        self.coder.size(self.out) + 8 < self.limit
    }

    /// Advances the LZ match finder over `pos` (the next position it has not seen) and puts
    /// the matches there into `self.matches`, shortest first.
    #[inline(always)]
    fn lz_matches(&mut self, pos: usize) {
        let d = self.d;
        let remaining = d.len() - pos;
        let max_len = remaining.min(MAX_FAST_LEN);
        let nice = self.params.nice;
        match &mut self.lz {
            LzFinder::Lcpit(f) => {
                f.advance(Some(&mut *self.matches));
                // Lengths are capped at `LCP_MAX`: where that is short of `nice`, the
                // longest match may go on.
                if let Some(m) = self.matches.last_mut() {
                    if m.len as usize == LCP_MAX && nice > LCP_MAX {
                        let off = m.offset as usize;
                        m.len = extend(d, pos - off, pos, LCP_MAX, max_len) as u32;
                    }
                }
            }
            LzFinder::Bt(f) => {
                if remaining >= 4 {
                    let depth = self.params.depth;
                    let nice = nice.min(max_len);
                    let out = Some(&mut *self.matches);
                    f.advance(d, pos, max_len, nice, depth, usize::MAX, out);
                }
            }
        }
    }

    /// Inserts positions `from..to` into the match finders without searching.
    fn skip(&mut self, from: usize, to: usize) {
        let d = self.d;
        let n = d.len();
        for pos in from..to {
            let remaining = n - pos;
            match &mut self.lz {
                LzFinder::Lcpit(f) => f.advance(None),
                LzFinder::Bt(f) => {
                    if remaining >= 4 {
                        let max_len = remaining.min(MAX_FAST_LEN);
                        let nice = self.params.nice.min(max_len);
                        f.advance(d, pos, max_len, nice, self.params.depth, usize::MAX, None);
                    }
                }
            }
            if self.params.delta {
                let heads = delta_heads(d, pos);
                self.delta.insert::<false>(d, pos, heads.as_ref());
            }
        }
    }
}

/// Makes sure nodes up to `to` are initialised (unreached nodes cost `INFINITE`).
#[inline(always)]
fn reach(nodes: &mut [Node], end: &mut usize, to: usize) {
    while *end < to {
        *end += 1;
        nodes[*end].cost = INFINITE;
    }
}

/// Offers nodes `cur + from ..= cur + to` the item of each of those lengths with source
/// `src`, at `base` plus the length's price.
#[inline(always)]
fn relax_range(
    nodes: &mut [Node],
    len_cost: &[u32],
    cur: usize,
    from: usize,
    to: usize,
    base: u32,
    src: u32,
) {
    if from > to {
        return;
    }
    // Equal-length slices up front let the loop run without bounds checks.
    let ns = &mut nodes[cur + from..=cur + to];
    let lc = &len_cost[from..=to];
    for ((node, &lcost), len) in ns.iter_mut().zip(lc).zip(from as u32..) {
        relax(node, base + lcost, Item { len, src });
    }
}

#[inline(always)]
fn relax(node: &mut Node, cost: u32, it: Item) {
    if cost < node.cost {
        node.cost = cost;
        node.item = it;
        node.num_extra = 0;
    }
}

/// After match `first` (costing `cost` from node `cur`, at offset `off`) the data may go on
/// matching at the same offset after one differing byte: offers "first, literal, rep0 match"
/// as a single step.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn try_lit_rep0(
    c: &Coder,
    d: &[u8],
    nodes: &mut [Node],
    end: &mut usize,
    cur: usize,
    pos: usize,
    state: &State,
    first: Item,
    off: usize,
    cost: u32,
) {
    let len = first.len as usize;
    let after = pos + len + 1;
    if after + 2 > d.len() || load_u16(d, after) != load_u16(d, after - off) {
        return;
    }
    let max = (d.len() - after).min(MAX_FAST_LEN);
    let rep0 = extend(d, after - off, after, 2, max);
    let lit = Item {
        len: 1,
        src: d[pos + len] as u32,
    };
    let total = if first.src & DELTA == 0 && first.src >= NUM_REPS {
        cost + c.lit_rep0_after_explicit_cost(state, d[pos + len], rep0)
    } else {
        let mut s = *state;
        s.apply(first);
        let total = cost + c.literal_cost(&s, d[pos + len]);
        s.apply(lit);
        total + c.lz_rep_item_cost(&s, 0, rep0)
    };
    let at = cur + len + 1 + rep0;
    reach(nodes, end, at);
    let node = &mut nodes[at];
    if total < node.cost {
        node.cost = total;
        node.item = Item {
            len: rep0 as u32,
            src: 0,
        };
        node.extra = [lit, first];
        node.num_extra = 2;
    }
}

#[cfg(test)]
mod tests {
    use super::super::lzms::LzmsDecoder;
    use super::super::Decompressor;
    use super::*;
    use proptest::prelude::*;

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

    /// Encodes `data` whether or not it shrinks, decodes it and compares; returns the
    /// compressed size.
    fn round_trip(enc: &mut LzmsEncoder, data: &[u8]) -> usize {
        let mut out = Vec::new();
        assert!(enc.encode_chunk(data, &mut out, usize::MAX));
        let mut dec = LzmsDecoder::new(enc.chunk_size as u32).unwrap();
        let mut back = vec![0u8; data.len()];
        dec.decompress(&out, &mut back)
            .unwrap_or_else(|e| panic!("decoder rejected {} bytes: {e}", data.len()));
        assert!(back == data, "round trip mismatch, {} bytes", data.len());
        // The public entry point agrees, and never claims a gain it does not have.
        let mut out2 = Vec::new();
        if enc.compress(data, &mut out2) {
            assert!(out2.len() < data.len());
            assert_eq!(out, out2);
        }
        out.len()
    }

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

    /// Machine-code-like records with calls to a few targets, RIP-relative loads and
    /// repeated structures.
    fn code_like(rng: &mut Rng, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 16);
        let targets: Vec<i32> = (0..20).map(|_| rng.below(1 << 20) as i32).collect();
        while v.len() < n {
            match rng.below(7) {
                0 => {
                    let t = targets[rng.below(targets.len())];
                    v.push([0xE8, 0xE9][rng.below(2)]);
                    let rel = t - v.len() as i32;
                    v.extend_from_slice(&rel.to_le_bytes());
                }
                1 => {
                    let t = targets[rng.below(targets.len())];
                    v.extend_from_slice(&[0x48, 0x8D, 0x05]);
                    let rel = t - v.len() as i32;
                    v.extend_from_slice(&rel.to_le_bytes());
                }
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

    /// Tables of 8-, 16- and 32-bit samples with smooth trends: delta-match territory.
    fn samples(rng: &mut Rng, n: usize) -> Vec<u8> {
        let width = [1usize, 2, 4, 8][rng.below(4)];
        let mut v = Vec::with_capacity(n + 8);
        let mut x = rng.next() as u32;
        let step = rng.below(50) as u32;
        while v.len() < n {
            x = x.wrapping_add(step + (rng.below(3) as u32));
            v.extend_from_slice(&x.to_le_bytes()[..width.min(4)]);
            if width == 8 {
                v.extend_from_slice(&[0, 0, 0, 1]);
            }
        }
        v.truncate(n);
        v
    }

    fn mixed(rng: &mut Rng, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            let part = 1 + rng.below(n - v.len());
            match rng.below(6) {
                0 => v.extend(text(rng, part)),
                1 => v.extend(code_like(rng, part)),
                2 => v.extend(samples(rng, part)),
                3 => v.extend((0..part).map(|_| rng.next() as u8)),
                4 if !v.is_empty() => {
                    let s = rng.below(v.len());
                    for k in 0..part {
                        v.push(v[s + k]);
                    }
                }
                _ => v.extend(std::iter::repeat_n(rng.next() as u8, part)),
            }
        }
        v
    }

    fn encoders(chunk: u32) -> Vec<LzmsEncoder> {
        [1, 20, 35, 50, 70, 100]
            .iter()
            .map(|&l| LzmsEncoder::new(chunk, l).unwrap())
            .collect()
    }

    #[test]
    fn slot_lookup_matches_table() {
        let t = slot_lookup();
        for (slot, s) in OFFSET_SLOTS.iter().enumerate() {
            let last = (s.base as u64 + (1u64 << s.extra_bits) - 1).min(u32::MAX as u64) as u32;
            assert_eq!(t.slot(s.base), slot);
            assert_eq!(t.slot(last), slot);
            assert_eq!(t.slot(s.base + (last - s.base) / 2), slot);
        }
        for (slot, s) in LENGTH_SLOTS.iter().enumerate() {
            assert_eq!(length_slot(s.base), slot);
        }
    }

    #[test]
    fn tiny_inputs() {
        let mut rng = Rng(3);
        for mut enc in encoders(1 << 15) {
            let mut out = Vec::new();
            assert!(!enc.compress(&[], &mut out));
            round_trip(&mut enc, &[]);
            for n in 1..200 {
                round_trip(&mut enc, &vec![b'a'; n]);
                round_trip(&mut enc, &vec![0xE8; n]);
                round_trip(&mut enc, &text(&mut rng, n));
                round_trip(&mut enc, &code_like(&mut rng, n));
                round_trip(&mut enc, &samples(&mut rng, n));
            }
        }
    }

    #[test]
    fn generated_data_round_trips_and_shrinks() {
        let mut rng = Rng(0x1234_5678);
        for chunk in [1u32 << 15, 1 << 17, 1 << 20] {
            for mut enc in encoders(chunk) {
                if chunk > 1 << 17 && enc.params.nice != 63 {
                    continue;
                }
                let n = chunk as usize;
                let t = text(&mut rng, n);
                assert!(round_trip(&mut enc, &t) < n / 2);
                let c = code_like(&mut rng, n);
                assert!(round_trip(&mut enc, &c) < n);
                let s = samples(&mut rng, n / 2 + 13);
                round_trip(&mut enc, &s);
                let z = vec![0u8; n];
                assert!(round_trip(&mut enc, &z) < 64 + n / 1000);
                let r: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                assert!(round_trip(&mut enc, &r) > n - n / 50);
                let m = mixed(&mut rng, n - 7);
                round_trip(&mut enc, &m);
            }
        }
    }

    #[test]
    fn delta_matches_pay_off() {
        let mut rng = Rng(11);
        let mut v = Vec::new();
        for i in 0..20_000u32 {
            let x = i.wrapping_mul(i) / 7 + rng.below(2) as u32;
            v.extend_from_slice(&(x as u16).to_le_bytes());
        }
        let with = round_trip(&mut LzmsEncoder::new(1 << 17, 50).unwrap(), &v);
        let without = round_trip(&mut LzmsEncoder::new(1 << 17, 30).unwrap(), &v);
        assert!(with < without, "{with} vs {without}");
    }

    #[test]
    fn random_structured_inputs() {
        let mut rng = Rng(0xdead_beef);
        let mut encs = encoders(1 << 16);
        for round in 0..300 {
            let n = rng.below(if round % 10 == 0 { 1 << 16 } else { 5000 });
            let v = mixed(&mut rng, n);
            let k = round % encs.len();
            round_trip(&mut encs[k], &v);
        }
    }

    #[test]
    fn small_chunk_sizes() {
        let mut rng = Rng(5);
        for chunk in [1u32, 2, 3, 17, 18, 100, 4096] {
            let mut enc = LzmsEncoder::new(chunk, 50).unwrap();
            for _ in 0..20 {
                let n = rng.below(chunk as usize + 1);
                let v = mixed(&mut rng, n);
                round_trip(&mut enc, &v);
            }
        }
    }

    #[test]
    fn chunks_larger_than_a_previous_one_regrow_the_finder() {
        let mut rng = Rng(8);
        let mut enc = LzmsEncoder::new(1 << 20, 50).unwrap();
        for n in [1000, 70_000, 300_000, 5000, 1 << 20] {
            let v = mixed(&mut rng, n);
            round_trip(&mut enc, &v);
        }
    }

    #[test]
    fn bad_parameters() {
        assert!(LzmsEncoder::new(0, 50).is_err());
        assert!(LzmsEncoder::new((1 << 30) + 1, 50).is_err());
        assert!(LzmsEncoder::new(1 << 30, 50).is_ok());
        assert!(LzmsEncoder::new(1 << 17, 0).is_err());
        assert!(LzmsEncoder::new(1 << 17, 101).is_err());
    }

    #[test]
    fn range_coder_carries() {
        // Long runs of near-certain bits push the low end towards 0xFFFF.. words, where
        // carries have to ripple through held-back words.
        for pattern in [0u32, 1, 2, 3] {
            let mut out = Vec::new();
            let mut rc = RangeEncoder::new();
            let mut p = [Prob::INITIAL; 4];
            let mut bits = Vec::new();
            let mut x = 12345u32;
            for i in 0..100_000u32 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let bit = match pattern {
                    0 => (x % 97 == 0) as u32,
                    1 => (x % 97 != 0) as u32,
                    2 => (i / 300) % 2,
                    _ => x & 1,
                };
                bits.push(bit);
                rc.encode(&mut out, bit, &mut p[(i % 4) as usize]);
            }
            rc.finish(&mut out);
            // Decode with the decoder's arithmetic.
            let word = |k: usize| -> u32 {
                out.get(2 * k..2 * k + 2)
                    .map_or(0, |w| u16::from_le_bytes([w[0], w[1]]) as u32)
            };
            let mut code = (word(0) << 16) | word(1);
            let mut next = 2;
            let mut range = u32::MAX;
            let mut p = [Prob::INITIAL; 4];
            for (i, &bit) in bits.iter().enumerate() {
                let pr = &mut p[i % 4];
                if range & 0xFFFF_0000 == 0 {
                    range <<= 16;
                    code = (code << 16) | word(next);
                    next += 1;
                }
                let bound = (range >> 6) * pr.zero_chance();
                let got = if code < bound {
                    range = bound;
                    0
                } else {
                    range -= bound;
                    code -= bound;
                    1
                };
                assert_eq!(got, bit, "pattern {pattern}, bit {i}");
                pr.update(bit);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn arbitrary_bytes_round_trip(data in proptest::collection::vec(any::<u8>(), 0..3000),
                                      level in 1u32..=100) {
            let mut enc = LzmsEncoder::new(4096, level).unwrap();
            round_trip(&mut enc, &data);
        }

        #[test]
        fn repetitive_bytes_round_trip(seed in any::<u64>(), len in 0usize..20_000,
                                       level in 1u32..=100) {
            let mut rng = Rng(seed | 1);
            let v = mixed(&mut rng, len);
            let mut enc = LzmsEncoder::new(1 << 15, level).unwrap();
            round_trip(&mut enc, &v);
        }
    }
}
