"""livecart engine: rooms, realtime fan-out and commerce on Redis."""

__version__ = "0.1.0"
