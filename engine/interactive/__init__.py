"""Interactive features, one package each (auctions, giveaways, group buys): its store,
rules, Lua and audit."""
