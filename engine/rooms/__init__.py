"""The room and its people: rooms, tokens and access, comments and moderation, presence and watch
time."""
