"""A raw D-Bus client: EXTERNAL authentication with our uid, Hello, then N Pings
(org.freedesktop.DBus.Peer) to the bus, each answered before the next. Usage: SOCKET N."""
import os
import socket
import struct
import sys


def field(code, sig, val):
    b = bytes([code, 1]) + sig.encode() + b"\0"
    b += b"\0" * (-len(b) % 4)
    v = val.encode()
    return b + struct.pack("<I", len(v)) + v + b"\0"


def message(serial, member, iface):
    fields = b""
    for f in (field(1, "o", "/org/freedesktop/DBus"), field(2, "s", iface), field(3, "s", member),
              field(6, "s", "org.freedesktop.DBus")):
        fields += b"\0" * (-len(fields) % 8) + f
    hdr = struct.pack("<cBBBII", b"l", 1, 0, 1, 0, serial) + struct.pack("<I", len(fields)) + fields
    return hdr + b"\0" * (-len(hdr) % 8)


s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
assert s.recv(4096).startswith(b"OK "), "authentication refused"
s.sendall(b"BEGIN\r\n")
buf = b""


def reply():
    """The next message whose type is a method return (2), skipping signals."""
    global buf
    while True:
        if len(buf) >= 16:
            body, = struct.unpack_from("<I", buf, 4)
            flen, = struct.unpack_from("<I", buf, 12)
            total = 16 + flen + (-(16 + flen) % 8) + body
            if len(buf) >= total:
                m, buf = buf[:total], buf[total:]
                if m[1] == 2:
                    return m
                continue
        chunk = s.recv(65536)
        assert chunk, "the bus hung up"
        buf += chunk


s.sendall(message(1, "Hello", "org.freedesktop.DBus"))
reply()
n = int(sys.argv[2])
for i in range(n):
    s.sendall(message(2 + i, "Ping", "org.freedesktop.DBus.Peer"))
    reply()
print("pings", n)
