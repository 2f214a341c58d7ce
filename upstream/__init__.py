"""The upstream (Anyfast ``/volc/asset/*``): the only code in the portal that speaks HTTP to it.

Import from here::

    from upstream import AnyfastClient, TransientUpstreamError, key_fingerprint

``client`` holds the client, ``errors`` the error hierarchy and the user-facing explanations,
``types`` the typed results, ``ratelimit`` the deployment-wide limiter, ``keys`` the key
fingerprint and redaction.
"""

from .client import AnyfastClient, Attempt, client_or_default, outgoing_session
from .errors import (
    AmbiguousCreate,
    AmbiguousWrite,
    AssetNotFound,
    AuthenticationFailed,
    CreateOutcomeUnknown,
    EndpointNotFound,
    GroupNotFound,
    InvalidRequest,
    LocalRateLimitExceeded,
    PermanentUpstreamError,
    RateLimited,
    RateLimiterUnavailable,
    TransientUpstreamError,
    UnexpectedResponse,
    UpstreamError,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnreachable,
    VerificationTokenInvalid,
    WrongTokenGroup,
    explain_asset_error,
    upstream_outcome,
)
from .keys import key_fingerprint
from .ratelimit import NullRateLimiter, RateLimiter, rate_limiter_from_settings
from .types import (
    AssetCreated,
    AssetPage,
    AssetRenamed,
    Deleted,
    UpstreamAsset,
    UpstreamAssetStatus,
    UpstreamAssetType,
    UpstreamGroupType,
    VerificationResult,
    VerificationSessionStarted,
)

__all__ = [
    "AmbiguousCreate",
    "AmbiguousWrite",
    "AnyfastClient",
    "AssetCreated",
    "AssetNotFound",
    "AssetPage",
    "AssetRenamed",
    "Attempt",
    "AuthenticationFailed",
    "CreateOutcomeUnknown",
    "Deleted",
    "EndpointNotFound",
    "GroupNotFound",
    "InvalidRequest",
    "LocalRateLimitExceeded",
    "NullRateLimiter",
    "PermanentUpstreamError",
    "RateLimited",
    "RateLimiter",
    "RateLimiterUnavailable",
    "TransientUpstreamError",
    "UnexpectedResponse",
    "UpstreamAsset",
    "UpstreamAssetStatus",
    "UpstreamAssetType",
    "UpstreamError",
    "UpstreamGroupType",
    "UpstreamServerError",
    "UpstreamTimeout",
    "UpstreamUnreachable",
    "VerificationResult",
    "VerificationSessionStarted",
    "VerificationTokenInvalid",
    "WrongTokenGroup",
    "client_or_default",
    "explain_asset_error",
    "key_fingerprint",
    "outgoing_session",
    "rate_limiter_from_settings",
    "upstream_outcome",
]
