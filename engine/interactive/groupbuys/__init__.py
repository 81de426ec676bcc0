"""Group buys: teams of K buyers within a deadline, and their audit."""
