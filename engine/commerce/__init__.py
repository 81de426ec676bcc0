"""Selling: the catalog, flash sales and stock, coupons, pricing, orders, payments and the simulated
provider, risk, the order feed, the commerce audit."""
