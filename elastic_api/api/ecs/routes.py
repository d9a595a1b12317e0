"""The ECS v2 route table (ECS.md §3): every endpoint under /ecs/v2, its method, its auth policy
and its handler on one screen. A known path with another method is 405; an unknown path is a
404 in this dialect's JSON shape."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from elastic_api.api.ecs.auth import PUBLIC, TOKEN, Policy
from elastic_api.api.ecs.call import Call, Wire
from elastic_api.api.ecs.handlers import account, actions, catalogue, groups, logs, scripts, servers, sshkeys
from elastic_api.api.ecs.handlers import snapshots, templates

Handler = Callable[[Call], Awaitable[Wire]]
PREFIX = "/ecs/v2"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    auth: Policy
    handler: Handler


# The table is read by columns (methods, policy, path, handler): the formatter leaves it aligned.
# fmt: off
ROUTES: tuple[Route, ...] = (
    Route("POST",   "/login",              PUBLIC, account.login),
    Route("GET",    "/account",            TOKEN,  account.account),
    Route("GET",    "/plans",              TOKEN,  catalogue.plans),
    Route("GET",    "/plans/availables",   TOKEN,  catalogue.plans_available),
    Route("GET",    "/regions",            TOKEN,  catalogue.regions),
    Route("POST",   "/regions/availables", TOKEN,  catalogue.regions_available),
    Route("GET",    "/images/basics",      TOKEN,  catalogue.basic_images),
    Route("GET",    "/images/cloud-images", TOKEN, catalogue.cloud_images),
    Route("GET",    "/sshkeys",            TOKEN,  sshkeys.list_keys),
    Route("POST",   "/sshkeys",            TOKEN,  sshkeys.add_key),
    Route("GET",    "/sshkeys/{id}",       TOKEN,  sshkeys.get_key),
    Route("DELETE", "/sshkeys/{id}",       TOKEN,  sshkeys.delete_key),
    Route("GET",    "/scripts",            TOKEN,  scripts.list_scripts),
    Route("POST",   "/scripts",            TOKEN,  scripts.create_script),
    Route("GET",    "/scripts/{id}",       TOKEN,  scripts.get_script),
    Route("PATCH",  "/scripts/{id}",       TOKEN,  scripts.update_script),
    Route("DELETE", "/scripts/{id}",       TOKEN,  scripts.delete_script),
    Route("GET",    "/groups",             TOKEN,  groups.list_groups),
    Route("POST",   "/groups",             TOKEN,  groups.create_group),
    Route("GET",    "/groups/{id}",        TOKEN,  groups.get_group),
    Route("DELETE", "/groups/{id}",        TOKEN,  groups.delete_group),
    Route("GET",    "/servers",            TOKEN,  servers.list_servers),
    Route("POST",   "/servers",            TOKEN,  servers.create_server),
    Route("GET",    "/servers/{name}",     TOKEN,  servers.get_server),
    Route("PUT",    "/servers/{name}",     TOKEN,  servers.update_server),
    Route("DELETE", "/servers/{name}",     TOKEN,  servers.delete_server),
    Route("GET",    "/servers/{name}/status", TOKEN, servers.server_status),
    Route("POST",   "/servers/{name}/actions", TOKEN, servers.server_action),
    Route("GET",    "/servers/{name}/isolations", TOKEN, servers.isolations),
    Route("GET",    "/servers/{name}/metrics", TOKEN, servers.metrics),
    Route("POST",   "/servers/{name}/support", TOKEN, servers.attach_support),
    Route("DELETE", "/servers/{name}/support", TOKEN, servers.cancel_support),
    Route("POST",   "/servers/{name}/reserved", TOKEN, servers.reserve),
    Route("GET",    "/actions",            TOKEN,  actions.list_actions),
    Route("GET",    "/actions/{id}",       TOKEN,  actions.get_action),
    Route("GET",    "/logs",               TOKEN,  logs.list_logs),
    Route("GET",    "/logs/{id}",          TOKEN,  logs.get_log),
    Route("GET",    "/servers/{name}/snapshots", TOKEN, snapshots.list_snapshots),
    Route("POST",   "/servers/{name}/snapshots", TOKEN, snapshots.create_snapshot),
    Route("GET",    "/servers/{name}/snapshots/{id}", TOKEN, snapshots.get_snapshot),
    Route("DELETE", "/servers/{name}/snapshots/{id}", TOKEN, snapshots.delete_snapshot),
    Route("GET",    "/templates",          TOKEN,  templates.list_templates),
    Route("POST",   "/templates",          TOKEN,  templates.create_template),
    Route("GET",    "/templates/{id}",     TOKEN,  templates.get_template),
    Route("PATCH",  "/templates/{id}",     TOKEN,  templates.update_template),
    Route("DELETE", "/templates/{id}",     TOKEN,  templates.delete_template),
)
# fmt: on
