"""Downloading a customer's file from the provider into the media store (filled in step 3)."""

from __future__ import annotations

from runtime.resources import Runtime


def download_media(rt: Runtime, media_id: int, correlation_id: str | None) -> str:
    return "not yet"
