"""Lineage: the graph of versions and the versions they were made from, drawn up or down, offline.

Inputs are recorded in each version record by id, so the graph survives renumbering and travels
with push and pull. Rendering returns text; printing is the caller's business.
"""
from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field

from .errors import ArtvcError
from .repository import Repository


@dataclass(frozen=True)
class Node:
    id: str
    artifact: str
    version: str
    type: str

    @property
    def spec(self) -> str:
        return f"{self.artifact}:{self.version}" if self.artifact else f"?:{self.id[:12]}"

    @property
    def known(self) -> bool:
        return bool(self.artifact)


@dataclass
class Graph:
    root: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)


def _node(repo: Repository, vid: bytes, txn) -> Node:
    located = repo.refs.locate_version(txn, vid)
    if located is None:
        return Node(vid.hex(), "", "", "")
    try:
        record = repo.load_record(vid)
        type_ = record.type
    except ArtvcError:
        type_ = ""
    return Node(vid.hex(), located[0], f"v{located[1]}", type_)


def _consumers(repo: Repository, txn) -> dict[bytes, list[bytes]]:
    """Reverse edges, from every local version record (records are small and always local)."""
    out: dict[bytes, list[bytes]] = {}
    for name in repo.refs.artifact_names(txn):
        for _, vid in repo.refs.list_versions(txn, name):
            for inp in repo.load_record(vid).inputs:
                out.setdefault(bytes.fromhex(inp), []).append(vid)
    return out


def build(repo: Repository, root: bytes, down: bool = False, depth: int | None = None) -> Graph:
    """Inputs of `root`, transitively (or, with down, the versions made from it)."""
    graph = Graph(root.hex())
    with repo.index.read() as txn:
        consumers = _consumers(repo, txn) if down else {}
        graph.nodes[root.hex()] = _node(repo, root, txn)
        queue = deque([(root, 0)])
        seen = {root}
        while queue:
            vid, level = queue.popleft()
            if depth is not None and level >= depth:
                continue
            if down:
                nexts = consumers.get(vid, [])
            else:
                node = graph.nodes[vid.hex()]
                nexts = [bytes.fromhex(i) for i in repo.load_record(vid).inputs] if node.known else []
            for other in nexts:
                edge = (vid.hex(), other.hex()) if down else (other.hex(), vid.hex())
                graph.edges.append(edge)
                if other not in seen:
                    seen.add(other)
                    graph.nodes[other.hex()] = _node(repo, other, txn)
                    queue.append((other, level + 1))
    return graph


def to_json(graph: Graph) -> str:
    nodes = [{"id": n.id, "artifact": n.artifact or None, "version": n.version or None, "spec": n.spec, "type": n.type or None}
             for n in graph.nodes.values()]
    edges = [{"from": a, "to": b} for a, b in graph.edges]
    return json.dumps({"nodes": nodes, "edges": edges}, indent=2, sort_keys=True)


def _label(node: Node) -> str:
    return f"{node.spec} ({node.type})" if node.type else node.spec


def to_dot(graph: Graph) -> str:
    lines = ["digraph lineage {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
    for node in graph.nodes.values():
        style = ", style=bold" if node.id == graph.root else ""
        lines.append(f'  "{node.id[:12]}" [label="{_escape(node.spec)}\\n{_escape(node.type or "unknown")}"{style}];')
    for a, b in graph.edges:
        lines.append(f'  "{a[:12]}" -> "{b[:12]}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(graph: Graph) -> str:
    lines = ["graph LR"]
    for node in graph.nodes.values():
        lines.append(f'  v{node.id[:12]}["{_escape(_label(node))}"]')
    for a, b in graph.edges:
        lines.append(f"  v{a[:12]} --> v{b[:12]}")
    return "\n".join(lines) + "\n"


def to_text(graph: Graph, down: bool = False) -> str:
    """An indented tree from the root; a version reached twice is shown once in full."""
    children: dict[str, list[str]] = {}
    for a, b in graph.edges:
        parent, child = (a, b) if down else (b, a)
        children.setdefault(parent, []).append(child)
    lines: list[str] = []
    shown: set[str] = set()

    def walk(vid: str, prefix: str, last: bool, top: bool) -> None:
        node = graph.nodes[vid]
        mark = "" if top else ("└── " if last else "├── ")
        again = " (see above)" if vid in shown and children.get(vid) else ""
        lines.append(f"{prefix}{mark}{_label(node)} {vid[:12]}{again}")
        if again:
            return
        shown.add(vid)
        kids = children.get(vid, [])
        for i, kid in enumerate(kids):
            walk(kid, prefix + ("" if top else ("    " if last else "│   ")), i == len(kids) - 1, False)

    walk(graph.root, "", True, True)
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
