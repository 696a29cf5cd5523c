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


def test_quickstart_prints_the_first_epoch_the_readme_shows(capsys):
    """The README quotes rho and the test accuracy after the first epoch (the 30-epoch run's first row)."""
    sys.path.insert(0, str(ROOT / "examples"))
    import quickstart

    quickstart.main(epochs=1)
    _, rho, _, accuracy = capsys.readouterr().out.strip().splitlines()[-1].split()
    readme = (ROOT / "README.md").read_text()
    assert f"0.05 to {rho} after the first epoch" in readme and f"test accuracy from {accuracy}" in readme
