#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A scripted OCI registry with a Bearer token server, for paths docker-registry 2.8 cannot
exercise here: token auth, 5xx + Retry-After, relative upload Locations that already carry a
query, an upload PUT that fails once, a lying Docker-Content-Digest, an oversized manifest.

usage: fake_registry.py PORTFILE LOGFILE   (binds 127.0.0.1:0, writes the port to PORTFILE)
Every request is logged to LOGFILE as "METHOD PATH STATUS AUTHKIND UA".
"""
import base64, hashlib, json, os, sys, threading, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USER, PASS, SERVICE = "tokuser", "tok pass:1", "fake-svc"
state = {"post": 0, "put": 0, "blobs": {}, "manifests": {}, "v2_503": 0}
lock = threading.Lock()


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _log(self, status, kind):
        with open(sys.argv[2], "a") as f:
            f.write("%s %s %d %s %s\n" % (self.command, self.path, status, kind,
                                          self.headers.get("User-Agent", "")))

    def _send(self, status, body=b"", headers=None, kind="-"):
        self._log(status, kind)
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n else b""

    def _scope_ok(self, repo, push):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer tok|"):
            return False
        scope = auth[len("Bearer tok|"):]
        if repo is None:
            return True
        if not scope.startswith("repository:%s:" % repo):
            return False
        return not push or "push" in scope.split(":")[-1].split(",")

    def _challenge(self, repo, push):
        port = self.server.server_address[1]
        scope = ',scope="repository:%s:%s"' % (repo, "pull,push" if push else "pull") if repo else ""
        self._body()  # drain it: the connection is kept alive
        # two challenge headers; the Bearer one carries quoted commas
        self._log(401, "-")
        body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="ignored"')
        self.send_header("WWW-Authenticate",
                         'Bearer realm="http://127.0.0.1:%d/token",service="%s"%s' % (port, SERVICE, scope))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _token(self):
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query)
        auth = self.headers.get("Authorization", "")
        want = "Basic " + base64.b64encode(("%s:%s" % (USER, PASS)).encode()).decode()
        if auth != want or q.get("service") != [SERVICE]:
            return self._send(401, b'{"details":"bad credentials"}', kind="token-denied")
        scope = q.get("scope", [""])[0]
        # access_token (not token) and a short expires_in: the client must cope with both
        body = json.dumps({"access_token": "tok|" + scope, "expires_in": 30}).encode()
        return self._send(200, body, {"Content-Type": "application/json"}, kind="token")

    def _route(self):
        u = urllib.parse.urlparse(self.path)
        p = u.path
        if p == "/token":
            return self._token()
        if p == "/v2/":
            if not self._scope_ok(None, False):
                return self._challenge(None, False)
            with lock:
                state["v2_503"] += 1
                first = state["v2_503"] == 1
            if first:
                return self._send(503, b"", {"Retry-After": "1"}, kind="busy")
            return self._send(200, b"{}", kind="bearer")
        if p.startswith("/upload/"):
            if not self._scope_ok("fake/repo", True):
                return self._challenge("fake/repo", True)
            q = urllib.parse.parse_qs(u.query)
            data = self._body()
            with lock:
                state["put"] += 1
                n = state["put"]
            if q.get("state") != ["xyz"]:
                return self._send(400, b'{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"lost state"}]}')
            if n == 1:
                return self._send(500, b"", kind="fail-once")
            d = q.get("digest", [""])[0]
            if "sha256:" + hashlib.sha256(data).hexdigest() != d:
                return self._send(400, b'{"errors":[{"code":"DIGEST_INVALID","message":"digest mismatch"}]}')
            state["blobs"][d] = data
            return self._send(201, b"", {"Docker-Content-Digest": d, "Location": "/v2/fake/repo/blobs/" + d}, kind="bearer")
        parts = p.split("/")
        # /v2/fake/repo/(blobs|manifests)/X
        if len(parts) >= 6 and parts[1] == "v2":
            repo = "/".join(parts[2:-2])
            kind, ref = parts[-2], parts[-1]
            if kind == "uploads":
                repo = "/".join(parts[2:-3])
            push = self.command in ("PUT", "POST")
            if not self._scope_ok(repo, push):
                return self._challenge(repo, push)
            if kind == "uploads" and self.command == "POST":
                with lock:
                    state["post"] += 1
                    n = state["post"]
                if n == 1:
                    return self._send(503, b"", {"Retry-After": "0"}, kind="busy")
                return self._send(202, b"", {"Location": "/upload/abc?state=xyz"}, kind="bearer")
            if kind == "blobs":
                if ref in state["blobs"]:
                    b = state["blobs"][ref]
                    return self._send(200, b, {"Content-Length": str(len(b)), "Docker-Content-Digest": ref})
                return self._send(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}')
            if kind == "manifests":
                if self.command == "PUT":
                    data = self._body()
                    d = "sha256:" + hashlib.sha256(data).hexdigest()
                    if ref == "lying":
                        d = "sha256:" + "0" * 64
                    state["manifests"][ref] = (data, self.headers.get("Content-Type"))
                    return self._send(201, b"", {"Docker-Content-Digest": d}, kind="bearer")
                if ref == "big":
                    body = b"{" + b" " * (5 << 20) + b"}"
                    return self._send(200, body, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
                if ref not in state["manifests"]:
                    return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')
                data, ct = state["manifests"][ref]
                accept = self.headers.get("Accept", "")
                if "application/vnd.oci.image.index.v1+json" not in accept or \
                        "application/vnd.docker.distribution.manifest.v2+json" not in accept:
                    return self._send(406, b"")
                # HEAD answers without Docker-Content-Digest: the client must GET and hash
                return self._send(200, data, {"Content-Type": ct})
        return self._send(404, b"")

    do_GET = do_HEAD = do_PUT = do_POST = _route


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the client aborting an oversized body is expected


srv = Server(("127.0.0.1", 0), H)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
srv.serve_forever()
