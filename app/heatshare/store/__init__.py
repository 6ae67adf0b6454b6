"""The agent's history in SQLite: samples, rollups, daily energy, small state.

See :mod:`heatshare.store.history` for time units, retention, threads and late samples, and
:mod:`heatshare.store.schema` for the schema and its migrations.
"""

from heatshare.store.errors import NewerSchemaError, StoreError
from heatshare.store.history import Store
from heatshare.store.results import QueryResult, SeriesResult

__all__ = ["NewerSchemaError", "QueryResult", "SeriesResult", "Store", "StoreError"]
