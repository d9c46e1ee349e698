"""The structure of a NIR graph as the chain a `ModelGraph` holds (for `sc_neurocore.adapters.from_nir`).

Nested graphs are inlined (their nodes named `"outer.inner"`, their `Input` and `Output` nodes passed
through), each neuron node's recurrent edge (its output fed back to it through map nodes only) is
taken out of the graph and kept with the node, and what remains must be one path from the `Input` to
the `Output`. Anything else is refused with a `ValueError` that names the node and says why.
"""

from __future__ import annotations

from typing import Any

#: NIR node types that hold state over time (a recurrent edge may end in one of them).
NEURON_TYPES = ("LIF", "CubaLIF", "LI", "CubaLI", "IF", "I", "Threshold", "Delay")
#: NIR node types that map one timestep to one timestep without state.
MAP_TYPES = ("Affine", "Linear", "Scale", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten")

#: `(name, node, loop)`: a chain entry; `loop` is the `[(name, node), ...]` maps of its recurrent edge or `None`.
Link = tuple[str, Any, "list[tuple[str, Any]] | None"]


def _inline(graph: Any, prefix: str, nodes: dict[str, Any], edges: list[tuple[str, str]]) -> tuple[list, list]:
    """Add `graph`'s nodes and edges (names prefixed); return its `Input` and `Output` names."""
    import nir

    inputs, outputs = [], []
    local: dict[str, str] = {}
    for name, node in graph.nodes.items():
        full = f"{prefix}{name}"
        if node is None:
            raise ValueError(f"graph_or_path: node {full!r} is None: the exporter could not convert that layer, so the "
                             "graph does not say what it computes")
        if isinstance(node, nir.NIRGraph):
            sub_in, sub_out = _inline(node, f"{full}.", nodes, edges)
            if len(sub_in) != 1 or len(sub_out) != 1:
                raise ValueError(f"graph_or_path: nested graph {full!r} has {len(sub_in)} inputs and {len(sub_out)} "
                                 "outputs; only one of each can sit in a chain")
            local[name] = full
            nodes[full] = ("subgraph", sub_in[0], sub_out[0])
            continue
        nodes[full] = node
        local[name] = full
        if isinstance(node, nir.Input):
            inputs.append(full)
        elif isinstance(node, nir.Output):
            outputs.append(full)
    for source, target in graph.edges:
        edges.append((_endpoint(prefix, source, local, nodes, 2), _endpoint(prefix, target, local, nodes, 1)))
    return inputs, outputs


def _endpoint(prefix: str, name: str, local: dict[str, str], nodes: dict[str, Any], port: int) -> str:
    """The full name an edge end refers to (a nested graph's own name means its Output (2) or Input (1))."""
    full = local.get(name, f"{prefix}{name}")
    if full not in nodes:
        raise ValueError(f"graph_or_path: an edge refers to {full!r}, which is not a node of the graph")
    node = nodes[full]
    if isinstance(node, tuple):
        return node[port]
    return full


def _pass_through(nodes: dict[str, Any], edges: list[tuple[str, str]], keep: set[str]) -> list[tuple[str, str]]:
    """Edges with every nested `Input` / `Output` node (and nested-graph placeholder) bypassed."""
    import nir

    through = {name for name, node in nodes.items() if name not in keep and
               isinstance(node, (tuple, nir.Input, nir.Output))}
    for name in through:
        sources = [s for s, t in edges if t == name]
        targets = [t for s, t in edges if s == name]
        edges = [(s, t) for s, t in edges if name not in (s, t)] + [(s, t) for s in sources for t in targets]
        del nodes[name]
    return edges


def _reachable(start: str, goal: str, successors: dict[str, list[str]]) -> bool:
    seen, frontier = set(), [start]
    while frontier:
        name = frontier.pop()
        if name == goal:
            return True
        if name not in seen:
            seen.add(name)
            frontier += successors.get(name, [])
    return False


def _kind(node: Any) -> str:
    return type(node).__name__


def chain_of(graph: Any) -> tuple[list[Link], Any]:
    """The graph as a chain of `(name, node, loop)` from its `Input` to its `Output`, and the `Input` node.

    Example:
        >>> import nir, numpy as np
        >>> graph = nir.NIRGraph.from_list(nir.Linear(np.ones((2, 3))), nir.IF(np.ones(2), np.ones(2)))
        >>> [(name, type(node).__name__) for name, node, loop in chain_of(graph)[0]]
        [('linear', 'Linear'), ('if', 'IF')]
    """
    import nir

    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    inputs, outputs = _inline(graph, "", nodes, edges)
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"graph_or_path: the graph has inputs {inputs} and outputs {outputs}; a model graph takes one "
                         "input and gives one output")
    edges = _pass_through(nodes, edges, {inputs[0], outputs[0]})
    duplicates = {edge for edge in edges if edges.count(edge) > 1}
    if duplicates:
        raise ValueError(f"graph_or_path: the edges {sorted(duplicates)} appear more than once")
    for name, node in nodes.items():
        kind = _kind(node)
        if not isinstance(node, (nir.Input, nir.Output)) and kind not in NEURON_TYPES + MAP_TYPES:
            raise ValueError(f"graph_or_path: node {name!r} is a {kind}, which from_nir does not read (it reads "
                             f"{', '.join(MAP_TYPES + NEURON_TYPES)})")
    loops = _take_loops(nodes, edges)
    edges = [(s, t) for s, t in edges if s not in loops["removed"] and t not in loops["removed"]]
    successors: dict[str, list[str]] = {}
    predecessors: dict[str, list[str]] = {}
    for source, target in edges:
        successors.setdefault(source, []).append(target)
        predecessors.setdefault(target, []).append(source)
    chain: list[Link] = []
    name, seen = inputs[0], set()
    while True:
        after = successors.get(name, [])
        if name != outputs[0] and len(after) != 1:
            what = "no output edge" if not after else f"output edges to {sorted(after)} (a branch)"
            raise ValueError(f"graph_or_path: node {name!r} has {what}; a model graph is a chain")
        if name == outputs[0]:
            break
        name = after[0]
        before = predecessors.get(name, [])
        if len(before) != 1:
            raise ValueError(f"graph_or_path: node {name!r} has input edges from {sorted(before)} (a merge); a model "
                             "graph is a chain, so it cannot sum several inputs")
        if name in seen:
            raise ValueError(f"graph_or_path: node {name!r} is on a cycle through more than one neuron node "
                             "(recurrence across nodes), which a chain cannot hold")
        seen.add(name)
        if name != outputs[0]:
            chain.append((name, nodes[name], loops["loops"].get(name)))
    left = set(nodes) - seen - {inputs[0]} - loops["removed"]
    if left:
        raise ValueError(f"graph_or_path: nodes {sorted(left)} are not on the path from the input to the output")
    if not chain:
        raise ValueError("graph_or_path: the graph has no node between its input and its output")
    return chain, nodes[inputs[0]]


def _take_loops(nodes: dict[str, Any], edges: list[tuple[str, str]]) -> dict[str, Any]:
    """`{"loops": {neuron: [(map name, map node), ...]}, "removed": {names}}`: each neuron node's recurrent
    edge, a path of map nodes from its output back to its input."""
    successors: dict[str, list[str]] = {}
    predecessors: dict[str, list[str]] = {}
    for source, target in edges:
        successors.setdefault(source, []).append(target)
        predecessors.setdefault(target, []).append(source)
    loops: dict[str, list[tuple[str, Any]]] = {}
    removed: set[str] = set()
    for name, node in nodes.items():
        back = [source for source in predecessors.get(name, []) if _reachable(name, source, successors)]
        if not back:
            continue
        if _kind(node) not in NEURON_TYPES:
            continue  # a map on a cycle: the cycle is reported at its neuron node, or as a chain error
        if len(back) > 1:
            raise ValueError(f"graph_or_path: node {name!r} has {len(back)} recurrent edges ({sorted(back)}); at most "
                             "one is supported")
        path: list[tuple[str, Any]] = []
        current = back[0]
        while current != name:
            kind = _kind(nodes[current])
            into, out = predecessors.get(current, []), successors.get(current, [])
            if kind not in MAP_TYPES or len(into) != 1 or len(out) != 1:
                raise ValueError(f"graph_or_path: the recurrent edge into node {name!r} passes through {current!r} "
                                 f"({kind}); a recurrent edge may pass through map nodes only (recurrence across "
                                 "neuron nodes is not supported)")
            path.insert(0, (current, nodes[current]))
            current = into[0]
        loops[name] = path
        removed.update(map_name for map_name, _ in path)
        if not path:  # a self-loop: the node's own output, unmapped
            edges[:] = [edge for edge in edges if edge != (name, name)]
    return {"loops": loops, "removed": removed}
