# SPDX-License-Identifier: Apache-2.0
"""CURVE peers against a coordinator with keys: who may connect, speak as whom, and do
what. Usage: curve_peer.py AGENTS_ENDPOINT CLIENTS_ENDPOINT KEYDIR

KEYDIR holds farmctl keygen's files: coordinator.pub; nodes n1, n2; clients admin
(admin), dev (submit), ro (read); stranger (enrolled nowhere).
"""
import hashlib
import sys
import time

import zmq

from farm_wire import (check, ctx, dealer, envelope, f_bytes, f_varint, failures, fields,
                       read_key, recv_body, curve_dealer)

AGENTS, CLIENTS, KEYS = sys.argv[1], sys.argv[2], sys.argv[3]
SERVER = read_key(KEYS + "/coordinator.pub")[0]


def key(name):
    return KEYS + "/" + name + ".key"


def hello(name, session):
    return envelope(10, f_bytes(1, name) + f_bytes(2, "linux/amd64") + f_varint(3, 1)
                    + f_bytes(4, "fake") + f_bytes(5, "0.1.0") + f_varint(7, session))


def text(body, field):
    return body[field][0].decode() if body and field in body else ""


# --- who may connect ------------------------------------------------------------------
p = dealer(AGENTS)  # no CURVE at all
p.send(hello("n1", 1))
check(recv_body(p, 11, 1500) is None, "a plain-text peer gets no answer")
s = curve_dealer(AGENTS, key("stranger"), SERVER)
s.send(hello("n1", 2))
check(recv_body(s, 11, 1500) is None, "an unknown key gets no answer")
c = curve_dealer(AGENTS, key("admin"), SERVER)
c.send(hello("n1", 3))
check(recv_body(c, 11, 1500) is None, "a client's key cannot speak on the agent endpoint")
for sock in (p, s, c):
    sock.close()

# --- a node's identity is its key -----------------------------------------------------
n1 = curve_dealer(AGENTS, key("n1"), SERVER)
n1.send(hello("n2", 4))
r = recv_body(n1, 12)
check(r is not None and "authenticated as node n1, not n2" in text(r, 1),
      "node n1's key cannot say HELLO as n2: %r" % (r,))
n1.close()
n1 = curve_dealer(AGENTS, key("n1"), SERVER)
n1.send(hello("n1", 5))
check(recv_body(n1, 11) is not None, "n1 welcomed over its own key")
n2 = curve_dealer(AGENTS, key("n2"), SERVER)
n2.send(hello("n2", 6))
check(recv_body(n2, 11) is not None, "n2 welcomed over its own key")

# --- rights -----------------------------------------------------------------------------
ro = curve_dealer(CLIENTS, key("ro"), SERVER)
ro.send(envelope(26, b""))
check(recv_body(ro, 27) is not None, "a read client lists nodes")
ro.send(envelope(21, f_bytes(1, "127.0.0.1:1/t/app:1") + f_bytes(2, "linux/amd64")
                 + f_bytes(5, "sha256:" + "0" * 64)))
r = recv_body(ro, 23)
check(r is not None and "role read; to submit it needs role submit" in text(r, 1),
      "a read client may not submit: %r" % (r,))

dev = curve_dealer(CLIENTS, key("dev"), SERVER)
data = b"a context that is not really a tar"
digest = "sha256:" + hashlib.sha256(data).hexdigest()
dev.send(envelope(19, f_bytes(1, digest) + f_varint(2, len(data))))
recv_body(dev, 20)
dev.send(envelope(18, f_bytes(1, digest) + f_varint(2, 0) + f_varint(3, len(data))
                  + f_bytes(4, data)))
st = recv_body(dev, 20)
check(st is not None and st.get(2) == [1], "dev uploaded a context: %r" % (st,))
dev.send(envelope(21, f_bytes(1, "127.0.0.1:1/t/app:1") + f_bytes(2, "linux/amd64")
                  + f_bytes(5, digest)))
acc = recv_body(dev, 22)
check(acc is not None, "dev's build accepted")

# the job goes to one of the two nodes: the holder
poller = zmq.Poller()
poller.register(n1, zmq.POLLIN)
poller.register(n2, zmq.POLLIN)
holder = other = job = None
deadline = time.time() + 5
while job is None and time.time() < deadline:
    for sock, _ in poller.poll(500):
        env = fields(sock.recv())
        if 14 in env:
            job = fields(env[14][0])
            holder, other = (n1, n2) if sock is n1 else (n2, n1)
check(job is not None, "a node got the job")
job_id, attempt = text(job, 2), job[3][0]

# a context request, a log line and a result from the node that does not hold the job
other.send(envelope(17, f_bytes(1, digest)))
ch = recv_body(other, 18)
check(ch is not None and "no job of this node needs that context" in text(ch, 5)
      and 4 not in ch, "the other node cannot read the context: %r" % (ch,))
holder.send(envelope(17, f_bytes(1, digest)))
ch = recv_body(holder, 18)
check(ch is not None and ch.get(4, [b""])[0] == data, "the holder reads the context")
other.send(envelope(15, f_bytes(1, job_id) + f_varint(2, attempt) + f_bytes(3, "FORGED LOG")))
other.send(envelope(16, f_bytes(1, job_id) + f_varint(2, attempt) + f_varint(3, 0)
                    + f_bytes(4, "FORGED RESULT")))
time.sleep(0.5)

# job ids: an admin sees them all, a read client not dev's
ad = curve_dealer(CLIENTS, key("admin"), SERVER)
ad.send(envelope(26, b""))
nodes = recv_body(ad, 27)
ids = [j.decode() for n in nodes.get(1, []) for j in fields(n).get(7, [])] if nodes else []
check(job_id in ids, "the admin sees the running job id: %r" % (ids,))
ro.send(envelope(26, b""))
nodes = recv_body(ro, 27)
ids = [j.decode() for n in nodes.get(1, []) for j in fields(n).get(7, [])] if nodes else ["?"]
check(ids == [], "a read client does not see dev's job ids: %r" % (ids,))

# builds: a client sees its own, an admin all, a read client not dev's
build_id = text(acc, 1)


def builds(sock):
    sock.send(envelope(31, b""))
    r = recv_body(sock, 32)
    return [text(fields(b), 1) for b in r.get(1, [])] if r is not None else None


check(builds(dev) == [build_id], "dev lists its own build")
check(builds(ad) == [build_id], "the admin lists every build")
check(builds(ro) == [], "a read client does not list dev's build")

# draining is the admin's
dev.send(envelope(30, f_bytes(1, "n1")))
r = recv_body(dev, 23)
check(r is not None and "role submit; to drain nodes it needs role admin" in text(r, 1), "dev may not drain: %r" % (r,))
ad.send(envelope(30, f_bytes(1, "n2")))
nodes = recv_body(ad, 27)
states = {text(fields(n), 1): text(fields(n), 4) for n in nodes.get(1, [])} if nodes else {}
check(states.get("n2") == "draining", "the admin drained n2: %r" % (states,))

# the holder's genuine result decides the build, not the forged one
holder.send(envelope(16, f_bytes(1, job_id) + f_varint(2, attempt) + f_varint(3, 0)
                     + f_bytes(4, "genuine failure")))
done = recv_body(dev, 25)
err = text(done, 3)
check(done is not None and "genuine failure" in err and "FORGED" not in err,
      "the build ends with the holder's result: %r" % (err,))

ctx.destroy(linger=0)
sys.exit(1 if failures else 0)
