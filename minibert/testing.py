"""minibert as the reference in another implementation's tests (pytest or any other runner).

    from minibert.testing import assert_state_close, load_state

    reference = load_state("tests/data/bert-tiny.safetensors")       # written by `minibert dump`
    mine = my_port.run(reference)                                     # {name: array}, the same names
    assert_state_close(mine, reference)                               # AssertionError at the first divergence

The names, shapes and meanings are in docs/reference-states.md; a port needs to produce only the
tensors it wants checked (names missing from one side are listed, not failed).
"""

from __future__ import annotations

from .states import Comparison, State, compare_states, load_state


def as_state(value) -> State:
    """A State, a path to a state file, or a plain {name: array} dict."""
    if isinstance(value, State):
        return value
    if isinstance(value, dict):
        return State(dict(value))
    return load_state(value)


def assert_state_close(mine, reference, rtol=None, atol=None) -> Comparison:
    """Raise AssertionError naming the first tensor (in computation order) where `mine` and
    `reference` differ beyond max |mine - reference| <= atol + rtol * max |reference|; the
    tolerances default by the reference's dtype.  Returns the comparison when all agree."""
    mine, reference = as_state(mine), as_state(reference)
    comparison = compare_states(mine, reference, rtol=rtol, atol=atol)
    if not comparison.rows:
        raise AssertionError("the two states share no tensor names (see docs/reference-states.md)")
    if not comparison.ok:
        differing = [line for line in comparison.table().splitlines() if "DIFF" in line][:10]
        raise AssertionError(comparison.message() + "\n" + "\n".join(differing))
    return comparison


__all__ = ["State", "Comparison", "load_state", "compare_states", "assert_state_close", "as_state"]
