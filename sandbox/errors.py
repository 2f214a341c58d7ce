"""Error bodies in the shapes Anyfast answers with (docs/upstream.md §5.1).

Two kinds reach a client:

* gateway errors of Anyfast's own (new-api style): ``{"error": {"message": "No token provided",
  "type": "new_api_error", "code": "..."}}``;
* relayed upstream errors: ``{"error": {"message": "upstream_error: [<Code>] <Message>",
  "type": "upstream_error", "code": "<Code>"}}`` with the upstream's HTTP status.
"""

from __future__ import annotations

from django.http import JsonResponse


class ApiError(Exception):
    """An error answer; raised by action handlers, turned into a response by the view."""

    def __init__(self, status: int, message: str, *, type_: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code

    def response(self) -> JsonResponse:
        return error_response(self.status, self.message, type_=self.type, code=self.code)


def error_response(status: int, message: str, *, type_: str, code: str) -> JsonResponse:
    return JsonResponse({"error": {"message": message, "type": type_, "code": code}}, status=status)


def gateway_error(status: int, message: str, *, code: str) -> ApiError:
    """An error Anyfast itself answers, before anything reaches the upstream."""
    return ApiError(status, message, type_="new_api_error", code=code)


def upstream_error(status: int, code: str, message: str) -> ApiError:
    """An upstream error relayed by Anyfast: ``upstream_error: [<code>] <message>``."""
    text = f"upstream_error: [{code}] {message}"
    return ApiError(status, text, type_="upstream_error", code=code)


def missing_parameter(field: str) -> ApiError:
    return upstream_error(
        400, f"MissingParameter.{field}", f"The required parameter {field} is missing."
    )


def invalid_parameter(field: str, message: str) -> ApiError:
    return upstream_error(400, f"InvalidParameter.{field}", message)


def group_not_found(group_id: str) -> ApiError:
    return upstream_error(
        404, "NotFound.group_id", f"The specified asset_group {group_id} is not found."
    )


def asset_not_found(asset_id: str) -> ApiError:
    return upstream_error(404, "NotFound.asset_id", f"The specified asset {asset_id} is not found.")


def aigc_only() -> ApiError:
    """What a key outside the Byteplus-Direct token group gets for what the guide says it cannot
    do: create a verification session, or an asset in a LivenessFace group.

    The 400 status is INFERRED (docs/upstream.md §12.7): only a third-party mock shows it.
    """
    return invalid_parameter("GroupType", "GroupType must be one of [AIGC]")
