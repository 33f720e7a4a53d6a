"""The API's OpenAPI document, kept in the repository (``twin/service/openapi.json``).

``python -m twin.service.openapi`` rewrites the file from the app; a test fails when the
app and the file disagree, so the published spec never drifts from the code.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

SPEC_FILE = Path(__file__).resolve().parent / "openapi.json"


def current_spec() -> dict[str, Any]:
    """The OpenAPI document the app serves (built on a throwaway SQLite database)."""
    from twin.service.api.app import ServiceConfig, create_app

    with tempfile.TemporaryDirectory() as folder:
        app = create_app(ServiceConfig(db_url=f"sqlite:///{folder}/spec.db"))
        spec = app.openapi()
        app.state.callbacks.close()
        app.state.engine.dispose()
    return spec


def spec_text(spec: dict[str, Any]) -> str:
    """Canonical JSON text of a spec (sorted keys, indent 2, final newline)."""
    return json.dumps(spec, indent=2, sort_keys=True) + "\n"


def main() -> int:
    """Write the current spec to :data:`SPEC_FILE`."""
    SPEC_FILE.write_text(spec_text(current_spec()))
    print(SPEC_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
