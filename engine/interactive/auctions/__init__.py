"""Live auctions: the rules, the store (bids, closing, settling) and their audit."""
