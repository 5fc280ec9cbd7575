"""`lifelong report` of `lifelong lm train` folders: the Language models section (final loss of
each corpus, forgetting, mean; mean ± sample std over the seeds of one configuration), each
folder's loss matrix, the figure of each corpus's held-out loss over the tokens, hand-made folders
with values checked by hand; odd files left out with the reason; and a folder a tiny run wrote."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import yaml

from lifelong.cli import main
from lifelong.runs import sections
from lifelong.runs.outputs import load_outputs


def lm_doc(seed: int, L: list[list[float]], stream=("A", "B"), corpora=None, curve=None) -> dict:
    """A metrics.json as `lifelong lm train` writes it (src/lifelong/lm/run.py)."""
    corpora = list(corpora or stream)
    return {"schema_version": 1, "kind": "lm", "complete": True, "stream": list(stream), "corpora": corpora,
            "seed": seed, "data": "/nowhere", "tokenizer": {"kind": "byte", "vocab_size": 257},
            "loss_matrix": L, "init_losses": [5.0] * len(corpora), "metrics": None,
            "curve": curve if curve is not None else
            [{"step": 10, "tokens": 100, "task": 0, "losses": L[0]}, {"step": 20, "tokens": 200, "task": len(stream) - 1,
                                                                     "losses": L[-1]}],
            "tokens": 200, "train_seconds": 1.0, "tokens_per_second": 200.0, "wall_seconds": 1.0, "parameters": 10}


def write_lm(root: Path, name: str, doc: dict, **config) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(doc))
    settings = {"data": f"/data-{doc['seed']}", "stream": doc["stream"], "replay": 0.0, "seed": doc["seed"], **config}
    (folder / "config.yaml").write_text(yaml.safe_dump(settings))
    return folder


def _lm(found) -> sections.Section:
    return next(s for s in sections.sections(found) if s.heading == "Language models")


def _rows(table: sections.Table) -> list[dict[str, str]]:
    return [dict(zip(table.columns, row)) for row in table.rows]


def test_lm_rows_are_mean_and_sample_std_over_the_seeds_of_one_configuration(tmp_path: Path) -> None:
    # seed 0: A rises 2.0 -> 2.6 (forgetting 0.6), mean after B (2.6 + 1.0) / 2 = 1.8
    # seed 1: A rises 2.2 -> 3.0 (0.8), mean (3.0 + 1.4) / 2 = 2.2
    write_lm(tmp_path, "s0", lm_doc(0, [[2.0, 3.0], [2.6, 1.0]]))
    write_lm(tmp_path, "s1", lm_doc(1, [[2.2, 3.1], [3.0, 1.4]]))
    write_lm(tmp_path, "r", lm_doc(0, [[2.0, 3.0], [2.1, 1.2]]), replay=0.25)
    write_lm(tmp_path, "j", lm_doc(0, [[2.3, 1.1]], stream=["A+B"], corpora=["A", "B"]))
    found = load_outputs(sorted(tmp_path.iterdir()))
    assert len(found.lm) == 4 and not found.skipped
    section = _lm(found)
    rows = {r["configuration"]: r for r in _rows(section.tables[0])}
    # the label shows the settings in which the configurations differ: the replay (the stream is the base)
    plain, replay, joint = rows["A → B [replay=0]"], rows["A → B [replay=0.25]"], rows["A+B [replay=0]"]
    assert plain["seeds"] == "0, 1"
    assert plain["final loss A"] == f"2.800 ± {statistics.stdev([2.6, 3.0]):.3f}" == "2.800 ± 0.283"
    assert plain["final loss B"] == "1.200 ± 0.283"
    assert plain["forgetting"] == f"0.700 ± {statistics.stdev([0.6, 0.8]):.3f}" == "0.700 ± 0.141"
    assert plain["final mean loss"] == "2.000 ± 0.283"  # (1.8, 2.2)
    assert replay["forgetting"] == "0.100" and replay["seeds"] == "0"
    assert joint["forgetting"] == "–" and joint["final loss A"] == "2.300" and joint["final mean loss"] == "1.700"
    matrices = _rows(section.tables[1])
    j_rows = [r for r in matrices if r["folder"].endswith("/j")]
    assert [(r["after"], r["A"], r["B"]) for r in j_rows] == [("init", "5.000", "5.000"), ("A+B", "2.300", "1.100")]


def test_the_loss_figure_is_the_mean_over_seeds_at_each_token_count(tmp_path: Path) -> None:
    write_lm(tmp_path, "s0", lm_doc(0, [[2.0, 3.0], [2.6, 1.0]]))
    write_lm(tmp_path, "s1", lm_doc(1, [[2.2, 3.1], [3.0, 1.4]]))
    other = [{"step": 5, "tokens": 50, "task": 0, "losses": [9.0, 9.0]}]  # other tokens: left out of the mean
    write_lm(tmp_path, "s2", lm_doc(2, [[2.0, 3.0], [2.0, 1.0]], curve=other))
    section = _lm(load_outputs(sorted(tmp_path.iterdir())))
    assert [f.stem for f in section.figures] == ["lm_loss_A", "lm_loss_B"]
    curve = section.figures[0].data["A → B"]
    assert curve["x"] == [0, 100, 200] and curve["seeds"] == 2
    assert curve["mean"] == pytest.approx([5.0, 2.1, 2.8]) and curve["std"][2] == pytest.approx(statistics.stdev([2.6, 3.0]))
    assert section.tables[0].rows[0][2] == f"2.533 ± {statistics.stdev([2.6, 3.0, 2.0]):.3f}" == "2.533 ± 0.503"  # all 3


@pytest.mark.parametrize("key,value,message", [
    ("loss_matrix", [[2.0]], "not a list of 2 losses"),
    ("loss_matrix", [], "not a list of 1 to 2 rows"),
    ("loss_matrix", [[2.0, "x"]], "loss_matrix[0][1]"),
    ("stream", "A,B", "not a list of names"),
    ("curve", [{"tokens": -1, "task": 0, "losses": [1.0, 1.0]}], "curve[0].tokens"),
    ("curve", [{"tokens": 1, "task": 5, "losses": [1.0, 1.0]}], "curve[0].task"),
    ("init_losses", [1.0], "init_losses"),
    ("complete", False, "did not finish"),
])
def test_an_odd_lm_folder_is_left_out_with_the_reason(tmp_path: Path, key: str, value, message: str) -> None:
    write_lm(tmp_path, "good", lm_doc(0, [[2.0, 3.0], [2.6, 1.0]]))
    odd = write_lm(tmp_path, "odd", {**lm_doc(1, [[2.0, 3.0], [2.6, 1.0]]), key: value})
    found = load_outputs(sorted(tmp_path.iterdir()))
    assert len(found.lm) == 1 and found.skipped[0][0] == odd and message in found.skipped[0][1]
    assert [s.heading for s in sections.sections(found)] == ["Language models", "Left out"]


def test_an_odd_lm_folder_alone_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    odd = write_lm(tmp_path, "odd", {**lm_doc(0, [[2.0, 3.0]]), "loss_matrix": "high"})
    assert main(["report", str(odd), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "loss_matrix" in err and "Traceback" not in err


def test_the_report_of_an_lm_run_a_tiny_training_wrote(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from lifelong.lm.run import prepare, train_run
    from lifelong.lm.train import LMConfig

    for name, word in (("a", "cat sat on the mat. "), ("b", "def f(x): return x\n")):
        (tmp_path / name).mkdir()
        for i in range(10):
            (tmp_path / name / f"{i}.txt").write_text(word * 30)
    prepare([f"A={tmp_path / 'a'}", f"B={tmp_path / 'b'}"], tmp_path / "data")
    cfg = LMConfig(stream=["A", "B"], steps=[4], batch_size=2, block_size=8, n_layer=1, n_embd=16,
                   eval_tokens=32, eval_every=2, warmup=1)
    doc = train_run(cfg, tmp_path / "data", tmp_path / "runs" / "lm")
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "Language models" in out and "report of 1 lm run in" in out
    L = doc["loss_matrix"]
    assert f"{L[1][0]:.3f}" in out and f"{L[1][0] - L[0][0]:.3f}" in out  # A after B; its forgetting
    assert (tmp_path / "rep" / "lm_loss_A.png").is_file() and (tmp_path / "rep" / "lm_loss_B.png").is_file()
    assert "Held-out loss of A" in (tmp_path / "rep" / "report.html").read_text()


@pytest.mark.parametrize("key", ["stream", "corpora", "loss_matrix", "init_losses", "curve", "seed", "schema_version"])
@pytest.mark.parametrize("value", ["x", None, -1, 1.5, [], {}, [None], [[None, None]], [{"tokens": 1}], float("nan")])
def test_whatever_an_lm_file_holds_its_section_is_made_or_it_is_left_out(tmp_path: Path, key: str, value) -> None:
    write_lm(tmp_path, "odd", {**lm_doc(0, [[2.0, 3.0], [2.6, 1.0]]), key: value})
    found = load_outputs([tmp_path / "odd"])
    assert len(found.lm) + len(found.skipped) == 1
    made = sections.sections(found)  # no exception
    if found.lm:
        sections.format_sections(made)


def test_the_lm_schema_is_the_one_lm_train_writes() -> None:
    from lifelong.lm.run import SCHEMA_VERSION
    from lifelong.runs.outputs import SUPPORTED_SCHEMAS

    assert SCHEMA_VERSION in SUPPORTED_SCHEMAS
