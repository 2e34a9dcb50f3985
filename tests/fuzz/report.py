"""Reading schemathesis's NDJSON report: cases run, failures, and which of them are deliberate.

The deliberate ones (README "API", and the schema's own descriptions) are answers the service
gives on purpose where JSON Schema cannot say what the code does:

- ``amount_msat`` written as an integral float (``404.0``): JSON Schema's ``integer`` admits it,
  the service refuses it (422): an amount is never read from a float spelling.
- ``reference_id`` and ``referenceId`` both sent and equal: accepted (it is one reference), but
  JSON Schema cannot compare two values, so the document asks for one of them; both and
  different is refused (422).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AMOUNT_ROUTES = ("POST /invoices/{token}", "POST /refund-configs")


@dataclass
class Failure:
    operation: str
    check: str
    code: str
    title: str
    body: Any
    status: int | None

    def deliberate(self) -> str | None:
        """Why this failure is one the service gives on purpose, or None."""
        body = self.body if isinstance(self.body, dict) else {}
        amount = body.get("amount_msat")
        if self.check == "positive_data_acceptance" and self.operation in AMOUNT_ROUTES:
            if isinstance(amount, float) and amount.is_integer():
                return "amount_msat as an integral float"
        if self.check == "negative_data_rejection" and self.operation in AMOUNT_ROUTES:
            snake, camel = body.get("reference_id"), body.get("referenceId")
            if isinstance(snake, str) and snake == camel:
                return "reference_id and referenceId both, equal"
        return None


@dataclass
class Report:
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    operations: set[str] = field(default_factory=set)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def unexpected(self) -> list[Failure]:
        return [f for f in self.failures if f.deliberate() is None]


def _status(interaction: dict[str, Any]) -> int | None:
    response = interaction.get("response") or {}
    status = response.get("status_code")
    return status if isinstance(status, int) else None


def read_report(directory: Path) -> Report:
    report = Report()
    for path in sorted(directory.glob("*.ndjson")):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if not finished:
                continue
            recorder = finished["recorder"]
            cases = recorder.get("cases", {})
            report.cases += len(cases)
            if cases:
                report.operations.add(recorder["label"])
            statuses: dict[str, int | None] = {}
            for case_id, interaction in recorder.get("interactions", {}).items():
                statuses[case_id] = _status(interaction)
                if statuses[case_id] is not None:
                    report.statuses[statuses[case_id]] += 1  # type: ignore[index]
            for case_id, checks in recorder.get("checks", {}).items():
                value = cases.get(case_id, {}).get("value", {})
                for check in checks:
                    if check.get("status") != "failure":
                        continue
                    info = (check.get("failure_info") or {}).get("failure", {})
                    report.failures.append(
                        Failure(
                            operation=str(info.get("operation") or recorder["label"]),
                            check=check["name"],
                            code=str(info.get("code", "")),
                            title=str(info.get("title", "")),
                            body=value.get("body"),
                            status=statuses.get(case_id),
                        )
                    )
    return report
