#!/usr/bin/env python3
"""Prints the import graph of the modules under src/ (the binary left out) and
the modules on an import cycle: `python3 scripts/modgraph.py [repo root]`.
A module's `use`s of crate::, super:: and its own children count; a module
only declaring a child does not."""
import re,glob,sys
root=sys.argv[1] if len(sys.argv)>1 else '.'
mods={}
def modname(p):
    p=p[len(root)+5:-3]
    if p.endswith('/mod'): p=p[:-4]
    return p.replace('/','::')
files={}
for p in glob.glob(root+'/src/**/*.rs',recursive=True):
    if '/src/bin' in p: continue
    files[modname(p)]=open(p).read()
known=set(files)
def resolve(path):
    parts=path.split('::')
    for k in range(len(parts),0,-1):
        c='::'.join(parts[:k])
        if c in known: return c
    return None
g={}
for m,s in files.items():
    s=re.sub(r'//.*','',s)
    parent=m.rsplit('::',1)[0] if '::' in m else 'lib'
    base=m if (m=='lib') else m
    deps=set()
    # expand use groups: crate::a::{b, c::d}
    for prefix,kind in [('crate::',None),('super::','super')]:
        for mt in re.finditer(re.escape(prefix)+r'(?:\{([^}]*)\}|([A-Za-z_][\w]*(?:::[A-Za-z_]\w*)*)(?:::\{([^}]*)\})?)',s):
            if mt.group(1) is not None:
                items=[x.strip().split(' ')[0].split('::')[0] for x in mt.group(1).split(',') if x.strip()]
            else:
                head=mt.group(2)
                items=[head]
                if mt.group(3):
                    items=[head+'::'+x.strip().split(' ')[0] for x in mt.group(3).split(',') if x.strip()]
            for it in items:
                full = it if kind is None else ((parent+'::' if parent!='lib' else '')+it)
                r=resolve(full)
                if r is None and kind=='super' and parent!='lib': r=parent
                if r: deps.add(r)
    # children used by `use child::` or `child::x` in a mod file
    for child in [k for k in known if k.startswith(m+'::') and k.count('::')==m.count('::')+1] if m!='lib' else [k for k in known if '::' not in k]:
        name=child.rsplit('::',1)[-1]
        if re.search(r'(?<![\w:])'+name+r'::', s) or re.search(r'use '+name+r'::',s):
            deps.add(child)
    deps.discard(m)
    g[m]=deps
for m in sorted(g): print(m,'->',' '.join(sorted(g[m])))
def reach(a):
    seen=set();st=[a]
    while st:
        x=st.pop()
        for y in g.get(x,()):
            if y not in seen: seen.add(y); st.append(y)
    return seen
cyc=[m for m in sorted(g) if m in reach(m) and m!='lib']
print('--- modules on a cycle (lib excluded):', ' '.join(cyc) if cyc else 'none')
for a in sorted(g):
    for b in g[a]:
        if a in g.get(b,()) and a<b: print('mutual:',a,'<->',b)
