#!/usr/bin/env python3
"""The official MCP Python SDK (`mcp`, pinned in scripts/install-ci-tools.sh) as a yardstick.

    .tools/venv/bin/python scripts/sdk/python_sdk_check.py ISSUER MCP_URL

1. Parses the oauth-server's RFC 8414 document with the SDK's own `OAuthMetadata`
   model: a missing required field (issue 11: `authorization_endpoint`) fails here,
   naming the field.
2. Connects with the SDK's `ClientCredentialsOAuthProvider` (`mcp-secure-client`,
   the dev secret, `issuer` pinned so the secret only goes to our server): the SDK
   does the discovery (RFC 9728 -> RFC 8414) and the token request itself; then
   lists the tools and calls `get_customer_info` {customer_id: "12345"} over
   Streamable HTTP.

Prints one JSON line (`"ok": true` and what was seen); on any failure prints a JSON
line with `"ok": false`, `step` and `error`, the same message on stderr, and exits 1.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from importlib.metadata import version

from pydantic import ValidationError

from mcp import Client
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthMetadata, OAuthToken

CLIENT_ID = "mcp-secure-client"
# The dev client's documented secret (config/clients.toml); never a real one.
CLIENT_SECRET = "secure-client-secret-change-in-production"
CUSTOMER_ID = "12345"


class Failed(Exception):
    def __init__(self, step: str, error: str) -> None:
        super().__init__(f"{step}: {error}")
        self.step = step
        self.error = error


class MemoryStorage:
    """The SDK's `TokenStorage` protocol, in memory (one run, one token)."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def check_metadata(issuer: str) -> dict:
    url = issuer.rstrip("/") + "/.well-known/oauth-authorization-server"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            doc = json.load(resp)
    except Exception as e:  # noqa: BLE001 - any failure is reported with its cause
        raise Failed("metadata", f"GET {url}: {e}") from e
    try:
        meta = OAuthMetadata.model_validate(doc)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise Failed("metadata", f"the SDK's OAuthMetadata refuses {url}: {problems}") from e
    if doc.get("issuer") != issuer:
        raise Failed("metadata", f"issuer {doc.get('issuer')!r} is not {issuer!r}")
    return {
        "issuer": doc["issuer"],
        "authorization_endpoint": str(meta.authorization_endpoint),
        "response_types_supported": meta.response_types_supported,
        "grant_types_supported": meta.grant_types_supported,
    }


async def client_credentials(issuer: str, mcp_url: str) -> dict:
    storage = MemoryStorage()
    provider = ClientCredentialsOAuthProvider(
        server_url=mcp_url,
        storage=storage,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        issuer=issuer,
    )
    step = "connect"
    try:
        async with create_mcp_http_client(auth=provider) as http:
            async with Client(streamable_http_client(mcp_url, http_client=http)) as client:
                step = "tools/list"
                tools = [t.name for t in (await client.list_tools()).tools]
                if "get_customer_info" not in tools:
                    raise Failed(step, f"get_customer_info not listed: {tools}")
                step = "tools/call"
                result = await client.call_tool("get_customer_info", {"customer_id": CUSTOMER_ID})
    except Failed:
        raise
    except BaseException as e:  # noqa: BLE001 - task groups wrap the cause
        raise Failed(step, describe(e)) from e
    text = "".join(getattr(c, "text", "") for c in result.content)
    if result.is_error or CUSTOMER_ID not in text:
        raise Failed("tools/call", f"get_customer_info answered is_error={result.is_error}: {text[:300]}")
    token = storage.tokens
    return {
        "tools": tools,
        "customer": text[:200],
        "scope": token.scope if token else None,
    }


def describe(e: BaseException) -> str:
    """The innermost causes of an (exception-group-wrapped) failure."""
    if isinstance(e, BaseExceptionGroup):
        return " | ".join(describe(x) for x in e.exceptions)
    return f"{type(e).__name__}: {e}"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python_sdk_check.py ISSUER MCP_URL", file=sys.stderr)
        return 2
    issuer, mcp_url = argv[1], argv[2]
    out: dict = {"sdk": f"mcp {version('mcp')}", "issuer": issuer, "mcp_url": mcp_url}
    try:
        out["metadata"] = check_metadata(issuer)
        out["client_credentials"] = asyncio.run(client_credentials(issuer, mcp_url))
    except Failed as f:
        out.update(ok=False, step=f.step, error=f.error)
        print(json.dumps(out))
        print(f"python_sdk_check: {f.step}: {f.error}", file=sys.stderr)
        return 1
    out["ok"] = True
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
