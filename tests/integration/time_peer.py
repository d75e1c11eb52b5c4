# SPDX-License-Identifier: Apache-2.0
"""Raw peers ask the coordinator's clock (TimeRequest, Envelope field 33; TimeReply 34):
an enrolled node key is answered with its nonce and a wall clock near ours; a request
without a nonce is ignored; a flood from one key gets at most the per-peer budget; a
client key (not a node) gets no CURVE session on the agent endpoint at all.
Usage: time_peer.py AGENTS KEYDIR NODE CLIENT"""
import sys
import time

from farm_wire import (check, curve_dealer, envelope, f_varint, failures, read_key,
                       recv_body)

AGENTS, KEYS, NODE, CLIENT = sys.argv[1:5]
SERVER = read_key(KEYS + "/coordinator.pub")[0]
TIME_REQUEST, TIME_REPLY = 33, 34


def ask(sock, nonce):
    sock.send(envelope(TIME_REQUEST, f_varint(1, nonce) if nonce else b""))


s = curve_dealer(AGENTS, KEYS + "/" + NODE + ".key", SERVER)
t0 = time.time()
ask(s, 4242)
r = recv_body(s, TIME_REPLY)
t1 = time.time()
check(r is not None, "an enrolled node key is answered")
if r:
    check(r.get(1) == [4242], "the reply echoes the nonce")
    ms = r.get(2, [0])[0]
    check(abs(ms / 1000.0 - (t0 + t1) / 2) < 2, "the coordinator's clock is near ours (%d ms)"
          % (ms - (t0 + t1) / 2 * 1000))

time.sleep(1.1)  # a fresh budget window
ask(s, 0)
check(recv_body(s, TIME_REPLY, 1500) is None, "a request without a nonce is not answered")

time.sleep(1.1)
for i in range(50):
    ask(s, 1000 + i)
answered = 0
while recv_body(s, TIME_REPLY, 1000) is not None:
    answered += 1
check(1 <= answered <= 10, "a flood of 50 from one key got %d answers (budget 5/s)" % answered)

c = curve_dealer(AGENTS, KEYS + "/" + CLIENT + ".key", SERVER)
ask(c, 99)
check(recv_body(c, TIME_REPLY, 2000) is None, "a client key is not answered on the agent endpoint")

sys.exit(1 if failures else 0)
