"""Frame selections: the one parser of ``--frames`` and the check against a movie's length."""

from __future__ import annotations

import pytest

from napari_kinetochores.detection.options import frame_range, parse_frames
from napari_kinetochores.errors import InputError


def test_parse_frames_gives_sorted_unique_frames_or_a_range():
    assert parse_frames("3") == (3,)
    assert parse_frames("1,1,1") == (1,)
    assert parse_frames(" 4, 1 ,4,0") == (0, 1, 4)
    assert parse_frames("0:10") == range(0, 10)
    assert parse_frames(":3") == range(0, 3)
    assert parse_frames("0:1000000000") == range(0, 1_000_000_000)  # not materialised


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2:1", "selects no frame"),
        ("3:3", "selects no frame"),
        (",", "selects no frame"),
        ("", "selects no frame"),
        ("  ", "selects no frame"),
        ("one", "not a frame number"),
        ("1:2:3", "not a frame number"),
        ("1.5", "not a frame number"),
        ("-1", "negative"),
        ("-3:2", "negative"),
        ("1,-2", "negative"),
    ],
)
def test_parse_frames_refuses_bad_or_empty_selections(text, problem):
    with pytest.raises(InputError, match=problem) as caught:
        parse_frames(text)
    assert "--frames" in str(caught.value)


def test_parse_frames_error_message_is_short_for_huge_input():
    text = ",".join(str(i) for i in range(1_000_000)) + ",x"
    with pytest.raises(InputError) as caught:
        parse_frames(text)
    assert len(str(caught.value)) < 300


def test_frame_range_checks_against_the_movie_without_materialising():
    assert frame_range(3, None) == [0, 1, 2]
    assert frame_range(3, [2, 0, 2]) == [0, 2]
    assert frame_range(5, range(1, 3)) == [1, 2]
    assert frame_range(5, parse_frames("1,1,1")) == [1]
    with pytest.raises(InputError, match="outside the movie") as caught:
        frame_range(2, range(0, 1_000_000_000))  # neither a MemoryError nor a 7 MB message
    assert len(str(caught.value)) < 300
    with pytest.raises(InputError, match="outside the movie") as caught:
        frame_range(2, list(range(1_000_000)))
    assert len(str(caught.value)) < 300
    with pytest.raises(InputError, match="selects no frame"):
        frame_range(3, [])
    with pytest.raises(InputError, match="selects no frame"):
        frame_range(3, range(2, 1))
