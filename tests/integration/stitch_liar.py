# SPDX-License-Identifier: Apache-2.0
"""A node that builds nothing: it says HELLO over its own CURVE key, heartbeats, and
answers every JobAssign with a successful JobResult naming whatever image ANSWER_FILE
holds when the job arrives ("MEDIA_TYPE DIGEST SIZE", one line), for the job's own
platform, and a hostile provenance record. What a compromised agent can do; the stitch
must judge the image itself, and the coordinator what goes into a statement.
Usage: stitch_liar.py AGENTS_ENDPOINT KEYFILE COORDINATOR_PUB NAME PLATFORM ANSWER_FILE
"""
import sys
import time

import zmq

from farm_wire import ctx, curve_dealer, envelope, f_bytes, f_varint, fields, read_key

AGENTS, KEYFILE, SERVER_PUB, NAME, PLATFORM, ANSWER = sys.argv[1:7]
GOOD_BASE = "sha256:" + "ab" * 32


def hostile_provenance():
    """JobResult.provenance (a ProvenanceJob) with everything a lying node could put in it
    beside one true-looking base: names that break lines or JSON, a bad digest, a name over
    the reference bound, more bases than any build has, finish before start."""
    def base(name, digest, final):
        return f_bytes(70, name) + f_bytes(71, digest) + f_varint(72, final)
    bases = [base("evil\n\"name", GOOD_BASE, 1), base("has space", GOOD_BASE, 1),
             base("r.example/bad:1", "sha256:zz", 1), base("x" * 600, GOOD_BASE, 1),
             base("r.example/ok:1", GOOD_BASE, 1)]
    bases += [base(f"r.example/extra{i}:1", GOOD_BASE, 0) for i in range(20)]
    return (f_varint(70, 2_000_000_000_000) + f_varint(71, 1_000_000_000_000)
            + f_bytes(72, "sha256:nothex") + b"".join(f_bytes(73, b) for b in bases)
            + f_varint(74, 0))
sock = curve_dealer(AGENTS, KEYFILE, read_key(SERVER_PUB)[0])
session = int(time.time() * 1000)
sock.send(envelope(10, f_bytes(1, NAME) + f_bytes(2, PLATFORM) + f_varint(3, 1)
                   + f_bytes(4, "liar") + f_bytes(5, "0.1.0") + f_varint(7, session)))
poller = zmq.Poller()
poller.register(sock, zmq.POLLIN)
welcomed = False
next_beat = 0.0
while True:
    now = time.time()
    if now >= next_beat:
        sock.send(envelope(13, b""))
        next_beat = now + 0.2
    if not poller.poll(100):
        continue
    env = fields(sock.recv())
    if 11 in env and not welcomed:
        welcomed = True
        print("welcomed as", NAME, flush=True)
    if 12 in env:
        print("rejected:", fields(env[12][0]), flush=True)
        sys.exit(1)
    if 14 in env:
        job = fields(env[14][0])
        job_id, attempt = job[2][0].decode(), job[3][0]
        plat = job[4][0].decode()
        mt, digest, size = open(ANSWER).read().split()
        desc = (f_bytes(1, mt) + f_bytes(2, digest) + f_varint(3, int(size))
                + f_bytes(4, plat))
        sock.send(envelope(16, f_bytes(1, job_id) + f_varint(2, attempt) + f_varint(3, 1)
                           + f_bytes(5, desc) + f_varint(7, 1) + f_varint(8, 1)
                           + f_bytes(70, hostile_provenance())))
        print("job", job_id, "for", plat, "answered with", digest, size, flush=True)
