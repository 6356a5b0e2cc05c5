"""A stand-in for the parcel company's logistics core, serving the demo data over HTTP.

`create_sandbox_app()` builds the Flask app; `encargo-sandbox-core`
(sandbox_core.server:main) serves it; `BackgroundServer` runs any WSGI app on
a free loopback port in a thread, for tests.
"""

from __future__ import annotations

from sandbox_core.app import create_sandbox_app
from sandbox_core.server import BackgroundServer

__all__ = ["BackgroundServer", "create_sandbox_app"]
