"""Storage: the only layer that speaks SQL."""

from gateway.store.records import BatchRecord
from gateway.store.store import ListFilter, Store

__all__ = ["BatchRecord", "ListFilter", "Store"]
