"""Interactive features, one package each (auctions, giveaways, group buys, comment-to-buy): its
store, rules, Lua and audit."""
