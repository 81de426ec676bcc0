"""Interactive features, one package each (auctions, giveaways, comment-to-buy): its
store, rules, Lua and audit."""
