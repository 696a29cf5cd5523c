"""The rho comparison figure: runs of one start share a colour, each seed its own line style."""

import matplotlib

matplotlib.use("Agg")

from lets_hf import plots  # noqa: E402


def test_runs_of_one_start_share_a_colour_and_differ_by_seed(tmp_path, monkeypatch):
    drawn = []
    import matplotlib.axes

    original = matplotlib.axes.Axes.plot

    def spy(self, *args, **kwargs):
        drawn.append((kwargs.get("label"), kwargs.get("color"), kwargs.get("linestyle")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    runs = [(f"rho0={rho}, seed {seed}", [0, 1], [rho, rho]) for rho in (0.01, 0.05) for seed in (0, 1)]
    runs += [(f"rho_0=0.1 seed {seed}", [0, 1], [0.1, 0.1]) for seed in (0, 1)]  # the digits benchmark's labels
    path = plots.plot_radius_comparison({"rule": runs}, str(tmp_path / "rho.png"))
    style = {label: (colour, line) for label, colour, line in drawn}
    assert style["rho0=0.01, seed 0"][0] == style["rho0=0.01, seed 1"][0] != style["rho0=0.05, seed 0"][0]
    assert style["rho0=0.01, seed 0"][1] != style["rho0=0.01, seed 1"][1] == style["rho0=0.05, seed 1"][1]
    assert style["rho_0=0.1 seed 0"][0] == style["rho_0=0.1 seed 1"][0] != style["rho0=0.05, seed 1"][0]
    assert (tmp_path / "rho.png").stat().st_size > 0 and path.endswith("rho.png")
