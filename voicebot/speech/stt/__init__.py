"""Speech-to-text plugins."""
