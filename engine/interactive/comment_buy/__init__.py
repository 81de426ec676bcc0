"""Comment-to-buy: the comment syntax and the grabs it makes."""
