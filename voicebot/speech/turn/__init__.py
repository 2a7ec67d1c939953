"""End-of-turn detection from the caller's audio (Smart Turn v3.2), and fetching its model."""
