# Python sysv_ipc MessageQueue: types, blocking receive handed a message by the sender,
# queue size, attributes, removal.
import os
import time

import sysv_ipc


def asleep(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "S"


mq = sysv_ipc.MessageQueue(None, sysv_ipc.IPC_CREX, mode=0o600)
print("max_size", mq.max_size, "current", mq.current_messages)
for t, m in [(3, b"three"), (1, b"one"), (2, b"two"), (1, b"uno")]:
    mq.send(m, type=t)
print("current", mq.current_messages, "lspid is me", mq.last_send_pid == os.getpid())
print(mq.receive(type=1))
print(mq.receive(type=-2))
print(mq.receive())
print(mq.receive())
try:
    mq.receive(block=False)
except sysv_ipc.BusyError:
    print("empty: BusyError")

r, w = os.pipe()
pid = os.fork()
if pid == 0:
    msg, t = mq.receive(type=7)
    os.write(w, b"%d %s\n" % (t, msg))
    os._exit(0)
while not asleep(pid):
    time.sleep(0.001)
mq.send(b"x" * 2000, type=8)
mq.send(b"for the child", type=7)
os.waitpid(pid, 0)
print("child got", os.read(r, 100).decode().strip())
print("current", mq.current_messages, "lrpid is the child", mq.last_receive_pid == pid)
m, t = mq.receive()
print(len(m), t, m == b"x" * 2000)

mq.max_size = 100
mq.send(b"y" * 60, block=False)
try:
    mq.send(b"y" * 60, block=False)
except sysv_ipc.BusyError:
    print("full: BusyError")
print(mq.receive(block=False)[0] == b"y" * 60)
same = sysv_ipc.MessageQueue(mq.key)
print("same queue by key", same.id == mq.id, "max_size", same.max_size)
mq.remove()
try:
    mq.send(b"z")
except OSError as e:
    print("removed:", os.strerror(e.errno))
