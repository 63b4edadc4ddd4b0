"""Executors train stored runs: in-process, in a local worker pool, and through submitit's local executor."""

from __future__ import annotations

from pathlib import Path

import pytest

from verifier import executors, runs
from verifier.runs import RunConfig


@pytest.fixture(scope="module")
def text_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "text.txt"
    path.write_text("".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(3000)))
    return path


def tiny(corpus: Path, seed: int = 0) -> RunConfig:
    return RunConfig(n_layer=1, d_model=16, n_head=1, steps=12, lr=3e-3, warmup_steps=2, seq_len=32, batch_size=4,
                     eval_every=6, eval_sequences=4, seed=seed, corpus=str(corpus))


def stored(db, configs: list[RunConfig]) -> list[int]:
    return [runs.create_run(db, c, scope="test-scope", n_params=1, role="test").id for c in configs]


def check_complete(db, run_id: int, config: RunConfig) -> None:
    run = runs.get_run(db, run_id)
    assert run.status == "complete"
    assert run.final_val_loss is not None and 0 < run.final_val_loss < 10
    steps = [p.step for p in runs.get_points(db, run_id)]
    assert steps[0] == 0 and steps[-1] == config.steps


def test_free_slots_on_cpu() -> None:
    slots = executors.free_slots("cpu")
    assert slots and all(s.startswith("cpu:") for s in slots)


def test_unknown_executor_is_bad_input(db_file: Path) -> None:
    with pytest.raises(ValueError, match="executor"):
        executors.make_executor("cloud", str(db_file))


def test_inline_executor_trains_and_reports_failures(db, db_file: Path, text_corpus: Path) -> None:
    good = tiny(text_corpus)
    bad = tiny(text_corpus.parent / "missing.txt", seed=1)
    ids = stored(db, [good, bad])
    seen = []
    outcomes = executors.InlineExecutor(str(db_file), "cpu").run(ids, on_done=seen.append)
    assert [o.run_id for o in outcomes] == ids and len(seen) == 2
    assert outcomes[0].status == "complete" and outcomes[1].status == "failed"
    assert "missing.txt" in (outcomes[1].error or "")
    check_complete(db, ids[0], good)
    assert runs.get_run(db, ids[1]).status == "failed"


def test_local_pool_runs_in_parallel_workers(db, db_file: Path, text_corpus: Path) -> None:
    configs = [tiny(text_corpus, seed=s) for s in range(3)]
    ids = stored(db, configs)
    with executors.LocalExecutor(str(db_file), "cpu", workers=2) as pool:
        throughput = pool.measure(0.3)
        outcomes = pool.run(ids)
    assert throughput.matmul_flops_per_second > 0 and throughput.threads == 1
    assert [o.status for o in outcomes] == ["complete"] * 3
    for run_id, config in zip(ids, configs, strict=True):
        check_complete(db, run_id, config)
    assert all(o.worker and o.worker.startswith("cpu:") for o in outcomes)
    if len(executors.free_slots("cpu")) >= 2:
        assert len({o.worker for o in outcomes}) == 2  # both workers took runs, each pinned to its own core


def test_submitit_local_executor(db, db_file: Path, text_corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("submitit")
    configs = [tiny(text_corpus, seed=s) for s in range(2)]
    ids = stored(db, configs)
    ex = executors.make_executor("submitit", str(db_file), "cpu", folder=tmp_path / "jobs", cluster="local",
                                 workers=2)
    outcomes = ex.run(ids)
    assert [o.status for o in outcomes] == ["complete", "complete"]
    assert all("submitit local job" in (o.worker or "") for o in outcomes)
    for run_id, config in zip(ids, configs, strict=True):
        check_complete(db, run_id, config)
    assert any((tmp_path / "jobs").iterdir())  # submitit kept its logs there
