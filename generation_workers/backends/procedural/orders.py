"""Orders as graphs: cycles and paths (each edge labelled by the relation that made it),
connected components, and the back-to-front draw order."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping

from .spec import RelationSpec

Edge = tuple[str, str, RelationSpec]


def cycle_find(ids: Iterable[str], edges: list[Edge]) -> list[RelationSpec]:
    """The relations on one cycle of the graph, or [] when it has none."""
    out: dict[str, list[tuple[str, RelationSpec]]] = {node: [] for node in ids}
    for tail, head, relation in edges:
        out[tail].append((head, relation))
    state: dict[str, int] = {}
    path: list[tuple[str, RelationSpec]] = []

    def visit(node: str) -> list[RelationSpec]:
        state[node] = 1
        for head, relation in out[node]:
            path.append((node, relation))
            if state.get(head) == 1:
                start = next(i for i, (tail, _) in enumerate(path) if tail == head)
                return [r for _, r in path[start:]]
            if head not in state:
                found = visit(head)
                if found:
                    return found
            path.pop()
        state[node] = 2
        return []

    for node in out:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def path_find(edges: list[Edge], start: str, goal: str) -> list[RelationSpec]:
    """The relations along one path from start to goal, or [] when there is none."""
    came: dict[str, tuple[str, RelationSpec] | None] = {start: None}
    frontier = [start]
    while frontier:
        node = frontier.pop()
        for tail, head, relation in edges:
            if tail == node and head not in came:
                came[head] = (node, relation)
                frontier.append(head)
    if goal not in came:
        return []
    path = []
    step = came[goal]
    while step is not None:
        path.append(step[1])
        step = came[step[0]]
    return path


class Components:
    """Union-find over object ids."""

    def __init__(self, ids: Iterable[str]) -> None:
        self.parent = {node: node for node in ids}

    def find(self, node: str) -> str:
        while self.parent[node] != node:
            self.parent[node] = self.parent[self.parent[node]]
            node = self.parent[node]
        return self.parent[node]

    def join(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def draw_order(
    ids: list[str],
    *,
    depth: Mapping[str, int],
    after: Iterable[tuple[str, str]],
    bottoms: Mapping[str, float] | None = None,
) -> list[str]:
    """Back to front: farther planes first, then lower bottoms later, keeping every `after` pair."""
    position = {node: i for i, node in enumerate(ids)}
    successors: dict[str, list[str]] = {node: [] for node in ids}
    waiting = dict.fromkeys(ids, 0)
    for first, later in after:
        successors[first].append(later)
        waiting[later] += 1

    def key(node: str) -> tuple[int, float, int]:
        bottom = bottoms[node] if bottoms is not None else 0.0
        return (-depth[node], bottom, position[node])

    ready = [(key(node), node) for node in ids if waiting[node] == 0]
    heapq.heapify(ready)
    ordered = []
    while ready:
        _, node = heapq.heappop(ready)
        ordered.append(node)
        for later in successors[node]:
            waiting[later] -= 1
            if waiting[later] == 0:
                heapq.heappush(ready, (key(later), later))
    return ordered
