"""The README's plain-PyTorch example runs and moves rho."""

import sys

from lets_testing import ROOT


def test_quickstart_runs_and_learns_rho(capsys):
    sys.path.insert(0, str(ROOT / "examples"))
    import quickstart

    quickstart.main(epochs=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("epoch  rho") and len(lines) == 3
    final_rho, accuracy = float(lines[-1].split()[1]), float(lines[-1].split()[3])
    assert final_rho != 0.05 and 0.5 < accuracy <= 1.0
