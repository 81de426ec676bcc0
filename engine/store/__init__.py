"""Redis and everything keyed in it: the client, the Lua scripts and their loader, the key layout,
the room log, the bus and its broker, the show-metrics meter."""
