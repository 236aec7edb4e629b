#!/usr/bin/env python3
"""Writes fuzz seeds: compressed chunks and metadata resources from WIMs made by wimlib-imagex.

Seed format of the codec targets: byte 0 selects the chunk size (1 << (12 + b % 10)), bytes
1-2 hold the output length minus one (LE), then the compressed chunk.
"""
import os, struct, subprocess, sys, tempfile

def reshdr(b, off):
    raw, = struct.unpack_from('<Q', b, off)
    return raw & ((1 << 56) - 1), raw >> 56, *struct.unpack_from('<QQ', b, off + 8)

def chunks(wim):
    b = open(wim, 'rb').read()
    chunk_size, = struct.unpack_from('<I', b, 20)
    size, flags, off, usize = reshdr(b, 48)
    table = b[off:off + size]
    for i in range(0, len(table) - 49, 50):
        size, flags, off, usize = reshdr(table, i)
        if flags & 0x10 or not flags & 0x04 or usize >= 1 << 32:
            continue
        n = (usize + chunk_size - 1) // chunk_size
        starts = [0] + [struct.unpack_from('<I', b, off + 4 * k)[0] for k in range(n - 1)]
        base = off + 4 * (n - 1)
        ends = starts[1:] + [size - 4 * (n - 1)]
        for k in range(n):
            u = min(chunk_size, usize - k * chunk_size)
            c = b[base + starts[k]:base + ends[k]]
            if len(c) < u:
                yield chunk_size, u, c

def metadata(wim):
    b = open(wim, 'rb').read()
    size, flags, off, usize = reshdr(b, 48)
    table = b[off:off + size]
    for i in range(0, len(table) - 49, 50):
        size, flags, off, usize = reshdr(table, i)
        if flags & 0x02 and not flags & 0x04:
            yield b[off:off + size]

def main():
    root = os.path.join(os.path.dirname(__file__), '..', 'fuzz', 'corpus')
    with tempfile.TemporaryDirectory() as t:
        src = os.path.join(t, 'src')
        os.makedirs(os.path.join(src, 'd'))
        open(os.path.join(src, 'text.txt'), 'w').write(''.join(f'line {i} of some text\n' for i in range(3000)))
        open(os.path.join(src, 'd', 'bin'), 'wb').write(open(sys.executable, 'rb').read()[:300000])
        open(os.path.join(src, 'd', 'small'), 'w').write('tiny file contents, tiny file contents')
        os.symlink('../text.txt', os.path.join(src, 'd', 'link'))
        os.link(os.path.join(src, 'text.txt'), os.path.join(src, 'hard'))
        for name, args in [('xpress', ['--compress=xpress', '--chunk-size=32768']),
                           ('lzx', ['--compress=lzx', '--chunk-size=32768']),
                           ('lzms', ['--compress=lzms', '--chunk-size=65536']),
                           ('metadata', ['--compress=none', '--unix-data'])]:
            wim = os.path.join(t, name + '.wim')
            subprocess.run(['wimlib-imagex', 'capture', src, wim] + args, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            out = os.path.join(root, name)
            os.makedirs(out, exist_ok=True)
            if name == 'metadata':
                for k, m in enumerate(metadata(wim)):
                    open(os.path.join(out, f'seed-{k}'), 'wb').write(m)
                continue
            for k, (cs, u, c) in enumerate(chunks(wim)):
                sel = (cs.bit_length() - 1 - 12) % 10
                open(os.path.join(out, f'seed-{k}'), 'wb').write(bytes([sel]) + struct.pack('<H', u - 1) + c)
        # Whole small WIMs for the `wim` target: every compression, solid, UNIX data, links.
        tiny = os.path.join(t, 'tiny')
        os.makedirs(os.path.join(tiny, 'd', 'e'))
        open(os.path.join(tiny, 'a.txt'), 'w').write(''.join(f'line {i}\n' for i in range(400)))
        open(os.path.join(tiny, 'd', 'e', 'b'), 'w').write('bee' * 50)
        open(os.path.join(tiny, 'empty'), 'w').close()
        os.symlink('../a.txt', os.path.join(tiny, 'd', 'link'))
        os.symlink('/abs/target', os.path.join(tiny, 'abs'))
        os.link(os.path.join(tiny, 'a.txt'), os.path.join(tiny, 'd', 'hard'))
        out = os.path.join(root, 'wim')
        os.makedirs(out, exist_ok=True)
        for name, args in [('none', ['--compress=none']), ('xpress', ['--compress=xpress']),
                           ('lzx', ['--compress=lzx', '--unix-data']),
                           ('lzms', ['--compress=lzms', '--chunk-size=32768']),
                           ('solid', ['--solid']), ('check', ['--compress=xpress', '--check'])]:
            wim = os.path.join(out, f'seed-{name}.wim')
            subprocess.run(['wimlib-imagex', 'capture', tiny, wim, 'tiny'] + args, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if name == 'xpress':
                subprocess.run(['wimlib-imagex', 'append', tiny, wim, 'second'], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.makedirs(os.path.join(root, 'structures'), exist_ok=True)
        b = open(os.path.join(t, 'lzx.wim'), 'rb').read()
        open(os.path.join(root, 'structures', 'header'), 'wb').write(b[:208])

main()
