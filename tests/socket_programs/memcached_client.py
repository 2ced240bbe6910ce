# memcached text-protocol client over a unix socket: CONNS connections taking turns, KEYS
# sets of values from 1 byte to 200 KiB (seeded, so every run sends the same), then each key
# read back alone and in multi-gets of 40, half of them deleted and read again, counters
# incremented; every answer checked.
# Usage: memcached_client.py PATH CONNS KEYS
import hashlib
import random
import socket
import sys


class Conn:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            more = self.sock.recv(65536)
            if not more:
                raise EOFError("memcached closed the connection")
            self.buf += more
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exactly(self, n):
        while len(self.buf) < n:
            more = self.sock.recv(max(65536, n - len(self.buf)))
            if not more:
                raise EOFError("memcached closed the connection")
            self.buf += more
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def get(self, keys):
        """The values found, by key."""
        self.send(b"get " + b" ".join(keys) + b"\r\n")
        found = {}
        while True:
            head = self.line()
            if head == b"END":
                return found
            kind, key, _flags, size = head.split()
            assert kind == b"VALUE", head
            found[key] = self.exactly(int(size))
            assert self.exactly(2) == b"\r\n"


def main():
    path, nconns, nkeys = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(17)
    conns = [Conn(path) for _ in range(nconns)]
    values = {}
    bad = 0
    for i in range(nkeys):
        key = b"key:%d" % i
        size = 200 * 1024 if i % 97 == 0 else rng.randrange(1, 6000)
        value = rng.randbytes(size)
        values[key] = value
        c = conns[i % nconns]
        c.send(b"set %s %d 0 %d\r\n" % (key, i, size) + value + b"\r\n")
        bad += c.line() != b"STORED"
    digest = hashlib.sha256()
    keys = list(values)
    for n, key in enumerate(keys):
        got = conns[(n * 7) % nconns].get([key])
        bad += got.get(key) != values[key]
        digest.update(got.get(key, b""))
    for start in range(0, len(keys), 40):
        batch = keys[start:start + 40]
        got = conns[start % nconns].get(batch)
        bad += sum(got.get(k) != values[k] for k in batch)
    deleted = 0
    for n, key in enumerate(keys[::2]):
        c = conns[n % nconns]
        c.send(b"delete %s\r\n" % key)
        deleted += c.line() == b"DELETED"
    got = conns[0].get(keys[:200])
    bad += sum((k in got) != (n % 2 == 1) for n, k in enumerate(keys[:200]))
    c = conns[-1]
    c.send(b"set counter 0 0 1\r\n0\r\n")
    bad += c.line() != b"STORED"
    for _ in range(500):
        c = conns[rng.randrange(nconns)]
        c.send(b"incr counter 3\r\n")
        c.line()
    counter = conns[1 % nconns].get([b"counter"]).get(b"counter")
    for c in conns:
        c.send(b"quit\r\n")
        c.sock.close()
    print(f"{nconns} connections, {nkeys} keys, {bad} bad, {deleted} deleted, counter {counter.decode()},"
          f" digest {digest.hexdigest()[:16]}")


main()
