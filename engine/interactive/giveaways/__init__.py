"""Giveaways: entries, the draw, prizes and their audit."""
