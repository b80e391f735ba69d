"""Reading request bodies with a size bound and a deadline, so no request can exhaust
memory, or hold a connection by sending its body slowly (or not at all)."""

from __future__ import annotations

import anyio
from fastapi import Request

from tenantscope.errors import PayloadTooLarge, RequestTimeout
from tenantscope.server.services import services_of


async def read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"body of {declared} bytes is over the limit of {max_bytes} bytes")
    # one deadline for the whole body: a byte now and then does not extend it
    seconds = services_of(request).settings.body_timeout_s
    chunks: list[bytes] = []
    size = 0
    with anyio.move_on_after(seconds):
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(f"body is over the limit of {max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    # the rest of the body may still arrive: close the connection rather than read it
    raise RequestTimeout(
        f"the request body did not arrive within {seconds:g} s; send it again",
        headers={"Connection": "close"},
    )
