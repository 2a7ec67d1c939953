"""The HTTP API (FastAPI): knowledge documents today; calls, queues and agents as they arrive."""
