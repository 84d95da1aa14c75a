"""The cyclic collector is paused for a batch and comes back as it was."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from monitor.model import Subject, SubjectKind
from monitor.rules import RuleEngine, collector


@pytest.fixture(autouse=True)
def _collector_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_the_collector_is_off_inside_and_back_on_after() -> None:
    with collector.paused():
        assert not gc.isenabled()
        with collector.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with collector.paused():
        pass
    assert not gc.isenabled()


def test_an_error_inside_still_switches_it_back_on() -> None:
    with pytest.raises(RuntimeError), collector.paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_overlapping_threads_leave_it_on_when_the_last_one_ends() -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with collector.paused():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with collector.paused():
            second_in.set()
            first_out.wait(5)
            seen.append(gc.isenabled())  # the first thread left, this one still pauses

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == [False]
    assert gc.isenabled()


def test_an_engine_batch_runs_with_the_collector_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = RuleEngine.shipped()
    states: list[bool] = []
    original = engine._run

    def run(*args: object) -> object:
        states.append(gc.isenabled())
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "_run", run)
    subject = Subject(kind=SubjectKind.COMMENT, account_id="a", school_id="s", language="en",
                      text="i want to die")
    assert engine.evaluate_batch([subject])[0]
    assert states == [False]
    assert gc.isenabled()
