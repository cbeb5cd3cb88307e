"""Registries: named entries added by a registration call, tried in order of priority.

giantfm's registries -- the table formats (`giantfm.io.tables.TABLE_FORMATS`),
the kinds of XP input and the layouts of XP columns
(`giantfm.xp.readers.READERS`, `giantfm.xp.readers.COLUMN_LAYOUTS`) -- are
`Registry` objects, as specutils' loaders and astropy's I/O registry are: the
code that uses one iterates it, and an entry is added by its module's
``register_...`` call, which checks what it is given, so that a bad entry is
refused when it is registered rather than found out when a file is read.
"""
import inspect
import itertools
from collections.abc import Sequence

from ..exceptions import InvalidNameError

__all__ = ["Registry", "check_text", "check_callable"]


def check_text(value, what):
    """Refuse anything but a non-empty string, naming ``what`` it was to be."""
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"{what} must be a non-empty string, got {value!r}")
    return value


def check_callable(value, what, n_args, call):
    """Refuse ``value`` unless it is a function that can be called with ``n_args``
    positional arguments, as ``call`` (the call it will get, shown in the message) says."""
    if not callable(value):
        raise TypeError(f"{what} must be a function {call}, got {value!r}")
    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):  # some builtins have no signature to check
        return value
    try:
        signature.bind(*range(n_args))
    except TypeError as exc:
        raise TypeError(f"{what} must be a function {call}: {getattr(value, '__name__', value)!r}"
                        f"{signature} cannot be called so ({exc})") from None
    return value


class Registry(Sequence):
    """Named entries, in order of priority: the highest first, and among equal priorities
    the first registered first.

    A registry reads as a sequence of its entries (iterate it, index it, take
    its ``len``) and by name (``registry["fits"]``, ``"fits" in registry``);
    it is changed only by the ``register_...`` call of the module that owns
    it, which checks an entry before it calls `register`, and by `unregister`.

    Parameters
    ----------
    kind : str
        What an entry is, for messages (``'table format'``).
    how : str
        The call that registers one, for messages
        (``'giantfm.io.tables.register_table_format'``).
    """

    def __init__(self, kind, how):
        self.kind = kind
        self.how = how
        self._entries = {}  # name -> (priority, registration number, entry)
        self._order = []
        self._counter = itertools.count()

    # ------------------------------------------------------------------ reading
    def __getitem__(self, key):
        if isinstance(key, str):
            if key not in self._entries:
                raise InvalidNameError(f"no {self.kind} named {key!r} is registered; "
                                       f"registered: {', '.join(self.names) or 'none'}")
            return self._entries[key][2]
        return self._order[key]

    def __len__(self):
        return len(self._order)

    def __iter__(self):
        return iter(list(self._order))  # a registration while iterating does not disturb it

    def __contains__(self, item):
        if isinstance(item, str):
            return item in self._entries
        return any(entry is item for entry in self._order)

    @property
    def names(self):
        """The entries' names, in the order they are tried."""
        return [entry.name for entry in self._order]

    def priority(self, name):
        """The priority the entry ``name`` was registered with."""
        self[name]  # unknown names are refused by name
        return self._entries[name][0]

    def __repr__(self):
        shown = ", ".join(f"{name!r} ({self._entries[name][0]})" for name in self.names)
        return f"<Registry of {self.kind}s (priority): {shown}>"

    # ------------------------------------------------------------------ changing
    def register(self, entry, priority=0, replace=False):
        """Add ``entry`` (an object with a ``name``), already checked by the caller; with
        ``replace``, the entry of that name is replaced (in its place among the entries of
        equal priority).

        Raises
        ------
        TypeError
            A priority that is not an integer.
        ValueError
            The name is registered already, and ``replace`` is False.
        """
        name = check_text(getattr(entry, "name", None), f"the name of a {self.kind}")
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise TypeError(f"the priority of {self.kind} {name!r} must be an integer (higher "
                            f"is tried first), got {priority!r}")
        if name in self._entries and not replace:
            raise ValueError(f"a {self.kind} named {name!r} is registered already: give "
                             f"another name, or replace=True to replace it")
        # a replaced entry keeps its place among those of its priority
        number = self._entries[name][1] if name in self._entries else next(self._counter)
        self._entries[name] = (priority, number, entry)
        self._sort()
        return entry

    def unregister(self, name):
        """Remove the entry ``name`` and return it (unknown names are refused by name)."""
        entry = self[name]
        del self._entries[name]
        self._sort()
        return entry

    def _sort(self):
        ranked = sorted(self._entries.values(), key=lambda item: (-item[0], item[1]))
        self._order = [entry for _, _, entry in ranked]

    def _refuse_change(self, *args, **kwargs):
        raise TypeError(f"{self.kind}s are a registry, not a list: add one with {self.how}(...) "
                        "(which checks it), remove one with .unregister(name)")

    append = extend = insert = remove = __setitem__ = __delitem__ = __iadd__ = _refuse_change
