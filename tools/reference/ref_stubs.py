"""Import-only stubs for optional deps of the reference VILA/LiFT `llava` package.
Lives only in /tmp/ref.  Loaded via sitecustomize in /tmp/ref/venv.
Any *runtime* use of a stub prints a warning to stderr (so we know stubs never
touched the numerics)."""

import importlib.abc, importlib.machinery, sys, types, os

STUB_TOPLEVEL = set(
    filter(
        None,
        os.environ.get("REF_STUBS", "deepspeed,flash_attn,s2wrapper,torchvision,datasets").split(
            ","
        ),
    )
)
USED = []


class _StubMeta(type):
    def __getattr__(cls, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _make(f"{cls.__qualname__}.{name}")

    def __call__(cls, *a, **k):
        USED.append(cls.__qualname__)
        print(f"[ref_stubs] WARNING runtime call of stub {cls.__qualname__}", file=sys.stderr)
        if len(a) == 1 and callable(a[0]) and not k:  # decorator use
            return a[0]
        return _make(cls.__qualname__ + "()")


def _make(qualname):
    return _StubMeta(qualname, (), {"__qualname__": qualname})


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _make(f"{self.__name__}.{name}")


class _Loader(importlib.abc.Loader):
    def create_module(self, spec):
        m = _StubModule(spec.name)
        m.__path__ = []
        m.__is_ref_stub__ = True
        return m

    def exec_module(self, module):
        print(
            f"[ref_stubs] stub module imported: {module.__name__}", file=sys.stderr
        ) if os.environ.get("REF_STUBS_VERBOSE") else None


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in STUB_TOPLEVEL:
            return importlib.machinery.ModuleSpec(fullname, _Loader(), is_package=True)
        return None


sys.meta_path.insert(0, _Finder())
