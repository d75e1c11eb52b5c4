# SPDX-License-Identifier: Apache-2.0
"""A registry in front of a real one that forwards everything, except that in one
repository it serves an attestation manifest (an OCI manifest naming an in-toto layer)
with other bytes than were pushed, under the same digest header: what a compromised or
broken registry, or anyone between it and the stitch, can do. The stitch must read each
attestation back and push no index.
Usage: lying_registry.py LISTEN_PORT UPSTREAM_HOST:PORT REPOSITORY
"""
import http.client
import http.server
import sys

PORT, UPSTREAM, LIE_REPO = int(sys.argv[1]), sys.argv[2], sys.argv[3]
attestations = set()  # paths of the manifests pushed with an in-toto layer, in LIE_REPO


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stdout.write("%s\n" % (fmt % args))
        sys.stdout.flush()

    def forward(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        up = http.client.HTTPConnection(UPSTREAM, timeout=60)
        # every header line as sent: clients repeat Accept, one media type a line
        up.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        up.putheader("Host", UPSTREAM)
        for k, v in self.headers.items():
            if k.lower() != "host":
                up.putheader(k, v)
        up.endheaders(body)
        r = up.getresponse()
        data = r.read()
        lie = (self.command == "GET" and self.path in attestations)
        if (self.command == "PUT" and f"/v2/{LIE_REPO}/manifests/sha256:" in self.path
                and body and b"application/vnd.in-toto+json" in body and r.status == 201):
            attestations.add(self.path)
        if lie:
            data = data.replace(b'"schemaVersion":2', b'"schemaVersion": 2', 1)
            print("lied about", self.path, flush=True)
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() in ("transfer-encoding", "connection") or (
                    k.lower() == "content-length" and self.command != "HEAD"):
                continue
            self.send_header(k, v)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = forward


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Proxy).serve_forever()
