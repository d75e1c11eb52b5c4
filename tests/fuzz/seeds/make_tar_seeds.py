#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpus of fuzz_context into DIR: small tars made with python's
tarfile, honest ones (what farmctl packs) and hostile ones (each tries one escape or
resource trick that farm_context_extract must refuse). Offline; its output is committed
in tests/fuzz/corpus/context/.

    tests/fuzz/seeds/make_tar_seeds.py tests/fuzz/corpus/context
"""
import io
import os
import sys
import tarfile

# End each tar after its two zero blocks, not at tarfile's 10 KiB record: small seeds
# fuzz faster.
tarfile.RECORDSIZE = 2 * tarfile.BLOCKSIZE


def entry(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, link="", **kw):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.linkname = link
    ti.mtime = 1700000000
    ti.size = len(data) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti, data


def write(path, entries, fmt=tarfile.USTAR_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if ti.size else None)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


DOCKERFILE = b"FROM busybox\nCOPY . /app\nRUN cat /app/hello.txt\n"
D, F, SYM, HARD = tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE

SEEDS = {
    # what farmctl sends: directories, files, an inner symlink
    "ok_context": [
        entry("Dockerfile", data=DOCKERFILE),
        entry("hello.txt", data=b"hello\n"),
        entry("src", D, mode=0o755),
        entry("src/main.c", data=b"int main(void) { return 0; }\n"),
        entry("src/link", SYM, link="main.c"),
        entry("src/up", SYM, link="../hello.txt"),
        entry("src/hard", HARD, link="src/main.c"),
    ],
    "ok_dotslash": [entry("./", D, mode=0o755), entry("./a//b", data=b"x")],
    "ok_modes": [entry("ro", D, mode=0o500), entry("ro/f", data=b"x", mode=0o4755)],
    "ok_pax_longname": [entry("d/" + "n" * 200, data=b"long name")],
    # hostile: each must be refused, and nothing may appear outside the directory
    "evil_dotdot": [entry("../sentinel", data=b"overwritten\n")],
    "evil_dotdot_deep": [entry("a/../../sentinel", data=b"overwritten\n")],
    "evil_absolute": [entry("/tmp/farm-fuzz-escape", data=b"escaped\n")],
    "evil_symlink_out": [entry("out", SYM, link="../.."), entry("out/sentinel", data=b"x")],
    "evil_symlink_abs": [entry("etc", SYM, link="/etc"), entry("etc/farm-fuzz", data=b"x")],
    "evil_symlink_then_dir": [entry("s", SYM, link="."), entry("s/../../sentinel", data=b"x")],
    "evil_symlink_named": [entry("d", D), entry("d/l", SYM, link="x/../../../..")],
    "evil_hardlink_out": [entry("h", HARD, link="../sentinel")],
    "evil_hardlink_to_symlink": [
        entry("d", D), entry("d/l", SYM, link="../f"), entry("f", data=b"x"),
        entry("l2", HARD, link="d/l"),
    ],
    "evil_symlink_replace": [entry("f", data=b"x"), entry("f", SYM, link="../sentinel"),
                             entry("f", data=b"overwrite")],
    "evil_through_inner_symlink": [entry("sub", D), entry("d", SYM, link="sub"),
                                   entry("d/x", data=b"x")],
    "evil_device": [entry("null", tarfile.CHRTYPE, devmajor=1, devminor=3)],
    "evil_fifo": [entry("fifo", tarfile.FIFOTYPE)],
    "evil_too_many": [entry("f%03d" % i, data=b"") for i in range(66)],
}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, entries in SEEDS.items():
        fmt = tarfile.PAX_FORMAT if "pax" in name else tarfile.USTAR_FORMAT
        write(os.path.join(out, name + ".tar"), entries, fmt)
    # a header that claims 1 GiB of contents, followed by 16 bytes
    ti, _ = entry("big")
    ti.size = 1 << 30
    with open(os.path.join(out, "evil_big_size.tar"), "wb") as f:
        f.write(ti.tobuf(tarfile.USTAR_FORMAT) + b"x" * 16 + bytes(1024 - 16))
    # GNU long name holding "..", and a truncated archive
    write(os.path.join(out, "evil_gnu_longname.tar"),
          [entry("x/" * 60 + "../" * 62 + "sentinel", data=b"x")], tarfile.GNU_FORMAT)
    with open(os.path.join(out, "ok_context.tar"), "rb") as f:
        whole = f.read()
    with open(os.path.join(out, "bad_truncated.tar"), "wb") as f:
        f.write(whole[:700])


if __name__ == "__main__":
    main()
