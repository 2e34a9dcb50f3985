"""Regenerate ``openapi_subset.json``: the Kotani paths and schemas these tests build mocks from.

    python tests/kotani/extract_openapi.py ../shared/kotani/openapi-2026-04-with-crypto-bridge.json

Kept in the repository so the tests do not depend on ``../shared`` being present.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

PATHS = [
    "/api/v3/offramp/submit-refund-invoice/{referenceId}",
    "/api/v3/offramp/retry-refund/{referenceId}",
    "/api/v3/offramp/refund-status/{referenceId}",
    "/api/v3/offramp/retry-refunds-multiple",
    "/api/v3/rate/crypto-bridge",
    "/api/v3/deposit/crypto-bridge",
    "/api/v3/deposit/crypto-bridge/status/{kotani_reference_id}",
    "/api/v3/deposit/crypto-bridge/{kotani_reference_id}/refund-config",
]
EXTRA_SCHEMAS = ["OfframpRefundConfigDto"]


def extract(spec: dict[str, object]) -> dict[str, object]:
    paths = spec["paths"]
    schemas = spec["components"]["schemas"]  # type: ignore[index]
    out_paths = {path: paths[path] for path in PATHS}  # type: ignore[index]
    wanted = set(EXTRA_SCHEMAS)
    todo = list(re.findall(r"#/components/schemas/(\w+)", json.dumps(out_paths))) + EXTRA_SCHEMAS
    while todo:
        name = todo.pop()
        wanted.add(name)
        for ref in re.findall(r"#/components/schemas/(\w+)", json.dumps(schemas[name])):
            if ref not in wanted:
                todo.append(ref)
    return {
        "source": "Kotani Pay v3 OpenAPI (openapi-2026-04-with-crypto-bridge.json), subset",
        "servers": spec["servers"],
        "components": {
            "securitySchemes": spec["components"]["securitySchemes"],  # type: ignore[index]
            "schemas": {name: schemas[name] for name in sorted(wanted)},
        },
        "paths": out_paths,
    }


if __name__ == "__main__":
    source = json.loads(Path(sys.argv[1]).read_text())
    target = Path(__file__).with_name("openapi_subset.json")
    target.write_text(json.dumps(extract(source), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {target}")
