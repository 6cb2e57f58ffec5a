"""Optimizers with ``torch.optim``'s update rules: SGD, AdaGrad, RMSprop, Adam.

Updates happen in place on ``param.data`` in the parameter's dtype (float32 stays float32).
``state_dict()`` is a flat ``{name: ndarray}`` so a checkpoint is a plain ``.npz``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from numbers import Real
from typing import Any

import numpy as np

from .backend import as_numpy, get_array_module
from .tensor import Tensor, bump_version, enable_grad


def _check(opt: str, ok: bool, message: str) -> None:
    """Raise ``ValueError("<opt>: <message>")`` unless ``ok`` (messages as ``torch.optim``'s)."""
    if not ok:
        raise ValueError(f"{opt}: {message}")


def _check_nonneg(opt: str, **values: float) -> None:
    """``value >= 0`` for each hyper-parameter, as ``torch.optim`` checks them (NaN is refused too)."""
    labels = {"lr": "learning rate", "eps": "epsilon value"}
    for name, v in values.items():
        _check_number(opt, name, v)
        _check(opt, 0.0 <= v, f"Invalid {labels.get(name, name + ' value')}: {v}")


def _check_number(opt: str, name: str, v: Any) -> None:
    """A hyper-parameter must be a real number (a 0-d array or Tensor too), not a string or None."""
    if not (isinstance(v, Real) or (getattr(v, "ndim", None) == 0 and np.dtype(v.dtype).kind in "fiu")):
        raise TypeError(f"{opt}: {name} must be a number, got {type(v).__name__} {v!r:.40}")


class Optimizer:
    """Holds parameter groups (``param_groups``: each a dict of ``params`` and hyper-parameters) and
    per-parameter state buffers, as ``torch.optim.Optimizer``.

    ``params`` is an iterable of Tensors (one group with the defaults) or of dicts, each with
    ``"params"`` and any hyper-parameters that differ from the defaults for that group.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], defaults: dict[str, Any]):
        name = type(self).__name__
        self.defaults = dict(defaults)
        self._check_hyper(self.defaults)  # first, as torch.optim
        if isinstance(params, Tensor):
            raise TypeError(f"{name}: params should be an iterable of Tensors, got a single Tensor")
        if isinstance(params, (set, frozenset)):  # state is matched to parameters by position
            raise TypeError(f"{name}: params should be an ordered collection (a list), not a set: a set's order "
                            "is not fixed, so saved state could load onto the wrong parameters")
        try:
            params = list(params)
        except TypeError:
            raise TypeError(f"{name}: params should be an iterable of Tensors (e.g. model.parameters()), got "
                            f"{type(params).__name__}") from None
        if not params:
            raise ValueError(f"{name}: optimizer got an empty parameter list")
        self.param_groups: list[dict[str, Any]] = []
        self.params: list[Tensor] = []  # every group's parameters, in order: state[i] belongs to params[i]
        self.state: list[dict[str, Any]] = []
        self._initial_lrs: list[float] = []  # each group's lr when added: what the ``lr`` setter keeps in proportion
        self.step_count = 0
        if all(isinstance(g, Mapping) for g in params):
            for g in params:
                self.add_param_group(g)
        elif any(isinstance(g, Mapping) for g in params):
            raise TypeError(f"{name}: params must be all Tensors or all parameter-group dicts, not a mix")
        else:
            self.add_param_group({"params": params})

    def _check_hyper(self, hyper: dict[str, Any]) -> None:
        """Raise if a group's hyper-parameters are invalid (each optimizer checks its own, as torch.optim)."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyper-parameters (unset ones take the defaults), as PyTorch."""
        name, at = type(self).__name__, len(self.param_groups)
        if not isinstance(param_group, Mapping) or "params" not in param_group:
            raise TypeError(f"{name}: a parameter group is a dict with a 'params' entry, got "
                            f"{type(param_group).__name__}")
        unknown = sorted(set(param_group) - set(self.defaults) - {"params"})
        if unknown:
            raise ValueError(f"{name}: parameter group {at} has unknown option(s) {', '.join(map(repr, unknown))}; "
                             f"{name}'s options are {', '.join(self.defaults)}")
        ps = param_group["params"]
        if isinstance(ps, (set, frozenset)):
            raise TypeError(f"{name}: parameter group {at}'s params should be an ordered collection (a list), not a "
                            "set: a set's order is not fixed, so saved state could load onto the wrong parameters")
        ps = [ps] if isinstance(ps, Tensor) else list(ps)
        # model.named_parameters() works too (as PyTorch 2.x): the names are not kept
        ps = [p[1] if isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) else p for p in ps]
        group = {**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}
        self._check_hyper(group)
        seen = {id(p): i for i, p in enumerate(self.params)}
        for i, p in enumerate(ps, len(self.params)):  # every check before anything is added
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: parameters must be Tensors, got {type(p).__name__}")
            if not p.is_leaf:  # its .grad is never filled: step() would silently do nothing
                raise ValueError(f"{name}: can't optimize a non-leaf Tensor (parameter {i}, shape {p.shape}, "
                                 f"made by {p.creator.name}); pass leaves such as model.parameters()")
            if id(p) in seen:  # step() would update it twice
                raise ValueError(f"{name}: parameter {i} (shape {p.shape}) is the same Tensor as parameter "
                                 f"{seen[id(p)]}; pass each parameter once (in one group)")
            seen[id(p)] = i
        self.params.extend(ps)
        self.param_groups.append({"params": ps, **group})
        self.state.extend({} for _ in ps)
        self._initial_lrs.append(group["lr"])

    @property
    def lr(self) -> float:
        """The learning rate: the constructor's ``lr`` scaled as the groups are now (with one lr for every
        group, simply the first group's). Setting it (what ``fit``'s ``lr_schedule`` does) scales every
        group's lr by ``value / lr_given_to_the_constructor``, keeping the ratios the groups were created
        with, as PyTorch's schedulers do: a group created with lr 0 (a frozen one) stays at 0."""
        if len(set(self._initial_lrs)) <= 1:
            return self.param_groups[0]["lr"]
        base = self.defaults["lr"]
        group, initial = next((g, b) for g, b in zip(self.param_groups, self._initial_lrs) if b)
        return base * (group["lr"] / initial)

    @lr.setter
    def lr(self, value: float) -> None:
        if len(set(self._initial_lrs)) <= 1:
            for group in self.param_groups:
                group["lr"] = value
            return
        base = self.defaults["lr"]
        if base == 0:
            raise ValueError(f"{type(self).__name__}.lr: the optimizer was created with lr 0, so its groups' "
                             "learning rates cannot be scaled from it; set param_groups[i]['lr'] of each group")
        for group, initial in zip(self.param_groups, self._initial_lrs):
            group["lr"] = value * (initial / base)

    def _sync(self) -> None:
        """Follow edits made to ``param_groups`` directly (``param_groups[0]["params"].append(p)``, as PyTorch
        allows): ``params`` and ``state`` are rebuilt in group order, each parameter keeping its buffers."""
        flat = [p for g in self.param_groups for p in g["params"]]
        if len(flat) != len(self.params) or any(a is not b for a, b in zip(flat, self.params)):
            kept = {id(p): st for p, st in zip(self.params, self.state)}
            self.params, self.state = flat, [kept.get(id(p), {}) for p in flat]
        self._initial_lrs.extend(g["lr"] for g in self.param_groups[len(self._initial_lrs):])

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop the parameters' gradients (``set_to_none=False``: zero-filled ones instead, as PyTorch)."""
        self._sync()
        for p in self.params:
            p.zero_grad(set_to_none)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient. ``closure`` (as PyTorch's) recomputes the loss
        first, with recording on, and its result is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._sync()
        self.step_count += 1
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                state, i = self.state[i], i + 1
                if p.grad is None:
                    continue
                g = p.grad.data
                if group.get("weight_decay", 0.0):  # (asarray: NumPy makes a 0-d sum a scalar, which buffers copy)
                    g = get_array_module(g).asarray(g + p.data * p.data.dtype.type(group["weight_decay"]))
                bump_version(p)  # a graph that kept the old values can no longer backpropagate through them
                self.update(p.data, g, state, group)
        return loss

    def update(self, p, g, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError

    # -- checkpoints -------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat dict: hyper-parameters under ``group.<name>`` (group 0) and ``group.<g>.<name>`` (the
        others, with ``group_sizes``), buffers under ``state.<i>.<name>``, and the number of parameters
        (``param_count``) so that a reload can check it."""
        self._sync()
        out: dict[str, np.ndarray] = {"step_count": np.asarray(self.step_count),
                                      "param_count": np.asarray(len(self.params))}
        if len(self.param_groups) > 1:
            out["group_sizes"] = np.asarray([len(g["params"]) for g in self.param_groups])
        for gi, group in enumerate(self.param_groups):
            for k, v in group.items():
                if k != "params":
                    out[f"group.{gi}.{k}" if gi else f"group.{k}"] = np.asarray(v)
        for i, st in enumerate(self.state):
            for k, v in st.items():
                out[f"state.{i}.{k}"] = np.array(as_numpy(v), copy=True)
        return out

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Replace hyper-parameters and state with ``sd``'s (from :meth:`state_dict`), as PyTorch does.

        Checked before anything changes: every key must be one this optimizer writes, the
        parameter count, the group sizes and each buffer's shape must match. Buffers keep the
        parameters' dtype (0-d ones stay arrays, so in-place updates keep working); counters such as
        ``step`` are ints.
        """
        name = type(self).__name__
        if not isinstance(sd, Mapping):
            raise TypeError(f"{name}.load_state_dict: expected a dict (from state_dict()), got {type(sd).__name__}")
        self._sync()
        hyper: list[dict[str, Any]] = [{} for _ in self.param_groups]
        state: list[dict[str, Any]] = [{} for _ in self.params]
        for key, v in sd.items():
            arr = np.asarray(v)
            group_key = _GROUP_KEY.fullmatch(key)
            if key in ("step_count", "param_count", "group_sizes"):
                if arr.ndim > (key == "group_sizes") or arr.dtype.kind not in "iu":
                    what = "integers" if key == "group_sizes" else "an integer"
                    raise ValueError(f"{name}.load_state_dict: {key} must be {what}, got {arr!r}")
            elif group_key and int(group_key[1] or 0) < len(self.param_groups) and group_key[2] in self.defaults:
                gi, h = int(group_key[1] or 0), group_key[2]
                hyper[gi][h] = tuple(arr.tolist()) if arr.ndim else arr.item()
                old = self.param_groups[gi][h]
                new = hyper[gi][h]
                if isinstance(old, Real) and not isinstance(new, Real) or \
                        isinstance(old, tuple) and (not isinstance(new, tuple) or len(new) != len(old)):
                    raise ValueError(f"{name}.load_state_dict: {key} is {new!r:.40}, but {h} is {old!r} here")
            elif key.startswith("state.") and key.count(".") >= 2 and key.split(".")[1].isdigit():
                _, i, buf = key.split(".", 2)
                i = int(i)
                if i >= len(self.params):
                    raise ValueError(f"{name}.load_state_dict: {key} is for parameter {i}, but the optimizer has "
                                     f"{len(self.params)} parameters")
                p = self.params[i]
                if arr.dtype.kind in "iu" and arr.ndim == 0:  # a counter ("step")
                    state[i][buf] = int(arr)
                elif arr.shape != p.shape:
                    raise ValueError(f"{name}.load_state_dict: {key} has shape {arr.shape}, parameter {i} has "
                                     f"{p.shape}")
                else:
                    state[i][buf] = get_array_module(p.data).array(arr, dtype=p.dtype)
            else:
                raise ValueError(f"{name}.load_state_dict: unexpected key {key!r}: not a state dict of {name} "
                                 f"with {len(self.param_groups)} parameter group(s) (keys are step_count, "
                                 "param_count, group_sizes, group.[<g>.]<hyper-parameter>, state.<i>.<buffer>)")
        count = int(sd.get("param_count", len(self.params)))  # state dicts written before param_count: unchecked
        if count != len(self.params):
            raise ValueError(f"{name}.load_state_dict: the state dict is for {count} parameters, the optimizer "
                             f"has {len(self.params)}")
        sizes = [int(n) for n in np.atleast_1d(sd.get("group_sizes", count))]
        ours = [len(g["params"]) for g in self.param_groups]
        if sizes != ours:
            raise ValueError(f"{name}.load_state_dict: the state dict's parameter groups have {sizes} parameters, "
                             f"this optimizer's have {ours}")
        for group, h in zip(self.param_groups, hyper):
            group.update(h)
        self.state = state
        self.step_count = int(sd.get("step_count", 0))


_GROUP_KEY = re.compile(r"group\.(?:(\d+)\.)?([A-Za-z_]\w*)")


class SGD(Optimizer):
    """``p -= lr * g`` with optional (Nesterov) momentum and L2 weight decay, as ``torch.optim.SGD``."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _check_hyper(self, h):
        name = type(self).__name__
        _check_nonneg(name, lr=h["lr"], momentum=h["momentum"], weight_decay=h["weight_decay"])
        _check(name, not h["nesterov"] or (h["momentum"] > 0 and h["dampening"] == 0),
               f"Nesterov momentum requires a momentum and zero dampening (got momentum={h['momentum']}, "
               f"dampening={h['dampening']})")

    def update(self, p, g, state, group):
        t = p.dtype.type
        mu = group["momentum"]
        if mu:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= t(mu)
                buf += t(1 - group["dampening"]) * g
            g = g + t(mu) * buf if group["nesterov"] else buf
        p -= t(group["lr"]) * g


class AdaGrad(Optimizer):
    """Per-element learning rates ``lr / sqrt(sum g^2)``, as ``torch.optim.Adagrad``.

    A parameter group's own ``initial_accumulator_value`` starts its sums (torch.optim.Adagrad
    fills every group's from the constructor's value)."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 0.01, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0, eps: float = 1e-10):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps))

    def _check_hyper(self, h):
        _check_nonneg(type(self).__name__, **h)

    def update(self, p, g, state, group):
        t = p.dtype.type
        xp = get_array_module(p)
        if "sum" not in state:
            state["sum"] = xp.full_like(p, group["initial_accumulator_value"])
            state["step"] = 0
        state["step"] += 1
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        state["sum"] += g * g
        p -= t(clr) * g / (xp.sqrt(state["sum"]) + t(group["eps"]))


Adagrad = AdaGrad


class RMSprop(Optimizer):
    """Divide by a running RMS of gradients, as ``torch.optim.RMSprop`` (optionally centered, with momentum)."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 0.01, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def _check_hyper(self, h):
        _check_nonneg(type(self).__name__, lr=h["lr"], eps=h["eps"], momentum=h["momentum"],
                      weight_decay=h["weight_decay"], alpha=h["alpha"])

    def update(self, p, g, state, group):
        t = p.dtype.type
        xp = get_array_module(p)
        a, rest = t(group["alpha"]), t(1 - group["alpha"])  # 1 - alpha in double, as PyTorch (not 1 - float32(alpha))
        if "square_avg" not in state:
            state["square_avg"] = xp.zeros_like(p)
        sq = state["square_avg"]
        sq *= a
        sq += rest * g * g
        if group["centered"]:
            ga = state.setdefault("grad_avg", xp.zeros_like(p))
            ga *= a
            ga += rest * g
            try:
                with np.errstate(invalid="raise"):
                    var = sq - ga * ga
            except FloatingPointError:  # inf - inf: sq overflowed (|g| > 1.8e19 in float32) and so did ga * ga.
                # PyTorch's fused sq - ga * ga keeps sq's inf (the update is then 0), not NaN
                with np.errstate(over="ignore", invalid="ignore"):
                    var = xp.where(xp.isinf(sq), sq, sq - ga * ga)
            avg = xp.sqrt(var) + t(group["eps"])
        else:
            avg = xp.sqrt(sq) + t(group["eps"])
        if group["momentum"] > 0:
            buf = state.setdefault("momentum_buffer", xp.zeros_like(p))
            buf *= t(group["momentum"])
            buf += g / avg
            p -= t(group["lr"]) * buf
        else:
            p -= t(group["lr"]) * g / avg


class Adam(Optimizer):
    """Adam with bias correction, as ``torch.optim.Adam`` (L2 ``weight_decay``, optional AMSGrad)."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 amsgrad: bool = False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))

    def _check_hyper(self, h):
        name, betas = type(self).__name__, h["betas"]
        if not isinstance(betas, (tuple, list)):
            raise TypeError(f"{name}: betas must be a pair (beta1, beta2), got {type(betas).__name__} {betas!r:.40}")
        h["betas"] = betas = tuple(betas)
        _check(name, len(betas) == 2, f"betas must be a pair (beta1, beta2), got {betas}")
        _check_nonneg(name, lr=h["lr"], eps=h["eps"])
        for i, b in enumerate(betas):
            _check_number(name, f"betas[{i}]", b)
            _check(name, 0.0 <= b < 1.0, f"Invalid beta parameter at index {i}: {b}")
        _check_nonneg(name, weight_decay=h["weight_decay"])

    def update(self, p, g, state, group):
        t = p.dtype.type
        xp = get_array_module(p)
        b1, b2 = group["betas"]
        if "exp_avg" not in state:
            state["exp_avg"], state["exp_avg_sq"], state["step"] = xp.zeros_like(p), xp.zeros_like(p), 0
        state["step"] += 1
        step = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= t(b1)
        m += t(1 - b1) * g
        v *= t(b2)
        v += t(1 - b2) * g * g
        if group["amsgrad"]:
            vmax = state.setdefault("max_exp_avg_sq", xp.zeros_like(p))
            xp.maximum(vmax, v, out=vmax)
            v = vmax
        bias1, bias2 = 1 - b1**step, 1 - b2**step
        denom = xp.sqrt(v) / t(np.sqrt(bias2)) + t(group["eps"])
        p -= t(group["lr"] / bias1) * m / denom
