from __future__ import annotations

import pytest

from services.api.main import create_app
from vpp.settings import Settings


def test_every_error_response_is_a_documented_problem_detail() -> None:
    app = create_app(Settings(), database_url="postgresql://unused@127.0.0.1:1/unused")
    schema = app.openapi()
    assert "Problem" in schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if path.startswith("/api/"):
                assert {"401", "403", "404", "422"} <= responses.keys(), f"{method} {path}"
            for code, response in responses.items():
                if int(code) >= 400 and path != "/readyz":
                    assert list(response["content"]) == ["application/problem+json"], f"{method} {path} {code}"


def test_app_requires_a_database_url() -> None:
    with pytest.raises(ValueError, match="database URL"):
        create_app(Settings(database_url=None))
