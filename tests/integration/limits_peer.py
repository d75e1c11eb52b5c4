# SPDX-License-Identifier: Apache-2.0
"""A hostile client hits every limit of the coordinator's client endpoint while an honest
client and a node keep being served. Usage: limits_peer.py AGENTS CLIENTS KEYDIR

Keys in KEYDIR (farmctl keygen): coordinator.pub, node n1, clients h (submit, the
hostile one) and ro (read, the honest one). farm.yaml sets max_builds_per_client: 5 and
context_quota: 1M."""
import hashlib
import socket
import sys
import threading
import time

import zmq

from farm_wire import (check, ctx, curve_dealer, envelope, f_bytes, f_varint, failures,
                       fields, read_key, recv_body)

AGENTS, CLIENTS, KEYS = sys.argv[1], sys.argv[2], sys.argv[3]
SERVER = read_key(KEYS + "/coordinator.pub")[0]


def key(name):
    return KEYS + "/" + name + ".key"


def text(body, field):
    return body[field][0].decode() if body and field in body else ""


def hello(version="0.1.0"):
    return envelope(10, f_bytes(1, "n1") + f_bytes(2, "linux/amd64") + f_varint(3, 1)
                    + f_bytes(4, "fake") + f_bytes(5, version) + f_varint(7, 42))


# --- a node that heartbeats all along, in its own thread ---------------------------------
node_state = {"rejected": 0, "welcomed": False, "silent_max": 0.0}
stop = threading.Event()


def node():
    s = curve_dealer(AGENTS, key("n1"), SERVER)
    s.send(hello())
    last = time.time()
    poller = zmq.Poller()
    poller.register(s, zmq.POLLIN)
    next_beat = time.time()
    while not stop.is_set():
        if time.time() >= next_beat:
            s.send(envelope(13, b""))
            next_beat = time.time() + 0.25
        for _ in poller.poll(50):
            env = fields(s.recv())
            now = time.time()
            node_state["silent_max"] = max(node_state["silent_max"], now - last)
            last = now
            node_state["welcomed"] |= 11 in env
            node_state["rejected"] += 12 in env
    s.close()


t = threading.Thread(target=node)
t.start()
time.sleep(1)

ro = curve_dealer(CLIENTS, key("ro"), SERVER)


def honest(what):
    t0 = time.time()
    ro.send(envelope(26, b""))
    r = recv_body(ro, 27, 3000)
    check(r is not None and time.time() - t0 < 2.5,
          "the honest client is answered after %s (%.2f s)" % (what, time.time() - t0))


h = curve_dealer(CLIENTS, key("h"), SERVER)

# uploads per client: the fifth offer replaces the oldest
digests = ["sha256:%064x" % i for i in range(1, 7)]
for d in digests:
    h.send(envelope(19, f_bytes(1, d) + f_varint(2, 10)))
    recv_body(h, 20)
h.send(envelope(18, f_bytes(1, digests[0]) + f_varint(2, 0) + f_bytes(4, b"0123456789")))
st = recv_body(h, 20)
check(st is not None and "offer first" in text(st, 4),
      "a client's oldest upload made room for its fifth: %r" % (st,))
honest("six uploads")

# the context quota (1M)
h.send(envelope(19, f_bytes(1, "sha256:" + "9" * 64) + f_varint(2, 2 << 20)))
st = recv_body(h, 20)
check(st is not None and "context_quota" in text(st, 4), "an offer over the quota: %r" % (st,))

# the quota is kept at once: a context fits when an unused one makes room for it
def upload(sock, blob):
    d = "sha256:" + hashlib.sha256(blob).hexdigest()
    sock.send(envelope(19, f_bytes(1, d) + f_varint(2, len(blob))))
    st = recv_body(sock, 20)
    if st is None or text(st, 4):
        return st
    for off in range(0, len(blob), 1 << 19):
        sock.send(envelope(18, f_bytes(1, d) + f_varint(2, off) + f_varint(3, len(blob))
                           + f_bytes(4, blob[off:off + (1 << 19)])))
        st = recv_body(sock, 20)
    return st


st = upload(h, b"A" * (600 << 10))
check(st is not None and st.get(2) == [1], "a 600 KiB context stored: %r" % (st,))
st = upload(h, b"B" * (600 << 10))
check(st is not None and st.get(2) == [1],
      "a second 600 KiB context stored after the first made room (quota 1M): %r" % (st,))

# builds per client (5)
data = b"tiny context"
digest = "sha256:" + hashlib.sha256(data).hexdigest()
h.send(envelope(19, f_bytes(1, digest) + f_varint(2, len(data))))
recv_body(h, 20)
h.send(envelope(18, f_bytes(1, digest) + f_varint(2, 0) + f_bytes(4, data)))
recv_body(h, 20)
accepted = refused = 0
reason = ""
for i in range(8):
    h.send(envelope(21, f_bytes(1, "127.0.0.1:1/t/app:%d" % i) + f_bytes(2, "linux/amd64")
                    + f_bytes(5, digest)))
    poller = zmq.Poller()
    poller.register(h, zmq.POLLIN)
    while poller.poll(3000):
        env = fields(h.recv())
        if 22 in env:
            accepted += 1
            break
        if 23 in env:
            refused += 1
            reason = text(fields(env[23][0]), 1)
            break
check(accepted == 5 and refused == 3 and "already has 5 builds running" in reason,
      "builds per client: %d accepted, %d refused (%s)" % (accepted, refused, reason))
honest("eight submits")

# a message of a few MiB made of a million empty build args: refused before unpacking
body = b"\x22\x00" * 1000000
h.send(envelope(21, body))
honest("a million-field message")

# bounded HELLO fields, from a second connection with n1's key
s2 = curve_dealer(AGENTS, key("n1"), SERVER)
s2.send(hello(version="1" + "0" * 200))
r = recv_body(s2, 12)
check(r is not None and "too long" in text(r, 1), "an over-long HELLO refused: %r" % (r,))
s2.close()

# junk floods the log no more than 20 warnings a second (the rest are counted)
for _ in range(300):
    h.send(b"not a farm message")
time.sleep(1.2)
h.send(b"one more, a second later: the count of the suppressed ones is logged")
honest("300 junk messages")

# a connection that never finishes its handshake is dropped after 5 s: idle sockets
# must not hold the coordinator's file descriptors
host, port = CLIENTS.rsplit("/", 1)[1].rsplit(":", 1)
raw = socket.create_connection((host, int(port)))
raw.settimeout(1)
t0, closed = time.time(), False
while time.time() - t0 < 15 and not closed:
    try:
        closed = raw.recv(4096) == b""
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
raw.close()
check(closed and 3 < time.time() - t0 < 14,
      "an idle connection without a handshake was dropped after %.1f s" % (time.time() - t0))

time.sleep(1)
stop.set()
t.join()
check(node_state["welcomed"] and node_state["rejected"] == 0,
      "the node stayed in its session all along: %r" % (node_state,))
check(node_state["silent_max"] < 1.4, "the node heard from the coordinator at least every "
      "1.4 s (heartbeat 500 ms): longest silence %.2f s" % node_state["silent_max"])
ctx.destroy(linger=0)
sys.exit(1 if failures else 0)
