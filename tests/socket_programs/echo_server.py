# asyncio unix-socket server: answers each line with the line reversed, and exits once CONNS
# connections have come and gone, saying how many requests it served. With PATH
# tcp:HOST:PORTFILE it listens on HOST (127.0.0.1, ::1) at a port the kernel picks, written
# to PORTFILE before "ready".
# Usage: echo_server.py PATH CONNS
import asyncio
import os
import sys

LIMIT = 1 << 22  # one request may be 1 MiB; asyncio's default line limit is 64 KiB


async def main(path, conns):
    done = asyncio.Event()
    served = [0, 0]  # connections, requests

    async def handle(reader, writer):
        while line := await reader.readline():
            writer.write(line[:-1][::-1] + b"\n")
            await writer.drain()
            served[1] += 1
        writer.close()
        await writer.wait_closed()
        served[0] += 1
        if served[0] == conns:
            done.set()

    if path.startswith("tcp:"):
        host, portfile = path[4:].rsplit(":", 1)
        server = await asyncio.start_server(handle, host, 0, limit=LIMIT)
        with open(portfile + ".tmp", "w") as f:
            f.write(str(server.sockets[0].getsockname()[1]))
        os.rename(portfile + ".tmp", portfile)
    else:
        server = await asyncio.start_unix_server(handle, path=path, limit=LIMIT)
    print("ready", flush=True)
    async with server:
        await done.wait()
    print(f"served {served[1]} requests over {served[0]} connections", flush=True)


asyncio.run(main(sys.argv[1], int(sys.argv[2])))
