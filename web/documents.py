"""The document routes: list, add (multipart upload), remove, and follow the indexing job."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from qa.library import Upload

from . import context, errors
from .errors import ApiError

documents = Blueprint("documents", __name__)

UPLOAD_FIELDS = frozenset({"file", "replace"})
_YES, _NO = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


@documents.get("/api/documents")
def list_documents() -> Response:
    lib = context.library()
    return jsonify({**lib.status(), "documents": lib.documents()})


@documents.post("/api/documents")
def upload() -> tuple[Response, int, dict[str, str]]:
    lib = context.library()
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type",
                       "send the files as multipart/form-data in the form field 'file'")
    request.max_content_length = errors.MAX_UPLOAD_BYTES
    form, files = request.form, request.files  # over the limit: 413 before the body is parsed
    # A part without a name (werkzeug gives it the key None) is unknown too.
    unknown = sorted(name or "(a part without a name)"
                     for name in (set(form) | set(files)) - UPLOAD_FIELDS)
    if unknown:
        raise ApiError(400, "invalid_upload", f"unknown form field(s): {', '.join(unknown)}; "
                       "send the files in 'file' and, to replace files of the same name, replace=true")
    if "file" in form:
        raise ApiError(400, "invalid_upload", "the field 'file' must hold files, not text")
    replace = form.get("replace", "").strip().lower()
    if replace not in _YES + _NO:
        raise ApiError(400, "invalid_upload", "replace must be true or false")
    job = lib.add([Upload(f.filename or "", f.stream) for f in files.getlist("file")],
                  replace=replace in _YES)
    return jsonify({"job": job.id}), 202, {"Location": f"/api/jobs/{job.id}"}


@documents.get("/api/jobs/<job_id>")
def job(job_id: str) -> Response:
    return jsonify(context.library().job(job_id).as_dict())


@documents.delete("/api/documents/<path:source>")
def delete_document(source: str) -> tuple[Response, int, dict[str, str]]:
    job = context.library().remove(source)
    return jsonify({"job": job.id}), 202, {"Location": f"/api/jobs/{job.id}"}
