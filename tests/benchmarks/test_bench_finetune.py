"""The fine-tuning benchmark's report: table, partial runs and the target verdict."""

from __future__ import annotations

from benchmarks.bench_finetune import render_markdown, target_verdict


def results(bundled: float, f1_at: dict, complete: bool = True) -> dict:
    points = [{"mark_min": m, "cpu_min": m, "f1": f, "val_f1": 0.9} for m, f in f1_at.items()]
    run = {"validation": "blocks", "initial_val_f1": 0.7, "epochs_run": 12, "points": points}
    run.update(complete=complete, cpu_min=6.1)
    domain = {
        "description": "PSF 2.2×",
        "bundled": {"f1": bundled},
        "classical": {"f1": 0.5},
        "runs": {"1": run},
    }
    return {
        "date": "2026-11-30 04:00 UTC",
        "git_commit": "abc",
        "machine": {
            "cpu": "EPYC",
            "cores": 2,
            "cpu_flags": ["avx2"],
            "torch": "2",
            "torch_threads": 1,
        },
        "mode": "full",
        "cutoff_um": 0.3,
        "eval_frames": [4, 5, 6, 7],
        "frames_per_movie": 8,
        "marks_cpu_min": [2, 5, 10],
        "target": {"f1": 0.95, "frames": 1, "minutes": 10, "bundled_below": 0.7},
        "domains": {"large_psf": domain},
    }


def test_target_met_and_not_met():
    assert "target met" in target_verdict(results(0.6, {2: 0.9, 5: 0.96, 10: 0.97}))
    verdict = target_verdict(results(0.6, {2: 0.8, 5: 0.9}, complete=False))
    assert "0.900 at 5 CPU min (run stopped at 6.1 CPU min): target NOT met" in verdict
    elsewhere = target_verdict(results(0.8, {2: 0.96}))  # the bundled model does not fail here
    assert "(not below 0.7)" in elsewhere and "the domain does not count" in elsewhere
    assert "target met" not in elsewhere


def test_markdown_marks_the_minutes_a_stopped_run_did_not_reach():
    text = render_markdown(results(0.6, {2: 0.8, 5: 0.9}, complete=False))
    assert (
        "| fine-tuned, 1 frame | 0.800 | 0.900 | not reached | blocks: 0.700 → 0.900 | 12 | first |"
        in text
    )
    assert "large_psf k=1 (6.1)" in text and "![fine-tuning F1" in text
    assert "other frames: +0.000 to +0.100 over all cells" in text
