"""The books: order events copied from Redis into PostgreSQL, reconciliation against the
payment provider, customers across shows, and privacy requests (docs/ledger.md)."""
