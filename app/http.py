"""HTTP guards in front of Gradio: bodies are capped before anything parses them (413, also
for chunked uploads), only the documented API endpoints answer by name (an unknown or internal
name is a 404 and one short log line, never Gradio's 500 and traceback; Gradio 6 names the
internal handlers `false`, `false_1`, ... and would serve them), a call with the wrong number of
inputs is refused before Gradio sees it,
and a refused input answers 422 on the REST API instead of Gradio's blanket 500. Also the
page's static files (plotly.js, each checkpoint's map assets) under /rtm-static/, so that no
response ever carries a server path (Gradio's /file= URLs would).

    launch(app_kwargs={"middleware": MIDDLEWARE})

Responses of 1 KB or more are gzip-compressed for clients that accept it (the page's HTML and
config: ~5x smaller); Starlette's GZipMiddleware leaves event streams (the queue) alone.

Pure ASGI (no BaseHTTPMiddleware), so the route runs in this request's context and a handler
can mark it as refused through `mark_refused()`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from pathlib import Path

from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware

MAX_BODY_BYTES = 64 * 1024   # a request of this app is a name and two numbers: well under 1 KB
DISCARD_BYTES = 16 << 20     # a bigger body is cut off mid-upload (the client sees the connection close)
_refused: contextvars.ContextVar[dict | None] = contextvars.ContextVar("rtm_refused", default=None)
API_CALL = re.compile(r"^/gradio_api/(?:run|call)/([A-Za-z0-9_]{1,64})/?$")
API_ROUTE = re.compile(r"^/gradio_api/(?:run|call)/([^/]*)")   # any name, any length: POST and the GET of a call's result
PAGE_ROUTE = "predict"   # where the page itself posts its unqueued events (by fn_index, not by name)
log = logging.getLogger("rtm_explorer")
STATIC_PREFIX = "/rtm-static/"
# route -> (folder, the file names it may serve, content type); filled by serve_static()
_static: dict[str, tuple[Path, re.Pattern, str]] = {}


def serve_static(route: str, folder: Path, names: str, content_type: str) -> None:
    """Serve the files of `folder` whose names match `names` at /rtm-static/ROUTE/NAME. Only the
    route and the file name appear in a URL, never the folder."""
    _static[route] = (Path(folder), re.compile(names), content_type)


def static_url(route: str, name: str) -> str:
    return f"{STATIC_PREFIX}{route}/{name}"


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
        if scope["path"].startswith(STATIC_PREFIX) and scope["method"] in ("GET", "HEAD"):
            return await self._static(scope, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            await self._discard(receive)
            return await self._reject(send, 413, f"request body too large: at most {self.max_body_bytes:,} bytes")
        unknown = unknown_endpoint(scope) or unknown_event(scope)
        if unknown:
            await self._discard(receive)
            log.warning("refused %s", unknown)
            return await self._reject(send, 404, unknown)
        if scope["method"] in ("POST", "PUT", "PATCH"):
            # Read the whole body first (at most max_body_bytes): a chunked upload that goes over
            # gets the same 413 as a declared one, and the API call can be checked before Gradio.
            body = await self._read_body(receive)
            if body is None:
                await self._discard(receive)
                return await self._reject(send, 413, f"request body too large: at most {self.max_body_bytes:,} bytes")
            problem = wrong_arity(scope, body) or unknown_fn_index(scope, body)
            if problem:
                log.warning("refused %s: %s", scope["path"][:80], problem)
                return await self._reject(send, 422, problem)
            receive = replay(body, receive)

        flags: dict = {}
        token = _refused.set(flags)

        async def status_send(message):
            if message["type"] == "http.response.start" and message["status"] == 500 and flags.get("refused"):
                message = {**message, "status": 422}
            await send(message)

        try:
            await self.app(scope, receive, status_send)
        finally:
            _refused.reset(token)

    async def _read_body(self, receive) -> bytes | None:
        """The request body, or None once it passes max_body_bytes."""
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    @staticmethod
    async def _static(scope, send) -> None:
        route, _, name = scope["path"][len(STATIC_PREFIX):].partition("/")
        folder, names, content_type = _static.get(route, (None, None, ""))
        path = folder / name if folder is not None and names.fullmatch(name) else None
        if path is None or not path.is_file():
            return await RequestGuard._reject(send, 404, "not found")
        body = path.read_bytes() if scope["method"] == "GET" else b""
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type.encode()),
                                (b"content-length", str(path.stat().st_size).encode()),
                                (b"cache-control", b"public, max-age=86400")]})
        await send({"type": "http.response.body", "body": body})

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


def replay(body: bytes, receive):
    """A receive() that hands the app the body already read, then listens for a disconnect."""
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replayed


def public_endpoints(app) -> list[str]:
    """The API names the app documents (api_visibility "public"), in the order they were made."""
    return [f.api_name for f in app.get_blocks().fns.values() if getattr(f, "api_visibility", "public") == "public"
            and isinstance(f.api_name, str)]


def unknown_endpoint(scope) -> str | None:
    """For /gradio_api/run/NAME or /call/NAME[/...]: why NAME may not answer (it is not one of the
    documented endpoints), with the name cut short; None when it may, or for any other route."""
    match = API_ROUTE.match(scope.get("path", ""))
    app = scope.get("app")
    if not match or app is None or not hasattr(app, "get_blocks"):
        return None
    name, public = match.group(1), public_endpoints(app)
    if name in public or name == PAGE_ROUTE:
        return None
    return f"no API endpoint named {preview_name(name)}; the endpoints are {', '.join(public)}"


def unknown_event(scope) -> str | None:
    """For GET /gradio_api/call/NAME/EVENT_ID and /gradio_api/queue/data?session_hash=ID: why the
    stream may not open (the queue holds no such event or session), or None. Gradio checks this
    only after it has sent the stream's headers, so its 404 became a traceback in the log."""
    if scope.get("method") != "GET" or not hasattr(scope.get("app"), "get_blocks"):
        return None
    path, queue = scope.get("path", ""), scope["app"].get_blocks()._queue
    if path.startswith("/gradio_api/call/") and path.count("/") == 4:
        what, shown, hint = "event", path.rsplit("/", 1)[1], "a result is read with the event_id its POST returned"
        # Its session, found as Gradio finds it (a client may have named its own session_hash).
        event = queue.event_ids_to_events.get(shown)
        session = event.session_hash if event is not None else next(
            (s for s, ids in queue.pending_event_ids_session.items() if shown in ids), shown)
    elif path == "/gradio_api/queue/data":
        query = dict(part.partition("=")[::2] for part in scope.get("query_string", b"").decode("latin-1").split("&"))
        what, hint = "session", "reload the page"
        shown = session = query.get("session_hash", "")
    else:
        return None
    if session in queue.pending_messages_per_session:
        return None
    return f"no pending {what} {preview_name(shown)}: {hint}"


def unknown_fn_index(scope, body: bytes) -> str | None:
    """For POST /gradio_api/queue/join and /gradio_api/run/predict: why the body's fn_index names no
    event handler of this page, or its data is not one value per input (Gradio answers both with a
    500, the first with a KeyError's traceback), or None."""
    if scope.get("path") not in ("/gradio_api/queue/join", f"/gradio_api/run/{PAGE_ROUTE}") \
            or not hasattr(scope.get("app"), "get_blocks"):
        return None
    try:
        request = json.loads(body)
        fn_index = request.get("fn_index")
    except (ValueError, AttributeError):
        return 'the body must be a JSON object with "fn_index" and "data"'
    if fn_index is None and scope["path"].endswith(PAGE_ROUTE):
        return None                                   # Gradio reads api_name instead
    fns = scope["app"].get_blocks().fns
    if not isinstance(fn_index, int) or isinstance(fn_index, bool) or fn_index not in fns:
        return f"no event handler with fn_index {preview_name(str(fn_index))}: reload the page"
    data, expected = request.get("data"), len(fns[fn_index].inputs)
    if not isinstance(data, list) or len(data) != expected:
        return f'event handler {fn_index} takes {expected} inputs ("data": a list of {expected} values)'
    return None


def preview_name(name: str, limit: int = 40) -> str:
    return repr(name) if len(name) <= limit else f"{name[:limit]!r}... ({len(name):,} characters)"


def wrong_arity(scope, body: bytes) -> str | None:
    """For POST /gradio_api/run/NAME or /call/NAME: why the body is not {"data": [one value per
    input]} (Gradio answers that with a 500 and a traceback that copies the input into the log);
    None when it is, or for any other route."""
    match = API_CALL.match(scope.get("path", ""))
    app = scope.get("app")
    if not match or app is None or not hasattr(app, "get_blocks"):
        return None
    fn = next((f for f in app.get_blocks().fns.values() if f.api_name == match.group(1)), None)
    if fn is None:
        return None                                   # Gradio's own 404
    try:
        data = json.loads(body).get("data")
    except (ValueError, AttributeError):
        return 'the body must be a JSON object {"data": [...]}'
    expected = len(fn.inputs)
    if not isinstance(data, list) or len(data) != expected:
        got = f"{len(data)} values" if isinstance(data, list) else f"a {type(data).__name__}"
        return f'"{fn.api_name}" takes {expected} inputs ("data": a list of {expected} values), got {got}'
    return None


MIDDLEWARE = [Middleware(RequestGuard), Middleware(GZipMiddleware, minimum_size=1024)]
