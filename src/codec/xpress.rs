//! XPRESS decompression, Huffman variant ([MS-XCA] section 2.2.4), as used for WIM chunks.
//!
//! WIM compresses every chunk independently as one block: 256 bytes packing 512 four-bit
//! codeword lengths, then a bitstream of 16-bit little-endian words read most significant bit
//! first. Symbols 0..=255 are literals; 256..=511 are matches whose low nibble is a length
//! header and whose high nibble is the number of raw offset bits that follow the codeword.
//! Long match lengths spill into whole bytes that are *not* bit-packed: they sit in the byte
//! stream wherever the reference decoder's read cursor happens to be, which is why the bit
//! reader below has to be able to hand back words it fetched early (see
//! [`BitReader::rewind_to_cursor`]).

use super::{CodecError, Decompressor};

const NUM_SYMBOLS: usize = 512;
const NUM_LITERALS: u32 = 256;
const MAX_CODEWORD_LEN: u32 = 15;
const LENGTHS_BYTES: usize = NUM_SYMBOLS / 2;
const MIN_MATCH_LEN: usize = 3;
const MAX_CHUNK_SIZE: u32 = 1 << 26;

/// Root table index width. 11 bits resolves nearly every codeword of real data in one lookup
/// while keeping the per-chunk table rebuild (2048 entries) cheap next to a 4 KiB chunk.
const ROOT_BITS: u32 = 11;
const ROOT_SIZE: usize = 1 << ROOT_BITS;
/// Root plus subtables. A complete code over 512 symbols with 15-bit codewords needs at most
/// 2566 entries for an 11-bit root (zlib's `enough 512 11 15`); rounding up to a power of two
/// lets every lookup be masked into range instead of bounds-checked.
const TABLE_SIZE: usize = 4096;

/// Decode table entries are `symbol << 16 | bits`, where `bits` is what the lookup consumes.
/// Keeping `bits` alone in the low byte lets the shift use the entry directly (x86 masks the
/// count anyway), which shortens the load-to-next-load dependency chain that bounds decoding
/// speed. Root entries for codewords longer than `ROOT_BITS` instead carry this flag, the
/// subtable's start in bits 16..28, and `64 - subtable index width` in bits 8..16.
const SUBTABLE_FLAG: u32 = 1 << 31;

fn corrupt(what: &'static str) -> CodecError {
    CodecError::Corrupt {
        codec: "xpress",
        what,
    }
}

/// Reusable XPRESS chunk decoder; owns its Huffman decode table so decoding a chunk allocates
/// nothing.
pub struct XpressDecoder {
    table: [u32; TABLE_SIZE],
}

impl XpressDecoder {
    /// Makes a decoder for chunks of up to `chunk_size` bytes.
    pub fn new(chunk_size: u32) -> Result<Self, CodecError> {
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(CodecError::Unsupported {
                codec: "xpress",
                what: "chunk size",
            });
        }
        Ok(Self {
            table: [0; TABLE_SIZE],
        })
    }

    /// Builds the decode table for the canonical code given by the 4-bit lengths in `packed`.
    fn build_table(&mut self, packed: &[u8; LENGTHS_BYTES]) -> Result<(), CodecError> {
        // Four partial histograms, so that runs of equal lengths do not serialise on one
        // counter's store-to-load round trip.
        let mut partial = [[0u16; 16]; 4];
        for pair in packed.chunks_exact(2) {
            partial[0][usize::from(pair[0] & 0xF)] += 1;
            partial[1][usize::from(pair[0] >> 4)] += 1;
            partial[2][usize::from(pair[1] & 0xF)] += 1;
            partial[3][usize::from(pair[1] >> 4)] += 1;
        }
        let mut counts = [0u16; 16];
        for (len, count) in counts.iter_mut().enumerate() {
            *count = partial.iter().map(|h| h[len]).sum();
        }

        // Kraft sum in units of 2^-15. Anything but an exactly full code space is rejected:
        // an over-full one is ambiguous, and a partial one would let garbage bits decode to
        // nothing. (An empty code is technically decodable but cannot produce a non-empty
        // chunk, so it is corrupt here too.)
        let mut space: u32 = 0;
        for len in 1..=MAX_CODEWORD_LEN {
            space += u32::from(counts[len as usize]) << (MAX_CODEWORD_LEN - len);
        }
        if space != 1 << MAX_CODEWORD_LEN {
            return Err(corrupt(if space > 1 << MAX_CODEWORD_LEN {
                "over-subscribed Huffman code"
            } else {
                "incomplete Huffman code"
            }));
        }

        // Canonical order is by length, then symbol; a counting sort gives it directly. Unused
        // symbols are sorted too, behind the used ones, because a branch on "unused" would
        // mispredict constantly. Each slot holds `len << 9 | symbol`.
        let mut next = [0u16; 16];
        let mut used = 0;
        for len in 1..16 {
            next[len] = used;
            used += counts[len];
        }
        next[0] = used;
        let mut sorted = [0u16; NUM_SYMBOLS];
        for (pair, &byte) in packed.iter().enumerate() {
            for (sym, len) in [(2 * pair, byte & 0xF), (2 * pair + 1, byte >> 4)] {
                let slot = &mut next[usize::from(len)];
                // Slots stay below 512 since the counts sum to 512; the mask just says so.
                sorted[usize::from(*slot) & (NUM_SYMBOLS - 1)] = u16::from(len) << 9 | sym as u16;
                *slot += 1;
            }
        }
        let used = &sorted[..usize::from(used)];

        // Walking symbols in canonical order, each codeword left-aligned to 15 bits is the
        // running sum of the code space taken by the ones before it.
        let table = &mut self.table;
        let mut code: u32 = 0;
        let mut i = 0;
        while let Some(&slot) = used.get(i) {
            let len = u32::from(slot >> 9);
            if len > ROOT_BITS {
                break;
            }
            let start = (code >> (MAX_CODEWORD_LEN - ROOT_BITS)) as usize;
            let n = 1usize << (ROOT_BITS - len);
            table[start..start + n].fill(u32::from(slot & 0x1FF) << 16 | len);
            code += 1 << (MAX_CODEWORD_LEN - len);
            i += 1;
        }

        // The rest share 11-bit prefixes in runs; give each run a subtable just deep enough
        // for its longest codeword, which (canonical order again) is the run's last one.
        let mut sub_next = ROOT_SIZE;
        const SUB_SHIFT: u32 = MAX_CODEWORD_LEN - ROOT_BITS;
        while i < used.len() {
            let prefix = code >> SUB_SHIFT;
            let mut run_end = i;
            let mut probe = code;
            let mut deepest = 0;
            while run_end < used.len() && probe >> SUB_SHIFT == prefix {
                deepest = u32::from(used[run_end] >> 9);
                probe += 1 << (MAX_CODEWORD_LEN - deepest);
                run_end += 1;
            }
            let sub_bits = deepest - ROOT_BITS;
            let sub_start = sub_next;
            sub_next += 1 << sub_bits;
            if sub_next > TABLE_SIZE {
                // Unreachable for a complete code; kept so a logic slip cannot index wildly.
                return Err(corrupt("Huffman table overflow"));
            }
            table[prefix as usize] =
                SUBTABLE_FLAG | (sub_start as u32) << 16 | (64 - sub_bits) << 8 | ROOT_BITS;
            for &slot in &used[i..run_end] {
                let len = u32::from(slot >> 9);
                let low = (code & ((1 << SUB_SHIFT) - 1)) >> (SUB_SHIFT - sub_bits);
                let start = sub_start + low as usize;
                let n = 1usize << (deepest - len);
                table[start..start + n].fill(u32::from(slot & 0x1FF) << 16 | (len - ROOT_BITS));
                code += 1 << (MAX_CODEWORD_LEN - len);
            }
            i = run_end;
        }
        Ok(())
    }
}

/// MSB-first reader over the 16-bit little-endian words of the bitstream.
///
/// `buf` holds `avail` valid bits left-aligned; bits below them are either zero or the true
/// upcoming stream bits (bulk refills over-read), so OR-ing a word in again is harmless.
/// `pos` is the byte offset of the next word not yet in `buf`; it may run past the end of
/// `data`, in which case the missing words read as zero and [`BitReader::finish`] decides
/// whether any of those made-up bits were actually consumed.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u64,
    avail: u32,
}

/// After any refill, at least this many bits are buffered: one codeword (15) plus the
/// offset bits of a match (15), plus one so the cursor logic can assume a whole word (16)
/// survives the codeword.
const REFILL_MIN: u32 = 31;

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            buf: 0,
            avail: 0,
        }
    }

    #[inline(always)]
    fn refill(&mut self) {
        if self.avail >= REFILL_MIN {
            return;
        }
        if let Some(bytes) = self.data.get(self.pos..self.pos + 8) {
            let raw = u64::from_be_bytes(bytes.try_into().unwrap());
            // Big-endian load puts the words in stream order; swapping the two bytes of each
            // word then makes every word's own high bit come first.
            let words = ((raw >> 8) & 0x00FF_00FF_00FF_00FF) | ((raw & 0x00FF_00FF_00FF_00FF) << 8);
            self.buf |= words >> self.avail;
            let n = (64 - self.avail) / 16;
            self.pos += 2 * n as usize;
            self.avail += 16 * n;
        } else {
            (self.buf, self.avail, self.pos) =
                refill_tail(self.data, self.buf, self.avail, self.pos);
        }
    }

    /// Returns the next `n` (at most 32) bits, which must already be buffered.
    #[inline(always)]
    fn take(&mut self, n: u32) -> u32 {
        // Two shifts so that n == 0 yields 0 rather than an out-of-range shift.
        let v = ((self.buf >> 1) >> (63 - n)) as u32;
        self.buf <<= n;
        self.avail -= n;
        v
    }

    #[inline(always)]
    fn decode(&mut self, table: &[u32; TABLE_SIZE]) -> u32 {
        let mut entry = table[(self.buf >> (64 - ROOT_BITS)) as usize];
        if entry & SUBTABLE_FLAG != 0 {
            self.buf <<= ROOT_BITS;
            self.avail -= ROOT_BITS;
            let index = (entry >> 16 & 0xFFF) as usize + (self.buf >> (entry >> 8 & 0x3F)) as usize;
            entry = table[index & (TABLE_SIZE - 1)];
        }
        self.buf <<= entry & 0x3F;
        self.avail -= entry & 0x3F;
        entry >> 16
    }

    /// Moves `pos` back to where the reference decoder's byte cursor is, so that the extra
    /// length bytes are taken from the right place.
    ///
    /// The reference keeps between 16 and 31 bits loaded, fetching one word whenever it drops
    /// below 16. Any whole words beyond that which we fetched early have not been read yet as
    /// far as the format is concerned: they are un-fetched, and re-read after the bytes.
    /// Needs `avail >= 16`, which `REFILL_MIN` guarantees after one codeword.
    #[inline(always)]
    fn rewind_to_cursor(&mut self) {
        let early = (self.avail - 16) / 16;
        self.avail -= 16 * early;
        self.pos -= 2 * early as usize;
        self.buf &= !(u64::MAX >> self.avail);
    }

    #[inline(always)]
    fn byte(&mut self) -> Result<u8, CodecError> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or(corrupt("truncated match length"))?;
        self.pos += 1;
        Ok(b)
    }

    #[inline(always)]
    fn u16(&mut self) -> Result<u16, CodecError> {
        let b = self
            .data
            .get(self.pos..self.pos + 2)
            .ok_or(corrupt("truncated match length"))?;
        self.pos += 2;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// Fails if any consumed bit came from zero padding past the end of the input.
    fn finish(&self) -> Result<(), CodecError> {
        // End of the last word holding at least one consumed bit.
        let consumed_end = self.pos - 2 * (self.avail / 16) as usize;
        if consumed_end > self.data.len() {
            return Err(corrupt("truncated bitstream"));
        }
        Ok(())
    }
}

/// The last few bytes of a chunk, one word at a time, zero-padding past the end. Takes and
/// returns the reader state by value so the hot loop can keep it in registers.
#[inline(never)]
fn refill_tail(data: &[u8], mut buf: u64, mut avail: u32, mut pos: usize) -> (u64, u32, usize) {
    while avail <= 48 {
        let word = match data.get(pos..pos + 2) {
            Some(b) => u16::from_le_bytes([b[0], b[1]]),
            None => 0,
        };
        buf |= u64::from(word) << (48 - avail);
        pos += 2;
        avail += 16;
    }
    (buf, avail, pos)
}

/// Copies an LZ77 match of `len` bytes from `offset` bytes back; the caller has checked that
/// `offset <= op` and `op + len <= out.len()`.
#[inline(always)]
fn copy_match(out: &mut [u8], op: usize, offset: usize, len: usize) {
    let src = op - offset;
    if offset >= 8 && out.len() - op >= len + 24 {
        // Eight-byte blocks never overlap their own source when offset >= 8, and each block
        // reads only bytes already final. Most matches are short, so the first three blocks
        // are copied without asking, sparing a hard-to-predict loop exit; blocks may spill up
        // to 23 bytes past the match, which get overwritten later and were checked to fit.
        let mut s = src;
        let mut d = op;
        for _ in 0..3 {
            let block: [u8; 8] = out[s..s + 8].try_into().unwrap();
            out[d..d + 8].copy_from_slice(&block);
            s += 8;
            d += 8;
        }
        let end = op + len;
        while d < end {
            let block: [u8; 8] = out[s..s + 8].try_into().unwrap();
            out[d..d + 8].copy_from_slice(&block);
            s += 8;
            d += 8;
        }
    } else if offset == 1 {
        let b = out[src];
        out[op..op + len].fill(b);
    } else if out.len() - op >= len + 24 {
        // A short-offset match is a repeating pattern, and so is its continuation at any
        // multiple of the period. Lay down the first multiple of at least eight bytes one byte
        // at a time; from then on eight-byte blocks can copy from that far back.
        let period = offset * 8usize.div_ceil(offset);
        for i in 0..period {
            out[op + i] = out[src + i];
        }
        let mut d = op + period;
        let end = op + len;
        while d < end {
            let block: [u8; 8] = out[d - period..d - period + 8].try_into().unwrap();
            out[d..d + 8].copy_from_slice(&block);
            d += 8;
        }
    } else {
        for i in 0..len {
            out[op + i] = out[src + i];
        }
    }
}

fn decode_stream(
    table: &[u32; TABLE_SIZE],
    stream: &[u8],
    out: &mut [u8],
) -> Result<(), CodecError> {
    let mut bits = BitReader::new(stream);
    let mut op = 0;
    while op < out.len() {
        bits.refill();
        let sym = bits.decode(table);
        if sym < NUM_LITERALS {
            out[op] = sym as u8;
            op += 1;
            continue;
        }
        let header = (sym & 0xF) as usize;
        let offset_bits = (sym >> 4) & 0xF;
        let mut len = header;
        if header == 0xF {
            bits.rewind_to_cursor();
            len += usize::from(bits.byte()?);
            if len == 0xF + 0xFF {
                let full = usize::from(bits.u16()?);
                // [MS-XCA] calls a 16-bit length below 15 corrupt: it would have fit the
                // shorter forms.
                if full < 0xF {
                    return Err(corrupt("bad match length"));
                }
                len = full;
            }
        }
        let len = len + MIN_MATCH_LEN;
        let offset = (1usize << offset_bits) | bits.take(offset_bits) as usize;
        if offset > op {
            return Err(corrupt("match offset before start of chunk"));
        }
        if len > out.len() - op {
            return Err(corrupt("match runs past end of chunk"));
        }
        copy_match(out, op, offset, len);
        op += len;
    }
    bits.finish()
}

impl Decompressor for XpressDecoder {
    fn decompress(&mut self, input: &[u8], output: &mut [u8]) -> Result<(), CodecError> {
        let (lens, stream) = match input.split_first_chunk::<LENGTHS_BYTES>() {
            Some(split) => split,
            None => return Err(corrupt("chunk shorter than its Huffman code lengths")),
        };
        if output.is_empty() {
            return Ok(());
        }
        self.build_table(lens)?;
        decode_stream(&self.table, stream, output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small deterministic generator so the tests need no external crates.
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

    #[derive(Clone, Copy)]
    enum Item {
        Literal(u8),
        Match { len: usize, offset: usize },
    }

    fn pack_lengths(lens: &[u8; NUM_SYMBOLS]) -> Vec<u8> {
        lens.chunks(2).map(|p| p[0] | p[1] << 4).collect()
    }

    /// Codewords of the canonical code for `lens`, as (value, length) pairs.
    fn canonical_codes(lens: &[u8; NUM_SYMBOLS]) -> Vec<(u32, u32)> {
        let mut order: Vec<usize> = (0..NUM_SYMBOLS).filter(|&s| lens[s] != 0).collect();
        order.sort_by_key(|&s| (lens[s], s));
        let mut codes = vec![(0, 0); NUM_SYMBOLS];
        let mut code = 0u32;
        let mut prev_len = 0;
        for s in order {
            let len = u32::from(lens[s]);
            code <<= len - prev_len;
            codes[s] = (code, len);
            code += 1;
            prev_len = len;
        }
        codes
    }

    /// Test-side encoder. The format places a literal byte after the two 16-bit words the
    /// decoder may already hold, so the writer keeps two word slots reserved ahead of the
    /// byte cursor and fills them as bits arrive.
    struct Writer {
        out: Vec<u8>,
        slots: [usize; 2],
        acc: u64,
        pending: u32,
    }

    impl Writer {
        fn new() -> Self {
            Writer {
                out: vec![0; 4],
                slots: [0, 2],
                acc: 0,
                pending: 0,
            }
        }

        fn bits(&mut self, value: u32, n: u32) {
            self.acc = self.acc << n | u64::from(value);
            self.pending += n;
            if self.pending > 16 {
                self.pending -= 16;
                let word = (self.acc >> self.pending) as u16;
                self.out[self.slots[0]..self.slots[0] + 2].copy_from_slice(&word.to_le_bytes());
                self.slots = [self.slots[1], self.out.len()];
                self.out.extend_from_slice(&[0, 0]);
            }
        }

        fn finish(mut self) -> Vec<u8> {
            let word = (self.acc << (16 - self.pending)) as u16;
            self.out[self.slots[0]..self.slots[0] + 2].copy_from_slice(&word.to_le_bytes());
            self.out
        }
    }

    fn encode(lens: &[u8; NUM_SYMBOLS], items: &[Item]) -> Vec<u8> {
        let codes = canonical_codes(lens);
        let mut w = Writer::new();
        let put = |w: &mut Writer, sym: usize| {
            let (code, len) = codes[sym];
            assert!(len != 0, "symbol {sym} has no codeword");
            w.bits(code, len);
        };
        for &item in items {
            match item {
                Item::Literal(b) => put(&mut w, usize::from(b)),
                Item::Match { len, offset } => {
                    let adjusted = len - MIN_MATCH_LEN;
                    let log2 = offset.ilog2();
                    put(&mut w, 256 + ((log2 as usize) << 4 | adjusted.min(15)));
                    if adjusted >= 15 {
                        let extra = (adjusted - 15).min(255);
                        w.out.push(extra as u8);
                        if extra == 255 {
                            w.out.extend_from_slice(&(adjusted as u16).to_le_bytes());
                        }
                    }
                    w.bits((offset - (1 << log2)) as u32, log2);
                }
            }
        }
        // End-of-data marker, as Microsoft's decoders expect one.
        put(&mut w, 256);
        let mut chunk = pack_lengths(lens);
        chunk.extend(w.finish());
        chunk
    }

    fn expand(items: &[Item]) -> Vec<u8> {
        let mut out = Vec::new();
        for &item in items {
            match item {
                Item::Literal(b) => out.push(b),
                Item::Match { len, offset } => {
                    for _ in 0..len {
                        out.push(out[out.len() - offset]);
                    }
                }
            }
        }
        out
    }

    /// A random complete code over all 512 symbols: start from two 1-bit codewords and
    /// keep splitting a leaf into two one bit longer, which preserves completeness.
    fn random_lengths(rng: &mut Rng) -> [u8; NUM_SYMBOLS] {
        let mut perm: Vec<usize> = (0..NUM_SYMBOLS).collect();
        for i in (1..NUM_SYMBOLS).rev() {
            perm.swap(i, rng.below(i + 1));
        }
        let mut lens = [0u8; NUM_SYMBOLS];
        lens[perm[0]] = 1;
        lens[perm[1]] = 1;
        for &new in &perm[2..] {
            loop {
                let a = perm[rng.below(NUM_SYMBOLS)];
                let b = perm[rng.below(NUM_SYMBOLS)];
                // Preferring the shorter of two picks keeps most codes within 15 bits.
                let victim = if lens[b] != 0 && (lens[a] == 0 || lens[b] < lens[a]) {
                    b
                } else {
                    a
                };
                if lens[victim] != 0 && lens[victim] < 15 {
                    lens[victim] += 1;
                    lens[new] = lens[victim];
                    break;
                }
            }
        }
        lens
    }

    fn random_items(rng: &mut Rng, target: usize) -> Vec<Item> {
        let mut items = Vec::new();
        let mut produced = 0;
        while produced < target {
            let room = target - produced;
            if produced == 0 || room < MIN_MATCH_LEN || rng.below(3) == 0 {
                items.push(Item::Literal(rng.next() as u8));
                produced += 1;
                continue;
            }
            let max_offset = produced.min(65535);
            let offset = match rng.below(4) {
                0 => 1 + rng.below(max_offset.min(8)),
                1 => max_offset,
                _ => 1 + rng.below(max_offset),
            };
            let len = match rng.below(6) {
                0 => 18 + rng.below(300),
                1 => 270 + rng.below(2000),
                2 => 3 + rng.below(16),
                _ => 3 + rng.below(40),
            }
            .min(room);
            items.push(Item::Match { len, offset });
            produced += len;
        }
        items
    }

    fn decode(input: &[u8], size: usize) -> Result<Vec<u8>, CodecError> {
        let mut out = vec![0; size];
        XpressDecoder::new(65536)?.decompress(input, &mut out)?;
        Ok(out)
    }

    #[test]
    fn hand_built_literals() {
        // Every symbol 9 bits long, so symbol s is simply s in 9 bits: 'A' 'B' make the 18
        // bits 001000001_001000010, i.e. words 0x2090 and 0x8000.
        let mut chunk = vec![0x99; 256];
        chunk.extend_from_slice(&[0x90, 0x20, 0x00, 0x80]);
        assert_eq!(decode(&chunk, 2).unwrap(), b"AB");
    }

    #[test]
    fn hand_built_match() {
        // 'a', 'b', then symbol 273 (length header 1, one offset bit) with offset bit 0:
        // a match of length 4 at distance 2.
        let mut chunk = vec![0x99; 256];
        chunk.extend_from_slice(&[0x98, 0x30, 0x20, 0xA2]);
        assert_eq!(decode(&chunk, 6).unwrap(), b"ababab");
    }

    #[test]
    fn all_literal_chunk() {
        let lens = [9u8; NUM_SYMBOLS];
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let items: Vec<Item> = data.iter().map(|&b| Item::Literal(b)).collect();
        assert_eq!(decode(&encode(&lens, &items), data.len()).unwrap(), data);
    }

    #[test]
    fn round_trips_random_codes_and_matches() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for round in 0..300 {
            let lens = random_lengths(&mut rng);
            let size = match round % 4 {
                0 => 1 + rng.below(64),
                1 => 4096,
                2 => 32768,
                _ => 70000,
            };
            let items = random_items(&mut rng, size);
            let expected = expand(&items);
            let chunk = encode(&lens, &items);
            assert_eq!(decode(&chunk, size).unwrap(), expected, "round {round}");
        }
    }

    #[test]
    fn truncations_fail_cleanly() {
        let mut rng = Rng(99);
        for _ in 0..20 {
            let lens = random_lengths(&mut rng);
            let items = random_items(&mut rng, 3000);
            let chunk = encode(&lens, &items);
            for cut in 1..chunk.len() {
                let result = decode(&chunk[..chunk.len() - cut], 3000);
                // The decoder stops once the output is full, so the end marker (up to 15 bits,
                // so up to two words) and the writer's zero padding word are never read:
                // losing up to six bytes may go unnoticed, anything more must not.
                if cut > 6 {
                    assert!(result.is_err(), "cut {cut} of {} accepted", chunk.len());
                }
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng(7);
        let mut decoder = XpressDecoder::new(65536).unwrap();
        let mut out = vec![0; 65536];
        let flat = [9u8; NUM_SYMBOLS];
        let valid = encode(&flat, &random_items(&mut rng, 20000));
        for i in 0..5000 {
            let size = 1 + rng.below(if i % 2 == 0 { 300 } else { 65536 });
            let mut input: Vec<u8> = (0..rng.below(3000)).map(|_| rng.next() as u8).collect();
            match i % 4 {
                // A valid code, so the garbage reaches the symbol decoder.
                0 if input.len() >= 256 => input[..256].copy_from_slice(&valid[..256]),
                // A valid stream with a few bits flipped.
                1 => {
                    input = valid.clone();
                    for _ in 0..1 + rng.below(8) {
                        let at = rng.below(input.len());
                        input[at] ^= 1 << rng.below(8);
                    }
                }
                _ => {}
            }
            let _ = decoder.decompress(&input, &mut out[..size]);
        }
    }

    #[test]
    fn longer_output_than_encoded_is_an_error() {
        let mut rng = Rng(3);
        let lens = random_lengths(&mut rng);
        let items = random_items(&mut rng, 10000);
        let chunk = encode(&lens, &items);
        assert!(decode(&chunk, 10000).is_ok());
        assert!(matches!(
            decode(&chunk, 12000),
            Err(CodecError::Corrupt { .. })
        ));
    }

    #[test]
    fn rejects_bad_codes_and_matches() {
        assert!(decode(&[0u8; 300], 10).is_err(), "empty code");
        assert!(decode(&[0x88u8; 300], 10).is_err(), "over-subscribed code");
        let mut incomplete = vec![0u8; 300];
        incomplete[0] = 0x01;
        assert!(decode(&incomplete, 10).is_err(), "incomplete code");
        assert!(decode(&[0x99u8; 255], 10).is_err(), "short length table");

        let flat = [9u8; NUM_SYMBOLS];
        let before_start = encode(
            &flat,
            &[Item::Literal(1), Item::Match { len: 3, offset: 2 }],
        );
        assert!(decode(&before_start, 4).is_err());
        let too_long = encode(
            &flat,
            &[Item::Literal(1), Item::Match { len: 9, offset: 1 }],
        );
        assert!(decode(&too_long, 5).is_err());

        // A 16-bit length below 15 would have fitted the one-byte form.
        let mut short16 = encode(
            &flat,
            &[
                Item::Literal(1),
                Item::Match {
                    len: 400,
                    offset: 1,
                },
            ],
        );
        let at = short16.iter().rposition(|&b| b == 0xFF).unwrap();
        short16[at + 1..at + 3].copy_from_slice(&14u16.to_le_bytes());
        assert!(decode(&short16, 401).is_err());
    }

    #[test]
    fn chunk_size_limits() {
        assert!(matches!(
            XpressDecoder::new(0),
            Err(CodecError::Unsupported { .. })
        ));
        assert!(XpressDecoder::new(MAX_CHUNK_SIZE + 1).is_err());
        assert!(XpressDecoder::new(4096).is_ok());
        assert!(XpressDecoder::new(MAX_CHUNK_SIZE).is_ok());
    }
}
