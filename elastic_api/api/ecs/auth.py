"""Who an ECS request acts for: an API token or a login token, in `X-APITOKEN: T` (ecsapi, the
Go client), `Authorization: Bearer T` (older Go clients, Terraform) or `Authorization: T`
(Seeweb's login docs). A user's secret key, or HTTP Basic, is not a token here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import Enum

from aiohttp import web

from elastic_api.errors import Unauthenticated
from elastic_api.model.token import Principal
from elastic_api.service.tokens import TokenService

# A token is 43 url-safe characters, a login token about 100: anything much longer is not one.
MAX_TOKEN = 512


class Policy(Enum):
    """Who may call a route of this dialect."""

    PUBLIC = "public"  # anyone: the login
    TOKEN = "token"  # a principal, by a token


PUBLIC, TOKEN = Policy.PUBLIC, Policy.TOKEN


def bearer(request: web.BaseRequest) -> str:
    """The token a request carries; Unauthenticated when it carries none, several, or another kind
    of credentials."""
    given = request.headers.getall("X-APITOKEN", [])
    authorization = request.headers.getall("Authorization", [])
    if len(given) + len(authorization) > 1:
        raise Unauthenticated("give one token, in X-APITOKEN or Authorization")
    if given:
        token = given[0].strip()
    elif authorization:
        scheme, space, rest = authorization[0].strip().partition(" ")
        if not space:
            token = scheme  # `Authorization: TOKEN`
        elif scheme.lower() == "bearer":
            token = rest.strip()
        else:
            raise Unauthenticated(
                f"{scheme[:20]} credentials are not accepted here: send an API token "
                "as X-APITOKEN or Authorization: Bearer"
            )
    else:
        raise Unauthenticated("authentication required: an API token in X-APITOKEN")
    if not token or len(token) > MAX_TOKEN:
        raise Unauthenticated("token not valid")
    return token


def token_policy(tokens: TokenService) -> Callable[[web.Request], Awaitable[Principal]]:
    async def authenticate(request: web.Request) -> Principal:
        return await tokens.authenticate(bearer(request))

    return authenticate
