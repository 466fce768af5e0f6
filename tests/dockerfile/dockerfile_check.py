#!/usr/bin/env python3
"""Checks the Dockerfile and .dockerignore without a container engine.

  dockerfile_check.py [--no-emulate]

1. Invariants: multi-stage; builder FROM rust:<version>; `cargo build --locked
   --release`; runtime `scratch` with a static binary (RUSTFLAGS +crt-static and an
   explicit --target), or distroless (cc or static); numeric non-root USER
   65532:65532 last in the final stage; exec-form ENTRYPOINT of
   /usr/local/bin/lease-elector; EXPOSE 9890; OCI labels; the binary copied from
   the builder; rust-version of Cargo.toml <= the builder's Rust; no OpenSSL in
   Cargo.lock (distroless cc has no build tools, and rustls is the choice);
   .dockerignore keeps what the build needs and drops target/, .git, the fixture.
2. Emulated build of the builder stage: WORKDIR, COPY (honouring .dockerignore)
   and RUN are carried out in a temporary directory, with a stand-in `cargo`
   that checks its arguments and the sources it would compile: the dependency
   layer must see stub sources, the real build the real ones with no stub
   artefacts left over, and the runtime stage's COPY --from=builder must find
   the binary. This checks the shell of the RUN steps and the layer logic; it
   does not compile anything.

Prints one line per failed check and "dockerfile: N passed, N failed".
"""
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

try:
    import tomllib
except ImportError:
    tomllib = None

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
results = []


def ok(cond, msg):
    results.append((bool(cond), msg))
    return bool(cond)


def parse_dockerfile(path):
    """[(instruction, args, lineno)], joining continuation lines, dropping comments."""
    out = []
    buf, start = "", 0
    with open(path) as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines, 1):
        s = line.strip()
        if not buf and (not s or s.startswith("#")):
            continue
        if buf and s.startswith("#"):
            continue  # comment lines inside a continued instruction
        if not buf:
            start = i
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        buf += s
        m = re.match(r"(\w+)\s*(.*)", buf)
        out.append((m.group(1).upper(), m.group(2).strip(), start))
        buf = ""
    return out


def stages(instrs):
    st = []
    for ins in instrs:
        if ins[0] == "FROM":
            st.append([ins])
        elif st:
            st[-1].append(ins)
    return st


def parse_labels(args):
    labels = {}
    for tok in shlex.split(args):
        if "=" in tok:
            k, v = tok.split("=", 1)
            labels[k] = v
    return labels


def load_dockerignore():
    pats = []
    path = os.path.join(ROOT, ".dockerignore")
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line and not line.startswith("#"):
                pats.append(line)
    return pats


def ignored(rel, pats):
    """Approximation of .dockerignore matching (no ! exceptions are used here)."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for p in pats:
        p = p.rstrip("/").lstrip("/")
        for pre in prefixes:
            if fnmatch.fnmatchcase(pre, p):
                return True
            if p.startswith("**/") and fnmatch.fnmatchcase(pre.split("/")[-1], p[3:]):
                return True
    return False


def static_checks(instrs, st):
    ok(len(st) >= 2, f"multi-stage build ({len(st)} stages)")
    froms = [s[0][1] for s in st]
    builder = st[0] if st else []
    final = st[-1] if st else []
    args = {m.group(1): m.group(2) for ins in instrs if ins[0] == "ARG"
            for m in [re.match(r"(\w+)=(\S+)", ins[1])] if m}
    m = re.match(r"rust:(\$\{RUST_VERSION\}|[0-9.]+)(-[a-z-]+)?\s+AS\s+(\w+)", froms[0] if froms else "", re.I)
    ok(m, f"builder stage FROM rust:<version>[-bookworm] AS <name> ({froms[:1]})")
    rust_version = args.get("RUST_VERSION") if m and m.group(1).startswith("$") else (m.group(1) if m else None)
    ok(rust_version and re.match(r"^1\.\d+(\.\d+)?$", rust_version), f"Rust version pinned ({rust_version})")
    runtime = final[0][1] if final else ""
    ok(runtime == "scratch" or re.match(r"gcr\.io/distroless/(cc|static)-debian1[2-9](:nonroot)?(@sha256:[a-f0-9]{64})?$",
                                        runtime), f"runtime stage is scratch or distroless cc/static ({froms[-1:]})")
    if runtime == "scratch":
        envs = " ".join(ins[1] for ins in builder if ins[0] == "ENV")
        ok("+crt-static" in envs, "scratch runtime: the builder links statically (RUSTFLAGS -C target-feature=+crt-static)")
        ok(all("--target" in seg for r in [ins[1] for ins in builder if ins[0] == "RUN"]
               for seg in re.findall(r"cargo build[^&;|]*", r)),
           "scratch runtime: every cargo build names --target (keeps +crt-static off build scripts)")
        copies_f = [ins[1] for ins in final if ins[0] == "COPY"]
        ok(any(re.search(r"--from=\w+\s+\S+/\s+/$", c) for c in copies_f),
           "scratch runtime: a root tree (CA bundle, passwd, /tmp) is copied from the builder")

    runs = [ins[1] for ins in builder if ins[0] == "RUN"]
    builder_args = [ins[1].split("=")[0] for ins in builder if ins[0] == "ARG"]
    ok("REVISION" in builder_args and any('BUILD_GIT_COMMIT="$REVISION" cargo build' in r for r in runs),
       "the builder passes ARG REVISION to build.rs as BUILD_GIT_COMMIT (the context has no .git)")
    ok("SOURCE_DATE_EPOCH" in builder_args, "the builder takes ARG SOURCE_DATE_EPOCH (the build date build.rs stamps)")
    ok(any(re.search(r"cargo build\b[^&;|]*--locked", r) and re.search(r"cargo build\b[^&;|]*--release", r)
           for r in runs), "builder runs `cargo build --locked --release`")
    ok(all(re.search(r"--locked", seg) for r in runs for seg in re.findall(r"cargo (?:build|fetch)[^&;|]*", r)),
       "every cargo build/fetch uses --locked")
    ok(len([r for r in runs if "cargo build" in r]) >= 2, "dependency-caching layer before the real build")
    ok(all(re.search(r"--features[ =]\S*daemon", seg) for r in runs for seg in re.findall(r"cargo build[^&;|]*", r)),
       "every cargo build enables --features daemon (the binary's required feature)")

    users = [ins for ins in final if ins[0] == "USER"]
    ok(users, "final stage sets USER")
    if users:
        u = users[-1][1]
        ok(re.match(r"^[0-9]+(:[0-9]+)?$", u), f"USER is numeric ({u})")
        ok(u == "65532:65532", f"USER is 65532:65532 ({u})")
        idx = final.index(users[-1])
        ok(not any(ins[0] in ("RUN", "COPY", "ADD") and ins[0] == "RUN" for ins in final[idx + 1:]),
           "no RUN after USER in the final stage")
    eps = [ins for ins in final if ins[0] == "ENTRYPOINT"]
    ok(len(eps) == 1, "one ENTRYPOINT in the final stage")
    if eps:
        try:
            ep = json.loads(eps[0][1])
            ok(ep == ["/usr/local/bin/lease-elector"], f"exec-form ENTRYPOINT [\"/usr/local/bin/lease-elector\"] ({ep})")
        except json.JSONDecodeError:
            ok(False, f"ENTRYPOINT is exec form (JSON array): {eps[0][1]}")
    ok(not any(ins[0] == "CMD" and not ins[1].startswith("[") for ins in final), "no shell-form CMD")
    ok(any(ins[0] == "EXPOSE" and "9890" in ins[1].split() for ins in final), "EXPOSE 9890")
    labels = {}
    for ins in final:
        if ins[0] == "LABEL":
            labels.update(parse_labels(ins[1]))
    for k in ("title", "description", "source", "licenses", "version", "revision"):
        ok(f"org.opencontainers.image.{k}" in labels, f"OCI label org.opencontainers.image.{k}")
    ok(labels.get("org.opencontainers.image.licenses") == "Apache-2.0", "licence label Apache-2.0")
    copies = [ins for ins in final if ins[0] == "COPY"]
    ok(any(re.search(r"--from=\w+\s+\S+/lease-elector\s+/usr/local/bin/lease-elector$", c[1]) for c in copies),
       "final stage copies the binary from the builder to /usr/local/bin/lease-elector")
    ok(not any(ins[0] == "ADD" for ins in instrs), "no ADD (COPY only)")

    # Cargo metadata the Dockerfile relies on
    if tomllib:
        with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
            cargo = tomllib.load(f)
        bins = [b.get("name") for b in cargo.get("bin", [])] or [cargo["package"]["name"]]
        ok("lease-elector" in bins, f"Cargo.toml builds a binary named lease-elector ({bins})")
        rv = str(cargo.get("package", {}).get("rust-version", "0"))
        if rust_version:
            ok(tuple(map(int, rv.split("."))) <= tuple(map(int, rust_version.split("."))),
               f"rust-version {rv} <= builder Rust {rust_version}")
    else:
        ok(False, "python3 >= 3.11 (tomllib) to read Cargo.toml")
    lock = open(os.path.join(ROOT, "Cargo.lock")).read()
    ok('name = "openssl-sys"' not in lock, "Cargo.lock has no openssl-sys (rustls only)")

    pats = load_dockerignore()
    ok(pats, ".dockerignore exists")
    for need in ("Cargo.toml", "Cargo.lock", "build.rs", "src", "src/main.rs"):
        ok(not ignored(need, pats), f".dockerignore keeps {need}")
    for drop in ("target", "target/release/x", ".git", "tests/k8s-fixture/go.mod", "helm/lease-elector/Chart.yaml"):
        ok(ignored(drop, pats), f".dockerignore drops {drop}")
    return builder, final


FAKE_CARGO = r"""#!/usr/bin/env bash
# stand-in for cargo in the emulated build
set -eu
echo "cargo $*" >> "$EMU_LOG"
[ "${1:-}" = build ] || { echo "fake cargo: unexpected command $*" >&2; exit 1; }
case " $* " in *" --locked "*) ;; *) echo "fake cargo: missing --locked" >&2; exit 1 ;; esac
case " $* " in *" --release "*) ;; *) echo "fake cargo: missing --release" >&2; exit 1 ;; esac
case " $* " in *" --features daemon "*) ;; *) echo "fake cargo: missing --features daemon" >&2; exit 1 ;; esac
[ -f Cargo.toml ] && [ -f Cargo.lock ] || { echo "fake cargo: Cargo.toml/Cargo.lock missing" >&2; exit 1; }
[ -f src/main.rs ] || { echo "fake cargo: src/main.rs missing" >&2; exit 1; }
out=target/release
prev=""
for a in "$@"; do
  [ "$prev" = --target ] && out="target/$a/release"
  case "$a" in --target=*) out="target/${a#--target=}/release" ;; esac
  prev="$a"
done
mkdir -p "$out/deps" "$out/.fingerprint"
if [ "$(tr -d '[:space:]' < src/main.rs)" = "fnmain(){}" ]; then
  echo stub >> "$EMU_LOG"
  touch "$out/deps/lease_elector-0stub" "$out/deps/libdependency-0dep.rlib"
  mkdir -p "$out/.fingerprint/lease-elector-0stub"
  printf '#!/bin/sh\necho stub binary; exit 3\n' > "$out/lease-elector"
else
  echo real >> "$EMU_LOG"
  if ls "$out/deps/lease_elector-0stub" "$out/.fingerprint/lease-elector-0stub" >/dev/null 2>&1; then
    echo "fake cargo: stub artefacts of the package were left over (cargo could reuse them)" >&2; exit 1
  fi
  [ -f "$out/deps/libdependency-0dep.rlib" ] || { echo "fake cargo: compiled dependencies were not kept" >&2; exit 1; }
  printf '#!/bin/sh\necho real binary\n' > "$out/lease-elector"
fi
chmod +x "$out/lease-elector"
"""


def emulate(builder, final):
    tmp = tempfile.mkdtemp(prefix="dockerfile-emu-")
    try:
        fs = os.path.join(tmp, "fs")
        os.makedirs(fs)
        fake = os.path.join(tmp, "bin")
        os.makedirs(fake)
        with open(os.path.join(fake, "cargo"), "w") as f:
            f.write(FAKE_CARGO)
        os.chmod(os.path.join(fake, "cargo"), 0o755)
        log = os.path.join(tmp, "log")
        open(log, "w").close()
        env = dict(os.environ, PATH=fake + os.pathsep + os.environ.get("PATH", ""), EMU_LOG=log)
        shell = ["/bin/sh", "-c"]
        workdir = "/"
        pats = load_dockerignore()
        stage_name = builder[0][1].split()[-1]
        context_files = 0
        for ins, args, lineno in builder[1:]:
            if ins == "SHELL":
                shell = json.loads(args)
            elif ins == "WORKDIR":
                workdir = os.path.join(workdir, args)
                os.makedirs(fs + workdir, exist_ok=True)
            elif ins == "COPY":
                toks = [t for t in shlex.split(args) if not t.startswith("--")]
                srcs, dest = toks[:-1], toks[-1]
                dest_abs = fs + (dest if dest.startswith("/") else os.path.join(workdir, dest))
                for src in srcs:
                    src_abs = os.path.normpath(os.path.join(ROOT, src))
                    if os.path.isdir(src_abs):
                        for dirpath, dirnames, filenames in os.walk(src_abs):
                            rel_dir = os.path.relpath(dirpath, ROOT)
                            dirnames[:] = [d for d in dirnames
                                           if not ignored(os.path.normpath(os.path.join(rel_dir, d)), pats)]
                            for fn in filenames:
                                rel = os.path.normpath(os.path.join(rel_dir, fn))
                                if ignored(rel, pats):
                                    continue
                                target = os.path.join(dest_abs, os.path.relpath(os.path.join(dirpath, fn), src_abs))
                                os.makedirs(os.path.dirname(target), exist_ok=True)
                                shutil.copy2(os.path.join(dirpath, fn), target, follow_symlinks=False)
                                context_files += 1
                    else:
                        os.makedirs(dest_abs, exist_ok=True)
                        shutil.copy2(src_abs, os.path.join(dest_abs, os.path.basename(src)))
            elif ins == "RUN":
                p = subprocess.run(shell + [args], cwd=fs + workdir, env=env, capture_output=True, text=True)
                if not ok(p.returncode == 0, f"emulated RUN at line {lineno} succeeds"):
                    print(f"  --- RUN at line {lineno}: {args}\n{p.stdout}{p.stderr}")
                    return
            elif ins in ("ARG", "ENV", "LABEL", "USER", "EXPOSE"):
                pass
            else:
                ok(False, f"emulator knows builder instruction {ins} (line {lineno})")
        calls = open(log).read().split("\n")
        ok(calls.count("stub") == 1 and calls.count("real") == 1,
           f"emulated build: one dependency build on stubs, then one real build ({[c for c in calls if c]})")
        ok(calls.index("stub") < calls.index("real") if "stub" in calls and "real" in calls else False,
           "the stub build comes first")
        ok(context_files < 2000, f"build context is small ({context_files} files copied by COPY . .)")
        for ins, args, lineno in final:
            if ins == "COPY" and f"--from={stage_name}" in args:
                src, dest = [t for t in shlex.split(args) if not t.startswith("--")][:2]
                path = fs + src
                if dest == "/usr/local/bin/lease-elector":
                    ok(os.path.isfile(path) and "real binary" in open(path).read(),
                       f"COPY --from={stage_name} {src} finds the binary of the real build")
                else:
                    ok(os.path.isdir(path), f"COPY --from={stage_name} {src} finds the runtime root tree")
                    if os.path.isdir(path):
                        tmpdir = os.path.join(path, "tmp")
                        ok(os.path.isdir(tmpdir) and (os.stat(tmpdir).st_mode & 0o7777) == 0o1777,
                           "runtime root has /tmp with mode 1777")
                        ok(os.path.isfile(os.path.join(path, "etc/ssl/certs/ca-certificates.crt")),
                           "runtime root has the CA bundle")
                        pw = os.path.join(path, "etc/passwd")
                        ok(os.path.isfile(pw) and ":65532:65532:" in open(pw).read(),
                           "runtime root has a passwd entry for 65532")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    instrs = parse_dockerfile(os.path.join(ROOT, "Dockerfile"))
    st = stages(instrs)
    builder, final = static_checks(instrs, st)
    if "--no-emulate" not in sys.argv and builder:
        emulate(builder, final)
    failed = [m for good, m in results if not good]
    for m in failed:
        print(f"FAIL: {m}")
    if "-v" in sys.argv:
        for good, m in results:
            if good:
                print(f"ok:   {m}")
    print(f"invariants: {len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
