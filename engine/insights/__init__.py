"""What happened: show metrics, the post-live report and the room audit."""
