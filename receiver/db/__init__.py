"""Storage: SQLAlchemy 2 async over SQLite (default) or PostgreSQL, schema by Alembic."""

from receiver.db.engine import Database
from receiver.db.models import Base, InvoiceRecord, InvoiceStatusDB

__all__ = ["Base", "Database", "InvoiceRecord", "InvoiceStatusDB"]
