"""`tickwire replay offsets`: target offsets, clamping, datetime parsing, plan rendering."""

from __future__ import annotations

import pytest

from tickwire.offsets import PlanRow, main, new_offset, parse_datetime, render


@pytest.mark.parametrize(
    ("mode", "kw", "want"),
    [
        ("earliest", {}, 10),
        ("latest", {}, 50),
        ("shift", {"shift": -5}, 25),
        ("shift", {"shift": -100}, 10),  # clamped to earliest
        ("shift", {"shift": 100}, 50),  # clamped to latest
        ("datetime", {"at_time": 42}, 42),
        ("datetime", {"at_time": -1}, 50),  # no record at or after the instant: log end
        ("datetime", {"at_time": 3}, 10),  # below a truncated log start
    ],
)
def test_new_offset(mode: str, kw: dict[str, int], want: int) -> None:
    assert new_offset(mode, current=30, earliest=10, latest=50, **kw) == want  # type: ignore[arg-type]


def test_shift_without_committed_offset_starts_from_earliest() -> None:
    assert new_offset("shift", current=None, earliest=10, latest=50, shift=5) == 15


def test_parse_datetime_utc_and_offsets() -> None:
    assert parse_datetime("2024-05-01T13:30:00Z") == 1_714_570_200_000
    assert parse_datetime("2024-05-01T13:30:00") == 1_714_570_200_000  # naive = UTC
    assert parse_datetime("2024-05-01T15:30:00+02:00") == 1_714_570_200_000


def test_render_plan() -> None:
    text = render([PlanRow("a.raw", 0, 7, 0, 0, 12), PlanRow("a.raw", 1, None, 3, 3, 3)])
    assert text.splitlines() == [
        "TOPIC  PARTITION  CURRENT  NEW  LAG",
        "a.raw  0          7        0    12",
        "a.raw  1          -        3    0",
    ]


def test_cli_needs_a_topic_and_one_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--group", "g", "--to-earliest"]) == 2
    with pytest.raises(SystemExit):
        main(["--group", "g", "--topic", "t"])  # no --to-*
    with pytest.raises(SystemExit):
        main(["--group", "g", "--topic", "t", "--to-earliest", "--shift-by", "1"])
