//! XPRESS compression, Huffman variant ([MS-XCA] section 2.2.4), one block per WIM chunk.
//!
//! Each chunk goes through the same steps: parse the input into literals and matches, count
//! how often each of the 512 symbols is used, build a canonical Huffman code limited to 15-bit
//! codewords, work out the exact output size from the counts (so a chunk that would not shrink
//! is given up before a single bit is written), and finally emit the 256-byte table of 4-bit
//! codeword lengths followed by the bitstream.
//!
//! Parsing depends on the level. Low levels take the longest hash-chain match greedily; middle
//! levels look one byte ahead before committing to a match (lazy parsing); high levels collect
//! every useful match from the hash chains and pick the cheapest path through them
//! under the Huffman code's bit costs, refining the code over a few passes.
//!
//! The bitstream layout mirrors what [`super::xpress`] (and Microsoft's and wimlib's decoders)
//! read: 16-bit little-endian words, most significant bit first, with the whole bytes of long
//! match lengths dropped into the byte stream where the reading decoder's cursor will be,
//! which is two words ahead of the word currently being filled.

use super::{CodecError, Compressor};

const NUM_SYMBOLS: usize = 512;
const NUM_LITERALS: usize = 256;
const MAX_CODEWORD_LEN: usize = 15;
const LENGTHS_BYTES: usize = NUM_SYMBOLS / 2;
const MIN_MATCH_LEN: usize = 3;
/// Offsets must fit 16 bits: the offset's high bit is implied by the symbol, and the symbol
/// has room for at most 15 more.
const MAX_OFFSET: usize = 65535;
/// Microsoft's decoders expect every block to end with symbol 256, which wimlib also writes.
/// (By its bits it is a length-3 match at offset 1; decoders that stop once the chunk is full
/// never act on it.)
const END_OF_DATA: usize = 256;
/// WIM never uses bigger XPRESS chunks, and 64 KiB keeps every offset within [`MAX_OFFSET`].
const MAX_CHUNK_SIZE: u32 = 1 << 16;

/// wimlib's default compression level, which this encoder's levels are modelled on.
pub const DEFAULT_LEVEL: u32 = 50;

/// An item of the parse: a literal is `byte << 16` (offset field zero), a match is
/// `(len - MIN_MATCH_LEN) << 16 | offset`. Chunks are at most 64 KiB, so the adjusted length
/// (at most 65533) and the offset (at most 65535) each fit 16 bits.
type Item = u32;

fn unsupported(what: &'static str) -> CodecError {
    CodecError::Unsupported {
        codec: "xpress",
        what,
    }
}

/// How the input is split into literals and matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Parser {
    Greedy,
    Lazy,
    Optimal,
}

/// Reusable XPRESS chunk encoder. All working memory is sized for the chunk size at
/// construction, so compressing a chunk allocates nothing (beyond growing the caller's output
/// vector the first time).
pub struct XpressEncoder {
    chunk_size: usize,
    parser: Parser,
    /// Most chain links (or tree nodes) examined when looking for a match at one position.
    max_depth: u32,
    /// A match at least this long is taken without looking further.
    nice_len: usize,
    chains: HashChains,
    parse: Parse,
    code: HuffmanCode,
    /// Working memory of the optimal parser, for the levels that use it.
    optimal: Option<Box<Optimal>>,
    /// Whether the processor runs [`XpressEncoder::encode_bmi`].
    #[cfg(target_arch = "x86_64")]
    bmi: bool,
}

/// The chosen literals and matches of a chunk, with the symbol counts they add up to.
struct Parse {
    items: Vec<Item>,
    freqs: [u32; NUM_SYMBOLS],
    /// Bytes of long match lengths that the parse will put into the byte stream.
    extra_bytes: usize,
}

impl XpressEncoder {
    /// Makes an encoder for chunks of up to `chunk_size` bytes (at most 64 KiB) at `level`
    /// 1..=100; higher levels compress better and more slowly.
    pub fn new(chunk_size: u32, level: u32) -> Result<Self, CodecError> {
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(unsupported("chunk size"));
        }
        if !(1..=100).contains(&level) {
            return Err(unsupported("compression level"));
        }
        // Search effort grows linearly with the level, as with wimlib's levels, so that the
        // same number means roughly the same trade-off with either tool.
        let (parser, max_depth, nice_len) = if level < 30 {
            (Parser::Greedy, level * 30 / 16, level * 60 / 16)
        } else if level < 60 {
            // The lazy parser searches the following position with half the depth.
            (Parser::Lazy, (level * 30 / 32).max(2), level * 60 / 32)
        } else {
            // The optimal parser searches every position, so it can afford less per position.
            (Parser::Optimal, level * 3 / 10, level * 6 / 10)
        };
        let chunk_size = chunk_size as usize;
        let optimal = (parser == Parser::Optimal).then(|| Optimal::new(chunk_size, level));
        Ok(Self {
            chunk_size,
            parser,
            max_depth: max_depth.max(1),
            nice_len: (nice_len as usize).max(MIN_MATCH_LEN + 1),
            chains: HashChains::new(chunk_size),
            parse: Parse {
                items: Vec::with_capacity(chunk_size),
                freqs: [0; NUM_SYMBOLS],
                extra_bytes: 0,
            },
            code: HuffmanCode::new(),
            optimal,
            #[cfg(target_arch = "x86_64")]
            bmi: std::is_x86_feature_detected!("bmi1")
                && std::is_x86_feature_detected!("bmi2")
                && std::is_x86_feature_detected!("lzcnt"),
        })
    }

    /// Compresses `input` into `out` if the result takes at most `limit` bytes; returns whether
    /// it did. Unlike [`Compressor::compress`] this also encodes inputs too small to gain,
    /// which the tests use.
    fn encode(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.bmi {
            // SAFETY: `new` found the instructions `encode_bmi` is compiled for.
            return unsafe { self.encode_bmi(input, out, limit) };
        }
        self.encode_with(input, out, limit)
    }

    /// [`Self::encode`] compiled for x86-64 processors with BMI1, BMI2 and LZCNT (from
    /// 2013 on), which do the parser's and bit writer's variable shifts and bit scans in
    /// fewer instructions: about 6% less time.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "bmi1,bmi2,lzcnt")]
    fn encode_bmi(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> bool {
        self.encode_with(input, out, limit)
    }

    #[inline(always)]
    fn encode_with(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> bool {
        out.clear();
        assert!(
            input.len() <= self.chunk_size,
            "chunk larger than the encoder was made for"
        );
        self.chains.reset(input.len());
        // Inputs of more than 16 KiB (almost all chunks) use the full tables, whose hash
        // shifts are constants.
        if self.chains.hash4_bits == 16 {
            self.parse_with(input, FullTables);
        } else {
            let shifts = (32 - self.chains.hash3_bits, 32 - self.chains.hash4_bits);
            self.parse_with(input, SmallTables(shifts));
        }
        let freqs = &mut self.parse.freqs;
        freqs[END_OF_DATA] += 1;
        self.code.build(freqs);

        let size = self.encoded_size();
        if size > limit {
            return false;
        }
        out.resize(size, 0);
        let (table, stream) = out.split_at_mut(LENGTHS_BYTES);
        for (byte, pair) in table.iter_mut().zip(self.code.lens.chunks_exact(2)) {
            *byte = pair[0] | pair[1] << 4;
        }
        write_items(stream, &self.parse.items, &self.code);
        true
    }

    #[inline(always)]
    fn parse_with<S: Shifts>(&mut self, input: &[u8], shifts: S) {
        let mut finder = self.chains.finder(input, shifts);
        let (nice, depth) = (self.nice_len, self.max_depth);
        match self.parser {
            Parser::Greedy => self.parse.greedy(&mut finder, nice, depth),
            Parser::Lazy => self.parse.lazy(&mut finder, nice, depth),
            Parser::Optimal => {
                let opt = self.optimal.as_mut().expect("optimal parser state");
                opt.parse(&mut finder, &mut self.parse, &mut self.code, nice, depth);
            }
        }
    }

    /// The exact size of the block the current parse and code produce. The writer reserves
    /// two words ahead of its byte cursor and flushes a word whenever more than 16 bits are
    /// pending, so `b` bits take `ceil(b / 16)` words plus the reserved zero word at the end.
    #[inline(always)]
    fn encoded_size(&self) -> usize {
        let mut bits = 0u64;
        for (sym, (&freq, &len)) in self.parse.freqs.iter().zip(&self.code.lens).enumerate() {
            let offset_bits = if sym >= NUM_LITERALS {
                (sym - NUM_LITERALS) >> 4
            } else {
                0
            };
            bits += u64::from(freq) * (u64::from(len) + offset_bits as u64);
        }
        LENGTHS_BYTES + 2 + 2 * bits.div_ceil(16) as usize + self.parse.extra_bytes
    }
}

/// Whether a match is worth coding at all: a length-3 match far back costs about as much
/// as its three literals, and taking it can hide a better match starting inside it.
#[inline(always)]
fn worth_it(len: usize, offset: usize, far: usize) -> bool {
    len > MIN_MATCH_LEN || (len == MIN_MATCH_LEN && offset < far)
}

impl Parse {
    /// Starts a parse of `len` bytes.
    fn start(&mut self, len: usize) -> Recorder<'_> {
        self.freqs = [0; NUM_SYMBOLS];
        self.extra_bytes = 0;
        self.items.clear();
        // Every item covers at least one byte.
        self.items.reserve(len);
        Recorder {
            slots: self.items.spare_capacity_mut(),
            len: 0,
            freqs: &mut self.freqs,
            extra_bytes: &mut self.extra_bytes,
        }
    }

    /// Ends the parse the recorder of [`Parse::start`] made: its `len` items become
    /// [`Parse::items`]. (The recorder borrows the spare capacity as a slice, which keeps
    /// the vector's fields out of its hot loop, so it cannot set the length itself.)
    ///
    /// # Safety
    /// `len` must be the `len` of the recorder `start` returned, after its last item.
    unsafe fn finish(&mut self, len: usize) {
        // SAFETY: that recorder wrote slots `0..len` of the spare capacity (it writes slot
        // `len` and only then counts it), so they are initialised and within capacity.
        unsafe { self.items.set_len(len) };
    }

    #[inline(always)]
    fn greedy<S: Shifts>(&mut self, f: &mut Finder<'_, S>, nice: usize, depth: u32) {
        let data = f.data;
        let far = len3_too_far(data.len());
        let mut rec = self.start(data.len());
        let mut pos = 0;
        while pos < data.len() {
            let max_len = data.len() - pos;
            if max_len < HashChains::MIN_BYTES {
                rec.literal(data[pos]);
                pos += 1;
                continue;
            }
            let (len, offset) = f.longest_match(pos, MIN_MATCH_LEN - 1, nice.min(max_len), depth);
            if worth_it(len, offset, far) {
                rec.record_match(len, offset);
                f.skip(pos + 1, pos + len);
                pos += len;
            } else {
                rec.literal(data[pos]);
                pos += 1;
            }
        }
        let n = rec.len;
        // SAFETY: `n` is the final count of the recorder `start` returned.
        unsafe { self.finish(n) };
    }

    #[inline(always)]
    fn lazy<S: Shifts>(&mut self, f: &mut Finder<'_, S>, nice: usize, depth: u32) {
        let data = f.data;
        let far = len3_too_far(data.len());
        let mut rec = self.start(data.len());
        let mut pos = 0;
        while pos < data.len() {
            let max_len = data.len() - pos;
            if max_len < HashChains::MIN_BYTES {
                rec.literal(data[pos]);
                pos += 1;
                continue;
            }
            let (mut len, mut offset) =
                f.longest_match(pos, MIN_MATCH_LEN - 1, nice.min(max_len), depth);
            if !worth_it(len, offset, far) {
                rec.literal(data[pos]);
                pos += 1;
                continue;
            }
            // Holding a match at `pos`: while the next position offers a longer one, emit
            // a literal and move on. The next position has been inserted into the chains by
            // the look-ahead once the loop ends, unless the match was long or the input ends.
            let mut next_inserted = false;
            while len < nice && data.len() - (pos + 1) >= HashChains::MIN_BYTES {
                let next_max = data.len() - (pos + 1);
                let (next_len, next_offset) =
                    f.longest_match(pos + 1, len, nice.min(next_max), depth / 2);
                next_inserted = true;
                if next_len <= len {
                    break;
                }
                rec.literal(data[pos]);
                pos += 1;
                len = next_len;
                offset = next_offset;
                next_inserted = false;
            }
            rec.record_match(len, offset);
            let first_unseen = pos + if next_inserted { 2 } else { 1 };
            f.skip(first_unseen, pos + len);
            pos += len;
        }
        let n = rec.len;
        // SAFETY: `n` is the final count of the recorder `start` returned.
        unsafe { self.finish(n) };
    }
}

/// Appends items to a [`Parse`] and counts their symbols; kept in locals by the parsers so
/// that the item count lives in a register.
struct Recorder<'a> {
    slots: &'a mut [std::mem::MaybeUninit<Item>],
    len: usize,
    freqs: &'a mut [u32; NUM_SYMBOLS],
    extra_bytes: &'a mut usize,
}

impl Recorder<'_> {
    #[inline(always)]
    fn push(&mut self, item: Item) {
        self.slots[self.len].write(item);
        self.len += 1;
    }

    #[inline(always)]
    fn literal(&mut self, byte: u8) {
        self.freqs[usize::from(byte)] += 1;
        self.push(u32::from(byte) << 16);
    }

    #[inline(always)]
    fn record_match(&mut self, len: usize, offset: usize) {
        debug_assert!((1..=MAX_OFFSET).contains(&offset) && len >= MIN_MATCH_LEN);
        let adjusted = len - MIN_MATCH_LEN;
        self.freqs[match_symbol(adjusted, offset)] += 1;
        if adjusted >= 15 {
            *self.extra_bytes += if adjusted >= 15 + 255 { 3 } else { 1 };
        }
        self.push((adjusted as u32) << 16 | offset as u32);
    }
}

impl Optimal {
    /// Near-optimal parsing: find the matches at every position once, then repeatedly pick
    /// the cheapest path through them under the bit costs of the previous pass's Huffman
    /// code, starting from a flat guess.
    #[inline(always)]
    fn parse<S: Shifts>(
        &mut self,
        f: &mut Finder<'_, S>,
        parse: &mut Parse,
        code: &mut HuffmanCode,
        nice: usize,
        depth: u32,
    ) {
        let data = f.data;
        self.find_matches(f, nice, depth);
        self.costs = [9; NUM_SYMBOLS];
        for pass in 0..self.passes {
            self.shortest_path(data);
            let mut rec = parse.start(data.len());
            let mut pos = 0;
            while pos < data.len() {
                let choice = self.choice[pos];
                let offset = (choice & 0xFFFF) as usize;
                if offset == 0 {
                    rec.literal(data[pos]);
                    pos += 1;
                } else {
                    let len = (choice >> 16) as usize + MIN_MATCH_LEN;
                    rec.record_match(len, offset);
                    pos += len;
                }
            }
            let n = rec.len;
            // SAFETY: `n` is the final count of the recorder `start` returned.
            unsafe { parse.finish(n) };
            if pass + 1 < self.passes {
                parse.freqs[END_OF_DATA] += 1;
                code.build_lengths(&parse.freqs);
                for (cost, &len) in self.costs.iter_mut().zip(&code.lens) {
                    // An unused symbol could still become worth using; price it as rare.
                    *cost = if len == 0 {
                        MAX_CODEWORD_LEN as u32
                    } else {
                        u32::from(len)
                    };
                }
            }
        }
    }
}

/// State of the near-optimal parser: the matches found at each position, and the per-pass
/// shortest-path arrays.
struct Optimal {
    /// `matches[starts[pos]..starts[pos + 1]]` are the matches at `pos`, as
    /// `len << 16 | offset`, by increasing length (and so increasing offset).
    starts: Vec<u32>,
    matches: Vec<u32>,
    /// Bits from each position to the end along the cheapest path found.
    cost: Vec<u32>,
    /// The first step of that path, as an [`Item`] (a literal has offset zero).
    choice: Vec<Item>,
    /// Bits per symbol (without offset bits or length bytes) assumed by the current pass.
    costs: [u32; NUM_SYMBOLS],
    passes: u32,
}

impl Optimal {
    /// Room for this many matches per position on average; real data needs far fewer, and
    /// positions past an overflow simply get no matches.
    const MATCHES_PER_POS: usize = 8;

    fn new(chunk_size: usize, level: u32) -> Box<Self> {
        Box::new(Self {
            starts: Vec::with_capacity(chunk_size + 1),
            matches: Vec::with_capacity(chunk_size * Self::MATCHES_PER_POS),
            cost: vec![0; chunk_size + 1],
            choice: vec![0; chunk_size],
            costs: [0; NUM_SYMBOLS],
            passes: 2 + (level >= 80) as u32,
        })
    }

    #[inline(always)]
    fn find_matches<S: Shifts>(&mut self, f: &mut Finder<'_, S>, nice: usize, depth: u32) {
        let data = f.data;
        self.starts.clear();
        self.matches.clear();
        let limit = self.matches.capacity();
        let mut pos = 0;
        while pos < data.len() {
            self.starts.push(self.matches.len() as u32);
            let max_len = data.len() - pos;
            if max_len < HashChains::MIN_BYTES || self.matches.len() + depth as usize + 2 > limit {
                pos += 1;
                continue;
            }
            let best = f.all_matches(pos, nice.min(max_len), depth, &mut self.matches);
            pos += 1;
            if best >= nice {
                // A long match means highly redundant data: searching inside it would cost
                // much and gain little, so its positions are only inserted.
                let end = pos - 1 + best;
                f.skip(pos, end);
                while pos < end {
                    self.starts.push(self.matches.len() as u32);
                    pos += 1;
                }
            }
        }
        self.starts.push(self.matches.len() as u32);
    }

    /// Cheapest path from each position to the end, computed backwards.
    #[inline(always)]
    fn shortest_path(&mut self, data: &[u8]) {
        let n = data.len();
        self.cost[n] = 0;
        for pos in (0..n).rev() {
            let byte = data[pos];
            let mut best = self.costs[usize::from(byte)] + self.cost[pos + 1];
            let mut choice = u32::from(byte) << 16;
            let (from, to) = (self.starts[pos] as usize, self.starts[pos + 1] as usize);
            let mut len = MIN_MATCH_LEN;
            for &m in &self.matches[from..to] {
                let offset = (m & 0xFFFF) as usize;
                let max = (m >> 16) as usize;
                let slot = (offset.ilog2() as usize) << 4;
                let offset_bits = offset.ilog2();
                while len <= max {
                    let adjusted = len - MIN_MATCH_LEN;
                    let mut c = self.costs[NUM_LITERALS + (slot | adjusted.min(15))]
                        + offset_bits
                        + self.cost[pos + len];
                    if adjusted >= 15 {
                        c += if adjusted >= 15 + 255 { 24 } else { 8 };
                    }
                    if c < best {
                        best = c;
                        choice = (adjusted as u32) << 16 | offset as u32;
                    }
                    len += 1;
                }
            }
            self.cost[pos] = best;
            self.choice[pos] = choice;
        }
    }
}

impl Compressor for XpressEncoder {
    fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        // The length table plus the two-word minimum stream: nothing this small can shrink.
        if input.len() <= LENGTHS_BYTES + 4 {
            out.clear();
            return false;
        }
        self.encode(input, out, input.len() - 1)
    }
}

/// Matches shorter than 4 bytes are only worth it when the offset is short; wimlib's cut-off
/// (which its lazy parser shares) works well, and smaller chunks have fewer far offsets.
fn len3_too_far(chunk_len: usize) -> usize {
    if chunk_len <= 8192 {
        2048
    } else {
        4096
    }
}

/// The Huffman symbol of a match: the offset's bit length minus one in the high nibble, the
/// adjusted length (capped at 15, meaning "more follows in the byte stream") in the low one.
#[inline(always)]
fn match_symbol(adjusted_len: usize, offset: usize) -> usize {
    NUM_LITERALS + ((offset.ilog2() as usize) << 4 | adjusted_len.min(15))
}

#[inline(always)]
fn load_u32(data: &[u8], pos: usize) -> u32 {
    u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap())
}

/// [`load_u32`] through a raw pointer, without a bounds check.
///
/// # Safety
/// The four bytes at `p + at` must be readable.
#[inline(always)]
unsafe fn read_u32_raw(p: *const u8, at: usize) -> u32 {
    u32::from_le(p.add(at).cast::<u32>().read_unaligned())
}

#[inline(always)]
fn load_u64(data: &[u8], pos: usize) -> u64 {
    u64::from_le_bytes(data[pos..pos + 8].try_into().unwrap())
}

/// Length of the common prefix of `data[earlier..]` and `data[pos..]`, given that the first
/// `len` bytes are known to match, capped at `max_len` (which must keep `pos + max_len` inside
/// `data`).
#[inline(always)]
fn extend_match(data: &[u8], earlier: usize, pos: usize, mut len: usize, max_len: usize) -> usize {
    // Equal-length views up front: the loops below then need no bounds checks.
    let a = &data[earlier..earlier + max_len];
    let b = &data[pos..pos + max_len];
    while len + 8 <= max_len {
        let diff = load_u64(a, len) ^ load_u64(b, len);
        if diff != 0 {
            return len + (diff.trailing_zeros() / 8) as usize;
        }
        len += 8;
    }
    while len < max_len && a[len] == b[len] {
        len += 1;
    }
    len
}

/// The multiplier of the hashes: `seq * HASH_MUL`, shifted right to keep its top bits.
const HASH_MUL: u32 = 0x1E35_A7BD;

/// Hash-chain match finder: one table remembering the last position of each 3-byte hash
/// (length-3 matches are only wanted close by, so one candidate suffices), and chains of
/// earlier positions with the same 4-byte hash.
///
/// Positions are 16-bit, which halves the tables' cache footprint next to 32-bit ones; that
/// matters more than the cost of clearing the heads for each chunk. Position 0 doubles as
/// "empty", so nothing ever matches against a chunk's first byte, which costs next to
/// nothing. `prev` needs no clearing: a position's link is written when it is inserted,
/// before anything can lead to it.
struct HashChains {
    /// Allocated at the largest size (16-bit hashes) so that masked hashes index them
    /// without bounds checks; only the first `1 << hash*_bits` entries are used.
    head3: Box<[u16; 1 << 15]>,
    head4: Box<[u16; 1 << 16]>,
    prev: Box<[u16]>,
    hash3_bits: u32,
    hash4_bits: u32,
}

impl HashChains {
    /// Positions closer than this to the end are not searched: the hashes read 4 bytes.
    const MIN_BYTES: usize = 4;

    /// Hash bits for an input of `len` bytes: two buckets per position keep false candidates
    /// rare (chains are walked with a depth limit, so collisions cost matches, not just
    /// time), and a small input gets small tables, as they are cleared for every input (a
    /// tree of small files would otherwise spend much of its time clearing them).
    fn bits_for(len: usize) -> u32 {
        (len.next_power_of_two().ilog2() + 1).clamp(10, 16)
    }

    fn new(chunk_size: usize) -> Self {
        let bits = Self::bits_for(chunk_size);
        Self {
            head3: vec![0; 1 << 15]
                .into_boxed_slice()
                .try_into()
                .expect("table size"),
            head4: vec![0; 1 << 16]
                .into_boxed_slice()
                .try_into()
                .expect("table size"),
            prev: vec![0; chunk_size].into_boxed_slice(),
            hash3_bits: bits - 1,
            hash4_bits: bits,
        }
    }

    /// Forgets the previous chunk and sizes the tables for an input of `len` bytes.
    fn reset(&mut self, len: usize) {
        let bits = Self::bits_for(len);
        self.hash3_bits = bits - 1;
        self.hash4_bits = bits;
        self.head3[..1 << self.hash3_bits].fill(0);
        self.head4[..1 << self.hash4_bits].fill(0);
    }

    /// The finder over `data`, the input the tables were last [`reset`](Self::reset) for,
    /// whose hash bits `shifts` must give.
    fn finder<'a, S: Shifts>(&'a mut self, data: &'a [u8], shifts: S) -> Finder<'a, S> {
        debug_assert_eq!(shifts.get(), (32 - self.hash3_bits, 32 - self.hash4_bits));
        Finder {
            data,
            head3: &mut self.head3,
            head4: &mut self.head4,
            prev: &mut self.prev[..data.len()],
            shifts,
            next_pos: usize::MAX,
            next: (0, 0),
        }
    }
}

/// The right shifts that leave a hash's top bits, 3- and 4-byte: constants for the full
/// tables (so the hot loops need neither registers nor loads for them), or values for
/// smaller ones.
trait Shifts: Copy {
    fn get(self) -> (u32, u32);
}

#[derive(Clone, Copy)]
struct FullTables;

impl Shifts for FullTables {
    #[inline(always)]
    fn get(self) -> (u32, u32) {
        (32 - 15, 32 - 16)
    }
}

#[derive(Clone, Copy)]
struct SmallTables((u32, u32));

impl Shifts for SmallTables {
    #[inline(always)]
    fn get(self) -> (u32, u32) {
        self.0
    }
}

/// One input's view of the [`HashChains`]. The parsers hold it in a local, so that the
/// tables' addresses, the hash shifts and the buckets worked out ahead stay in registers.
///
/// Positions are inserted at most once and in increasing order (the parsers only move
/// forward); a search inserts the position it searches.
struct Finder<'a, S> {
    data: &'a [u8],
    head3: &'a mut [u16; 1 << 15],
    head4: &'a mut [u16; 1 << 16],
    /// Exactly as long as `data`.
    prev: &'a mut [u16],
    shifts: S,
    /// The buckets `next` of position `next_pos`, worked out (and prefetched) while the
    /// position before it was searched: the next search usually starts there.
    next_pos: usize,
    next: (usize, usize),
}

impl<S: Shifts> Finder<'_, S> {
    /// The 3- and 4-byte hash buckets of the sequence `seq`. (The masks change nothing, as
    /// the shifts leave at most 15 and 16 bits; they let the compiler see that the indexes
    /// are in range.)
    #[inline(always)]
    fn buckets(&self, seq: u32) -> (usize, usize) {
        let (shift3, shift4) = self.shifts.get();
        (
            ((seq << 8).wrapping_mul(HASH_MUL) >> shift3) as usize & ((1 << 15) - 1),
            (seq.wrapping_mul(HASH_MUL) >> shift4) as usize & ((1 << 16) - 1),
        )
    }

    /// Makes `pos` the head of buckets `(h3, h4)`; returns the previous heads.
    #[inline(always)]
    fn insert_at(&mut self, pos: usize, (h3, h4): (usize, usize)) -> (usize, usize) {
        let c3 = std::mem::replace(&mut self.head3[h3 & ((1 << 15) - 1)], pos as u16);
        let c4 = std::mem::replace(&mut self.head4[h4 & ((1 << 16) - 1)], pos as u16);
        self.prev[pos] = c4;
        (usize::from(c3), usize::from(c4))
    }

    /// Inserts `pos` (whose first four bytes are `seq`), which is about to be searched, and
    /// works out (and starts loading) the buckets of `pos + 1`, which a search usually comes
    /// to next; returns the previous heads of its buckets.
    #[inline(always)]
    fn insert_searched(&mut self, pos: usize, seq: u32) -> (usize, usize) {
        let buckets = if self.next_pos == pos {
            self.next
        } else {
            self.buckets(seq)
        };
        let heads = self.insert_at(pos, buckets);
        if let Some(b) = self.data.get(pos + 1..pos + 5) {
            let next = self.buckets(u32::from_le_bytes(b.try_into().expect("four bytes")));
            super::prefetch(&self.head3[next.0]);
            super::prefetch(&self.head4[next.1]);
            self.next_pos = pos + 1;
            self.next = next;
        }
        heads
    }

    /// Inserts positions `from..to` without searching, stopping short of the input's end.
    #[inline(always)]
    fn skip(&mut self, from: usize, to: usize) {
        let to = to.min((self.data.len() + 1).saturating_sub(HashChains::MIN_BYTES));
        if from >= to {
            return;
        }
        // SAFETY (the reads below): every `pos` read has `pos < to <= data.len() - 3`, so
        // its four bytes are inside `data`.
        assert!(to + HashChains::MIN_BYTES - 1 <= self.data.len());
        let dp = self.data.as_ptr();
        let mut buckets = if self.next_pos == from {
            self.next
        } else {
            self.buckets(unsafe { read_u32_raw(dp, from) })
        };
        let mut pos = from;
        loop {
            self.insert_at(pos, buckets);
            pos += 1;
            if pos == to {
                break;
            }
            buckets = self.buckets(unsafe { read_u32_raw(dp, pos) });
        }
    }

    /// Inserts `pos` and appends to `out` each match that is longer than all closer ones
    /// (as `len << 16 | offset`), examining at most `depth` chain entries and stopping at
    /// `nice_len` (at most the bytes left). Returns the longest length found (or 0).
    #[inline(always)]
    fn all_matches(
        &mut self,
        pos: usize,
        nice_len: usize,
        mut depth: u32,
        out: &mut Vec<u32>,
    ) -> usize {
        let data = self.data;
        let max_len = data.len() - pos;
        let seq = load_u32(data, pos);
        let (cand3, mut cand) = self.insert_searched(pos, seq);
        if cand3 == 0 {
            // As in `longest_match`: no earlier position shares the first three bytes' hash.
            return 0;
        }
        let mut best_len = 0;
        if (load_u32(data, cand3) ^ seq) & 0xFF_FFFF == 0 {
            best_len = MIN_MATCH_LEN;
            out.push((MIN_MATCH_LEN as u32) << 16 | (pos - cand3) as u32);
        }
        while cand != 0 && depth > 0 && best_len < nice_len {
            depth -= 1;
            let plausible = if best_len < 4 {
                load_u32(data, cand) == seq
            } else {
                let tail = best_len - 3;
                load_u32(data, cand + tail) == load_u32(data, pos + tail)
                    && load_u32(data, cand) == seq
            };
            if plausible {
                let len = extend_match(data, cand, pos, 4, max_len);
                if len > best_len {
                    best_len = len;
                    out.push((len as u32) << 16 | (pos - cand) as u32);
                }
            }
            cand = usize::from(self.prev[cand]);
        }
        best_len
    }

    /// Inserts `pos` and finds its longest match longer than `best_len`, examining at most
    /// `depth` chain entries and stopping early at `nice_len` (at most the bytes left).
    /// Returns `(best_len, 0)` if there is no longer match.
    #[inline(always)]
    fn longest_match(
        &mut self,
        pos: usize,
        mut best_len: usize,
        nice_len: usize,
        mut depth: u32,
    ) -> (usize, usize) {
        let data = self.data;
        let max_len = data.len() - pos;
        let seq = load_u32(data, pos);
        let (cand3, mut cand) = self.insert_searched(pos, seq);
        let mut best_offset = 0;
        if best_len < MIN_MATCH_LEN && cand3 != 0 && (load_u32(data, cand3) ^ seq) & 0xFF_FFFF == 0
        {
            best_len = MIN_MATCH_LEN;
            best_offset = pos - cand3;
        }
        if best_len >= nice_len {
            return (best_len, best_offset);
        }
        // The walks below read `data` and `prev` through raw pointers. SAFETY: every
        // candidate they follow passes `cand.wrapping_sub(1) < pos - 1`, so `1 <= cand < pos`
        // (chains only lead to earlier positions; the test makes that certain). Reads are
        // four bytes at `cand` (`cand + 4 <= pos + 4 <= data.len()`, as `max_len >= 4`) and
        // at `cand + best_len - 3` (ending at `cand + best_len + 1 <= cand + max_len <
        // data.len()`, since `best_len < nice_len <= max_len`), and `prev[cand]` with
        // `cand < pos < data.len() == prev.len()`.
        assert!(max_len >= HashChains::MIN_BYTES && nice_len <= max_len);
        let dp = data.as_ptr();
        let prev = self.prev.as_ptr();
        let limit = pos.saturating_sub(1);
        // Until a 4-byte match turns up, any candidate whose first four bytes match will do;
        // after that, a candidate must also match the four bytes ending one past the best
        // length, which rejects most without extending them.
        if best_len < 4 {
            // No earlier position shares even the first three bytes' hash: then none shares
            // the first four bytes either, and the 4-byte chain holds only collisions.
            if cand3 == 0 {
                return (best_len, best_offset);
            }
            loop {
                if cand.wrapping_sub(1) >= limit || depth == 0 {
                    return (best_len, best_offset);
                }
                depth -= 1;
                // SAFETY: see above.
                if unsafe { read_u32_raw(dp, cand) } == seq {
                    break;
                }
                // SAFETY: `cand < pos`, see above.
                cand = usize::from(unsafe { *prev.add(cand) });
            }
            best_len = extend_match(data, cand, pos, 4, max_len);
            best_offset = pos - cand;
            if best_len >= nice_len {
                return (best_len, best_offset);
            }
            // SAFETY: `cand < pos`, see above.
            cand = usize::from(unsafe { *prev.add(cand) });
        }
        // The four bytes ending one past the best length, reloaded only when it grows
        // (`best_len < nice_len <= max_len` here, so they are inside `data`).
        let mut tail = best_len - 3;
        let mut tail_seq = load_u32(data, pos + tail);
        while cand.wrapping_sub(1) < limit && depth > 0 {
            depth -= 1;
            // SAFETY: see above.
            if unsafe { read_u32_raw(dp, cand + tail) == tail_seq && read_u32_raw(dp, cand) == seq }
            {
                let len = extend_match(data, cand, pos, 4, max_len);
                if len > best_len {
                    best_len = len;
                    best_offset = pos - cand;
                    if len >= nice_len {
                        break;
                    }
                    tail = best_len - 3;
                    tail_seq = load_u32(data, pos + tail);
                }
            }
            // SAFETY: `cand < pos`, see above.
            cand = usize::from(unsafe { *prev.add(cand) });
        }
        (best_len, best_offset)
    }
}

/// A canonical Huffman code over the 512 symbols, plus the scratch space to build one.
struct HuffmanCode {
    lens: [u8; NUM_SYMBOLS],
    codewords: [u16; NUM_SYMBOLS],
    /// Used symbols as `freq << 9 | symbol`, sorted by frequency.
    keys: [u32; NUM_SYMBOLS],
    /// Tree node scratch: parents of leaves, then weights and depths of internal nodes.
    leaf_parent: [u16; NUM_SYMBOLS],
    node: [u32; NUM_SYMBOLS],
    node_parent: [u16; NUM_SYMBOLS],
}

impl HuffmanCode {
    fn new() -> Self {
        Self {
            lens: [0; NUM_SYMBOLS],
            codewords: [0; NUM_SYMBOLS],
            keys: [0; NUM_SYMBOLS],
            leaf_parent: [0; NUM_SYMBOLS],
            node: [0; NUM_SYMBOLS],
            node_parent: [0; NUM_SYMBOLS],
        }
    }

    /// Builds the code for `freqs` (each below 2^23). Decoders insist on a complete code, so
    /// fewer than two used symbols still get two codewords.
    fn build(&mut self, freqs: &[u32; NUM_SYMBOLS]) {
        self.build_lengths(freqs);
        self.assign_codewords();
    }

    fn build_lengths(&mut self, freqs: &[u32; NUM_SYMBOLS]) {
        self.lens = [0; NUM_SYMBOLS];
        let mut n = 0;
        for (sym, &freq) in freqs.iter().enumerate() {
            if freq != 0 {
                self.keys[n] = freq << 9 | sym as u32;
                n += 1;
            }
        }
        if n < 2 {
            let used = if n == 1 {
                self.keys[0] as usize & 511
            } else {
                0
            };
            self.lens[used] = 1;
            self.lens[if used == 0 { 1 } else { 0 }] = 1;
            return;
        }
        let keys = &mut self.keys[..n];
        keys.sort_unstable();

        // Huffman's algorithm with two queues: leaves in frequency order, and internal nodes,
        // which are created in non-decreasing weight order, so the two smallest weights are
        // always at the queue fronts. Internal node `j` is the `j`th merge; the root is last.
        let (node, node_parent, leaf_parent) =
            (&mut self.node, &mut self.node_parent, &mut self.leaf_parent);
        let (mut leaf, mut inner) = (0, 0);
        for j in 0..n - 1 {
            let mut weight = 0;
            for _ in 0..2 {
                if leaf < n && (inner == j || keys[leaf] >> 9 <= node[inner]) {
                    weight += keys[leaf] >> 9;
                    leaf_parent[leaf] = j as u16;
                    leaf += 1;
                } else {
                    weight += node[inner];
                    node_parent[inner] = j as u16;
                    inner += 1;
                }
            }
            node[j] = weight;
        }
        // Depths, root first: parents always come after their children.
        node[n - 2] = 0;
        for j in (0..n - 2).rev() {
            node[j] = node[usize::from(node_parent[j])] + 1;
        }
        let mut count = [0u32; MAX_CODEWORD_LEN + 2];
        for &parent in &leaf_parent[..n] {
            let depth = node[usize::from(parent)] as usize + 1;
            count[depth.min(MAX_CODEWORD_LEN + 1)] += 1;
        }

        // Length limiting: clamp deep leaves to 15 bits, which over-fills the code space, then
        // repeatedly drop one 15-bit codeword and split the deepest shorter one into two
        // one bit longer, each step freeing one unit of 2^-15 until the code is exactly full.
        // Leaves stay in frequency order, so the rarest symbols absorb the extra bits.
        count[MAX_CODEWORD_LEN] += count[MAX_CODEWORD_LEN + 1];
        count[MAX_CODEWORD_LEN + 1] = 0;
        let mut space: u32 = (1..=MAX_CODEWORD_LEN)
            .map(|len| count[len] << (MAX_CODEWORD_LEN - len))
            .sum();
        while space > 1 << MAX_CODEWORD_LEN {
            count[MAX_CODEWORD_LEN] -= 1;
            for len in (1..MAX_CODEWORD_LEN).rev() {
                if count[len] != 0 {
                    count[len] -= 1;
                    count[len + 1] += 2;
                    break;
                }
            }
            space -= 1;
        }

        // Hand out the lengths, longest to the rarest symbols.
        let mut i = 0;
        for len in (1..=MAX_CODEWORD_LEN).rev() {
            for &key in &keys[i..i + count[len] as usize] {
                self.lens[key as usize & 511] = len as u8;
            }
            i += count[len] as usize;
        }
    }

    /// Canonical codewords: ordered by length, then by symbol, as decoders reconstruct them.
    fn assign_codewords(&mut self) {
        let mut count = [0u16; MAX_CODEWORD_LEN + 1];
        for &len in &self.lens {
            count[usize::from(len)] += 1;
        }
        count[0] = 0;
        let mut next = [0u16; MAX_CODEWORD_LEN + 1];
        for len in 1..=MAX_CODEWORD_LEN {
            next[len] = (next[len - 1] + count[len - 1]) << 1;
        }
        for (sym, &len) in self.lens.iter().enumerate() {
            if len != 0 {
                self.codewords[sym] = next[usize::from(len)];
                next[usize::from(len)] += 1;
            }
        }
    }
}

/// Writes the bitstream for `items` and the end-of-data symbol; returns the bytes written.
#[inline(always)]
fn write_items(stream: &mut [u8], items: &[Item], code: &HuffmanCode) -> usize {
    let mut w = BitWriter::new(stream);
    for &item in items {
        w.item(item, code);
    }
    w.symbol(END_OF_DATA, code);
    w.finish()
}

/// Writes the bitstream into a buffer already sized to fit it exactly.
///
/// Bits collect in `acc` (the newest in the low bits); whenever more than 16 are pending, the
/// oldest 16 go to the word slot `slots[0]`. The writer keeps two word slots reserved ahead of
/// the byte cursor `next` because that is how far ahead a decoder has read when it meets a
/// length byte; bytes therefore land at `next`, after both reserved words.
struct BitWriter<'a> {
    out: &'a mut [u8],
    acc: u64,
    pending: u32,
    slots: [usize; 2],
    next: usize,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut [u8]) -> Self {
        Self {
            out,
            acc: 0,
            pending: 0,
            slots: [0, 2],
            next: 4,
        }
    }

    /// Appends `n` bits (at most 32, and at most 48 may be pending afterwards).
    #[inline(always)]
    fn bits(&mut self, value: u32, n: u32) {
        self.acc = self.acc << n | u64::from(value);
        self.pending += n;
    }

    /// Moves whole words out until at most 16 bits are pending, exactly as a writer that
    /// flushes after every field would.
    #[inline(always)]
    fn flush(&mut self) {
        while self.pending > 16 {
            self.pending -= 16;
            let word = (self.acc >> self.pending) as u16;
            let slot = self.slots[0];
            self.out[slot..slot + 2].copy_from_slice(&word.to_le_bytes());
            self.slots = [self.slots[1], self.next];
            self.next += 2;
        }
    }

    #[inline(always)]
    fn byte(&mut self, b: u8) {
        self.out[self.next] = b;
        self.next += 1;
    }

    #[inline(always)]
    fn symbol(&mut self, sym: usize, code: &HuffmanCode) {
        self.bits(u32::from(code.codewords[sym]), u32::from(code.lens[sym]));
        self.flush();
    }

    #[inline(always)]
    fn item(&mut self, item: Item, code: &HuffmanCode) {
        let offset = (item & 0xFFFF) as usize;
        let high = (item >> 16) as usize;
        if offset == 0 {
            self.symbol(high, code);
            return;
        }
        let sym = match_symbol(high, offset);
        let offset_bits = offset.ilog2();
        let offset_low = offset as u32 & ((1 << offset_bits) - 1);
        if high >= 15 {
            // The length bytes go where the decoder's cursor is after reading the symbol, so
            // the symbol's bits must be flushed first and the offset bits after.
            self.symbol(sym, code);
            let extra = (high - 15).min(255) as u8;
            self.byte(extra);
            if extra == 255 {
                for b in (high as u16).to_le_bytes() {
                    self.byte(b);
                }
            }
            self.bits(offset_low, offset_bits);
            self.flush();
        } else {
            // Nothing between symbol and offset bits, so both go in at once; flushing after
            // the pair yields the same words as flushing after each.
            let len = u32::from(code.lens[sym]);
            let word = u32::from(code.codewords[sym]) << offset_bits | offset_low;
            self.bits(word, len + offset_bits);
            self.flush();
        }
    }

    /// Writes the last partial word and the trailing zero word; returns the bytes written.
    fn finish(self) -> usize {
        let word = (self.acc << (16 - self.pending)) as u16;
        let [a, b] = self.slots;
        self.out[a..a + 2].copy_from_slice(&word.to_le_bytes());
        self.out[b..b + 2].copy_from_slice(&[0, 0]);
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::super::xpress::XpressDecoder;
    use super::super::Decompressor;
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

    fn decode(chunk: &[u8], size: usize) -> Vec<u8> {
        let mut out = vec![0; size];
        XpressDecoder::new(65536)
            .unwrap()
            .decompress(chunk, &mut out)
            .expect("decoder rejected encoder output");
        out
    }

    /// Encodes unconditionally and checks the decoder gives the input back.
    fn round_trip(enc: &mut XpressEncoder, data: &[u8]) -> usize {
        let mut out = Vec::new();
        assert!(enc.encode(data, &mut out, usize::MAX));
        assert_eq!(decode(&out, data.len()), data, "len {}", data.len());
        // The public entry point agrees, or declines only when there is nothing to gain.
        let mut out2 = Vec::new();
        if enc.compress(data, &mut out2) {
            assert_eq!(out2, out);
            assert!(out2.len() < data.len());
        } else {
            assert!(out.len() >= data.len());
        }
        out.len()
    }

    /// Text-like data: words from a small vocabulary, so there are many matches of varied
    /// lengths and offsets.
    fn text(rng: &mut Rng, len: usize) -> Vec<u8> {
        const WORDS: &[&str] = &[
            "the ",
            "quick ",
            "brown ",
            "fox ",
            "jumps ",
            "over ",
            "lazy ",
            "dog ",
            "and ",
            "runs ",
            "away\n",
            "compression ",
            "of ",
            "windows ",
            "imaging ",
            "files, ",
        ];
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            out.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
            if rng.below(20) == 0 {
                out.push(rng.next() as u8);
            }
        }
        out.truncate(len);
        out
    }

    /// Binary-like data: random records with repeats at random distances, plus runs.
    fn binary(rng: &mut Rng, len: usize) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::with_capacity(len);
        while out.len() < len {
            match rng.below(4) {
                0 if out.len() > 8 => {
                    let from = rng.below(out.len());
                    let cap = if rng.below(8) == 0 { 2000 } else { 30 };
                    let n = 3 + rng.below(cap);
                    for i in 0..n {
                        out.push(out[from + i % (out.len() - from)]);
                    }
                }
                1 => {
                    let b = rng.next() as u8;
                    out.extend(std::iter::repeat_n(b, rng.below(300)));
                }
                _ => {
                    for _ in 0..rng.below(16) {
                        out.push(rng.next() as u8 & 0x1F);
                    }
                }
            }
        }
        out.truncate(len);
        out
    }

    const LEVELS: &[u32] = &[1, 10, 29, 30, 50, 59, 60, 80, 100];

    #[test]
    fn tiny_inputs_round_trip() {
        let mut rng = Rng(5);
        for &level in LEVELS {
            let mut enc = XpressEncoder::new(4096, level).unwrap();
            for len in 0..=64 {
                for pattern in 0..3 {
                    let data: Vec<u8> = (0..len)
                        .map(|i| match pattern {
                            0 => 0,
                            1 => rng.next() as u8,
                            _ => (i % 3) as u8,
                        })
                        .collect();
                    round_trip(&mut enc, &data);
                }
            }
        }
    }

    /// The build for processors without BMI produces the same bytes as the one with it
    /// (which the other tests run on machines that have it).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn plain_and_bmi_builds_agree() {
        let mut rng = Rng(0x5EED);
        for &chunk in &[32768u32, 5000] {
            for &level in LEVELS {
                let n = chunk as usize;
                let inputs = [
                    text(&mut rng, n),
                    binary(&mut rng, n),
                    (0..n).map(|_| rng.next() as u8).collect(),
                ];
                for input in &inputs {
                    let mut outs = Vec::new();
                    for bmi in [false, true] {
                        let mut enc = XpressEncoder::new(chunk, level).unwrap();
                        if bmi && !enc.bmi {
                            continue;
                        }
                        enc.bmi = bmi;
                        let mut out = Vec::new();
                        assert!(enc.encode(input, &mut out, usize::MAX));
                        assert_eq!(decode(&out, input.len()), *input);
                        outs.push(out);
                    }
                    assert!(outs.windows(2).all(|w| w[0] == w[1]), "level {level}");
                }
            }
        }
    }

    #[test]
    fn generated_data_all_levels_and_chunk_sizes() {
        let mut rng = Rng(0xDEAD_BEEF);
        for &chunk in &[4096u32, 8192, 16384, 32768, 65536, 1000, 12345] {
            for &level in LEVELS {
                let mut enc = XpressEncoder::new(chunk, level).unwrap();
                let n = chunk as usize;
                let zeros = vec![0u8; n];
                assert!(round_trip(&mut enc, &zeros) < 400);
                let random: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                round_trip(&mut enc, &random);
                let t = text(&mut rng, n);
                assert!(round_trip(&mut enc, &t) < n / 2 + 300);
                round_trip(&mut enc, &binary(&mut rng, n));
                // A chunk shorter than the chunk size, as at the end of a file.
                round_trip(&mut enc, &t[..n / 3]);
            }
        }
    }

    #[test]
    fn long_matches_use_all_length_forms() {
        // Periodic data gives matches just under and over the 1-byte and 3-byte length
        // forms' limits.
        let mut enc = XpressEncoder::new(65536, 100).unwrap();
        for period in [1usize, 2, 3, 7, 250] {
            for len in [17, 18, 19, 272, 273, 274, 1000, 65535, 65536] {
                let data: Vec<u8> = (0..len).map(|i| (i % period * 37) as u8).collect();
                round_trip(&mut enc, &data);
            }
        }
    }

    #[test]
    fn random_inputs_round_trip() {
        // A proptest-style loop: random sizes, contents mixing all generators, random levels,
        // one encoder reused across many chunks (exercising the table tagging).
        let mut rng = Rng(42);
        let mut encoders: Vec<XpressEncoder> = [1, 20, 45, 70, 95]
            .iter()
            .map(|&l| XpressEncoder::new(65536, l).unwrap())
            .collect();
        for _ in 0..400 {
            let len = match rng.below(3) {
                0 => rng.below(300),
                1 => rng.below(5000),
                _ => rng.below(65537),
            };
            let mut data = Vec::with_capacity(len);
            while data.len() < len {
                let part = 1 + rng.below(len - data.len());
                match rng.below(4) {
                    0 => data.extend(text(&mut rng, part)),
                    1 => data.extend(binary(&mut rng, part)),
                    2 => data.extend((0..part).map(|_| rng.next() as u8)),
                    _ => data.extend(std::iter::repeat_n(rng.next() as u8, part)),
                }
            }
            let which = rng.below(encoders.len());
            round_trip(&mut encoders[which], &data);
        }
    }

    #[test]
    fn huffman_codes_are_complete_and_limited() {
        let mut rng = Rng(77);
        let mut code = HuffmanCode::new();
        for round in 0..500 {
            let mut freqs = [0u32; NUM_SYMBOLS];
            let used = 1 + rng.below(NUM_SYMBOLS);
            for _ in 0..used {
                // Fibonacci-like skew forces deep trees that need limiting.
                let f = if round % 2 == 0 {
                    1 + rng.below(1000) as u32
                } else {
                    1u32 << rng.below(22)
                };
                freqs[rng.below(NUM_SYMBOLS)] = f;
            }
            code.build(&freqs);
            let space: u32 = code
                .lens
                .iter()
                .filter(|&&l| l != 0)
                .map(|&l| 1 << (15 - l))
                .sum();
            assert_eq!(space, 1 << 15);
            for (sym, &f) in freqs.iter().enumerate() {
                assert!(code.lens[sym] <= 15);
                assert!(f == 0 || code.lens[sym] != 0);
            }
        }
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(XpressEncoder::new(0, 50).is_err());
        assert!(XpressEncoder::new(65537, 50).is_err());
        assert!(XpressEncoder::new(32768, 0).is_err());
        assert!(XpressEncoder::new(32768, 101).is_err());
        assert!(XpressEncoder::new(65536, 100).is_ok());
    }

    #[test]
    fn incompressible_chunks_are_declined() {
        let mut rng = Rng(1);
        let mut enc = XpressEncoder::new(32768, 50).unwrap();
        let random: Vec<u8> = (0..32768).map(|_| rng.next() as u8).collect();
        let mut out = vec![1, 2, 3];
        assert!(!enc.compress(&random, &mut out));
        assert!(out.is_empty());
        assert!(!enc.compress(b"tiny", &mut out));
    }
}
