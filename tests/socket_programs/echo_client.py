# asyncio unix-socket client: CONNS concurrent connections to echo_server.py, each sending
# REQS lines of varying sizes (the first 1 MiB) and checking every answer. With PATH
# tcp:HOST:PORTFILE it connects over TCP to HOST at the port in PORTFILE.
# Usage: echo_client.py PATH CONNS REQS
import asyncio
import hashlib
import sys

LIMIT = 1 << 22
ALPHABET = bytes(range(ord("a"), ord("z") + 1)) * ((1 << 20) // 26 + 2)


def request(conn, i):
    size = 1 << 20 if i == 0 else (conn * 7919 + i * 104729) % 20000 + 1
    start = (conn + i) % 26
    return ALPHABET[start:start + size]


async def client(path, conn, reqs):
    if path.startswith("tcp:"):
        host, portfile = path[4:].rsplit(":", 1)
        with open(portfile) as f:
            port = int(f.read())
        reader, writer = await asyncio.open_connection(host, port, limit=LIMIT)
    else:
        reader, writer = await asyncio.open_unix_connection(path, limit=LIMIT)
    bad, nbytes, digest = 0, 0, hashlib.sha256()
    for i in range(reqs):
        req = request(conn, i)
        writer.write(req + b"\n")
        await writer.drain()
        answer = await reader.readline()
        bad += answer != req[::-1] + b"\n"
        nbytes += len(answer)
        digest.update(answer)
    writer.close()
    await writer.wait_closed()
    return bad, nbytes, digest.hexdigest()


async def main(path, conns, reqs):
    results = await asyncio.gather(*(client(path, c, reqs) for c in range(conns)))
    total = hashlib.sha256("".join(r[2] for r in results).encode()).hexdigest()[:16]
    print(f"{conns} connections, {conns * reqs} requests, {sum(r[0] for r in results)} bad, "
          f"{sum(r[1] for r in results)} bytes back, digest {total}")


asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
