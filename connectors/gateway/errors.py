"""The gateway's answers other than 202: one error body shape for every status, 404s and 500s included."""

from __future__ import annotations

import logging
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from connectors.errors import FieldProblem

__all__ = ["RETRY_AFTER_S", "Problem", "install_error_handlers", "internal_error"]

logger = logging.getLogger(__name__)

RETRY_AFTER_S: Final = "1"


class Problem(Exception):
    """An answer other than 202, raised from anywhere in a handler."""

    def __init__(self, status: int, error: str, detail: str, problems: tuple[FieldProblem, ...] = ()) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.problems = problems

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "detail": self.detail}
        if self.problems:
            body["problems"] = [{"field": p.field, "reason": p.reason} for p in self.problems]
        return body

    def response(self) -> JSONResponse:
        headers = {}
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="revstream"'
        if self.status == 503:
            headers["Retry-After"] = RETRY_AFTER_S
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def internal_error(exc: BaseException) -> Problem:
    """Return the 500 answer of a gateway defect (the client did nothing wrong)."""
    return Problem(
        500, "internal_error", f"the gateway failed ({type(exc).__name__}); nothing was acknowledged"
    )


def install_error_handlers(app: FastAPI) -> None:
    """Answer :class:`Problem`, routing errors and defects in the gateway's error shape."""

    @app.exception_handler(Problem)
    async def problem_handler(request: Request, problem: Problem) -> JSONResponse:
        return problem.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Routing's own answers (404 no such path, 405 wrong method) in the gateway's error shape.
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            {"error": code, "detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def defect(request: Request, exc: Exception) -> JSONResponse:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return internal_error(exc).response()
