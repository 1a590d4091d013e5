#!/usr/bin/env python3
"""Check the code's layout rules, so that they hold after every change:

- every module under src/ opens with a `//!` comment;
- no function is longer than 80 lines;
- no file is longer than 600 lines, unless its `//!` says why it must be
  one piece (the words "one piece");
- no two modules import each other (by `use` or an inline `crate::` or
  `super::` path;
  test modules are not counted).

It reads the source as text: a function's end is the first line after its
signature that closes a brace at the signature's indentation, which
rustfmt'ed code always has. Prints each breach and exits 1 if there is any.
Usage: scripts/layout.py [SRC_DIR]
"""
import os
import re
import sys

MAX_FN = 80
MAX_FILE = 600
FN = re.compile(r'^(\s*)(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)')


def rust_files(root):
    for d, _, names in os.walk(root):
        for n in sorted(names):
            if n.endswith('.rs'):
                yield os.path.join(d, n)


def module_of(root, path):
    parts = os.path.relpath(path, root)[:-3].split(os.sep)
    if parts[-1] in ('mod', 'lib', 'main'):
        parts = parts[:-1]
    return tuple(parts)


def long_functions(path, lines):
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m or line.rstrip().endswith(';'):
            continue
        indent = m.group(1)
        end = next((j for j in range(i + 1, len(lines)) if lines[j] == indent + '}'), i)
        if end - i + 1 > MAX_FN:
            yield f'{path}:{i + 1}: fn {m.group(7)} is {end - i + 1} lines (at most {MAX_FN})'


def imports(module, text, known):
    """The modules `module` uses, outside its tests."""
    text = text.split('#[cfg(test)]')[0]
    text = '\n'.join(l for l in text.split('\n') if not l.lstrip().startswith('//'))
    paths = re.findall(r'\buse\s+([^;]+);', text) + re.findall(r'(?<![\w:])((?:crate|super)::[\w:]+)', text)
    found = set()
    for p in paths:
        p = re.sub(r'\s+', '', p)
        if p.startswith('crate::'):
            parts = p[len('crate::'):].split('::')
        elif p.startswith('super::'):
            parts, cur = p.split('::'), list(module)
            while parts and parts[0] == 'super':
                cur, parts = cur[:-1], parts[1:]
            parts = cur + parts
        elif p.startswith('self::'):
            parts = list(module) + p[len('self::'):].split('::')
        elif module + (p.split('::')[0],) in known:
            parts = list(module) + p.split('::')
        else:
            continue
        for k in range(len(parts), 0, -1):
            t = tuple(parts[:k])
            if t in known:
                # A module's own parents are where it lives, not a dependency.
                if t != module and module[:len(t)] != t:
                    found.add(t)
                break
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else 'src'
    files = list(rust_files(root))
    known = {module_of(root, f) for f in files}
    breaches, deps = [], {}
    for path in files:
        text = open(path, encoding='utf-8').read()
        lines = text.split('\n')
        if not text.startswith('//!'):
            breaches.append(f'{path}:1: no //! comment saying what the module is for')
        doc = '\n'.join(l for l in lines if l.startswith('//!'))
        if len(lines) > MAX_FILE and 'one piece' not in doc:
            breaches.append(f'{path}: {len(lines)} lines (at most {MAX_FILE}, '
                            'unless its //! says why it must be one piece)')
        breaches.extend(long_functions(path, lines))
        deps[module_of(root, path)] = imports(module_of(root, path), text, known)
    for a, uses in sorted(deps.items()):
        for b in sorted(uses):
            if a < b and a in deps.get(b, ()):
                breaches.append(f'{"::".join(a)} and {"::".join(b)} import each other')
    for b in breaches:
        print(b)
    print(f'layout: {len(files)} files, {len(breaches)} breaches')
    return 1 if breaches else 0


if __name__ == '__main__':
    sys.exit(main())
