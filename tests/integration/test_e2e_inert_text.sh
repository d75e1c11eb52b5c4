#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Terminal escapes from peers reach the user's terminal as plain text.
# 1. A fake coordinator (raw ZeroMQ, hand-encoded protobuf) puts clear-screen, OSC titles,
#    cursor moves, C1 CSI (raw 0x9b and UTF-8 U+009B), CR, BS and BEL into every text field
#    farmctl prints: events (platform, node, message), Accepted, BuildDone (error, children,
#    tags, index digest), Refused, ContextStatus, `farmctl nodes`; farmctl runs with
#    --progress plain and, under a pseudo-terminal, --progress tty.
# 2. The real farm: a Dockerfile whose RUN step prints the same escapes, and a failing one
#    whose error text holds them.
# farmctl's output must hold none of the attacker's sequences, but the printable markers.
set -euo pipefail
# shellcheck source=../lab/lib.sh
source "$(dirname "$0")/../lab/lib.sh"
lab_init
command -v script >/dev/null || lab_fail "script (bsdutils) is needed for the --progress tty runs"
"$LAB_PYTHON" -c 'import zmq' || lab_fail "python3-zmq is needed for the fake coordinator"

# --- checks on farmctl's output ---------------------------------------------------------
cat >"$LAB/check.py" <<'PYEOF'
"""check.py FILE MODE MARKER...: no byte of the attacker's escapes in FILE; each MARKER
(printable text the attacker sent) is there. MODE is plain or tty (farmctl's own drawing
allowed), either with -visible: the sequences may be there as visible text (a JSON
file's \u001b[2J, a builder quoting the Dockerfile), else they must be gone entirely."""
import re, sys
path, mode, markers = sys.argv[1], sys.argv[2], sys.argv[3:]
data = open(path, "rb").read()
bad = []
visible = mode.endswith("-visible")
mode = mode.replace("-visible", "")
if mode == "tty":
    # farmctl's own drawing: "\033[<n>A" (up) and "\r\033[J" (clear below); script(1)
    # turns "\n" into "\r\n". Nothing else may move or clear.
    rest = re.sub(rb"\x1b\[[0-9]+A|\r\x1b\[J|\r\n", b"", data)
else:
    rest = data
pats = [("ESC", b"\x1b"), ("raw C1 CSI 0x9b", b"\x9b"), ("UTF-8 U+009B", b"\xc2\x9b"),
        ("BEL", b"\x07"), ("backspace", b"\x08"), ("CR", b"\r")]
if not visible:  # farmctl removes whole sequences: not even their text is left
    pats += [("a clear screen's text", b"[2J"), ("an OSC title's text", b"PWNED")]
for what, pat in pats:
    if pat in rest:
        i = rest.index(pat)
        bad.append("%s at byte %d: %r" % (what, i, rest[max(0, i - 40):i + 40]))
for m in markers:
    if m.encode() not in data:
        bad.append("marker %r missing" % m)
if bad:
    sys.stderr.write("%s (%s):\n  %s\n" % (path, mode, "\n  ".join(bad)))
    sys.exit(1)
PYEOF
check() { "$LAB_PYTHON" "$LAB/check.py" "$@" || lab_fail "farmctl let a peer's escapes through: $1"; }

# run_tty OUT CMD...: CMD (a program, or lab_farmctl) under a pseudo-terminal; its stdout
# and stderr both land in OUT
export -f lab_farmctl
run_tty() {
    local out=$1
    shift
    local cmd
    printf -v cmd '%q ' "$@"
    SHELL=/bin/bash TERM=xterm script -qfec "$cmd" /dev/null >"$out" 2>&1 </dev/null
}

# --- 1. a hostile coordinator -----------------------------------------------------------
cat >"$LAB/fakecoord.py" <<'PYEOF'
"""fakecoord.py PORT SCENARIO: a coordinator's client endpoint that answers farmctl with
terminal escapes in every text field. Protobuf is hand-encoded (proto/farm.proto)."""
import os, sys, time
import zmq

sys.path.insert(0, os.environ["FARM_SOURCE_DIR"] + "/tests/integration")
from farm_wire import envelope as env, f_bytes as fb, f_varint as fv, fields  # noqa: E402

port, scenario = sys.argv[1], sys.argv[2]


def hostile(tag, c1raw=True):
    """MARK-tag and MARK2-tag are printable; PWNED appears only inside OSC strings."""
    return (b"MARK-" + tag.encode() + b" \x1b]0;PWNED-TITLE\x07\x1b]2;PWNED-ST\x1b\\"
            b"\x1b[2J\x1b[H\x1b[3A\x1b[2K\x1b7\x1bc" + (b"\x9b2J-c1raw " if c1raw else b"")
            + "\u009b2J-c1utf8 ".encode() + b"\x1b[31mMARK2-" + tag.encode() + b"\x1b[0m"
            b"\rFORGED-" + tag.encode() + b"\x08\x08\x07 end\x1b")


NODE = b"n1\x1b[2J\x1b]0;PWNED-N\x07"
PLAT = b"linux/amd64"
ID = b"b1\x1b]0;PWNED-ID\x07\x1b[2J"

ctx = zmq.Context()
s = ctx.socket(zmq.ROUTER)
s.setsockopt(zmq.LINGER, 2000)
s.bind("tcp://127.0.0.1:%s" % port)
deadline = time.time() + 60
while time.time() < deadline:
    if not s.poll(500):
        continue
    rid, frame = s.recv_multipart()
    e = fields(frame)
    send = lambda num, body: s.send_multipart([rid, env(num, body)])
    if 26 in e:  # NodesRequest
        info = (fb(1, hostile("name")) + fb(2, hostile("plat")) + fb(3, hostile("emu"))
                + fb(4, hostile("state")) + fv(5, 1) + fv(6, 1) + fb(7, hostile("job"))
                + fb(10, hostile("version")))
        # an agent too old to say its version (no field 10): farmctl shows "?"
        old = fb(1, b"oldagent") + fb(4, b"ready") + fv(5, 1)
        send(27, fb(1, info) + fb(1, old))
        break
    if 19 in e:  # ContextOffer
        digest = fields(e[19][0])[1][0]
        if scenario == "ctxerr":
            send(20, fb(1, digest) + fb(4, hostile("ctx")))
            break
        send(20, fb(1, digest) + fv(2, 1))
        continue
    if 21 not in e:  # only Submit from here on
        continue
    if scenario == "refused":
        send(23, fb(1, hostile("refused")))
        break
    send(22, fb(1, ID) + fb(2, PLAT))
    if scenario == "events":
        ev = lambda kind, msg, plat=PLAT, node=NODE: send(
            24, fb(1, ID) + fv(2, kind) + fb(3, plat) + fb(4, node) + fb(5, msg))
        ev(3, hostile("dispatched"))
        ev(4, hostile("log"))
        ev(4, hostile("platlog"), plat=PLAT + b"\x1b[2J\x1b]0;PWNED-P\x07\x9b")
        ev(8, hostile("verifying"), plat=b"", node=b"")
        time.sleep(0.3)  # the tty block redraws a log line at most every 100 ms
        ev(4, hostile("log2"))
        ev(7, hostile("failed"))
        send(25, fb(1, ID) + fv(2, 0) + fb(3, b"linux/amd64 failed on node n1: " + hostile("err")
                                         + b"\nlast log lines:\n  | " + hostile("tail") + b"\n"))
    elif scenario == "baddigest":
        send(25, fb(1, ID) + fv(2, 1) + fb(4, b"sha256:" + b"0" * 64 + b"\x1b[2J\n" + b"1" * 71))
    elif scenario == "done":
        # valid UTF-8 (no raw 0x9b) so the metadata file can hold it, escaped by jansson
        child = (fb(1, "application/vnd.oci.image.manifest.v1+json") + fb(2, "sha256:" + "a" * 64)
                 + fv(3, 123) + fb(4, hostile("childplat", c1raw=False)))
        send(25, fb(1, ID) + fv(2, 1) + fb(4, "sha256:" + "b" * 64) + fv(5, 456) + fb(6, child)
             + fb(7, hostile("childnode", c1raw=False)) + fb(8, hostile("tag", c1raw=False)))
    break
time.sleep(1)
PYEOF

mkdir -p "$LAB/fctx"
echo 'FROM scratch' >"$LAB/fctx/Dockerfile"
n=0
# fake SCENARIO: start a fake coordinator; sets FAKE to its endpoint
fake() {
    local port
    port=$(lab_free_port)
    n=$((n + 1))
    lab_spawn "fake-$1-$n" "$LAB/fake-$1-$n.log" "$LAB_PYTHON" "$LAB/fakecoord.py" "$port" "$1"
    lab_wait_until 15 "the fake coordinator on $port" lab_port_listening "$port"
    FAKE=tcp://127.0.0.1:$port
}
fsubmit() { "$FARMCTL" submit --coordinator "$FAKE" -t 127.0.0.1:5999/inert/x:1 --platform linux/amd64 "$@"; }

fake nodes
"$FARMCTL" nodes --coordinator "$FAKE" >"$LAB/nodes.out" 2>&1 || { cat "$LAB/nodes.out" >&2; lab_fail "farmctl nodes failed"; }
cat -v "$LAB/nodes.out" >&2
check "$LAB/nodes.out" plain MARK-name MARK2-name MARK-plat MARK-emu MARK-state MARK-job MARK-version '\rFORGED-name'
grep -Eq '^oldagent +ready +0/1 +0 +0 +\? +-$' "$LAB/nodes.out" \
    || lab_fail "farmctl nodes does not show \"?\" for a node whose agent sent no version"
fake nodes
run_tty "$LAB/nodes.tty" "$FARMCTL" nodes --coordinator "$FAKE" || lab_fail "farmctl nodes failed on a tty"
check "$LAB/nodes.tty" tty MARK-name MARK2-name

rc=0
fake events
fsubmit --progress plain "$LAB/fctx" >"$LAB/ev.out" 2>"$LAB/ev.err" || rc=$?
cat -v "$LAB/ev.err" >&2
((rc == 1)) || lab_fail "farmctl submit exited $rc on a failed build (expected 1)"
[[ ! -s $LAB/ev.out ]] || lab_fail "stdout holds something for a failed build: $(cat -v "$LAB/ev.out")"
check "$LAB/ev.err" plain MARK-dispatched MARK-log MARK2-log MARK-platlog MARK-verifying \
    MARK-log2 MARK-failed MARK-err MARK-tail '\rFORGED-log' '\x1b' '\x9b2J-c1raw' '\u009b2J-c1utf8' \
    '[linux/amd64 n1] MARK-log'
# the error keeps its own line breaks, each line inert
grep -q '^last log lines:$' "$LAB/ev.err" || lab_fail "the failure lost its line structure"
grep -q '^  | MARK-tail ' "$LAB/ev.err" || lab_fail "the log tail line is not on its own line"

fake events
rc=0
run_tty "$LAB/ev.tty" "$FARMCTL" submit --coordinator "$FAKE" -t 127.0.0.1:5999/inert/x:1 \
    --platform linux/amd64 --progress tty "$LAB/fctx" || rc=$?
cat -v "$LAB/ev.tty" | tail -n 20 >&2
((rc == 1)) || lab_fail "farmctl submit --progress tty exited $rc on a failed build (expected 1)"
grep -q $'\e\[[0-9]*A' "$LAB/ev.tty" || lab_fail "--progress tty drew no live block (not a tty?)"
check "$LAB/ev.tty" tty MARK-verifying MARK-failed MARK-err MARK-tail 'linux/amd64    n1'

fake refused
rc=0
fsubmit --progress plain "$LAB/fctx" >"$LAB/ref.out" 2>"$LAB/ref.err" || rc=$?
cat -v "$LAB/ref.err" >&2
((rc != 0)) || lab_fail "a refused submit exited 0"
check "$LAB/ref.err" plain 'submit refused: MARK-refused' MARK2-refused

fake ctxerr
rc=0
fsubmit --progress plain "$LAB/fctx" >"$LAB/ctx.out" 2>"$LAB/ctx.err" || rc=$?
cat -v "$LAB/ctx.err" >&2
((rc != 0)) || lab_fail "a refused upload exited 0"
check "$LAB/ctx.err" plain 'context upload refused: MARK-ctx' MARK2-ctx

fake baddigest
rc=0
fsubmit --progress plain "$LAB/fctx" >"$LAB/bd.out" 2>"$LAB/bd.err" || rc=$?
cat -v "$LAB/bd.err" >&2
((rc != 0)) || lab_fail "farmctl accepted an index digest with escapes and a second line"
[[ ! -s $LAB/bd.out ]] || lab_fail "stdout holds a forged digest: $(cat -v "$LAB/bd.out")"
check "$LAB/bd.err" plain 'not sha256:<64 hex>'

fake done
fsubmit --progress plain --metadata-file "$LAB/meta.json" "$LAB/fctx" >"$LAB/done.out" \
    2>"$LAB/done.err" || { cat -v "$LAB/done.err" >&2; lab_fail "a successful (fake) build failed"; }
cat -v "$LAB/done.err" >&2
[[ $(cat "$LAB/done.out") == "sha256:$(printf 'b%.0s' {1..64})" ]] \
    || lab_fail "stdout is not the index digest: $(cat -v "$LAB/done.out")"
check "$LAB/done.err" plain MARK-childplat MARK-childnode MARK-tag 'build b1 accepted'
# the metadata file is JSON: the text is kept (escaped), and the file itself is inert
check "$LAB/meta.json" plain-visible
"$LAB_PYTHON" - "$LAB/meta.json" <<'PYEOF' || lab_fail "the metadata file lost or mangled the peer's text"
import json, sys
m = json.load(open(sys.argv[1]))
(plat, p), = m["farm.platforms"].items()
assert plat.startswith("MARK-childplat \x1b]0;PWNED-TITLE\x07"), repr(plat)
assert "\u009b2J-c1utf8" in p["node"] and p["node"].startswith("MARK-childnode"), repr(p)
assert m["farm.tags"][0].startswith("MARK-tag \x1b]"), repr(m["farm.tags"])
PYEOF
lab_log "part 1 (hostile coordinator): every field inert"

# --- 2. the real farm: a build that prints escapes --------------------------------------
lab_start_farm
ctx=$LAB/ctx
lab_example_context "$ctx"
# printf's octal escapes: ESC ]0; title BEL, clear screen, home, cursor up, a C1 CSI raw
# (\233) and in UTF-8 (\302\233), CR-overwrite, backspaces, a lone ESC at the end. The
# markers are MARK-%s in the command, so "MARK-build" is the output's. The builder quotes
# the command ("STEP 5/5: RUN printf '...PWNED-TITLE...'") and a daemon may show escapes as
# text: here the check is that no byte of them reaches the terminal (-visible).
cat >>"$ctx/Dockerfile" <<'DEOF'
RUN printf 'MARK-%s \033]0;PWNED-TITLE\007\033]2;PWNED-ST\033\\\033[2J\033[H\033[3A\033[2K\2332J-c1raw \302\2332J-c1utf8 \033[31mMARK2-%s\033[0m\rFORGED-build\010\010\007 end\033\n' build build
DEOF
tag=$REGISTRY/inert/ok:1
lab_farmctl submit -t "$tag" --platform linux/amd64,linux/arm64 --progress plain "$ctx" \
    >"$LAB/b.out" 2>"$LAB/b.err" || { cat -v "$LAB/b.err" >&2; lab_fail "the escape-printing build failed"; }
grep -F MARK "$LAB/b.err" | cat -v >&2
grep -Eq '^sha256:[0-9a-f]{64}$' "$LAB/b.out" || lab_fail "no digest on stdout"
check "$LAB/b.err" plain-visible '[linux/amd64 amd64-1] MARK-build ' \
    '[linux/arm64 arm64-1] MARK-build ' MARK2-build

rc=0
run_tty "$LAB/b.tty" lab_farmctl submit -t "$REGISTRY/inert/ok:2" \
    --platform linux/amd64,linux/arm64 --progress tty "$ctx" || rc=$?
cat -v "$LAB/b.tty" | tail -n 8 >&2
((rc == 0)) || lab_fail "the escape-printing build failed under --progress tty"
grep -q $'\e\[[0-9]*A' "$LAB/b.tty" || lab_fail "--progress tty drew no live block (not a tty?)"
# the live block shows a running row's last log line when it redraws (not every line)
check "$LAB/b.tty" tty-visible '#index pushed to'
grep -Eq 'sha256:[0-9a-f]{64}' "$LAB/b.tty" || lab_fail "no digest from the tty run"

# a failing RUN whose command line (quoted back in the builder's error) and output hold
# raw escapes: the error text farmctl prints is inert too
esc=$'\e' bel=$'\a' c1=$'\xc2\x9b'
printf 'RUN echo "MARK-fail %s]0;PWNED-TITLE%s%s[2J%s2J-c1utf8 MARK2-fail" >&2; exit 7\n' \
    "$esc" "$bel" "$esc" "$c1" >>"$ctx/Dockerfile"
rc=0
lab_farmctl submit -t "$REGISTRY/inert/broken:1" --platform linux/amd64 --progress plain "$ctx" \
    >"$LAB/f.out" 2>"$LAB/f.err" || rc=$?
cat -v "$LAB/f.err" | tail -n 20 >&2
((rc != 0)) || lab_fail "the failing build exited 0"
grep -q '^error: build .* failed: ' "$LAB/f.err" || lab_fail "no failure message"
sed -n '/^error: build/,$p' "$LAB/f.err" >"$LAB/f.error"
check "$LAB/f.err" plain-visible MARK-fail MARK2-fail
check "$LAB/f.error" plain-visible MARK-fail MARK2-fail
lab_log "PASS"
