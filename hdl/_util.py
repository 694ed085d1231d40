"""Small helpers shared by the hardware blocks."""

from __future__ import annotations

import functools

__all__ = ["checked_init"]


def checked_init(init):
    """Decorate a component's ``__init__`` whose argument checks may raise.

    An Amaranth ``Elaboratable`` warns when it is garbage-collected unused; an object whose
    constructor refused its arguments never existed for the user, so it is silenced.
    """
    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        try:
            return init(self, *args, **kwargs)
        except BaseException:
            self._MustUse__silence = True
            raise
    return wrapper
