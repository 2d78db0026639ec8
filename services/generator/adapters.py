"""LoRA adapters on the denoiser: read and validate peft files, install under versions.

An adapter arrives as peft's files (``adapter_model.safetensors`` and, optionally,
``adapter_config.json``) or as diffusers writes a LoRA (``pytorch_lora_weights.safetensors``,
keys prefixed ``transformer.``). It is checked completely against the loaded denoiser
before anything is installed, so a bad one is refused with a sentence saying
what is wrong and the model is left as it was. Installed adapters live side by
side (peft named adapters); a request picks one for its whole generation, and
requests that name none get the *default* version, which only a promotion changes
(see :class:`AdapterSet`: loading is not serving).

:class:`AdapterSet` mutates the model: callers hold the engine's model lock.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from lift.errors import InvalidInput, NotFound, Overloaded, PayloadTooLarge
from lift.generation import (
    BASE_VERSION,
    CONFIG_FILE,
    DIFFUSERS_WEIGHTS_FILE,
    WEIGHTS_FILE,
    AdapterFiles,
)
from lift.uris import UriPolicy, local_path

log = logging.getLogger(__name__)

_KEY = re.compile(r"(?P<module>.+)\.(?P<part>lora_A|lora_B)\.weight")
_PREFIXES = ("base_model.model.", "transformer.")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")


@dataclass
class ParsedAdapter:
    """A validated adapter, ready to install."""

    state_dict: dict[str, torch.Tensor]
    """Keys relative to the denoiser: ``<module>.lora_A.weight`` / ``.lora_B.weight``."""
    config: Any
    """The peft ``LoraConfig`` it is installed with (targets: exactly its modules)."""
    ranks: dict[str, int]
    """Rank per module."""

    @property
    def modules(self) -> int:
        return len(self.ranks)

    @property
    def rank(self) -> int:
        return max(self.ranks.values())


@dataclass(frozen=True)
class InstallResult:
    """What :meth:`AdapterSet.install` did."""

    record: AdapterRecord
    evicted: list[str]
    """Versions unloaded to make room (never pinned ones)."""
    pinned: bool


@dataclass(frozen=True)
class AdapterRecord:
    """An installed adapter."""

    version: str
    name: str
    """peft's adapter name (labels may hold characters a module name cannot)."""
    modules: int
    rank: int
    loaded_at: float = field(default_factory=time.time)


def check_version(version: str) -> str:
    """A usable version label, or InvalidInput saying what a label may hold."""
    if version == BASE_VERSION:
        raise InvalidInput(f"version {BASE_VERSION!r} is reserved for the model without adapter")
    if not _VERSION.fullmatch(version):
        raise InvalidInput(
            f"version {version[:80]!r}{'…' if len(version) > 80 else ''} is not a valid label: "
            "1-128 characters, letters, digits and "
            "._:/@+- , starting with a letter or digit"
        )
    return version


def read_adapter_uri(uri: str, policy: UriPolicy, max_bytes: int) -> AdapterFiles:
    """The files a file:// URI names: a peft directory, or a .safetensors file."""
    path = local_path(uri, policy)
    if path.is_dir():
        weights, config = path / WEIGHTS_FILE, path / CONFIG_FILE
        if not weights.is_file() and (path / DIFFUSERS_WEIGHTS_FILE).is_file():
            # diffusers' layout; the rank is in the weights and alpha in their metadata
            weights = path / DIFFUSERS_WEIGHTS_FILE
        if not weights.is_file():
            raise NotFound(
                f"no {WEIGHTS_FILE} or {DIFFUSERS_WEIGHTS_FILE} in adapter directory {uri!r}"
            )
    elif path.is_file():
        weights, config = path, path.with_name(CONFIG_FILE)
    else:
        raise NotFound(f"nothing at {uri!r} under the server's adapter root")
    size = weights.stat().st_size
    if size > max_bytes:
        raise PayloadTooLarge(f"the adapter is {size} bytes; the limit is {max_bytes}")
    config_json = config.read_text(encoding="utf-8") if config.is_file() else None
    return AdapterFiles(weights.read_bytes(), config_json)


def _load_tensors(weights: bytes) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(weights)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise InvalidInput(f"the adapter weights are not a safetensors file: {exc}") from None
    if not tensors:
        raise InvalidInput("the adapter weights file holds no tensors")
    return tensors


def _config_dict(config_json: str | None) -> dict[str, Any]:
    if config_json is None or not config_json.strip():
        return {}
    try:
        cfg = json.loads(config_json)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the adapter config is not valid JSON: {exc}") from None
    if not isinstance(cfg, dict):
        raise InvalidInput("the adapter config must be a JSON object (peft's adapter_config.json)")
    peft_type = cfg.get("peft_type", "LORA")
    if str(peft_type).upper() != "LORA":
        raise InvalidInput(f"only LoRA adapters can be loaded (peft_type is {peft_type!r})")
    if cfg.get("use_dora"):
        raise InvalidInput("DoRA adapters (use_dora) are not supported; send a plain LoRA")
    for key in ("r", "lora_alpha"):
        value = cfg.get(key)
        if value is not None and (not isinstance(value, int | float) or value <= 0):
            raise InvalidInput(f"adapter config field {key!r} must be a positive number")
    return cfg


def _linear(denoiser: torch.nn.Module, path: str) -> torch.nn.Linear:
    try:
        module = denoiser.get_submodule(path)
    except AttributeError:
        raise InvalidInput(
            f"the adapter has weights for module {path!r}, which this model does not have: "
            "was it trained for a different model?"
        ) from None
    base = getattr(module, "base_layer", module)  # already wrapped by an earlier adapter
    if not isinstance(base, torch.nn.Linear):
        raise InvalidInput(
            f"module {path!r} is a {type(base).__name__}; only Linear layers take LoRA here"
        )
    return base


def _diffusers_config(weights: bytes) -> str | None:
    """The LoRA config diffusers keeps in a weights file's metadata, as peft's JSON, if any.

    diffusers' ``save_lora_weights`` stores ``{"transformer.r": .., "transformer.lora_alpha":
    ..}`` as JSON under the safetensors metadata key ``lora_adapter_metadata``
    (diffusers/loaders/lora_base.py, ``_pack_lora_weights``); ``load_lora_weights`` builds
    its ``LoraConfig`` from it, so we read alpha from the same place.
    """
    if len(weights) < 8:
        return None
    size = int.from_bytes(weights[:8], "little")
    if size > len(weights) - 8 or size > 100 * 1024 * 1024:
        return None
    try:
        header = json.loads(weights[8 : 8 + size])
        packed = json.loads(header.get("__metadata__", {}).get("lora_adapter_metadata", "null"))
    except (ValueError, AttributeError):
        return None
    if not isinstance(packed, dict):
        return None
    cfg = {
        k.removeprefix("transformer."): v for k, v in packed.items() if k.startswith("transformer.")
    }
    return json.dumps(cfg) if cfg else None


def parse_adapter(files: AdapterFiles, denoiser: torch.nn.Module) -> ParsedAdapter:
    """Validate an adapter against ``denoiser`` completely; install nothing."""
    from peft import LoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists

    tensors = _load_tensors(files.weights)
    config_json = files.config_json
    if config_json is None or not config_json.strip():
        config_json = _diffusers_config(files.weights)
    cfg = _config_dict(config_json)
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        stripped = key
        for prefix in _PREFIXES:
            stripped = stripped.removeprefix(prefix)
        m = _KEY.fullmatch(stripped)
        if m is None:
            raise InvalidInput(
                f"unexpected tensor {key!r} in the adapter: expected peft LoRA keys such as "
                "'base_model.model.<module>.lora_A.weight' and '....lora_B.weight'"
            )
        if not tensor.is_floating_point() or not torch.isfinite(tensor).all():
            raise InvalidInput(f"adapter tensor {key!r} is not finite floating point")
        parts.setdefault(m["module"], {})[m["part"]] = tensor

    # The config's own targets, to check every weighted module is one of them.
    declared = (
        LoraConfig(target_modules=cfg["target_modules"]) if cfg.get("target_modules") else None
    )
    ranks: dict[str, int] = {}
    state_dict: dict[str, torch.Tensor] = {}
    for path, ab in sorted(parts.items()):
        if set(ab) != {"lora_A", "lora_B"}:
            missing = ({"lora_A", "lora_B"} - set(ab)).pop()
            raise InvalidInput(f"the adapter lacks {missing} for module {path!r}")
        a, b = ab["lora_A"], ab["lora_B"]
        base = _linear(denoiser, path)
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1] or a.shape[0] < 1:
            raise InvalidInput(
                f"module {path!r}: lora_A {tuple(a.shape)} and lora_B {tuple(b.shape)} are not "
                "a LoRA pair ((r, in) and (out, r))"
            )
        if a.shape[1] != base.in_features or b.shape[0] != base.out_features:
            raise InvalidInput(
                f"module {path!r} is {base.in_features}->{base.out_features} but the adapter's "
                f"weights are for {a.shape[1]}->{b.shape[0]}: was it trained for a different model?"
            )
        if declared is not None and not check_target_module_exists(declared, path):
            raise InvalidInput(
                f"the adapter has weights for {path!r} but its config's target_modules "
                f"({cfg['target_modules']!r}) do not name it"
            )
        ranks[path] = int(a.shape[0])
        state_dict[f"{path}.lora_A.weight"] = a
        state_dict[f"{path}.lora_B.weight"] = b

    # Rank per module from the weights; alpha from the config (per pattern when given),
    # else alpha = rank (scale 1), as diffusers assumes without metadata.
    common = Counter(ranks.values()).most_common(1)[0][0]
    r = int(cfg.get("r") or common)
    alpha = cfg.get("lora_alpha")
    config = LoraConfig(
        r=r,
        lora_alpha=alpha if alpha is not None else r,
        target_modules=sorted(ranks),
        rank_pattern={f"^{re.escape(p)}$": k for p, k in ranks.items() if k != r},
        alpha_pattern=dict(cfg.get("alpha_pattern") or {})
        if alpha is not None
        else {f"^{re.escape(p)}$": k for p, k in ranks.items() if k != r},
        use_rslora=bool(cfg.get("use_rslora", False)),
        lora_dropout=0.0,
        bias="none",
    )
    return ParsedAdapter(state_dict=state_dict, config=config, ranks=ranks)


class AdapterSet:
    """Adapters installed on one denoiser, by version, and which one is the default.

    Loading a version never changes what callers who name no version get: that is
    :attr:`default`, changed only by :meth:`promote` ("base" until then). At most
    ``keep`` versions stay loaded; making room unloads the oldest *unpinned* one. A
    version is pinned while it is the default, after ``pin`` (at load or later), or
    while a generation that named it is in flight (:meth:`hold`); pinned versions are
    never unloaded, and a load that would need to unload one is refused.

    Methods that change the model's adapters (:meth:`install`, :meth:`activate`)
    need the model lock; the bookkeeping has its own lock so holds, pins and
    promotions never wait for a generation.
    """

    def __init__(self, denoiser: torch.nn.Module, keep: int) -> None:
        self.denoiser = denoiser
        self.keep = keep
        self.records: list[AdapterRecord] = []  # newest first
        self.default = BASE_VERSION
        self._pins: set[str] = set()
        self._holds: Counter[str] = Counter()
        self._used: set[str] = set()
        self._counter = 0
        self._lock = threading.Lock()

    @property
    def current(self) -> str:
        """The version requests naming none get (the default)."""
        return self.default

    def versions(self) -> list[str]:
        """Versions a request may name, newest first."""
        return [r.version for r in self.records]

    def is_pinned(self, version: str) -> bool:
        """Whether ``version`` may not be unloaded now."""
        return version == self.default or version in self._pins or self._holds[version] > 0

    def _find(self, version: str) -> AdapterRecord:
        for r in self.records:
            if r.version == version:
                return r
        loaded = ", ".join(self.versions()) or "none"
        raise NotFound(
            f"adapter version {version!r} is not loaded (loaded: {loaded}; "
            f"{BASE_VERSION!r} is the model without adapter)"
        )

    def _evictable(self) -> list[AdapterRecord]:
        """Unpinned versions, oldest first."""
        return [r for r in reversed(self.records) if not self.is_pinned(r.version)]

    def check_new(self, version: str) -> None:
        """Refuse a label already used, or a load that would have to unload a pinned version."""
        check_version(version)
        if version in self._used:
            raise InvalidInput(
                f"version {version!r} was already loaded; every adapter needs a new label"
            )
        with self._lock:
            full = len(self.records) >= self.keep and not self._evictable()
        if full:
            raise Overloaded(
                f"the generator holds {self.keep} adapter versions and every one is pinned "
                "(the default, pinned, or in use by a generation): unpin one (PinAdapter), "
                "promote another, retry when generations finish, or raise adapter_keep"
            )

    def install(self, version: str, adapter: ParsedAdapter, pin: bool = False) -> InstallResult:
        """Install ``adapter`` as ``version``; the default stays; on failure change nothing.

        Unloads the oldest unpinned versions past ``keep`` and returns them.
        """
        from peft import set_peft_model_state_dict

        self.check_new(version)
        self._counter += 1
        name = f"lift_adapter_{self._counter}"
        try:
            with warnings.catch_warnings():
                # peft warns that several adapters share the model: that is the design here.
                warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                self.denoiser.add_adapter(adapter.config, adapter_name=name)  # type: ignore[operator]
            result = set_peft_model_state_dict(self.denoiser, adapter.state_dict, name)
            unexpected = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
            if unexpected:
                raise InvalidInput(f"the adapter's weights did not load: {unexpected[:3]}")
            for path, rank in adapter.ranks.items():
                got = getattr(self.denoiser.get_submodule(path), "r", {}).get(name)
                if got != rank:
                    raise InvalidInput(
                        f"module {path!r}: the config gives rank {got}, the weights rank {rank}"
                    )
        except Exception as exc:
            self._remove(name)
            self._restore_active()
            if isinstance(exc, InvalidInput):
                raise
            raise InvalidInput(f"the adapter could not be installed: {exc}") from exc
        record = AdapterRecord(version, name, adapter.modules, adapter.rank)
        evicted: list[str] = []
        with self._lock:
            self._used.add(version)
            self.records.insert(0, record)
            if pin:
                self._pins.add(version)
            # check_new made sure one unpinned version exists when over capacity; the new
            # version itself counts as evictable only if nothing older is (never, then).
            for old in self._evictable():
                if len(self.records) <= self.keep:
                    break
                if old.version == version:
                    continue
                self.records.remove(old)
                self._remove(old.name)
                evicted.append(old.version)
                log.info("adapter %s unloaded (keeping %d versions)", old.version, self.keep)
            over = len(self.records) > self.keep
            if over:  # a generation pinned the last candidate since check_new: undo
                self.records.remove(record)
                self._pins.discard(version)
                self._used.discard(version)
        if over:
            self._remove(name)
            self._restore_active()
            raise Overloaded(
                f"the generator holds {self.keep} adapter versions and every one is pinned; "
                "retry when generations finish"
            )
        # peft made the new adapter active; the model keeps serving what it served.
        self._restore_active()
        return InstallResult(record, evicted, self.is_pinned(version))

    def promote(self, version: str) -> str:
        """Make ``version`` ("" or "base": no adapter) the default; return the previous one."""
        version = version or BASE_VERSION
        with self._lock:
            if version != BASE_VERSION:
                self._find(version)
            previous, self.default = self.default, version
        return previous

    def pin(self, version: str, pinned: bool) -> bool:
        """Pin or unpin a loaded version; return whether it is pinned now."""
        with self._lock:
            self._find(version)
            if pinned:
                self._pins.add(version)
            else:
                self._pins.discard(version)
            return self.is_pinned(version)

    @contextmanager
    def hold(self, version: str) -> Iterator[None]:
        """Keep ``version`` loaded while a generation that named it waits and runs."""
        held = bool(version) and version != BASE_VERSION
        if held:
            with self._lock:
                self._holds[version] += 1
        try:
            yield
        finally:
            if held:
                with self._lock:
                    self._holds[version] -= 1
                    if self._holds[version] <= 0:
                        del self._holds[version]

    def activate(self, version: str) -> str:
        """Make the model run with ``version`` ("" = the default); return the version used."""
        version = version or self.default
        if version == BASE_VERSION:
            if self.records:
                self.denoiser.disable_adapters()  # type: ignore[operator]
            return version
        with self._lock:
            record = self._find(version)
        self.denoiser.set_adapter(record.name)  # type: ignore[operator]
        self.denoiser.enable_adapters()  # type: ignore[operator]
        return version

    def _remove(self, name: str) -> None:
        if name in getattr(self.denoiser, "peft_config", {}):
            self.denoiser.delete_adapters(name)  # type: ignore[operator]

    def _restore_active(self) -> None:
        if self.records:
            self.activate("")
