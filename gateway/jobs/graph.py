"""A job's graph: validation (duplicates, unknown dependencies, cycles, variables) and substitution."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import ValidationError

from gateway.contract.batches import BATCH_TYPES, BatchRequest, validation_message
from gateway.contract.jobs import NodeSpec
from gateway.errors import BadRequest

VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def check_graph(nodes: list[NodeSpec]) -> None:
    seen: set[str] = set()
    for node in nodes:
        if node.id in seen:
            raise BadRequest(f"nodes: duplicate node id {node.id!r}")
        seen.add(node.id)
    for node in nodes:
        for dep in node.depends_on:
            if dep not in seen:
                raise BadRequest(f"nodes[{node.id}].dependsOn: unknown node {dep!r}")
            if dep == node.id:
                raise BadRequest(f"nodes[{node.id}].dependsOn: a node cannot depend on itself (cycle: {node.id})")
    cycle = find_cycle({n.id: list(n.depends_on) for n in nodes})
    if cycle:
        raise BadRequest(f"nodes: the graph has a cycle: {' -> '.join(cycle)}")


def find_cycle(deps: dict[str, list[str]]) -> list[str] | None:
    """A cycle as a closed path of node ids, or None. Iterative DFS, so deep chains are fine."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(deps, white)
    for start in deps:
        if color[start] != white:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(deps[start]))]
        path = [start]
        color[start] = grey
        while stack:
            node, children = stack[-1]
            advanced = False
            for child in children:
                if color[child] == grey:
                    return [*path[path.index(child):], child]
                if color[child] == white:
                    color[child] = grey
                    stack.append((child, iter(deps[child])))
                    path.append(child)
                    advanced = True
                    break
            if not advanced:
                color[node] = black
                stack.pop()
                path.pop()
    return None


def _strings(value: Any) -> Iterator[str]:
    """The values (never the keys) of a request, at any depth."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _keys(v)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)


def check_variables(nodes: list[NodeSpec], declared: dict[str, str]) -> None:
    for node in nodes:
        for key in _keys(node.request):
            if VARIABLE.search(key):
                raise BadRequest(f"nodes[{node.id}].request: key {key!r} holds a variable; variables replace "
                                 "values, never keys")
        for text in _strings(node.request):
            for name in VARIABLE.findall(text):
                if name not in declared:
                    raise BadRequest(f"nodes[{node.id}].request: unknown variable ${{{name}}}; declare it in variables")


def substitute(value: Any, variables: dict[str, str]) -> Any:
    """Variables replaced in values only: a key (a conf key above all) is never what a variable makes it."""
    if isinstance(value, str):
        return VARIABLE.sub(lambda m: variables.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    return value


def node_request(node_id: str, request: dict[str, Any], variables: dict[str, str],
                 batch_types: Sequence[str] | None = None) -> BatchRequest:
    """The node's batch request with variables substituted, or a 400 naming the node and the field.
    With `batch_types` (those the engines offer), another batch type is refused too."""
    context = {BATCH_TYPES: batch_types} if batch_types is not None else None
    try:
        return BatchRequest.model_validate(substitute(request, variables), context=context)
    except ValidationError as exc:
        raise BadRequest(f"nodes[{node_id}].request.{validation_message(exc)}") from None


def downstream(deps: dict[str, list[str]], roots: set[str]) -> set[str]:
    """The roots and every node that depends on them, directly or not."""
    children: dict[str, list[str]] = {n: [] for n in deps}
    for node, parents in deps.items():
        for parent in parents:
            children[parent].append(node)
    out = set(roots)
    todo = list(roots)
    while todo:
        for child in children[todo.pop()]:
            if child not in out:
                out.add(child)
                todo.append(child)
    return out
