"""The FastAPI application: routes, errors as JSON, the write guard, uploads, media.

Every error is `{"error": message, "fields": [...]}` with the HTTP status that says whose
fault it is; the message names the bad field. Files are reached only through item ids.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from pydantic_core import to_json

from mmrec import __version__
from mmrec.catalog import CatalogBusyError, ThumbnailNotFoundError
from mmrec.errors import ConfigError, MediaError, MmrecError
from mmrec.recommend import UnknownUserError

from .config import ServeConfig, is_loopback
from .schemas import EventBatch, RecommendRequest, SearchOptions, SearchRequest, field_errors
from .service import NotFound, Service

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
ITEM_ID = r"^[0-9a-f]{8,64}$"
SEG_ID = r"^[0-9a-f]{8,64}:(visual|audio|text):[0-9]{1,6}$"
CHUNK = 1 << 20


def create_app(config: ServeConfig, service: Service | None = None) -> FastAPI:
    """The app over one catalog; the extractors load at start-up unless config.preload is off."""
    svc = service or Service(config)
    if config.preload:
        svc.preload()
    app = FastAPI(title="mmrec", version=__version__,
                  description="Multimodal search, moments and recommendations over one mmrec catalog.")
    app.state.service = svc
    if config.cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    _errors(app)
    app.add_middleware(UploadLimit, limit=config.max_upload_bytes)
    _routes(app, svc, config)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def app_from_env() -> FastAPI:
    """uvicorn's factory for worker processes (`mmrec serve --workers N`)."""
    return create_app(ServeConfig.from_env())


# -- errors ----------------------------------------------------------------------------
def _json_error(status: int, message: str, fields: list[dict[str, str]] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "fields": fields or []}, status_code=status)


class _Unauthorized(MmrecError):
    pass


class _Forbidden(MmrecError):
    pass


class _TooLarge(ConfigError):
    pass


# The HTTP status of each refusal; the most specific class wins (Starlette walks the MRO).
STATUS: dict[type[Exception], int] = {
    NotFound: 404, ThumbnailNotFoundError: 404, UnknownUserError: 404, CatalogBusyError: 503, MediaError: 422,
    _TooLarge: 413, _Unauthorized: 401, _Forbidden: 403, MmrecError: 400,
}
HEADERS = {401: {"WWW-Authenticate": "Bearer"}}


def _refusal(status: int) -> Any:
    """An exception handler answering `status` with the exception's message."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": str(exc), "fields": []}, status_code=status,
                            headers=HEADERS.get(status))

    return handler


def _errors(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)  # a request body or parameter
    @app.exception_handler(ValidationError)  # a model built inside an endpoint
    async def invalid(request: Request, exc: RequestValidationError | ValidationError) -> JSONResponse:
        fields = field_errors(list(exc.errors()))
        first = fields[0] if fields else {"field": "body", "message": "invalid request"}
        return _json_error(422, f"{first['field']}: {first['message']}", fields)

    for cls, status in STATUS.items():
        app.add_exception_handler(cls, _refusal(status))

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return _json_error(500, f"internal error ({type(exc).__name__}); the service log has the details")


class UploadLimit:
    """Refuse an upload by its Content-Length before a byte of it is parsed (plain ASGI:
    Starlette's decorator middleware would cost every request a task and two streams)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/api/search/file":
            size = dict(scope["headers"]).get(b"content-length", b"")
            if size.isdigit() and int(size) > self.limit + 64 * 1024:
                await _json_error(413, _too_large(self.limit))(scope, receive, send)
                return
        await self.app(scope, receive, send)


# -- the write guard -------------------------------------------------------------------
def _writer(config: ServeConfig) -> Any:
    """Writes need the token when one is set, else a client on this machine."""

    def check(request: Request) -> None:
        if config.token:
            given = request.headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), config.token.encode()):
                raise _Unauthorized("missing or wrong token: send 'Authorization: Bearer <token>'")
        elif request.client is None or not is_loopback(request.client.host):
            raise _Forbidden("writes are accepted from this machine only (start with --token to "
                             "accept them from elsewhere)")

    return check


# -- routes ----------------------------------------------------------------------------
def _ok(body: Any) -> Response:
    """A route's answer as JSON bytes. A returned dict would make FastAPI validate it
    against the route's annotation in a second hop to the thread pool before serialising
    it; this writes the same bytes (pydantic's JSON writer) without that hop."""
    return Response(to_json(body), media_type="application/json")


def _routes(app: FastAPI, svc: Service, config: ServeConfig) -> None:
    writer = Depends(_writer(config))

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/healthz", tags=["service"])
    def healthz() -> Response:
        return _ok({"status": "ok", "version": __version__, "items": svc.item_count()})

    @app.get("/api/stats", tags=["service"])
    def stats() -> Response:
        return _ok(svc.stats())

    @app.post("/api/search", tags=["search"])
    def search(req: SearchRequest) -> Response:
        """Items (or moments) like a text or a catalogued item."""
        return _ok(svc.search(req))

    @app.post("/api/search/file", tags=["search"])
    def search_file(file: Annotated[UploadFile, File()],
                    options: Annotated[str, Form(description="SearchOptions as JSON")] = "{}",
                    ) -> Response:
        """Items (or moments) like an uploaded file, decoded and embedded in a worker thread."""
        try:
            opts = SearchOptions.model_validate(json.loads(options))
        except (ValueError, ValidationError) as e:
            fields = field_errors(e.errors()) if isinstance(e, ValidationError) else []
            msg = f"options: {fields[0]['field']}: {fields[0]['message']}" if fields else f"options: {e}"
            raise ConfigError(msg) from None
        with tempfile.TemporaryDirectory(prefix="mmrec-upload-") as tmp:
            path = Path(tmp) / ("upload" + _suffix(file.filename))
            _save(file, path, config.max_upload_bytes)
            return _ok(svc.search_file(path, opts))

    @app.get("/api/items/{item_id}", tags=["items"])
    def item(item_id: Annotated[str, PathParam(pattern=ITEM_ID)]) -> Response:
        return _ok(svc.item(item_id))

    @app.get("/api/items/{item_id}/similar", tags=["items"])
    def similar(item_id: Annotated[str, PathParam(pattern=ITEM_ID)],
                k: Annotated[int, Query(ge=1)] = 10) -> Response:
        return _ok(svc.search(SearchRequest(item=item_id, k=k)))

    @app.get("/api/users", tags=["recommend"])
    def users() -> Response:
        return _ok(svc.users())

    @app.post("/api/recommend", tags=["recommend"])
    def recommend(req: RecommendRequest) -> Response:
        """For a known user (their history), for interests text (cold start), or both."""
        return _ok(svc.recommend(req))

    @app.get("/api/users/{user_id}/recommendations", tags=["recommend"])
    def user_recommendations(user_id: Annotated[str, PathParam(min_length=1, max_length=200)],
                             k: Annotated[int, Query(ge=1)] = 10, explain: bool = True) -> Response:
        return _ok(svc.recommend(RecommendRequest(user=user_id, k=k, explain=explain)))

    @app.post("/api/events", tags=["events"], dependencies=[writer])
    def events(body: dict[str, Any] | list[Any]) -> JSONResponse:
        """One event, a list of events, or {"events": [...], "partial": bool}: validated one
        by one; all or nothing unless partial. The next recommendation reflects them."""
        if isinstance(body, list):
            batch = EventBatch(events=body)
        elif "events" in body:
            batch = EventBatch.model_validate(body)
        else:
            batch = EventBatch(events=[body])
        status, out = svc.record_events(batch.events, batch.partial)
        return JSONResponse(out, status_code=status)

    @app.get("/media/{item_id}", tags=["media"])
    def media(item_id: Annotated[str, PathParam(pattern=ITEM_ID)]) -> FileResponse:
        """The catalogued file, with HTTP Range support (a player can seek to a moment)."""
        return FileResponse(svc.media_path(item_id), headers={"Cache-Control": "private, max-age=60"})

    @app.get("/thumbs/{item_id}", tags=["media"])
    def poster(item_id: Annotated[str, PathParam(pattern=ITEM_ID)]) -> FileResponse:
        """The item's poster (a frame, or a waveform for audio), made on first request."""
        return FileResponse(svc.thumbnail(item_id), media_type="image/jpeg",
                            headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/thumbs/{item_id}/{seg_id}", tags=["media"])
    def segment_thumb(item_id: Annotated[str, PathParam(pattern=ITEM_ID)],
                      seg_id: Annotated[str, PathParam(pattern=SEG_ID)]) -> FileResponse:
        """One segment's thumbnail (its middle frame, or its waveform)."""
        return FileResponse(svc.thumbnail(item_id, seg_id), media_type="image/jpeg",
                            headers={"Cache-Control": "private, max-age=3600"})


def _suffix(filename: str | None) -> str:
    """The upload's extension when it is a plain one (ffprobe reads the content anyway)."""
    suffix = Path(filename or "").suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


def _too_large(limit: int) -> str:
    return (f"file: the upload is over the limit of {limit / 2**20:.0f} MB (start the service "
            "with a larger --max-upload-mb)")


def _save(upload: UploadFile, dest: Path, limit: int) -> None:
    """Copy an upload to dest, refusing it past `limit` bytes."""
    written = 0
    with dest.open("wb") as out:
        while chunk := upload.file.read(CHUNK):
            written += len(chunk)
            if written > limit:
                raise _TooLarge(_too_large(limit))
            out.write(chunk)
    if written == 0:
        raise ConfigError("file: the upload is empty")



__all__ = ["app_from_env", "create_app"]
