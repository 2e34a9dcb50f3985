"""The LNbits fixture reports why LNbits could not start (so CI fails with a reason)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lightning.lnbits_server import LnbitsServer, LnbitsUnavailable


def test_a_crashing_lnbits_is_reported_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f"#!/bin/sh\necho {tmp_path}\n")
    lnbits = venv / "bin" / "lnbits"
    lnbits.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named bolt11' >&2\nexit 3\n")
    python.chmod(0o755)
    lnbits.chmod(0o755)
    monkeypatch.setenv("KOTANI_LNBITS_VENV", str(venv))
    server = LnbitsServer(tmp_path / "work")
    server.workdir.mkdir()
    with pytest.raises(LnbitsUnavailable) as caught:
        server.start()
    assert "exited with 3" in str(caught.value)
    assert "No module named bolt11" in str(caught.value)
    assert server.process is None
