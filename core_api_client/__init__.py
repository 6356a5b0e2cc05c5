"""Client of the parcel company's logistics core: typed results, project-own errors.

client = CoreClient.from_settings(settings)
package = client.track("SV20260106012345")   # Package | None
"""

from __future__ import annotations

from core_api_client.client import CoreClient
from core_api_client.errors import CoreAuthError, CoreBadRequest, CoreBadResponse, CoreError, CoreUnavailable
from core_api_client.models import Company, HistoryEntry, Package, Party, Quote, Refund, ServicePoint

__all__ = [
    "Company",
    "CoreAuthError",
    "CoreBadRequest",
    "CoreBadResponse",
    "CoreClient",
    "CoreError",
    "CoreUnavailable",
    "HistoryEntry",
    "Package",
    "Party",
    "Quote",
    "Refund",
    "ServicePoint",
]
