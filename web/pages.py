"""The page route: a cited PDF page as printed, as a PNG the chat page draws the highlight on.

The image is the page only, the same for every citation into it, so a browser may keep it:
it is sent with an ETag (the document's content hash, page and width) and ``no-cache``,
and a request that already holds that version gets 304 without a render. Where a
citation lies on it is in the answer JSON (``boxes``). Read-only, behind the same token
rules as every /api/ route; only indexed documents are shown.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from qa.errors import PageUnavailable

from . import context
from .errors import ApiError

pages = Blueprint("pages", __name__)

STATUS = {"invalid_request": 400, "unknown_source": 404, "no_pages": 404, "unknown_page": 404,
          "source_changed": 409, "unreadable": 422}


@pages.get("/api/sources/<path:source>/pages/<int:page>.png")
def page_image(source: str, page: int) -> Response:
    engine = context.engine()
    width = request.args.get("width")
    if width is not None and not (width.isascii() and width.isdigit() and len(width) <= 5):
        raise ApiError(400, "invalid_request", "width must be a whole number of pixels")
    doc_hash = engine.document_hash(source)
    tag = f"{doc_hash}-{page}-{width or ''}" if doc_hash else None
    if tag is not None and tag in request.if_none_match:
        return _cached(Response(status=304), tag)
    try:
        png = engine.page_image(source, page, None if width is None else int(width))
    except PageUnavailable as exc:
        raise ApiError(STATUS.get(exc.code, 422), exc.code, str(exc)) from None
    return _cached(Response(png, mimetype="image/png"), tag)


def _cached(response: Response, tag: str | None) -> Response:
    """Kept by the browser, checked again on every use (a rebuilt index may change the page)."""
    if tag is not None:
        response.set_etag(tag)
    response.headers["Cache-Control"] = "private, no-cache"
    return response
