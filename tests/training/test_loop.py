"""Tests of napari_kinetochores.training.loop: the Trainer's phases with a counting backend."""

from __future__ import annotations

import csv

from napari_kinetochores.training.loop import Trainer, TrainingState, append_log, plain_types


class Counting:
    """A backend without a network: F1 values from a list, every call recorded."""

    threshold_name = "threshold"

    def __init__(self, f1s):
        self.f1s = list(f1s)
        self.calls: list[tuple] = []

    def train_epoch(self, epoch, trainer):
        self.calls.append(("train", epoch))
        trainer.is_cancelled()  # polled every step, as the real backends do
        return {"loss": 1.0, "lr": 0.1}

    def validate(self):
        f1 = self.f1s.pop(0)
        return {"f1": f1, "threshold": f1 / 2, "median_error_nm": 30.0, "f1_by_level": {"a": f1}}

    def save(self, trainer, epoch, metrics, improved):
        self.calls.append(("save", epoch, improved))

    def refresh_pool(self):
        self.calls.append(("refresh",))


def test_trainer_keeps_the_best_and_logs_every_epoch(tmp_path, capsys):
    backend = Counting([0.2, 0.6, 0.4])
    trainer = Trainer(backend, epochs=3, output_dir=tmp_path, validated_on="held_out")
    trainer.run()
    assert (trainer.best_f1, trainer.best_threshold, trainer.epochs_run) == (0.6, 0.3, 3)
    saves = [call for call in backend.calls if call[0] == "save"]
    assert saves == [("save", 0, True), ("save", 1, True), ("save", 2, False)]
    # fresh samples after every epoch but the last
    assert backend.calls.count(("refresh",)) == 2
    with (tmp_path / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "epoch", "loss", "val_f1", "threshold", "median_error_nm", "lr", "seconds", "f1_a",
        "validated_on",
    ]  # fmt: skip
    assert [row["val_f1"] for row in rows] == ["0.2", "0.6", "0.4"]
    assert {row["validated_on"] for row in rows} == {"held_out"}
    assert capsys.readouterr().out.count("val F1") == 3


def test_equal_f1_keeps_the_first_epoch_unless_later_ties_are_kept(tmp_path):
    for keep_later, saved in ((False, [True, False, False]), (True, [True, True, False])):
        backend = Counting([0.6, 0.6, 0.4])
        (tmp_path / str(keep_later)).mkdir()
        trainer = Trainer(backend, epochs=3, output_dir=tmp_path / str(keep_later), progress=False)
        trainer.keep_later_ties = keep_later
        trainer.run()
        assert [call[2] for call in backend.calls if call[0] == "save"] == saved
        assert trainer.best_f1 == 0.6


def test_cancel_validates_the_epoch_then_stops_without_refreshing(tmp_path):
    backend = Counting([0.5, 0.7])
    polls = []

    def cancelled():  # cancel arrives after the first step
        polls.append(1)
        return len(polls) > 1

    trainer = Trainer(backend, 5, tmp_path, progress=False, cancelled=cancelled)
    trainer.run()
    assert trainer.epochs_run == 1 and trainer.stop_requested
    assert backend.calls == [("train", 0), ("save", 0, True)]


def test_time_limit_and_resumed_state(tmp_path):
    backend = Counting([0.3, 0.9])
    state = TrainingState(start_epoch=4, best_f1=0.5, best_threshold=0.2, history=[{"epoch": 4}])
    trainer = Trainer(
        backend, 10, tmp_path, time_limit_min=1e-9, progress=False, state=state, started=0.0
    )
    trainer.run()
    assert trainer.epochs_run == 5  # one epoch, then past the time limit
    assert (trainer.best_f1, trainer.best_threshold) == (0.5, 0.2)  # 0.3 did not beat 0.5
    assert [row["epoch"] for row in trainer.history] == [4, 5]
    done = Trainer(Counting([]), 4, tmp_path, progress=False, state=state)
    done.run()  # nothing left to train
    assert done.epochs_run == 4


def test_append_log_keeps_an_older_header(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,loss\n1,0.5\n")
    append_log(path, {"epoch": 2, "loss": 0.4, "validated_on": "simulated"})
    assert path.read_text().splitlines() == ["epoch,loss", "1,0.5", "2,0.4"]


def test_plain_types_of_a_config():
    from napari_kinetochores.training.unet import TrainConfig

    plain = plain_types(TrainConfig())
    assert plain["validation"]["source"] == "auto" and plain["patch_shape"] == [16, 64, 64]
    assert plain_types(float("inf")) is None
