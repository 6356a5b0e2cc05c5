"""What happens to a customer's file once it is stored (issue 17): transcription of voice notes, OCR of photos.

Placeholder until H2 writes it: `worker.media_job` calls `after_stored` after every successful download.
"""

from __future__ import annotations

from runtime.resources import Runtime
from storage.media import Media


def after_stored(rt: Runtime, row: Media) -> None:
    """Called by worker.media_job once `row`'s file is in the media store. Errors are logged by the caller."""
    return None
