"""Which route of the API takes a request, as API Gateway decides it.

HTTP APIs take the most specific route (exact paths, then ``{variables}``, then ``{greedy+}``;
a method before ``ANY``; ``$default`` last). REST APIs pick the resource first, then the method
on it, and do not fall back to a greedy sibling resource when the method is missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from slimserve.build.local.apigw.events import ApiType, RouteMatch

# Who may call a route: anyone, SigV4-signed callers (AWS_IAM), bearers of a JWT (HTTP API).
Authorization = Literal["none", "iam", "jwt"]


@dataclass(frozen=True)
class Route:
    """An HTTP API route key ("GET /items/{id}", "ANY /{proxy+}", "$default") or a REST method
    on a resource (same notation), with who may call it."""

    method: str  # "ANY" or an HTTP method, upper case
    path: str  # "/items/{id}", "/{proxy+}", or "$default"
    authorization: Authorization = "none"
    api_key_required: bool = False  # REST only: x-api-key must name a key of a usage plan

    @classmethod
    def parse(
        cls, key: str, authorization: Authorization = "none", api_key_required: bool = False
    ) -> Route:
        key = key.strip()
        if key == "$default":
            return cls("ANY", "$default", authorization, api_key_required)
        method, _, path = key.partition(" ")
        if not path.startswith("/"):
            raise ValueError(f"route key {key!r} is not 'METHOD /path' or '$default'")
        return cls(method.upper(), path, authorization, api_key_required)

    @property
    def key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    @property
    def segments(self) -> list[str]:
        return [s for s in self.path.split("/") if s]

    def match_path(self, path: str) -> dict[str, str] | None:
        """Path parameters when this route's path takes the (decoded) path, else None."""
        if self.path == "$default":
            return {}
        wanted = [s for s in path.split("/") if s]
        template = self.segments
        params: dict[str, str] = {}
        for index, part in enumerate(template):
            greedy = re.fullmatch(r"\{(\w+)\+\}", part)
            if greedy:
                if index != len(template) - 1 or index >= len(wanted):
                    return None  # greedy variables are last and take one segment at least
                params[greedy.group(1)] = "/".join(wanted[index:])
                return params
            if index >= len(wanted):
                return None
            variable = re.fullmatch(r"\{(\w+)\}", part)
            if variable:
                params[variable.group(1)] = wanted[index]
            elif part != wanted[index]:
                return None
        return params if len(wanted) == len(template) else None

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when this route takes (method, decoded path), else None."""
        if self.method not in ("ANY", method):
            return None
        return self.match_path(path)

    def priority(self) -> tuple[int, int, int, int, int]:
        """Smaller wins: exact paths, then variables, then greedy; a method before ANY;
        $default last (HTTP API's most-specific-match rule)."""
        greedy = sum(1 for s in self.segments if s.endswith("+}"))
        variables = sum(1 for s in self.segments if s.startswith("{"))
        return (
            self.path == "$default",
            greedy,
            variables,
            -len(self.segments),
            self.method == "ANY",
        )

    def resource_rank(self) -> tuple[int, ...]:
        """REST resource precedence, level by level: a literal segment before a {variable}
        before a {greedy+} one (smaller wins)."""
        return tuple(
            2 if s.endswith("+}") else 1 if s.startswith("{") else 0 for s in self.segments
        )


def _select_http(
    routes: tuple[Route, ...], method: str, path: str
) -> tuple[Route, dict[str, str]] | None:
    candidates = []
    for route in routes:
        params = route.match(method, path)
        if params is not None:
            candidates.append((route.priority(), route, params))
    if not candidates:
        return None
    _, route, params = min(candidates, key=lambda item: item[0])
    return route, params


def _select_rest(
    routes: tuple[Route, ...], method: str, path: str
) -> tuple[Route, dict[str, str]] | None:
    """REST APIs pick the resource first (most specific path), then the method on it: a
    resource without this method (and without ANY) does not fall back to a greedy sibling."""
    resources: dict[str, tuple[tuple[int, ...], dict[str, str]]] = {}
    for route in routes:
        if route.path not in resources:
            params = route.match_path(path)
            if params is not None:
                resources[route.path] = (route.resource_rank(), params)
    if not resources:
        return None
    resource = min(resources, key=lambda name: resources[name][0])
    params = resources[resource][1]
    on_resource = [r for r in routes if r.path == resource]
    for wanted in (method, "ANY"):
        for route in on_resource:
            if route.method == wanted:
                return route, params
    return None


def match_route(
    routes: tuple[Route, ...], method: str, path: str, *, api_type: ApiType = "http"
) -> tuple[Route, RouteMatch] | None:
    """The route that takes (method, decoded path without the stage prefix) and what the
    event says about it, or None (API Gateway's "not found")."""
    selected = (_select_rest if api_type == "rest" else _select_http)(routes, method, path)
    if selected is None:
        return None
    route, params = selected
    resource = path if route.path == "$default" else route.path
    return route, RouteMatch(route.key, resource, params)
