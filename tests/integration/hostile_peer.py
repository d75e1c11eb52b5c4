# SPDX-License-Identifier: Apache-2.0
"""Raw ZeroMQ peers that send farm's coordinator malformed and hostile messages.

Messages are hand-encoded protobuf (proto/farm.proto field numbers), so the test does
not share farm's own encoder. Usage: hostile_peer.py AGENTS_ENDPOINT CLIENTS_ENDPOINT
"""
import sys

from farm_wire import check, ctx, dealer, envelope, f_bytes, f_varint, failures, fields, recv_body

AGENTS, CLIENTS = sys.argv[1], sys.argv[2]

# --- agent endpoint -------------------------------------------------------------------
a = dealer(AGENTS, b"junk-1")
a.send(b"\xff\xff\xff\xff\x0f not protobuf")
a.send_multipart([b"frame one", b"frame two"])
a.send(b"")
a.send(f_varint(1, 1) + f_bytes(99, b"\x08\x01"))  # a body type that does not exist
a.send(f_varint(1, 7) + f_bytes(13, b""))          # wrong wire version
# a message from a peer that never said HELLO is answered with REJECT, not obeyed
a.send(envelope(16, f_bytes(1, "b1-0000.1") + f_varint(2, 1) + f_varint(3, 1)))
r = recv_body(a, 12)
check(r is not None and b"say HELLO again" in r[1][0], "unknown session rejected: %r" % (r,))

# HELLO from a node farm.yaml lacks, and one offering an unmapped platform
s = dealer(AGENTS, b"stranger")
s.send(envelope(10, f_bytes(1, "stranger") + f_bytes(2, "linux/amd64") + f_varint(3, 1)
                + f_bytes(5, "0.1.0") + f_varint(7, 5)))
r = recv_body(s, 12)
check(r is not None and b'node "stranger" is not defined under nodes:' in r[1][0],
      "unknown node rejected with a reason: %r" % (r,))
s.send(envelope(10, f_bytes(1, "fake-1") + f_bytes(2, "linux/s390x") + f_varint(3, 1)
                + f_bytes(5, "0.1.0") + f_varint(7, 5)))
r = recv_body(s, 12)
check(r is not None and b"platform linux/s390x is not mapped" in r[1][0],
      "unmapped platform rejected: %r" % (r,))
s.send(envelope(10, f_bytes(1, "fake-1") + f_bytes(2, "linux/amd64") + f_varint(3, 1)
                + f_bytes(5, "99.0.0") + f_varint(7, 5)))
r = recv_body(s, 12)
check(r is not None and b"incompatible" in r[1][0], "version mismatch rejected: %r" % (r,))
s.send(envelope(10, f_bytes(1, "fake-1") + f_bytes(2, "not a platform!") + f_varint(3, 1)
                + f_bytes(5, "0.1.0") + f_varint(7, 5)))
r = recv_body(s, 12)
check(r is not None and b"bad platform" in r[1][0], "junk platform rejected: %r" % (r,))

# a registered fake node: results for jobs it never had are ignored; a context request
# with a path for a digest is refused, not served
f = dealer(AGENTS, b"fake-1")
f.send(envelope(10, f_bytes(1, "fake-1") + f_bytes(2, "linux/amd64") + f_varint(3, 1)
                + f_bytes(5, "0.1.0") + f_varint(7, 77)))
w = recv_body(f, 11)
check(w is not None, "fake-1 welcomed")
f.send(envelope(16, f_bytes(1, "b9-ffff.1") + f_varint(2, 3) + f_varint(3, 1)))
f.send(envelope(17, f_bytes(1, "../../../../etc/passwd")))
c = recv_body(f, 18)
check(c is not None and 5 in c and b"not a sha256 digest" in c[5][0] and 4 not in c,
      "path-like context digest refused without data: %r" % (c,))
f.send(envelope(17, f_bytes(1, "sha256:" + "0" * 64) + f_varint(2, 1 << 40)))
c = recv_body(f, 18)
check(c is not None and 5 in c and b"does not hold" in c[5][0], "unknown context refused: %r" % (c,))
f.close()

# --- client endpoint ------------------------------------------------------------------
cl = dealer(CLIENTS)
cl.send(b"\x0a\xff\xff\xff\xff\x0f")  # truncated length
cl.send(envelope(18, f_bytes(1, "sha256:" + "1" * 64) + f_varint(2, 0) + f_bytes(4, b"x" * 10)))
st = recv_body(cl, 20)
check(st is not None and b"no upload in progress" in st[4][0], "chunk without offer refused: %r" % (st,))
cl.send(envelope(19, f_bytes(1, "sha256:../../x") + f_varint(2, 10)))
st = recv_body(cl, 20)
check(st is not None and b"not a sha256 digest" in st[4][0], "bad offer digest refused: %r" % (st,))
cl.send(envelope(19, f_bytes(1, "sha256:" + "2" * 64) + f_varint(2, 1 << 50)))
st = recv_body(cl, 20)
check(st is not None and b"too large" in st[4][0], "oversized context refused: %r" % (st,))
# an offered upload whose bytes do not match the digest is refused and not stored
cl.send(envelope(19, f_bytes(1, "sha256:" + "3" * 64) + f_varint(2, 4)))
st = recv_body(cl, 20)
check(st is not None and 4 not in st, "offer accepted for upload")
cl.send(envelope(18, f_bytes(1, "sha256:" + "3" * 64) + f_varint(2, 0) + f_varint(3, 4)
                 + f_bytes(4, b"evil")))
st = recv_body(cl, 20)
check(st is not None and b"do not match" in st[4][0], "mismatching upload refused: %r" % (st,))
cl.send(envelope(21, f_bytes(1, "127.0.0.1:1/x/y:1") + f_bytes(2, "linux/amd64")
                 + f_bytes(5, "sha256:" + "3" * 64)))
rf = recv_body(cl, 23)
check(rf is not None and b"does not hold this context" in rf[1][0],
      "submit of an unstored context refused: %r" % (rf,))
cl.send(envelope(21, f_bytes(1, "UPPER/Case::bad") + f_bytes(2, "linux/amd64")
                 + f_bytes(5, "sha256:" + "3" * 64)))
rf = recv_body(cl, 23)
check(rf is not None and b"bad tag" in rf[1][0], "submit with a bad tag refused: %r" % (rf,))
cl.send(envelope(21, f_bytes(1, "127.0.0.1:1/x/y:1") + f_bytes(2, "linux/amd64")
                 + f_bytes(4, f_bytes(1, "TARGETARCH") + f_bytes(2, "arm"))
                 + f_bytes(5, "sha256:" + "3" * 64)))
rf = recv_body(cl, 23)
check(rf is not None and b"TARGETARCH is set by farm" in rf[1][0],
      "a build arg farm sets itself refused: %r" % (rf,))
cl.send(envelope(21, f_bytes(1, "127.0.0.1:1/x/y:1") + f_bytes(2, "linux/amd64")
                 + b"".join(f_bytes(4, f_bytes(1, "A%d" % i) + f_bytes(2, "v")) for i in range(129))
                 + f_bytes(5, "sha256:" + "3" * 64)))
rf = recv_body(cl, 23)
check(rf is not None and b"too many build args" in rf[1][0], "129 build args refused: %r" % (rf,))
cl.send(envelope(26, b""))
nr = recv_body(cl, 27)
check(nr is not None and len(nr.get(1, [])) == 2, "nodes still answered: %r" % (nr,))

ctx.destroy(linger=0)
sys.exit(1 if failures else 0)
