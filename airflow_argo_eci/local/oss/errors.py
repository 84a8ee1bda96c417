"""OSS error responses: the ``<Error>`` XML body and ``x-oss-request-id`` header OSS sends."""

from __future__ import annotations

import base64
import secrets
from xml.sax.saxutils import escape

from starlette.responses import Response


def new_request_id() -> str:
    """Return a fresh request id in the shape OSS uses (24 upper-case hex characters)."""
    return secrets.token_hex(12).upper()


class OSSErrorResponse(Exception):
    """An error the store reports to the client as OSS error XML.

    ``code`` is the OSS error code (``NoSuchKey``, ``SignatureDoesNotMatch`` ...), ``status`` the
    HTTP status and ``extra`` further elements OSS adds to the body (e.g. ``Key``, ``BucketName``).
    """

    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def to_response(self, request_id: str, host_id: str, *, head: bool = False) -> Response:
        """Render the error as OSS does; a HEAD response has no body but the error in ``x-oss-err``."""
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error>',
            f"<Code>{escape(self.code)}</Code>",
            f"<Message>{escape(self.message)}</Message>",
            f"<RequestId>{escape(request_id)}</RequestId>",
            f"<HostId>{escape(host_id)}</HostId>",
        ]
        # clients read only the first 4 KiB of an error body (oss2 does): echo at most 1 KiB per value
        parts += [f"<{name}>{escape(_clip(value))}</{name}>" for name, value in self.extra.items()]
        parts.append("</Error>\n")
        xml = "".join(parts).encode()
        headers = {"x-oss-request-id": request_id, "x-oss-ec": self.code}
        if head:  # a HEAD answer has no body, so OSS carries the error document in x-oss-err
            headers["x-oss-err"] = base64.b64encode(xml).decode()
        body = b"" if head else xml
        return Response(body, status_code=self.status, media_type="application/xml", headers=headers)


def _clip(value: str, limit: int = 1024) -> str:
    return value if len(value) <= limit else value[:limit] + "..."


def no_such_bucket(bucket: str) -> OSSErrorResponse:
    """The 404 OSS returns for a bucket that does not exist."""
    return OSSErrorResponse(404, "NoSuchBucket", "The specified bucket does not exist.", BucketName=bucket)


def no_such_key(key: str) -> OSSErrorResponse:
    """The 404 OSS returns for an object that does not exist."""
    return OSSErrorResponse(404, "NoSuchKey", "The specified key does not exist.", Key=key)
