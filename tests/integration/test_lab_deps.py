#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Every external command the test scripts and the lab call comes from a Debian package
that tests/run.sh installs: a package in LAB_DEPS (tests/lab/lib.sh), one they depend on,
or one every Debian system has (Essential: yes or Priority: required, the minbase). A tool
installed by hand on this machine (or found through /usr/local or a pyenv shim first on
PATH) fails this test, naming the command, where it was found and where it is called, so
the suite cannot pass here and fail on a new machine. The same holds for the Python modules
the tests import, as Debian's python3 (the lab's) finds them: a pip-installed one fails.

Commands are found in the scripts' command positions (start of a command, after | && ||
; ( $( ! and after wrappers such as env, timeout, setsid, setpriv, xargs, command -v);
quoted text, comments, heredoc bodies and the scripts' own functions are not commands."""
import os
import pathlib
import re
import shlex
import subprocess
import sys

SRC = pathlib.Path(os.environ.get("FARM_SOURCE_DIR") or pathlib.Path(__file__).resolve().parents[2])
SCRIPTS = ["tests/run.sh", ".ci/run", "tests/lab/*.sh", "tests/integration/*.sh",
           "tests/tree/*.sh", "tests/fuzz/run.sh", "deploy/quickstart.sh", "deploy/packages/*.sh"]
# a new Debian machine's PATH, after the caller's own (a shim earlier there wins: see above)
STD_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]

SEPARATORS = {";", ";;", "&", "&&", "||", "|", "|&", "(", ")", "{", "}", "!", "then", "do",
              "else", "elif", "if", "while", "until", "time"}
# wrappers: the command they run comes after their options (value-taking options listed)
WRAPPERS = {
    "exec": set(), "command": set(), "builtin": set(), "nohup": set(), "setsid": set(),
    "sudo": {"-u", "-g"}, "nice": {"-n"}, "ionice": {"-c", "-n"},
    "env": {"-u", "-C", "--unset", "--chdir"},
    "timeout": {"-s", "-k", "--signal", "--kill-after"},
    "xargs": {"-I", "-n", "-P", "-L", "-d", "-a", "-s", "-E"},
    "setpriv": {"--reuid", "--regid", "--ruid", "--rgid", "--euid", "--egid", "--groups",
                "--inh-caps", "--ambient-caps", "--bounding-set", "--securebits",
                "--pdeathsig", "--selinux-label", "--apparmor-profile"},
    "flock": {"-w", "-E", "--timeout", "--conflict-exit-code"},
    "stdbuf": {"-i", "-o", "-e"},
}
# farm's own packages: a test that installs them (test_packages) may leave them behind
OWN_PACKAGES = {"farm-agent", "farm-coordinator", "farmctl"}
NAME = re.compile(r"^(/[A-Za-z0-9_./+-]+|[A-Za-z0-9_][A-Za-z0-9_.+-]*)$")
HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")
ARRAY = re.compile(r"(^|[\s;])[A-Za-z_][A-Za-z0-9_]*\+?=\(")
IMPORT = re.compile(r"^\s*(?:import\s+([\w., ]+?)\s*(?:#.*)?$|from\s+(\w+)[\w.]*\s+import\b)")
FUNC = re.compile(r"^\s*(?:function\s+)?([A-Za-z_][A-Za-z0-9_:-]*)\s*\(\)\s*\{?")


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def strip_comment(line):
    """line without a trailing # comment (a # that starts a word outside quotes)."""
    q = None
    for i, c in enumerate(line):
        if q:
            if c == q:
                q = None
            elif c == "\\" and q == '"':
                continue
        elif c in "'\"":
            q = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t;|&("):
            return line[:i]
    return line


def substitutions(text):
    """The bodies of $( ... ) in text, wherever they are (double quotes included)."""
    out, i = [], 0
    while True:
        i = text.find("$(", i)
        if i < 0:
            return out
        if text.startswith("$((", i):  # arithmetic
            i += 3
            continue
        depth, j = 1, i + 2
        while j < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[j], 0)
            j += 1
        out.append(text[i + 2:j - 1])
        i += 2


def logical_lines(text):
    """(line number, code) per shell command text: continuations joined, comments and
    heredoc bodies dropped, a quote left open carried into the next line."""
    lines = text.split("\n")
    i, buf, start = 0, "", 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not buf:
            start = i
            if line.lstrip().startswith("#"):
                continue
        line = strip_comment(line) if not buf else line
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        try:
            shlex.split(buf)
        except ValueError:  # a quote spans lines
            buf += "\n"
            continue
        if ARRAY.search(buf) and buf.count("(") > buf.count(")"):
            buf += " "  # an array's words span lines: they are not commands
            continue
        for m in HEREDOC.finditer(buf):
            tag, strip = m.group(2), buf[m.start():].startswith("<<-")
            while i < len(lines) and (lines[i].strip() if strip else lines[i]) != tag:
                i += 1
            i += 1
        yield start, buf
        buf = ""
    if buf:
        yield start, buf


def commands(code):
    """The command names in one logical line of shell, in order."""
    try:
        lex = shlex.shlex(code, posix=True, punctuation_chars=True)
        lex.whitespace_split = False
        toks = list(lex)
    except ValueError:
        return []
    out, pos, wrapper, skip_value = [], True, None, False
    for t in toks:
        if t in SEPARATORS or t == "$":
            pos, wrapper, skip_value = t != "$", None, False
            continue
        if skip_value:
            skip_value = False
            continue
        if wrapper is not None:
            if t.startswith("-"):
                opt = t.split("=", 1)[0]
                skip_value = opt in WRAPPERS[wrapper] and "=" not in t
                continue
            if wrapper == "env" and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", t):
                continue
            if wrapper == "timeout" and re.match(r"^[0-9.]+[smhd]?$", t):
                continue
            if wrapper in ("nice", "ionice") and re.match(r"^-?[0-9]+$", t):
                continue
        elif not pos:
            continue
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=", t):
            continue  # an assignment before the command
        pos, wrapper = False, None
        if t in WRAPPERS:
            out.append(t)
            wrapper = t
            pos = True
            continue
        if NAME.match(t):
            out.append(t)
    return out


def scan(text):
    """{command: [line numbers]} for a shell script's text."""
    found = {}

    def add(line, code, depth=0):
        for c in commands(code):
            found.setdefault(c, []).append(line)
        if depth < 5:
            for sub in substitutions(code):
                add(line, sub, depth + 1)

    for line, code in logical_lines(text):
        add(line, code)
    return found


def self_test():
    """The scanner finds commands where they hide and nothing in text that is not run."""
    text = """x=$(foo -a | bar "$(baz)") && ! qux # not_a_cmd
FOO=1 env -u A B=2 envcmd --opt; timeout -s KILL 5 tocmd arg
as=(setpriv --reuid farm --regid farm --init-groups spcmd)
echo "words like notcmd1 here" 'and notcmd2'
cat <<'EOF'
notcmd3 in a heredoc
EOF
long \\
  --flag; after_long
if [[ -x /usr/bin/abs ]]; then /usr/bin/abscmd; fi
"""
    got = scan(text)
    want = {"foo", "bar", "baz", "qux", "env", "envcmd", "timeout", "tocmd", "setpriv",
            "spcmd", "echo", "cat", "long", "after_long", "/usr/bin/abscmd"}
    missing = want - set(got)
    extra = {c for c in got if c.startswith("notcmd") or c == "not_a_cmd"}
    if missing or extra:
        fail(f"scanner self-test: missed {sorted(missing)}, wrongly found {sorted(extra)}")


def resolve(cmd):
    if cmd.startswith("/"):
        return cmd if os.path.isfile(cmd) and os.access(cmd, os.X_OK) else None
    path = os.environ.get("PATH", "").split(":") + STD_PATH
    for d in path:
        p = os.path.join(d, cmd)
        if d and os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def owners(paths):
    """{path: package} for the paths a package's file list holds (usrmerge: /bin and
    /usr/bin are one directory, so both spellings and the real path are asked)."""
    alias = {}
    for path in paths:
        for p in {path, os.path.realpath(path)}:
            for q in (p, p[4:] if p.startswith("/usr/") else "/usr" + p):
                alias.setdefault(q, set()).add(path)
    r = subprocess.run(["dpkg-query", "-S", *sorted(alias)], capture_output=True, text=True)
    out = {}
    for line in r.stdout.splitlines():
        pkgs, _, f = line.partition(": ")
        if f in alias and not pkgs.startswith("diversion"):
            for path in alias[f]:
                out.setdefault(path, pkgs.split(",")[0].strip().split(":")[0])
    return out


def imports(text):
    """{top-level module: [line numbers]} imported in Python code (a file or heredocs)."""
    found = {}
    for n, line in enumerate(text.split("\n"), 1):
        m = IMPORT.match(line)
        if not m:
            continue
        names = [m.group(2)] if m.group(2) else [x.split(" as ")[0] for x in m.group(1).split(",")]
        for name in names:
            name = name.strip().split(".")[0]
            if name:
                found.setdefault(name, []).append(n)
    return found


def module_files(python, names):
    """{module: the file Debian's python3 imports it from} (built-in ones and those it
    cannot find are left out: a missing module fails its own test)."""
    code = ("import importlib.util, sys\n"
            "for m in sys.argv[1:]:\n"
            "    try:\n"
            "        s = importlib.util.find_spec(m)\n"
            "    except Exception:\n"
            "        s = None\n"
            "    o = s and (s.origin or (list(s.submodule_search_locations or []) or [None])[0])\n"
            "    if o and o.startswith('/'):\n"
            "        print(m + '\\t' + o)\n")
    r = subprocess.run([python, "-I", "-c", code, *sorted(names)], capture_output=True,
                       text=True, cwd="/")
    if r.returncode != 0:
        fail(f"{python} cannot look modules up: {r.stderr.strip()}")
    return dict(line.split("\t", 1) for line in r.stdout.splitlines())


def installed():
    """{package: (essential or required, [dependency alternatives], [provides])}."""
    fmt = "${Package}\t${Essential}\t${Priority}\t${Pre-Depends}, ${Depends}\t${Provides}\t${db:Status-Abbrev}\n"
    r = subprocess.run(["dpkg-query", "-W", "-f", fmt], capture_output=True, text=True, check=True)
    pkgs = {}
    for line in r.stdout.splitlines():
        name, ess, prio, deps, prov, status = line.split("\t")
        if not status.startswith("ii"):
            continue
        alts = []
        for d in deps.split(","):
            names = [re.sub(r"[ (:].*", "", a.strip()) for a in d.split("|")]
            names = [n for n in names if n]
            if names:
                alts.append(names)
        provides = [re.sub(r"[ (:].*", "", p.strip()) for p in prov.split(",") if p.strip()]
        pkgs[name] = (ess == "yes" or prio == "required", alts, provides)
    return pkgs


def closure(seeds, pkgs):
    """seeds and everything they (pre-)depend on, over the installed packages."""
    provided = {}
    for name, (_, _, provides) in pkgs.items():
        for p in provides:
            provided.setdefault(p, []).append(name)
    done, todo = set(), list(seeds)
    while todo:
        p = todo.pop()
        for real in ([p] if p in pkgs else provided.get(p, [])):
            if real in done:
                continue
            done.add(real)
            for alts in pkgs[real][1]:
                todo.extend(alts)
    return done


def main():
    self_test()
    r = subprocess.run(["bash", "-c", 'source "$1"; printf "%s\\n" "${LAB_DEPS[@]}"', "-",
                        str(SRC / "tests/lab/lib.sh")], capture_output=True, text=True)
    deps = r.stdout.split()
    if r.returncode != 0 or not deps:
        fail(f"cannot read LAB_DEPS from {SRC}/tests/lab/lib.sh: {r.stderr.strip()}")
    pkgs = installed()
    base = [n for n, (b, _, _) in pkgs.items() if b]
    missing = [d for d in deps if d not in pkgs]
    if missing:
        fail(f"LAB_DEPS packages not installed: {' '.join(missing)} (run tests/run.sh, which installs them)")
    covered = closure(deps + base, pkgs)

    files, funcs, uses, mods = [], set(), {}, {}
    for pat in SCRIPTS:
        files += sorted(SRC.glob(pat))
    if len(files) < 10:
        fail(f"found only {len(files)} scripts under {SRC}: is FARM_SOURCE_DIR right?")
    pyfiles = sorted(SRC.glob("tests/integration/*.py")) + sorted(SRC.glob("tests/lab/*.py"))
    local = {f.stem for f in pyfiles}
    for f in files + pyfiles:
        text = f.read_text()
        if f.suffix != ".py":
            funcs |= {m.group(1) for m in map(FUNC.match, text.split("\n")) if m}
            for cmd, lines in scan(text).items():
                uses.setdefault(cmd, []).extend(f"{f.relative_to(SRC)}:{n}" for n in lines)
        for mod, lines in imports(text).items():  # .py files and python heredocs
            if mod not in local:
                mods.setdefault(mod, []).extend(f"{f.relative_to(SRC)}:{n}" for n in lines)
    python = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else "python3"
    mod_file = module_files(python, mods)
    if not {"zmq", "jsonschema"} <= set(mod_file):
        fail(f"{python} does not find zmq and jsonschema, which the tests import: "
             "apt-get install python3-zmq python3-jsonschema (both in LAB_DEPS)")
    resolved = {}
    for cmd in sorted(uses):
        path = None if cmd in funcs else resolve(cmd)
        if path:  # else a word, not a program here (a missing program fails its own test)
            resolved[cmd] = path
    pkg_of = owners(set(resolved.values()) | set(mod_file.values()))
    problems, checked = [], len(resolved)
    for cmd, path in resolved.items():
        pkg = pkg_of.get(path)
        if pkg in OWN_PACKAGES:  # farm's own, which test_packages installs and purges
            continue
        where = ", ".join(sorted(set(uses[cmd]))[:3]) + (" ..." if len(set(uses[cmd])) > 3 else "")
        if pkg is None:
            problems.append(f"{cmd}: {path} belongs to no Debian package (installed by hand?); "
                            f"called at {where}. Call the packaged one (e.g. by its /usr/bin "
                            "path) and add its package to LAB_DEPS")
        elif pkg not in covered:
            problems.append(f"{cmd}: {path} is from the package {pkg}, which LAB_DEPS neither "
                            f"lists nor depends on; called at {where}. Add {pkg} to LAB_DEPS in "
                            "tests/lab/lib.sh")
    for mod, path in sorted(mod_file.items()):
        pkg = pkg_of.get(path)
        where = ", ".join(sorted(set(mods[mod]))[:3]) + (" ..." if len(set(mods[mod])) > 3 else "")
        if pkg is None:
            problems.append(f"python module {mod}: {path} belongs to no Debian package (pip?); "
                            f"imported at {where}. Install Debian's python3-{mod.lower()} "
                            "instead and add it to LAB_DEPS")
        elif pkg not in covered:
            problems.append(f"python module {mod}: {path} is from the package {pkg}, which "
                            f"LAB_DEPS neither lists nor depends on; imported at {where}. Add "
                            f"{pkg} to LAB_DEPS in tests/lab/lib.sh")
    if checked < 30:
        fail(f"only {checked} commands resolved: the scanner is broken")
    if problems:
        fail(f"{len(problems)} thing(s) the tests use that a new machine would not have:\n  " + "\n  ".join(problems))
    print(f"ok: {checked} commands in {len(files)} scripts and {len(mod_file)} python modules "
          "come from LAB_DEPS "
          f"({len(deps)} packages, {len(covered)} with their dependencies and the base system)")


if __name__ == "__main__":
    main()
