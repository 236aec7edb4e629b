#!/usr/bin/env bash
# Remote-image benchmark: the corpus's LZX image (wimlib-captured, see bench-corpus.sh) served
# by nginx on 127.0.0.1 behind a small proxy that delays every request by DELAY_MS (default
# 20), one request per connection. Prints bytes transferred (response bodies, from nginx's
# log) and wall time for
#   (a) mount + find walk          against the header, blob table, XML and metadata's size
#   (b) reading one ~10 MB file    against that file's compressed resource
#   (c) a full read (tar)          against a plain download of the WIM through the proxy,
#                                  and against the same read from a mount of the local file
#   (d) remount, full read again   with the --cache-dir (c) filled: nothing should be fetched
#   DELAY_MS=20 SOURCES="/usr/share:/share" TAG=share scripts/bench-remote.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --workspace --release --quiet
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
wimfs=$bin/wimfs
. scripts/bench-corpus.sh
wim=$(capture lzx --compress=lzx)
delay=${DELAY_MS:-20}

work=$(mktemp -d)
mnt=$work/mnt
mkdir -p "$work/www" "$work/tmp" "$mnt" "$work/cache"
ln -s "$wim" "$work/www/image.wim"
pids=()
cleanup() {
    mountpoint -q "$mnt" && { "$wimfs" unmount "$mnt" >/dev/null 2>&1 || fusermount3 -u -z "$mnt"; }
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap "exit 130" INT TERM

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up=$(port)
cat > "$work/nginx.conf" <<EOF
daemon off;
master_process off;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 256; }
http {
  log_format bytes '\$body_bytes_sent';
  access_log $work/access.log bytes;
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  server { listen 127.0.0.1:$up; root $work/www; }
}
EOF
nginx=$(command -v nginx || echo /usr/sbin/nginx)
"$nginx" -c "$work/nginx.conf" -p "$work" >/dev/null 2>&1 &
pids+=($!)
front=$(port)
python3 - "$front" "$up" "$delay" <<'PY' &
import asyncio, sys
listen, upstream, delay = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000
async def handle(r, w):
    try:
        head = await r.readuntil(b"\r\n\r\n")
        await asyncio.sleep(delay)
        lines = [l for l in head.split(b"\r\n") if l and not l.lower().startswith(b"connection:")]
        ur, uw = await asyncio.open_connection("127.0.0.1", upstream)
        uw.write(b"\r\n".join(lines) + b"\r\nConnection: close\r\n\r\n")
        await uw.drain()
        while data := await ur.read(1 << 18):
            w.write(data)
            await w.drain()
        uw.close()
    except Exception:
        pass
    finally:
        w.close()
async def main():
    async with await asyncio.start_server(handle, "127.0.0.1", listen) as s:
        await s.serve_forever()
asyncio.run(main())
PY
pids+=($!)
sleep 1
url=http://127.0.0.1:$front/image.wim

sent() { awk '{s += $1} END {print s + 0}' "$work/access.log"; }
mb() { echo "scale=1; $1 / 1048576" | bc; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }

# What a mount needs before any file data: header, blob table, XML, metadata resources.
needed=$(python3 - "$wim" <<'PY'
import struct, sys
b = open(sys.argv[1], 'rb')
h = b.read(208)
def res(off):
    raw, o, u = struct.unpack_from('<QQQ', h, off)
    return raw & ((1 << 56) - 1), raw >> 56, o
bt_size, _, bt_off = res(48)
xml_size, _, _ = res(72)
b.seek(bt_off); t = b.read(bt_size)
meta = sum(struct.unpack_from('<Q', t, i)[0] & ((1 << 56) - 1)
           for i in range(0, len(t) - 49, 50) if t[i + 7] & 0x02)
print(208 + bt_size + xml_size + meta)
PY
)

printf '%-34s %10s %10s %8s %9s\n' case MB_moved MB_goal ratio seconds
row() { printf '%-34s %10s %10s %8.3f %9.2f\n' "$1" "$(mb "$2")" "$(mb "$3")" "$(echo "$2 / $3" | bc -l)" "$4"; }

# Plain download through the same proxy.
before=$(sent); drop
t=$(timeit curl -sS -f -o /dev/null "$url")
size=$(stat -L -c %s "$wim")
download=$t
row "download (curl)" $(( $(sent) - before )) "$size" "$t"

# (a) mount + walk
before=$(sent); drop
s=$(date +%s.%N)
"$wimfs" mount "$url" 1 "$mnt" --cache-dir "$work/cache"
find "$mnt" > /dev/null
e=$(date +%s.%N)
row "(a) mount + find" $(( $(sent) - before )) "$needed" "$(echo "$e - $s" | bc -l)"

# (b) one file of about 10 MB (the closest), against its compressed resource
file=$(find "$mnt" -type f -size +8M -size -40M -printf '%s %p\n' | awk '{d = $1 - 10485760; if (d < 0) d = -d; print d, $2}' | sort -n | head -1 | cut -d' ' -f2-)
hash=$(sha1sum "$file" | cut -d' ' -f1)
compressed=$(python3 - "$wim" "$hash" <<'PY'
import struct, sys
f = open(sys.argv[1], 'rb'); h = f.read(208)
raw, off, _ = struct.unpack_from('<QQQ', h, 48)
f.seek(off); t = f.read(raw & ((1 << 56) - 1))
want = bytes.fromhex(sys.argv[2])
for i in range(0, len(t) - 49, 50):
    if t[i + 30:i + 50] == want:
        print(struct.unpack_from('<Q', t, i)[0] & ((1 << 56) - 1)); break
PY
)
"$wimfs" unmount "$mnt"; rm -rf "$work/cache"; mkdir -p "$work/cache"
"$wimfs" mount "$url" 1 "$mnt" --cache-dir "$work/cache"
before=$(sent); drop
t=$(timeit cat "$file")
row "(b) read $(basename "$file") ($(mb "$(stat -c %s "$file")") MB)" $(( $(sent) - before )) "$compressed" "$t"

# (c) full read
before=$(sent); drop
t=$(timeit sh -c "tar -C '$mnt' -cf - . | cat > /dev/null")
row "(c) full read (vs WIM size)" $(( $(sent) - before )) "$size" "$t"
remote_read=$t
"$wimfs" unmount "$mnt"
# The same full read from a mount of the local file: what decoding alone costs.
"$wimfs" mount "$wim" 1 "$mnt"
drop
t=$(timeit sh -c "tar -C '$mnt' -cf - . | cat > /dev/null")
"$wimfs" unmount "$mnt"
printf '%-34s %10s %10s %8s %9.2f\n' "    full read, local file mounted" - - - "$t"
echo "    full read / download time: $(echo "scale=2; $remote_read / $download" | bc)," \
    "/ local mount's: $(echo "scale=2; $remote_read / $t" | bc)"

# (d) remount with the cache filled
before=$(sent); drop
s=$(date +%s.%N)
"$wimfs" mount "$url" 1 "$mnt" --cache-dir "$work/cache"
tar -C "$mnt" -cf - . | cat > /dev/null
e=$(date +%s.%N)
moved=$(( $(sent) - before ))
printf '%-34s %10s %10s %8s %9.2f\n' "(d) remount + full read, warm" "$(mb "$moved")" 0 - "$(echo "$e - $s" | bc -l)"
"$wimfs" unmount "$mnt"
