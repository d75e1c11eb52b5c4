# SPDX-License-Identifier: Apache-2.0
"""Hand-encoded farm wire messages (proto/farm.proto field numbers) for raw ZeroMQ test
peers, so tests do not share farm's own encoder; and CURVE key files as farmctl keygen
writes them."""
import zmq

ctx = zmq.Context()
failures = []


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def f_varint(num, v):
    return varint(num << 3) + varint(v)


def f_bytes(num, b):
    if isinstance(b, str):
        b = b.encode()
    return varint((num << 3) | 2) + varint(len(b)) + b


def envelope(body_num, body):
    return f_varint(1, 1) + f_bytes(body_num, body)


def fields(buf):
    """Top-level fields of a protobuf message: {num: [value, ...]}."""
    out, i = {}, 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(buf, i)
        elif wt == 2:
            n, i = read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        else:
            raise ValueError("unexpected wire type %d" % wt)
        out.setdefault(num, []).append(v)
    return out


def read_varint(buf, i):
    shift = v = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def dealer(endpoint, identity=None):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    if identity:
        s.setsockopt(zmq.ROUTING_ID, identity)
    s.connect(endpoint)
    return s


def recv_body(sock, want, timeout_ms=5000):
    """Next reply whose body is field `want` (skipping heartbeats); None on timeout."""
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    while poller.poll(timeout_ms):
        env = fields(sock.recv())
        if want in env:
            return fields(env[want][0])
    return None


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)




def curve_dealer(endpoint, keyfile, server_pub):
    """A DEALER that speaks CURVE with the key pair in keyfile to the server's public key."""
    pub, sec = read_key(keyfile)
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.curve_publickey = pub
    s.curve_secretkey = sec
    s.curve_serverkey = server_pub
    s.connect(endpoint)
    return s


def read_key(path):
    """(public, secret) from a key file; secret is None in a .pub file."""
    pub = sec = None
    for line in open(path):
        k, _, v = line.partition("=")
        if k.strip() == "public-key":
            pub = v.strip().encode()
        elif k.strip() == "secret-key":
            sec = v.strip().encode()
    return pub, sec
