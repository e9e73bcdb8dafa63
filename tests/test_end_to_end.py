"""The whole pipeline through the command line, as `make all` drives it, at a tiny scale."""

from tests.conftest import demo_config, run_comp, write_config_file


def test_cli_from_demo_data_to_a_checked_submission(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = demo_config(tmp_path, **{"train.steps": 6, "train.eval_every": 3})
    config.submit.dir = str(tmp_path / "submissions")
    path = write_config_file(tmp_path / "config.yaml", config)

    def comp(*args: str):
        result = run_comp(*args, "--config", path)
        assert result.exit_code == 0, f"comp {' '.join(args)}:\n{result.output}"
        return result.output

    comp("demo-data")
    comp("backbone", "tiny", str(tmp_path / "tiny-bert"), "--vocab-size", "800", "--hidden", "32")
    assert "2 folds" in comp("make-folds")
    assert "training results" in comp("train", "--fold", "all")
    assert "OOF macro-F1" in comp("ensemble")
    comp("report")
    comp("submit", "--combined")
    combined = tmp_path / "submissions" / "demo_combined.csv"
    comp("submit", "--check", str(combined))
    scores = comp("score", str(combined))
    assert "Public" in scores and "Private" in scores
    summary = comp("summary")
    assert "OOF macro-F1" in summary and "demo_combined.csv" in summary
