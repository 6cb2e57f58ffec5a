"""``Module``: parameters and submodules registered by attribute, as in PyTorch."""

from __future__ import annotations

import itertools
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from .. import tensor as _tensor
from ..backend import as_numpy
from ..tensor import Tensor


class StateDictError(RuntimeError, KeyError, ValueError):
    """A state dict does not fit the module (missing, unexpected or mis-shaped keys)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns, as PyTorch: the keys it did not find and the keys it skipped."""


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable (``requires_grad=True`` by default)."""

    def __init__(self, data: Any, requires_grad: bool = True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and model.

    Assigning a :class:`Parameter` or a Module to an attribute registers it, in assignment
    order; ``named_parameters()`` yields dotted names (``conv1.weight``) that are also the
    ``state_dict()`` keys. ``__call__`` runs ``forward`` and records this module on the ops it
    creates, so graphs can be drawn grouped by module.
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign before Module.__init__() call (call super().__init__() first)")
        # Re-assigning a registered name keeps its place (as PyTorch): state_dict order stays stable.
        if name in self._parameters and value is not None and not isinstance(value, Parameter):
            raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} of {type(self).__name__} "
                            "(Parameter or None expected; to change its values assign to .data)")
        if name in self._modules and value is not None and not isinstance(value, Module):
            raise TypeError(f"cannot assign {type(value).__name__} as child module {name!r} of {type(self).__name__} "
                            "(Module or None expected)")
        if isinstance(value, Parameter):
            self._modules.pop(name, None)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._parameters.pop(name, None)
            self._modules[name] = value
        elif value is None and name in self._modules:
            self._modules[name] = None
        elif value is None and (name in self._parameters or name in ("weight", "bias")):
            self._parameters[name] = None
        else:
            self._parameters.pop(name, None)
            self._modules.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        _check_name(self, "parameter", name)
        if param is not None and not isinstance(param, Parameter):  # setattr would keep it as a plain attribute
            raise TypeError(f"cannot register {type(param).__name__} as parameter {name!r} of {type(self).__name__} "
                            "(Parameter or None expected; wrap it: nn.Parameter(t.data))")
        setattr(self, name, param)

    def add_module(self, name: str, module: Module | None) -> None:
        _check_name(self, "module", name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"cannot add {type(module).__name__} as child module {name!r} of {type(self).__name__} "
                            "(Module or None expected)")
        self._modules[name] = module
        object.__setattr__(self, name, module)

    # -- running -------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        _tensor._state.modules.append(self)
        try:
            out = self.forward(*args, **kwargs)
        finally:
            _tensor._state.modules.pop()
        for hook in tuple(self.__dict__.get("_forward_hooks", {}).values()):
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    def register_forward_hook(self, hook: Callable[[Module, tuple, Any], Any]) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after every forward (as PyTorch); a non-None return
        replaces the output. ``handle.remove()`` unregisters it (used by ``viz.summary``)."""
        return RemovableHandle(self.__dict__.setdefault("_forward_hooks", OrderedDict()), hook)

    # -- traversal -------------------------------------------------------------
    def children(self) -> Iterator[Module]:
        yield from (m for m in self._modules.values() if m is not None)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from ((n, m) for n, m in self._modules.items() if m is not None)

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """Every module, this one first (name ``""``), depth-first in registration order."""
        stack = [(prefix, self)]
        seen = set()
        while stack:
            name, mod = stack.pop()
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            yield name, mod
            kids = [(f"{name}.{n}" if name else n, m) for n, m in mod.named_children()]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator[Module]:
        yield from (m for _, m in self.named_modules())

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        seen = set()
        for mname, mod in self.named_modules(prefix):
            for pname, p in mod._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self) -> Iterator[Parameter]:
        yield from (p for _, p in self.named_parameters())

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every submodule, then on this one (as PyTorch: e.g. an init function); returns self."""
        seen = set()  # a module registered twice here is visited once, as PyTorch's children()
        for m in self.children():
            if id(m) not in seen:
                seen.add(id(m))
                m.apply(fn)
        fn(self)
        return self

    # -- modes and grads -----------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        if not isinstance(mode, (bool, np.bool_)):  # train("no") would switch training on, silently
            raise ValueError(f"{type(self).__name__}.train: training mode is expected to be a bool, got {mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (``set_to_none=False``: fill existing ones with zeros)."""
        for p in self.parameters():
            p.zero_grad(set_to_none)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    # -- state ---------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Parameter name -> a copy of its array (host NumPy)."""
        return OrderedDict((n, as_numpy(p.data).copy()) for n, p in self.named_parameters())

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy arrays into the parameters; mis-shaped keys always raise, missing/unexpected when strict.

        Returns ``(missing_keys, unexpected_keys)`` as PyTorch (both empty after a strict load).
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict for {type(self).__name__}: expected a dict of name -> array, got "
                            f"{type(state_dict).__name__}")
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict and (missing or unexpected):
            if missing:
                errors.append(f"missing keys: {', '.join(missing)}")
            if unexpected:
                errors.append(f"unexpected keys: {', '.join(map(str, unexpected))}")
        for k, p in own.items():
            if k in state_dict:
                v = state_dict[k]
                try:
                    arr = np.asarray(as_numpy(v.data if isinstance(v, Tensor) else v))
                except ValueError as exc:  # a ragged nested list
                    errors.append(f"value for {k} is not an array ({exc})")
                    continue
                if arr.dtype.kind not in "fiub":  # None, strings, objects, complex: no real values to copy
                    errors.append(f"value for {k} is not a real numeric array "
                                  f"({type(v).__name__} of dtype {arr.dtype})")
                elif tuple(arr.shape) != p.shape:
                    errors.append(f"shape mismatch for {k}: checkpoint {tuple(arr.shape)} vs model {p.shape}")
        if errors:
            raise StateDictError(f"load_state_dict for {type(self).__name__}: " + "; ".join(errors))
        for k, p in own.items():
            if k in state_dict:
                v = state_dict[k]
                _tensor.bump_version(p)  # new values: a pending graph that kept the old ones refuses backward
                p.data = _copy_like(v.data if isinstance(v, Tensor) else v, p.data)
        return IncompatibleKeys(missing, unexpected)

    # -- printing ----------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        kids = list(self._modules.items())  # a child set to None too, as PyTorch prints it
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not kids:
            return head + ")"
        lines = [head]
        for name, mod in kids:
            body = repr(mod).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"


def _check_name(module: Module, what: str, name: Any) -> None:
    """A child's name must be a non-empty string without dots (dots separate the levels of state_dict keys)."""
    if not isinstance(name, str):
        raise TypeError(f"{type(module).__name__}: {what} name must be a string, got {type(name).__name__}")
    if not name or "." in name:
        raise KeyError(f"{type(module).__name__}: {what} name must be non-empty and without dots, got {name!r}")


class RemovableHandle:
    """Returned by ``register_forward_hook``; ``remove()`` (or leaving a ``with`` block) unregisters."""

    _ids = itertools.count()

    def __init__(self, hooks: OrderedDict, hook: Callable) -> None:
        self.hooks, self.id = hooks, next(RemovableHandle._ids)
        hooks[self.id] = hook

    def remove(self) -> None:
        self.hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def _copy_like(src: Any, like: Any):
    """A fresh array with ``like``'s dtype (no aliasing of the checkpoint's arrays)."""
    return np.array(as_numpy(src), dtype=like.dtype, copy=True)
