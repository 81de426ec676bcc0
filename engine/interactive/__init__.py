"""Interactive features, one package each (auctions, group buys, comment-to-buy): its
store, rules, Lua and audit."""
