"""Each company's current policies and FAQ, kept in memory per process (`storage.faq_versions`).

Every customer message needs them and they change only when an admin saves
in the console: each tenant's FAQ is read once and kept in a
`storage.tenant_changes.TenantCache` until a change is announced (read at most
once a second), so a message costs no database round trip and an admin's
edit is answered with within about a second, without a restart.

`faqs_of(rt)` is the worker's instance (one per Runtime pool).
Failure policy: database errors raise (the job is retried); nothing is cached then.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

from psycopg_pool import ConnectionPool

from runtime.resources import Runtime
from storage import faq_versions
from storage.faq_content import FaqData
from storage.tenant_changes import TenantCache

_of_pool: weakref.WeakKeyDictionary[ConnectionPool, TenantCache[int, FaqData]] = weakref.WeakKeyDictionary()
_of_pool_lock = threading.Lock()


def faqs_of(rt: Runtime) -> TenantCache[int, FaqData]:
    """The tenants' FAQs of a worker process, by tenant id (one cache per Runtime pool)."""
    with _of_pool_lock:
        found = _of_pool.get(rt.pool)
        if found is None:
            found = _of_pool[rt.pool] = TenantCache(rt.redis, _loader(weakref.ref(rt.pool)))
        return found


def _loader(pool: weakref.ref[ConnectionPool]) -> Callable[[int], FaqData]:
    """Reads through a weak reference: the cache, kept by its pool, must not keep the pool alive."""
    def load(tenant_id: int) -> FaqData:
        found = pool()
        if found is None:
            raise RuntimeError("the worker's connection pool was closed")
        return faq_versions.for_tenant(found, tenant_id)
    return load


def faq_for(rt: Runtime, tenant_id: int) -> FaqData:
    """The tenant's current policies and FAQ, from memory when nothing changed since they were read."""
    return faqs_of(rt).get(tenant_id)
