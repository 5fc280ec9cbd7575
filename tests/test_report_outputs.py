"""`lifelong report` of the folders that `lifelong unlearn`, `edit lines` and `merge` write: their
sections (Unlearning, Edits (LiNeS), Merges) checked against hand-computed values on hand-made
folders, and end to end on folders the commands wrote from tiny runs; odd metrics.json files left
out with the reason (or one line when nothing else is there); a folder given alone; runs and
outputs together; the RMM section (accuracy over the basis size) on hand-made folders and on a
tiny lora run's."""
from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifelong.runs import finished as runs
from lifelong.runs import outputs as out_files
from lifelong.runs import sections
from lifelong.runs.outputs import load_outputs
from tests.conftest import run_cli, tiny_run_flags
from tests.hostile import _DELETE, _set, apply_changes, output_entries  # change a document at dotted paths
from tests.hostile import values as hostile_values
from tests.output_docs import output_doc, rmm_doc, trained_on, unlearn_doc, weights_doc, write_output
from tests.test_report import ER, make_run

SD = statistics.stdev  # the sample standard deviation, written independently of lifelong.metrics.mean_std


def _section(found: out_files.Outputs, heading: str) -> sections.Section:
    return next(s for s in sections.sections(found) if s.heading == heading)


def _rows(table: sections.Table) -> list[dict[str, str]]:
    return [dict(zip(table.columns, row)) for row in table.rows]


# --- Unlearning -------------------------------------------------------------------------------

def test_unlearning_rows_are_mean_and_sample_std_over_the_seeds_of_one_unlearning(tmp_path):
    values = [(10.0, 90.0, 0.2, 1.0), (20.0, 92.0, 0.4, 2.0), (30.0, 94.0, 0.6, 3.0)]
    for seed, (forget, retain, mia, wall) in enumerate(values):
        write_output(tmp_path, f"ssd-{seed}", unlearn_doc(seed, forget, retain, 80.0, mia, wall))
    retrain = make_run(tmp_path / "runs", "retrain", "er", 0, ER[0], wall=10.0)
    doc = json.loads((retrain / "metrics.json").read_text())
    (retrain / "metrics.json").write_text(json.dumps({**doc, "train_seconds": 8.0}))
    write_output(tmp_path, "ft", unlearn_doc(0, 5.0, 97.0, 88.0, 0.1, 2.0, method="finetune", params={"epochs": 5},
                                             compare_to=str(retrain),
                                             agreement={"test": {"agreement": 95.0, "kl": 0.01}}))
    found = load_outputs(sorted(p for p in tmp_path.iterdir() if p.name != "runs"))
    ft, ssd = _rows(_section(found, "Unlearning").tables[0])  # in the order found: ft, ssd-0, ...
    assert ssd["method"] == "ssd" and ft["method"] == "finetune"
    assert ssd["seeds"] == "0, 1, 2" and ssd["method"] == "ssd" and ssd["forget"] == "classes:3"
    assert ssd["source run"] == "3 runs of er on split-mnist"
    assert ssd["parameters"] == "alpha=2, lam=1, batch_size=64, label_free=false"
    assert ssd["forget acc. (%)"] == f"20.00 ± {SD([10, 20, 30]):.2f}" == "20.00 ± 10.00"  # n - 1: not 8.16
    assert ssd["retain acc. (%)"] == "92.00 ± 2.00" and ssd["test acc. (%)"] == "80.00 ± 0.00"
    assert ssd["MIA"] == "0.400 ± 0.200" and ssd["time (s)"] == "2.000 ± 1.000"
    assert ssd["agree. test (%)"] == ssd["time / retrain"] == "–"  # no retrained run to compare with
    assert ft["source run"] == "/nowhere/run-0" and ft["seeds"] == "0" and ft["parameters"] == "epochs=5"
    assert (ft["agree. test (%)"], ft["KL test"]) == ("95.00", "0.0100")
    assert ft["time / retrain"] == "0.250"  # 2 s against the retrain's training loop, 8 s (not its wall time, 10 s)


def test_seeds_group_by_the_source_runs_configuration(tmp_path):
    sources = [make_run(tmp_path / "runs", f"er-{s}", "er", s, ER[s]) for s in (0, 1)]
    sources.append(make_run(tmp_path / "runs", "er-lr", "er", 0, ER[0], lr=0.03))
    folders = [write_output(tmp_path / "out", f"u{i}", unlearn_doc((0, 1, 0)[i], source_run=str(run)))
               for i, run in enumerate(sources)]
    rows = _rows(_section(load_outputs(folders), "Unlearning").tables[0])
    assert [r["seeds"] for r in rows] == ["0, 1", "0"]  # lr 0.03 is another configuration
    assert rows[1]["source run"] == str(sources[2])


def test_recovery_and_unknown_measures_are_columns_and_other_keys_are_named(tmp_path):
    doc = unlearn_doc(0, recovery={"clean_accuracy": 80.0, "recovery": 0.5, "note": "text"}, zrf=0.93,
                      zrf_detail={"forget": 0.25, "name": "x"}, rmm=[{"basis": 1}], mia=float("nan"))
    table = _section(load_outputs([write_output(tmp_path, "u", doc)]), "Unlearning").tables[0]
    row = _rows(table)[0]
    assert (row["recovery clean_accuracy"], row["recovery recovery"]) == ("80.000", "0.500")
    assert (row["zrf"], row["zrf_detail.forget"]) == ("0.93", "0.25")
    assert "MIA" not in row  # NaN: missing, and no folder has one
    assert "not shown: rmm." in table.note


# --- Edits (LiNeS) ----------------------------------------------------------------------------

def _edits(tmp_path: Path) -> out_files.Outputs:
    a, b = trained_on(tmp_path, "A", "1"), trained_on(tmp_path, "B", "2")
    made = [  # (α, β, seed, class-IL accuracy of tasks 1, 2, 3), written in no particular order
        (0.5, 0.5, 1, [70.0, 60.0, 0.0]), (0.2, 0.8, 0, [80.0, 20.0, 0.0]), (0.5, 0.5, 0, [60.0, 50.0, 0.0]),
        (0.2, 0.8, 1, [90.0, 30.0, 0.0]), (0.5, 0.0, 0, [75.0, 40.0, 0.0]),
    ]
    folders = [write_output(tmp_path / "out", f"e{i}", weights_doc(
        "edit", seed, acc, {"alpha": alpha, "beta": beta, "num_layers": 2}, source_runs=[str(b)],
        base=str(a / "model.pt"))) for i, (alpha, beta, seed, acc) in enumerate(made)]
    return load_outputs(folders)


def test_edits_show_control_and_target_accuracy_over_alpha(tmp_path):
    section = _section(_edits(tmp_path), "Edits (LiNeS)")
    rows = _rows(section.tables[0])
    assert [(r["edit"], r["α"], r["seeds"]) for r in rows] == [
        ("LiNeS (β = 1 − α)", "0.2", "0, 1"), ("LiNeS (β = 1 − α)", "0.5", "0, 1"),
        ("plain interpolation (β = 0)", "0.5", "0")]
    d = f"{SD([80, 90]):.2f}"  # 7.07
    # control: task 1 (the base trained on it), target: task 2 (the fine-tuned run's)
    assert (rows[0]["control (%)"], rows[0]["target (%)"], rows[0]["β"]) == (f"85.00 ± {d}", f"25.00 ± {d}",
                                                                           "0.80 ± 0.00")
    assert (rows[1]["control (%)"], rows[1]["target (%)"]) == (f"65.00 ± {d}", f"55.00 ± {d}")
    assert (rows[2]["control (%)"], rows[2]["target (%)"], rows[2]["t3"]) == ("75.00", "40.00", "0.00")
    assert rows[0]["t1"] == rows[0]["control (%)"] and rows[0]["t2"] == rows[0]["target (%)"]


def test_the_tradeoff_figure_has_one_curve_per_kind_of_edit(tmp_path):
    figs = _section(_edits(tmp_path), "Edits (LiNeS)").figures
    assert [f.stem for f in figs] == ["edit_tradeoff_class_il", "edit_tradeoff_task_il"]
    curves = figs[0].data
    lines = curves["LiNeS (β = 1 − α)"]
    assert lines["alpha"] == [0.2, 0.5] and lines["seeds"] == 2
    assert lines["control"] == pytest.approx([85.0, 65.0]) and lines["target"] == pytest.approx([25.0, 55.0])
    assert lines["control_std"] == pytest.approx([SD([80, 90]), SD([60, 70])])
    assert curves["plain interpolation (β = 0)"]["control"] == [75.0]


def test_an_edit_whose_fine_tuned_tasks_are_unknown_has_no_control_or_target(tmp_path):
    a = trained_on(tmp_path, "A", "1")
    folder = write_output(tmp_path / "out", "e", weights_doc("edit", 0, [80.0, 20.0, 5.0], {"alpha": 0.3, "beta": 0.7},
                                                             source_runs=[str(tmp_path / "gone")],
                                                             base=str(a / "model.pt")))
    section = _section(load_outputs([folder]), "Edits (LiNeS)")
    row = _rows(section.tables[0])[0]
    assert (row["control (%)"], row["target (%)"], row["t3"]) == ("–", "–", "5.00")
    assert section.figures == [] and "the tasks of the fine-tuned run are unknown" in section.tables[0].note


def test_control_is_every_other_task_when_the_base_trained_on_all(tmp_path):
    base, b = trained_on(tmp_path, "A", None), trained_on(tmp_path, "B", "2")
    doc = weights_doc("edit", 0, [80.0, 20.0, 50.0], {"alpha": 0.3, "beta": 0.7}, source_runs=[str(b)],
                      base=str(base / "model.pt"))
    row = _rows(_section(load_outputs([write_output(tmp_path / "out", "e", doc)]), "Edits (LiNeS)").tables[0])[0]
    assert (row["control (%)"], row["target (%)"]) == ("65.00", "20.00")  # tasks 1 and 3; task 2


# --- Merges -----------------------------------------------------------------------------------

def _merges(tmp_path: Path, lams=(0.5, 1.0)) -> out_files.Outputs:
    a, b, c = trained_on(tmp_path, "A", "1"), trained_on(tmp_path, "B", "2"), trained_on(tmp_path, "C", "3")
    folders = []
    for lam in lams:
        for seed in (0, 1):
            acc = [50.0, 60.0 + 10 * seed + 10 * lam, 40.0 + 10 * lam]  # merged tasks 2 and 3
            folders.append(write_output(tmp_path / "out", f"ta-{lam}-{seed}", weights_doc(
                "merge", seed, acc, {"lines": False, "lam": lam}, method="task_arithmetic",
                source_runs=[str(b), str(c)], base=str(a / "model.pt"), reconstruction_error=0.125,
                per_basis=[[1, 2]])))
    folders.append(write_output(tmp_path / "out", "ties", weights_doc(
        "merge", 0, [10.0, 20.0, 30.0], {"k": 20.0, "lines": False, "lam": 1.0}, method="ties",
        source_runs=[str(b), str(c)], base=str(a / "model.pt"))))
    return load_outputs(folders)


def test_merges_have_one_row_per_folder_with_each_tasks_accuracy(tmp_path):
    table = _section(_merges(tmp_path), "Merges").tables[0]
    rows = _rows(table)
    assert [(r["merge"], r["parameters"], r["seed"]) for r in rows] == [
        ("task arithmetic", "lam=0.5", "0"), ("task arithmetic", "lam=0.5", "1"), ("task arithmetic", "lam=1", "0"),
        ("task arithmetic", "lam=1", "1"), ("ties (k 20)", "lam=1", "0")]
    first = rows[0]  # tasks 50, 65, 45
    assert (first["merged tasks"], first["models"], first["merged tasks (%)"], first["all tasks (%)"]) == (
        "2,3", "2", "55.00", f"{(50 + 65 + 45) / 3:.2f}")
    assert (first["t1"], first["t2"], first["t3"]) == ("50.00", "65.00", "45.00")
    assert first["reconstruction_error"] == "0.125" and "not shown: per_basis." in table.note


def test_merges_at_several_scales_get_a_figure_of_the_merged_tasks_mean(tmp_path):
    figs = _section(_merges(tmp_path), "Merges").figures
    assert [f.stem for f in figs] == ["merge_scale_class_il", "merge_scale_task_il"]
    curve = figs[0].data["task arithmetic, 2 models"]  # TIES has one scale: no curve
    assert list(figs[0].data) == ["task arithmetic, 2 models"]
    # λ 0.5: seeds' merged means (65 + 45) / 2 = 55, (75 + 45) / 2 = 60; λ 1: 60, 65
    assert curve["x"] == [0.5, 1.0] and curve["seeds"] == 2
    assert curve["mean"] == pytest.approx([57.5, 62.5]) and curve["std"] == pytest.approx([SD([55, 60])] * 2)


def test_a_lines_merges_scale_is_its_beta(tmp_path):
    a, b, c = trained_on(tmp_path, "A", "1"), trained_on(tmp_path, "B", "2"), trained_on(tmp_path, "C", "3")
    folders = [write_output(tmp_path / "out", f"l{beta}", weights_doc(
        "merge", 0, [50.0, 40.0 + 100 * beta, 60.0], {"lines": True, "alpha": 0.5, "beta": beta, "lam": 9.0},
        method="ties", source_runs=[str(b), str(c)], base=str(a / "model.pt"))) for beta in (0.2, 0.6)]
    section = _section(load_outputs(folders), "Merges")
    curve = section.figures[0].data["ties + LiNeS, 2 models"]
    assert curve["x"] == [0.2, 0.6] and curve["mean"] == pytest.approx([60.0, 80.0])  # (60 + 60) / 2, (100 + 60) / 2


def test_merges_at_one_scale_have_no_figure(tmp_path):
    assert _section(_merges(tmp_path, lams=(0.5,)), "Merges").figures == []


# --- Merges: RMM ------------------------------------------------------------------------------

# Two seeds of one configuration on 3 tasks, adapters on tasks 1 and 2 (task 3 scored by the base):
# per k = 1, 2 (class-IL accuracies, ΔW error, factor error, numbers stored); task-IL is each + 5.
RMM_SEEDS = [
    dict(per_basis=[([40, 60, 10], 0.5, 0.4, 24), ([80, 90, 10], 0.0, 0.0, 48)], kept=[82, 92, 10],
         delta=[50, 70, 10], factors=[20, 30, 10]),
    dict(per_basis=[([50, 70, 20], 0.7, 0.6, 24), ([84, 94, 20], 0.0, 0.0, 48)], kept=[86, 94, 20],
         delta=[60, 70, 20], factors=[30, 30, 20]),
]


def _rmm_folders(tmp_path: Path) -> list[Path]:
    folders = [write_output(tmp_path / "out", f"rmm-{seed}", rmm_doc(seed, **values))
               for seed, values in enumerate(RMM_SEEDS)]
    folders.append(write_output(tmp_path / "out", "rmm-layer", rmm_doc(
        0, [([30, 30, 0], 0.9, 0.8, 10), ([80, 90, 0], 0.0, 0.0, 20)], [82, 92, 0], [50, 70, 0], [20, 30, 0],
        per="layer")))
    return folders


def test_rmm_rows_are_the_mean_over_the_adapters_tasks_and_mean_std_over_seeds(tmp_path):
    section = _section(load_outputs(_rmm_folders(tmp_path)), "Merges: RMM")
    rows = _rows(section.tables[0])
    position = [r for r in rows if r["configuration"] == "split-mnist, a basis per position, 2 adapters"]
    assert [r["model"] for r in position] == ["every adapter kept", "plain merge of ΔW, λ = 0.5",
                                              "plain merge of A and B, λ = 0.5", "RMM, basis 1", "RMM, basis 2"]
    kept, delta, factors, k1, k2 = position
    assert all(r["seeds"] == "0, 1" for r in position)
    # seeds' means over tasks 1 and 2 (not task 3, which has no adapter): k = 1: 50, 60; k = 2: 85, 89
    assert (k1["class-IL (%)"], k1["task-IL (%)"]) == (f"55.00 ± {SD([50, 60]):.2f}", "60.00 ± 7.07")
    assert k2["class-IL (%)"] == f"87.00 ± {SD([85, 89]):.2f}" == "87.00 ± 2.83"
    assert kept["class-IL (%)"] == f"88.50 ± {SD([87, 90]):.2f}" == "88.50 ± 2.12"
    assert delta["class-IL (%)"] == "62.50 ± 3.54" and factors["class-IL (%)"] == "27.50 ± 3.54"  # 60, 65; 25, 30
    assert (k1["ΔW rel. error"], k1["factor rel. error"]) == (f"0.600 ± {SD([0.5, 0.7]):.3f}", "0.500 ± 0.141")
    assert (k1["stored numbers"], k1["stored share"], k2["stored share"]) == ("24 ± 0", "0.30 ± 0.00", "0.60 ± 0.00")
    assert (kept["stored numbers"], kept["stored share"]) == ("80 ± 0", "1.00 ± 0.00")  # adapter_numbers
    assert delta["ΔW rel. error"] == delta["stored share"] == "–"
    layer = [r for r in rows if r["configuration"] == "split-mnist, a basis per layer, 2 adapters"]
    assert [(r["seeds"], r["class-IL (%)"]) for r in layer][3:] == [("0", "30.00"), ("0", "85.00")]
    assert layer[3]["stored share"] == "0.12"  # 10 / 80 = 0.125, half to even
    assert len(section.tables[0].listing) == 2


def test_the_rmm_figure_has_a_curve_per_configuration_and_lines_for_kept_and_plain(tmp_path):
    figs = _section(load_outputs(_rmm_folders(tmp_path)), "Merges: RMM").figures
    assert [f.stem for f in figs] == ["rmm_basis_class_il", "rmm_basis_task_il"]
    curve = figs[0].data["split-mnist, a basis per position, 2 adapters"]
    assert curve["x"] == [1, 2] and curve["seeds"] == 2
    assert curve["mean"] == pytest.approx([55.0, 87.0]) and curve["std"] == pytest.approx([SD([50, 60]), SD([85, 89])])
    assert curve["kept"] == pytest.approx((88.5, SD([87, 90])))  # the kept adapters, not the plain merge
    assert curve["plain"] == pytest.approx((62.5, SD([60, 65])))  # ΔW, not the factors (27.5)
    assert figs[1].data["split-mnist, a basis per layer, 2 adapters"]["mean"] == pytest.approx([35.0, 90.0])


def test_rmm_seeds_lacking_a_basis_size_are_counted_and_left_out_of_its_point(tmp_path):
    short = rmm_doc(1, RMM_SEEDS[1]["per_basis"][:1], RMM_SEEDS[1]["kept"], RMM_SEEDS[1]["delta"],
                    RMM_SEEDS[1]["factors"], adapters=None, adapter_numbers=None)
    folders = [write_output(tmp_path, "a", rmm_doc(0, **RMM_SEEDS[0])), write_output(tmp_path, "b", short)]
    section = _section(load_outputs(folders), "Merges: RMM")
    rows = _rows(section.tables[0])
    assert len({r["configuration"] for r in rows}) == 2  # no adapters named: all 3 tasks, another configuration
    alone = [r for r in rows if r["seeds"] == "1"]
    assert alone[3]["class-IL (%)"] == f"{(50 + 70 + 20) / 3:.2f}" and alone[3]["stored share"] == "–"
    assert [r["model"] for r in alone] == ["every adapter kept", "plain merge of ΔW, λ = 0.5",
                                           "plain merge of A and B, λ = 0.5", "RMM, basis 1"]
    doc = rmm_doc(1, **RMM_SEEDS[1])
    doc["per_basis"] = doc["per_basis"][1:]
    both = load_outputs([folders[0], write_output(tmp_path, "c", doc)])
    row = _rows(_section(both, "Merges: RMM").tables[0])[3]
    assert (row["model"], row["class-IL (%)"]) == ("RMM, basis 1", "50.00 (1/2)")
    curve = _section(both, "Merges: RMM").figures[0].data["split-mnist, a basis per position, 2 adapters"]
    assert curve["x"] == [2] and curve["mean"] == pytest.approx([87.0])


def test_the_merges_section_leaves_rmms_lists_to_the_rmm_section(tmp_path):
    table = _section(load_outputs(_rmm_folders(tmp_path)), "Merges").tables[0]
    assert "plain.lam" not in table.columns and "adapter_numbers" not in table.columns
    assert "not shown" not in table.note and "every size in Merges: RMM" in table.note
    assert sorted(r["t1"] for r in _rows(table)) == ["30.00", "40.00", "50.00"]  # at the basis written (1)


RMM_ODD = [
    ("per_basis", _DELETE, r"lacks per_basis"),
    ("per_basis", [], r"per_basis is \[\], not a list of basis sizes"),
    ("per_basis.0", 3, r"per_basis\.0 is 3, not a mapping"),
    ("per_basis.0.basis", 0, r"per_basis\.0\.basis is 0, not a whole number from 1"),
    ("per_basis.0.basis", _DELETE, r"per_basis\.0 lacks basis"),
    ("per_basis.1.basis", 1, r"per_basis has basis sizes \[1, 1\], not increasing"),
    ("per_basis.1.accuracy.class_il", [50.0, 60.0], r"per_basis\.1\.accuracy\.class_il has 2 tasks but"),
    ("per_basis.1.accuracy", {"class_il": [1.0], "task_il": [1.0]}, r"per_basis\.1\.accuracy has 1 tasks, not 3"),
    ("per_basis.0.reconstruction_error", "small", r"reconstruction_error is 'small', not a mapping"),
    ("per_basis.0.reconstruction_error.delta_mean", -1.0, r"delta_mean is -1\.0, below 0"),
    ("per_basis.0.stored_numbers", "many", r"stored_numbers is 'many', not a number"),
    ("kept.class_il", [200.0, 1.0, 1.0], r"kept\.class_il task 1 is 200\.0, not within 0 to 100"),
    ("plain.delta", [1], r"plain\.delta is \[1\], not a mapping"),
    ("plain.lam", 2.0, r"plain\.lam is 2\.0, not within 0 to 1"),
    ("adapters.0.task", 4, r"adapters\.0\.task is 4, not a whole number from 1 to 3"),
    ("adapters", "all", r"adapters is 'all', not a list of mappings"),
]


@pytest.mark.parametrize("key, value, message", RMM_ODD, ids=[k for k, _, _ in RMM_ODD])
def test_an_odd_rmm_folder_is_left_out_with_the_reason(tmp_path, key, value, message):
    doc = rmm_doc(0, **RMM_SEEDS[0])
    _set(doc, key, value)
    found = load_outputs([write_output(tmp_path, "odd", doc), write_output(tmp_path, "ok", rmm_doc(1, **RMM_SEEDS[1]))])
    assert len(found.merge) == 1 and len(found.skipped) == 1 and re.search(message, found.skipped[0][1])
    assert _rows(_section(found, "Merges: RMM").tables[0])[3]["seeds"] == "1"


def test_an_odd_rmm_folder_through_the_command_is_named_not_a_traceback(tmp_path, capsys):
    doc = rmm_doc(0, **RMM_SEEDS[0])
    doc["per_basis"][1]["basis"] = "two"
    odd = write_output(tmp_path / "in", "odd", doc)
    write_output(tmp_path / "in", "ok", rmm_doc(1, **RMM_SEEDS[1]))
    code, out, err = run_cli(["report", str(tmp_path / "in"), "--out", str(tmp_path / "report")], capsys)
    assert (code, err) == (0, ""), err
    assert f"left out: {odd}" in out and "per_basis.1.basis is 'two'" in out and "RMM, basis 2" in out
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "<h2>Merges: RMM</h2>" in page and (tmp_path / "report" / "rmm_basis_task_il.png").is_file()


_rmm_keys = st.sampled_from(["per_basis", "per_basis.0", "per_basis.1.basis", "per_basis.0.accuracy",
                             "per_basis.0.accuracy.class_il", "per_basis.1.accuracy.task_il.0",
                             "per_basis.0.reconstruction_error", "per_basis.1.reconstruction_error.factors_mean",
                             "per_basis.0.stored_numbers", "kept", "kept.task_il", "plain", "plain.lam",
                             "plain.factors", "plain.delta.class_il.1", "adapters", "adapters.0", "adapters.1.task",
                             "adapter_numbers", "params", "params.per", "params.lam", "params.num_adapters"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.tuples(_rmm_keys, st.one_of(hostile_values, st.just(_DELETE))), max_size=3),
                min_size=1, max_size=3))
def test_whatever_an_rmm_file_holds_its_section_is_made_or_it_is_left_out(tmp_path_factory, changes):
    root = tmp_path_factory.mktemp("rmm")
    folders = []
    for i, change in enumerate(changes):
        doc = rmm_doc(i % 2, **RMM_SEEDS[i % 2])
        apply_changes(doc, change)
        folders.append(write_output(root, f"o{i}", doc))
    found = load_outputs(folders)
    assert len(found) + len(found.skipped) == len(folders)
    assert all(why and "\n" not in why for _, why in found.skipped)
    for section in sections.sections(found):
        for table in section.tables:
            assert all(len(row) == len(table.columns) for row in table.rows)
            sections.format_table(table)


# --- reading the folders ----------------------------------------------------------------------

def test_the_supported_schema_is_the_one_the_commands_write():
    from lifelong.edit.run import SCHEMA_VERSION as EDIT
    from lifelong.unlearn.run import SCHEMA_VERSION as UNLEARN

    assert out_files.SUPPORTED_SCHEMAS == (UNLEARN,) == (EDIT,)


def test_output_folders_are_found_given_or_below_and_refused_without_a_list(tmp_path):
    folder = write_output(tmp_path / "out", "u", unlearn_doc(0))
    run = make_run(tmp_path / "out", "run", "er", 0, ER[0])
    found: list[Path] = []
    assert runs.find_run_folders([tmp_path / "out", folder], found) == [run] and found == [folder]
    found = []
    assert runs.find_run_folders([folder], found) == [] and found == [folder]
    with pytest.raises(runs.UserError, match="holds what `lifelong unlearn` wrote, not a run"):
        runs.find_run_folders([folder])
    (tmp_path / "empty").mkdir()
    with pytest.raises(runs.UserError, match="holds no run folder"):
        runs.find_run_folders([tmp_path / "empty"], [])


NAN = float("nan")
# (kind, dotted key, new value, what the reason says)
ODD = [
    ("unlearn", "accuracy", _DELETE, r"lacks accuracy"),
    ("unlearn", "accuracy", [1, 2], r"accuracy is \[1, 2\], not a mapping"),
    ("unlearn", "accuracy.forget", "high", r"accuracy\.forget is 'high', not a number or null"),
    ("unlearn", "accuracy.retain", 101.0, r"accuracy\.retain is 101\.0, not within 0 to 100"),
    ("unlearn", "mia", 2.0, r"mia is 2\.0, not within 0 to 1"),
    ("unlearn", "agreement", {"test": 3}, r"agreement\.test is 3, not a mapping"),
    ("unlearn", "agreement", {"test": {"agreement": 50.0, "kl": -1.0}}, r"agreement\.test\.kl is -1\.0, below 0"),
    ("unlearn", "forget", 3, r"forget is 3, not a text"),
    ("unlearn", "source_run", _DELETE, r"lacks source_run"),
    ("unlearn", "seed", "zero", r"seed is 'zero', not a whole number"),
    ("unlearn", "seed", True, r"seed is True, not a whole number"),
    ("unlearn", "complete", False, r"complete is False, not true"),
    ("unlearn", "schema_version", 2, r"has schema version 2"),
    ("unlearn", "wall_seconds", "fast", r"wall_seconds is 'fast', not a number"),
    ("unlearn", "params", [1], r"params is \[1\], not a mapping"),
    ("edit", "accuracy.class_il", [], r"accuracy\.class_il is \[\], not a list of accuracies"),
    ("edit", "accuracy.task_il", [50.0], r"accuracy\.class_il has 3 tasks but accuracy\.task_il 1"),
    ("edit", "accuracy.class_il", [50.0, "x", 1.0], r"accuracy\.class_il task 2 is 'x', not a number"),
    ("edit", "params.alpha", _DELETE, r"lacks params\.alpha"),
    ("edit", "params.alpha", 1.5, r"params\.alpha is 1\.5, not within 0 to 1"),
    ("edit", "params.alpha", NAN, r"params\.alpha is not a number"),
    ("edit", "source_runs", "B", r"source_runs is 'B', not a list of run folders"),
    ("merge", "base", None, r"lacks base|base is None, not a text"),
    ("merge", "accuracy", _DELETE, r"lacks accuracy"),
    ("merge", "method", ["ties"], r"method is \['ties'\], not a text"),
]


def _odd_doc(kind: str, key: str, value) -> dict:
    doc = unlearn_doc(0) if kind == "unlearn" else weights_doc(kind, 0, [50.0, 60.0, 70.0], {"alpha": 0.5,
                                                                                             "beta": 0.5})
    _set(doc, key, value)
    return doc


@pytest.mark.parametrize("kind, key, value, message", ODD, ids=[f"{k}-{key}={'deleted' if v is _DELETE else repr(v)[:12]}" for k, key, v, _ in ODD])
def test_an_odd_output_is_left_out_with_the_reason_or_refused_alone(tmp_path, capsys, kind, key, value, message):
    root = tmp_path / "in"
    write_output(root, "ok", unlearn_doc(0))  # (not a run: its figures would take a second)
    odd = write_output(root, "odd", _odd_doc(kind, key, value))
    code, out, err = run_cli(["report", str(root), "--out", str(tmp_path / "report")], capsys)
    assert (code, err) == (0, ""), err
    line = out.strip().splitlines()[-1]
    assert "report of 1 unlearning in" in line and f"1 folder of lifelong unlearn/edit/merge/lm left out: {odd}" in line
    assert re.search(message, line), line
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "Folders left out" in page and str(odd) in page
    code, out, err = run_cli(["report", str(odd), "--out", str(tmp_path / "alone")], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and re.search(message, err), err
    assert err.startswith("lifelong: error: nothing to report: ") and not (tmp_path / "alone").exists()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(output_entries, min_size=1, max_size=3))
def test_whatever_an_output_file_holds_the_sections_are_made_or_it_is_left_out(tmp_path_factory, entries):
    """Reading and every section's tables and figure data (the plots are left out to stay fast):
    each folder is read or left out with a reason, never another exception."""
    root = tmp_path_factory.mktemp("outputs")
    folders = []
    for i, (_, kind, changes) in enumerate(entries):
        doc = output_doc(kind, seed=i)
        apply_changes(doc, changes)
        folders.append(write_output(root, f"o{i}", doc))
    found = load_outputs(folders)
    assert len(found) + len(found.skipped) == len(folders)
    assert all(why and "\n" not in why for _, why in found.skipped)
    for section in sections.sections(found):
        for table in section.tables:
            assert all(len(row) == len(table.columns) for row in table.rows)
            sections.format_table(table)


def test_a_metrics_file_nested_too_deeply_is_one_line_and_a_deep_parameter_is_cut(tmp_path, capsys):
    deep = write_output(tmp_path / "a", "u", unlearn_doc(0))
    (deep / "metrics.json").write_text('{"kind": "unlearn", "params": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code, out, err = run_cli(["report", str(deep), "--out", str(tmp_path / "r1")], capsys)
    assert code == 2 and err.count("\n") == 1 and "nested too deeply" in err, err
    nested: object = 1
    for _ in range(200):
        nested = {"a": nested}
    folder = write_output(tmp_path / "b", "u", unlearn_doc(0, params={"deep": nested}))
    code, out, err = run_cli(["report", str(folder), "--out", str(tmp_path / "r2")], capsys)
    assert code == 0 and 'deep={"a":{"a":{"a":{"a":{... ' in out, err  # 21 characters of it


# --- the command ------------------------------------------------------------------------------

def test_one_output_folder_alone_is_reported(tmp_path, capsys):
    folder = write_output(tmp_path, "u", unlearn_doc(0, forget=12.5))
    code, out, err = run_cli(["report", str(folder), "--out", str(tmp_path / "report")], capsys)
    assert (code, err) == (0, "")
    assert out.startswith("Unlearning\n") and "12.50" in out
    assert out.strip().splitlines()[-1] == f"lifelong: report of 1 unlearning in {tmp_path / 'report' / 'report.html'}"
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "<h1>Report of 1 unlearning</h1>" in page and "<td class=num>12.50</td>" in page
    assert "<h2>Runs</h2>" not in page


def test_runs_and_outputs_together_show_both(tmp_path, capsys):
    root = tmp_path / "in"
    for s in (0, 1):
        make_run(root, f"er-{s}", "er", s, ER[s])
    write_output(root / "deeper" / "still", "u", unlearn_doc(0))
    _edits(root)
    code, out, err = run_cli(["report", str(root), "--out", str(tmp_path / "report")], capsys)
    assert (code, err) == (0, "")
    assert out.strip().splitlines()[-1].startswith("lifelong: report of 2 runs, 1 unlearning, 5 edits in ")
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    for heading in ("<h2>Summary</h2>", "<h2>Unlearning</h2>", "<h2>Edits (LiNeS)</h2>", "<h2>Runs</h2>"):
        assert heading in page
    assert (tmp_path / "report" / "edit_tradeoff_class_il.png").is_file()
    assert page.count('<img src="data:image/png;base64,') == 8 + 2  # the runs' eight figures and the trade-offs


# --- end to end: folders the commands wrote from tiny runs ------------------------------------

def _cli(args: list[str]) -> None:
    import contextlib
    import io

    from lifelong.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(args) == 0, args


@pytest.fixture(scope="module")
def written(fashion, tmp_path_factory) -> Path:
    """Under ``out/``: two seeds of a run and their unlearning (seed 0 compared to its retrain),
    LiNeS and plain edits of B over A at two α, task-arithmetic merges of B and C at two λ."""
    root = tmp_path_factory.mktemp("written")
    flags = tiny_run_flags(fashion)
    for seed in (0, 1):
        _cli(["run", *flags, "--seed", str(seed), "--out", str(root / f"out/S{seed}")])
    _cli(["run", *flags, "--forget", "classes:3", "--out", str(root / "R0")])
    for seed in (0, 1):
        compare = ["--compare-to", str(root / "R0")] if seed == 0 else []
        _cli(["unlearn", str(root / f"out/S{seed}"), "--forget", "classes:3", "--method", "ssd", "--param",
              "alpha=2", "--out", str(root / f"out/U{seed}"), *compare])
    flags += ["--method", "finetune"]
    _cli(["run", *flags, "--train-tasks", "1", "--out", str(root / "A")])
    for name, task in (("B", "2"), ("C", "3")):
        _cli(["run", *flags, "--train-tasks", task, "--init-from", str(root / "A"), "--out", str(root / name)])
    for alpha in ("0.3", "0.6"):
        for kind, beta in (("lines", []), ("plain", ["--beta", "0"])):
            _cli(["edit", "lines", "--base", str(root / "A"), "--finetuned", str(root / "B"), "--alpha", alpha, *beta,
                  "--out", str(root / f"out/{kind}-{alpha}")])
    for lam in ("0.4", "0.8"):
        _cli(["merge", "--base", str(root / "A"), "--models", str(root / "B"), str(root / "C"), "--method",
              "task-arithmetic", "--lam", lam, "--out", str(root / f"out/ta-{lam}")])
    return root


def _doc(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def test_the_report_of_written_folders_shows_their_numbers(written, tmp_path, capsys):
    code, out, err = run_cli(["report", str(written / "out"), "--out", str(tmp_path / "report")], capsys)
    assert (code, err) == (0, ""), err
    assert out.strip().splitlines()[-1].startswith("lifelong: report of 2 runs, 2 unlearnings, 4 edits, 2 merges in")
    found = load_outputs(sorted(p for p in (written / "out").iterdir() if p.name[0] in "Ulpt"))
    u0, u1 = _doc(written / "out/U0"), _doc(written / "out/U1")
    row = _rows(_section(found, "Unlearning").tables[0])[0]
    assert row["seeds"] == "0, 1"  # the two seeds of one run configuration: one row
    forget = [u0["accuracy"]["forget"], u1["accuracy"]["forget"]]
    assert row["forget acc. (%)"] == f"{statistics.fmean(forget):.2f} ± {SD(forget):.2f}"
    assert row["agree. test (%)"] == f"{u0['agreement']['test']['agreement']:.2f} (1/2)"
    retrain = _doc(written / "R0")["train_seconds"]
    assert row["time / retrain"] == f"{u0['wall_seconds'] / retrain:.3f} (1/2)"
    edits = _rows(_section(found, "Edits (LiNeS)").tables[1])  # task-IL
    lines = _doc(written / "out/lines-0.6")["accuracy"]["task_il"]
    row = next(r for r in edits if r["edit"] == "LiNeS (β = 1 − α)" and r["α"] == "0.6")
    assert (row["control (%)"], row["target (%)"]) == (f"{lines[0]:.2f}", f"{lines[1]:.2f}")  # A: task 1, B: task 2
    merges = _rows(_section(found, "Merges").tables[0])
    acc = _doc(written / "out/ta-0.8")["accuracy"]["class_il"]
    assert merges[1]["parameters"] == "lam=0.8" and merges[1]["merged tasks"] == "2,3"
    assert merges[1]["merged tasks (%)"] == f"{(acc[1] + acc[2]) / 2:.2f}"
    for png in ("edit_tradeoff_class_il", "edit_tradeoff_task_il", "merge_scale_class_il", "merge_scale_task_il"):
        assert (tmp_path / "report" / f"{png}.png").read_bytes().startswith(b"\x89PNG")
    assert "Unlearning" in out and "Edits, class-IL" in out and "Merges, task-IL" in out


def test_an_unlearning_folder_below_the_runs_is_reported_beside_them(written, tmp_path, capsys):
    """It used to fail the whole report, then was left out; now it has its section."""
    code, out, err = run_cli(["report", str(written / "out" / "S0"), str(written / "out" / "U0"), "--out",
                              str(tmp_path / "report")], capsys)
    assert (code, err) == (0, "") and "report of 1 run, 1 unlearning in" in out


def test_the_rmm_section_of_a_tiny_lora_runs_merge(fashion, tmp_path, capsys):
    """`lifelong run --method lora` on two seeds, `lifelong merge --method rmm` of each, and the
    report's RMM rows against the numbers of their metrics.json."""
    flags = tiny_run_flags(fashion)
    for seed in (0, 1):
        _cli(["run", *flags, "--method", "lora", "--train-tasks", "1,2,3", "--seed", str(seed), "--out",
              str(tmp_path / f"L{seed}")])
        _cli(["merge", "--method", "rmm", "--models", str(tmp_path / f"L{seed}"), "--basis", str(seed + 1), "--out",
              str(tmp_path / f"out/rmm-{seed}")])
    code, out, err = run_cli(["report", str(tmp_path / "out"), "--out", str(tmp_path / "report")], capsys)
    assert (code, err) == (0, ""), err
    docs = [_doc(tmp_path / f"out/rmm-{seed}") for seed in (0, 1)]
    assert [a["task"] for a in docs[0]["adapters"]] == [1, 2, 3]  # of the 5 tasks
    rows = _rows(_section(load_outputs([tmp_path / "out/rmm-0", tmp_path / "out/rmm-1"]), "Merges: RMM").tables[0])
    assert len(rows) == 3 + 3 and all(r["seeds"] == "0, 1" for r in rows)  # --basis differs: one configuration
    means = [statistics.fmean(d["per_basis"][1]["accuracy"]["class_il"][:3]) for d in docs]
    assert rows[4]["model"] == "RMM, basis 2"
    assert rows[4]["class-IL (%)"] == f"{statistics.fmean(means):.2f} ± {SD(means):.2f}"
    kept = [statistics.fmean(d["kept"]["task_il"][:3]) for d in docs]
    assert rows[0]["task-IL (%)"] == f"{statistics.fmean(kept):.2f} ± {SD(kept):.2f}"
    share = [d["per_basis"][0]["stored_numbers"] / d["adapter_numbers"] for d in docs]
    assert rows[3]["stored share"] == f"{statistics.fmean(share):.2f} ± {SD(share):.2f}"
    assert rows[5]["ΔW rel. error"].startswith("0.000")  # k = n rebuilds the adapters exactly
    assert (tmp_path / "report" / "rmm_basis_class_il.png").read_bytes().startswith(b"\x89PNG")
    assert "RMM: accuracy over the basis size" in out and "left out" not in out
