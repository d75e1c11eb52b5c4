# SPDX-License-Identifier: Apache-2.0
"""Raw CURVE peers for test_e2e_repo_trust.sh.

  trust_peer.py serve ENDPOINT KEYFILE OUT
      a coordinator a repository could name: binds ENDPOINT with the key pair in KEYFILE,
      appends every message it receives to OUT, says "have" to every context offer and
      refuses every Submit (so farmctl ends). Runs until killed.
  trust_peer.py submit ENDPOINT CLIENT_KEY SERVER_PUB DIGEST TAG [WAIT_S]
      a Submit naming DIGEST without sending its bytes: prints "accepted ID" or
      "refused REASON" (or "none"); with WAIT_S, after "accepted" waits that long for the
      build's end and prints "done".
  trust_peer.py offer ENDPOINT CLIENT_KEY SERVER_PUB DIGEST SIZE
      a context offer: prints "have=H offset=O error=E".
"""
import sys

import zmq

from farm_wire import ctx, curve_dealer, envelope, f_bytes, f_varint, fields, read_key, recv_body


def text(body, field):
    return body[field][0].decode(errors="replace") if body and field in body else ""


def serve(endpoint, keyfile, out):
    pub, sec = read_key(keyfile)
    s = ctx.socket(zmq.ROUTER)
    s.setsockopt(zmq.LINGER, 0)
    s.curve_server = True
    s.curve_publickey = pub
    s.curve_secretkey = sec
    s.bind(endpoint)
    print("listening", flush=True)
    while True:
        rid, msg = s.recv_multipart()[:2]
        with open(out, "ab") as f:
            f.write(msg + b"\n")
        env = fields(msg)
        if 19 in env:
            offer = fields(env[19][0])
            s.send_multipart([rid, envelope(20, f_bytes(1, offer.get(1, [b""])[0])
                                            + f_varint(2, 1) + f_varint(3, offer.get(2, [0])[0]))])
        elif 21 in env:
            s.send_multipart([rid, envelope(23, f_bytes(1, "this coordinator got your Submit"))])


def main():
    cmd = sys.argv[1]
    if cmd == "serve":
        serve(*sys.argv[2:5])
        return
    endpoint, key, server, digest = sys.argv[2:6]
    sock = curve_dealer(endpoint, key, read_key(server)[0])
    if cmd == "offer":
        sock.send(envelope(19, f_bytes(1, digest) + f_varint(2, int(sys.argv[6]))))
        st = recv_body(sock, 20)
        if st is None:
            print("none")
        else:
            print("have=%d offset=%d error=%s" % (st.get(2, [0])[0], st.get(3, [0])[0],
                                                   text(st, 4)))
        return
    sock.send(envelope(21, f_bytes(1, sys.argv[6]) + f_bytes(2, "linux/amd64")
                       + f_bytes(5, digest)))
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    while poller.poll(15000):
        env = fields(sock.recv())
        if 22 in env:
            print("accepted", text(fields(env[22][0]), 1), flush=True)
            if len(sys.argv) > 7:
                if recv_body(sock, 25, int(sys.argv[7]) * 1000) is not None:
                    print("done")
            return
        if 23 in env:
            print("refused", text(fields(env[23][0]), 1))
            return
    print("none")


main()
