"""Storage: the only layer that speaks SQL. A Database (gateway/store/database.py) and one repository per
subject, each with its own file of named queries."""

from gateway.store.batch_list import ListFilter
from gateway.store.batches import BatchRepository
from gateway.store.records import BatchRecord

__all__ = ["BatchRecord", "BatchRepository", "ListFilter"]
