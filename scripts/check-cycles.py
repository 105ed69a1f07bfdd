#!/usr/bin/env python3
"""Fails when a module of spool-core imports one that imports it back, directly or not.

Each file of core/src is one module (lib.rs and test-only files excepted). An edge a -> b is
any `crate::b...`, `super::...` or `self::...` path in a's code, or a path into one of a's
child modules, resolved to the longest module prefix that is a file; comments and
`#[cfg(test)]` code are ignored, and a name re-exported by lib.rs counts as its own module.
Not edges: a folder's mod.rs re-exporting its children (`pub use child::X`, as lib.rs does),
and a file's use of its own folder's mod.rs (`super::X`), the shared surface of its files.
Usage: scripts/check-cycles.py [core/src]   (exit 1 and the cycle on stdout when there is one)
"""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "core", "src")


def module_of(rel):
    parts = rel[:-3].split(os.sep)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def strip(src):
    """Removes comments, string literals and #[cfg(test)] items."""
    out, i, n = [], 0, len(src)
    while i < n:
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif src.startswith("'\"'", i):
            out.append("' '")
            i += 3
        elif src[i] == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append('""')
            i = j + 1
        else:
            out.append(src[i])
            i += 1
    text = "".join(out)
    # Drop `#[cfg(test)]` modules and functions, `mod name { ... }` or `fn f(..) { ... }`.
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?(mod|fn)\s+\w+[^{;]*\{", text)
        if not m:
            break
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        text = text[: m.start()] + text[j:]
    return text


def expand(tree):
    """Expands a use tree `a::{b, c::{d, e}}` into paths."""
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)
    m = re.match(r"^(.*?)\{(.*)\}$", tree)
    if not m:
        return [tree]
    prefix, body = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        cur += ch
    parts.append(cur)
    return [p for part in parts if part for p in expand(prefix + part)]


def main():
    files = {}
    for dirpath, _, names in os.walk(ROOT):
        for name in names:
            if name.endswith(".rs"):
                rel = os.path.relpath(os.path.join(dirpath, name), ROOT)
                files[module_of(rel)] = os.path.join(dirpath, name)
    lib = files.pop(("lib",), None)
    # Files declared `#[cfg(test)] mod name;` are test code: not modules of the core.
    for mod, path in list(files.items()) + ([(("lib",), lib)] if lib else []):
        parent = () if mod == ("lib",) else mod
        for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", open(path).read()):
            files.pop(parent + (m.group(1),), None)
    modules = set(files)
    # Names lib.rs re-exports, and the module each comes from.
    reexport = {}
    if lib:
        for m in re.finditer(r"pub\s+use\s+([^;]+);", strip(open(lib).read())):
            for p in expand(m.group(1)):
                segs = [s for s in p.split("::") if s]
                if segs and segs[0] == "crate":
                    segs = segs[1:]
                name = segs[-1] if segs else ""
                target = resolve(tuple(segs), modules)
                if target:
                    reexport[name] = target
    edges = {m: set() for m in modules}
    for mod, path in files.items():
        text = strip(open(path).read())
        paths = []
        for m in re.finditer(r"(\bpub(?:\([^)]*\))?\s+)?\buse\s+([^;]+);", text):
            expanded = expand(m.group(2))
            if m.group(1):
                # A re-export of the module's own children declares its API (as lib.rs does).
                expanded = [p for p in expanded if not is_child_path(p, mod, modules)]
            paths.extend(expanded)
        text = re.sub(r"\buse\s+[^;]+;", "", text)
        paths.extend(m.group(0) for m in re.finditer(r"\b(?:crate|super|self)(?:::\w+)+", text))
        # Paths into the module's own children (`child::item`), outside `use` too.
        paths.extend(m.group(0) for m in re.finditer(r"(?<![\w:])\w+(?:::\w+)+", text))
        for p in paths:
            segs = [s for s in re.split(r"::", p) if s]
            if not segs:
                continue
            if segs[0] == "crate":
                base = ()
            elif segs[0] == "super":
                base = mod[:-1]
            elif segs[0] == "self":
                base = mod
            elif mod + (segs[0],) in modules:
                base, segs = mod, ["self"] + segs
            else:
                continue
            rest = tuple(segs[1:])
            target = resolve(base + rest, modules)
            if target is None and base == () and rest and rest[0] in reexport:
                target = reexport[rest[0]]
            # A folder's mod.rs is the shared surface of its files: a file may use its own
            # parent (`super::X`) without that counting as the parent's import being returned.
            if target and target != mod and target != mod[:-1]:
                edges[mod].add(target)
    cycle = find_cycle(edges)
    if cycle:
        print("import cycle in core/src: " + " -> ".join("::".join(m) for m in cycle))
        sys.exit(1)
    print(f"no import cycle among {len(modules)} core modules")


def is_child_path(p, mod, modules):
    segs = [s for s in p.split("::") if s]
    if segs and segs[0] == "self":
        segs = segs[1:]
    elif segs and segs[0] == "crate":
        segs = segs[1:]
        if tuple(segs[: len(mod)]) != mod:
            return False
        segs = segs[len(mod):]
    return bool(segs) and mod + (segs[0],) in modules


def resolve(segs, modules):
    for k in range(len(segs), 0, -1):
        if tuple(segs[:k]) in modules:
            return tuple(segs[:k])
    return None


def find_cycle(edges):
    color, stack = {}, []

    def visit(m):
        color[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if color.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in color:
                c = visit(t)
                if c:
                    return c
        stack.pop()
        color[m] = 2
        return None

    for m in sorted(edges):
        if m not in color:
            c = visit(m)
            if c:
                return c
    return None


if __name__ == "__main__":
    main()
