"""Datagram echo over a named AF_UNIX socket.

serve PATH N: binds PATH, answers N datagrams with their bytes reversed, sent back to the
sender's address, then prints how many it served.
ask PATH N: binds PATH.client, sends N datagrams of varying size, checks each answer.
"""
import hashlib
import os
import socket
import sys


def serve(path, n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    print("ready", flush=True)
    for _ in range(n):
        data, addr = s.recvfrom(65536)
        s.sendto(data[::-1], addr)
    print(f"served {n} datagrams", flush=True)


def ask(path, n):
    me = path + ".client"
    if os.path.exists(me):
        os.unlink(me)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(me)
    digest, bad = hashlib.sha256(), 0
    for i in range(n):
        msg = bytes((i * 7 + k) % 251 for k in range(1 + (i * 389) % 6000))
        s.sendto(msg, path)
        back, addr = s.recvfrom(65536)
        bad += back != msg[::-1] or addr != path
        digest.update(back)
    print(f"{n} datagrams, {bad} bad, digest {digest.hexdigest()[:16]}", flush=True)


if __name__ == "__main__":
    {"serve": serve, "ask": ask}[sys.argv[1]](sys.argv[2], int(sys.argv[3]))
