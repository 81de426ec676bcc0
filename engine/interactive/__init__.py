"""Interactive features, one package each (auctions, group buys): its store, rules, Lua and
audit."""
