//! LZX decompression in the form WIM files use it.
//!
//! Every chunk of a WIM resource is a self-contained LZX stream: there is no stream header,
//! nothing carries over from one chunk to the next, and the window is the chunk size rounded
//! up to a power of two (at least 32 KiB). The stream is a sequence of blocks (verbatim,
//! aligned-offset or uncompressed) read as 16-bit little-endian words, most significant bit
//! first. After decoding, the x86 CALL ("E8") preprocessing is always undone, with the fixed
//! translation size WIM uses.

use super::{CodecError, Decompressor};

pub(super) const NUM_CHARS: usize = 256;
pub(super) const MIN_MATCH: usize = 2;
pub(super) const NUM_PRIMARY_LENS: usize = 7;
pub(super) const NUM_LEN_SYMS: usize = 249;
pub(super) const NUM_PRE_SYMS: usize = 20;
pub(super) const NUM_ALIGNED_SYMS: usize = 8;
pub(super) const MAX_SLOTS: usize = 50;
pub(super) const MAX_MAIN_SYMS: usize = NUM_CHARS + MAX_SLOTS * 8;
pub(super) const NUM_RECENT: usize = 3;
/// Offset slots from this one up carry their low three bits in the aligned-offset code.
pub(super) const MIN_ALIGNED_SLOT: usize = 8;
pub(super) const DEFAULT_BLOCK_SIZE: usize = 32_768;
pub(super) const MIN_WINDOW_ORDER: u32 = 15;
pub(super) const MAX_WINDOW_ORDER: u32 = 21;
/// The "file size" of E8 translation; WIM always uses this value, whatever the real size.
pub(super) const E8_FILE_SIZE: i32 = 12_000_000;
/// The final bytes in which a CALL instruction is never translated.
pub(super) const E8_TAIL: usize = 10;

const MAX_MAIN_LEN: u32 = 16;
const MAX_LEN_LEN: u32 = 16;
const MAX_PRE_LEN: u32 = 15;
const MAX_ALIGNED_LEN: u32 = 7;

const MAIN_TABLE_BITS: u32 = 11;
const LEN_TABLE_BITS: u32 = 10;
const PRE_TABLE_BITS: u32 = 6;
const ALIGNED_TABLE_BITS: u32 = 7;

// Root table plus the most subtable space any complete code of that shape can need (the
// classic "enough" bound for symbol count, root bits and maximum codeword length).
const MAIN_TABLE_SIZE: usize = 2726;
const LEN_TABLE_SIZE: usize = 1326;
const PRE_TABLE_SIZE: usize = 582;
const ALIGNED_TABLE_SIZE: usize = 1 << ALIGNED_TABLE_BITS;

/// A zero run can run up to 50 entries past the last length it should fill. Such streams are
/// invalid, but the reference decoder tolerates the overshoot (it spills into the next part's
/// lengths), so the length arrays get this much headroom to behave identically.
const LENS_SLACK: usize = 50;

/// Number of extra offset bits per offset slot (padded to 64 entries so that masking the slot
/// keeps indexing in bounds without a check).
const EXTRA_BITS: [u32; 64] = {
    let mut t = [0u32; 64];
    let mut s = 4;
    while s < MAX_SLOTS {
        let e = (s / 2 - 1) as u32;
        t[s] = if e > 17 { 17 } else { e };
        s += 1;
    }
    t
};

/// The smallest match offset of each slot. Slots 0-2 are the recent-offset slots and their
/// entries are unused; the "+ 2" bias of the formatted offsets is already removed.
const SLOT_BASE: [u32; 64] = {
    let mut t = [0u32; 64];
    let mut formatted = 0u32;
    let mut s = 0;
    while s <= MAX_SLOTS {
        t[s] = formatted.wrapping_sub(NUM_RECENT as u32 - 1);
        if s < MAX_SLOTS {
            formatted += 1 << EXTRA_BITS[s];
        }
        s += 1;
    }
    t
};

fn corrupt(what: &'static str) -> CodecError {
    CodecError::Corrupt { codec: "lzx", what }
}

/// Number of main-code symbols for a window of `1 << order` bytes. The format never needs an
/// offset as large as `window - 2`, so the slot count stops at the one holding `window - 3`.
fn num_main_syms(order: u32) -> usize {
    let max_offset = (1u32 << order) - 3;
    let mut slots = 30;
    while max_offset >= SLOT_BASE[slots] {
        slots += 1;
    }
    NUM_CHARS + slots * 8
}

/// MSB-first reader over 16-bit little-endian words.
///
/// `buf` holds `avail` valid bits left-justified; bits below them are either zero or the
/// genuine following stream bits, so OR-ing in a refill is harmless even where it overlaps.
/// Past the end of the input it supplies zero words; `overrun` says afterwards whether any of
/// those were actually consumed.
#[derive(Clone, Copy)]
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u64,
    avail: u32,
    /// Bit position where the made-up zero words begin (`usize::MAX` until one is made up).
    /// A lone odd final byte counts as missing, as a word needs both of its bytes.
    virtual_from: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            buf: 0,
            avail: 0,
            virtual_from: usize::MAX,
        }
    }

    /// Guarantees at least 49 bits, enough for a main symbol, a length symbol and 17 offset
    /// bits without another check.
    #[inline(always)]
    fn refill(&mut self) {
        if let Some(bytes) = self.data.get(self.pos..self.pos + 8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(bytes);
            let be = u64::from_be_bytes(b);
            // Swapping the bytes of each 16-bit lane turns four LE words into one MSB-first
            // 64-bit run.
            let v = ((be & 0x00ff_00ff_00ff_00ff) << 8) | ((be >> 8) & 0x00ff_00ff_00ff_00ff);
            // Unconditional: when the buffer is already full enough this adds no words and
            // only ORs in bits that are already there, which is cheaper than a hard-to-predict
            // branch. A full buffer (64 bits) must not take the shifted-out value.
            let fill = if self.avail < 64 { v >> self.avail } else { 0 };
            self.buf |= fill;
            let words = (64 - self.avail) / 16;
            self.pos += 2 * words as usize;
            self.avail += 16 * words;
        } else if self.avail <= 48 {
            *self = self.refill_tail();
        }
    }

    // By value rather than `&mut self`: handing the cold path a pointer would pin the whole
    // reader to memory in the hot loop instead of registers.
    #[cold]
    #[inline(never)]
    fn refill_tail(mut self) -> Self {
        while self.avail <= 48 {
            if let Some(w) = self.data.get(self.pos..self.pos + 2) {
                self.buf |= u64::from(u16::from_le_bytes([w[0], w[1]])) << (48 - self.avail);
            } else {
                self.virtual_from = self.virtual_from.min(self.pos * 8);
            }
            self.pos += 2;
            self.avail += 16;
        }
        self
    }

    /// The next `n` bits (n <= 32) without consuming them.
    #[inline(always)]
    fn peek(&self, n: u32) -> u32 {
        // Two shifts so that n == 0 yields 0 instead of an out-of-range shift.
        ((self.buf >> 1) >> (63 - n)) as u32
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.buf <<= n;
        self.avail -= n;
    }

    #[inline(always)]
    fn bits(&mut self, n: u32) -> u32 {
        let v = self.peek(n);
        self.consume(n);
        v
    }

    /// Stream position in bits.
    fn bit_pos(&self) -> usize {
        self.pos * 8 - self.avail as usize
    }

    fn overrun(&self) -> bool {
        self.bit_pos() > self.virtual_from
    }

    /// Skips to the next 16-bit boundary and returns that byte position. A stream that is
    /// already on a boundary still skips a whole word; that is how the format is defined.
    fn align_skip(&mut self) -> usize {
        let byte = (self.bit_pos() / 16 + 1) * 2;
        self.reset_at(byte);
        byte
    }

    fn reset_at(&mut self, byte: usize) {
        self.pos = byte;
        self.buf = 0;
        self.avail = 0;
        self.virtual_from = usize::MAX;
    }
}

/// A canonical Huffman decoding table: a root table indexed by the next `BITS` input bits,
/// followed by subtables for longer codewords.
///
/// Entry layout: symbol (or subtable start) in bits 8.., `SUBTABLE` flag, and in the low five
/// bits the number of bits to consume (or the subtable's index width).
struct HuffTable<const BITS: u32, const SIZE: usize> {
    entries: [u32; SIZE],
}

const SUBTABLE: u32 = 0x80;

impl<const BITS: u32, const SIZE: usize> HuffTable<BITS, SIZE> {
    fn new() -> Self {
        Self { entries: [0; SIZE] }
    }

    /// Builds the table from codeword lengths. Only complete codes are accepted, plus the
    /// empty code (all lengths zero), which decodes as symbol 0 using no bits; valid streams
    /// never read from an empty code, and this keeps invalid ones well-defined.
    fn build(&mut self, lens: &[u8], max_len: u32) -> bool {
        debug_assert!(lens.len() <= MAX_MAIN_SYMS);
        let mut count = [0u16; 17];
        for &l in lens {
            if u32::from(l) > max_len {
                return false;
            }
            count[l as usize] += 1;
        }
        let mut left: i32 = 1;
        for &c in &count[1..=max_len as usize] {
            left = (left << 1) - i32::from(c);
            if left < 0 {
                return false;
            }
        }
        let root = 1usize << BITS;
        if left != 0 {
            if left != 1 << max_len {
                return false;
            }
            self.entries[..root].fill(0);
            return true;
        }

        let mut first = [0u16; 18];
        for l in 1..=max_len as usize {
            first[l + 1] = first[l] + count[l];
        }
        let mut sorted = [0u16; MAX_MAIN_SYMS];
        for (sym, &l) in lens.iter().enumerate() {
            if l != 0 {
                sorted[first[l as usize] as usize] = sym as u16;
                first[l as usize] += 1;
            }
        }
        let used = lens.len() - count[0] as usize;
        let sorted = &sorted[..used];

        // First pass over the codewords longer than the root: the deepest codeword under each
        // root prefix fixes that prefix's subtable width. Canonical order makes the last
        // codeword seen for a prefix the longest.
        let mut sub_len = [0u8; 1 << MAIN_TABLE_BITS];
        let mut code: u32 = 0;
        let mut idx = 0;
        for len in 1..=max_len {
            let n = count[len as usize] as usize;
            if len > BITS {
                for _ in 0..n {
                    sub_len[(code >> (len - BITS)) as usize] = len as u8;
                    code += 1;
                }
            } else {
                code += n as u32;
            }
            idx += n;
            code <<= 1;
        }
        debug_assert_eq!(idx, used);

        let mut code: u32 = 0;
        let mut idx = 0;
        let mut next_sub = root;
        let mut cur_prefix = u32::MAX;
        let mut cur_start = 0usize;
        let mut cur_bits = 0u32;
        for len in 1..=max_len {
            for _ in 0..count[len as usize] {
                let sym = u32::from(sorted[idx]);
                idx += 1;
                if len <= BITS {
                    let shift = BITS - len;
                    let start = (code << shift) as usize;
                    self.entries[start..start + (1 << shift)].fill((sym << 8) | len);
                } else {
                    let prefix = code >> (len - BITS);
                    if prefix != cur_prefix {
                        cur_prefix = prefix;
                        cur_bits = u32::from(sub_len[prefix as usize]) - BITS;
                        cur_start = next_sub;
                        next_sub += 1 << cur_bits;
                        if next_sub > SIZE {
                            return false;
                        }
                        self.entries[prefix as usize] =
                            ((cur_start as u32) << 8) | SUBTABLE | cur_bits;
                    }
                    let extra = len - BITS;
                    let low = code & ((1 << extra) - 1);
                    let shift = cur_bits - extra;
                    let start = cur_start + ((low << shift) as usize);
                    self.entries[start..start + (1 << shift)].fill((sym << 8) | extra);
                }
                code += 1;
            }
            code <<= 1;
        }
        true
    }

    /// Decodes one symbol; the caller guarantees at least `max_len` buffered bits.
    #[inline(always)]
    fn decode(&self, br: &mut BitReader) -> usize {
        let mut e = self.entries[br.peek(BITS) as usize];
        if e & SUBTABLE != 0 {
            br.consume(BITS);
            let i = (e >> 8) as usize + br.peek(e & 0x1f) as usize;
            // Subtable indices are bounded by construction; the fallback only guards against
            // a logic error turning into a panic.
            e = self.entries.get(i).copied().unwrap_or(0);
        }
        br.consume(e & 0x1f);
        (e >> 8) as usize
    }
}

struct State {
    main: HuffTable<MAIN_TABLE_BITS, MAIN_TABLE_SIZE>,
    len: HuffTable<LEN_TABLE_BITS, LEN_TABLE_SIZE>,
    pre: HuffTable<PRE_TABLE_BITS, PRE_TABLE_SIZE>,
    aligned: HuffTable<ALIGNED_TABLE_BITS, ALIGNED_TABLE_SIZE>,
    main_lens: [u8; MAX_MAIN_SYMS + LENS_SLACK],
    len_lens: [u8; NUM_LEN_SYMS + LENS_SLACK],
}

/// Reusable LZX chunk decoder. Holds all decoding tables so that decoding a chunk allocates
/// nothing.
pub struct LzxDecoder {
    st: Box<State>,
    window_order: u32,
    num_main_syms: usize,
    max_output: usize,
}

impl LzxDecoder {
    /// Makes a decoder for chunks of up to `chunk_size` bytes. WIM writers use powers of two
    /// from 32 KiB to 2 MiB; any size from 1 byte to 2 MiB is accepted, with the window being
    /// the size rounded up to a power of two and at least 32 KiB.
    pub fn new(chunk_size: u32) -> Result<Self, CodecError> {
        if chunk_size == 0 || chunk_size > 1 << MAX_WINDOW_ORDER {
            return Err(CodecError::Unsupported {
                codec: "lzx",
                what: "chunk size",
            });
        }
        let window_order = chunk_size
            .next_power_of_two()
            .trailing_zeros()
            .max(MIN_WINDOW_ORDER);
        Ok(Self {
            st: Box::new(State {
                main: HuffTable::new(),
                len: HuffTable::new(),
                pre: HuffTable::new(),
                aligned: HuffTable::new(),
                main_lens: [0; MAX_MAIN_SYMS + LENS_SLACK],
                len_lens: [0; NUM_LEN_SYMS + LENS_SLACK],
            }),
            window_order,
            num_main_syms: num_main_syms(window_order),
            max_output: chunk_size as usize,
        })
    }
}

impl Decompressor for LzxDecoder {
    fn decompress(&mut self, input: &[u8], output: &mut [u8]) -> Result<(), CodecError> {
        if output.len() > self.max_output {
            return Err(CodecError::Unsupported {
                codec: "lzx",
                what: "output exceeds chunk size",
            });
        }
        let st = &mut *self.st;
        st.main_lens[..self.num_main_syms].fill(0);
        st.len_lens[..NUM_LEN_SYMS].fill(0);
        let mut recent = [1u32; NUM_RECENT];
        let mut br = BitReader::new(input);
        let mut pos = 0;
        // An E8 byte can only enter the output as a literal or through an uncompressed block;
        // when neither can have happened, the translation pass is skipped.
        let mut may_have_e8 = false;

        while pos < output.len() {
            br.refill();
            let block_type = br.bits(3);
            let block_size = if br.bits(1) == 1 {
                DEFAULT_BLOCK_SIZE
            } else {
                let mut size = br.bits(16);
                if self.window_order >= 16 {
                    size = (size << 8) | br.bits(8);
                }
                size as usize
            };
            if block_size == 0 || block_size > output.len() - pos {
                return Err(corrupt("bad block size"));
            }
            let end = pos + block_size;
            match block_type {
                1 | 2 => {
                    let aligned = block_type == 2;
                    if aligned {
                        let mut lens = [0u8; NUM_ALIGNED_SYMS];
                        br.refill();
                        for l in &mut lens {
                            *l = br.bits(3) as u8;
                        }
                        if !st.aligned.build(&lens, MAX_ALIGNED_LEN) {
                            return Err(corrupt("bad aligned offset code"));
                        }
                    }
                    read_lens(&mut st.pre, &mut br, &mut st.main_lens, 0, NUM_CHARS)?;
                    read_lens(
                        &mut st.pre,
                        &mut br,
                        &mut st.main_lens,
                        NUM_CHARS,
                        self.num_main_syms,
                    )?;
                    read_lens(&mut st.pre, &mut br, &mut st.len_lens, 0, NUM_LEN_SYMS)?;
                    if !st
                        .main
                        .build(&st.main_lens[..self.num_main_syms], MAX_MAIN_LEN)
                    {
                        return Err(corrupt("bad main code"));
                    }
                    if !st.len.build(&st.len_lens[..NUM_LEN_SYMS], MAX_LEN_LEN) {
                        return Err(corrupt("bad length code"));
                    }
                    if aligned {
                        decode_block::<true>(st, &mut br, output, pos, end, &mut recent)?;
                    } else {
                        decode_block::<false>(st, &mut br, output, pos, end, &mut recent)?;
                    }
                    may_have_e8 |= st.main_lens[0xE8] != 0;
                }
                3 => {
                    let mut at = br.align_skip();
                    for r in &mut recent {
                        let b = input
                            .get(at..at + 4)
                            .ok_or(corrupt("truncated block header"))?;
                        *r = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                        if *r == 0 {
                            return Err(corrupt("zero recent offset"));
                        }
                        at += 4;
                    }
                    let src = input
                        .get(at..at + block_size)
                        .ok_or(corrupt("truncated block"))?;
                    output[pos..end].copy_from_slice(src);
                    // Blocks keep 16-bit alignment; a missing pad byte at the very end of the
                    // input is tolerated.
                    br.reset_at(at + block_size + (block_size & 1));
                    may_have_e8 = true;
                }
                _ => return Err(corrupt("bad block type")),
            }
            if br.overrun() {
                return Err(corrupt("truncated input"));
            }
            pos = end;
        }
        if may_have_e8 {
            undo_e8(output);
        }
        Ok(())
    }
}

/// Reads a precode, then uses it to update `lens[start..end]` (delta-coded against the
/// previous values). `lens` must extend `LENS_SLACK` beyond `end`.
fn read_lens(
    pre: &mut HuffTable<PRE_TABLE_BITS, PRE_TABLE_SIZE>,
    br: &mut BitReader,
    lens: &mut [u8],
    start: usize,
    end: usize,
) -> Result<(), CodecError> {
    let mut pre_lens = [0u8; NUM_PRE_SYMS];
    for l in &mut pre_lens {
        br.refill();
        *l = br.bits(4) as u8;
    }
    if !pre.build(&pre_lens, MAX_PRE_LEN) {
        return Err(corrupt("bad precode"));
    }
    let mut i = start;
    while i < end {
        br.refill();
        let sym = pre.decode(br);
        let (run, value) = match sym {
            0..=16 => {
                let old = lens[i];
                lens[i] = (old + 17 - sym as u8) % 17;
                i += 1;
                continue;
            }
            17 => (4 + br.bits(4) as usize, 0),
            18 => (20 + br.bits(5) as usize, 0),
            19 => {
                let run = 4 + br.bits(1) as usize;
                let delta = pre.decode(br);
                if delta > 17 {
                    return Err(corrupt("bad code length run"));
                }
                (run, (lens[i] + 17 - delta as u8) % 17)
            }
            _ => return Err(corrupt("bad precode symbol")),
        };
        lens.get_mut(i..i + run)
            .ok_or(corrupt("code length overrun"))?
            .fill(value);
        i += run;
    }
    Ok(())
}

fn decode_block<const ALIGNED: bool>(
    st: &State,
    reader: &mut BitReader,
    out: &mut [u8],
    mut pos: usize,
    end: usize,
    recent: &mut [u32; NUM_RECENT],
) -> Result<(), CodecError> {
    // Working on local copies lets the compiler keep the bit buffer and the recent offsets in
    // registers instead of going through memory on every symbol.
    let mut br = *reader;
    let mut r = *recent;
    // Cutting the output at the block end makes `pos < out.len()` the only bound the loop
    // needs, so the literal stores carry no separate check.
    let out = &mut out[..end];
    let res = loop {
        if pos >= out.len() {
            break Ok(());
        }
        br.refill();
        let mut sym = st.main.decode(&mut br);
        if sym < NUM_CHARS {
            out[pos] = sym as u8;
            pos += 1;
            // One refill covers two main symbols; only a match after that needs more.
            if pos >= out.len() {
                break Ok(());
            }
            sym = st.main.decode(&mut br);
            if sym < NUM_CHARS {
                out[pos] = sym as u8;
                pos += 1;
                continue;
            }
            br.refill();
        }
        let header = sym - NUM_CHARS;
        let slot = (header >> 3) & 63;
        let mut len = header & 7;
        if len == NUM_PRIMARY_LENS {
            len += st.len.decode(&mut br);
        }
        len += MIN_MATCH;
        let offset;
        if slot < NUM_RECENT {
            offset = r[slot];
            r[slot] = r[0];
        } else {
            let extra = EXTRA_BITS[slot];
            let v = if ALIGNED && slot >= MIN_ALIGNED_SLOT {
                // The aligned case can need 16 + 16 + 14 + 7 bits, beyond one refill's worth.
                br.refill();
                let high = br.bits(extra - 3);
                (high << 3) | st.aligned.decode(&mut br) as u32
            } else {
                br.bits(extra)
            };
            offset = SLOT_BASE[slot].wrapping_add(v);
            r[2] = r[1];
            r[1] = r[0];
        }
        r[0] = offset;
        let offset = offset as usize;
        if offset > pos || len > out.len() - pos {
            break Err(corrupt("match out of range"));
        }
        copy_match(out, pos, offset, len);
        pos += len;
    };
    *recent = r;
    *reader = br;
    res
}

/// Copies `len` bytes from `offset` back. Both ranges are known to be in bounds.
#[inline(always)]
fn copy_match(out: &mut [u8], pos: usize, offset: usize, len: usize) {
    let src = pos - offset;
    // `offset <= pos` is the caller's job too; repeating it here keeps the unsafe copy sound
    // on its own, and the branch is perfectly predicted.
    if offset >= 8 && offset <= pos && pos + len + 8 <= out.len() {
        // Whole words, possibly past the match end (the excess is overwritten later). Each
        // word's source lies entirely before its destination, so overlap is harmless.
        let base = out.as_mut_ptr();
        let mut d = pos;
        let stop = pos + len;
        loop {
            // SAFETY: on entry to each step `d < stop` and `stop + 8 <= out.len()` (tested
            // above), so the write `d..d + 8` is inside `out`; `offset <= pos <= d` (also
            // tested above), so the read `d - offset..d - offset + 8` is too. Both
            // accesses are explicitly unaligned. (Measured ~4% faster than slice copies.)
            unsafe {
                let w = base.add(d - offset).cast::<u64>().read_unaligned();
                base.add(d).cast::<u64>().write_unaligned(w);
            }
            d += 8;
            if d >= stop {
                break;
            }
        }
    } else if offset == 1 {
        let b = out[pos - 1];
        out[pos..pos + len].fill(b);
    } else {
        for i in 0..len {
            out[pos + i] = out[src + i];
        }
    }
}

/// Reverts E8 preprocessing: every 0xE8 byte starting before the last 10 bytes is taken as a
/// CALL whose 32-bit operand was made absolute, and the operand is made relative again. The
/// operand bytes themselves are never examined as opcodes.
fn undo_e8(data: &mut [u8]) {
    if data.len() <= E8_TAIL {
        return;
    }
    let limit = data.len() - E8_TAIL;
    let mut i = 0;
    while let Some(k) = find_e8(&data[i..limit]) {
        i += k;
        let b = &mut data[i + 1..i + 5];
        let abs = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let pos = i as i32;
        let rel = if abs >= 0 {
            (abs < E8_FILE_SIZE).then(|| abs - pos)
        } else {
            (abs >= -pos).then(|| abs + E8_FILE_SIZE)
        };
        if let Some(rel) = rel {
            b.copy_from_slice(&rel.to_le_bytes());
        }
        i += 5;
        if i >= limit {
            break;
        }
    }
}

/// Position of the first 0xE8 byte. Scans 32-byte blocks with a branch-free comparison
/// (which the compiler vectorises) and only looks at single bytes once a block has a hit.
#[inline]
fn find_e8(s: &[u8]) -> Option<usize> {
    let mut chunks = s.chunks_exact(32);
    let mut base = 0;
    for c in &mut chunks {
        let hit = c.iter().fold(false, |acc, &b| acc | (b == 0xE8));
        if hit {
            return c.iter().position(|&b| b == 0xE8).map(|k| base + k);
        }
        base += 32;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == 0xE8)
        .map(|k| base + k)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test-side writer of the LZX bit order: MSB-first into 16-bit little-endian words.
    #[derive(Default)]
    struct BitWriter {
        out: Vec<u8>,
        acc: u32,
        n: u32,
    }

    impl BitWriter {
        fn put(&mut self, v: u32, bits: u32) {
            for i in (0..bits).rev() {
                self.acc = (self.acc << 1) | ((v >> i) & 1);
                self.n += 1;
                if self.n == 16 {
                    self.out.extend_from_slice(&(self.acc as u16).to_le_bytes());
                    self.acc = 0;
                    self.n = 0;
                }
            }
        }

        /// The uncompressed-block alignment: pad to a word boundary, or a whole word if
        /// already on one.
        fn align(&mut self) {
            let pad = 16 - self.n;
            self.put(0, pad);
        }

        fn flush(&mut self) -> Vec<u8> {
            if self.n > 0 {
                self.put(0, 16 - self.n);
            }
            std::mem::take(&mut self.out)
        }
    }

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

    fn block_header(w: &mut BitWriter, kind: u32, size: usize, window_order: u32) {
        w.put(kind, 3);
        if size == DEFAULT_BLOCK_SIZE {
            w.put(1, 1);
        } else {
            w.put(0, 1);
            if window_order >= 16 {
                w.put((size >> 8) as u32, 16);
                w.put((size & 0xff) as u32, 8);
            } else {
                w.put(size as u32, 16);
            }
        }
    }

    fn uncompressed_block(w: &mut BitWriter, data: &[u8], recent: [u32; 3], order: u32) {
        block_header(w, 3, data.len(), order);
        w.align();
        for r in recent {
            w.put(r & 0xffff, 16);
            w.put(r >> 16, 16);
        }
        let mut out = w.flush();
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(0);
        }
        w.out = out;
    }

    fn decode(chunk: u32, input: &[u8], len: usize) -> Result<Vec<u8>, CodecError> {
        let mut d = LzxDecoder::new(chunk)?;
        let mut out = vec![0u8; len];
        d.decompress(input, &mut out)?;
        Ok(out)
    }

    /// Forward E8 translation, the inverse of `undo_e8`, as a compressor would apply it.
    fn apply_e8(data: &mut [u8]) {
        if data.len() <= E8_TAIL {
            return;
        }
        let mut i = 0;
        while i < data.len() - E8_TAIL {
            if data[i] != 0xE8 {
                i += 1;
                continue;
            }
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
        }
    }

    #[test]
    fn uncompressed_blocks_by_hand() {
        let a: Vec<u8> = (0..1001u32).map(|i| (i * 7 % 251) as u8).collect();
        let b: Vec<u8> = b"plain text in a second block".to_vec();
        for (chunk, order) in [(32_768u32, 15), (65_536, 16), (2 << 20, 21)] {
            let mut w = BitWriter::default();
            uncompressed_block(&mut w, &a, [1, 2, 3], order);
            uncompressed_block(&mut w, &b, [4, 5, 6], order);
            let stream = w.flush();
            let want: Vec<u8> = a.iter().chain(&b).copied().collect();
            assert_eq!(decode(chunk, &stream, want.len()).unwrap(), want);
        }
    }

    #[test]
    fn uncompressed_block_gets_e8_undone() {
        let mut data = vec![0x90u8; 64];
        data[20] = 0xE8;
        data[21..25].copy_from_slice(&100i32.to_le_bytes());
        let mut w = BitWriter::default();
        uncompressed_block(&mut w, &data, [1, 1, 1], 15);
        let out = decode(32_768, &w.flush(), data.len()).unwrap();
        assert_eq!(out[21..25], 80i32.to_le_bytes());
    }

    #[test]
    fn default_block_size_flag() {
        let data: Vec<u8> = (0..DEFAULT_BLOCK_SIZE).map(|i| (i % 13) as u8).collect();
        let mut w = BitWriter::default();
        uncompressed_block(&mut w, &data, [1, 1, 1], 15);
        assert_eq!(decode(32_768, &w.flush(), data.len()).unwrap(), data);
    }

    enum Token {
        Lit(u8),
        Match { len: usize, offset: usize },
    }

    /// Precode used by `write_lens`: symbols 0-11 get 4-bit codes, 12-19 get 5-bit codes.
    fn put_presym(w: &mut BitWriter, sym: u32) {
        if sym < 12 {
            w.put(sym, 4);
        } else {
            w.put(24 + sym - 12, 5);
        }
    }

    fn write_precode(w: &mut BitWriter) {
        for s in 0..20 {
            w.put(if s < 12 { 4 } else { 5 }, 4);
        }
    }

    /// Writes `new` as deltas against `old`, using runs where they apply.
    fn write_lens(w: &mut BitWriter, old: &[u8], new: &[u8]) {
        write_precode(w);
        let mut i = 0;
        while i < new.len() {
            let zeros = new[i..].iter().take_while(|&&l| l == 0).count();
            let same = new[i..].iter().take_while(|&&l| l == new[i]).count();
            if zeros >= 20 {
                let run = zeros.min(51);
                put_presym(w, 18);
                w.put((run - 20) as u32, 5);
                i += run;
            } else if zeros >= 4 {
                let run = zeros.min(19);
                put_presym(w, 17);
                w.put((run - 4) as u32, 4);
                i += run;
            } else if same >= 5 && new[i] != 0 {
                put_presym(w, 19);
                w.put(1, 1);
                put_presym(w, ((17 + old[i] - new[i]) % 17) as u32);
                i += 5;
            } else {
                put_presym(w, ((17 + old[i] - new[i]) % 17) as u32);
                i += 1;
            }
        }
    }

    /// Canonical codewords from lengths.
    fn codes(lens: &[u8]) -> Vec<u32> {
        let mut out = vec![0; lens.len()];
        let mut code = 0;
        for len in 1..=16 {
            for (s, &l) in lens.iter().enumerate() {
                if l == len {
                    out[s] = code;
                    code += 1;
                }
            }
            code <<= 1;
        }
        out
    }

    /// Encodes `tokens` as one verbatim or aligned block with fixed, complete codes.
    fn compressed_block(
        w: &mut BitWriter,
        tokens: &[Token],
        size: usize,
        aligned: bool,
        prev: &mut ([u8; 496], [u8; 249]),
        recent: &mut [u32; 3],
    ) {
        // Main code over 496 symbols (32 KiB window): 16 of 8 bits, the rest 9 bits.
        let mut main = [9u8; 496];
        main[..16].fill(8);
        // Length code: two 1-bit codewords (match lengths 9 and 10).
        let mut lenc = [0u8; 249];
        lenc[..2].fill(1);
        let (mc, lc) = (codes(&main), codes(&lenc));
        block_header(w, if aligned { 2 } else { 1 }, size, 15);
        if aligned {
            for _ in 0..8 {
                w.put(3, 3);
            }
        }
        write_lens(w, &prev.0[..256], &main[..256]);
        write_lens(w, &prev.0[256..], &main[256..]);
        write_lens(w, &prev.1, &lenc);
        *prev = (main, lenc);
        for t in tokens {
            match *t {
                Token::Lit(b) => w.put(mc[b as usize], u32::from(main[b as usize])),
                Token::Match { len, offset } => {
                    let off = offset as u32;
                    let (slot, extra) = match recent.iter().position(|&r| r == off) {
                        Some(k) => {
                            recent[k] = recent[0];
                            recent[0] = off;
                            (k, 0)
                        }
                        None => {
                            let slot = (3..MAX_SLOTS).rfind(|&s| SLOT_BASE[s] <= off).unwrap();
                            recent[2] = recent[1];
                            recent[1] = recent[0];
                            recent[0] = off;
                            (slot, off - SLOT_BASE[slot])
                        }
                    };
                    let header = (len - MIN_MATCH).min(7);
                    let sym = NUM_CHARS + slot * 8 + header;
                    w.put(mc[sym], u32::from(main[sym]));
                    if header == 7 {
                        w.put(lc[len - 9], 1);
                    }
                    if slot >= NUM_RECENT {
                        let bits = EXTRA_BITS[slot];
                        if aligned && slot >= MIN_ALIGNED_SLOT {
                            w.put(extra >> 3, bits - 3);
                            w.put(extra & 7, 3);
                        } else {
                            w.put(extra, bits);
                        }
                    }
                }
            }
        }
    }

    fn random_tokens(rng: &mut Rng, start: usize, size: usize) -> Vec<Token> {
        let mut toks = Vec::new();
        let mut pos = start;
        let mut recent_pick = [1usize; 4];
        while pos < start + size {
            let room = start + size - pos;
            if pos < 4 || room < 2 || rng.below(3) == 0 {
                // No literal 0xE8, so E8 translation leaves the output alone.
                let b = rng.below(255) as u8;
                toks.push(Token::Lit(if b == 0xE8 { 0xFF } else { b }));
                pos += 1;
                continue;
            }
            let len = (2 + rng.below(9)).min(room);
            let offset = if rng.below(4) == 0 {
                recent_pick[rng.below(4)].min(pos)
            } else {
                1 + rng.below(pos)
            };
            recent_pick[rng.below(4)] = offset;
            toks.push(Token::Match { len, offset });
            pos += len;
        }
        toks
    }

    fn expand(tokens: &[Token], out: &mut Vec<u8>) {
        for t in tokens {
            match *t {
                Token::Lit(b) => out.push(b),
                Token::Match { len, offset } => {
                    for _ in 0..len {
                        out.push(out[out.len() - offset]);
                    }
                }
            }
        }
    }

    /// A verbatim block, an aligned block (lengths delta-coded against the first) and an
    /// uncompressed block, plus the expected output.
    fn mixed_stream(seed: u64) -> (Vec<u8>, Vec<u8>) {
        let mut rng = Rng(seed);
        let mut w = BitWriter::default();
        let mut prev = ([0u8; 496], [0u8; 249]);
        let mut recent = [1u32; 3];
        let mut want = Vec::new();
        let sizes = [3000 + rng.below(2000), 9000 + rng.below(9000)];
        for (i, &size) in sizes.iter().enumerate() {
            let toks = random_tokens(&mut rng, want.len(), size);
            compressed_block(&mut w, &toks, size, i == 1, &mut prev, &mut recent);
            expand(&toks, &mut want);
        }
        let raw: Vec<u8> = (0..600).map(|_| rng.below(200) as u8).collect();
        uncompressed_block(&mut w, &raw, [7, 8, 9], 15);
        want.extend_from_slice(&raw);
        (w.flush(), want)
    }

    #[test]
    fn verbatim_aligned_and_uncompressed_blocks() {
        for seed in 1..20 {
            let (stream, want) = mixed_stream(seed);
            let got = decode(32_768, &stream, want.len()).unwrap();
            assert!(got == want, "seed {seed}");
        }
    }

    #[test]
    fn decoder_is_reusable() {
        let mut d = LzxDecoder::new(32_768).unwrap();
        for seed in [3, 4, 3] {
            let (stream, want) = mixed_stream(seed);
            let mut out = vec![0u8; want.len()];
            d.decompress(&stream, &mut out).unwrap();
            assert_eq!(out, want);
            // A failed chunk must not poison the next one.
            assert!(d.decompress(&stream[..stream.len() / 2], &mut out).is_err());
        }
    }

    #[test]
    fn truncations_fail() {
        let (stream, want) = mixed_stream(99);
        let mut d = LzxDecoder::new(32_768).unwrap();
        let mut out = vec![0u8; want.len()];
        for cut in 0..stream.len() {
            assert!(d.decompress(&stream[..cut], &mut out).is_err(), "cut {cut}");
        }
        d.decompress(&stream, &mut out).unwrap();
        assert_eq!(out, want);
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (valid, want) = mixed_stream(5);
        let mut decoders: Vec<LzxDecoder> = [32_768, 65_536, 1 << 21]
            .iter()
            .map(|&c| LzxDecoder::new(c).unwrap())
            .collect();
        let mut out = vec![0u8; 1 << 16];
        for round in 0..6000 {
            let input: Vec<u8> = if round % 2 == 0 {
                let n = rng.below(3000);
                (0..n).map(|_| rng.next() as u8).collect()
            } else {
                let mut v = valid.clone();
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(v.len());
                    v[i] ^= 1 << rng.below(8);
                }
                v
            };
            let d = &mut decoders[round % 3];
            let len = if round % 2 == 1 {
                want.len()
            } else {
                rng.below(out.len())
            };
            let _ = d.decompress(&input, &mut out[..len]);
        }
    }

    #[test]
    fn bad_parameters() {
        assert!(LzxDecoder::new(0).is_err());
        assert!(LzxDecoder::new((1 << 21) + 1).is_err());
        assert_eq!(LzxDecoder::new(1000).unwrap().window_order, 15);
        assert_eq!(
            LzxDecoder::new(1 << 17).unwrap().num_main_syms,
            256 + 34 * 8
        );
        assert_eq!(
            LzxDecoder::new(1 << 21).unwrap().num_main_syms,
            256 + 50 * 8
        );
        assert_eq!(num_main_syms(15), 256 + 30 * 8);
        let mut d = LzxDecoder::new(32_768).unwrap();
        assert!(d.decompress(&[], &mut []).is_ok());
        assert!(d.decompress(&[0; 64], &mut [0; 32_769]).is_err());
        assert!(d.decompress(&[], &mut [0; 10]).is_err());
    }

    #[test]
    fn slot_tables() {
        assert_eq!(SLOT_BASE[3], 1);
        assert_eq!(SLOT_BASE[4], 2);
        assert_eq!(SLOT_BASE[30], 32_766);
        assert_eq!(SLOT_BASE[50], 2_097_150);
        assert_eq!(EXTRA_BITS[35], 16);
        assert_eq!(EXTRA_BITS[49], 17);
    }

    #[test]
    fn e8_round_trip() {
        let mut rng = Rng(12345);
        for round in 0..3000 {
            let n = if round < 200 {
                round % 40
            } else {
                rng.below(5000)
            };
            // Dense E8 bytes and operands near the translation boundaries.
            let mut data: Vec<u8> = (0..n)
                .map(|_| {
                    if rng.below(4) == 0 {
                        0xE8
                    } else {
                        rng.next() as u8
                    }
                })
                .collect();
            let mut i = 0;
            while i + 5 <= n {
                if data[i] == 0xE8 && rng.below(2) == 0 {
                    let v = match rng.below(4) {
                        0 => rng.below(n + 10) as i32 - 5,
                        1 => E8_FILE_SIZE - rng.below(n + 10) as i32,
                        2 => -(rng.below(n + 10) as i32),
                        _ => rng.next() as i32,
                    };
                    data[i + 1..i + 5].copy_from_slice(&v.to_le_bytes());
                }
                i += 1;
            }
            let mut t = data.clone();
            apply_e8(&mut t);
            undo_e8(&mut t);
            assert_eq!(t, data, "round {round}");
            let mut t = data.clone();
            undo_e8(&mut t);
            apply_e8(&mut t);
            assert_eq!(t, data, "inverse, round {round}");
        }
    }

    #[test]
    fn e8_examples() {
        let mut d = vec![0u8; 32];
        d[5] = 0xE8;
        d[6..10].copy_from_slice(&20i32.to_le_bytes());
        undo_e8(&mut d);
        assert_eq!(d[6..10], 15i32.to_le_bytes());
        // Compensating translation: negative absolute target within reach.
        let mut d = vec![0u8; 32];
        d[5] = 0xE8;
        d[6..10].copy_from_slice(&(-3i32).to_le_bytes());
        undo_e8(&mut d);
        assert_eq!(d[6..10], (E8_FILE_SIZE - 3).to_le_bytes());
        // Nothing starting in the last 10 bytes is touched.
        let mut d = vec![0u8; 32];
        d[22] = 0xE8;
        d[23..27].copy_from_slice(&30i32.to_le_bytes());
        let before = d.clone();
        undo_e8(&mut d);
        assert_eq!(d, before);
        d[21] = 0xE8;
        undo_e8(&mut d);
        assert_ne!(d, before);
        // Chunks of 10 bytes or fewer are left alone entirely.
        let mut d = [0xE8, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        undo_e8(&mut d);
        assert_eq!(d, [0xE8, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
}
