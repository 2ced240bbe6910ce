# asyncio unix-socket server: answers each line with the line reversed, and exits once CONNS
# connections have come and gone, saying how many requests it served.
# Usage: echo_server.py PATH CONNS
import asyncio
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

    server = await asyncio.start_unix_server(handle, path=path, limit=LIMIT)
    print("ready", flush=True)
    async with server:
        await done.wait()
    print(f"served {served[1]} requests over {served[0]} connections", flush=True)


asyncio.run(main(sys.argv[1], int(sys.argv[2])))
