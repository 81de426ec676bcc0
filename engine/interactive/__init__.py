"""Interactive features, one package each (auctions): its store, rules, Lua and audit."""
