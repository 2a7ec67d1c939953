"""The API tests' server (uvicorn on loopback, users signed up) for the supervisor's API."""

from tests.queues.test_api import serve  # noqa: F401
