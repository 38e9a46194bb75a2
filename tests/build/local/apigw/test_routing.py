"""How the local gateway picks a route (build/local/apigw/routing.py), as API Gateway does."""

from __future__ import annotations

import pytest

from slimserve.build.local.apigw.routing import Route, match_route


def matched(routes: tuple[Route, ...], method: str, path: str):
    """What the event says about the route that takes the request (None: not found)."""
    selected = match_route(routes, method, path)
    return None if selected is None else selected[1]


def test_route_keys_parse_and_print() -> None:
    assert Route.parse("$default") == Route("ANY", "$default")
    assert Route.parse("get /items/{id}") == Route("GET", "/items/{id}")
    assert Route.parse("POST /v2/{proxy+}").key == "POST /v2/{proxy+}"
    with pytest.raises(ValueError):
        Route.parse("items")


def test_most_specific_route_wins() -> None:
    routes = tuple(
        Route.parse(key)
        for key in ("$default", "ANY /{proxy+}", "GET /items/{id}", "GET /items/special")
    )
    assert matched(routes, "GET", "/items/special").route_key == "GET /items/special"
    by_id = matched(routes, "GET", "/items/7")
    assert (by_id.route_key, by_id.path_parameters) == ("GET /items/{id}", {"id": "7"})
    greedy = matched(routes, "POST", "/items/7/parts")
    assert (greedy.route_key, greedy.path_parameters) == (
        "ANY /{proxy+}",
        {"proxy": "items/7/parts"},
    )
    assert matched(routes, "GET", "/").route_key == "$default"
    assert matched((Route.parse("GET /a"),), "POST", "/a") is None


def test_greedy_variable_needs_one_segment() -> None:
    routes = (Route("ANY", "/{proxy+}"),)
    assert matched(routes, "GET", "/") is None



def test_rest_picks_the_resource_before_the_method() -> None:
    routes = (Route("POST", "/v2/models/{name}/infer"), Route("ANY", "/{proxy+}"))
    # REST: the most specific resource takes the path; without a GET on it, nothing does.
    assert match_route(routes, "GET", "/v2/models/x/infer", api_type="rest") is None
    selected = match_route(routes, "POST", "/v2/models/x/infer", api_type="rest")
    assert selected is not None
    route, match = selected
    assert route == routes[0]
    assert (match.resource, match.path_parameters) == ("/v2/models/{name}/infer", {"name": "x"})
    # An HTTP API falls back to the greedy route instead.
    assert matched(routes, "GET", "/v2/models/x/infer").route_key == "ANY /{proxy+}"
