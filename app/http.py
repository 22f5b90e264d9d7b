"""HTTP guards in front of Gradio: bodies are capped before anything parses them, and a refused
input answers 422 on the REST API instead of Gradio's blanket 500.

    launch(app_kwargs={"middleware": MIDDLEWARE})

Pure ASGI (no BaseHTTPMiddleware), so the route runs in this request's context and a handler
can mark it as refused through `mark_refused()`.
"""

from __future__ import annotations

import contextvars
import json

from starlette.middleware import Middleware

MAX_BODY_BYTES = 64 * 1024   # a request of this app is a name and two numbers: well under 1 KB
DISCARD_BYTES = 16 << 20     # a bigger body is cut off mid-upload (the client sees the connection close)
_refused: contextvars.ContextVar[dict | None] = contextvars.ContextVar("rtm_refused", default=None)


def mark_refused() -> None:
    """Called where bad input is turned into an error: this request was the client's fault."""
    flags = _refused.get()
    if flags is not None:
        flags["refused"] = True


class RequestGuard:
    def __init__(self, app, max_body_bytes: int = MAX_BODY_BYTES):
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            await self._discard(receive)
            return await self._reject(send, 413, f"request body too large: at most {self.max_body_bytes:,} bytes")
        received = 0

        async def capped_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge()
            return message

        flags: dict = {}
        token = _refused.set(flags)

        async def status_send(message):
            if message["type"] == "http.response.start" and message["status"] == 500 and flags.get("refused"):
                message = {**message, "status": 422}
            await send(message)

        try:
            await self.app(scope, capped_receive, status_send)
        except BodyTooLarge:
            await self._reject(send, 413, f"request body too large: at most {self.max_body_bytes:,} bytes")
        finally:
            _refused.reset(token)

    @staticmethod
    async def _discard(receive, limit: int = DISCARD_BYTES) -> None:
        """Read and drop what the client is still sending (up to `limit`), so that it gets to
        read the 413 instead of a broken pipe; nothing is kept or parsed."""
        seen = 0
        while seen <= limit:
            message = await receive()
            seen += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body"):
                return

    @staticmethod
    async def _reject(send, status: int, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    pass


MIDDLEWARE = [Middleware(RequestGuard)]
