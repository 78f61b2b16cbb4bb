from diagnose.model import Axis, Mesh


def test_groups_vary_only_along_the_chosen_axis():
    mesh = Mesh("m", (Axis("a", 2), Axis("b", 3)))
    assert mesh.groups("b") == [[0, 1, 2], [3, 4, 5]]
    assert mesh.groups("a") == [[0, 3], [1, 4], [2, 5]]
    assert mesh.groups("a", "b") == [[0, 1, 2, 3, 4, 5]]
    assert mesh.groups() == [[r] for r in range(6)]


def test_outer_order_is_row_major_over_the_other_axes():
    mesh = Mesh("m", (Axis("x", 2), Axis("y", 2), Axis("z", 2)))
    assert mesh.groups("y") == [[0, 2], [1, 3], [4, 6], [5, 7]]


def test_coords_invert_the_layout():
    mesh = Mesh("m", (Axis("pp", 2), Axis("dp", 2), Axis("tp", 4)))
    for rank in range(16):
        c = mesh.coords(rank)
        assert c["pp"] * 8 + c["dp"] * 4 + c["tp"] == rank


def test_unknown_axis_is_an_error():
    import pytest

    with pytest.raises(KeyError):
        Mesh("m", (Axis("a", 2),)).groups("nope")
