"""``safe-rlhf-summary``: prints the summary and writes its files; a bad path is one line on
stderr and exit code 2."""

from __future__ import annotations

from safe_rlhf_lightning.cli.summary import main
from tests.evaluation.test_sweep_summary import NU_1, SAFE_RLHF, SFT, fixed, write_run

OUTPUTS = ("summary.md", "summary.csv", "summary.json", "tradeoff.png")


def test_summary_of_a_sweep_is_written_into_it(tmp_path, capsys):
    sft = write_run(tmp_path / "sft", SFT, stage="sft")
    write_run(tmp_path / "sweep" / "0", SAFE_RLHF)
    write_run(tmp_path / "sweep" / "1", NU_1, **fixed(1.0))
    code = main([str(tmp_path / "sweep"), "--reference", str(sft)])
    out = capsys.readouterr().out
    assert code == 0
    assert "Reward shaping beats Safe RLHF (Safe RLHF) on both axes" in out
    assert f"written to {tmp_path / 'sweep'}/" in out
    for name in OUTPUTS:  # default output: the sweep folder itself
        assert (tmp_path / "sweep" / name).stat().st_size > 0
    assert out.startswith((tmp_path / "sweep" / "summary.md").read_text())


def test_run_folders_go_to_the_output_given(tmp_path, capsys):
    runs = [write_run(tmp_path / name, SAFE_RLHF, seed=seed) for name, seed in (("a", 1), ("b", 2))]
    code = main([*map(str, runs), "--output", str(tmp_path / "out")])
    assert code == 0
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == sorted(OUTPUTS)
    out = capsys.readouterr().out
    assert "| Safe RLHF seed=1 | Safe RLHF |" in out and "| Safe RLHF seed=2 |" in out


def test_bad_paths_exit_2_with_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err == f"safe-rlhf-summary: error: {tmp_path / 'missing'}: no such folder\n"
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--output", str(tmp_path / "out")]) == 2
    assert "empty: holds no run folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_summary_goes_to_wandb_as_a_table_in_the_sweeps_group(tmp_path, monkeypatch, capsys):
    import json

    import wandb

    # No W&B key, as on a fresh machine: the summary's run is offline, wandb's folders in tmp_path.
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    seen = {}
    original_init = wandb.init

    def init(**options):  # wandb's own run, kept for the checks below
        seen["run"] = original_init(**options)
        return seen["run"]

    monkeypatch.setattr(wandb, "init", init)
    write_run(tmp_path / "sweep" / "0", SAFE_RLHF)
    write_run(tmp_path / "sweep" / "1", NU_1, **fixed(1.0))
    assert main([str(tmp_path / "sweep"), "--wandb-group", "demo-nu"]) == 0
    assert "written to" in capsys.readouterr().out

    run = seen["run"]
    assert (run.name, run.group, run.job_type) == ("demo-nu-summary", "demo-nu", "summary")
    (folder,) = (tmp_path / "sweep" / "wandb").glob("offline-run-*")
    (table_file,) = folder.glob("files/media/table/sweep_summary_*.table.json")
    table = json.loads(table_file.read_text())
    rows = json.loads((tmp_path / "sweep" / "summary.json").read_text())["rows"]
    assert len(table["data"]) == len(rows) == 2
    assert set(table["columns"]) == {key for row in rows for key in row}
