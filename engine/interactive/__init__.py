"""Interactive features, one package each (giveaways, group buys, comment-to-buy): its
store, rules, Lua and audit."""
